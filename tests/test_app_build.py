"""``skinage app`` without a browser: the export it does itself, the site's files, the card, the choice rule."""

from __future__ import annotations

import json
import re

import pytest

pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")

from export_helpers import CLASSES, SIZE, make_tiny_run  # noqa: E402


def _runtime_or_skip():
    from skinage.app.runtime_files import RuntimeFilesMissing, runtime_files

    try:
        return runtime_files()
    except RuntimeFilesMissing as e:
        pytest.skip(str(e))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A tiny run with no export, no evaluation: `skinage app` exports it (fp32 + fp16) and says it is not evaluated."""
    _runtime_or_skip()
    from skinage.cli import main

    root = tmp_path_factory.mktemp("app-build")
    tiny = make_tiny_run(root, ordinal="corn", steps=20)
    site = root / "site"
    rc = main(["app", str(tiny["run"]), "--out", str(site), "--measure", "0", "--no-evaluate", "--label", "Brightness"])
    assert rc == 0
    return tiny, site, json.loads((site / "card.json").read_text())


def test_app_exports_what_is_missing_and_writes_the_site(built):
    tiny, site, card = built
    exp = tiny["run"] / "export"
    assert (exp / "model.onnx").is_file() and (exp / "model.fp16.onnx").is_file()  # exported by the app
    for f in ("index.html", "app.css", "sw.js", "version.json", "manifest.webmanifest", "icon.svg", "card.json",
              "model.onnx", "js/app.mjs", "js/pipeline.mjs", "js/boxes.mjs", "js/resample.mjs", "js/find/finder.mjs",
              "ort/ort.wasm.min.mjs", "ort/ort-wasm-simd-threaded.mjs", "ort/ort-wasm-simd-threaded.wasm",
              "models/face_detection_short_range.onnx", "models/face_landmark.onnx"):
        assert (site / f).is_file(), f
    html = (site / "index.html").read_text()
    assert re.search(r'<input id="photo" type="file" accept="image/\*" capture="user">', html)
    assert 'id="result" data-n="0"' in html and '<canvas id="crop">' in html
    assert "default-src 'self'" in html  # the page's own policy: nothing from another origin
    # the service worker caches every file; its version is version.json's
    sw = (site / "sw.js").read_text()
    listed = json.loads(re.search(r"const FILES = (\[.*?\]);", sw).group(1))
    files = {p.relative_to(site).as_posix() for p in site.rglob("*") if p.is_file()} - {"sw.js"}
    assert set(listed) - {"./"} == files
    assert json.loads((site / "version.json").read_text())["version"] in sw


def test_card_without_evaluation_or_browser(built):
    from skinage.find.constants import MIN_FACE_SIZE
    from skinage.runtime.onnx_io import read_onnx_metadata
    from skinage.runtime.quality import MIN_LUMA

    tiny, site, card = built
    assert card["classes"] == CLASSES and card["ordinal"] == "corn" and card["class_rule"].startswith("rank")
    assert card["task"]["label"] == "Brightness" and card["preprocess"]["size"] == SIZE
    assert card["test"]["evaluated"] is False and "not evaluated" in card["test"]["note"]
    assert card["refusals"]["too_dark"]["min_luma"] == MIN_LUMA
    assert card["refusals"]["face_too_small"]["thresholds"]["MIN_FACE_SIZE"] == MIN_FACE_SIZE
    mf = card["model_file"]
    assert mf["measured_in"] == "python"  # --measure 0: no browser; the documented default
    by = {c["name"]: c for c in mf["candidates"]}
    assert set(by) == {"fp32", "fp16"} and by["fp32"]["python_agreement"] == 1.0 and by["fp32"]["ms"] is None
    expected = "fp16" if by["fp16"]["agreement"] >= 0.98 else "fp32"
    assert mf["chosen"] == expected and "not measured in a browser" in mf["why"]
    shipped = read_onnx_metadata(site / "model.onnx")
    assert shipped["precision"] == ("fp16-storage" if expected == "fp16" else "fp32")
    assert card["sizes"]["files"]["model.onnx"] == (site / "model.onnx").stat().st_size
    assert card["files"] == {"model": "model.onnx", "detector": "models/face_detection_short_range.onnx",
                             "landmarks": "models/face_landmark.onnx"}


def test_app_replaces_its_own_site_but_nothing_else(built, tmp_path):
    from skinage.app.app import app

    tiny, site, _ = built
    card = app(tiny["run"], out=site, measure=0, evaluate=False, model="fp32")  # over its own site: fine
    assert card["model_file"]["chosen"] == "fp32" and "--model fp32" in card["model_file"]["why"]
    other = tmp_path / "photos"
    other.mkdir()
    (other / "keep.jpg").write_bytes(b"x")
    with pytest.raises(FileExistsError, match="not a site written by"):
        app(tiny["run"], out=other, measure=0, evaluate=False)
    assert (other / "keep.jpg").read_bytes() == b"x"


def test_app_needs_a_run_and_an_out(tmp_path, capsys):
    from skinage.cli import main

    assert main(["app", str(tmp_path), "--out", str(tmp_path / "s")]) == 2
    assert "not a trained run folder" in capsys.readouterr().err


def test_choice_rule():
    from skinage.app.choose import Candidate, pick

    finder = 2_864_406
    fp32 = Candidate("fp32", None, 8_900_000, agreement=1.0, ms=40.0)
    fp16 = Candidate("fp16", None, 4_500_000, agreement=1.0, ms=42.0)
    int8 = Candidate("int8", None, 3_900_000, agreement=0.99, ms=65.0)
    assert pick([fp32, fp16, int8], finder)[0].name == "fp16"  # as fast (within 10 %), smaller, within 8 MB
    fp16.agreement = 0.97
    assert pick([fp32, fp16, int8], finder)[0].name == "int8"  # the only agreeing file within the budget
    int8.agreement = 0.5
    best, why = pick([fp32, fp16, int8], finder)
    assert best.name == "fp32" and "no agreeing file fits" in why  # over the budget, said so
    fp16.agreement, fp16.ms = 1.0, 30.0
    assert pick([fp32, fp16], finder, budget_mb=100)[0].name == "fp16"  # the faster
    fp32.ms = fp16.ms = None
    best, why = pick([fp32, fp16], finder)
    assert best.name == "fp16" and "not measured" in why  # the documented default
