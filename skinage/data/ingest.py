"""``skinage ingest SOURCE --out MANIFEST``: datasets as people have them -> one manifest.

Three source formats (found automatically; ``--format`` to force one):

``folder``
    ``ROOT/<class>/*.jpg|jpeg|png|bmp|webp`` (sub-folders of a class are searched too). Class
    names that are numbers sort as numbers (``9 < 10 < 20``).
``aihub-json``
    A tree holding one JSON label file per image and face part (the AI-Hub skin-condition
    layout): sections ``info`` / ``images`` / ``annotations``; ``--label
    annotations.forehead_wrinkle`` picks the label (a key is also looked for in every section);
    ``--facepart 1`` keeps one face part; the image is ``info.filename`` or, from the name
    pattern, ``<id>_<device>_<angle>_<part>.json`` -> ``<id>_<device>_<angle>.jpg``, searched
    beside the JSON and anywhere below SOURCE. Subject id and angle come from the label (or the
    name); ``images.bbox`` ``[x0, y0, x1, y1]`` or null (= whole image, counted).
``table``
    A CSV / TSV / Parquet table with one row per image; ``--path-col``, ``--label``,
    ``--subject-col``, ``--view-col``, ``--bbox-cols`` map its columns (common names are found
    by themselves); relative paths are taken from ``--image-root`` (default: the table's
    folder). ``--labels-only`` accepts rows whose image is absent.

Every row that cannot be used is written with its reason to ``<MANIFEST stem>.rejected.csv``
and counted in the printed summary; nothing is dropped silently. Splits are person-grouped and
label-stratified (see :mod:`skinage.data.splits`).

>>> import tempfile, os
>>> from PIL import Image
>>> d = tempfile.mkdtemp()
>>> for cls in ("10", "9"):
...     os.makedirs(os.path.join(d, "src", cls))
...     for i in range(4):
...         Image.new("RGB", (20, 20), (int(cls) * 10, 0, 0)).save(os.path.join(d, "src", cls, f"{i}.png"))
>>> res = ingest(os.path.join(d, "src"), out=os.path.join(d, "m.csv"), quiet=True)
>>> res.manifest.classes, len(res.manifest.df), len(res.rejected)
(['9', '10'], 8, 0)
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from ..config import (ConfigError, Seeded, add_config_arguments, build_config, config_from_args,
                     config_to_dict, suggest)
from ..utils import atomic_write, say
from .images import IMAGE_EXTENSIONS, ImageError, expand_box, probe_image
from .labels import LabelMapper, is_number, normalise_label, sort_classes
from .manifest import BBOX_COLUMNS, COLUMNS, Manifest, write_manifest
from .splits import assign_splits

__all__ = ["IngestConfig", "IngestResult", "ingest", "run_ingest", "detect_format", "add_arguments", "run"]

FORMATS = ("auto", "folder", "aihub-json", "table")
TABLE_EXTENSIONS = (".csv", ".tsv", ".txt", ".parquet", ".pq")
_SYSTEM_FILES = {".ds_store", "thumbs.db", "desktop.ini"}

# column names looked for in a table when no flag names them (case-insensitive, first wins)
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


@dataclass
class IngestConfig(Seeded):
    """Options of ``skinage ingest`` (the fields are the flags and the API keywords)."""

    source: str = field(default="", metadata={
        "positional": True,
        "help": "dataset: a folder of class folders, a tree of AI-Hub JSON label files, or a label table (.csv/.parquet)"})
    out: str = field(default="", metadata={"help": "manifest to write (.csv or .parquet); rejected rows go to <stem>.rejected.csv"})
    format: str = field(default="auto", metadata={"choices": FORMATS, "help": "source format; auto detects it"})
    label: str = field(default="", metadata={
        "help": "label key (JSON, dotted, e.g. annotations.forehead_wrinkle) or column (table)"})
    facepart: Optional[int] = field(default=None, metadata={
        "help": "keep only this face part (AI-Hub: 0 whole face, 1 forehead, ...); others are set aside as 'other facepart'"})
    remap: str = field(default="", metadata={
        "help": "merge raw labels into classes: \"0,1:0 2,3:1 4:2 5,6:3\" (groups RAW,RAW:CLASS; unlisted labels are rejected)"})
    bins: str = field(default="", metadata={
        "help": "bin numeric labels such as ages: a width (\"10\": decades named 20, 30, ...) or edges "
                "(\"18,25,30,40,inf\": 18-24, 25-29, 30-39, 40+); an open first bin needs '=': --bins=-inf,25,30,inf"})
    ordinal: Optional[bool] = field(default=None, metadata={
        "help": "classes are ordered levels (default: yes when all class names are numbers or --bins is used)"})
    path_col: str = field(default="", metadata={"help": "table column with the image path (default: path, file, image_name, ...)"})
    subject_col: str = field(default="", metadata={"help": "table column with the person id (default: subject, subject_id, id, ...)"})
    view_col: str = field(default="", metadata={"help": "table column with the view / angle (default: view, angle, pose)"})
    bbox_cols: Tuple[str, ...] = field(default=(), metadata={
        "type": "strs", "help": "four table columns x0,y0,x1,y1 of the bbox in pixels (default: x0.. or bbox_x_min.. if present)"})
    image_root: str = field(default="", metadata={"help": "folder that relative image paths of a table start from (default: the table's folder)"})
    labels_only: bool = field(default=False, metadata={
        "help": "accept rows whose image is absent and do not open images (label-only analysis and baselines)"})
    subject_regex: str = field(default="", metadata={
        "help": "regular expression on the file name whose first group is the person id, for sources without one (e.g. '^(\\d+)_')"})
    split_by: str = field(default="subject", metadata={
        "help": "group column for the splits: subject (default) or image (leaky when people have several images)"})
    val: float = field(default=0.15, metadata={"help": "validation fraction"})
    test: float = field(default=0.15, metadata={"help": "test fraction"})
    folds: int = field(default=0, metadata={"help": "K > 1: also deal the non-test rows into K person-grouped folds (column fold)"})
    check_images: bool = field(default=True, metadata={
        "help": "decode every image once (cheaply) to set aside corrupt, truncated and non-image files"})
    workers: int = field(default=2, metadata={"help": "threads for checking images"})
    quiet: bool = field(default=False, metadata={"help": "print no summary or progress bar"})


@dataclass
class IngestResult:
    """What :func:`ingest` made: the manifest, the set-aside rows and the printed summary."""

    manifest: Manifest
    rejected: pd.DataFrame
    summary: str
    out: Path
    rejected_path: Path

    def __len__(self) -> int:
        return len(self.manifest.df)


class _Rejects:
    def __init__(self):
        self.rows: List[Dict[str, Any]] = []

    def add(self, origin, path, reason: str, detail: str = "", raw_label: str = "", subject: str = ""):
        self.rows.append({"origin": str(origin), "path": "" if path is None else str(path), "reason": reason,
                          "detail": detail, "raw_label": raw_label, "subject": "" if subject is None else str(subject)})

    def reject(self, rec: Dict[str, Any], reason: str, detail: str = ""):
        self.add(rec["origin"], rec["path"], reason, detail, normalise_label(rec["raw_label"]), rec.get("subject", ""))

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=["origin", "path", "reason", "detail", "raw_label", "subject"])


# --------------------------------------------------------------------------- format detection


def _is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def _class_dirs(root: Path) -> List[Path]:
    out = []
    for d in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if any(_is_image_name(f.name) for f in d.rglob("*") if f.is_file()):
            out.append(d)
    return out


def detect_format(source) -> str:
    """``folder``, ``aihub-json`` or ``table`` for a source path (raises ConfigError if unclear)."""
    src = Path(source)
    if not src.exists():
        raise FileNotFoundError(f"source {src} does not exist")
    if src.is_file():
        if src.suffix.lower() in TABLE_EXTENSIONS:
            return "table"
        raise ConfigError(f"{src}: a file source must be a table (.csv, .tsv, .parquet); give a folder for images")
    if next(src.rglob("*.json"), None) is not None:
        return "aihub-json"
    n_class = len(_class_dirs(src))
    tables = [p for p in src.iterdir() if p.is_file() and p.suffix.lower() in TABLE_EXTENSIONS]
    if n_class >= 2 or (n_class == 1 and not tables):
        return "folder"
    if len(tables) == 1:  # e.g. labels.csv beside one images/ folder
        return "table"
    raise ConfigError(
        f"cannot tell the format of {src}: no class folders with images, no JSON label files, "
        f"{len(tables)} tables; pass the table itself or --format folder|aihub-json|table"
    )


# --------------------------------------------------------------------------- readers -> records


def _record(path, raw_label, subject="", view="", bbox=None, origin="", **meta) -> Dict[str, Any]:
    return {"path": str(path), "raw_label": raw_label, "subject": "" if subject is None else str(subject),
            "view": "" if view is None else str(view), "bbox": bbox, "origin": str(origin), "meta": meta}


def _read_folder(cfg: IngestConfig, root: Path, rej: _Rejects, notes: List[str]) -> List[Dict[str, Any]]:
    recs = []
    dirs = _class_dirs(root)
    if not dirs:
        raise ConfigError(f"{root}: no class folders with images (expected ROOT/<class>/*.jpg)")
    top = sorted(p.name for p in root.iterdir() if p.is_file())
    if top:
        notes.append(f"files directly in the source folder were not read (not in a class folder): {', '.join(top[:6])}"
                     + (" ..." if len(top) > 6 else ""))
    skipped_system = 0
    for d in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if d not in dirs:
            notes.append(f"folder {d.name}/ holds no images and is not a class")
            continue
        for f in sorted(d.rglob("*")):
            if not f.is_file():
                continue
            if f.name.lower() in _SYSTEM_FILES or f.name.startswith("._"):
                skipped_system += 1
                continue
            if not _is_image_name(f.name):
                rej.add(f, f, "non-image", f"extension '{f.suffix or '(none)'}' in class folder {d.name}/", d.name)
                continue
            recs.append(_record(f.resolve(), d.name, origin=f.relative_to(root)))
    if skipped_system:
        notes.append(f"{skipped_system} system file(s) (.DS_Store, Thumbs.db, ._*) skipped")
    return recs


def _image_index(root: Path) -> Dict[str, List[Path]]:
    idx: Dict[str, List[Path]] = defaultdict(list)
    for f in root.rglob("*"):
        if f.is_file() and _is_image_name(f.name):
            idx[f.name.lower()].append(f)
    return idx


def _resolve_by_name(name: str, near: Optional[Path], idx: Dict[str, List[Path]]) -> Optional[Path]:
    base = os.path.basename(name.replace("\\", "/"))
    if near is not None:
        cand = near / base
        if cand.is_file():
            return cand
    hits = idx.get(base.lower(), [])
    if len(hits) == 1:
        return hits[0]
    if len(hits) > 1 and near is not None:
        # the one sharing the longest path prefix with the label file
        return max(hits, key=lambda p: len(os.path.commonpath([str(p), str(near)])))
    return hits[0] if hits else None


_MISSING = object()


def _lookup(obj: Any, key: str):
    """Value of a dotted key; if absent, the last part searched in every section (depth <= 3)."""
    if not key:
        return _MISSING
    cur = obj
    ok = True
    for part in key.split("."):
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        else:
            ok = False
            break
    if ok:
        return cur
    last = key.split(".")[-1]

    def search(o, depth):
        if depth > 3 or not isinstance(o, dict):
            return _MISSING
        if last in o:
            return o[last]
        for v in o.values():
            if isinstance(v, dict):
                r = search(v, depth + 1)
                if r is not _MISSING:
                    return r
        return _MISSING

    return search(obj, 0)


def _all_keys(obj: Any, prefix: str = "", depth: int = 0) -> List[str]:
    out = []
    if isinstance(obj, dict) and depth <= 3:
        for k, v in obj.items():
            out.append(prefix + str(k))
            out.extend(_all_keys(v, prefix + str(k) + ".", depth + 1))
    return out


def _first(obj, keys) -> Any:
    for k in keys:
        v = _lookup(obj, k)
        if v is not _MISSING and v is not None and v != "":
            return v
    return _MISSING


def _bbox_from(value, origin, rej_detail: List[str]):
    """A 4-tuple of floats, None (whole image), or raise ValueError."""
    if value is _MISSING or value is None:
        return None
    if isinstance(value, dict):
        keys = [("x_min", "y_min", "x_max", "y_max"), ("x0", "y0", "x1", "y1"), ("xmin", "ymin", "xmax", "ymax")]
        for ks in keys:
            if all(k in value for k in ks):
                value = [value[k] for k in ks]
                break
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, (list, tuple)) for v in value):
        value = [value[0][0], value[0][1], value[1][0], value[1][1]]
    if not isinstance(value, (list, tuple)) or len(value) != 4:
        raise ValueError(f"bbox {value!r} is not [x0, y0, x1, y1]")
    vals = []
    for v in value:
        if not is_number(v):
            raise ValueError(f"bbox {value!r} has a non-number")
        vals.append(float(v))
    return tuple(vals)


def _read_aihub(cfg: IngestConfig, root: Path, rej: _Rejects, notes: List[str], counters: Counter) -> List[Dict[str, Any]]:
    if not cfg.label:
        sample = next(root.rglob("*.json"), None)
        keys = []
        if sample is not None:
            try:
                keys = [k for k in _all_keys(json.loads(sample.read_text(encoding="utf-8-sig")))
                        if k.startswith("annotations.")]
            except Exception:
                pass
        raise ConfigError("AI-Hub JSON source: give the label key with --label, e.g. --label annotations.forehead_wrinkle"
                          + (f" (keys in {sample.name}: {', '.join(keys[:12])})" if keys else ""))
    files = sorted(root.rglob("*.json"))
    idx = _image_index(root)
    recs = []
    label_key_seen = False
    all_keys_seen: set = set()
    for jf in files:
        origin = jf.relative_to(root)
        try:
            raw_bytes = jf.read_bytes()
            try:
                text = raw_bytes.decode("utf-8-sig")
            except UnicodeDecodeError:
                text = raw_bytes.decode("cp949")  # Korean Windows tools write this
            obj = json.loads(text)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            rej.add(origin, "", "corrupt label file", f"{type(e).__name__}: {e}")
            continue
        except OSError as e:
            rej.add(origin, "", "corrupt label file", str(e))
            continue
        if not isinstance(obj, dict):
            rej.add(origin, "", "corrupt label file", "the JSON is not an object with sections")
            continue
        if len(all_keys_seen) < 500:
            all_keys_seen.update(_all_keys(obj))
        parts = jf.stem.split("_")
        named = len(parts) >= 4
        subject = _first(obj, ["info.id", "id", "subject_id", "subject"])
        if subject is _MISSING:
            subject = parts[0] if named else ""
        subject = str(subject)
        # face part
        if cfg.facepart is not None:
            fp = _first(obj, ["images.facepart", "facepart"])
            if fp is _MISSING and named:
                fp = parts[-1]
            if fp is _MISSING or not is_number(fp):
                rej.add(origin, "", "missing label key", "facepart (needed for --facepart)", subject=subject)
                continue
            if int(float(fp)) != int(cfg.facepart):
                rej.add(origin, "", "other facepart", f"facepart {fp} != {cfg.facepart}", subject=subject)
                continue
        # image
        fname = _first(obj, ["info.filename", "filename", "file_name", "image_name", "info.file_name"])
        img: Optional[Path] = None
        if fname is not _MISSING:
            img = _resolve_by_name(str(fname), jf.parent, idx)
        if img is None and named:
            stem = "_".join(parts[:-1])
            for ext in IMAGE_EXTENSIONS:
                img = _resolve_by_name(stem + ext, jf.parent, idx)
                if img is not None:
                    break
        expected = img
        if expected is None:
            guess = str(fname) if fname is not _MISSING else ("_".join(parts[:-1]) + ".jpg" if named else jf.stem + ".jpg")
            expected = jf.parent / os.path.basename(guess)
        # label
        val = _lookup(obj, cfg.label)
        if val is _MISSING:
            rej.add(origin, expected, "missing label key", f"no key '{cfg.label}' in the label file", subject=subject)
            continue
        label_key_seen = True
        if isinstance(val, (dict, list)):
            rej.add(origin, expected, "bad label", f"'{cfg.label}' holds a {type(val).__name__}, not a value",
                    subject=subject)
            continue
        view = _first(obj, ["info.angle", "angle", "view"])
        if view is _MISSING:
            view = parts[2] if named else ""
        try:
            bbox = _bbox_from(_lookup(obj, "images.bbox"), origin, [])
        except ValueError as e:
            rej.add(origin, expected, "bad bbox", str(e), normalise_label(val), subject)
            continue
        meta = {"label_file": str(jf.resolve())}
        for k in ("gender", "age"):
            v = _first(obj, [f"info.{k}", k])
            if v is not _MISSING and not isinstance(v, (dict, list)):
                meta[k] = v
        if named:
            meta["device"] = parts[1]
        if img is None:
            if not cfg.labels_only:
                rej.add(origin, expected, "missing file",
                        f"image {expected.name} not found beside the label file or below the source", normalise_label(val),
                        subject)
                continue
            img = expected
        recs.append(_record(Path(img).resolve(), val, subject, view, bbox, origin, **meta))
    if files and not label_key_seen:
        close = [k for k in all_keys_seen if k.split(".")[-1] == cfg.label.split(".")[-1]]
        hint = suggest(cfg.label, sorted(all_keys_seen))
        raise ConfigError(f"--label {cfg.label!r}: no label file has this key{hint}"
                          + (f"; found {close[0]!r}" if close else ""))
    return recs


def _read_table_file(path: Path) -> pd.DataFrame:
    suf = path.suffix.lower()
    if suf in (".parquet", ".pq"):
        df = pd.read_parquet(path)
        return df.astype(object).where(df.notna(), "").astype(str)
    sep = "\t" if suf == ".tsv" else None
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False, sep=sep, engine="python" if sep is None else "c",
                           encoding="utf-8-sig")
    except UnicodeDecodeError:
        return pd.read_csv(path, dtype=str, keep_default_na=False, sep=sep, engine="python" if sep is None else "c",
                           encoding="cp949")


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
        raise ConfigError(f"cannot find the {flag[2:].replace('-col', '')} column; name it with {flag} (columns: {', '.join(map(str, cols))})")
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


def _read_table(cfg: IngestConfig, path: Path, rej: _Rejects, notes: List[str], counters: Counter,
                mapping: Dict[str, Any]) -> List[Dict[str, Any]]:
    df = _read_table_file(path)
    if df.empty:
        raise ConfigError(f"table {path} has no rows")
    index_cols = [c for c in df.columns if str(c).startswith("Unnamed:") or str(c) == ""]
    pcol = _pick_col(df, cfg.path_col, _PATH_NAMES, "--path-col", True)
    lcol = _pick_col(df, cfg.label, _LABEL_NAMES, "--label", True)
    scol = _pick_col(df, cfg.subject_col, _SUBJECT_NAMES, "--subject-col", False)
    vcol = _pick_col(df, cfg.view_col, _VIEW_NAMES, "--view-col", False)
    bcols: Optional[Tuple[str, ...]] = None
    if cfg.bbox_cols:
        if len(cfg.bbox_cols) != 4:
            raise ConfigError(f"--bbox-cols needs four columns x0,y0,x1,y1, got {len(cfg.bbox_cols)}")
        bcols = tuple(_pick_col(df, c, (), "--bbox-cols", True) for c in cfg.bbox_cols)
    else:
        low = {str(c).lower(): c for c in df.columns}
        for names in _BBOX_NAMES:
            if all(n in low for n in names):
                bcols = tuple(low[n] for n in names)
                break
    fcol = None
    if cfg.facepart is not None:
        fcol = _pick_col(df, "", ("facepart", "face_part", "part"), "--facepart", False)
        if fcol is None:
            raise ConfigError("--facepart: the table has no facepart column")
    mapping.update({"path": pcol, "label": lcol, "subject": scol, "view": vcol,
                    "bbox": list(bcols) if bcols else None, "facepart": fcol})
    root = Path(cfg.image_root) if cfg.image_root else path.parent
    idx: Optional[Dict[str, List[Path]]] = None
    used = {pcol, scol, vcol, *(bcols or ()), *index_cols}
    meta_cols = [c for c in df.columns if c not in used and c is not None]
    meta_df = pd.DataFrame({c: _maybe_numeric(df[c]) for c in meta_cols})
    meta_rows = meta_df.astype(object).where(meta_df.notna(), None).to_dict("records") if meta_cols else [{}] * len(df)
    recs = []
    for i, row in enumerate(df.itertuples(index=False)):
        r = dict(zip(df.columns, row))
        origin = f"{path.name}:row {i + 2}"  # 1-based, after the header line
        rel = str(r[pcol]).strip()
        raw = r[lcol]
        subj = str(r[scol]).strip() if scol else ""
        if fcol is not None:
            fp = r[fcol]
            if not is_number(fp) or int(float(fp)) != int(cfg.facepart):
                rej.add(origin, rel, "other facepart", f"facepart {fp!r} != {cfg.facepart}", normalise_label(raw), subj)
                continue
        if rel == "":
            rej.add(origin, "", "missing path", f"empty '{pcol}' cell", normalise_label(raw), subj)
            continue
        p = Path(rel)
        full = p if p.is_absolute() else root / p
        if not cfg.labels_only and not full.is_file():
            if idx is None:
                idx = _image_index(root) if root.is_dir() else {}
            alt = _resolve_by_name(rel, None, idx)
            if alt is not None:
                full = alt
        bbox = None
        if bcols:
            vals = [str(r[c]).strip() for c in bcols]
            if all(v == "" or v.lower() == "nan" for v in vals):
                bbox = None
            elif not all(is_number(v) for v in vals):
                rej.add(origin, full, "bad bbox", f"bbox cells {vals}", normalise_label(raw), subj)
                continue
            else:
                bbox = tuple(float(v) for v in vals)
        meta = meta_rows[i]
        recs.append(_record(Path(os.path.abspath(full)), raw, r[scol] if scol else "", r[vcol] if vcol else "",
                            bbox, origin, **meta))
    return recs


# --------------------------------------------------------------------------- checks


def _check_images(paths: List[str], workers: int, quiet: bool) -> Dict[str, Any]:
    """path -> ImageInfo or ImageError, decoding each file once (threads; Pillow drops the GIL)."""
    from tqdm import tqdm

    def one(p):
        try:
            return p, probe_image(p)
        except ImageError as e:
            return p, e
        except Exception as e:  # never let one odd file stop the run
            return p, ImageError("corrupt", f"{type(e).__name__}: {e}", p)

    out: Dict[str, Any] = {}
    bar = tqdm(total=len(paths), desc="checking images", unit="img", disable=quiet or not paths,
               file=sys.stderr, dynamic_ncols=True)
    with ThreadPoolExecutor(max_workers=max(1, int(workers))) as ex:
        for p, res in ex.map(one, paths):
            out[p] = res
            bar.update(1)
    bar.close()
    return out


def _bbox_check(bbox, size) -> Tuple[Optional[tuple], Optional[str], str]:
    """(bbox to keep, reject reason or None, note: '' / 'clamped')."""
    if bbox is None:
        return None, None, ""
    x0, y0, x1, y1 = bbox
    if x1 < x0 or y1 < y0:
        return None, "bbox inverted", f"{bbox}"
    if x1 == x0 or y1 == y0:
        return None, "bbox zero-area", f"{bbox}"
    if size is None:
        if min(bbox) < 0:
            return None, "bbox outside image", f"{bbox} has negative coordinates"
        return bbox, None, ""
    W, H = size
    cx0, cy0, cx1, cy1 = max(0.0, x0), max(0.0, y0), min(float(W), x1), min(float(H), y1)
    if cx1 <= cx0 or cy1 <= cy0:
        return None, "bbox outside image", f"{bbox} vs image {W}x{H}"
    inside = (cx1 - cx0) * (cy1 - cy0) / ((x1 - x0) * (y1 - y0))
    if inside < 0.5:
        return None, "bbox outside image", f"{bbox}: only {inside:.0%} of it inside the {W}x{H} image"
    if (cx0, cy0, cx1, cy1) != (x0, y0, x1, y1):
        return (cx0, cy0, cx1, cy1), None, "clamped"
    return bbox, None, ""


# --------------------------------------------------------------------------- main


def run_ingest(cfg: IngestConfig) -> IngestResult:
    """Read ``cfg.source`` into a manifest at ``cfg.out``; see the module docstring."""
    t0 = time.time()
    if not cfg.source:
        raise ConfigError("give the SOURCE to read: a folder, an AI-Hub JSON tree or a label table")
    if not cfg.out:
        raise ConfigError("give --out MANIFEST (a .csv or .parquet file name)")
    src = Path(cfg.source).expanduser()
    out = Path(cfg.out).expanduser()
    if out.suffix.lower() not in (".csv", ".tsv", ".parquet", ".pq"):
        raise ConfigError(f"--out {out}: use a .csv or .parquet file name")
    if cfg.subject_regex:
        try:
            subj_re = re.compile(cfg.subject_regex)
        except re.error as e:
            raise ConfigError(f"--subject-regex {cfg.subject_regex!r}: {e}") from None
    else:
        subj_re = None
    mapper = LabelMapper(cfg.remap or None, cfg.bins or None)
    fmt = detect_format(src) if cfg.format == "auto" else cfg.format
    if not src.exists():
        raise FileNotFoundError(f"source {src} does not exist")
    if fmt == "table" and src.is_dir():
        tables = [p for p in src.iterdir() if p.is_file() and p.suffix.lower() in TABLE_EXTENSIONS]
        if len(tables) != 1:
            raise ConfigError(f"--format table: pass the table file itself ({len(tables)} tables in {src})")
        src = tables[0]
    if fmt in ("folder", "aihub-json") and not src.is_dir():
        raise ConfigError(f"--format {fmt}: {src} is not a folder")

    rej = _Rejects()
    notes: List[str] = []
    counters: Counter = Counter()
    mapping: Dict[str, Any] = {}
    if fmt == "folder":
        recs = _read_folder(cfg, src, rej, notes)
    elif fmt == "aihub-json":
        recs = _read_aihub(cfg, src, rej, notes, counters)
    else:
        recs = _read_table(cfg, src, rej, notes, counters, mapping)
    n_read = len(recs) + len(rej.rows)

    # labels
    kept = []
    for r in recs:
        cls = mapper.map(r["raw_label"])
        if cls is None:
            rej.reject(r, mapper.why(r["raw_label"]), f"raw label {normalise_label(r['raw_label'])!r}")
            continue
        r["class_name"] = cls
        kept.append(r)
    recs = kept

    # duplicates (same image and bbox)
    seen: Dict[Tuple, Dict[str, Any]] = {}
    kept = []
    for r in recs:
        key = (os.path.normcase(r["path"]), r["bbox"])
        if key in seen:
            first = seen[key]
            conflict = "" if first["class_name"] == r["class_name"] else f" with another label ({first['class_name']} vs {r['class_name']})"
            rej.reject(r, "duplicate row", f"same image and bbox as {first['origin']}{conflict}")
            continue
        seen[key] = r
        kept.append(r)
    recs = kept

    # images
    if cfg.labels_only:
        n_exist = sum(os.path.isfile(r["path"]) for r in recs)
        notes.append(f"--labels-only: images not opened; {n_exist} of {len(recs)} image files exist")
        for r in recs:
            # the table's own width / height columns, when it has them, bound the bbox
            w, h = r["meta"].get("width"), r["meta"].get("height")
            size = (float(w), float(h)) if is_number(w) and is_number(h) and float(w) > 0 and float(h) > 0 else None
            r["bbox_ok"] = _bbox_check(r["bbox"], size)
    else:
        paths = list(dict.fromkeys(r["path"] for r in recs))
        if cfg.check_images:
            infos = _check_images(paths, cfg.workers, cfg.quiet)
        else:
            infos = {}
            for p in paths:
                infos[p] = None if os.path.isfile(p) else ImageError("missing file", "no such file", p)
            notes.append("--no-check-images: images were not decoded; corrupt files will only show when training")
        kept = []
        for r in recs:
            info = infos.get(r["path"])
            if isinstance(info, ImageError):
                rej.reject(r, info.reason, info.detail)
                continue
            size = (info.width, info.height) if info is not None else None
            if info is not None:
                r["meta"].setdefault("width", info.width)
                r["meta"].setdefault("height", info.height)
            r["bbox_ok"] = _bbox_check(r["bbox"], size)
            kept.append(r)
        recs = kept
    kept = []
    n_clamped = 0
    for r in recs:
        bbox, reason, note = r.pop("bbox_ok")
        if reason:
            rej.reject(r, reason, note)
            continue
        n_clamped += note == "clamped"
        r["bbox"] = bbox
        kept.append(r)
    recs = kept

    # subjects from the file name
    if subj_re is not None:
        n_hit = 0
        for r in recs:
            if not r["subject"]:
                m = subj_re.search(Path(r["path"]).name)
                if m:
                    r["subject"] = m.group(1) if m.groups() else m.group(0)
                    n_hit += 1
        notes.append(f"--subject-regex matched {n_hit} of {len(recs)} file names")

    # table
    classes = mapper.classes(sorted({r["class_name"] for r in recs}))
    index = {c: i for i, c in enumerate(classes)}
    rows = []
    for r in recs:
        b = r["bbox"] if r["bbox"] is not None else (math.nan,) * 4
        row = {"path": r["path"], "label": index[r["class_name"]], "class_name": r["class_name"],
               "raw_label": normalise_label(r["raw_label"]), "subject": str(r["subject"]).strip(),
               "view": str(r["view"]).strip(), "x0": b[0], "y0": b[1], "x1": b[2], "y1": b[3]}
        for k, v in r["meta"].items():
            key = k if k not in COLUMNS else f"src_{k}"
            row[key] = v
        rows.append(row)
    df = pd.DataFrame(rows, columns=None if rows else COLUMNS[:10])
    for c in ("subject", "view"):
        if c not in df.columns:
            df[c] = ""
    n_no_subject = int((df["subject"] == "").sum()) if len(df) else 0
    split_by = cfg.split_by
    df, sinfo = assign_splits(df, val=cfg.val, test=cfg.test, seed=cfg.seed,
                              split_by="image" if split_by == "image" else split_by, folds=cfg.folds)
    if n_no_subject and split_by == "subject":
        # the contract: every row has a subject; one of its own when unknown
        stems = [f"img:{Path(p).stem}" for p in df["path"]]
        counts = Counter(stems)
        own = [s if counts[s] == 1 else f"img:{i}" for i, s in enumerate(stems)]
        df["subject"] = np.where(df["subject"] == "", own, df["subject"])
    ordinal = cfg.ordinal
    if ordinal is None:
        ordinal = bool(mapper.ordinal_hint) or (len(classes) > 1 and all(is_number(c) for c in classes))
    rejected = rej.frame()
    meta = {
        "classes": classes,
        "ordinal": bool(ordinal),
        "source": str(Path(cfg.source).expanduser().resolve()),
        "format": fmt,
        "options": config_to_dict(cfg),
        "columns_used": mapping or None,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "rows_read": n_read,
        "rejected": dict(Counter(rejected["reason"])) if len(rejected) else {},
        "subjects": {"known": int(len(df) - n_no_subject), "unknown": n_no_subject,
                     "groups": sinfo.groups, "split_by": sinfo.group_by},
        "bbox": {"given": int(df["x0"].notna().sum()) if len(df) else 0,
                 "whole_image": int(df["x0"].isna().sum()) if len(df) else 0, "clamped": n_clamped},
        "notes": notes + ([sinfo.note] if sinfo.note else []),
    }
    manifest = Manifest(df, classes, meta)
    write_manifest(manifest, out)
    rpath = out.with_name(out.stem + ".rejected.csv")
    with atomic_write(rpath, "w", encoding="utf-8", newline="") as f:
        rejected.to_csv(f, index=False)
    summary = summarize(manifest, rejected, fmt=fmt, source=src, out=out, rpath=rpath, notes=meta["notes"],
                        mapping=mapping, n_read=n_read, seconds=time.time() - t0)
    return IngestResult(manifest=manifest, rejected=rejected, summary=summary, out=out, rejected_path=rpath)


def _crosstab(df: pd.DataFrame, col: str, order: Sequence[str]) -> str:
    splits = ["train", "val", "test"]
    width = max([len(col)] + [len(str(o)) for o in order] + [5])
    lines = [f"  {col:<{width}} " + " ".join(f"{s:>6}" for s in splits) + f" {'total':>6}"]
    for o in order:
        sub = df[df[col] == o]
        lines.append(f"  {str(o):<{width}} " + " ".join(f"{int((sub['split'] == s).sum()):>6}" for s in splits)
                     + f" {len(sub):>6}")
    tot = [int((df["split"] == s).sum()) for s in splits]
    lines.append(f"  {'total':<{width}} " + " ".join(f"{t:>6}" for t in tot) + f" {len(df):>6}")
    if len(df):
        lines.append(f"  {'share':<{width}} " + " ".join(f"{t / len(df):>6.1%}" for t in tot))
    return "\n".join(lines)


def summarize(manifest: Manifest, rejected: pd.DataFrame, fmt: str = "", source="", out="", rpath="",
              notes: Sequence[str] = (), mapping: Optional[dict] = None, n_read: int = 0, seconds: float = 0.0) -> str:
    """The human summary printed by ``skinage ingest``."""
    df = manifest.df
    m = manifest.meta
    lines = [f"skinage ingest: {fmt} source {source}"]
    if mapping:
        used = ", ".join(f"{k}={v}" for k, v in mapping.items() if v)
        lines.append(f"columns: {used}")
    kind = "ordinal" if manifest.ordinal else "unordered"
    lines.append(f"{len(df)} samples kept of {n_read} read, {len(manifest.classes)} classes ({kind}): "
                 + ", ".join(manifest.classes))
    lines.append("samples per class and split:")
    lines.append(_crosstab(df, "class_name", manifest.classes))
    views = [v for v in sort_classes(df["view"].unique()) if v != ""] if len(df) else []
    if views:
        lines.append("samples per view and split:")
        lines.append(_crosstab(df, "view", views))
    subj = m.get("subjects", {})
    if len(df):
        per = {s: df.loc[df["split"] == s, "subject"].nunique() for s in ("train", "val", "test")}
        if subj.get("unknown", 0) == len(df):
            lines.append(f"subjects: none given -> each image is its own group ({len(df)} groups); "
                         "splits are by image (use --subject-regex or a subject column if people have several images)")
        else:
            lines.append(f"subjects: {df['subject'].nunique()} (train {per['train']}, val {per['val']}, test {per['test']})"
                         + (f"; {subj['unknown']} images without a subject id are their own group" if subj.get("unknown") else "")
                         + ("; no subject is in two splits" if not _leak(df) else "; WARNING: subjects in two splits"))
    if len(rejected) and "subject" in rejected.columns:
        gone = sorted(set(rejected.loc[rejected["subject"] != "", "subject"]) - set(df["subject"]))
        if gone:
            lines.append(f"subjects set aside entirely (all their rows rejected): {len(gone)}: "
                         + ", ".join(gone[:10]) + (" ..." if len(gone) > 10 else ""))
    if (df["fold"] >= 0).any():
        lines.append("folds: " + ", ".join(f"{k}: {n}" for k, n in sorted(df.loc[df['fold'] >= 0, 'fold'].value_counts().items())))
    bb = m.get("bbox", {})
    lines.append(f"bbox: {bb.get('given', 0)} given, {bb.get('whole_image', 0)} whole image (no/null bbox)"
                 + (f", {bb['clamped']} clamped to the image" if bb.get("clamped") else ""))
    if len(rejected):
        lines.append(f"rejected: {len(rejected)} (see {rpath})")
        for reason, n in Counter(rejected["reason"]).most_common():
            lines.append(f"  {reason:<28} {n:>6}")
    else:
        lines.append("rejected: 0")
    for n in notes:
        if n and not (n.startswith("no subject ids") and subj.get("unknown", 0) == len(df)):
            lines.append(f"note: {n}")
    lines.append(f"wrote {out} (+ {Path(out).stem}.meta.json, {Path(rpath).name}) in {seconds:.1f} s")
    return "\n".join(lines)


def _leak(df: pd.DataFrame) -> bool:
    return bool(len(df)) and bool((df.groupby("subject")["split"].nunique() > 1).any())


def ingest(source, out=None, **options) -> IngestResult:
    """Python API of ``skinage ingest``: keywords are the flags (``label=``, ``remap=``, ...).

    Prints the summary unless ``quiet=True``; returns an :class:`IngestResult`. Unknown keywords
    raise ``ConfigError`` with a "did you mean".
    """
    values = dict(options)
    values["source"] = str(source)
    if out is not None:
        values["out"] = str(out)
    cfg = build_config(IngestConfig, values)
    res = run_ingest(cfg)
    if not cfg.quiet:
        print(res.summary)
    return res


def add_arguments(parser) -> None:
    parser.epilog = (
        "examples:\n"
        "  skinage ingest ../shared/data/utkface-age --out utk.csv\n"
        "  skinage ingest forehead/ --label annotations.forehead_wrinkle --facepart 1 "
        "--remap \"0,1:0 2,3:1 4:2 5,6:3\" --out forehead.csv\n"
        "  skinage ingest json_to_dataframe.csv --labels-only --label forehead_wrinkle "
        "--remap \"0,1:0 2,3:1 4:2 5,6:3\" --out aihub.csv"
    )
    import argparse

    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    add_config_arguments(parser, IngestConfig)


def run(args) -> int:
    cfg = config_from_args(IngestConfig, args)
    res = run_ingest(cfg)
    if not cfg.quiet:
        print(res.summary)
    if len(res.manifest.df) == 0:
        hint = ""
        if len(res.rejected) and (res.rejected["reason"] == "missing file").all():
            hint = " (no image was found: give --image-root, or --labels-only for a label-only manifest)"
        print(f"skinage ingest: error: no usable samples{hint}", file=sys.stderr)
        return 1
    return 0
