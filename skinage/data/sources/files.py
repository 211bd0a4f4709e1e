"""Finding image files in a source: names that are images, class folders, an image found by its name.

>>> is_image_name("IMG_01.JPG"), is_image_name("notes.txt")
(True, False)
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from ..images import IMAGE_EXTENSIONS

__all__ = ["SYSTEM_FILES", "is_image_name", "is_system_file", "class_dirs", "files_below", "image_index",
           "resolve_by_name"]

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


def files_below(folder: Path) -> List[Tuple[Tuple[str, ...], "os.DirEntry"]]:
    """Every file below ``folder`` as (its path's parts below ``folder``, its directory entry), in path order.

    The files, and the order, of ``sorted(f for f in folder.rglob("*") if f.is_file())``: symbolic links
    to files count (their entry says so), linked folders are not entered, unreadable folders are
    skipped. One ``scandir`` per folder and no :class:`~pathlib.Path` per file, so a folder of
    100,000 images is listed in a fraction of the time.

    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> for rel in ("a/b.jpg", "a.b/c.jpg", "z.jpg"):
    ...     (d / rel).parent.mkdir(exist_ok=True); _ = (d / rel).write_bytes(b"")
    >>> [parts for parts, _ in files_below(d)] == [f.relative_to(d).parts for f in sorted(d.rglob("*"))
    ...                                            if f.is_file()]
    True
    """
    out: List[Tuple[Tuple[str, ...], os.DirEntry]] = []
    todo = [((), os.fspath(folder))]
    while todo:
        parts, path = todo.pop()
        try:
            with os.scandir(path) as it:
                entries = list(it)
        except PermissionError:
            continue
        for e in entries:
            try:
                if e.is_file():
                    out.append((parts + (e.name,), e))
                elif e.is_dir() and not e.is_symlink():
                    todo.append((parts + (e.name,), e.path))
            except OSError:
                continue
    out.sort(key=lambda item: item[0])  # Path order: part by part
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
