"""The summary ``skinage ingest`` prints: samples per class / view and split, subjects, boxes, rejects."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import List, Optional, Sequence

import pandas as pd

from .labels import sort_classes
from .manifest import Manifest

__all__ = ["summarize"]

_SPLITS = ("train", "val", "test")


def _crosstab(df: pd.DataFrame, col: str, order: Sequence[str]) -> str:
    width = max([len(col)] + [len(str(o)) for o in order] + [5])
    lines = [f"  {col:<{width}} " + " ".join(f"{s:>6}" for s in _SPLITS) + f" {'total':>6}"]
    for o in order:
        sub = df.loc[df[col] == o, "split"]
        lines.append(f"  {str(o):<{width}} " + " ".join(f"{int((sub == s).sum()):>6}" for s in _SPLITS)
                     + f" {len(sub):>6}")
    tot = [int((df["split"] == s).sum()) for s in _SPLITS]
    lines.append(f"  {'total':<{width}} " + " ".join(f"{t:>6}" for t in tot) + f" {len(df):>6}")
    if len(df):
        lines.append(f"  {'share':<{width}} " + " ".join(f"{t / len(df):>6.1%}" for t in tot))
    return "\n".join(lines)


def _leak(df: pd.DataFrame) -> bool:
    return bool(len(df)) and bool((df.groupby("subject")["split"].nunique() > 1).any())


def _subject_lines(df: pd.DataFrame, subj: dict, rejected: pd.DataFrame) -> List[str]:
    lines = []
    if len(df):
        per = {s: df.loc[df["split"] == s, "subject"].nunique() for s in _SPLITS}
        if subj.get("unknown", 0) == len(df):
            lines.append(f"subjects: none given -> each image is its own group ({len(df)} groups); "
                         "splits are by image (use --subject-regex or a subject column if people have several images)")
        else:
            lines.append(f"subjects: {df['subject'].nunique()} (train {per['train']}, val {per['val']}, test {per['test']})"
                         + (f"; {subj['unknown']} images without a subject id are their own group" if subj.get("unknown") else "")
                         + ("; no subject is in two splits" if not _leak(df) else "; WARNING: subjects in two splits"))
    if len(rejected) and "subject" in rejected.columns:
        gone = sorted(set(rejected.loc[rejected["subject"] != "", "subject"]) - set(df["subject"]))
        if gone:
            lines.append(f"subjects set aside entirely (all their rows rejected): {len(gone)}: "
                         + ", ".join(gone[:10]) + (" ..." if len(gone) > 10 else ""))
    return lines


def _reject_lines(rejected: pd.DataFrame, rpath) -> List[str]:
    if not len(rejected):
        return ["rejected: 0"]
    lines = [f"rejected: {len(rejected)} (see {rpath})"]
    for reason, n in Counter(rejected["reason"]).most_common():
        lines.append(f"  {reason:<28} {n:>6}")
    return lines


def summarize(manifest: Manifest, rejected: pd.DataFrame, fmt: str = "", source="", out="", rpath="",
              notes: Sequence[str] = (), mapping: Optional[dict] = None, n_read: int = 0, seconds: float = 0.0) -> str:
    """The human summary printed by ``skinage ingest``."""
    df = manifest.df
    m = manifest.meta
    lines = [f"skinage ingest: {fmt} source {source}"]
    if mapping:
        lines.append("columns: " + ", ".join(f"{k}={v}" for k, v in mapping.items() if v))
    kind = "ordinal" if manifest.ordinal else "unordered"
    lines.append(f"{len(df)} samples kept of {n_read} read, {len(manifest.classes)} classes ({kind}): "
                 + ", ".join(manifest.classes))
    lines.append("samples per class and split:")
    lines.append(_crosstab(df, "class_name", manifest.classes))
    views = [v for v in sort_classes(df["view"].unique()) if v != ""] if len(df) else []
    if views:
        lines.append("samples per view and split:")
        lines.append(_crosstab(df, "view", views))
    subj = m.get("subjects", {})
    lines += _subject_lines(df, subj, rejected)
    if (df["fold"] >= 0).any():
        lines.append("folds: " + ", ".join(f"{k}: {n}" for k, n in sorted(df.loc[df['fold'] >= 0, 'fold'].value_counts().items())))
    bb = m.get("bbox", {})
    lines.append(f"bbox: {bb.get('given', 0)} given, {bb.get('whole_image', 0)} whole image (no/null bbox)"
                 + (f", {bb['clamped']} clamped to the image" if bb.get("clamped") else ""))
    lines += _reject_lines(rejected, rpath)
    for n in notes:
        if n and not (n.startswith("no subject ids") and subj.get("unknown", 0) == len(df)):
            lines.append(f"note: {n}")
    lines.append(f"wrote {out} (+ {Path(out).stem}.meta.json, {Path(rpath).name}) in {seconds:.1f} s")
    return "\n".join(lines)
