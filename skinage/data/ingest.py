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

``--find face|forehead`` takes each image's box from the face finder (:mod:`skinage.data.finding`), after
the image checks; images without exactly one usable face are set aside with the finder's status, and the
manifest's metadata records ``region`` so a model trained on it finds faces itself in ``skinage predict``.

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

import re
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import pandas as pd

from ..config import ConfigError, Seeded, add_config_arguments, build_config, config_from_args, config_to_dict
from ..utils import atomic_write
from .checks import check_boxes, check_images, drop_duplicates, label_records, subjects_from_names
from .ingest_summary import summarize
from .labels import LabelMapper, is_number
from .manifest import Manifest, write_manifest
from .records import Record, Rejects, records_frame
from .sources import FORMATS, detect_format, read_aihub, read_folder, read_table, resolve_source
from .splits import SplitInfo, assign_splits

__all__ = ["IngestConfig", "IngestResult", "ingest", "run_ingest", "detect_format", "add_arguments", "run"]


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
        "help": "what a split keeps together: subject (a person's rows), image (each row alone: leaky when people "
                "have several images) or another column of the source"})
    val: float = field(default=0.15, metadata={"help": "validation fraction"})
    test: float = field(default=0.15, metadata={"help": "test fraction"})
    folds: int = field(default=0, metadata={"help": "K > 1: also deal the non-test rows into K person-grouped folds (column fold)"})
    check_images: bool = field(default=True, metadata={
        "help": "decode every image once (cheaply) to set aside corrupt, truncated and non-image files"})
    find: Optional[str] = field(default=None, metadata={"choices": ("face", "forehead"),
        "help": "boxes from the face finder (over any box in the labels): the face or forehead of each image; images "
                "without exactly one usable face are set aside with the finder's status; answers cached by content"})
    workers: int = field(default=2, metadata={"help": "threads for checking images (and finding faces)"})
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


# --------------------------------------------------------------------------- the steps


def _options(cfg: IngestConfig) -> Tuple[Path, Path, Optional[re.Pattern]]:
    """Source, output path and compiled --subject-regex, or ConfigError for a missing or wrong option."""
    if not cfg.source:
        raise ConfigError("give the SOURCE to read: a folder, an AI-Hub JSON tree or a label table")
    if not cfg.out:
        raise ConfigError("give --out MANIFEST (a .csv or .parquet file name)")
    out = Path(cfg.out).expanduser()
    if out.suffix.lower() not in (".csv", ".tsv", ".parquet", ".pq"):
        raise ConfigError(f"--out {out}: use a .csv or .parquet file name")
    if cfg.find and cfg.labels_only:
        raise ConfigError("--find needs the images (it finds the faces in them); drop --labels-only")
    subj_re = None
    if cfg.subject_regex:
        try:
            subj_re = re.compile(cfg.subject_regex)
        except re.error as e:
            raise ConfigError(f"--subject-regex {cfg.subject_regex!r}: {e}") from None
    return Path(cfg.source).expanduser(), out, subj_re


def _read(cfg: IngestConfig, fmt: str, src: Path, rej: Rejects, notes: List[str]) -> Tuple[List[Record], dict]:
    """The source's records (and, for a table, the columns used for each field)."""
    if fmt == "folder":
        return read_folder(src, rej, notes), {}
    if fmt == "aihub-json":
        return read_aihub(src, rej, cfg.label, cfg.facepart, cfg.labels_only), {}
    return read_table(src, rej, path_col=cfg.path_col, label=cfg.label, subject_col=cfg.subject_col,
                      view_col=cfg.view_col, bbox_cols=cfg.bbox_cols, facepart=cfg.facepart,
                      image_root=cfg.image_root, labels_only=cfg.labels_only)


def _split(df: pd.DataFrame, cfg: IngestConfig) -> Tuple[pd.DataFrame, SplitInfo, int]:
    """Person-grouped splits; then every row without a subject gets one of its own (the manifest contract)."""
    n_no_subject = int((df["subject"] == "").sum()) if len(df) else 0
    df, sinfo = assign_splits(df, val=cfg.val, test=cfg.test, seed=cfg.seed, split_by=cfg.split_by, folds=cfg.folds)
    if n_no_subject and cfg.split_by == "subject":
        stems = [f"img:{Path(p).stem}" for p in df["path"]]
        counts = Counter(stems)
        own = [s if counts[s] == 1 else f"img:{i}" for i, s in enumerate(stems)]
        df["subject"] = np.where(df["subject"] == "", own, df["subject"])
    return df, sinfo, n_no_subject


