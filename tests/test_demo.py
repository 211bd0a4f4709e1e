"""`skinage demo` end to end on a tiny SYNTHETIC configuration."""

from __future__ import annotations

import json

import pytest

from skinage.config import ConfigError


@pytest.fixture(scope="module")
def tiny_demo(tmp_path_factory):
    from skinage.demo import demo

    out = tmp_path_factory.mktemp("demo")
    res = demo(out=out, people=10, image_size=(64, 48), size=32, epochs=1, pretrained=False,
               predict_n=2, seed=1, threads=2)
    return out, res


def test_demo_end_to_end(tiny_demo, capsys):
    out, res = tiny_demo
    # the synthetic data set was generated, and says so
    assert (res.data / "README_SYNTHETIC.md").exists()
    assert "synthetic" in str(res.data).lower()
    # the manifest was split by person into train / val / test with the 4 remapped levels
    from skinage.data.manifest import read_manifest

    man = read_manifest(res.manifest)
    assert len(man.classes) == 4
    df = man.df
    assert len(df) == 50
    per_subject = df.groupby("subject")["split"].nunique()
    assert (per_subject == 1).all()
    assert set(df["split"]) == {"train", "val", "test"}
    # the report and the int8 model exist
    assert res.report is not None and res.report.exists() and res.report.stat().st_size > 1000
    assert res.onnx is not None and res.onnx.exists() and "int8" in res.onnx.name
    assert res.comparison is not None and res.comparison.exists()
    assert res.skipped == {}
    # a few test images were predicted with the int8 file, each a valid class
    assert 1 <= len(res.predictions) <= 2
    for p in res.predictions:
        assert p["status"] == "ok" and p["class"] in man.classes
    summary = json.loads((out / "demo.json").read_text())
    assert summary["synthetic_data"] is True
    assert set(summary["timings"]) >= {"data", "ingest", "train", "evaluate", "export", "predict", "compare"}


def test_demo_on_user_data(tiny_demo, tmp_path):
    """--data: the same job on an existing source (here the tiny demo's own AI-Hub tree)."""
    out, res = tiny_demo
    from skinage.demo import demo

    res2 = demo(data=res.data, out=tmp_path / "mine", label="annotations.forehead_wrinkle",
                remap="0,1:0 2,3:1 4:2 5,6:3", size=32, epochs=1, pretrained=False, predict_n=1,
                seed=1, threads=2)
    assert res2.onnx is not None and res2.onnx.exists()
    assert res2.report is not None and res2.report.exists()
    assert not (tmp_path / "mine" / "data").exists()  # nothing generated


def test_demo_config_and_errors(tmp_path):
    from skinage.demo import demo

    with pytest.raises(ConfigError, match="did you mean"):
        demo(epoch=1)
    with pytest.raises(FileNotFoundError):
        demo(data=tmp_path / "nope", out=tmp_path / "o")


def test_demo_cli_help(capsys):
    from skinage.cli import main

    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    text = capsys.readouterr().out
    assert "--data" in text and "synthetic" in text.lower()
