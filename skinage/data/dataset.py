"""A torch ``Dataset`` over manifest rows: ``(uint8 CHW tensor, label)``.

Crops come from :class:`skinage.data.images.CropCache` (decoded once at the training size, then
read from disk), so augmentation runs on small uint8 tensors.

>>> import tempfile, os, pandas as pd
>>> from PIL import Image
>>> d = tempfile.mkdtemp(); p = os.path.join(d, "a.png")
>>> Image.new("RGB", (64, 48), (250, 0, 0)).save(p)
>>> from skinage.preprocess import Preprocess
>>> df = pd.DataFrame({"path": [p], "label": [1], "x0": [8.0], "y0": [8.0], "x1": [40.0], "y1": [40.0]})
>>> ds = ManifestDataset(df, Preprocess(size=32), cache=None)
>>> x, y = ds[0]
>>> tuple(x.shape), x.dtype, y, int(x[0].float().mean())
((3, 32, 32), torch.uint8, 1, 250)
"""

from __future__ import annotations

from typing import Callable, Optional, Union

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from .images import CropCache
from .manifest import Manifest, row_bbox

__all__ = ["ManifestDataset"]

_DEFAULT = object()


class ManifestDataset(Dataset):
    """Images of manifest rows, cropped and resized as ``pre`` says.

    Parameters
    ----------
    df : DataFrame or Manifest
        Needs ``path`` and ``label``; bbox columns ``x0, y0, x1, y1`` are used when present
        (NaN = whole image). Pass ``manifest.split("train")`` for one split.
    pre : skinage.preprocess.Preprocess
        The model's preprocessing (size, margin, square, interpolation, region).
    transform : callable, optional
        Applied to the uint8 ``(3, size, size)`` tensor (e.g. torchvision v2 transforms).
    cache : CropCache, None or default
        The crop cache (default: a :class:`CropCache` in ``cache_dir()/crops``); ``None`` decodes
        every time.

    Unreadable images raise :class:`skinage.data.images.ImageError` (ingest has already set
    them aside).
    """

    def __init__(
        self,
        df: Union[pd.DataFrame, Manifest],
        pre,
        transform: Optional[Callable] = None,
        cache=_DEFAULT,
    ):
        if isinstance(df, Manifest):
            df = df.df
        if "path" not in df.columns:
            raise ValueError("ManifestDataset: the table has no 'path' column")
        self.df = df.reset_index(drop=True)
        self.pre = pre
        self.transform = transform
        self.cache = CropCache() if cache is _DEFAULT else cache
        self.paths = self.df["path"].astype(str).tolist()
        self.labels = (
            pd.to_numeric(self.df["label"], errors="coerce").fillna(-1).astype(int).to_numpy()
            if "label" in self.df.columns
            else np.full(len(self.df), -1, dtype=int)
        )
        self.boxes = [row_bbox(r) for r in self.df.to_dict("records")]

    def __len__(self) -> int:
        return len(self.paths)

    def crop(self, i: int) -> np.ndarray:
        """The ``(size, size, 3)`` uint8 crop of row ``i``."""
        return self.pre.load(self.paths[i], self.boxes[i], cache=self.cache)

    def __getitem__(self, i: int):
        arr = self.crop(int(i))
        x = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))
        if self.transform is not None:
            x = self.transform(x)
        return x, int(self.labels[i])
