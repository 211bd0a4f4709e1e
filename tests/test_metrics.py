"""Metrics against values worked out by hand."""

import numpy as np
import pytest

from skinage.evaluation.metrics import (
    calibration_bins,
    classification_metrics,
    confusion,
    expected_calibration_error,
    labels_from_confusion,
    metrics_from_confusion,
    per_class_metrics,
)

# the forehead project's published confusion matrix, rows = true grade 0..3
FOREHEAD = np.array([[322, 80, 5, 0], [104, 171, 68, 37], [0, 7, 24, 44], [0, 0, 5, 98]])


def test_forehead_confusion_published_figures():
    # worked out by hand: n = 965; diagonal 322+171+24+98 = 615 -> 0.6373
    # off by one level: 80+104+68+7+44+5 = 308 -> within-one (615+308)/965 = 0.9565
    # off by two levels: 5 (0->2) + 37 (1->3) + 0 + 0 = 42; off by three: 0
    # MAE = (308*1 + 42*2) / 965 = 392/965 = 0.4062
    y, p = labels_from_confusion(FOREHEAD)
    m = classification_metrics(y, p, 4)
    assert m["n"] == 965
    assert m["accuracy"] == pytest.approx(615 / 965)
    assert round(m["accuracy"], 3) == 0.637
    assert m["within_one"] == pytest.approx(923 / 965)
    assert round(m["within_one"], 3) == 0.956
    assert m["mae"] == pytest.approx(392 / 965)
    assert round(m["mae"], 2) == 0.41
    assert round(m["qwk"], 3) == 0.778


def test_qwk_by_hand_formula():
    # QWK = 1 - sum(w*O) / sum(w*E), w = (i-j)^2, E = outer(row sums, col sums) / n
    c = FOREHEAD.astype(float)
    n = c.sum()
    i, j = np.indices(c.shape)
    w = (i - j) ** 2
    e = np.outer(c.sum(1), c.sum(0)) / n
    expected = 1 - (w * c).sum() / (w * e).sum()
    assert metrics_from_confusion(FOREHEAD)["qwk"] == pytest.approx(expected)


def test_confusion_formulas_equal_sklearn():
    rng = np.random.default_rng(3)
    for trial in range(20):
        k = int(rng.integers(2, 6))
        n = int(rng.integers(5, 60))
        y = rng.integers(0, k, n)
        p = np.where(rng.random(n) < 0.5, y, rng.integers(0, k, n))
        a = classification_metrics(y, p, k)
        b = metrics_from_confusion(confusion(y, p, k))
        for key, v in b.items():
            if np.isnan(v):
                assert np.isnan(a[key]), key
            else:
                assert a[key] == pytest.approx(v, abs=1e-12), (trial, key)


def test_stacked_confusions():
    stack = np.stack([FOREHEAD, np.eye(4, dtype=int) * 5])
    m = metrics_from_confusion(stack)
    assert m["accuracy"].shape == (2,)
    assert m["accuracy"][1] == 1.0 and m["qwk"][1] == pytest.approx(1.0)


def test_perfect_and_constant():
    m = classification_metrics([0, 1, 2], [0, 1, 2])
    assert m["accuracy"] == m["qwk"] == m["f1_macro"] == 1.0 and m["mae"] == 0
    m = classification_metrics([1, 1, 1], [1, 1, 1])
    assert np.isnan(m["qwk"])  # undefined with one class
    m = classification_metrics([0, 1], [1, 0], ordinal=False)
    assert "qwk" not in m and m["accuracy"] == 0


def test_qwk_uses_level_distance_when_a_level_is_missing():
    # levels 0, 1, 3 occur, 2 does not: 1 -> 3 is two levels apart, not one
    y, p = [0, 1, 3, 3], [0, 3, 3, 1]
    m = metrics_from_confusion(confusion(y, p, 4))
    assert classification_metrics(y, p, 4)["qwk"] == pytest.approx(m["qwk"])
    assert m["mae"] == 1.0


def test_per_class():
    rows = per_class_metrics([0, 0, 1, 1, 2], [0, 1, 1, 1, 1], classes=["a", "b", "c"])
    assert [r["support"] for r in rows] == [2, 2, 1]
    assert rows[1]["precision"] == pytest.approx(2 / 4)
    assert rows[1]["recall"] == 1.0
    assert rows[1]["f1"] == pytest.approx(2 * 0.5 * 1 / 1.5)
    assert rows[2]["precision"] == 0 and rows[2]["predicted"] == 0


def test_bad_shapes():
    with pytest.raises(ValueError, match="same length"):
        classification_metrics([0, 1], [0])
    with pytest.raises(ValueError, match="1-D"):
        classification_metrics([[0, 1]], [[0, 1]])
    with pytest.raises(ValueError, match="out of range"):
        classification_metrics([0, 3], [0, 1], n_classes=2)
    with pytest.raises(ValueError, match="negative"):
        confusion([0, -1], [0, 0])
    with pytest.raises(ValueError, match="empty"):
        classification_metrics([], [])
    with pytest.raises(ValueError, match="square"):
        metrics_from_confusion(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="sum to 1"):
        expected_calibration_error([[0.5, 0.7]], [0])


def test_ece_by_hand():
    # four predictions in two bins: conf 0.95, 0.95 (1 right, 1 wrong) -> gap 0.45,
    # conf 0.65, 0.65 (both right) -> gap 0.35; ECE = 0.5*0.45 + 0.5*0.35 = 0.40
    probs = [[0.95, 0.05], [0.95, 0.05], [0.35, 0.65], [0.35, 0.65]]
    y = [0, 1, 1, 1]
    assert expected_calibration_error(probs, y, n_bins=10) == pytest.approx(0.40)
    b = calibration_bins(probs, y, n_bins=10)
    assert b["count"].sum() == 4 and b["count"][9] == 2 and b["count"][6] == 2
    # perfectly calibrated: confidence 1 and always right
    assert expected_calibration_error(np.eye(3), [0, 1, 2]) == 0.0


def test_training_scores_with_these_metrics_under_its_own_names():
    """Training's validation figures are classification_metrics' (one implementation), under the run files' names."""
    from skinage.training.selection import compute_metrics, results_columns

    # K = 4, class 3 absent from truth and predictions: macro F1 over the 3 classes present,
    # F1 = 2/3 (class 0: 1 of 2 found, 1 predicted), 2/3 (class 1: 1 found, 2 predicted), 1 (class 2) -> 7/9
    y, p = [0, 0, 1, 2], [0, 1, 1, 2]
    m = compute_metrics(y, p, 4, ordered=True)
    assert list(m) == ["n", "accuracy", "macro_f1", "qwk", "mae", "within_one"]
    assert m["macro_f1"] == pytest.approx(7 / 9)
    ref = classification_metrics(y, p, 4)
    assert (m["accuracy"], m["macro_f1"], m["qwk"], m["mae"], m["within_one"]) == (
        ref["accuracy"], ref["f1_macro"], ref["qwk"], ref["mae"], ref["within_one"])
    assert list(compute_metrics(y, p, 4, ordered=False)) == ["n", "accuracy", "macro_f1"]
    assert list(results_columns(m)) == ["val_acc", "val_macro_f1", "val_qwk", "val_mae"]
    # undefined is NaN in both (training gave 0.0 before)
    assert np.isnan(compute_metrics([1, 1, 1], [1, 1, 1], 4, ordered=True)["qwk"])
    assert np.isnan(classification_metrics([1, 1, 1], [1, 1, 1], 4)["qwk"])
