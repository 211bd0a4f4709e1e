"""On-the-fly augmentation for ``finetune`` / ``distill`` and the augmented views of ``feature`` mode.

Images travel as uint8 CHW tensors (what :class:`skinage.data.dataset.ManifestDataset`
yields); :func:`build_augment` returns a callable mapping one such tensor to an
augmented float32 tensor in ``[0, 1]`` of the same size (the model normalises
inside). Every step is a torchvision ``transforms.v2`` transform, so it runs on the
global torch RNG: seeding torch makes a run (and a resumed run) repeat exactly.

The steps are configured by a comma-separated spec (the ``--augment`` flag):

``flip``      horizontal flip with probability 0.5
``rotate``    random rotation within +-``rotate_deg`` degrees (default 10)
``jitter``    colour jitter (brightness, contrast, saturation 0.2, hue 0.02)
``crop``      random resized crop to the input size, scale (``crop_scale``, 1), ratio 3/4..4/3
``none``      no augmentation

>>> import torch
>>> aug = build_augment("flip,rotate,jitter,crop", size=32)
>>> _ = torch.manual_seed(0)
>>> out = aug(torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8))
>>> out.dtype, tuple(out.shape), bool(out.min() >= 0 and out.max() <= 1)
(torch.float32, (3, 32, 32), True)
>>> parse_augment("flip, crop")
('flip', 'crop')
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

__all__ = ["AUGMENTS", "DEFAULT_AUGMENT", "parse_augment", "build_augment", "to_float"]

AUGMENTS = ("flip", "rotate", "jitter", "crop", "none")
DEFAULT_AUGMENT = "flip,rotate,jitter,crop"


def parse_augment(spec: str | Sequence[str] | None) -> tuple[str, ...]:
    """Split and check an augmentation spec; ``''``/``'none'``/None -> ``()``."""
    if spec is None:
        return ()
    parts = spec.replace(" ", "").split(",") if isinstance(spec, str) else list(spec)
    out = []
    for p in parts:
        p = p.strip().lower()
        if not p or p == "none":
            continue
        if p not in AUGMENTS:
            import difflib

            close = difflib.get_close_matches(p, AUGMENTS, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            from ..config import ConfigError

            raise ConfigError(f"unknown augmentation '{p}'{hint}; choose from {', '.join(AUGMENTS)}")
        out.append(p)
    return tuple(out)


def to_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 image tensor (any leading dims) -> float32 in [0, 1]."""
    if x.dtype == torch.uint8:
        return x.float().div_(255.0)
    return x.float()


def build_augment(spec: str | Sequence[str] | None, size: int, rotate_deg: float = 10.0,
                  crop_scale: float = 0.75) -> Callable[[torch.Tensor], torch.Tensor]:
    """A per-image augmentation: uint8 (3, H, W) -> float32 (3, size, size) in [0, 1].

    Parameters
    ----------
    spec : str or sequence of str
        Steps to apply, e.g. ``"flip,rotate,jitter,crop"`` (see the module doc).
    size : int
        Output side length (the input is resized to it when no ``crop`` step is given
        and the side differs).
    rotate_deg : float
        Maximum rotation in degrees for ``rotate``.
    crop_scale : float
        Smallest area fraction kept by ``crop``.
    """
    from torchvision.transforms import v2

    steps = parse_augment(spec)
    ts: list = []
    if "crop" in steps:
        ts.append(v2.RandomResizedCrop(size, scale=(crop_scale, 1.0), antialias=True))
    else:
        ts.append(v2.Resize((size, size), antialias=True))
    if "flip" in steps:
        ts.append(v2.RandomHorizontalFlip(0.5))
    if "rotate" in steps:
        ts.append(v2.RandomRotation(rotate_deg, interpolation=v2.InterpolationMode.BILINEAR))
    if "jitter" in steps:
        ts.append(v2.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.02))
    ts.append(v2.ToDtype(torch.float32, scale=True))
    pipeline = v2.Compose(ts)

    def augment(img: torch.Tensor) -> torch.Tensor:
        if img.dtype != torch.uint8:
            img = (img.clamp(0, 1) * 255).round().to(torch.uint8)
        if img.shape[-1] == size and img.shape[-2] == size and not steps:
            return to_float(img)
        return pipeline(img)

    augment.steps = steps  # type: ignore[attr-defined]
    return augment
