"""The steps of ``skinage ingest`` between reading a source and splitting it, one idea each.

Each step takes the records still kept, sets aside with its reason every one it cannot use
(:class:`~skinage.data.records.Rejects`) and returns the others, in order:

1. :func:`label_records` -- the class of each raw label (remap / bins), or ``label outside remap`` ...;
2. :func:`drop_duplicates` -- the same image and box twice;
3. :func:`check_images` -- decode each image once (or, label-only, take the table's width and
   height): fills ``Record.size``; corrupt, truncated, missing and non-image files are set aside;
4. :func:`check_boxes` -- a box inverted, of zero area or outside the image is set aside, one partly
   outside is clamped to it;
5. :func:`subjects_from_names` -- person ids from the file names (``--subject-regex``).

``--find`` (:func:`skinage.data.finding.find_boxes`) sits between 3 and 4: it replaces each record's box
by the face finder's (or sets the record aside with the finder's status), and its boxes are then checked
like any other.

>>> bbox_check((10, 10, 50, 40), (40, 100))
((10, 10, 40.0, 40), None, 'clamped')
>>> bbox_check((50, 10, 10, 40), None)
(None, 'bbox inverted', '(50, 10, 10, 40)')
"""

from __future__ import annotations

import os
import re
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

from .images import ImageError, ImageInfo, probe_image
from .labels import LabelMapper, is_number, normalise_label
from .records import Record, Rejects

__all__ = ["label_records", "drop_duplicates", "probe_images", "check_images", "bbox_check", "check_boxes",
           "subjects_from_names"]


def label_records(recs: Sequence[Record], mapper: LabelMapper, rej: Rejects) -> List[Record]:
    """Set each record's ``class_name`` from its raw label; set aside labels the mapper refuses."""
    kept = []
    for r in recs:
        cls = mapper.map(r.raw_label)
        if cls is None:
            rej.reject(r, mapper.why(r.raw_label), f"raw label {normalise_label(r.raw_label)!r}")
            continue
        r.class_name = cls
        kept.append(r)
    return kept


def drop_duplicates(recs: Sequence[Record], rej: Rejects) -> List[Record]:
    """Keep the first record of each (image, box); the others are set aside, naming a label conflict."""
    seen: Dict[tuple, Record] = {}
    kept = []
    for r in recs:
        key = (os.path.normcase(r.path), r.bbox)
        first = seen.get(key)
        if first is not None:
            conflict = "" if first.class_name == r.class_name else \
                f" with another label ({first.class_name} vs {r.class_name})"
            rej.reject(r, "duplicate row", f"same image and bbox as {first.origin}{conflict}")
            continue
        seen[key] = r
        kept.append(r)
    return kept


def probe_images(paths: Sequence[str], workers: int = 2, quiet: bool = False) -> Dict[str, Union[ImageInfo, ImageError]]:
    """path -> ImageInfo or ImageError, decoding each file once (threads; Pillow drops the GIL)."""
    from tqdm import tqdm

    def one(p):
        try:
            return p, probe_image(p)
        except ImageError as e:
            return p, e
        except Exception as e:  # never let one odd file stop the run
            return p, ImageError("corrupt", f"{type(e).__name__}: {e}", p)

    out: Dict[str, Union[ImageInfo, ImageError]] = {}
    bar = tqdm(total=len(paths), desc="checking images", unit="img", disable=quiet or not paths,
               file=sys.stderr, dynamic_ncols=True)
    with ThreadPoolExecutor(max_workers=max(1, int(workers))) as ex:
        for p, res in ex.map(one, paths):
            out[p] = res
            bar.update(1)
    bar.close()
    return out


def _table_size(r: Record) -> Optional[Tuple[float, float]]:
    """The source's own width / height fields, when it has them (label-only ingest)."""
    w, h = r.meta.get("width"), r.meta.get("height")
    return (float(w), float(h)) if is_number(w) and is_number(h) and float(w) > 0 and float(h) > 0 else None


def check_images(recs: Sequence[Record], rej: Rejects, notes: List[str], *, labels_only: bool = False,
                 decode: bool = True, workers: int = 2, quiet: bool = False) -> List[Record]:
    """Set ``size`` (width, height of the upright image) of each record; set aside unusable images.

    ``labels_only``: open nothing, the size is the source's width / height when given;
    ``decode=False``: only check that the files exist (size unknown).
    The image's size also fills the ``width`` / ``height`` metadata the source did not give.
    """
    if labels_only:
        n_exist = sum(os.path.isfile(r.path) for r in recs)
        notes.append(f"--labels-only: images not opened; {n_exist} of {len(recs)} image files exist")
        for r in recs:
            r.size = _table_size(r)
        return list(recs)
    paths = list(dict.fromkeys(r.path for r in recs))
    if decode:
        infos = probe_images(paths, workers, quiet)
    else:
        infos = {p: None if os.path.isfile(p) else ImageError("missing file", "no such file", p) for p in paths}
        notes.append("--no-check-images: images were not decoded; corrupt files will only show when training")
    kept = []
    for r in recs:
        info = infos.get(r.path)
        if isinstance(info, ImageError):
            rej.reject(r, info.reason, info.detail)
            continue
        if info is not None:
            r.size = (info.width, info.height)
            r.meta.setdefault("width", info.width)
            r.meta.setdefault("height", info.height)
        kept.append(r)
    return kept


def bbox_check(bbox, size) -> Tuple[Optional[tuple], Optional[str], str]:
    """(box to keep, reason to set the row aside or None, note: '' or 'clamped') for a box in an image of ``size``."""
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


def check_boxes(recs: Sequence[Record], rej: Rejects) -> Tuple[List[Record], int]:
    """The records whose box fits their image (clamped when partly outside), and how many were clamped."""
    kept = []
    n_clamped = 0
    for r in recs:
        bbox, reason, note = bbox_check(r.bbox, r.size)
        if reason:
            rej.reject(r, reason, note)
            continue
        n_clamped += note == "clamped"
        r.bbox = bbox
        kept.append(r)
    return kept, n_clamped


def subjects_from_names(recs: Sequence[Record], pattern: "re.Pattern", notes: List[str]) -> None:
    """Give records without a subject the first group (else the whole match) of ``pattern`` in the file name."""
    n_hit = 0
    for r in recs:
        if not r.subject:
            m = pattern.search(Path(r.path).name)
            if m:
                r.subject = m.group(1) if m.groups() else m.group(0)
                n_hit += 1
    notes.append(f"--subject-regex matched {n_hit} of {len(recs)} file names")
