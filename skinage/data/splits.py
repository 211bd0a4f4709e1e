"""Person-grouped, label-stratified train / val / test splits and k folds.

All images of one person (group) land in one split: a model is always tested on people it never
saw. Splits are made with scikit-learn's :class:`~sklearn.model_selection.StratifiedGroupKFold`:
the groups are dealt into ``n`` chunks of similar label mix (``n`` = 20 by default, so each chunk
holds about 5 % of the data), then whole chunks go to test, val and train in the asked
proportions. Seeded: the same data and seed give the same split.

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


def assign_splits(
    df: pd.DataFrame,
    val: float = 0.15,
    test: float = 0.15,
    seed: int = 0,
    split_by: str = "subject",
    label_col: str = "label",
    folds: int = 0,
    chunks: int = 20,
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
    chunks : int
        Granularity of the train / val / test deal (20 -> 5 % steps).
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
        # how many chunks go to test / val
        n = max(1, min(chunks, n_groups))
        chunk = _deal(y, groups, n, seed)
        n = int(chunk.max()) + 1
        k_test = int(round(test * n))
        k_val = int(round(val * n))
        if test > 0 and k_test == 0 and n >= 3:
            k_test = 1
        if val > 0 and k_val == 0 and n - k_test >= 2 and not folds:
            k_val = 1
        if k_test + k_val >= n:
            k_test = k_val = 0
        empty = [name for name, want, k in (("test", test, k_test), ("val", val if not folds else 0, k_val)) if want > 0 and k == 0]
        if empty:
            note = f"only {n_groups} group(s): too few people for a {' and '.join(empty)} split"
        order = np.random.default_rng(seed).permutation(n)
        test_chunks = set(order[:k_test].tolist())
        val_chunks = set(order[k_test : k_test + k_val].tolist())
        for c in test_chunks:
            split[chunk == c] = "test"
        if folds:
            rest = split != "test"
            n_rest_groups = len(np.unique(groups[rest]))
            if n_rest_groups < folds:
                raise ConfigError(f"--folds {folds}: only {n_rest_groups} people (groups) outside the test split")
            fold[rest] = _deal(y[rest], groups[rest], folds, seed + 1)
            split[rest] = np.where(fold[rest] == 0, "val", "train")
        else:
            for c in val_chunks:
                split[chunk == c] = "val"
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
