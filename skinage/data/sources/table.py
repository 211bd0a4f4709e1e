"""Reader of a label table (CSV / TSV / Parquet, one row per image) -> one :class:`~skinage.data.records.Record` per row.

Columns are named by flags or found by common names (``path`` / ``file`` / ``image_name`` ...,
``label`` / ``grade`` ..., ``subject`` / ``id`` ..., ``view`` / ``angle``, ``x0..y1`` /
``bbox_x_min..`` / ``left, top, right, bottom``); every other column is kept as metadata (numbers
as numbers, ids with leading zeros as text). Relative paths start from the image root (default:
the table's folder); a path that is not there is looked for by its file name below the root.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import pandas as pd

from ...config import ConfigError, suggest
from ..labels import is_number, normalise_label
from ..records import Record, Rejects
from .files import image_index, resolve_by_name

__all__ = ["read_table", "read_table_file", "TABLE_EXTENSIONS"]

TABLE_EXTENSIONS = (".csv", ".tsv", ".txt", ".parquet", ".pq")

# column names looked for when no flag names them (case-insensitive, first wins)
_PATH_NAMES = ("path", "filepath", "file_path", "file", "filename", "file_name", "image_path", "image",
               "image_name", "img_path", "img")
_LABEL_NAMES = ("label", "class", "class_name", "grade", "target", "y")
_SUBJECT_NAMES = ("subject", "subject_id", "person", "person_id", "participant", "participant_id",
                  "patient", "patient_id", "id")
_VIEW_NAMES = ("view", "angle", "pose")
_BBOX_NAMES = (
    ("x0", "y0", "x1", "y1"),
    ("bbox_x_min", "bbox_y_min", "bbox_x_max", "bbox_y_max"),
    ("xmin", "ymin", "xmax", "ymax"),
    ("x_min", "y_min", "x_max", "y_max"),
    ("left", "top", "right", "bottom"),
)


def read_table_file(path: Path) -> pd.DataFrame:
    """Every cell of a CSV / TSV / Parquet table as text ('' for empty); CSV in UTF-8 or cp949."""
    suf = path.suffix.lower()
    if suf in (".parquet", ".pq"):
        df = pd.read_parquet(path)
        return df.astype(object).where(df.notna(), "").astype(str)
    sep = "\t" if suf == ".tsv" else None
    engine = "python" if sep is None else "c"
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False, sep=sep, engine=engine, encoding="utf-8-sig")
    except UnicodeDecodeError:
        return pd.read_csv(path, dtype=str, keep_default_na=False, sep=sep, engine=engine, encoding="cp949")


def _pick_col(df: pd.DataFrame, given: str, names: Sequence[str], flag: str, required: bool) -> Optional[str]:
    cols = list(df.columns)
    if given:
        if given in cols:
            return given
        low = {c.lower(): c for c in cols}
        if given.lower() in low:
            return low[given.lower()]
        raise ConfigError(f"{flag} {given!r}: no such column{suggest(given, cols)}; columns: {', '.join(map(str, cols))}")
    low = {str(c).lower(): c for c in cols}
    for n in names:
        if n in low:
            return low[n]
    if required:
        raise ConfigError(f"cannot find the {flag[2:].replace('-col', '')} column; name it with {flag} "
                          f"(columns: {', '.join(map(str, cols))})")
    return None


def _maybe_numeric(s: pd.Series) -> pd.Series:
    vals = s.astype(str)
    nonempty = vals[vals != ""]
    if len(nonempty) == 0 or not nonempty.map(is_number).all():
        return s
    if nonempty.str.match(r"^0\d").any():  # ids with leading zeros stay text
        return s
    num = pd.to_numeric(vals.where(vals != "", None), errors="coerce")
    if num.dropna().map(lambda v: float(v).is_integer()).all():
        return num.astype("Int64")
    return num


@dataclass
class _Columns:
    """The table's columns used for each field (None: absent)."""

    path: str
    label: str
    subject: Optional[str]
    view: Optional[str]
    bbox: Optional[Tuple[str, ...]]
    facepart: Optional[str]

    def mapping(self) -> Dict[str, Any]:
        return {"path": self.path, "label": self.label, "subject": self.subject, "view": self.view,
                "bbox": list(self.bbox) if self.bbox else None, "facepart": self.facepart}


def _bbox_cols(df: pd.DataFrame, given: Sequence[str]) -> Optional[Tuple[str, ...]]:
    if given:
        if len(given) != 4:
            raise ConfigError(f"--bbox-cols needs four columns x0,y0,x1,y1, got {len(given)}")
        return tuple(_pick_col(df, c, (), "--bbox-cols", True) for c in given)
    low = {str(c).lower(): c for c in df.columns}
    for names in _BBOX_NAMES:
        if all(n in low for n in names):
            return tuple(low[n] for n in names)
    return None


