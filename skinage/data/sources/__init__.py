"""The three source formats of ``skinage ingest``, each read into :class:`~skinage.data.records.Record` s.

* :mod:`.folder` -- a folder per class (``ROOT/<class>/*.jpg``);
* :mod:`.aihub` -- a tree of AI-Hub JSON label files, one per image and face part;
* :mod:`.table` -- a label table (CSV / TSV / Parquet), one row per image;
* :mod:`.files` -- finding image files (class folders, an image by its name).

A reader only reads: it makes one record per image it finds, or sets the row aside with its
reason; labels, images and boxes are checked by the steps in :mod:`skinage.data.checks`.
:func:`detect_format` tells the formats apart.
"""

from __future__ import annotations

from pathlib import Path
from typing import Tuple

from ...config import ConfigError
from .aihub import read_aihub
from .files import class_dirs
from .folder import read_folder
from .table import TABLE_EXTENSIONS, read_table

__all__ = ["FORMATS", "TABLE_EXTENSIONS", "detect_format", "resolve_source", "read_folder", "read_aihub",
           "read_table"]

FORMATS = ("auto", "folder", "aihub-json", "table")


def _tables(folder: Path):
    return [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in TABLE_EXTENSIONS]


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
    n_class = len(class_dirs(src))
    tables = _tables(src)
    if n_class >= 2 or (n_class == 1 and not tables):
        return "folder"
    if len(tables) == 1:  # e.g. labels.csv beside one images/ folder
        return "table"
    raise ConfigError(
        f"cannot tell the format of {src}: no class folders with images, no JSON label files, "
        f"{len(tables)} tables; pass the table itself or --format folder|aihub-json|table"
    )


def resolve_source(source: Path, fmt: str = "auto") -> Tuple[str, Path]:
    """The format (detected when ``auto``) and the path to read: a folder, or the table file itself."""
    fmt = detect_format(source) if fmt == "auto" else fmt
    if not source.exists():
        raise FileNotFoundError(f"source {source} does not exist")
    if fmt == "table" and source.is_dir():
        tables = _tables(source)
        if len(tables) != 1:
            raise ConfigError(f"--format table: pass the table file itself ({len(tables)} tables in {source})")
        source = tables[0]
    if fmt in ("folder", "aihub-json") and not source.is_dir():
        raise ConfigError(f"--format {fmt}: {source} is not a folder")
    return fmt, source
