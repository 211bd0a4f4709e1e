"""A training run's data: the manifest's train / val / test rows, its classes, and the images set aside."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..config import ConfigError
from ..utils import say

__all__ = ["TrainData", "carve_val"]


def carve_val(df, seed: int, fraction: float = 0.15):
    """A copy of ``df`` with ``fraction`` of the training people (grouped by ``subject``) moved to ``val``.

    >>> import pandas as pd
    >>> df = pd.DataFrame({"subject": [f"s{i // 2}" for i in range(40)], "split": "train"})
    >>> out = carve_val(df, seed=0)
    >>> int((out["split"] == "val").sum()), int(out.groupby("subject")["split"].nunique().max())  # 3 of 20 people
    (6, 1)
    """
    from sklearn.model_selection import GroupShuffleSplit

    tr = df.index[df["split"] == "train"]
    groups = df.loc[tr, "subject"].astype(str).values if "subject" in df.columns else np.arange(len(tr))
    gss = GroupShuffleSplit(n_splits=1, test_size=fraction, random_state=seed)
    _, vi = next(gss.split(np.zeros(len(tr)), groups=groups))
    df = df.copy()
    df.loc[tr[vi], "split"] = "val"
    return df


class TrainData:
    """The manifest split into train / val / test with labels; unreadable rows are set aside here.

    Parameters
    ----------
    data : path
        The manifest (``skinage ingest``), with a ``split`` column holding train rows; without val rows,
        15 % of the training people become the validation split.
    seed : int
        Seed of that split.
    ordinal : str or None
        The run's ordinal head; with one, the classes count as ordered even if the manifest does not say so.
    """

    def __init__(self, data: Path, seed: int = 0, ordinal=None):
        from ..data.manifest import read_manifest

        man = read_manifest(data)
        df = man.df.reset_index(drop=True)
        if "split" not in df.columns:
            raise ConfigError(f"{data} has no 'split' column; ingest it with `skinage ingest` (which makes person-grouped splits)")
        df["split"] = df["split"].astype(str).str.lower()
        if not (df["split"] == "train").any():
            raise ConfigError(f"{data} has no rows with split == 'train'")
        self.carved_val = False
        if not (df["split"] == "val").any():
            df = carve_val(df, seed)
            self.carved_val = True
            say("  no 'val' split in the manifest: 15 % of the training people (by subject) are used for validation")
        self.df = df
        self.classes = [str(c) for c in man.classes]
        self.meta = dict(man.meta or {})
        self.ordered = bool(self.meta.get("ordinal", False)) or bool(ordinal)
        self.K = len(self.classes)
        if self.K < 2:
            raise ConfigError(f"{data} has {self.K} class(es); a classifier needs at least 2")
        self.set_aside: list[dict] = []

    def digest(self) -> str:
        """A short hash of every row's path, label and split: equal on every rank of a distributed run."""
        import hashlib

        text = self.df[["path", "label", "split"]].astype(str).to_csv(index=False)
        return hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]

    @property
    def region(self):
        """The crop region the manifest's boxes mark (its metadata's ``region``), or None."""
        return self.meta.get("region")

    def rows(self, split: str):
        """The manifest rows of one split."""
        return self.df[self.df["split"] == split]

    def aside(self, row, reason: str) -> None:
        """Set an unreadable row aside with its reason (written to ``set_aside.csv``)."""
        self.set_aside.append({"path": str(row.get("path", "")), "split": str(row.get("split", "")), "reason": reason})
