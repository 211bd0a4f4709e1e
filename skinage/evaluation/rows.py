"""Which rows an evaluation scores: the run's manifest, the split, labels in the model's class order, persons.

>>> import pandas as pd
>>> person_ids(pd.DataFrame({"subject": ["0001", "", "0001"]})).tolist()
['0001', '__image_1', '0001']
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence, Tuple

import numpy as np

from ..config import ConfigError

__all__ = ["run_dir_of", "run_manifest_path", "select_split", "align_labels", "person_ids", "training_rows"]


def _read_yaml(path: Path) -> dict:
    try:
        import yaml

        return yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except Exception:  # an unreadable args.yaml only costs the default manifest
        return {}


def run_dir_of(run) -> Path:
    """The run folder of a run folder, a weights file or a weights stem."""
    run = Path(run)
    if run.is_dir():
        return run
    if run.parent.name == "weights":
        return run.parent.parent
    return run.parent


def run_manifest_path(run: Path, meta: dict | None = None) -> Path | None:
    """The manifest a run was trained on: ``args.yaml`` ``data``, else the checkpoint's ``train.data``."""
    rd = run_dir_of(run)
    cands = []
    args = rd / "args.yaml"
    if args.is_file():
        a = _read_yaml(args)
        cands += [a.get("data"), a.get("manifest")]
    meta = meta or {}
    tr = meta.get("train") if isinstance(meta.get("train"), dict) else {}
    cands += [tr.get("data"), meta.get("manifest")]
    for c in cands:
        if c and str(c) not in ("None", ""):
            p = Path(str(c))
            for q in (p, rd / p, Path.cwd() / p):
                if q.is_file():
                    return q
    return None


def select_split(df, split: str, where: str):
    """The rows of ``split`` (test / val / train, or all), re-indexed; ConfigError when there are none."""
    if split == "all":
        return df.reset_index(drop=True)
    if "split" not in df.columns:
        raise ConfigError(f"{where} has no 'split' column; use --split all")
    sub = df[df["split"].astype(str).str.lower() == split]
    if len(sub) == 0:
        have = sorted(set(df["split"].astype(str)))
        raise ConfigError(f"{where} has no rows in split '{split}' (it has: {', '.join(have) or 'none'}); "
                          f"choose one with --split")
    return sub.reset_index(drop=True)


def align_labels(df, data_classes: Sequence[str], model_classes: Sequence[str], where: str):
    """Map the evaluation manifest's labels onto the model's class list by name."""
    if list(data_classes) == list(model_classes):
        return df
    index = {c: i for i, c in enumerate(model_classes)}
    unknown = sorted(set(df["class_name"].astype(str)) - set(index) - {""})
    if unknown:
        raise ConfigError(f"{where} has classes the model does not know: {unknown}; the model's classes are "
                          f"{list(model_classes)}")
    df = df.copy()
    df["label"] = df["class_name"].astype(str).map(index).fillna(-1).astype(int)
    return df


def person_ids(df) -> np.ndarray:
    """Person ids of a manifest's (or predictions file's) rows; an image without one is a person of its own."""
    s = df["subject"].astype(str).to_numpy() if "subject" in df.columns else np.array([""] * len(df))
    own = np.array([f"__image_{i}" for i in range(len(df))])
    return np.where((s == "") | (s == "nan"), own, s)


def training_rows(candidates: Sequence[Path], data_path: Path, data_manifest, classes: Optional[Sequence[str]],
                  split: str) -> Tuple[object, Optional[str]]:
    """The labelled train split the baselines are fitted on, and the manifest it came from (None, None if none).

    ``candidates`` are tried in order (the run's own manifest, then the evaluated one); the evaluated
    manifest's rows are not used when all of its rows are scored (``split == "all"``).
    ``classes``: the model's classes to align labels to (None for baselines only).
    """
    from ..data.manifest import read_manifest

    for cand in candidates:
        same = Path(cand).resolve() == data_path.resolve()
        try:
            tm = data_manifest if same else read_manifest(cand)
        except (FileNotFoundError, OSError, ValueError):
            continue
        if "split" not in tm.df.columns:
            continue
        t = tm.df[tm.df["split"].astype(str).str.lower() == "train"]
        if classes is not None and list(tm.classes) != list(classes):
            t = align_labels(t, tm.classes, classes, str(cand))
        t = t[t["label"].astype(int) >= 0]
        if len(t) and not (split == "all" and same):
            return t.reset_index(drop=True), str(cand)
    return None, None
