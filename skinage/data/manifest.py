"""The manifest: one table row per sample, plus a JSON sidecar with the class list.

CSV or Parquet by the file's extension (``.csv``, ``.parquet`` / ``.pq``), written atomically.
The sidecar ``<stem>.meta.json`` holds ``classes`` (ordered class names; a row's ``label`` is the
position in that list), ``ordinal`` (classes are ordered levels), ``source`` and the ingest
``options``.

Columns: ``path, label, class_name, raw_label, subject, view, x0, y0, x1, y1, split, fold`` and any
metadata found (age, gender, ...). Bbox values are pixels of the EXIF-rotated image; NaN (an empty
CSV cell) means the whole image.

>>> import tempfile, os, pandas as pd
>>> df = pd.DataFrame({"path": ["/a.jpg", "/b.jpg"], "label": [0, 1], "subject": ["007", "008"]})
>>> m = Manifest(df, ["young", "old"], {"ordinal": True})
>>> p = os.path.join(tempfile.mkdtemp(), "m.csv")
>>> _ = write_manifest(m, p)
>>> back = read_manifest(p)
>>> back.classes, list(back.df["class_name"]), list(back.df["subject"]), back.ordinal
(['young', 'old'], ['young', 'old'], ['007', '008'], True)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
import pandas as pd

from ..utils import atomic_write, atomic_write_json

__all__ = ["Manifest", "read_manifest", "write_manifest", "meta_path", "row_bbox", "COLUMNS", "BBOX_COLUMNS"]

#: The fixed columns, in order; other (metadata) columns follow them.
COLUMNS = ["path", "label", "class_name", "raw_label", "subject", "view", "x0", "y0", "x1", "y1", "split", "fold"]
BBOX_COLUMNS = ["x0", "y0", "x1", "y1"]
#: Rows per Parquet row group: a large manifest is converted and written a part at a time (less memory).
PARQUET_ROW_GROUP = 16384


def row_bbox(row) -> tuple | None:
    """The bbox of one manifest row (dict, Series, ...) as floats, or None for the whole image.

    Missing columns, empty cells and NaN all mean "whole image".

    >>> row_bbox({"x0": 1, "y0": 2, "x1": 30, "y1": 40})
    (1.0, 2.0, 30.0, 40.0)
    >>> row_bbox({"x0": float("nan"), "y0": 2, "x1": 30, "y1": 40}) is None
    True
    """
    try:
        vals = [float(row[c]) for c in BBOX_COLUMNS]
    except (KeyError, TypeError, ValueError):
        return None
    return None if any(v != v for v in vals) else tuple(vals)  # v != v: NaN
_STR_COLUMNS = ["path", "class_name", "raw_label", "subject", "view", "split"]


def meta_path(path) -> Path:
    """The sidecar of a manifest: ``m.csv`` -> ``m.meta.json``."""
    p = Path(path)
    return p.with_name(p.stem + ".meta.json")


def _is_parquet(path) -> bool:
    return Path(path).suffix.lower() in (".parquet", ".pq")


@dataclass
class Manifest:
    """A manifest table with its classes and metadata.

    Attributes
    ----------
    df : pandas.DataFrame
        One row per sample (see the module docstring for the columns).
    classes : list of str
        Class names; ``df.label`` indexes this list.
    meta : dict
        ``ordinal``, ``source``, ``options`` and whatever else ingest recorded.
    path : Path or None
        Where it was read from / written to.
    """

    df: pd.DataFrame
    classes: List[str]
    meta: Dict[str, Any] = field(default_factory=dict)
    path: Optional[Path] = None

    def __post_init__(self):
        self.classes = [str(c) for c in self.classes]
        self.df = normalise_columns(self.df, self.classes)

    @property
    def ordinal(self) -> bool:
        return bool(self.meta.get("ordinal", False))

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def split(self, name: str) -> pd.DataFrame:
        """Rows of one split (``train`` / ``val`` / ``test``), index reset."""
        return self.df[self.df["split"] == name].reset_index(drop=True)

    def bbox(self, i: int):
        """The bbox of row ``i`` as a tuple, or None for the whole image."""
        return row_bbox(self.df.iloc[i])

    def __len__(self) -> int:
        return len(self.df)


def normalise_columns(df: pd.DataFrame, classes: Optional[List[str]] = None) -> pd.DataFrame:
    """Add missing standard columns with their defaults and put them first, typed (``df`` is not changed)."""
    df = df.copy(deep=False)  # columns are replaced, never written into: the caller's frame stays as it was
    n = len(df)
    for c in _STR_COLUMNS:
        if c not in df.columns:
            df[c] = "" if c != "split" else "train"
        df[c] = df[c].fillna("").astype(str)
    for c in BBOX_COLUMNS:
        if c not in df.columns:
            df[c] = np.nan
        df[c] = pd.to_numeric(df[c], errors="coerce").astype(float)
    if "label" not in df.columns:
        df["label"] = -1
    df["label"] = pd.to_numeric(df["label"], errors="coerce").fillna(-1).astype(int)
    if "fold" not in df.columns:
        df["fold"] = -1
    df["fold"] = pd.to_numeric(df["fold"], errors="coerce").fillna(-1).astype(int)
    if classes is not None and n:
        if (df["class_name"] == "").all():
            df["class_name"] = [classes[i] if 0 <= i < len(classes) else "" for i in df["label"]]
        if (df["raw_label"] == "").all():
            df["raw_label"] = df["class_name"]
    rest = [c for c in df.columns if c not in COLUMNS]
    return df[COLUMNS + rest].reset_index(drop=True)


def write_manifest(manifest: Manifest, path=None) -> Path:
    """Write the table (CSV / Parquet by extension) and its ``.meta.json`` sidecar, atomically."""
    path = Path(path if path is not None else manifest.path)
    if path is None:
        raise ValueError("write_manifest: no path given")
    df = normalise_columns(manifest.df, manifest.classes)
    if _is_parquet(path):
        with atomic_write(path, "wb") as f:
            df.to_parquet(f, index=False, row_group_size=PARQUET_ROW_GROUP)
    elif path.suffix.lower() in (".csv", ".tsv", ".txt", ""):
        sep = "\t" if path.suffix.lower() == ".tsv" else ","
        with atomic_write(path, "w", encoding="utf-8", newline="") as f:
            df.to_csv(f, index=False, sep=sep)
    else:
        raise ValueError(f"manifest {path}: use a .csv or .parquet file name (got '{path.suffix}')")
    meta = dict(manifest.meta)
    meta["classes"] = list(manifest.classes)
    meta.setdefault("ordinal", False)
    meta["rows"] = int(len(df))
    atomic_write_json(meta_path(path), meta)
    manifest.path = path
    return path


def read_manifest(path) -> Manifest:
    """Read a manifest written by :func:`write_manifest` (or any table with at least ``path``).

    Without a sidecar, classes are taken from ``class_name`` (numbers sorted as numbers), or from
    the labels.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"manifest {path} does not exist (make one with: skinage ingest SOURCE --out {path})")
    if _is_parquet(path):
        df = pd.read_parquet(path)
    else:
        sep = "\t" if path.suffix.lower() == ".tsv" else ","
        dtypes = {c: str for c in _STR_COLUMNS}
        df = pd.read_csv(path, sep=sep, dtype=dtypes, keep_default_na=True, low_memory=False)
        for c in _STR_COLUMNS:
            if c in df.columns:
                df[c] = df[c].fillna("")
    mp = meta_path(path)
    meta: Dict[str, Any] = json.loads(mp.read_text(encoding="utf-8")) if mp.exists() else {}
    classes = meta.get("classes")
    if classes is None:
        from .labels import sort_classes

        if "class_name" in df.columns and (df["class_name"].fillna("") != "").any():
            classes = sort_classes(df["class_name"].dropna().astype(str).unique())
            if "label" not in df.columns:
                df["label"] = df["class_name"].map({c: i for i, c in enumerate(classes)})
        else:
            labels = sorted(pd.to_numeric(df.get("label", pd.Series([], dtype=int))).dropna().astype(int).unique())
            classes = [str(i) for i in range(max(labels) + 1)] if labels else []
    return Manifest(df, list(classes), meta, path)
