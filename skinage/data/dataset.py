"""A torch ``Dataset`` over manifest rows: ``(uint8 CHW tensor, label)``.

Crops come from :class:`skinage.data.images.CropCache` (decoded once at the training size, then
read from disk), so augmentation runs on small uint8 tensors.

>>> import tempfile, os, pandas as pd
>>> from PIL import Image
>>> d = tempfile.mkdtemp(); p = os.path.join(d, "a.png")
>>> Image.new("RGB", (64, 48), (250, 0, 0)).save(p)
>>> df = pd.DataFrame({"path": [p], "label": [1], "x0": [8.0], "y0": [8.0], "x1": [40.0], "y1": [40.0]})
>>> ds = ManifestDataset(df, size=32, cache=None)
>>> x, y = ds[0]
>>> tuple(x.shape), x.dtype, y, int(x[0].float().mean())
((3, 32, 32), torch.uint8, 1, 250)
"""

from __future__ import annotations

import math
from typing import Callable, Optional, Union

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from .images import CropCache, load_crop
from .manifest import BBOX_COLUMNS, Manifest

__all__ = ["ManifestDataset"]

_DEFAULT = object()


class ManifestDataset(Dataset):
    """Images of manifest rows, cropped to their bbox and resized to ``size``.

    Parameters
    ----------
    df : DataFrame or Manifest
        Needs ``path`` and ``label``; bbox columns ``x0, y0, x1, y1`` are used when present
        (NaN = whole image). Pass ``manifest.split("train")`` for one split.
    size : int
        Output side in pixels.
    transform : callable, optional
        Applied to the uint8 ``(3, size, size)`` tensor (e.g. torchvision v2 transforms).
    cache : CropCache, None or default
        The crop cache (default: a :class:`CropCache` in ``cache_dir()/crops``); ``None`` decodes
        every time.
    margin, square, resample :
        Passed to :func:`skinage.data.images.load_crop`.

    Unreadable images raise :class:`skinage.data.images.ImageError` (ingest has already set
    them aside).
    """

    def __init__(
        self,
        df: Union[pd.DataFrame, Manifest],
        size: int = 224,
        transform: Optional[Callable] = None,
        cache=_DEFAULT,
        margin: float = 0.0,
        square: bool = False,
        resample: str = "bilinear",
    ):
        if isinstance(df, Manifest):
            df = df.df
        if "path" not in df.columns:
            raise ValueError("ManifestDataset: the table has no 'path' column")
        self.df = df.reset_index(drop=True)
        self.size = int(size)
        self.transform = transform
        self.cache = CropCache() if cache is _DEFAULT else cache
        self.margin = float(margin)
        self.square = bool(square)
        self.resample = resample
        self.paths = self.df["path"].astype(str).tolist()
        self.labels = (
            pd.to_numeric(self.df["label"], errors="coerce").fillna(-1).astype(int).to_numpy()
            if "label" in self.df.columns
            else np.full(len(self.df), -1, dtype=int)
        )
        if all(c in self.df.columns for c in BBOX_COLUMNS):
            self.boxes = self.df[BBOX_COLUMNS].to_numpy(dtype=float)
        else:
            self.boxes = np.full((len(self.df), 4), np.nan)

    def __len__(self) -> int:
        return len(self.paths)

    def bbox(self, i: int):
        b = self.boxes[i]
        return None if any(math.isnan(v) for v in b) else tuple(float(v) for v in b)

    def crop(self, i: int) -> np.ndarray:
        """The ``(size, size, 3)`` uint8 crop of row ``i``."""
        kw = dict(size=self.size, margin=self.margin, square=self.square, resample=self.resample)
        if self.cache is not None:
            return self.cache.get(self.paths[i], self.bbox(i), **kw)
        return load_crop(self.paths[i], self.bbox(i), **kw)

    def __getitem__(self, i: int):
        arr = self.crop(int(i))
        x = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))
        if self.transform is not None:
            x = self.transform(x)
        return x, int(self.labels[i])
