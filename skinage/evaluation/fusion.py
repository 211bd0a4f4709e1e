"""Person-level fusion of views, and a breakdown of image-level results by view.

A person photographed from several angles should get one answer. Fusion
averages the class probabilities of all of the person's images and takes the
most probable class (for an ordinal head, ``ordinal_head="corn"`` / ``"coral"``, the rank of the
averaged probabilities, see :mod:`skinage.models.decode`). The person's label is the label of their images; when the
images disagree (a labelling inconsistency), the most frequent label wins
(ties: the lower level) and the person is counted in ``n_label_disagreements``.

>>> import numpy as np
>>> probs = np.array([[0.6, 0.4], [0.3, 0.7], [0.2, 0.8], [0.9, 0.1]])
>>> res = fuse_persons(probs, labels=[1, 1, 1, 0], subjects=["a", "a", "a", "b"])
>>> res.table[["subject", "label", "pred", "n_images"]].values.tolist()
[['a', 1, 1, 3], ['b', 0, 0, 1]]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..models.decode import predict_labels
from .metrics import check_labels, classification_metrics

__all__ = ["PersonFusion", "fuse_persons", "metrics_by_view"]


@dataclass
class PersonFusion:
    """One row per person: ``subject, label, pred, n_images, labels_agree, p_0..p_{K-1}``."""

    table: "object"  # pandas.DataFrame
    probs: np.ndarray
    n_label_disagreements: int

    @property
    def y_true(self) -> np.ndarray:
        return self.table["label"].to_numpy()

    @property
    def y_pred(self) -> np.ndarray:
        return self.table["pred"].to_numpy()

    def metrics(self, n_classes: int | None = None, ordinal: bool = True) -> dict:
        return classification_metrics(self.y_true, self.y_pred, n_classes or self.probs.shape[1], ordinal)


def fuse_persons(probs, labels, subjects, ordinal_head: str | None = None) -> PersonFusion:
    """Average each person's image probabilities into one prediction.

    Parameters
    ----------
    probs : array (N, K)
        Class probabilities of each image.
    labels : array-like of int (N,)
    subjects : array-like (N,)
        Person id of each image.
    ordinal_head : None, "coral" or "corn"
        The model's head: how the class is read from the averaged probabilities.
    """
    import pandas as pd

    p = np.asarray(probs, dtype=float)
    if p.ndim != 2:
        raise ValueError(f"probabilities must have shape (N, K), got {p.shape}")
    y = np.asarray(labels)
    s = np.asarray(subjects).astype(str)
    if len(y) != len(p) or len(s) != len(p):
        raise ValueError(f"{len(p)} probability rows, {len(y)} labels and {len(s)} subjects: lengths differ")
    y, _, k = check_labels(y, y, p.shape[1])
    uniq, codes = np.unique(s, return_inverse=True)
    codes = codes.ravel()
    g = len(uniq)
    count = np.bincount(codes, minlength=g)
    psum = np.zeros((g, k))
    np.add.at(psum, codes, p)
    pmean = psum / count[:, None]
    votes = np.zeros((g, k), dtype=np.int64)
    np.add.at(votes, (codes, y), 1)
    label = votes.argmax(1)  # argmax picks the lowest index on ties
    agree = (votes > 0).sum(1) == 1
    table = pd.DataFrame({"subject": uniq, "label": label, "pred": predict_labels(pmean, ordinal_head), "n_images": count,
                          "labels_agree": agree})
    for j in range(k):
        table[f"p_{j}"] = pmean[:, j]
    return PersonFusion(table, pmean, int((~agree).sum()))


def metrics_by_view(y_true, y_pred, views, n_classes: int | None = None, ordinal: bool = True) -> list[dict]:
    """Image-level metrics for each view (angle), sorted by view name.

    >>> rows = metrics_by_view([0, 1, 0, 1], [0, 1, 1, 1], ["F", "F", "L", "L"], ordinal=False)
    >>> [(r["view"], r["n"], r["accuracy"]) for r in rows]
    [('F', 2, 1.0), ('L', 2, 0.5)]
    """
    yt, yp, k = check_labels(y_true, y_pred, n_classes)
    v = np.asarray(views).astype(str)
    if len(v) != len(yt):
        raise ValueError(f"{len(v)} views for {len(yt)} labels")
    out = []
    for name in sorted(set(v.tolist())):
        m = v == name
        row = {"view": name or "(none)"}
        row.update(classification_metrics(yt[m], yp[m], k, ordinal))
        out.append(row)
    return out
