"""How training scores a validation pass and picks its best epoch.

The figures come from :func:`skinage.evaluation.metrics.classification_metrics`, the implementation
``skinage evaluate`` uses; this module only gives them the names training's files have always used
(the one place the names are mapped):

================  ======================  ================
metrics            ``metrics.json``        ``results.csv``
================  ======================  ================
accuracy           accuracy                val_acc
f1_macro           macro_f1                val_macro_f1
qwk                qwk                     val_qwk
mae                mae                     val_mae
within_one         within_one              -
================  ======================  ================

An undefined figure is NaN, as in evaluate (QWK when the truth and the predictions hold a single
class between them). The epoch selection (``--select``) ranks NaN below every defined score, so a
defined score always wins; epochs whose scores are equal or both undefined go to the lower
validation loss, then to the earlier epoch.

>>> m = compute_metrics([0, 1, 2, 2], [0, 1, 1, 2], 3, ordered=True)
>>> m["accuracy"], m["mae"], m["within_one"]
(0.75, 0.25, 1.0)
>>> compute_metrics([1, 1], [1, 1], 3, ordered=True)["qwk"]
nan
>>> epoch_score({"qwk": float("nan")}, 0.2, "auto", True) < epoch_score({"qwk": -0.5}, 0.9, "auto", True)
True
"""

from __future__ import annotations

import math

import numpy as np

from ..evaluation.metrics import classification_metrics

__all__ = ["RUN_NAMES", "RESULTS_COLUMNS", "compute_metrics", "results_columns", "selection_metric", "worst_if_nan",
           "epoch_score"]

#: classification_metrics' name -> the name in metrics.json (val / test blocks), in the files' order
RUN_NAMES = {"accuracy": "accuracy", "f1_macro": "macro_f1", "qwk": "qwk", "mae": "mae", "within_one": "within_one"}
#: metrics.json name -> the column of the epoch's validation figure in results.csv
RESULTS_COLUMNS = {"accuracy": "val_acc", "macro_f1": "val_macro_f1", "qwk": "val_qwk", "mae": "val_mae"}


def compute_metrics(y, pred, num_classes: int, ordered: bool) -> dict:
    """``n``, accuracy, macro_f1 and (ordered classes) qwk, mae, within_one of predicted classes ``pred``."""
    m = classification_metrics(np.asarray(y), np.asarray(pred), n_classes=num_classes, ordinal=ordered)
    out = {"n": m["n"]}
    out.update({name: m[key] for key, name in RUN_NAMES.items() if key in m})
    return out


def results_columns(metrics: dict) -> dict:
    """The validation columns of a results.csv row from :func:`compute_metrics`' dict.

    >>> results_columns({"n": 4, "accuracy": 0.75, "macro_f1": 0.5, "qwk": 0.6, "mae": 0.25, "within_one": 1.0})
    {'val_acc': 0.75, 'val_macro_f1': 0.5, 'val_qwk': 0.6, 'val_mae': 0.25}
    """
    return {col: metrics[name] for name, col in RESULTS_COLUMNS.items() if name in metrics}


def selection_metric(select: str, ordered: bool) -> str:
    """The figure ``--select`` names: ``auto`` is qwk for ordered classes, else macro_f1.

    >>> selection_metric("auto", True), selection_metric("auto", False), selection_metric("loss", False)
    ('qwk', 'macro_f1', 'loss')
    """
    if select == "auto":
        return "qwk" if ordered else "macro_f1"
    if select == "qwk" and not ordered:
        raise ValueError("--select qwk needs ordered classes (a manifest ingested as ordinal, or --ordinal corn/coral); "
                         "use --select macro_f1 or accuracy")
    return select


def worst_if_nan(value: float) -> float:
    """``value``, or -inf when it is undefined (NaN): how a selection ranks an undefined score.

    >>> worst_if_nan(0.3), worst_if_nan(float("nan"))
    (0.3, -inf)
    """
    value = float(value)
    return -math.inf if math.isnan(value) else value


def epoch_score(metrics: dict, loss: float, select: str, ordered: bool) -> tuple[float, float]:
    """The key an epoch is ranked by, larger is better: (selected figure, -validation loss).

    The figure is rounded to 10 decimals (so float noise does not beat a lower loss) and NaN ranks
    last (:func:`worst_if_nan`); ``select="loss"`` ranks by the loss alone.

    >>> epoch_score({"macro_f1": 0.5}, 0.3, "auto", False)
    (0.5, -0.3)
    >>> epoch_score({}, 0.3, "loss", False)
    (-0.3, 0.0)
    """
    metric = selection_metric(select, ordered)
    if metric == "loss":
        return (worst_if_nan(-loss), 0.0)
    return (worst_if_nan(round(float(metrics[metric]), 10)), worst_if_nan(-float(loss)))
