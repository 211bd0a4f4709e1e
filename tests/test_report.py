"""report.html: self-contained, all tables and pictures; rendered legibly by headless Chromium when present."""

import re

import numpy as np
import pytest

from skinage.evaluation import plots
from skinage.evaluation.baselines import run_baselines
from skinage.evaluation.evaluate import format_tables, score_predictions
from skinage.evaluation.report import find_chromium, render_png, report_html, write_report

from browser_helpers import browser_missing


@pytest.fixture
def scored(tmp_path):
    import pandas as pd

    rng = np.random.default_rng(0)
    n_persons, views = 40, ["F", "L15", "R15"]
    y = np.repeat(rng.integers(0, 4, n_persons), len(views))
    subjects = np.repeat([f"p{i}" for i in range(n_persons)], len(views))
    v = np.tile(views, n_persons)
    logits = np.eye(4)[y] * 2.0 + rng.normal(0, 1.0, (len(y), 4))
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    train = pd.DataFrame({"label": rng.integers(0, 4, 200), "age": rng.uniform(20, 70, 200)})
    test = pd.DataFrame({"age": np.repeat(rng.uniform(20, 70, n_persons), len(views))})
    base = run_baselines(train, test, 4, groups=subjects)
    classes = ["grade 0", "grade 1", "grade 2", "grade 3"]
    m = score_predictions(y, probs, subjects, classes, True, v, base, n_boot=200)
    m.pop("_persons_table")
    files = {
        "confusion": plots.plot_confusion(m["confusion"], classes, tmp_path / "confusion_matrix.png"),
        "reliability": plots.plot_reliability(probs, y, tmp_path / "reliability.png"),
        "embeddings": plots.plot_embeddings(rng.normal(size=(len(y), 16)) + y[:, None], y, classes,
                                            tmp_path / "embeddings.png", method="pca", pred=probs.argmax(1)),
    }
    m["files"] = {k: p.name for k, p in files.items()}
    m.update(split="test", data="synthetic.csv", model={"name": "mobilenet_v2", "mode": "feature",
                                                        "weights_from": "imagenet", "epoch": 3})
    return m, tmp_path


def test_report_is_self_contained_and_complete(scored):
    m, d = scored
    path = write_report(m, d, "test report")
    html = path.read_text()
    assert html.count("data:image/png;base64,") == 3
    assert not re.search(r'src="(?!data:)', html)
    text_only = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", html)
    assert "http://" not in text_only and "https://" not in text_only and "<link" not in text_only
    for section in ("Image level, with the baselines", "Gain of the model over each baseline", "Person level",
                    "By view", "Per class"):
        assert section in html, section
    for name in ("majority", "stratified", "metadata", "grade 3", "L15"):
        assert name in html
    acc = m["image"]["model"]["accuracy"]
    lo, hi = m["image"]["model"]["ci"]["accuracy"]
    assert f"{acc:.3f}" in html and f"[{lo:.3f}, {hi:.3f}]" in html
    text = format_tables(m)
    assert "Person level" in text and f"{acc:.3f} [{lo:.3f}, {hi:.3f}]" in text


def test_report_without_model_or_pictures(tmp_path):
    import pandas as pd

    y = np.array([0, 1, 1, 0, 1, 1])
    base = run_baselines(pd.DataFrame({"label": [0, 1, 1]}), pd.DataFrame(index=range(6)), 2)
    m = score_predictions(y, None, np.arange(6), ["a", "b"], False, None, base, n_boot=50)
    m.pop("_persons_table", None)
    html = report_html(m, tmp_path)
    assert "majority" in html and "QWK" not in html and "<img" not in html


def test_rendered_screenshot_is_not_blank(scored, tmp_path):
    from PIL import Image

    if find_chromium() is None:  # skips, or fails under CI=true (issue 21)
        browser_missing("headless Chromium not installed (apt-get install chromium, or make setup as root)")
    m, d = scored
    html = write_report(m, d, "render test")
    png = render_png(html, tmp_path / "shot.png", width=1200, height=1600)
    im = np.asarray(Image.open(png).convert("L"), dtype=float)
    assert im.shape == (1600, 1200)
    # text and tables draw dark pixels on a white page: neither blank nor a solid block
    dark = (im < 128).mean()
    assert 0.01 < dark < 0.5


def test_perfect_score_note():
    # 10 persons, all right: the bootstrap collapses; exact lower bound 0.025 ** (1 / 10) = 0.692
    y = np.repeat(np.arange(10) % 2, 2)
    m = score_predictions(y, np.eye(2)[y], np.repeat(np.arange(10), 2), ["a", "b"], False, None, {}, n_boot=50)
    assert m["image"]["model"]["ci"]["accuracy"] == [1.0, 1.0]
    assert any("0.692" in n for n in m["notes"])
    m.pop("_persons_table", None)
    assert "0.692" in format_tables(m)
