"""The predicted class of a head's probabilities: one rule for training, evaluation, export and predict.

A plain (softmax) head predicts its most probable class. An ordinal head (CORAL / CORN) predicts a
*rank*: the number of thresholds ``k`` with ``P(y > k) > 0.5`` - the rule those heads are trained
for (Cao et al. 2020; Shi et al. 2023), i.e. the median of the predicted distribution. It is not
always the most probable class: ``[0.3, 0.3, 0.4]`` has ``P(y > 0) = 0.7`` and ``P(y > 1) = 0.4``,
so rank 1, while the argmax is 2.

Training chooses its best epoch with this rule, so every figure and prediction after it must use
it too. numpy only: the torch-free ONNX prediction path imports it.

>>> import numpy as np
>>> predict_labels(np.array([[0.1, 0.2, 0.7], [0.4, 0.35, 0.25]]), None).tolist()
[2, 0]
>>> predict_labels(np.array([[0.3, 0.3, 0.4]]), "corn").tolist()  # P(y>0)=.7, P(y>1)=.4
[1]
"""

from __future__ import annotations

from typing import Optional

import numpy as np

__all__ = ["predict_labels", "decision_rule", "decision_margin", "near_ties"]


def predict_labels(probs, ordinal: Optional[str]) -> np.ndarray:
    """Predicted class per row of ``probs`` (N, K): argmax, or for an ordinal head (``ordinal`` =
    ``"coral"`` / ``"corn"``) the number of ``P(y > k)`` above 0.5."""
    probs = _rows(probs)
    if not ordinal:
        return probs.argmax(1)
    return (_exceedance(probs) > 0.5).sum(1)


def _rows(probs) -> np.ndarray:
    """``probs`` as a float64 (N, K) array (one row for a single image's (K,) probabilities)."""
    probs = np.asarray(probs, dtype=np.float64)
    return probs[None, :] if probs.ndim == 1 else probs


def _exceedance(probs: np.ndarray) -> np.ndarray:
    """``P(y > k)`` for k = 0 .. K-2 from class probabilities (N, K): what an ordinal head's rank reads."""
    return 1.0 - np.cumsum(probs, axis=1)[:, :-1]


def decision_margin(probs, ordinal: Optional[str]) -> np.ndarray:
    """How far each row of ``probs`` (N, K) is from changing class under :func:`predict_labels`: the
    least probability mass that must move for another class to win.

    Argmax: half the gap between the two most probable classes. Ordinal (rank): the distance of the
    nearest ``P(y > k)`` from 0.5. An image with a margin of 0.01 is a near-tie: any small change of
    the input or of the arithmetic (int8) can change its class.

    >>> decision_margin(np.array([[0.5, 0.3, 0.2]]), None).round(3).tolist()
    [0.1]
    >>> decision_margin(np.array([[0.3, 0.3, 0.4]]), "corn").round(3).tolist()  # P(y>k) = .7, .4
    [0.1]
    """
    probs = _rows(probs)
    if not ordinal:
        top2 = np.sort(probs, axis=1)[:, -2:]
        return (top2[:, 1] - top2[:, 0]) / 2
    return np.abs(_exceedance(probs) - 0.5).min(1)


def near_ties(ref, other, ordinal: Optional[str]) -> tuple[Optional[float], Optional[float]]:
    """Where ``other`` (e.g. int8 probabilities) reads a class differently from ``ref`` (fp32): the largest
    :func:`decision_margin` of ``ref`` among those rows, and the share of all rows with a margin that small.

    ``(None, None)`` when they agree everywhere. A small largest margin says the disagreements are
    near-ties; the share says how many images such a small change could flip.

    >>> ref = np.array([[0.9, 0.1], [0.52, 0.48], [0.49, 0.51], [0.3, 0.7]])
    >>> other = np.array([[0.9, 0.1], [0.49, 0.51], [0.49, 0.51], [0.3, 0.7]])
    >>> m, share = near_ties(ref, other, None)  # row 1 flipped (margin 0.02); row 2 (0.01) is as near
    >>> round(m, 3), share
    (0.02, 0.5)
    """
    margin = decision_margin(ref, ordinal)
    differ = predict_labels(other, ordinal) != predict_labels(ref, ordinal)
    if not differ.any():
        return None, None
    worst = float(margin[differ].max())
    return worst, float((margin <= worst + 1e-12).mean())


def decision_rule(ordinal: Optional[str]) -> str:
    """How :func:`predict_labels` picks the class, in words (for reports and model metadata)."""
    if ordinal:
        return "rank: the number of k with P(y > k) > 0.5, P(y > k) = 1 - (p_0 + ... + p_k) (ordinal head)"
    return "argmax of the probabilities"
