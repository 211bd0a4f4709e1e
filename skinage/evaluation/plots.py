"""Pictures a person reads: confusion matrices, training curves, embeddings, Grad-CAM, reliability.

Every function writes one PNG (matplotlib, Agg backend, no display needed) and
returns its path; axes carry class names. Grad-CAM is implemented here with
hooks on the model's ``cam_layer`` (no extra dependency).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = [
    "confusion_figure",
    "plot_confusion",
    "plot_training_curves",
    "embed_2d",
    "plot_embeddings",
    "plot_reliability",
    "gradcam",
    "plot_gradcam",
]


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path) -> Path:
    from ..utils import atomic_write

    path = Path(path)
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=110, bbox_inches="tight")
    _plt().close(fig)
    return path


def _short(names: Sequence[str], n: int = 14) -> list[str]:
    return [s if len(s) <= n else s[: n - 1] + "…" for s in map(str, names)]


def confusion_figure(cm, classes: Sequence[str], title: str = ""):
    """The figure of :func:`plot_confusion`: counts and row-normalised panels, both axes of both ticked with ``classes``.

    >>> fig = confusion_figure([[5, 1], [2, 4]], ["young", "old"])
    >>> [[t.get_text() for t in ax.get_xticklabels()] for ax in fig.axes[:2]]
    [['young', 'old'], ['young', 'old']]
    >>> _plt().close(fig)
    """
    plt = _plt()
    cm = np.asarray(cm, dtype=float)
    k = cm.shape[0]
    if cm.shape != (k, k) or len(classes) != k:
        raise ValueError(f"confusion matrix {cm.shape} does not match {len(classes)} class names")
    rows = cm.sum(1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    size = max(4.0, 0.7 * k + 2.5)
    fig, axes = plt.subplots(1, 2, figsize=(2 * size + 1, size))
    names = _short(classes)
    for ax, data, sub, fmt in ((axes[0], cm, "counts", "{:.0f}"), (axes[1], norm, "row-normalised (recall)", "{:.2f}")):
        im = ax.imshow(data, cmap="Blues", vmin=0, vmax=data.max() if data.max() > 0 else 1)
        ax.set_xticks(range(k), names, rotation=45 if k > 4 else 0, ha="right" if k > 4 else "center")
        ax.set_yticks(range(k), names)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(sub)
        hi = data.max() / 2 if data.max() > 0 else 0.5
        fs = 10 if k <= 8 else 7
        for i in range(k):
            for j in range(k):
                ax.text(j, i, fmt.format(data[i, j]), ha="center", va="center", fontsize=fs,
                        color="white" if data[i, j] > hi else "black")
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_confusion(cm, classes: Sequence[str], path: str | os.PathLike, title: str = "") -> Path:
    """Confusion matrix as counts and row-normalised (recall per true class), side by side, into a PNG.

    Rows are the true class, columns the predicted one; the ticks are the class names.

    >>> import tempfile
    >>> p = plot_confusion([[5, 1], [2, 4]], ["young", "old"], tempfile.mkdtemp() + "/cm.png")
    >>> p.stat().st_size > 1000
    True
    """
    return _save(confusion_figure(cm, classes, title), path)


def plot_training_curves(results_csv: str | os.PathLike, path: str | os.PathLike) -> Path | None:
    """Loss and validation metrics per epoch from a run's ``results.csv`` (None if absent/empty)."""
    import pandas as pd

    p = Path(results_csv)
    if not p.is_file():
        return None
    df = pd.read_csv(p)
    if df.empty:
        return None
    x = df["epoch"] if "epoch" in df.columns else pd.Series(range(1, len(df) + 1))
    num = [c for c in df.columns if c != "epoch" and pd.api.types.is_numeric_dtype(df[c]) and df[c].notna().any()]
    loss = [c for c in num if "loss" in c.lower()]
    lr = [c for c in num if c.lower() in ("lr", "learning_rate") or c.lower().startswith("lr")]
    metric = [c for c in num if c not in loss and c not in lr and any(
        t in c.lower() for t in ("acc", "f1", "qwk", "kappa", "mae", "within", "recall", "precision"))]
    panels = [(loss, "loss"), (metric, "accuracy and other metrics"), (lr, "learning rate")]
    panels = [(c, t) for c, t in panels if c]
    if not panels:
        return None
    plt = _plt()
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 3.8), squeeze=False)
    for ax, (cols, title) in zip(axes[0], panels):
        for c in cols:
            ax.plot(x, df[c], marker="o" if len(df) < 30 else None, ms=3, label=c)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def embed_2d(emb, method: str = "auto", seed: int = 0) -> tuple[np.ndarray, str]:
    """2-D coordinates of embeddings: t-SNE (after PCA to 50-d), or PCA for small/huge n.

    ``method``: ``auto`` (t-SNE for 30..5000 points, else PCA), ``tsne`` or ``pca``.
    Returns ``(coords (N, 2), method used)``.
    """
    from sklearn.decomposition import PCA

    x = np.asarray(emb, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"embeddings must have shape (N, D), got {x.shape}")
    n = len(x)
    if method not in ("auto", "tsne", "pca"):
        raise ValueError(f"method must be auto, tsne or pca, got {method!r}")
    if n < 3:
        out = np.zeros((n, 2))
        out[:, 0] = np.arange(n)
        return out, "none"
    use_tsne = method == "tsne" or (method == "auto" and 30 <= n <= 5000)
    if use_tsne and n < 10:
        use_tsne = False
    k = min(50, x.shape[1], n - 1)
    red = PCA(n_components=k, random_state=seed).fit_transform(x) if x.shape[1] > k else x
    if not use_tsne:
        if red.shape[1] >= 2:
            return PCA(n_components=2, random_state=seed).fit_transform(red), "PCA"
        return np.c_[red[:, 0], np.zeros(n)], "PCA"
    from sklearn.manifold import TSNE

    perp = float(min(30.0, max(2.0, (n - 1) / 3.0)))
    coords = TSNE(n_components=2, perplexity=perp, init="pca", random_state=seed).fit_transform(red)
    return coords, "t-SNE"


