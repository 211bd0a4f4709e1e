"""How an image becomes a model's input: one frozen :class:`Preprocess`, from training to the page.

A ``Preprocess`` says which part of a photo the model reads (``region``), how that box is grown
(``margin``, ``square``) and resized (``size``, ``interpolation``), and the normalisation the model
applies inside itself (``mean``, ``std``). It is built once, when a run starts, from the model
registry plus the user's overrides (:meth:`Preprocess.for_model`); the checkpoint stores it, the
exported ONNX file carries it in its metadata, and evaluate, predict, export and the browser page
read it back with :meth:`Preprocess.from_meta`. Nothing else decides an image size.

Regions:

``bbox``      the box a label gives (manifest columns ``x0, y0, x1, y1``, ``--bbox``), or the whole
              image when there is none (the default);
``none``      always the whole image, whatever box is given;
``face``      the face box the finder (:mod:`skinage.find`) gives; a model trained on found face
              crops makes ``skinage predict`` find faces itself;
``forehead``  the finder's forehead box, likewise.

Pixels are always cut by :func:`skinage.data.images.load_crop` (boxes in pixels of the
EXIF-rotated image, the box grown by ``margin`` and squared, resized with Pillow), so a crop is the
same wherever it is made.

>>> pre = Preprocess.for_model("mobilenet_v2", margin=0.1)
>>> pre.size, pre.interpolation, pre.region
(224, 'bilinear', 'bbox')
>>> Preprocess.from_meta({"preprocessing": pre.to_meta()}) == pre
True
>>> Preprocess.from_meta({"model": "mobilenet_v2", "preprocessing": {"input_size": 160}}).size  # older files
160
>>> pre.crop_box((10, 10, 50, 30), (100, 100))  # 10 % of the box added on every side
(6.0, 8.0, 54.0, 32.0)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence

import numpy as np

__all__ = ["Preprocess", "REGIONS", "INTERPOLATIONS", "FOUND_REGIONS"]

#: Where the crop comes from (see the module docstring).
REGIONS = ("bbox", "none", "face", "forehead")
#: Regions whose box the face finder supplies.
FOUND_REGIONS = ("face", "forehead")
#: Resampling filters of the final resize (Pillow's names).
INTERPOLATIONS = ("bilinear", "bicubic", "lanczos", "nearest", "box")

# The metadata key of the side in files written before the Preprocess existed.
_LEGACY_SIZE_KEY = "input_size"


@dataclass(frozen=True)
class Preprocess:
    """The input of a model: region, box growth, side, resampling filter and normalisation.

    Parameters
    ----------
    size : int
        Side of the square crop the model reads, in pixels.
    mean, std : tuple of 3 floats
        The normalisation of the model's backbone, applied *inside* the model (and the exported
        graph): inputs are plain RGB pixels. Recorded so a reader knows what the model expects.
    interpolation : str
        Resampling filter of the resize (``bilinear``, ``bicubic``, ...).
    margin : float
        Fraction of the box's width and height added on every side before cropping.
    square : bool
        Grow the box's shorter side to its longer one (kept inside the image).
    region : str
        ``bbox``, ``none``, ``face`` or ``forehead`` (where the box comes from).
    """

    size: int
    mean: tuple = (0.485, 0.456, 0.406)
    std: tuple = (0.229, 0.224, 0.225)
    interpolation: str = "bilinear"
    margin: float = 0.0
    square: bool = False
    region: str = "bbox"

    def __post_init__(self):
        set_ = object.__setattr__  # frozen: normalise types once, here
        set_(self, "size", int(self.size))
        set_(self, "mean", tuple(float(v) for v in self.mean))
        set_(self, "std", tuple(float(v) for v in self.std))
        set_(self, "margin", float(self.margin or 0.0))
        set_(self, "square", bool(self.square))
        set_(self, "region", str(self.region or "bbox"))
        if self.size < 1:
            raise ValueError(f"the input side must be a positive number of pixels (--size), not {self.size}")
        if self.region not in REGIONS:
            raise ValueError(f"unknown crop region {self.region!r}; choose one of {', '.join(REGIONS)}")
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"unknown interpolation {self.interpolation!r}; choose one of {', '.join(INTERPOLATIONS)}")
        if self.margin < 0:
            raise ValueError(f"the box margin must be >= 0, not {self.margin}")
        if len(self.mean) != 3 or len(self.std) != 3:
            raise ValueError("mean and std need 3 values (R, G, B)")

    # -- building ------------------------------------------------------------------------------

    @classmethod
    def for_model(cls, model: str, *, size: Optional[int] = None, margin: Optional[float] = None,
                  square: Optional[bool] = None, region: Optional[str] = None) -> "Preprocess":
        """The registry's preprocessing of backbone ``model``, with the user's overrides (None: keep)."""
        from .models.registry import get_config

        cfg = get_config(model)
        return cls(size=size or cfg.input_size, mean=cfg.mean, std=cfg.std, interpolation=cfg.interpolation,
                   margin=0.0 if margin is None else margin, square=bool(square), region=region or "bbox")

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any]) -> "Preprocess":
        """Read a ``Preprocess`` back from a checkpoint's or an ONNX file's metadata.

        ``meta`` is the whole metadata (with a ``preprocessing`` block and, for files written
        before the ``Preprocess`` existed, the ``model`` name to fill gaps from) or the block itself.
        """
        block = meta.get("preprocessing", meta)
        if not isinstance(block, Mapping):
            raise ValueError("the metadata has no 'preprocessing' block")
        model = meta.get("model")
        base = None
        if model and any(block.get(k) is None for k in ("mean", "std", "interpolation")) or not _side(block):
            if not model:
                raise ValueError("the metadata's preprocessing gives no input size and names no model")
            base = cls.for_model(str(model))
        values = {f.name: block[f.name] for f in dataclasses.fields(cls) if block.get(f.name) is not None}
        values["size"] = _side(block) or base.size
        if base is not None:
            values = {**dataclasses.asdict(base), **values}
        return cls(**values)

    def replace(self, **changes: Any) -> "Preprocess":
        """A copy with some fields changed (None values are ignored)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def to_meta(self) -> dict:
        """The JSON-friendly block stored in checkpoints and ONNX metadata (``preprocessing``)."""
        d = dataclasses.asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    def identity(self) -> dict:
        """What a cached embedding depends on: the crop and the normalisation (stable across versions)."""
        out = {_LEGACY_SIZE_KEY: self.size, "mean": list(self.mean), "std": list(self.std),
               "interpolation": self.interpolation, "margin": self.margin, "square": self.square}
        if self.region != "bbox":
            out["region"] = self.region
        return out

    # -- using ---------------------------------------------------------------------------------

    @property
    def shape(self) -> tuple:
        """Shape of one crop as the model reads it: ``(size, size, 3)`` uint8 RGB."""
        return (self.size, self.size, 3)

    @property
    def finds(self) -> bool:
        """Whether the box comes from the face finder (``face`` / ``forehead`` regions)."""
        return self.region in FOUND_REGIONS

    def describe(self) -> str:
        """A short line for logs, e.g. ``224 px, bilinear, box + 10 % margin, squared``."""
        parts = [f"{self.size} px", self.interpolation, {"none": "whole image"}.get(self.region, self.region)
                 + (f" + {100 * self.margin:g} % margin" if self.margin else "")]
        if self.square:
            parts.append("squared")
        return ", ".join(parts)

    def box(self, bbox: Optional[Sequence[float]]) -> Optional[tuple]:
        """The box to crop, as floats, or None for the whole image (``region='none'`` ignores it)."""
        if self.region == "none" or bbox is None:
            return None
        vals = tuple(float(v) for v in bbox)
        return None if any(v != v for v in vals) else vals  # v != v: NaN

    def crop_box(self, bbox, image_size) -> tuple:
        """The region of an image of ``image_size`` = (width, height) that :meth:`load` resizes."""
        from .data.images import expand_box

        return expand_box(self.box(bbox), image_size, self.margin, self.square)

    def load(self, source, bbox=None, *, cache=None) -> np.ndarray:
        """The crop the model reads: ``(size, size, 3)`` uint8 RGB.

        ``source`` is a path or the bytes of an image file; ``cache`` an optional
        :class:`skinage.data.images.CropCache` (paths only). Raises
        :class:`skinage.data.images.ImageError` for unreadable images and unusable boxes.
        """
        from .data.images import load_crop

        box = self.box(bbox)
        if cache is not None and not isinstance(source, (bytes, bytearray, memoryview)):
            return cache.get(source, box, self.size, margin=self.margin, square=self.square,
                             resample=self.interpolation)
        return load_crop(source, box, size=self.size, margin=self.margin, square=self.square,
                         resample=self.interpolation)

    def empty(self, n: int = 0) -> np.ndarray:
        """An ``(n, size, size, 3)`` uint8 batch of zeros (e.g. when no image could be read)."""
        return np.zeros((n, *self.shape), dtype=np.uint8)


def _side(block: Mapping[str, Any]) -> Optional[int]:
    v = block.get("size") or block.get(_LEGACY_SIZE_KEY)
    return int(v) if v else None
