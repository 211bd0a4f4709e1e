"""Person fusion on a tiny hand-made case; per-view breakdown."""

import numpy as np
import pytest

from skinage.evaluation.fusion import fuse_persons, metrics_by_view


def test_fusion_by_hand():
    # person a: 3 views, two say class 0 weakly, one says class 2 strongly
    #   mean = [(0.5+0.5+0.0)/3, (0.3+0.3+0.1)/3, (0.2+0.2+0.9)/3] = [0.333, 0.233, 0.433] -> 2
    # person b: 2 views whose labels disagree (1 and 2): a tie, the lower level (1) wins
    #   mean = [0.1, 0.6, 0.3] -> 1
    # person c: one view -> its own argmax 0
    probs = np.array([
        [0.5, 0.3, 0.2], [0.5, 0.3, 0.2], [0.0, 0.1, 0.9],
        [0.2, 0.5, 0.3], [0.0, 0.7, 0.3],
        [0.8, 0.1, 0.1],
    ])
    labels = [2, 2, 2, 1, 2, 0]
    subjects = ["a", "a", "a", "b", "b", "c"]
    f = fuse_persons(probs, labels, subjects)
    t = f.table
    assert t["subject"].tolist() == ["a", "b", "c"]
    assert t["n_images"].tolist() == [3, 2, 1]
    assert t["pred"].tolist() == [2, 1, 0]
    assert t["label"].tolist() == [2, 1, 0]
    assert t["labels_agree"].tolist() == [True, False, True]
    assert f.n_label_disagreements == 1
    assert f.probs[0] == pytest.approx([1 / 3, 0.7 / 3, 1.3 / 3])
    m = f.metrics(3)
    assert m["accuracy"] == 1.0 and m["n"] == 3
    # image level, the same predictions are only 3/6 right (views 3, 4, 6): fusion helps here
    assert (probs.argmax(1) == np.array(labels)).mean() == pytest.approx(3 / 6)


def test_fusion_of_an_ordinal_head_takes_the_rank_of_the_mean():
    # person a: mean = [0.333, 0.233, 0.433]; P(y>0) = 0.667, P(y>1) = 0.433 -> rank 1 (its argmax is 2)
    # person b: mean = [0.1, 0.6, 0.3]; P(y>0) = 0.9, P(y>1) = 0.3 -> rank 1, as its argmax
    probs = np.array([[0.5, 0.3, 0.2], [0.5, 0.3, 0.2], [0.0, 0.1, 0.9], [0.2, 0.5, 0.3], [0.0, 0.7, 0.3]])
    f = fuse_persons(probs, [1, 1, 1, 1, 1], ["a", "a", "a", "b", "b"], ordinal_head="corn")
    assert f.table["pred"].tolist() == [1, 1]
    assert fuse_persons(probs, [1] * 5, ["a", "a", "a", "b", "b"]).table["pred"].tolist() == [2, 1]


def test_majority_label_wins():
    f = fuse_persons(np.full((3, 2), 0.5), [1, 1, 0], ["x", "x", "x"])
    assert f.table["label"].tolist() == [1] and f.n_label_disagreements == 1


def test_by_view_and_errors():
    rows = metrics_by_view([0, 1, 2, 0, 1, 2], [0, 1, 2, 1, 1, 0], ["F", "F", "F", "L30", "L30", "L30"], 3)
    assert [r["view"] for r in rows] == ["F", "L30"]
    assert rows[0]["accuracy"] == 1.0 and rows[1]["accuracy"] == pytest.approx(1 / 3)
    assert rows[1]["mae"] == pytest.approx((1 + 0 + 2) / 3)
    with pytest.raises(ValueError, match="lengths differ"):
        fuse_persons(np.eye(2), [0, 1], ["a"])
    with pytest.raises(ValueError, match="shape"):
        fuse_persons(np.ones(3), [0, 1, 1], ["a", "b", "c"])
