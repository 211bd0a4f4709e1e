"""Finding image files in a source: names that are images, class folders, an image found by its name.

>>> is_image_name("IMG_01.JPG"), is_image_name("notes.txt")
(True, False)
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Optional

from ..images import IMAGE_EXTENSIONS

__all__ = ["SYSTEM_FILES", "is_image_name", "is_system_file", "class_dirs", "image_index", "resolve_by_name"]

SYSTEM_FILES = {".ds_store", "thumbs.db", "desktop.ini"}


def is_image_name(name: str) -> bool:
    """The file name has an image extension (:data:`skinage.data.images.IMAGE_EXTENSIONS`)."""
    return name.lower().endswith(IMAGE_EXTENSIONS)


def is_system_file(name: str) -> bool:
    """A file the operating system leaves in folders (.DS_Store, Thumbs.db, ._* resource forks)."""
    return name.lower() in SYSTEM_FILES or name.startswith("._")


def class_dirs(root: Path) -> List[Path]:
    """The sub-folders of ``root`` that hold an image somewhere below them, sorted by name."""
    out = []
    for d in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if any(is_image_name(f.name) for f in d.rglob("*") if f.is_file()):
            out.append(d)
    return out


def image_index(root: Path) -> Dict[str, List[Path]]:
    """Lower-case file name -> the image files of that name anywhere below ``root``."""
    idx: Dict[str, List[Path]] = defaultdict(list)
    for f in root.rglob("*"):
        if f.is_file() and is_image_name(f.name):
            idx[f.name.lower()].append(f)
    return idx


def resolve_by_name(name: str, near: Optional[Path], idx: Dict[str, List[Path]]) -> Optional[Path]:
    """The image file called like ``name``: beside ``near`` if it is there, else found in ``idx``.

    Of several files of that name, the one sharing the longest path prefix with ``near``.
    """
    base = os.path.basename(name.replace("\\", "/"))
    if near is not None:
        cand = near / base
        if cand.is_file():
            return cand
    hits = idx.get(base.lower(), [])
    if len(hits) == 1:
        return hits[0]
    if len(hits) > 1 and near is not None:
        return max(hits, key=lambda p: len(os.path.commonpath([str(p), str(near)])))
    return hits[0] if hits else None
