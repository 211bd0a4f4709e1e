"""Person-grouped, label-stratified train / val / test splits and k folds.

All images of one person (group) land in one split: a model is always tested on people it never
saw. Splits are made with scikit-learn's :class:`~sklearn.model_selection.StratifiedGroupKFold`:
the groups are dealt into k folds of similar label mix and m of them go to test, with m / k as
close as possible to the test fraction (3 of 20 for 0.15 on large data; 1 of 6 with 20 people);
val is taken from the rest the same way; the remainder is train.
Seeded: the same data and seed give the same split.

With ``folds=K``, the rows not in test are dealt into K person-grouped, stratified folds (column
``fold``; test rows get -1); ``split`` is then ``val`` for fold 0 and ``train`` for the others, so
a plain training run uses fold 0 for validation. Use ``test=0`` for K-fold over all the data.

>>> import pandas as pd
>>> df = pd.DataFrame({"subject": [f"p{i // 3}" for i in range(120)],
...                    "label": [(i // 3) % 2 for i in range(120)]})
>>> out, info = assign_splits(df, val=0.15, test=0.15, seed=0)
>>> sorted(out["split"].value_counts().to_dict().items())
[('test', 18), ('train', 84), ('val', 18)]
>>> int(out.groupby("subject")["split"].nunique().max())  # nobody in two splits
1
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple

import numpy as np
import pandas as pd

from ..config import ConfigError

__all__ = ["assign_splits", "SplitInfo", "check_no_leak"]


@dataclass
class SplitInfo:
    """What :func:`assign_splits` did, for the summary."""

    group_by: str
    groups: int
    grouped_by_image: bool
    counts: Dict[str, int] = field(default_factory=dict)
    fractions: Dict[str, float] = field(default_factory=dict)
    folds: int = 0
    note: str = ""


def _groups(df: pd.DataFrame, split_by: str) -> Tuple[np.ndarray, bool]:
    """Group ids per row and whether each image had to be its own group."""
    if split_by in ("image", "row", "none"):
        return np.arange(len(df)).astype(str), True
    if split_by not in df.columns:
        raise ConfigError(
            f"--split-by {split_by!r}: no such column; use 'subject', 'image' or one of: "
            + ", ".join(map(str, df.columns))
        )
    g = df[split_by].fillna("").astype(str)
    missing = (g == "").to_numpy()
    if missing.all():
        return np.array([f"__row{i}" for i in range(len(df))]), True
    vals = g.to_numpy().copy()
    # rows without an id become their own group
    vals[missing] = [f"__row{i}" for i in np.flatnonzero(missing)]
    return vals, False


def _deal(y: np.ndarray, groups: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Chunk index per row: stratified, grouped, seeded; n chunks (or fewer when few groups)."""
    n_groups = len(np.unique(groups))
    # sklearn needs n <= the size of the largest class
    n = max(1, min(n, n_groups, int(np.unique(y, return_counts=True)[1].max()) if len(y) else 1))
    if n == 1:
        return np.zeros(len(y), dtype=int)
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    chunk = np.full(len(y), -1, dtype=int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "least populated class has only k members" is expected
        if n_groups == len(y):  # one row per group: the same deal, much faster
            kf = StratifiedKFold(n_splits=n, shuffle=True, random_state=seed)
            parts = kf.split(np.zeros(len(y)), y)
        else:
            kf = StratifiedGroupKFold(n_splits=n, shuffle=True, random_state=seed)
            parts = kf.split(np.zeros(len(y)), y, groups)
        for k, (_, idx) in enumerate(parts):
            chunk[idx] = k
    return chunk


def _take(idx: np.ndarray, want: float, y: np.ndarray, groups: np.ndarray, seed: int) -> np.ndarray:
    """About ``want`` rows of ``idx``: m of k stratified, grouped folds, m / k closest to the fraction.

    k is at most 20 and, with few people, at most a third of them (so a fold holds a few people
    and can be stratified at all), but never too few folds for the fraction (1 / frac).
    """
    frac = want / len(idx)
    n_g = len(np.unique(groups[idx]))
    kmax = max(2, min(20, n_g, max(n_g // 3, int(math.ceil(1 / max(frac, 1e-9))))))
    best = (math.inf, 2, 1)
    for k in range(2, kmax + 1):
        m = max(1, int(round(frac * k)))
        if m < k and abs(m / k - frac) < best[0] - 1e-9:
            best = (abs(m / k - frac), k, m)
    _, k, m = best
    chunk = _deal(y[idx], groups[idx], k, seed)
    k = int(chunk.max()) + 1  # fewer when the classes are tiny
    m = min(m, k - 1) if k > 1 else 0
    picked = np.random.default_rng(seed).permutation(k)[:m]
    return idx[np.isin(chunk, picked)]


def assign_splits(
    df: pd.DataFrame,
    val: float = 0.15,
    test: float = 0.15,
    seed: int = 0,
    split_by: str = "subject",
    label_col: str = "label",
    folds: int = 0,
) -> Tuple[pd.DataFrame, SplitInfo]:
    """Write ``split`` (train / val / test) and ``fold`` columns; return (df copy, info).

    Parameters
    ----------
    df : DataFrame with ``label_col`` and (usually) a subject column.
    val, test : float
        Fractions of the data (by rows, approximately: whole people move together).
    seed : int
    split_by : str
        Column holding the person id (``subject``), or ``image`` to split by image (leaky when
        people have several images; only for data without person ids).
    folds : int
        K > 1 for K person-grouped folds of the non-test rows.
    """
    if not (0 <= val < 1 and 0 <= test < 1 and val + test < 1):
        raise ConfigError(f"--val {val} and --test {test} must be fractions in [0, 1) with val + test < 1")
    if folds == 1 or folds < 0:
        raise ConfigError(f"--folds must be 0 (no folds) or at least 2, not {folds}")
    out = df.copy().reset_index(drop=True)
    n_rows = len(out)
    groups, by_image = _groups(out, split_by)
    n_groups = len(np.unique(groups)) if n_rows else 0
    y = out[label_col].astype(str).to_numpy() if label_col in out.columns else np.zeros(n_rows, dtype=str)
    split = np.array(["train"] * n_rows, dtype=object)
    fold = np.full(n_rows, -1, dtype=int)
    note = ""
    if n_rows:
        empty = []
        idx_all = np.arange(n_rows)
        if test > 0:
            if n_groups >= (3 if val > 0 else 2):
                split[_take(idx_all, test * n_rows, y, groups, seed)] = "test"
            else:
                empty.append("test")
        rest = np.flatnonzero(split != "test")
        if folds:
            n_rest_groups = len(np.unique(groups[rest]))
            if n_rest_groups < folds:
                raise ConfigError(f"--folds {folds}: only {n_rest_groups} people (groups) outside the test split")
            fold[rest] = _deal(y[rest], groups[rest], folds, seed + 1)
            split[rest] = np.where(fold[rest] == 0, "val", "train")
        elif val > 0:
            if len(np.unique(groups[rest])) >= 2:
                split[_take(rest, val * n_rows, y, groups, seed + 1)] = "val"
            else:
                empty.append("val")
        if empty:
            note = f"only {n_groups} group(s): too few people for a {' and '.join(empty)} split"
    out["split"] = split.astype(str)
    out["fold"] = fold
    counts = {s: int((out["split"] == s).sum()) for s in ("train", "val", "test")}
    fractions = {s: (counts[s] / n_rows if n_rows else 0.0) for s in counts}
    if by_image:
        note = (note + "; " if note else "") + (
            "no subject ids: each image is its own group, so splits are by image "
            "(images of one person may fall in different splits)"
        )
    info = SplitInfo(
        group_by="image" if by_image else split_by,
        groups=n_groups,
        grouped_by_image=by_image,
        counts=counts,
        fractions=fractions,
        folds=int(folds or 0),
        note=note,
    )
    return out, info


def check_no_leak(df: pd.DataFrame, split_by: str = "subject") -> Dict[str, list]:
    """People (groups) found in more than one split: ``{group: [splits]}`` (empty = no leak)."""
    if split_by not in df.columns:
        return {}
    g = df[df[split_by].fillna("").astype(str) != ""]
    multi = g.groupby(split_by)["split"].unique()
    return {k: sorted(v) for k, v in multi.items() if len(v) > 1}
