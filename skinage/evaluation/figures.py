"""The pictures of an evaluation: which plots (:mod:`.plots` draws them) and which images for Grad-CAM."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import plots

__all__ = ["write_figures", "pick_gradcam"]


def pick_gradcam(y, probs, pred, n: int, ordinal: bool):
    """Indices of confident right answers (spread over classes) and of the worst wrong ones."""
    conf = probs[np.arange(len(pred)), pred]
    right = np.flatnonzero(pred == y)
    by_class = [list(right[y[right] == c][np.argsort(-conf[right[y[right] == c]])]) for c in range(probs.shape[1])]
    pick = []
    while len(pick) < n and any(by_class):
        for lst in by_class:
            if lst and len(pick) < n:
                pick.append(lst.pop(0))
    wrong = np.flatnonzero(pred != y)
    err = np.abs(pred[wrong] - y[wrong]) if ordinal else np.zeros(len(wrong))
    order = np.lexsort((-conf[wrong], -err))  # biggest level error first, then most confident
    return np.asarray(pick, dtype=int), wrong[order][:n]


def _gradcam_figures(out_dir: Path, model, df, y, probs, pred, classes, ordinal, n: int, pre) -> dict:
    import torch

    from .inference import load_crops

    files = {}
    right, wrong = pick_gradcam(y, probs, pred, n, ordinal)
    for kind, idx in (("right", right), ("wrong", wrong)):
        if len(idx) == 0:
            continue
        imgs = load_crops(df, idx, pre)
        x = torch.from_numpy(imgs).permute(0, 3, 1, 2).float().div(255.0)
        cams, _ = plots.gradcam(model, x, target=pred[idx])
        titles = [f"true {classes[y[i]]} / pred {classes[p]}\np={probs[i, p]:.2f}  {Path(str(df.iloc[i]['path'])).name[:22]}"
                  for i, p in zip(idx, pred[idx])]
        title = ("most confident right answers" if kind == "right"
                 else "worst wrong answers (largest error, then most confident)")
        files[f"gradcam_{kind}"] = plots.plot_gradcam(imgs, cams, titles, out_dir / f"gradcam_{kind}.png", title)
    return files


def write_figures(out_dir: Path, metrics: dict, classes, ordinal: bool, *, run_dir: Path | None = None, model=None,
                  df=None, y=None, probs=None, emb=None, pred=None, pre=None, embedding: str = "auto",
                  seed: int = 0, gradcam: int = 8) -> dict:
    """Write the PNG plots of an evaluation into ``out_dir``; returns ``{name: path}``.

    Confusion matrices (image and person level, axes labelled with ``classes``) from ``metrics``;
    training curves from ``run_dir``; reliability, embeddings (``embedding``: auto / tsne / pca / none)
    and ``gradcam`` Grad-CAM pictures of each kind when there is a model. ``pred``: the model's
    classes by its head's rule.
    """
    files = {}
    if "confusion" in metrics:
        files["confusion"] = plots.plot_confusion(metrics["confusion"], classes, out_dir / "confusion_matrix.png",
                                                  "image level")
    if "person_confusion" in metrics:
        files["person_confusion"] = plots.plot_confusion(metrics["person_confusion"], classes,
                                                         out_dir / "confusion_matrix_persons.png",
                                                         "person level (views averaged)")
    if run_dir is not None:
        p = plots.plot_training_curves(run_dir / "results.csv", out_dir / "training_curves.png")
        if p:
            files["training_curves"] = p
    if probs is not None and len(y):
        files["reliability"] = plots.plot_reliability(probs, y, out_dir / "reliability.png")
    if emb is not None and embedding != "none" and len(y) >= 3:
        files["embeddings"] = plots.plot_embeddings(emb, y, classes, out_dir / "embeddings.png", embedding,
                                                    ordinal, seed, pred=pred)
    if model is not None and gradcam > 0 and len(y):
        files.update(_gradcam_figures(out_dir, model, df, y, probs, pred, classes, ordinal, gradcam, pre))
    return files
