"""Reader of a tree of AI-Hub JSON label files -> one :class:`~skinage.data.records.Record` per label file.

The AI-Hub skin-condition layout: one JSON file per image and face part, with sections ``info`` /
``images`` / ``annotations``. The label is a dotted key (``annotations.forehead_wrinkle``; a key is
also looked for in every section); the image is ``info.filename`` or, from the name pattern,
``<id>_<device>_<angle>_<part>.json`` -> ``<id>_<device>_<angle>.jpg``, searched beside the JSON and
anywhere below the root. Subject id and angle come from the label (or the name); ``images.bbox`` is
``[x0, y0, x1, y1]``, ``{x_min: ...}``, ``[[x0, y0], [x1, y1]]`` or null (the whole image).

>>> lookup({"info": {"id": "0001"}, "annotations": {"forehead_wrinkle": 3}}, "forehead_wrinkle")
3
>>> bbox_from({"x_min": 1, "y_min": 2, "x_max": 30, "y_max": 40})
(1.0, 2.0, 30.0, 40.0)
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, List, Optional

from ...config import ConfigError, suggest
from ..images import IMAGE_EXTENSIONS
from ..labels import is_number, normalise_label
from ..records import Record, Rejects
from .files import image_index, resolve_by_name

__all__ = ["read_aihub", "lookup", "bbox_from", "MISSING"]

MISSING = object()  # a key that is not in the label file
_BOX_KEYS = (("x_min", "y_min", "x_max", "y_max"), ("x0", "y0", "x1", "y1"), ("xmin", "ymin", "xmax", "ymax"))


def _search(o: Any, last: str, depth: int):
    if depth > 3 or not isinstance(o, dict):
        return MISSING
    if last in o:
        return o[last]
    for v in o.values():
        if isinstance(v, dict):
            r = _search(v, last, depth + 1)
            if r is not MISSING:
                return r
    return MISSING


def lookup(obj: Any, key: str):
    """Value of a dotted key; if absent, the last part searched in every section (depth <= 3); else MISSING."""
    if not key:
        return MISSING
    cur = obj
    for part in key.split("."):
        if not (isinstance(cur, dict) and part in cur):
            return _search(obj, key.split(".")[-1], 0)
        cur = cur[part]
    return cur


def _all_keys(obj: Any, prefix: str = "", depth: int = 0) -> List[str]:
    out = []
    if isinstance(obj, dict) and depth <= 3:
        for k, v in obj.items():
            out.append(prefix + str(k))
            out.extend(_all_keys(v, prefix + str(k) + ".", depth + 1))
    return out


def _first(obj, keys) -> Any:
    for k in keys:
        v = lookup(obj, k)
        if v is not MISSING and v is not None and v != "":
            return v
    return MISSING


def bbox_from(value):
    """A box ``(x0, y0, x1, y1)`` of floats, None (whole image) for MISSING / null; ValueError otherwise."""
    if value is MISSING or value is None:
        return None
    if isinstance(value, dict):
        for ks in _BOX_KEYS:
            if all(k in value for k in ks):
                value = [value[k] for k in ks]
                break
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, (list, tuple)) for v in value):
        value = [value[0][0], value[0][1], value[1][0], value[1][1]]
    if not isinstance(value, (list, tuple)) or len(value) != 4:
        raise ValueError(f"bbox {value!r} is not [x0, y0, x1, y1]")
    if not all(is_number(v) for v in value):
        raise ValueError(f"bbox {value!r} has a non-number")
    return tuple(float(v) for v in value)


def _no_label_error(root: Path) -> ConfigError:
    sample = next(root.rglob("*.json"), None)
    keys = []
    if sample is not None:
        try:
            keys = [k for k in _all_keys(json.loads(sample.read_text(encoding="utf-8-sig")))
                    if k.startswith("annotations.")]
        except Exception:
            pass
    return ConfigError("AI-Hub JSON source: give the label key with --label, e.g. --label annotations.forehead_wrinkle"
                       + (f" (keys in {sample.name}: {', '.join(keys[:12])})" if keys else ""))


def _load(jf: Path, origin, rej: Rejects) -> Optional[dict]:
    """The label file's JSON object (UTF-8, or cp949 as Korean Windows tools write), or None (set aside)."""
    try:
        raw = jf.read_bytes()
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            text = raw.decode("cp949")
        obj = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        rej.add(origin, "", "corrupt label file", f"{type(e).__name__}: {e}")
        return None
    except OSError as e:
        rej.add(origin, "", "corrupt label file", str(e))
        return None
    if not isinstance(obj, dict):
        rej.add(origin, "", "corrupt label file", "the JSON is not an object with sections")
        return None
    return obj