def _columns(df: pd.DataFrame, path_col: str, label: str, subject_col: str, view_col: str,
             bbox_cols: Sequence[str], facepart: Optional[int]) -> _Columns:
    cols = _Columns(path=_pick_col(df, path_col, _PATH_NAMES, "--path-col", True),
                    label=_pick_col(df, label, _LABEL_NAMES, "--label", True),
                    subject=_pick_col(df, subject_col, _SUBJECT_NAMES, "--subject-col", False),
                    view=_pick_col(df, view_col, _VIEW_NAMES, "--view-col", False),
                    bbox=_bbox_cols(df, bbox_cols), facepart=None)
    if facepart is not None:
        cols.facepart = _pick_col(df, "", ("facepart", "face_part", "part"), "--facepart", False)
        if cols.facepart is None:
            raise ConfigError("--facepart: the table has no facepart column")
    return cols


def _meta_rows(df: pd.DataFrame, cols: _Columns) -> List[dict]:
    """Per row, the cells of every column not used for a field (numbers as numbers, empty as None)."""
    index_cols = [c for c in df.columns if str(c).startswith("Unnamed:") or str(c) == ""]
    used = {cols.path, cols.subject, cols.view, *(cols.bbox or ()), *index_cols}
    meta_cols = [c for c in df.columns if c not in used and c is not None]
    if not meta_cols:
        return [{}] * len(df)
    meta_df = pd.DataFrame({c: _maybe_numeric(df[c]) for c in meta_cols})
    return meta_df.astype(object).where(meta_df.notna(), None).to_dict("records")


class _Rows:
    """Turns the rows of one table into records."""

    def __init__(self, path: Path, cols: _Columns, root: Path, facepart: Optional[int], labels_only: bool,
                 rej: Rejects):
        self.path, self.cols, self.root, self.facepart, self.labels_only, self.rej = (
            path, cols, root, facepart, labels_only, rej)
        self.idx: Optional[Dict[str, List[Path]]] = None  # built at the first path that is not there

    def image(self, rel: str) -> Path:
        p = Path(rel)
        full = p if p.is_absolute() else self.root / p
        if not self.labels_only and not full.is_file():
            if self.idx is None:
                self.idx = image_index(self.root) if self.root.is_dir() else {}
            alt = resolve_by_name(rel, None, self.idx)
            if alt is not None:
                full = alt
        return full

    def bbox(self, r: dict, origin: str, full: Path, raw, subj: str):
        """The row's box, None for the whole image, or False when set aside."""
        vals = [str(r[c]).strip() for c in self.cols.bbox]
        if all(v == "" or v.lower() == "nan" for v in vals):
            return None
        if not all(is_number(v) for v in vals):
            self.rej.add(origin, full, "bad bbox", f"bbox cells {vals}", normalise_label(raw), subj)
            return False
        return tuple(float(v) for v in vals)

    def record(self, i: int, r: dict, meta: dict) -> Optional[Record]:
        c = self.cols
        origin = f"{self.path.name}:row {i + 2}"  # 1-based, after the header line
        rel = str(r[c.path]).strip()
        raw = r[c.label]
        subj = str(r[c.subject]).strip() if c.subject else ""
        if c.facepart is not None:
            fp = r[c.facepart]
            if not is_number(fp) or int(float(fp)) != int(self.facepart):
                self.rej.add(origin, rel, "other facepart", f"facepart {fp!r} != {self.facepart}",
                             normalise_label(raw), subj)
                return None
        if rel == "":
            self.rej.add(origin, "", "missing path", f"empty '{c.path}' cell", normalise_label(raw), subj)
            return None
        full = self.image(rel)
        bbox = self.bbox(r, origin, full, raw, subj) if c.bbox else None
        if bbox is False:
            return None
        return Record.of(Path(os.path.abspath(full)), raw, r[c.subject] if c.subject else "",
                         r[c.view] if c.view else "", bbox, origin, **meta)


def read_table(path: Path, rej: Rejects, *, path_col: str = "", label: str = "", subject_col: str = "",
               view_col: str = "", bbox_cols: Sequence[str] = (), facepart: Optional[int] = None,
               image_root: str = "", labels_only: bool = False) -> Tuple[List[Record], Dict[str, Any]]:
    """The records of a table's rows, and the columns used for each field.

    The keywords are ``skinage ingest``'s flags of the same names (an empty name: found by itself).
    """
    df = read_table_file(path)
    if df.empty:
        raise ConfigError(f"table {path} has no rows")
    cols = _columns(df, path_col, label, subject_col, view_col, bbox_cols, facepart)
    rows = _Rows(path, cols, Path(image_root) if image_root else path.parent, facepart, labels_only, rej)
    meta_rows = _meta_rows(df, cols)
    recs = []
    for i, row in enumerate(df.itertuples(index=False)):
        rec = rows.record(i, dict(zip(df.columns, row)), meta_rows[i])
        if rec is not None:
            recs.append(rec)
    return recs, cols.mapping()