def plot_embeddings(emb, labels, classes: Sequence[str], path: str | os.PathLike, method: str = "auto",
                    ordinal: bool = True, seed: int = 0, pred=None) -> Path:
    """Embeddings in 2-D coloured by true class (wrong predictions ringed in red)."""
    plt = _plt()
    coords, used = embed_2d(emb, method, seed)
    y = np.asarray(labels).astype(int)
    k = len(classes)
    cmap = plt.get_cmap("plasma" if ordinal else "tab10")
    fig, ax = plt.subplots(figsize=(7, 6))
    for c in range(k):
        m = y == c
        if m.any():
            # plasma without its pale-yellow end: ordered levels dark blue -> orange, all visible on white
            color = cmap(0.8 * c / max(1, k - 1)) if ordinal else cmap(c % 10)
            ax.scatter(coords[m, 0], coords[m, 1], s=14, color=color, label=f"{classes[c]} ({m.sum()})", alpha=0.8)
    if pred is not None:
        wrong = np.asarray(pred) != y
        ax.scatter(coords[wrong, 0], coords[wrong, 1], s=40, facecolors="none", edgecolors="red",
                   linewidths=0.7, label=f"wrong ({wrong.sum()})")
    ax.set_title(f"{used} of the embeddings, coloured by true class")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return _save(fig, path)


def plot_reliability(probs, y_true, path: str | os.PathLike, n_bins: int = 10) -> Path:
    """Reliability diagram (accuracy vs confidence per bin) with the ECE, and a confidence histogram."""
    from .metrics import calibration_bins, expected_calibration_error

    plt = _plt()
    b = calibration_bins(probs, y_true, n_bins)
    ece = expected_calibration_error(probs, y_true, n_bins)
    edges = b["edges"]
    centers = (edges[:-1] + edges[1:]) / 2
    width = edges[1] - edges[0]
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(5.5, 6.2), gridspec_kw={"height_ratios": [3, 1]}, sharex=True)
    ok = b["count"] > 0
    ax.bar(centers[ok], b["accuracy"][ok], width=width * 0.95, color="#4C72B0", edgecolor="black", label="accuracy")
    ax.bar(centers[ok], b["confidence"][ok] - b["accuracy"][ok], bottom=b["accuracy"][ok], width=width * 0.95,
           color="#DD8452", alpha=0.5, edgecolor="#DD8452", label="gap to confidence")
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1)
    ax.set_title(f"Reliability: ECE = {ece:.3f} ({int(b['count'].sum())} predictions)")
    ax.legend(fontsize=8, loc="upper left")
    ax2.bar(centers, b["count"], width=width * 0.95, color="grey")
    ax2.set_xlabel("confidence of the predicted class")
    ax2.set_ylabel("count")
    ax2.set_xlim(0, 1)
    fig.tight_layout()
    return _save(fig, path)


