"""Baselines: fitted on train, scored on the evaluation rows; the real forehead label table."""

import numpy as np
import pandas as pd
import pytest

from conftest import shared_data
from skinage.evaluation.baselines import (
    majority_baseline,
    metadata_baseline,
    metadata_columns,
    run_baselines,
    stratified_baseline,
)
from skinage.evaluation.metrics import classification_metrics


def test_majority_and_stratified():
    r = majority_baseline([0, 1, 1, 2], n_eval=5, n_classes=3)
    assert r.pred.tolist() == [1] * 5 and np.allclose(r.probs.sum(1), 1)
    s = stratified_baseline([0] * 30 + [1] * 70, n_eval=4000, n_classes=2, seed=1)
    assert abs(s.pred.mean() - 0.7) < 0.03
    assert s.expected and np.allclose(s.probs, [0.3, 0.7])
    assert (stratified_baseline([0, 1], 50, 2, seed=1).pred == stratified_baseline([0, 1], 50, 2, seed=1).pred).all()
    g = np.repeat(np.arange(10), 3)
    sg = stratified_baseline([0, 1], 30, 2, groups=g, seed=0)
    assert all(len(set(sg.pred[g == i])) == 1 for i in range(10))  # one answer per person


def test_metadata_learns_age_and_handles_missing_and_unseen():
    rng = np.random.default_rng(0)
    age = rng.uniform(20, 70, 300)
    train = pd.DataFrame({"label": (age > 45).astype(int), "age": age,
                          "gender": rng.choice(["F", "M"], 300)})
    test = pd.DataFrame({"label": [0, 1, 1, 0], "age": [25, 65, np.nan, 30], "gender": ["F", "X", None, "M"]})
    r = metadata_baseline(train, test, 2)
    assert r.info["features"] == ["age", "gender"]
    assert r.pred[0] == 0 and r.pred[1] == 1
    assert np.isfinite(r.probs).all()
    assert metadata_baseline(train, test, 2, features=["gender"]).info["features"] == ["gender"]


def test_metadata_absent():
    train = pd.DataFrame({"label": [0, 1]})
    res = run_baselines(train, train, 2)
    assert "metadata" not in res and "no metadata" in res["metadata_skipped"].description
    with pytest.raises(ValueError, match="not in the data"):
        metadata_baseline(train, train, 2, features=["age"])
    num, cat = metadata_columns(pd.DataFrame({"age": [1, 2], "gender": ["F", "F"]}))
    assert num == ["age"] and cat == []  # a constant column is no feature


@pytest.mark.realdata
def test_forehead_age_only_baseline_close_to_published():
    """Age alone predicts the 4-level forehead grade with ~0.6 accuracy (split by person)."""
    from sklearn.model_selection import StratifiedGroupKFold

    d = shared_data("aihub-forehead-labels")
    df = pd.read_csv(d / "json_to_dataframe.csv")
    df["label"] = df["forehead_wrinkle"].astype(int).map({0: 0, 1: 0, 2: 1, 3: 1, 4: 2, 5: 3, 6: 3})
    accs = []
    for tr, te in StratifiedGroupKFold(5, shuffle=True, random_state=0).split(df, df["label"], df["id"]):
        r = metadata_baseline(df.iloc[tr], df.iloc[te], 4, features=["age"])
        accs.append(classification_metrics(df["label"].iloc[te], r.pred, 4)["accuracy"])
        maj = majority_baseline(df["label"].iloc[tr], len(te), 4)
        assert accs[-1] > classification_metrics(df["label"].iloc[te], maj.pred, 4)["accuracy"] + 0.1
    assert 0.5 < np.mean(accs) < 0.7


def test_label_source_column_left_out():
    """Age groups made from the age column: a baseline on age would read the answer back."""
    from skinage.evaluation.baselines import label_source_columns

    df = pd.DataFrame({"label": [0, 0, 1, 1], "raw_label": ["21", "23", "35", "41"], "age": [21, 23, 35, 41],
                       "gender": ["F", "M", "F", "M"]})
    assert label_source_columns(df) == ["age"]
    assert label_source_columns(df.assign(raw_label=["a", "b", "c", "d"]), label_key="age") == ["age"]
    assert label_source_columns(df.assign(raw_label=["0", "0", "1", "1"])) == []
    r = run_baselines(df, df, 2, exclude=["age"])
    assert r["metadata"].info["features"] == ["gender"]
    r = run_baselines(df[["label", "raw_label", "age"]], df, 2, exclude=["age"])
    assert "metadata" not in r and "label is made from it" in r["metadata_skipped"].description


def test_stratified_scored_by_expectation():
    """Expected figures of a random guesser, worked out by hand.

    Truth: 6 images of class 0, 4 of class 1; guesses in training proportions 0.3 / 0.7.
    Expected confusion: [[1.8, 4.2], [1.2, 2.8]] -> accuracy (1.8 + 2.8) / 10 = 0.46;
    QWK of a guess independent of the truth is exactly 0.
    """
    from skinage.evaluation.evaluate import score_predictions

    y = np.array([0] * 6 + [1] * 4)
    base = run_baselines(pd.DataFrame({"label": [0] * 3 + [1] * 7}), pd.DataFrame(index=range(10)), 2)
    m = score_predictions(y, None, np.arange(10).astype(str), ["a", "b"], True, None, base, n_boot=200)
    st = m["image"]["stratified"]
    assert st["accuracy"] == pytest.approx(0.46) and st["qwk"] == pytest.approx(0.0, abs=1e-12)
    assert st["mae"] == pytest.approx(0.54) and st["n"] == 10
    lo, hi = st["ci"]["accuracy"]
    assert lo <= 0.46 <= hi
