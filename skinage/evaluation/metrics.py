"""Classification metrics for ordered grades and plain classes.

Point estimates use scikit-learn; :func:`metrics_from_confusion` computes the
same headline figures from (a stack of) confusion matrices, which is what the
bootstrap uses to score a thousand resamples at once. Both agree exactly
(tested). This is the one implementation: ``skinage evaluate`` and training's
validation (:mod:`skinage.training.selection`, which ``skinage train`` picks its
best epoch with and ``skinage tune`` scores trials with) both call it.

Undefined is NaN, everywhere: a figure that has no value for the labels given
(QWK when the truth and the predictions hold a single class between them, so no
agreement beyond chance can be measured) is ``nan``, never 0.0 (which would claim
chance-level agreement). Macro averages run over the classes present in the truth
or the predictions, so they are defined whenever there is a sample. Wherever a
score *selects* (training's ``--select``, tune's trials) NaN ranks below every
defined score.

>>> classification_metrics([2, 2, 2], [2, 2, 2], n_classes=4)["qwk"]
nan

The forehead project's published confusion matrix, rows = true grade 0..3:

>>> import numpy as np
>>> C = np.array([[322, 80, 5, 0], [104, 171, 68, 37], [0, 7, 24, 44], [0, 0, 5, 98]])
>>> m = metrics_from_confusion(C)
>>> round(m["accuracy"], 3), round(m["qwk"], 3), round(m["within_one"], 3), round(m["mae"], 2)
(0.637, 0.778, 0.956, 0.41)
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = [
    "HEADLINE",
    "ORDINAL_KEYS",
    "check_labels",
    "confusion",
    "classification_metrics",
    "metrics_from_confusion",
    "per_class_metrics",
    "expected_calibration_error",
    "calibration_bins",
    "labels_from_confusion",
]

#: the headline figures, in display order
HEADLINE = (
    "accuracy",
    "balanced_accuracy",
    "precision_macro",
    "recall_macro",
    "f1_macro",
    "precision_weighted",
    "recall_weighted",
    "f1_weighted",
    "qwk",
    "mae",
    "within_one",
)
#: figures that only mean something when the classes are ordered levels
ORDINAL_KEYS = ("qwk", "mae", "within_one")


def check_labels(y_true, y_pred, n_classes: int | None = None) -> tuple[np.ndarray, np.ndarray, int]:
    """Validate two label vectors; return them as int arrays and the number of classes.

    >>> check_labels([0, 1], [1, 1])[2]
    2
    >>> check_labels([0, 1], [1])
    Traceback (most recent call last):
    ...
    ValueError: y_true and y_pred must have the same length, got 2 and 1
    """
    yt = np.asarray(y_true)
    yp = np.asarray(y_pred)
    if yt.ndim != 1 or yp.ndim != 1:
        raise ValueError(f"labels must be 1-D vectors of class indices, got shapes {yt.shape} and {yp.shape}")
    if len(yt) != len(yp):
        raise ValueError(f"y_true and y_pred must have the same length, got {len(yt)} and {len(yp)}")
    if len(yt) == 0:
        raise ValueError("no samples to score (empty label vectors)")
    for name, v in (("y_true", yt), ("y_pred", yp)):
        if not np.issubdtype(v.dtype, np.integer):
            if not np.all(np.equal(np.mod(v.astype(float), 1), 0)):
                raise ValueError(f"{name} must hold integer class indices, got e.g. {v[0]!r}")
        if (v < 0).any():
            raise ValueError(f"{name} holds negative class indices (min {v.min()})")
    yt = yt.astype(np.int64)
    yp = yp.astype(np.int64)
    k = int(max(yt.max(), yp.max())) + 1
    if n_classes is None:
        n_classes = k
    elif k > n_classes:
        raise ValueError(f"class index {k - 1} out of range for {n_classes} classes")
    return yt, yp, int(n_classes)


def confusion(y_true, y_pred, n_classes: int | None = None, weights=None) -> np.ndarray:
    """Confusion matrix, rows = true class, columns = predicted class.

    >>> confusion([0, 0, 1, 2], [0, 1, 1, 1], n_classes=3).tolist()
    [[1, 1, 0], [0, 1, 0], [0, 1, 0]]
    """
    yt, yp, k = check_labels(y_true, y_pred, n_classes)
    c = np.bincount(yt * k + yp, weights=weights, minlength=k * k).reshape(k, k)
    return c if weights is not None else c.astype(np.int64)


def labels_from_confusion(c) -> tuple[np.ndarray, np.ndarray]:
    """Expand a confusion matrix back into (y_true, y_pred) label vectors.

    >>> labels_from_confusion([[1, 2], [0, 1]])
    (array([0, 0, 0, 1]), array([0, 1, 1, 1]))
    """
    c = np.asarray(c, dtype=np.int64)
    if c.ndim != 2 or c.shape[0] != c.shape[1]:
        raise ValueError(f"a confusion matrix must be square (K, K), got shape {c.shape}")
    i, j = np.indices(c.shape)
    return np.repeat(i.ravel(), c.ravel()), np.repeat(j.ravel(), c.ravel())


def _div(a, b):
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    out = np.zeros(np.broadcast(a, b).shape)
    np.divide(a, b, out=out, where=b != 0)
    return out


def _masked_mean(x, mask):
    n = mask.sum(-1)
    s = np.where(mask, x, 0.0).sum(-1)
    return np.where(n > 0, s / np.maximum(n, 1), np.nan)


def metrics_from_confusion(c, ordinal: bool = True) -> dict:
    """All headline figures from a confusion matrix or a stack of them.

    Parameters
    ----------
    c : array (K, K) or (..., K, K)
        Counts (or non-negative weights), rows = true class, columns = predicted.
    ordinal : bool
        Add QWK, MAE in levels and within-one accuracy (classes are ordered levels).

    Returns
    -------
    dict
        Scalar floats for one matrix, arrays of shape ``c.shape[:-2]`` for a stack.
        Macro averages run over the classes present in truth or prediction (as
        scikit-learn does); balanced accuracy over the classes present in truth.
        Undefined values (e.g. QWK when only one class occurs) are NaN.
    """
    c = np.asarray(c, dtype=float)
    if c.ndim < 2 or c.shape[-1] != c.shape[-2]:
        raise ValueError(f"confusion matrix must be square, shape (..., K, K), got {c.shape}")
    if (c < 0).any():
        raise ValueError("confusion matrix holds negative counts")
    k = c.shape[-1]
    n = c.sum((-2, -1))
    diag = np.diagonal(c, axis1=-2, axis2=-1)
    rows = c.sum(-1)  # support per true class
    cols = c.sum(-2)  # predictions per class
    prec = _div(diag, cols)
    rec = _div(diag, rows)
    f1 = _div(2 * diag, rows + cols)
    present = (rows + cols) > 0
    out = {
        "accuracy": _div(diag.sum(-1), n),
        "balanced_accuracy": _masked_mean(rec, rows > 0),
        "precision_macro": _masked_mean(prec, present),
        "recall_macro": _masked_mean(rec, present),
        "f1_macro": _masked_mean(f1, present),
        "precision_weighted": _div((prec * rows).sum(-1), n),
        "recall_weighted": _div((rec * rows).sum(-1), n),
        "f1_weighted": _div((f1 * rows).sum(-1), n),
    }
    if ordinal:
        i, j = np.indices((k, k))
        d = np.abs(i - j).astype(float)
        w = d**2
        expected = rows[..., :, None] * cols[..., None, :] / np.where(n > 0, n, 1)[..., None, None]
        num = (w * c).sum((-2, -1))
        den = (w * expected).sum((-2, -1))
        with np.errstate(invalid="ignore", divide="ignore"):
            out["qwk"] = np.where(den > 0, 1.0 - num / np.where(den > 0, den, 1), np.nan)
        out["mae"] = _div((d * c).sum((-2, -1)), n)
        out["within_one"] = _div((c * (d <= 1)).sum((-2, -1)), n)
    if c.ndim == 2:
        out = {key: float(v) for key, v in out.items()}
    return out


def classification_metrics(y_true, y_pred, n_classes: int | None = None, ordinal: bool = True) -> dict:
    """Headline figures of a set of predictions (scikit-learn implementations).

    Parameters
    ----------
    y_true, y_pred : array-like of int, shape (N,)
    n_classes : int, optional
        Number of classes K (default: largest index + 1).
    ordinal : bool
        Also report quadratic weighted kappa, MAE in levels and within-one-level accuracy.

    Returns
    -------
    dict
        ``accuracy, balanced_accuracy, precision/recall/f1 _macro and _weighted``,
        (``qwk, mae, within_one`` when ordinal) and ``n``.

    >>> m = classification_metrics([0, 1, 2, 3], [0, 1, 3, 3])
    >>> m["accuracy"], m["mae"], m["within_one"]
    (0.75, 0.25, 1.0)
    """
    import warnings

    from sklearn.metrics import (
        accuracy_score,
        balanced_accuracy_score,
        cohen_kappa_score,
        precision_recall_fscore_support,
    )

    yt, yp, k = check_labels(y_true, y_pred, n_classes)
    out: dict = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out["accuracy"] = float(accuracy_score(yt, yp))
        out["balanced_accuracy"] = float(balanced_accuracy_score(yt, yp))
        for avg in ("macro", "weighted"):
            p, r, f, _ = precision_recall_fscore_support(yt, yp, average=avg, zero_division=0)
            out[f"precision_{avg}"] = float(p)
            out[f"recall_{avg}"] = float(r)
            out[f"f1_{avg}"] = float(f)
        if ordinal:
            # labels=range(K): the weights follow the real level distance even
            # when a level is missing from both vectors
            if len(np.unique(np.concatenate([yt, yp]))) < 2:
                out["qwk"] = float("nan")
            else:
                out["qwk"] = float(cohen_kappa_score(yt, yp, labels=list(range(k)), weights="quadratic"))
            d = np.abs(yt - yp)
            out["mae"] = float(d.mean())
            out["within_one"] = float((d <= 1).mean())
    out["n"] = int(len(yt))
    return out


def per_class_metrics(y_true, y_pred, n_classes: int | None = None, classes: Sequence[str] | None = None) -> list[dict]:
    """Precision, recall, F1 and support of every class.

    >>> rows = per_class_metrics([0, 0, 1], [0, 1, 1], classes=["a", "b"])
    >>> [(r["class"], r["precision"], r["recall"], r["support"]) for r in rows]
    [('a', 1.0, 0.5, 2), ('b', 0.5, 1.0, 1)]
    """
    from sklearn.metrics import precision_recall_fscore_support

    if classes is not None and n_classes is None:
        n_classes = len(classes)
    yt, yp, k = check_labels(y_true, y_pred, n_classes)
    if classes is not None and len(classes) != k:
        raise ValueError(f"{len(classes)} class names for {k} classes")
    p, r, f, s = precision_recall_fscore_support(yt, yp, labels=list(range(k)), zero_division=0)
    names = list(classes) if classes is not None else [str(i) for i in range(k)]
    predicted = np.bincount(yp, minlength=k)
    return [
        {"class": names[i], "index": i, "precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
         "support": int(s[i]), "predicted": int(predicted[i])}
        for i in range(k)
    ]


def _check_probs(probs, y_true=None) -> np.ndarray:
    p = np.asarray(probs, dtype=float)
    if p.ndim != 2:
        raise ValueError(f"probabilities must have shape (N, K), got {p.shape}")
    if y_true is not None and len(np.asarray(y_true)) != len(p):
        raise ValueError(f"{len(p)} probability rows for {len(np.asarray(y_true))} labels")
    if not np.allclose(p.sum(1), 1.0, atol=1e-3):
        raise ValueError("each probability row must sum to 1 (did you pass logits?)")
    return p


def calibration_bins(probs, y_true, n_bins: int = 10) -> dict:
    """Top-label confidence vs accuracy in ``n_bins`` equal-width bins.

    Returns ``edges, confidence, accuracy, count`` (empty bins: NaN confidence / accuracy).
    """
    p = _check_probs(probs, y_true)
    y = np.asarray(y_true).astype(int)
    conf = p.max(1)
    correct = (p.argmax(1) == y).astype(float)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, n_bins - 1)
    count = np.bincount(idx, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mconf = np.bincount(idx, weights=conf, minlength=n_bins) / count
        macc = np.bincount(idx, weights=correct, minlength=n_bins) / count
    return {"edges": edges, "confidence": mconf, "accuracy": macc, "count": count}


def expected_calibration_error(probs, y_true, n_bins: int = 10) -> float:
    """Expected calibration error of the top-label confidence.

    ECE = sum over bins of (bin size / N) * |accuracy(bin) - mean confidence(bin)|.

    Two predictions, confidence 0.9 (right) and 0.8 (wrong), in separate bins:
    0.5 * |1 - 0.9| + 0.5 * |0 - 0.8| = 0.45.

    >>> expected_calibration_error([[0.9, 0.1], [0.8, 0.2]], [0, 1], n_bins=10)
    0.45
    """
    b = calibration_bins(probs, y_true, n_bins)
    n = b["count"].sum()
    ok = b["count"] > 0
    gap = np.abs(b["accuracy"][ok] - b["confidence"][ok])
    return float(round((gap * b["count"][ok]).sum() / n, 12))