def gradcam(model, x, target=None):
    """Grad-CAM heat maps of a batch on the model's ``cam_layer``.

    Parameters
    ----------
    model : SkinageModel
        Any model with ``cam_layer``, ``forward`` and ``probs_from_outputs``.
    x : torch.Tensor (B, 3, H, W)
        Float RGB in [0, 1].
    target : sequence of int, optional
        Class to explain per image (default: the predicted class).

    Returns
    -------
    cams : numpy array (B, H, W) in [0, 1]
        ReLU of the gradient-weighted sum of the layer's channels, upsampled.
    pred : numpy array (B,)
        Predicted classes.

    The score differentiated is the log-probability of the target class, so it
    works for softmax and ordinal (CORAL / CORN) heads alike. A model's test-time
    augmentation (``model.tta``) is switched off meanwhile: the map explains the image as shown.
    """
    import torch
    import torch.nn.functional as F

    layer = getattr(model, "cam_layer", None)
    if layer is None:
        raise ValueError("the model has no cam_layer to compute Grad-CAM on")
    store: dict = {}

    def fwd_hook(_m, _inp, out):
        store["act"] = out

    was_training, tta = model.training, getattr(model, "tta", None)
    model.eval()
    if tta is not None:
        model.tta = None
    h = layer.register_forward_hook(fwd_hook)
    try:
        with torch.enable_grad():
            xx = x.detach().clone().float().requires_grad_(True)
            out = model(xx)
            probs = model.probs_from_outputs(out)
            pred = probs.argmax(1)
            tgt = pred if target is None else torch.as_tensor(target, dtype=torch.long)
            score = torch.log(probs.gather(1, tgt.view(-1, 1)).clamp_min(1e-12)).sum()
            # gradient w.r.t. the activations only: the parameters' .grad stay untouched
            (grad,) = torch.autograd.grad(score, store["act"])
        act, grad = store["act"].detach(), grad.detach()
        w = grad.mean((2, 3), keepdim=True)
        cam = F.relu((w * act).sum(1, keepdim=True))
        cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
        mx = cam.flatten(1).max(1).values.view(-1, 1, 1)
        cam = torch.where(mx > 0, cam / mx.clamp_min(1e-12), torch.zeros_like(cam))
    finally:
        h.remove()
        model.train(was_training)
        if tta is not None:
            model.tta = tta
    return cam.numpy(), pred.numpy()


def plot_gradcam(images, cams, titles: Sequence[str], path: str | os.PathLike, suptitle: str = "",
                 ncols: int = 4) -> Path:
    """A grid of images with their Grad-CAM maps overlaid (jet, 45 % opacity).

    ``images``: (N, H, W, 3) uint8; ``cams``: (N, H, W) in [0, 1].
    """
    plt = _plt()
    n = len(images)
    if n == 0:
        raise ValueError("no images to draw")
    if len(cams) != n or len(titles) != n:
        raise ValueError(f"{n} images, {len(cams)} maps and {len(titles)} titles: lengths differ")
    ncols = min(ncols, n)
    nrows = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.1 * ncols, 3.9 * nrows + 0.4), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for i in range(n):
        ax = axes.ravel()[i]
        ax.imshow(images[i])
        ax.imshow(cams[i], cmap="jet", alpha=0.45, vmin=0, vmax=1)
        ax.set_title(titles[i], fontsize=9)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return _save(fig, path)
