"""skinage.data.splits: person-grouped, stratified, seeded splits and folds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import shared_data
from skinage.config import ConfigError
from skinage.data.splits import assign_splits, check_no_leak


def _people(n_people=200, per=5, n_classes=4, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.choice(n_classes, size=n_people, p=[0.4, 0.4, 0.08, 0.12][:n_classes] if n_classes == 4 else None)
    rows = [{"subject": f"s{i:04d}", "label": int(labels[i]), "view": v} for i in range(n_people) for v in range(per)]
    return pd.DataFrame(rows)


def test_grouped_stratified_fractions():
    df = _people()
    out, info = assign_splits(df, val=0.15, test=0.15, seed=0)
    assert check_no_leak(out) == {}
    assert out.groupby("subject")["split"].nunique().max() == 1
    frac = out["split"].value_counts(normalize=True)
    assert abs(frac["train"] - 0.70) < 0.03 and abs(frac["val"] - 0.15) < 0.03 and abs(frac["test"] - 0.15) < 0.03
    # stratified: every class's share in each split is near its overall share
    overall = out["label"].value_counts(normalize=True)
    for s in ("train", "val", "test"):
        share = out[out["split"] == s]["label"].value_counts(normalize=True)
        for k in overall.index:
            assert abs(share.get(k, 0) - overall[k]) < 0.06, (s, k)
    assert info.groups == 200 and not info.grouped_by_image
    assert (out["fold"] == -1).all()


def test_seeded():
    df = _people()
    a, _ = assign_splits(df, seed=1)
    b, _ = assign_splits(df, seed=1)
    c, _ = assign_splits(df, seed=2)
    assert (a["split"] == b["split"]).all()
    assert not (a["split"] == c["split"]).all()


def test_folds():
    df = _people(100)
    out, info = assign_splits(df, test=0.15, folds=5, seed=0)
    rest = out[out["split"] != "test"]
    assert set(rest["fold"]) == {0, 1, 2, 3, 4}
    assert (out.loc[out["split"] == "test", "fold"] == -1).all()
    assert (rest.loc[rest["fold"] == 0, "split"] == "val").all()
    assert rest.groupby("subject")["fold"].nunique().max() == 1
    sizes = rest["fold"].value_counts()
    assert sizes.max() - sizes.min() <= 0.1 * len(rest)
    allk, _ = assign_splits(df, test=0, folds=4, seed=0)
    assert (allk["fold"] >= 0).all() and set(allk["split"]) == {"train", "val"}
    with pytest.raises(ConfigError):
        assign_splits(df, folds=1)


def test_no_subject_means_each_image_is_a_group():
    df = pd.DataFrame({"subject": [""] * 60, "label": [i % 3 for i in range(60)]})
    out, info = assign_splits(df)
    assert info.grouped_by_image and info.groups == 60
    assert "each image is its own group" in info.note
    assert abs((out["split"] == "test").mean() - 0.15) < 0.03


def test_split_by_unknown_column():
    with pytest.raises(ConfigError, match="no such column"):
        assign_splits(_people(10), split_by="persn")


def test_too_few_people():
    out, info = assign_splits(pd.DataFrame({"subject": ["a", "a"], "label": [0, 1]}))
    assert set(out["split"]) == {"train"} and "too few people for a test and val split" in info.note
    out, info = assign_splits(pd.DataFrame({"subject": ["a", "a", "b"], "label": [0, 1, 0]}))
    assert set(out["split"]) == {"train", "val"} and "too few people for a test split" in info.note


@pytest.mark.realdata
def test_real_aihub_label_table_subjects_never_leak():
    csv = shared_data("aihub-forehead-labels") / "json_to_dataframe.csv"
    raw = pd.read_csv(csv, dtype=str, keep_default_na=False)
    raw["label"] = raw["adj_forehead_wrinkle_2"]
    out, info = assign_splits(raw.rename(columns={"id": "subject"}), seed=0)
    assert info.groups == 965
    assert check_no_leak(out) == {}
    frac = out["split"].value_counts(normalize=True)
    assert abs(frac["test"] - 0.15) < 0.02 and abs(frac["val"] - 0.15) < 0.02


def test_group_deal_is_sklearns_stratified_group_kfold():
    """group_deal gives exactly StratifiedGroupKFold(shuffle=True)'s folds: 1-7 classes, 2-20 folds, skewed labels."""
    import warnings

    from sklearn.model_selection import StratifiedGroupKFold

    from skinage.data.splits import group_deal

    rs = np.random.RandomState(7)
    checked = 0
    for trial in range(80):
        n_cls, n_rows = rs.randint(1, 8), rs.randint(20, 400)
        n_groups = rs.randint(5, n_rows + 1)
        groups = np.array([f"p{v}" for v in rs.randint(0, n_groups, n_rows)], dtype=object)
        labels = rs.randint(0, n_cls, n_rows) if trial % 3 else (rs.rand(n_rows) ** 3 * n_cls).astype(int)
        y = np.array([str(v) for v in labels], dtype=object)
        n = rs.randint(2, min(20, len(set(groups))) + 1)
        if np.unique(y, return_counts=True)[1].max() < n:
            continue
        want = np.full(n_rows, -1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            kf = StratifiedGroupKFold(n_splits=n, shuffle=True, random_state=trial)
            for k, (_, idx) in enumerate(kf.split(np.zeros(n_rows), y, groups)):
                want[idx] = k
        assert group_deal(y, groups, n, trial).tolist() == want.tolist(), (trial, n_cls, n_rows, n)
        checked += 1
    assert checked > 60
