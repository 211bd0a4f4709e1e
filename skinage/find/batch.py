"""Finding faces in many files: one CSV row per image, optional crops (``skinage find``).

Rows have the columns :data:`COLUMNS`: the path, the status and its reason, the number of faces
found, and the chosen face's detector score, face box and forehead box in pixels of the upright
full-resolution image (empty unless the status is ``ok``). A file that cannot be read is a row with
status ``unreadable``; nothing stops the batch.
"""

from __future__ import annotations

import csv
import io
import math
import os
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from ..config import ConfigError
from ..data.images import IMAGE_EXTENSIONS, ImageError, open_image
from ..utils import atomic_write, atomic_write_text, say
from .finder import Finder, decode, unreadable
from .result import STATUSES, UNREADABLE, Found

__all__ = ["COLUMNS", "BatchResult", "collect_files", "row_of", "run_batch"]

COLUMNS = ("path", "status", "reason", "faces", "score", "face_x0", "face_y0", "face_x1", "face_y1",
           "forehead_x0", "forehead_y0", "forehead_x1", "forehead_y1")


@dataclass
class BatchResult:
    """Rows (dicts with :data:`COLUMNS`), the count of each status, the CSV and crops written."""

    rows: list
    counts: dict
    out: Path | None = None
    crops: int = 0


def collect_files(paths, skip=()) -> list[tuple[Path, Path]]:
    """(file, name relative to its input) for each input: files as given, folders searched recursively.

    Folders contribute files with an image extension (any case), in sorted order, leaving out
    anything under the folders in ``skip``. Raises ``ConfigError`` naming the paths that do not exist.
    """
    missing = [str(p) for p in paths if not Path(p).exists()]
    if missing:
        raise ConfigError(f"no such file or folder: {', '.join(missing)}")
    skip = [Path(s).resolve() for s in skip]
    out, seen = [], set()
    for p in map(Path, paths):
        if p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.suffix.lower() in IMAGE_EXTENSIONS and f.is_file()
                           and not any(f.resolve().is_relative_to(s) for s in skip))
            pairs = [(f, f.relative_to(p)) for f in files]
        else:
            pairs = [(p, Path(p.name))]
        for f, rel in pairs:
            key = os.path.abspath(f)
            if key not in seen:
                seen.add(key)
                out.append((f, rel))
    return out


def _fmt(v: float, digits: int) -> str:
    return f"{v:.{digits}f}"


def row_of(path, found: Found) -> dict:
    """The CSV row of one image."""
    row = {c: "" for c in COLUMNS}
    row.update(path=str(path), status=found.status, reason=found.reason, faces=len(found))
    if found.ok:
        face = found.face
        row["score"] = _fmt(face.score, 4)
        for prefix, box in (("face", face.box), ("forehead", face.forehead)):
            for name, v in zip(("x0", "y0", "x1", "y1"), box):
                row[f"{prefix}_{name}"] = _fmt(v, 2)
    return row


def _find_one(finder, path: Path):
    """(Found, decoded image or None) for one file; never raises: a bad file must not stop the batch."""
    try:
        reduced = decode(path)
    except ImageError as e:
        return unreadable(e), None
    except Exception as e:  # noqa: BLE001 - anything Pillow raises beyond ImageError's reasons
        return Found([], UNREADABLE, f"the file could not be decoded ({type(e).__name__}: {e})"), None
    try:
        return finder.find_decoded(reduced), reduced
    except Exception as e:  # noqa: BLE001 - reported in the row, the batch goes on
        return Found([], UNREADABLE, f"the image could not be processed ({type(e).__name__}: {e})"), None


def _crop_box(box, size) -> tuple:
    """Whole pixels covering ``box``, inside the image."""
    x0, y0, x1, y1 = box
    return (max(0, math.floor(x0)), max(0, math.floor(y0)), min(size[0], math.ceil(x1)), min(size[1], math.ceil(y1)))


def _crop_target(crops: Path, rel: Path, used: set) -> Path:
    """Where the crop of ``rel`` goes: same relative name (PNG unless the source is a JPEG), made unique."""
    suffix = rel.suffix if rel.suffix.lower() in (".jpg", ".jpeg") else ".png"
    target = crops / rel.with_suffix(suffix)
    n = 2
    while target in used:
        target = crops / rel.with_name(f"{rel.stem}-{n}{suffix}")
        n += 1
    used.add(target)
    return target


def _write_crop(path: Path, reduced, found: Found, region: str, target: Path) -> None:
    """Cut ``region`` of the chosen face out of the full-resolution image and save it atomically."""
    image = reduced.image if reduced.factor == 1 else open_image(path)
    crop = image.crop(_crop_box(found.face.region(region), image.size))
    fmt = "JPEG" if target.suffix.lower() in (".jpg", ".jpeg") else "PNG"
    with atomic_write(target) as fh:
        crop.save(fh, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))


def run_batch(cfg, finder: Finder) -> BatchResult:
    """The batch described by ``cfg`` (a :class:`skinage.find.find.FindConfig`), with ``finder``."""
    from tqdm import tqdm

    skip = [cfg.crops] if cfg.crops is not None else []
    files = collect_files(cfg.paths, skip)
    rows, used, n_crops = [], set(), 0
    for path, rel in tqdm(files, desc="finding faces", unit="img", disable=not cfg.progress,
                          file=sys.stderr, dynamic_ncols=True):
        found, reduced = _find_one(finder, path)
        if found.ok and cfg.crops is not None:
            try:
                _write_crop(path, reduced, found, cfg.region, _crop_target(Path(cfg.crops), rel, used))
                n_crops += 1
            except (ImageError, OSError) as e:
                say(f"find: could not write the crop of {path}: {e}")
        rows.append(row_of(path, found))
    counts = Counter(r["status"] for r in rows)
    counts = {s: counts.get(s, 0) for s in STATUSES}
    if cfg.out is not None:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(cfg.out, buf.getvalue())
    return BatchResult(rows, counts, Path(cfg.out) if cfg.out is not None else None, n_crops)
