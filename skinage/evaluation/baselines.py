"""Trivial baselines, scored on the same rows as the model.

* ``majority``: always the most frequent class of the training split;
* ``stratified``: a random class drawn from the training split's class
  frequencies. It is scored by its *expectation* over all draws (expected
  confusion counts: image of true class i counted as class j with probability
  prior_j), so no lucky or unlucky seed flatters or shames the model; ``pred``
  still holds one seeded draw (one per person when person ids are given);
* ``metadata``: a logistic regression on person metadata only (age, gender, ...;
  numbers standardised, categories one-hot), fitted on the training split.
  If it comes close to the image model, the image model has learnt little more
  than the person's age.

Each baseline returns class probabilities (N, K) and predictions (N,), so the
same metrics, intervals and person fusion apply to it as to the model.

>>> import pandas as pd
>>> train = pd.DataFrame({"label": [0, 0, 1, 1, 1], "age": [20, 25, 50, 55, 60]})
>>> test = pd.DataFrame({"label": [0, 1], "age": [22, 58]})
>>> res = run_baselines(train, test, n_classes=2)
>>> res["majority"].pred.tolist(), res["metadata"].pred.tolist()
([1, 1], [0, 1])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

__all__ = [
    "META_NUMERIC",
    "META_CATEGORICAL",
    "BaselineResult",
    "metadata_columns",
    "label_source_columns",
    "majority_baseline",
    "stratified_baseline",
    "metadata_baseline",
    "run_baselines",
]

#: metadata columns a metadata-only baseline may use (person attributes, never image or label data)
META_NUMERIC = ("age",)
META_CATEGORICAL = ("gender", "sex", "ethnicity", "race")


@dataclass
class BaselineResult:
    """Predictions of one baseline on the evaluation rows."""

    name: str
    description: str
    probs: np.ndarray
    pred: np.ndarray
    info: dict = field(default_factory=dict)
    #: score by expected counts from ``probs`` instead of the hard ``pred``
    expected: bool = False


def _train_labels(train_labels, n_classes: int) -> np.ndarray:
    y = np.asarray(train_labels).astype(int)
    if len(y) == 0:
        raise ValueError("a baseline needs training labels, got none")
    if y.min() < 0 or y.max() >= n_classes:
        raise ValueError(f"training labels must be in 0..{n_classes - 1}")
    return y


def majority_baseline(train_labels, n_eval: int, n_classes: int) -> BaselineResult:
    """Always predict the most frequent training class (ties: the lowest index).

    >>> majority_baseline([2, 2, 1], n_eval=3, n_classes=3).pred.tolist()
    [2, 2, 2]
    """
    y = _train_labels(train_labels, n_classes)
    prior = np.bincount(y, minlength=n_classes) / len(y)
    top = int(prior.argmax())
    probs = np.zeros((n_eval, n_classes))
    probs[:, top] = 1.0
    return BaselineResult("majority", f"always class {top} (most frequent in training)", probs,
                          np.full(n_eval, top), {"class": top, "prior": prior.tolist()})


def stratified_baseline(train_labels, n_eval: int, n_classes: int, groups=None, seed: int = 0) -> BaselineResult:
    """A random class in the training frequencies, scored by its expectation.

    ``probs`` are the training class frequencies on every row (``expected=True``:
    metrics use expected confusion counts); ``pred`` is one seeded draw, one per
    person with ``groups``.

    >>> r = stratified_baseline([0, 1, 1, 1], n_eval=2, n_classes=2)
    >>> r.probs.tolist(), r.expected
    ([[0.25, 0.75], [0.25, 0.75]], True)
    """
    y = _train_labels(train_labels, n_classes)
    prior = np.bincount(y, minlength=n_classes) / len(y)
    rng = np.random.default_rng(seed)
    if groups is None:
        pred = rng.choice(n_classes, size=n_eval, p=prior)
    else:
        g = np.asarray(groups).astype(str)
        if len(g) != n_eval:
            raise ValueError(f"groups has {len(g)} entries for {n_eval} rows")
        uniq, codes = np.unique(g, return_inverse=True)
        pred = rng.choice(n_classes, size=len(uniq), p=prior)[codes.ravel()]
    probs = np.tile(prior, (n_eval, 1))
    return BaselineResult("stratified", "random class in training proportions (expected figures over all draws)",
                          probs, pred.astype(int), {"prior": prior.tolist(), "seed": seed}, expected=True)


def label_source_columns(df, label_key: str | None = None) -> list[str]:
    """Metadata columns the label was made from (e.g. ``age`` for age-group classes).

    A baseline on such a column would only read the answer back. Found as the
    ingest's label key, or as a column equal to ``raw_label`` on 90 % of rows.

    >>> import pandas as pd
    >>> label_source_columns(pd.DataFrame({"raw_label": ["24", "31"], "age": [24, 31], "gender": ["F", "M"]}))
    ['age']
    """
    out = []
    for c in (*META_NUMERIC, *META_CATEGORICAL):
        if c not in df.columns:
            continue
        if label_key and c == str(label_key).split(".")[-1]:
            out.append(c)
            continue
        if "raw_label" in df.columns and len(df):
            a = df[c].astype(str).str.replace(r"\.0$", "", regex=True)
            b = df["raw_label"].astype(str).str.replace(r"\.0$", "", regex=True)
            if (a == b).mean() >= 0.9:
                out.append(c)
    return out


def metadata_columns(df, features: Sequence[str] | None = None,
                     exclude: Sequence[str] = ()) -> tuple[list[str], list[str]]:
    """The (numeric, categorical) metadata columns of ``df`` a baseline can use.

    ``features`` chooses them explicitly; otherwise the known person attributes
    (``age``, ``gender``, ``sex``, ``ethnicity``, ``race``) that hold at least two
    distinct values, minus ``exclude`` (the columns the label was made from).
    """
    import pandas as pd

    cols = list(features) if features else [c for c in (*META_NUMERIC, *META_CATEGORICAL)
                                            if c in df.columns and c not in exclude]
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ValueError(f"metadata column(s) {missing} not in the data; available: {sorted(map(str, df.columns))}")
    num, cat = [], []
    for c in cols:
        s = df[c]
        if not features and s.dropna().nunique() < 2:
            continue
        if pd.api.types.is_numeric_dtype(s) or (c in META_NUMERIC and pd.to_numeric(s, errors="coerce").notna().any()):
            num.append(c)
        else:
            cat.append(c)
    return num, cat


def metadata_baseline(train_df, eval_df, n_classes: int, features: Sequence[str] | None = None,
                      label_col: str = "label", exclude: Sequence[str] = ()) -> BaselineResult:
    """Logistic regression on metadata only, fitted on ``train_df``, applied to ``eval_df``.

    Missing numbers are imputed with the training median (plus a missing flag),
    missing or unseen categories get a category of their own.

    Raises
    ------
    ValueError
        When no usable metadata column exists (the message says which were looked for).
    """
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    num, cat = metadata_columns(train_df, features, exclude)
    if not num and not cat:
        raise ValueError("no metadata columns to fit a metadata-only baseline on (looked for "
                         f"{', '.join(META_NUMERIC + META_CATEGORICAL)}"
                         + (f"; {', '.join(exclude)} left out: the label is made from it" if exclude else "")
                         + "); pass features=... to choose")
    missing = [c for c in num + cat if c not in eval_df.columns]
    if missing:
        raise ValueError(f"evaluation data lacks metadata column(s) {missing}")
    y = _train_labels(train_df[label_col].to_numpy(), n_classes)

    def frame(df):
        x = pd.DataFrame(index=df.index)
        for c in num:
            x[c] = pd.to_numeric(df[c], errors="coerce").astype(float)
        for c in cat:
            x[c] = df[c].astype("string").fillna("missing").astype(str)
        return x

    xtr, xev = frame(train_df), frame(eval_df)
    parts = []
    if num:
        parts.append(("num", make_pipeline(SimpleImputer(strategy="median", add_indicator=True,
                                                         keep_empty_features=True), StandardScaler()), num))
    if cat:
        parts.append(("cat", OneHotEncoder(handle_unknown="ignore"), cat))
    model = make_pipeline(ColumnTransformer(parts), LogisticRegression(max_iter=2000))
    classes_seen = np.unique(y)
    if len(classes_seen) == 1:
        probs = np.zeros((len(xev), n_classes))
        probs[:, classes_seen[0]] = 1.0
    else:
        model.fit(xtr, y)
        p = model.predict_proba(xev)
        probs = np.zeros((len(xev), n_classes))
        probs[:, model.classes_] = p
    feats = num + cat
    return BaselineResult("metadata", f"logistic regression on {' + '.join(feats)} only", probs,
                          probs.argmax(1).astype(int), {"features": feats, "n_train": int(len(y))})


def run_baselines(train_df, eval_df, n_classes: int, groups=None, features: Sequence[str] | None = None,
                  seed: int = 0, label_col: str = "label", exclude: Sequence[str] = ()) -> dict[str, BaselineResult]:
    """All applicable baselines for ``eval_df``, fitted on ``train_df``.

    Returns ``{"majority": ..., "stratified": ..., "metadata": ...}``. When the data
    has no metadata, ``"metadata"`` is absent and ``"metadata_skipped"`` carries
    the reason in its ``description`` (empty predictions).
    """
    y = train_df[label_col].to_numpy()
    n = len(eval_df)
    out = {
        "majority": majority_baseline(y, n, n_classes),
        "stratified": stratified_baseline(y, n, n_classes, groups=groups, seed=seed),
    }
    try:
        out["metadata"] = metadata_baseline(train_df, eval_df, n_classes, features, label_col, exclude)
    except ValueError as e:
        if features:  # the user asked for these columns: say so loudly
            raise
        out["metadata_skipped"] = BaselineResult("metadata", f"not available: {e}", np.zeros((0, n_classes)),
                                                 np.zeros(0, int), {"skipped": str(e)})
    return out
