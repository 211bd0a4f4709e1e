"""Photos a model should not grade, whatever it was trained on: the ``too_dark`` rule.

A crop is *too dark* when the mean Rec.601 luma of the crop the model reads (uint8 RGB, after the
region box, margin and resize of its :class:`~skinage.preprocess.Preprocess`) is below
:data:`MIN_LUMA`::

    luma = mean over pixels of (0.299 R + 0.587 G + 0.114 B)     # float64, R, G, B in 0..255
    too dark  <=>  luma < MIN_LUMA

``skinage predict`` (and a server or the browser page, which copies :data:`MIN_LUMA` into its card)
then gives the photo the status ``too_dark`` and a sentence instead of a class.

Why 30: measured by ``benchmarks/bench_dark.py`` (``docs/results/too_dark.md``): the darkest crop of
the shared data sets (UTKFace, london-5view; whole photos and found face crops) has a mean luma of
34.6, so no photo there is refused; the same photos with their light divided by 32 (a studio- or
daylight-lit face seen in a dim room at night, no exposure compensation) are refused (all but a few
percent), at 1/16 about half, at 1/8 a few. A darker threshold would refuse only pitch-black photos; a
brighter one would start refusing dark skin photographed in ordinary light (the darkest UTKFace
faces are in the 35-60 range).

>>> import numpy as np
>>> crop = np.full((4, 4, 3), (40, 25, 20), dtype=np.uint8)
>>> round(mean_luma(crop), 3)  # 0.299 * 40 + 0.587 * 25 + 0.114 * 20
28.915
>>> too_dark(crop) is not None, too_dark(crop + 10) is None
(True, True)
"""

from __future__ import annotations

import numpy as np

__all__ = ["TOO_DARK", "MIN_LUMA", "LUMA_WEIGHTS", "mean_luma", "too_dark"]

#: The status of a refused dark photo.
TOO_DARK = "too_dark"
#: A crop whose mean luma (0..255) is below this is too dark to grade. ONE value, shared with the browser page.
MIN_LUMA = 30.0
#: Rec.601 luma weights of R, G, B.
LUMA_WEIGHTS = (0.299, 0.587, 0.114)


def mean_luma(crop: np.ndarray) -> float:
    """Mean Rec.601 luma of a uint8 RGB crop ``(H, W, 3)``, as float64 (0..255)."""
    arr = np.asarray(crop)
    if arr.ndim != 3 or arr.shape[-1] != 3:
        raise ValueError(f"a crop must be (H, W, 3) RGB, not {arr.shape}")
    return float((arr.astype(np.float64) @ np.asarray(LUMA_WEIGHTS, dtype=np.float64)).mean())


def too_dark(crop: np.ndarray, min_luma: float = MIN_LUMA) -> str | None:
    """The reason (a sentence) when ``crop`` is too dark to grade, else None."""
    luma = mean_luma(crop)
    if luma < min_luma:
        return (f"the photo is too dark: the part the model reads has a mean brightness of {luma:.0f} of 255, "
                f"below {min_luma:g}; take the photo in more light")
    return None
