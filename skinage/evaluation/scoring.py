"""Every figure of an evaluation from labels and probabilities: the model and the baselines, on the same rows.

No model and no images here, so the baselines-only evaluation and ``skinage compare`` use it too.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..models.decode import predict_labels
from .bootstrap import bootstrap_ci, paired_bootstrap_difference
from .fusion import fuse_persons, metrics_by_view
from .metrics import (ORDINAL_KEYS, classification_metrics, confusion, expected_calibration_error,
                      metrics_from_confusion, per_class_metrics)

__all__ = ["score_predictions", "ci_metrics"]


def _soft_confusion(y, probs, k) -> np.ndarray:
    """Expected confusion counts: row ``y_i`` receives ``probs[i]``."""
    c = np.zeros((k, k))
    np.add.at(c, np.asarray(y).astype(int), np.asarray(probs, dtype=float))
    return c


def ci_metrics(y, pred, groups, k, ordinal, n_boot, seed) -> dict:
    """Figures with intervals; ``pred`` as classes (N,) or probabilities (N, K) for expected figures."""
    if np.ndim(pred) == 2:
        point = metrics_from_confusion(_soft_confusion(y, pred, k), ordinal)
        point["n"] = int(len(y))
    else:
        point = classification_metrics(y, pred, k, ordinal)
    ci = bootstrap_ci(y, pred, groups=groups, n_classes=k, n_boot=n_boot, seed=seed, ordinal=ordinal)
    point["ci"] = {key: list(v) for key, v in ci.items()}
    return point


def _systems(probs, baselines, ordinal_head) -> tuple[dict, dict]:
    """``{name: {probs, pred, score, description, expected}}`` of the model and the baselines; the skipped ones."""
    systems: dict[str, dict] = {}
    if probs is not None:
        # the model's class by its head's own rule (the rank of an ordinal head), as training chose epochs by
        systems["model"] = {"probs": probs, "pred": predict_labels(probs, ordinal_head),
                            "description": "the image model", "expected": False, "ordinal_head": ordinal_head}
    skipped = {}
    for name, b in (baselines or {}).items():
        if name.endswith("_skipped"):
            skipped[b.name] = b.description
            continue
        systems[name] = {"probs": b.probs, "pred": b.pred, "description": b.description,
                         "expected": bool(getattr(b, "expected", False))}
    for s in systems.values():  # what is scored: classes, or probabilities for expected figures
        s["score"] = s["probs"] if s["expected"] else s["pred"]
    return systems, skipped


def _model_figures(out: dict, y, systems: dict, groups, k, classes, ordinal, n_boot, seed) -> None:
    """Confusion, per-class figures, calibration and the paired gain over each baseline."""
    pred, probs = systems["model"]["pred"], systems["model"]["probs"]
    out["confusion"] = confusion(y, pred, k).tolist()
    out["per_class"] = per_class_metrics(y, pred, k, classes)
    out["ece"] = expected_calibration_error(probs, y, n_bins=10)
    keys = [kk for kk in ("accuracy", "f1_macro", "qwk", "mae") if ordinal or kk not in ORDINAL_KEYS]
    out["gain_over_baselines"] = {}
    for name, s in systems.items():
        if name == "model":
            continue
        d = paired_bootstrap_difference(y, pred, s["score"], groups=groups, n_classes=k, n_boot=n_boot,
                                        seed=seed, ordinal=ordinal, keys=keys)
        out["gain_over_baselines"][name] = {kk: {"difference": v[0], "ci": [v[1], v[2]]} for kk, v in d.items()}


def _perfect_notes(image: dict, n_persons: int, has_persons: bool) -> list[str]:
    """A perfect score makes every resample identical, so the bootstrap interval collapses: say so, with the
    exact (Clopper-Pearson) lower bound for "all n persons right": 0.025 ** (1 / n)."""
    notes = []
    for name, mm in image.items():
        if mm.get("accuracy") == 1.0:
            lo = 0.025 ** (1.0 / n_persons)
            notes.append(
                f"{name}: every image right, so the bootstrap interval collapses to [1, 1]; with {n_persons} "
                f"{'persons' if has_persons else 'images'} all right, the exact 95 % lower bound of the "
                f"accuracy is {lo:.3f} (Clopper-Pearson)")
    return notes


def _person_level(out: dict, y, subjects, systems: dict, k, ordinal, n_boot, seed) -> None:
    """Each person's probabilities averaged, scored with intervals over persons."""
    out["person"] = {}
    persons_table = None
    for name, s in systems.items():
        f = fuse_persons(s["probs"], y, subjects, ordinal_head=s.get("ordinal_head"))
        m = ci_metrics(f.y_true, f.probs if s["expected"] else f.y_pred, None, k, ordinal, n_boot, seed)
        m["label_disagreements"] = f.n_label_disagreements
        out["person"][name] = m
        if name == "model":
            persons_table = f.table
            out["person_confusion"] = confusion(f.y_true, f.y_pred, k).tolist()
    out["_persons_table"] = persons_table


def score_predictions(y, probs, subjects, classes, ordinal: bool, views=None, baselines: dict | None = None,
                      n_boot: int = 1000, seed: int = 0, ordinal_head: str | None = None) -> dict:
    """Every figure of an evaluation from labels and probabilities (model and baselines).

    Parameters
    ----------
    y : (N,) int labels; probs : (N, K) model probabilities (or None for baselines only)
    subjects : (N,) person ids; views : (N,) view names or None
    baselines : ``{name: BaselineResult}`` scored on the same rows

    Returns the ``metrics.json`` dict (``image``, ``person``, ``by_view``, ``per_class``, ...).
    """
    y = np.asarray(y).astype(int)
    k = len(classes)
    subjects = np.asarray(subjects).astype(str)
    n_persons = len(np.unique(subjects))
    has_persons = n_persons < len(y)
    groups = subjects if has_persons else None
    systems, skipped = _systems(None if probs is None else np.asarray(probs, dtype=float), baselines, ordinal_head)
    out: dict[str, Any] = {
        "classes": list(classes), "ordinal": bool(ordinal), "n_images": int(len(y)), "n_persons": int(n_persons),
        "bootstrap": {"unit": "person" if has_persons else "image", "resamples": int(n_boot), "seed": int(seed),
                      "level": 0.95},
        "class_counts": np.bincount(y, minlength=k).tolist(),
        "systems": {name: s["description"] for name, s in systems.items()},
        "baselines_skipped": skipped,
        "image": {name: ci_metrics(y, s["score"], groups, k, ordinal, n_boot, seed) for name, s in systems.items()},
    }
    if "model" in systems:
        _model_figures(out, y, systems, groups, k, classes, ordinal, n_boot, seed)
    out["notes"] = _perfect_notes(out["image"], n_persons, has_persons)
    if has_persons:
        _person_level(out, y, subjects, systems, k, ordinal, n_boot, seed)
    if views is not None:
        v = np.asarray(views).astype(str)
        if len(set(v.tolist()) - {""}) > 1:
            out["by_view"] = {name: metrics_by_view(y, s["pred"], v, k, ordinal)
                              for name, s in systems.items() if not s["expected"]}
    return out
