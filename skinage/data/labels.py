"""Label mapping: ``--remap`` (merge raw grades into levels), ``--bins`` (numbers such as ages into
classes), and numeric-aware class ordering.

``--remap "0,1:0 2,3:1 4:2 5,6:3"``: groups separated by spaces (or ``;``), each
``RAW[,RAW...]:CLASS``. Raw labels are compared after normalisation, so ``3``, ``3.0`` and ``03``
are the same grade. A raw label that no group names is rejected ("label outside remap").

``--bins``: either one number W -- bins of width W named by their lower edge (``--bins 10``:
age 37 -> ``30``, like the folders of UTKFace-style decades) -- or the edges ``e0,e1,...,en``
(increasing; ``inf`` / ``-inf`` allowed): bin i holds ``e_i <= value < e_(i+1)`` and is named
``"18-24"`` (integer edges), ``"40+"`` (open end), ``"<25"`` (open start) or ``"[a, b)"``.
Values outside all bins are rejected ("label outside bins").

>>> m = LabelMapper(remap="0,1:0 2,3:1 4:2 5,6:3")
>>> [m.map(v) for v in ("0", "3.0", 5, "9")]
['0', '1', '3', None]
>>> m.classes()
['0', '1', '2', '3']
>>> b = LabelMapper(bins="18,25,30,40,inf")
>>> [b.map(a) for a in (18, 24.9, 25, 39, 54)], b.classes()
(['18-24', '18-24', '25-29', '30-39', '40+'], ['18-24', '25-29', '30-39', '40+'])
>>> LabelMapper(bins="10").map(37)
'30'
>>> sort_classes(["70", "10", "9", "20"])
['9', '10', '20', '70']
>>> sort_classes(["grade10", "grade2", "Grade1"])
['Grade1', 'grade2', 'grade10']
"""

from __future__ import annotations

import math
import re
from typing import Dict, Iterable, List, Optional, Sequence

from ..config import ConfigError

__all__ = ["normalise_label", "parse_remap", "parse_bins", "Bins", "LabelMapper", "sort_classes", "is_number"]


def is_number(s) -> bool:
    """True for strings / numbers that read as a finite float."""
    try:
        v = float(s)
    except (TypeError, ValueError):
        return False
    return math.isfinite(v)


def normalise_label(v) -> str:
    """A canonical string for a raw label: ``3.0`` / ``"03"`` / ``3`` -> ``"3"``; missing -> ``""``.

    >>> normalise_label(2.0), normalise_label(" 02 "), normalise_label("2.5"), normalise_label(None)
    ('2', '2', '2.5', '')
    """
    if v is None:
        return ""
    if isinstance(v, float) and math.isnan(v):
        return ""
    s = str(v).strip()
    if s.lower() in ("", "nan", "none", "null", "na", "n/a"):
        return ""
    if is_number(s):
        f = float(s)
        if f == int(f) and abs(f) < 1e15:
            return str(int(f))
        return repr(f)
    return s


def _natural_key(s: str):
    return [(0, int(t), "") if t.isdigit() else (1, 0, t.lower()) for t in re.split(r"(\d+)", s) if t != ""]


def sort_classes(names: Iterable) -> List[str]:
    """Class names in a sensible order: numbers as numbers, otherwise natural order."""
    names = [str(n) for n in dict.fromkeys(str(n) for n in names)]
    if names and all(is_number(n) for n in names):
        return sorted(names, key=lambda n: float(n))
    return sorted(names, key=_natural_key)


def parse_remap(spec: str) -> Dict[str, str]:
    """Parse ``"0,1:0 2,3:1"`` into ``{raw: class}`` (raw labels normalised).

    >>> parse_remap("0,1:low 2:high")
    {'0': 'low', '1': 'low', '2': 'high'}
    """
    if spec is None or not str(spec).strip():
        raise ConfigError("--remap is empty; write groups like \"0,1:0 2,3:1 4:2 5,6:3\"")
    out: Dict[str, str] = {}
    for group in re.split(r"[\s;]+", str(spec).strip()):
        if not group:
            continue
        if group.count(":") != 1:
            raise ConfigError(
                f"--remap: cannot read group {group!r}; each group is RAW[,RAW...]:CLASS, "
                "groups separated by spaces, e.g. \"0,1:0 2,3:1 4:2 5,6:3\""
            )
        src, dst = group.split(":")
        dst = dst.strip()
        if not dst:
            raise ConfigError(f"--remap: group {group!r} has no class after ':'")
        raws = [normalise_label(r) for r in src.split(",") if r.strip() != ""]
        if not raws:
            raise ConfigError(f"--remap: group {group!r} names no raw label before ':'")
        for r in raws:
            if r in out and out[r] != dst:
                raise ConfigError(f"--remap: raw label {r!r} is mapped twice ({out[r]!r} and {dst!r})")
            out[r] = dst
    return out


