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

import pandas as pd

from .labels import normalise_label
from .manifest import COLUMNS

__all__ = ["Record", "Rejects", "REJECT_COLUMNS", "records_frame"]

REJECT_COLUMNS = ["origin", "path", "reason", "detail", "raw_label", "subject"]

Box = Tuple[float, float, float, float]


@dataclass(slots=True)
class Record:
    """One image (and box) of a source, as read; the ingest steps fill in the rest.

    ``bbox`` is ``(x0, y0, x1, y1)`` in pixels of the upright image, or None for the whole image;
    ``origin`` says where in the source the row came from (file, or table and row number);
    ``meta`` holds the source's other fields (age, gender, ...); ``class_name`` is set by the label
    step and ``size`` (width, height) by the image check, when known.
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


def _row(r: Record, index: Dict[str, int]) -> Dict[str, Any]:
    b = r.bbox if r.bbox is not None else (math.nan,) * 4
    row = {"path": r.path, "label": index[r.class_name], "class_name": r.class_name,
           "raw_label": normalise_label(r.raw_label), "subject": str(r.subject).strip(),
           "view": str(r.view).strip(), "x0": b[0], "y0": b[1], "x1": b[2], "y1": b[3]}
    for k, v in r.meta.items():
        row[k if k not in COLUMNS else f"src_{k}"] = v  # a source field named like a manifest column
    return row


def records_frame(recs: Sequence[Record], classes: Sequence[str]) -> pd.DataFrame:
    """The manifest columns up to the box (path .. y1) plus the source's fields, one row per record.

    ``label`` is the position of the record's class in ``classes``; ``split`` and ``fold`` are added
    by :func:`skinage.data.splits.assign_splits`.
    """
    index = {c: i for i, c in enumerate(classes)}
    rows = [_row(r, index) for r in recs]
    df = pd.DataFrame(rows, columns=None if rows else COLUMNS[:10])
    for c in ("subject", "view"):
        if c not in df.columns:
            df[c] = ""
    return df