def _meta(cfg: IngestConfig, fmt: str, df: pd.DataFrame, classes: List[str], ordinal: bool, info: Dict[str, Any]) -> dict:
    """The manifest's sidecar: classes, order, source, options, and what happened on the way."""
    sinfo, rejected, n_no_subject = info["splits"], info["rejected"], info["n_no_subject"]
    return {
        "classes": classes,
        "ordinal": bool(ordinal),
        "source": str(Path(cfg.source).expanduser().resolve()),
        "format": fmt,
        "options": config_to_dict(cfg),
        "columns_used": info["mapping"] or None,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "rows_read": info["n_read"],
        "rejected": dict(Counter(rejected["reason"])) if len(rejected) else {},
        "subjects": {"known": int(len(df) - n_no_subject), "unknown": n_no_subject,
                     "groups": sinfo.groups, "split_by": sinfo.group_by},
        "bbox": {"given": int(df["x0"].notna().sum()) if len(df) else 0,
                 "whole_image": int(df["x0"].isna().sum()) if len(df) else 0, "clamped": info["n_clamped"]},
        "notes": info["notes"] + ([sinfo.note] if sinfo.note else []),
    }


def _write(manifest: Manifest, rejected: pd.DataFrame, out: Path) -> Path:
    """Write the manifest (+ its .meta.json) and ``<stem>.rejected.csv``; return the latter's path."""
    write_manifest(manifest, out)
    rpath = out.with_name(out.stem + ".rejected.csv")
    with atomic_write(rpath, "w", encoding="utf-8", newline="") as f:
        rejected.to_csv(f, index=False)
    return rpath


def run_ingest(cfg: IngestConfig) -> IngestResult:
    """Read ``cfg.source`` into a manifest at ``cfg.out``; see the module docstring."""
    t0 = time.time()
    src, out, subj_re = _options(cfg)
    mapper = LabelMapper(cfg.remap or None, cfg.bins or None)
    fmt, src = resolve_source(src, cfg.format)
    rej, notes = Rejects(), []
    recs, mapping = _read(cfg, fmt, src, rej, notes)
    n_read = len(recs) + len(rej)
    recs = label_records(recs, mapper, rej)
    recs = drop_duplicates(recs, rej)
    recs = check_images(recs, rej, notes, labels_only=cfg.labels_only, decode=cfg.check_images,
                        workers=cfg.workers, quiet=cfg.quiet)
    found = None
    if cfg.find:
        from .finding import find_boxes

        recs, found = find_boxes(recs, rej, cfg.find, notes, workers=cfg.workers, quiet=cfg.quiet)
    recs, n_clamped = check_boxes(recs, rej)
    if subj_re is not None:
        subjects_from_names(recs, subj_re, notes)
    classes = mapper.classes(sorted({r.class_name for r in recs}))
    df, sinfo, n_no_subject = _split(records_frame(recs, classes), cfg)
    del recs
    ordinal = cfg.ordinal
    if ordinal is None:
        ordinal = bool(mapper.ordinal_hint) or (len(classes) > 1 and all(is_number(c) for c in classes))
    rejected = rej.frame()
    meta = _meta(cfg, fmt, df, classes, ordinal, {"splits": sinfo, "rejected": rejected, "n_no_subject": n_no_subject,
                                                  "mapping": mapping, "n_read": n_read, "n_clamped": n_clamped,
                                                  "notes": notes})
    if found is not None:  # training reads the region, so the model's Preprocess (and predict) finds faces too
        meta.update(region=cfg.find, finder=found)
    manifest = Manifest(df, classes, meta)
    rpath = _write(manifest, rejected, out)
    summary = summarize(manifest, rejected, fmt=fmt, source=src, out=out, rpath=rpath, notes=meta["notes"],
                        mapping=mapping, n_read=n_read, seconds=time.time() - t0)
    return IngestResult(manifest=manifest, rejected=rejected, summary=summary, out=out, rejected_path=rpath)


# --------------------------------------------------------------------------- the command


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