class Bins:
    """Numeric bins (see the module docstring for the syntax)."""

    def __init__(self, edges: Optional[Sequence[float]] = None, width: Optional[float] = None):
        self.edges = list(edges) if edges is not None else None
        self.width = width

    def __repr__(self) -> str:
        return f"Bins(width={self.width})" if self.width else f"Bins(edges={self.edges})"

    @staticmethod
    def _fmt(v: float) -> str:
        return str(int(v)) if float(v).is_integer() else f"{v:g}"

    def name(self, i: int) -> str:
        lo, hi = self.edges[i], self.edges[i + 1]
        if math.isinf(lo):
            return f"<{self._fmt(hi)}"
        if math.isinf(hi):
            return f"{self._fmt(lo)}+"
        if float(lo).is_integer() and float(hi).is_integer():
            return f"{int(lo)}-{int(hi) - 1}" if hi - lo > 1 else f"{int(lo)}"
        return f"[{self._fmt(lo)}, {self._fmt(hi)})"

    def map(self, value) -> Optional[str]:
        s = normalise_label(value)
        if not is_number(s):
            return None
        v = float(s)
        if self.width:
            lo = math.floor(v / self.width) * self.width
            return self._fmt(lo)
        for i in range(len(self.edges) - 1):
            if self.edges[i] <= v < self.edges[i + 1]:
                return self.name(i)
        return None

    def classes(self, observed: Iterable[str] = ()) -> List[str]:
        if self.width:
            return sort_classes(observed)
        return [self.name(i) for i in range(len(self.edges) - 1)]


def parse_bins(spec) -> Bins:
    """Parse ``"10"`` (width) or ``"18,25,30,40,inf"`` (edges).

    >>> parse_bins("0,30,inf").classes()
    ['0-29', '30+']
    """
    if isinstance(spec, (int, float)):
        parts = [str(spec)]
    elif isinstance(spec, (list, tuple)):
        parts = [str(p) for p in spec]
    else:
        parts = [p for p in re.split(r"[\s,;]+", str(spec or "").strip()) if p]
    try:
        vals = [float(p) for p in parts]
    except ValueError:
        raise ConfigError(
            f"--bins: cannot read {spec!r}; give a width (\"10\": decades) or increasing edges "
            "(\"18,25,30,40,inf\")"
        ) from None
    if not vals:
        raise ConfigError("--bins is empty; give a width (\"10\") or edges (\"18,25,30,40,inf\")")
    if len(vals) == 1:
        if not (math.isfinite(vals[0]) and vals[0] > 0):
            raise ConfigError(f"--bins: a single value is a bin width and must be > 0, not {parts[0]}")
        return Bins(width=vals[0])
    if any(b <= a for a, b in zip(vals, vals[1:])):
        raise ConfigError(f"--bins: edges must increase strictly, got {spec!r}")
    return Bins(edges=vals)


class LabelMapper:
    """Turns raw labels into class names with an optional remap or bins.

    ``map(raw)`` gives the class name, or ``None`` when the label is outside the remap / bins
    (``why(raw)`` says which). ``classes(observed)`` gives the ordered class list.
    """

    def __init__(self, remap: Optional[str] = None, bins=None):
        if remap and bins not in (None, "", ()):
            raise ConfigError("use either --remap or --bins, not both")
        self.remap = parse_remap(remap) if remap else None
        self.bins = parse_bins(bins) if bins not in (None, "", ()) else None

    @property
    def ordinal_hint(self) -> Optional[bool]:
        """True when the mapping itself implies ordered classes (bins); None = decide from names."""
        return True if self.bins is not None else None

    def map(self, raw) -> Optional[str]:
        s = normalise_label(raw)
        if s == "":
            return None
        if self.remap is not None:
            return self.remap.get(s)
        if self.bins is not None:
            return self.bins.map(s)
        return s

    def why(self, raw) -> str:
        s = normalise_label(raw)
        if s == "":
            return "missing label"
        if self.remap is not None:
            return "label outside remap"
        if self.bins is not None:
            return "label outside bins" if is_number(s) else "label not a number (--bins)"
        return "missing label"

    def classes(self, observed: Iterable[str] = ()) -> List[str]:
        observed = list(observed)
        if self.remap is not None:
            targets = list(dict.fromkeys(self.remap.values()))
            if all(is_number(t) for t in targets):
                return sort_classes(targets)
            return targets  # the order the user wrote them
        if self.bins is not None:
            return self.bins.classes(observed)
        return sort_classes(observed)
