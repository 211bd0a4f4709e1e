"""``skinage ingest --find face|forehead``: the boxes of a manifest from the face finder, cached by content.

Every image is read once, hashed (sha256 of its bytes) and given to the finder as bytes
(:mod:`skinage.find`). The answer (status, sentence, number of faces, score, face and forehead boxes,
image size) is kept as a small JSON file under ``skinage.utils.cache_dir()/find/``, named by a hash of
the content's sha256, the sha256 of the two finder model files and the finder's
``PIPELINE_VERSION``: a second ingest of the same images (renamed, moved or copied, too) reads the
answers instead of finding again; new models or a changed pipeline find again.

A record whose image has status ``ok`` gets the chosen face's ``face`` or ``forehead`` box, over any box
its source gave; the others are set aside with the status as the reason (``no_face``, ``several_faces``,
``face_too_small``, ``unreadable``) and the finder's sentence as the detail.

>>> summary_of_json({"status": "ok", "reason": "one face", "faces": 1, "score": 0.9, "face": [1, 2, 3, 4],
...                  "forehead": [1.5, 2, 2.5, 2.5], "size": [10, 10], "border": 0}).box("forehead")
(1.5, 2.0, 2.5, 2.5)
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from ..utils import cache_dir
from .records import Record, Rejects

__all__ = ["FoundSummary", "FindCache", "find_cached", "find_boxes", "summary_of_json", "REGIONS"]

#: The regions ``--find`` takes.
REGIONS = ("face", "forehead")


@dataclass
class FoundSummary:
    """What ingest keeps of the finder's answer for one image (boxes in pixels of the upright image)."""

    status: str
    reason: str
    faces: int = 0
    score: Optional[float] = None
    face: Optional[List[float]] = None
    forehead: Optional[List[float]] = None
    size: Optional[List[int]] = None
    border: int = 0

    def box(self, region: str) -> Optional[tuple]:
        b = self.face if region == "face" else self.forehead
        return None if b is None else tuple(float(v) for v in b)


def summary_of_json(d: dict) -> FoundSummary:
    return FoundSummary(**{k: d.get(k) for k in FoundSummary.__dataclass_fields__ if k in d})


def _summary(found) -> FoundSummary:
    s = FoundSummary(found.status, found.reason, len(found), size=list(found.size) if found.size else None,
                     border=int(getattr(found, "border", 0)))
    if found.ok:
        s.score = round(float(found.face.score), 6)
        s.face = [float(v) for v in found.face.box]
        s.forehead = [float(v) for v in found.face.forehead]
    return s


class FindCache:
    """The finder's answers by image content: ``get(data)`` -> FoundSummary or None; ``put(data, summary)``.

    ``root`` defaults to ``cache_dir()/find``; ``models`` is the finder's model folder (its files' sha256 are
    part of every key).
    """

    def __init__(self, models: Path, root: Optional[Path] = None):
        from ..find.assets import MODEL_FILES, sha256
        from ..find.constants import PIPELINE_VERSION

        self.root = Path(root) if root is not None else cache_dir() / "find"
        shas = [sha256(Path(models) / MODEL_FILES[role]) for role in sorted(MODEL_FILES)]
        self.salt = f"{':'.join(shas)}:v{PIPELINE_VERSION}"
        self.hits = 0
        self.misses = 0

    def key(self, data: bytes) -> str:
        content = hashlib.sha256(data).hexdigest()
        return hashlib.sha256(f"{content}:{self.salt}".encode()).hexdigest()

    def _file(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> Optional[FoundSummary]:
        try:
            s = summary_of_json(json.loads(self._file(key).read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            return None
        self.hits += 1
        return s

    def put(self, key: str, summary: FoundSummary) -> None:
        self.misses += 1
        f = self._file(key)
        try:
            f.parent.mkdir(parents=True, exist_ok=True)
            tmp = f.with_name(f".{f.name}.{os.getpid()}.{id(summary)}.tmp")
            tmp.write_text(json.dumps(asdict(summary)), encoding="utf-8")
            os.replace(tmp, f)
        except OSError:  # a read-only or full cache only costs speed
            pass


def find_cached(path: str, finder, cache: FindCache) -> FoundSummary:
    """The finder's answer for one file, from the cache when it has it (stored there when not); never raises."""
    from ..find.result import UNREADABLE

    try:
        data = Path(path).read_bytes()
    except OSError as e:
        return FoundSummary(UNREADABLE, f"the file cannot be read: {e}")
    key = cache.key(data)
    hit = cache.get(key)
    if hit is not None:
        return hit
    try:
        summary = _summary(finder.find(data))
    except Exception as e:  # noqa: BLE001 - one odd image must not stop the ingest
        return FoundSummary(UNREADABLE, f"the image could not be processed ({type(e).__name__}: {e})")
    cache.put(key, summary)
    return summary


def find_boxes(recs: Sequence[Record], rej: Rejects, region: str, notes: List[str], *, workers: int = 2,
               quiet: bool = False, models=None, cache_root: Optional[Path] = None) -> tuple[List[Record], dict]:
    """Give each record the finder's ``region`` box; set aside the records whose image has no usable face.

    Returns the kept records and a summary for the manifest's metadata (counts by status, cache hits, seconds).
    """
    from tqdm import tqdm

    from ..find.find import get_finder
    from ..find.result import OK, STATUSES

    if region not in REGIONS:
        raise ValueError(f"--find takes {' or '.join(REGIONS)}, not {region!r}")
    t0 = time.perf_counter()
    finder = get_finder(models, threads=1)
    cache = FindCache(finder.models, cache_root)
    paths = list(dict.fromkeys(r.path for r in recs))
    found: Dict[str, FoundSummary] = {}
    bar = tqdm(total=len(paths), desc="finding faces", unit="img", disable=quiet or not paths, file=sys.stderr,
               dynamic_ncols=True)
    with ThreadPoolExecutor(max_workers=max(1, int(workers))) as ex:
        for p, s in zip(paths, ex.map(lambda p: find_cached(p, finder, cache), paths)):
            found[p] = s
            bar.update(1)
    bar.close()
    kept, replaced = [], 0
    for r in recs:
        s = found[r.path]
        if s.status != OK:
            rej.reject(r, s.status, s.reason)
            continue
        replaced += r.bbox is not None
        r.bbox = s.box(region)
        kept.append(r)
    counts = {k: sum(s.status == k for s in found.values()) for k in STATUSES}
    info = {"region": region, "images": len(paths), "statuses": counts,
            "second_pass": sum(s.border > 0 for s in found.values()), "cache_hits": cache.hits,
            "found_now": cache.misses, "seconds": round(time.perf_counter() - t0, 2), "cache_key": cache.salt}
    notes.append(f"--find {region}: {counts[OK]} of {len(paths)} images with one usable face "
                 f"({cache.hits} answers from the cache {cache.root}); the others are set aside with the finder's "
                 f"status" + (f"; {replaced} box(es) given by the source replaced by the found one" if replaced else ""))
    return kept, info
