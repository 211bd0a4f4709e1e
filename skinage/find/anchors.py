"""The 896 SSD anchors of BlazeFace short-range (MediaPipe's ``SsdAnchorsCalculator``, trimmed).

Four layers with strides 8, 16, 16, 16 on the 128-px input; consecutive layers of the same stride
share one grid, with two anchors per layer there (aspect ratio 1 and the interpolated scale, both
of fixed size 1 x 1, so only the centres matter): a 16x16 grid with 2 anchors per cell, then an
8x8 grid with 6. Anchors run row by row, cell by cell, the repeats innermost. Centres are in
units of the detector input (0..1).

>>> a = ssd_anchors()
>>> a.shape
(896, 2)
>>> a[0].tolist(), a[1].tolist(), a[2].tolist()
([0.03125, 0.03125], [0.03125, 0.03125], [0.09375, 0.03125])
>>> a[512].tolist()
[0.0625, 0.0625]
"""

from __future__ import annotations

import numpy as np

from .constants import ANCHOR_OFFSET, ANCHOR_STRIDES, DETECTOR_SIZE

__all__ = ["ssd_anchors"]


def ssd_anchors(size: int = DETECTOR_SIZE, strides=ANCHOR_STRIDES, offset: float = ANCHOR_OFFSET) -> np.ndarray:
    """Anchor centres ``(N, 2)`` float64 as ``(x, y)`` in 0..1 of the detector input.

    Parameters
    ----------
    size : int
        Side of the square detector input, in pixels.
    strides : sequence of int
        Stride of each SSD layer; consecutive layers with the same stride share a grid, each
        adding two anchors per cell.
    offset : float
        Position of an anchor centre inside its cell (0.5: the middle).
    """
    out = []
    i = 0
    while i < len(strides):
        j = i
        while j < len(strides) and strides[j] == strides[i]:
            j += 1
        repeats = 2 * (j - i)
        cells = size // strides[i]
        for y in range(cells):
            for x in range(cells):
                centre = ((x + offset) / cells, (y + offset) / cells)
                out.extend([centre] * repeats)
        i = j
    return np.asarray(out, dtype=np.float64)
