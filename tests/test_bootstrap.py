"""Bootstrap intervals: cover the point estimate, narrow with more data, resample persons."""

import numpy as np
import pytest

from skinage.evaluation.bootstrap import (
    bootstrap_ci,
    bootstrap_confusions,
    paired_bootstrap_difference,
    resample_counts,
)
from skinage.evaluation.metrics import classification_metrics


def _data(n, seed=0, acc=0.7, k=4):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    p = np.where(rng.random(n) < acc, y, rng.integers(0, k, n))
    return y, p


def test_covers_point_estimate_and_narrows():
    widths = []
    for n in (100, 1600):
        y, p = _data(n)
        point = classification_metrics(y, p, 4)
        ci = bootstrap_ci(y, p, n_classes=4, n_boot=1000, seed=0)
        for key in ("accuracy", "f1_macro", "qwk", "mae", "within_one"):
            lo, hi = ci[key]
            assert lo <= point[key] <= hi, (n, key)
        widths.append(ci["accuracy"][1] - ci["accuracy"][0])
    # width ~ 1/sqrt(n): 16x the data -> about 4x narrower
    assert widths[1] < widths[0] / 2.5


def test_seeded_and_counts():
    y, p = _data(200)
    assert bootstrap_ci(y, p, seed=5) == bootstrap_ci(y, p, seed=5)
    assert bootstrap_ci(y, p, seed=5) != bootstrap_ci(y, p, seed=6)
    c = resample_counts(7, 50, seed=0)
    assert c.shape == (50, 7) and (c.sum(1) == 7).all()
    conf = bootstrap_confusions(y, p, n_boot=30)
    assert conf.shape == (30, 4, 4) and np.allclose(conf.sum((1, 2)), 200)


def test_cluster_bootstrap_keeps_persons_whole():
    # 20 persons x 5 images; a person's images are all right or all wrong.
    y = np.repeat(np.arange(20) % 2, 5)
    right = np.repeat(np.arange(20) < 14, 5)
    p = np.where(right, y, 1 - y)
    groups = np.repeat(np.arange(20), 5)
    conf = bootstrap_confusions(y, p, groups=groups, n_boot=200)
    # every resample holds 100 images: whole persons only
    assert np.allclose(conf.sum((1, 2)), 100)
    acc = np.trace(conf, axis1=1, axis2=2) / 100
    # accuracy moves in steps of one person (5 images = 0.05)
    assert np.allclose((acc * 20) % 1, 0)
    # the interval over persons is wider than the (wrong) one over images
    by_person = bootstrap_ci(y, p, groups=groups, n_boot=2000)["accuracy"]
    by_image = bootstrap_ci(y, p, n_boot=2000)["accuracy"]
    assert (by_person[1] - by_person[0]) > 1.5 * (by_image[1] - by_image[0])


def test_paired_difference():
    y, p = _data(500, acc=0.8)
    base = np.zeros_like(y)
    d = paired_bootstrap_difference(y, p, base, n_classes=4)
    diff, lo, hi = d["accuracy"]
    assert diff == pytest.approx((p == y).mean() - (base == y).mean())
    assert lo > 0 and lo <= diff <= hi


def test_bad_input():
    with pytest.raises(ValueError, match="groups"):
        bootstrap_ci([0, 1], [0, 1], groups=[0])
    with pytest.raises(ValueError, match="level"):
        bootstrap_ci([0, 1], [0, 1], level=1.5)


def test_soft_predictions_give_expected_confusions():
    # probabilities instead of classes: each resample holds expected counts
    y = np.array([0, 0, 1, 1])
    probs = np.array([[0.5, 0.5]] * 4)
    conf = bootstrap_confusions(y, probs, n_boot=50)
    assert np.allclose(conf.sum((1, 2)), 4)
    assert np.allclose(conf[:, :, 0], conf[:, :, 1])  # half of every row on each column
    d = paired_bootstrap_difference(y, np.array([0, 0, 1, 1]), probs, n_boot=100)
    assert d["accuracy"][0] == pytest.approx(0.5)  # 1.0 - 0.5
