"""The rows of ``skinage ingest`` on their way to a manifest: :class:`Record` and :class:`Rejects`.

A source reader turns each image it finds into one :class:`Record`; the ingest steps then fill in
or check its fields one at a time (class name, image size, box, subject) and either keep it or hand
it to :class:`Rejects` with the reason. :func:`records_frame` makes the manifest table of the kept
ones. A record holds only what the manifest row needs, so ingest's memory grows with the rows kept,
not with the images' pixels.

>>> rej = Rejects()
>>> r = Record.of("/data/a.jpg", "3", subject="0001", origin="labels.csv:row 2", age=40)
>>> r.meta
{'age': 40}
>>> rej.reject(r, "label outside remap", "raw label '3'")
>>> rej.frame()[["path", "reason", "subject"]].values.tolist()
[['/data/a.jpg', 'label outside remap', '0001']]
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from .labels import normalise_label
from .manifest import BBOX_COLUMNS as BBOX, COLUMNS

__all__ = ["Record", "Rejects", "REJECT_COLUMNS", "records_frame"]

REJECT_COLUMNS = ["origin", "path", "reason", "detail", "raw_label", "subject"]

Box = Tuple[float, float, float, float]


@dataclass(slots=True)
class Record:
    """One image (and box) of a source, as read; the ingest steps fill in the rest.

    ``bbox`` is ``(x0, y0, x1, y1)`` in pixels of the upright image, or None for the whole image;
    ``origin`` says where in the source the row came from (file, or table and row number);
    ``meta`` holds the source's other fields (age, gender, ...); ``class_name`` is set by the label
    step and ``size`` (width, height) by the image check, when known; the manifest's ``width`` /
    ``height`` columns are the source's, else ``size``.
    """

    path: str
    raw_label: Any
    subject: str = ""
    view: str = ""
    bbox: Optional[Box] = None
    origin: str = ""
    meta: Dict[str, Any] = field(default_factory=dict)
    class_name: str = ""
    size: Optional[Tuple[float, float]] = None

    @classmethod
    def of(cls, path, raw_label, subject="", view="", bbox=None, origin="", **meta) -> "Record":
        """A record with the path, subject, view and origin as text (None -> "")."""
        return cls(str(path), raw_label, "" if subject is None else str(subject), "" if view is None else str(view),
                   bbox, str(origin), meta)


class Rejects:
    """Rows set aside, each with its reason; written to ``<manifest stem>.rejected.csv``."""

    def __init__(self):
        self.rows: List[Dict[str, Any]] = []

    def __len__(self) -> int:
        return len(self.rows)

    def add(self, origin, path, reason: str, detail: str = "", raw_label: str = "", subject: str = ""):
        """Set aside a row that never became a :class:`Record` (e.g. an unreadable label file)."""
        self.rows.append({"origin": str(origin), "path": "" if path is None else str(path), "reason": reason,
                          "detail": detail, "raw_label": raw_label, "subject": "" if subject is None else str(subject)})

    def reject(self, rec: Record, reason: str, detail: str = ""):
        """Set aside a record."""
        self.add(rec.origin, rec.path, reason, detail, normalise_label(rec.raw_label), rec.subject)

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=REJECT_COLUMNS)


def records_frame(recs: Sequence[Record], classes: Sequence[str]) -> pd.DataFrame:
    """The manifest columns up to the box (path .. y1) plus the source's fields, one row per record.

    ``label`` is the position of the record's class in ``classes``; ``split`` and ``fold`` are added
    by :func:`skinage.data.splits.assign_splits`. A source field named like a manifest column is
    renamed ``src_<name>``; ``width`` and ``height`` are the record's ``size`` where the source gave
    none (after the source's fields); fields only some records have are NaN in the others, and each
    field's type is inferred as ``pd.DataFrame(list of row dicts)`` would. Built one column at a time (the source's
    fields from one tuple per row), never one dict per row: a fifth of the memory at 100,000 rows.

    >>> recs = [Record.of("/d/a.jpg", "3", subject="7", age=40), Record.of("/d/b.jpg", 4, bbox=(1, 2, 3, 4))]
    >>> recs[0].class_name, recs[1].class_name = "3", "4"
    >>> records_frame(recs, ["3", "4"])[["label", "subject", "x0", "age"]].values.tolist()
    [[0, '7', nan, 40.0], [1, '', 1.0, nan]]
    """
    if not recs:
        return pd.DataFrame([], columns=COLUMNS[:10])
    index = {c: i for i, c in enumerate(classes)}
    df = pd.DataFrame({
        "path": [r.path for r in recs],
        "label": [index[r.class_name] for r in recs],
        "class_name": [r.class_name for r in recs],
        "raw_label": [normalise_label(r.raw_label) for r in recs],
        "subject": [str(r.subject).strip() for r in recs],
        "view": [str(r.view).strip() for r in recs],
    })
    for j, c in enumerate(BBOX):
        df[c] = np.array([math.nan if r.bbox is None else float(r.bbox[j]) for r in recs], dtype=float)
    meta = _meta_frame(recs)
    if meta is not None:
        df = pd.concat([df, meta], axis=1)
    return df


def _meta_frame(recs: Sequence[Record]) -> Optional[pd.DataFrame]:
    """The source's fields (and width / height), in order of first appearance, typed as from a list of row dicts.

    None when there are none.
    """
    n = len(recs)
    cols: Dict[str, list] = {}

    def put(name, i, v):
        col = cols.get(name)
        if col is None:
            col = cols[name] = [math.nan] * n
        col[i] = v

    for i, r in enumerate(recs):
        for k, v in r.meta.items():
            put(k if k not in COLUMNS else f"src_{k}", i, v)  # a source field named like a manifest column
        if r.size is not None:  # the image's size where the source gave none
            if "width" not in r.meta:
                put("width", i, r.size[0])
            if "height" not in r.meta:
                put("height", i, r.size[1])
    if not cols:
        return None
    names = list(cols)
    rows = list(zip(*cols.values()))  # a list of tuples is typed column by column as a list of dicts is
    cols.clear()
    return pd.DataFrame(rows, columns=names)
