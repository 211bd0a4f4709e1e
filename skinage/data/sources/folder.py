"""Reader of a folder per class: ``ROOT/<class>/**/*.jpg`` -> one :class:`~skinage.data.records.Record` per image.

The class folder's name is the raw label; files that are not images are set aside as ``non-image``,
system files (.DS_Store, Thumbs.db, ._*) skipped and counted in a note.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePath
from typing import List

from ...config import ConfigError
from ..records import Record, Rejects
from .files import class_dirs, files_below, is_image_name, is_system_file

__all__ = ["read_folder"]


def _folder_notes(root: Path, dirs: List[Path], notes: List[str]) -> None:
    top = sorted(p.name for p in root.iterdir() if p.is_file())
    if top:
        notes.append(f"files directly in the source folder were not read (not in a class folder): {', '.join(top[:6])}"
                     + (" ..." if len(top) > 6 else ""))
    for d in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if d not in dirs:
            notes.append(f"folder {d.name}/ holds no images and is not a class")


def read_folder(root: Path, rej: Rejects, notes: List[str]) -> List[Record]:
    """The images of every class folder of ``root``, in name order."""
    dirs = class_dirs(root)
    if not dirs:
        raise ConfigError(f"{root}: no class folders with images (expected ROOT/<class>/*.jpg)")
    _folder_notes(root, dirs, notes)
    recs = []
    skipped_system = 0
    for d in dirs:
        real = os.path.realpath(d)  # the class folder's own links resolved once, not once per file
        for parts, entry in files_below(d):
            name = entry.name
            if is_system_file(name):
                skipped_system += 1
            elif not is_image_name(name):
                f = os.path.join(d, *parts)
                rej.add(f, f, "non-image", f"extension '{PurePath(name).suffix or '(none)'}' in class folder {d.name}/",
                        d.name)
            else:  # the absolute path with links resolved, as Path.resolve() gives it
                path = os.path.realpath(entry.path) if entry.is_symlink() else os.path.join(real, *parts)
                recs.append(Record.of(path, d.name, origin=os.path.join(d.name, *parts)))
    if skipped_system:
        notes.append(f"{skipped_system} system file(s) (.DS_Store, Thumbs.db, ._*) skipped")
    return recs