class _Tree:
    """Reads the label files of one tree; remembers whether any had the label key, and the keys seen."""

    def __init__(self, root: Path, label: str, facepart: Optional[int], labels_only: bool, rej: Rejects):
        self.root, self.label, self.facepart, self.labels_only, self.rej = root, label, facepart, labels_only, rej
        self.idx = image_index(root)
        self.label_key_seen = False
        self.keys_seen: set = set()

    def facepart_ok(self, obj, parts, named, origin, subject) -> bool:
        if self.facepart is None:
            return True
        fp = _first(obj, ["images.facepart", "facepart"])
        if fp is MISSING and named:
            fp = parts[-1]
        if fp is MISSING or not is_number(fp):
            self.rej.add(origin, "", "missing label key", "facepart (needed for --facepart)", subject=subject)
            return False
        if int(float(fp)) != int(self.facepart):
            self.rej.add(origin, "", "other facepart", f"facepart {fp} != {self.facepart}", subject=subject)
            return False
        return True

    def image(self, obj, jf: Path, parts, named):
        """(the image file or None, the path expected when it is not found)."""
        fname = _first(obj, ["info.filename", "filename", "file_name", "image_name", "info.file_name"])
        img: Optional[Path] = None
        if fname is not MISSING:
            img = resolve_by_name(str(fname), jf.parent, self.idx)
        if img is None and named:
            stem = "_".join(parts[:-1])
            for ext in IMAGE_EXTENSIONS:
                img = resolve_by_name(stem + ext, jf.parent, self.idx)
                if img is not None:
                    break
        if img is not None:
            return img, img
        guess = str(fname) if fname is not MISSING else ("_".join(parts[:-1]) + ".jpg" if named else jf.stem + ".jpg")
        return None, jf.parent / os.path.basename(guess)

    def label_value(self, obj, origin, expected, subject):
        """The raw label, or MISSING when the row is set aside."""
        val = lookup(obj, self.label)
        if val is MISSING:
            self.rej.add(origin, expected, "missing label key", f"no key '{self.label}' in the label file",
                         subject=subject)
            return MISSING
        self.label_key_seen = True
        if isinstance(val, (dict, list)):
            self.rej.add(origin, expected, "bad label", f"'{self.label}' holds a {type(val).__name__}, not a value",
                         subject=subject)
            return MISSING
        return val

    def record(self, jf: Path) -> Optional[Record]:
        """The record of one label file, or None when it is set aside."""
        origin = jf.relative_to(self.root)
        obj = _load(jf, origin, self.rej)
        if obj is None:
            return None
        if len(self.keys_seen) < 500:
            self.keys_seen.update(_all_keys(obj))
        parts = jf.stem.split("_")
        named = len(parts) >= 4
        subject = _first(obj, ["info.id", "id", "subject_id", "subject"])
        subject = str(parts[0] if named else "") if subject is MISSING else str(subject)
        if not self.facepart_ok(obj, parts, named, origin, subject):
            return None
        img, expected = self.image(obj, jf, parts, named)
        val = self.label_value(obj, origin, expected, subject)
        if val is MISSING:
            return None
        view = _first(obj, ["info.angle", "angle", "view"])
        if view is MISSING:
            view = parts[2] if named else ""
        try:
            bbox = bbox_from(lookup(obj, "images.bbox"))
        except ValueError as e:
            self.rej.add(origin, expected, "bad bbox", str(e), normalise_label(val), subject)
            return None
        if img is None and not self.labels_only:
            self.rej.add(origin, expected, "missing file",
                         f"image {expected.name} not found beside the label file or below the source",
                         normalise_label(val), subject)
            return None
        return Record.of(Path(expected).resolve(), val, subject, view, bbox, origin, **_meta(obj, jf, parts, named))

    def unknown_label_error(self) -> ConfigError:
        close = [k for k in self.keys_seen if k.split(".")[-1] == self.label.split(".")[-1]]
        hint = suggest(self.label, sorted(self.keys_seen))
        return ConfigError(f"--label {self.label!r}: no label file has this key{hint}"
                           + (f"; found {close[0]!r}" if close else ""))


def _meta(obj, jf: Path, parts, named) -> dict:
    meta = {"label_file": str(jf.resolve())}
    for k in ("gender", "age"):
        v = _first(obj, [f"info.{k}", k])
        if v is not MISSING and not isinstance(v, (dict, list)):
            meta[k] = v
    if named:
        meta["device"] = parts[1]
    return meta


def read_aihub(root: Path, rej: Rejects, label: str, facepart: Optional[int] = None,
               labels_only: bool = False) -> List[Record]:
    """The records of every ``*.json`` below ``root``, in path order.

    ``label``: the label key; ``facepart``: keep that face part only (others set aside as
    ``other facepart``); ``labels_only``: keep rows whose image is not found (at its expected path).
    Raises ConfigError when no ``label`` is given or no label file has the key.
    """
    if not label:
        raise _no_label_error(root)
    files = sorted(root.rglob("*.json"))
    tree = _Tree(root, label, facepart, labels_only, rej)
    recs = [r for r in map(tree.record, files) if r is not None]
    if files and not tree.label_key_seen:
        raise tree.unknown_label_error()
    return recs
