"""`skinage evaluate` end to end on tiny runs: metrics.json, plots, report.html, baselines, persons, views."""

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import make_image

CLASSES = ["low", "mid", "high"]


def _manifest(root: Path, n_subjects: int = 18, views=("F", "L15", "R15"), corrupt: bool = False) -> Path:
    from skinage.data.manifest import Manifest, write_manifest

    rows = []
    rng = np.random.default_rng(0)
    splits = ["train", "train", "train", "val", "test", "train"]
    for s in range(n_subjects):
        lvl = s % 3
        split = splits[(s // 3) % 6]
        age = 20 + 20 * lvl + int(rng.integers(-5, 5))
        for v, view in enumerate(views):
            p = make_image(root / "img" / f"s{s}_{view}.png", value=40 + 80 * lvl, size=(40, 40), seed=s * 10 + v)
            rows.append(dict(path=str(p), label=lvl, subject=f"s{s:02d}", view=view, split=split, age=age,
                             gender="FM"[s % 2]))
    if corrupt:
        bad = root / "img" / "broken.jpg"
        bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
        rows.append(dict(path=str(bad), label=0, subject="s12", view="F", split="test", age=20, gender="F"))
    path = root / "manifest.csv"
    write_manifest(Manifest(pd.DataFrame(rows), CLASSES, {"ordinal": True}), path)
    return path


def _fake_run(root: Path, manifest: Path, seed: int = 0) -> Path:
    """A run folder as training writes it, with an untrained model (no training engine needed)."""
    import torch
    import yaml

    from skinage.models.checkpoint import save_checkpoint
    from skinage.models.model import SkinageModel

    torch.manual_seed(seed)
    run = root / "run"
    m = SkinageModel("squeezenet1_1", 3, pretrained=False)
    save_checkpoint(m, {"classes": CLASSES, "ordered": True, "mode": "feature", "epoch": 2,
                        "preprocessing": {"input_size": 32}}, run / "weights" / "best")
    (run / "args.yaml").write_text(yaml.safe_dump({"data": str(manifest), "model": "squeezenet1_1"}))
    pd.DataFrame({"epoch": [1, 2], "train_loss": [1.0, 0.8], "val_loss": [1.1, 0.9], "val_accuracy": [0.3, 0.5],
                  "lr": [1e-3, 1e-4]}).to_csv(run / "results.csv", index=False)
    (run / "metrics.json").write_text(json.dumps({"best_epoch": 2, "time_s": 12.5, "test": {"accuracy": 0.5}}))
    return run


FAST = dict(n_boot=200, gradcam=2, embedding="pca", progress=False)


def test_evaluate_fake_run(tmp_path, capsys):
    import torch

    import skinage
    from skinage.models.checkpoint import load_checkpoint

    manifest = _manifest(tmp_path, corrupt=True)
    run = _fake_run(tmp_path, manifest)
    res = skinage.evaluate(run, **FAST)
    m = res.metrics
    out = capsys.readouterr().out
    assert "Image level" in out and "Person level" in out and "By view" in out and "metadata" in out
    # default: the run's own manifest, test split: subjects s12..s14, 3 views each; the broken file set aside
    assert m["split"] == "test" and m["n_images"] == 9 and m["n_persons"] == 3
    assert m["n_set_aside"] == 1 and "broken.jpg" in m["set_aside"][0]["path"]
    assert m["bootstrap"]["unit"] == "person"
    assert set(m["image"]) == {"model", "majority", "stratified", "metadata"}
    for name, mm in m["image"].items():
        for key in ("accuracy", "qwk", "mae", "within_one", "f1_macro"):
            lo, hi = mm["ci"][key]
            assert np.isnan(mm[key]) or lo - 1e-9 <= mm[key] <= hi + 1e-9, (name, key)
    # person level and views
    assert m["person"]["model"]["n"] == 3
    assert [r["view"] for r in m["by_view"]["model"]] == ["F", "L15", "R15"]
    assert sum(r["support"] for r in m["per_class"]) == 9
    # files
    d = res.out_dir
    assert d == run
    for name in ("confusion_matrix.png", "confusion_matrix_persons.png", "training_curves.png", "embeddings.png",
                 "reliability.png", "gradcam_right.png", "report.html", "eval_predictions.csv", "persons.csv"):
        assert (d / name).is_file(), name
    html = (d / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 6 and "Person level" in html and "By view" in html
    # metrics.json keeps the training's keys and adds the evaluation
    doc = json.loads((d / "metrics.json").read_text())
    assert doc["best_epoch"] == 2 and doc["evaluation"]["n_images"] == 9
    # the probabilities are the model's own (checked independently of evaluate's batching)
    pred = pd.read_csv(d / "eval_predictions.csv")
    from skinage.data.images import load_crop

    model, _ = load_checkpoint(run)
    x = np.stack([load_crop(p, None, 32) for p in pred["path"]])
    with torch.no_grad():
        p = model.predict_proba(torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255).numpy()
    assert np.allclose(pred[[f"p_{j}" for j in range(3)]].to_numpy(), p, atol=1e-4)
    assert m["image"]["model"]["accuracy"] == pytest.approx((p.argmax(1) == pred["label"].to_numpy()).mean())


def test_evaluate_other_manifest_defaults_to_all_rows(tmp_path):
    import skinage

    run = _fake_run(tmp_path, _manifest(tmp_path / "a"))
    other = _manifest(tmp_path / "b", n_subjects=15, views=("F",))
    out = tmp_path / "out"
    res = skinage.evaluate(run, data=other, out=out, plots=False, report=False, n_boot=100, progress=False)
    assert res.metrics["split"] == "all" and res.metrics["n_images"] == 15
    # one image per person: no person table, bootstrap over images; baselines still from the run's training rows
    assert "person" not in res.metrics and res.metrics["bootstrap"]["unit"] == "image"
    assert res.metrics["train_rows_for_baselines"].endswith("a/manifest.csv")
    assert (out / "metrics.json").is_file() and not (run / "eval_predictions.csv").exists()
    res = skinage.evaluate(run, data=other, out=out, split="test", plots=False, report=False, n_boot=100,
                           progress=False)
    assert res.metrics["n_images"] == 3


def test_baselines_only_cli_on_label_table(tmp_path, capsys):
    """No images at all (like the forehead label table): baselines with CIs from the CLI."""
    from skinage.cli import main
    from skinage.data.manifest import Manifest, write_manifest

    rng = np.random.default_rng(1)
    n = 300
    age = rng.uniform(15, 70, n)
    label = np.clip(((age - 15) / 14 + rng.normal(0, 0.6, n)).astype(int), 0, 3)
    subj = np.arange(n) // 3
    df = pd.DataFrame({"path": [f"/nowhere/{i}.jpg" for i in range(n)], "label": label, "subject": subj.astype(str),
                       "age": np.repeat(age[::3], 3), "split": np.where(subj % 5 == 0, "test", "train")})
    path = tmp_path / "labels.csv"
    write_manifest(Manifest(df, ["0", "1", "2", "3"], {"ordinal": True}), path)
    out = tmp_path / "bo"
    assert main(["evaluate", "--baselines-only", "--data", str(path), "--out", str(out), "--n-boot", "100",
                 "--meta-features", "age"]) == 0
    printed = capsys.readouterr().out
    assert "metadata" in printed and "majority" in printed
    m = json.loads((out / "metrics.json").read_text())["evaluation"]
    assert "model" not in m["image"]
    assert m["image"]["metadata"]["accuracy"] > m["image"]["majority"]["accuracy"]
    assert (out / "report.html").is_file()


def test_errors(tmp_path, capsys):
    from skinage.cli import main

    assert main(["evaluate"]) == 2
    assert "give the run folder" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path / "nope")]) == 2
    run = _fake_run(tmp_path, _manifest(tmp_path))
    assert main(["evaluate", str(run), "--split", "val", "--n-boot", "50", "--no-plots", "--no-progress"]) == 0
    assert json.loads((run / "metrics.json").read_text())["evaluation"]["split"] == "val"
    with pytest.raises(SystemExit):
        main(["evaluate", str(run), "--split", "tset"])


def test_evaluate_trained_run(tmp_path):
    """A tiny run trained by `skinage train` (feature mode, 32 px, scratch weights) evaluates end to end."""
    try:
        from skinage.training.train import train
        import skinage.training.loop  # noqa: F401
    except ImportError as e:
        pytest.skip(f"training not available yet: {e}")
    import skinage

    manifest = _manifest(tmp_path)
    run = train(data=manifest, model="squeezenet1_1", mode="feature", epochs=2, size=32, pretrained=False,
                project=tmp_path / "runs", progress=False, threads=2)
    res = skinage.evaluate(run, **FAST)
    m = res.metrics
    assert m["n_images"] == 9 and m["model"]["mode"] == "feature"
    assert (res.out_dir / "report.html").is_file() and (res.out_dir / "training_curves.png").is_file()
    assert "evaluation" in json.loads((res.out_dir / "metrics.json").read_text())


def test_compare_runs(tmp_path, capsys):
    """`skinage compare`: figures with intervals, size, latency, training time; Markdown and CSV."""
    import skinage
    from skinage.cli import main

    manifest = _manifest(tmp_path)
    run = _fake_run(tmp_path, manifest)
    # a second run without evaluation but with the training's predictions.csv and an export
    run2 = tmp_path / "run2"
    run2.mkdir()
    for f in ("weights", "args.yaml", "results.csv"):
        src = run / f
        if src.is_dir():
            import shutil

            shutil.copytree(src, run2 / f)
        else:
            (run2 / f).write_bytes(src.read_bytes())
    pd.DataFrame({"path": ["a", "b", "c", "d"], "subject": ["x", "x", "y", "z"], "view": "", "label": [0, 1, 2, 2],
                  "pred": [0, 1, 1, 2]}).to_csv(run2 / "predictions.csv", index=False)
    pd.DataFrame({"epoch": [1, 2], "time_s": [1.5, 2.5]}).to_csv(run2 / "results.csv", index=False)
    (run2 / "export").mkdir()
    (run2 / "export" / "model.int8.onnx").write_bytes(b"\0" * 250_000)
    (run2 / "export" / "export_results.json").write_text(json.dumps({"rows": [
        {"format": "pytorch fp32", "latency_ms": 20.0}, {"format": "onnx int8", "latency_ms": 4.0}]}))
    skinage.evaluate(run, plots=False, report=False, n_boot=100, progress=False)
    out = tmp_path / "table.md"
    assert main(["compare", str(run), str(run2), "--out", str(out), "--repeats", "3", "--n-boot", "100"]) == 0
    md = out.read_text()
    assert "| run | model | mode |" in md and md.count("squeezenet1_1") >= 2
    rows = pd.read_csv(out.with_suffix(".csv"))
    r1, r2 = rows.iloc[0], rows.iloc[1]
    ev = json.loads((run / "metrics.json").read_text())["evaluation"]["image"]["model"]
    assert r1["accuracy"] == pytest.approx(ev["accuracy"]) and r1["metrics_from"].startswith("metrics.json")
    assert r1["train_time_s"] == 12.5 and r1["latency_ms"] > 0 and "measured" in r1["latency_from"]
    # run2: accuracy 3/4 from predictions.csv, times from results.csv, latency and int8 size from the export
    assert r2["accuracy"] == pytest.approx(0.75) and r2["accuracy_lo"] <= 0.75 <= r2["accuracy_hi"]
    assert r2["train_time_s"] == pytest.approx(4.0) and r2["latency_ms"] == 20.0 and r2["latency_int8_ms"] == 4.0
    assert r2["size_int8_mb"] == pytest.approx(0.25) and r2["parameters"] > 100_000
    assert "0.750 [" in capsys.readouterr().out


@pytest.mark.realdata
def test_forehead_label_table_baselines_only(tmp_path):
    """The real forehead label table: ingest (labels only, 7 -> 4 levels, split by person), then the
    baselines of its test split. Age alone gives about 0.6 accuracy, far above the majority class."""
    from conftest import shared_data

    import skinage

    src = shared_data("aihub-forehead-labels") / "json_to_dataframe.csv"
    manifest = tmp_path / "forehead.csv"
    skinage.ingest(src, out=manifest, labels_only=True, label="forehead_wrinkle", remap="0,1:0 2,3:1 4:2 5,6:3",
                   quiet=True)
    res = skinage.evaluate(data=manifest, baselines_only=True, meta_features="age", out=tmp_path / "bo",
                           n_boot=200)
    m = res.metrics
    assert m["bootstrap"]["unit"] == "person" and m["n_images"] == 5 * m["n_persons"]
    age = m["image"]["metadata"]
    assert 0.5 < age["accuracy"] < 0.72
    assert age["ci"]["accuracy"][0] > m["image"]["majority"]["accuracy"] - 0.05
    assert m["image"]["stratified"]["qwk"] == pytest.approx(0.0, abs=1e-9)


def test_evaluate_with_flip_tta(tmp_path):
    """``tta="flip"``: the probabilities are those of the mean of each image's and its mirror's outputs."""
    import torch

    import skinage
    from skinage.data.images import load_crop
    from skinage.models.checkpoint import load_checkpoint

    run = _fake_run(tmp_path, _manifest(tmp_path), seed=3)
    out = tmp_path / "tta"
    res = skinage.evaluate(run, tta="flip", out=out, n_boot=100, gradcam=1, embedding="pca", progress=False)
    assert res.metrics["model"]["tta"] == "flip"
    pred = pd.read_csv(out / "eval_predictions.csv")
    model, meta = load_checkpoint(run)
    assert meta["tta"] is None  # the checkpoint itself has none
    x = torch.from_numpy(np.stack([load_crop(p, None, 32) for p in pred["path"]])).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        want = model.probs_from_outputs((model(x) + model(x.flip(-1))) / 2).numpy()
    assert np.allclose(pred[[f"p_{j}" for j in range(3)]].to_numpy(), want, atol=1e-4)
    assert (out / "gradcam_right.png").is_file()  # Grad-CAM runs with the model's tta switched off
    assert "test-time augmentation" in (out / "report.html").read_text()


def test_ordinal_head_is_scored_by_its_rank_not_its_argmax():
    """Rows where the most probable class is not the rank (the number of P(y > k) above 0.5)."""
    from skinage.evaluation.evaluate import score_predictions

    probs = np.array([[0.30, 0.30, 0.40],   # P(y>0)=.70, P(y>1)=.40 -> rank 1 (argmax 2)
                      [0.45, 0.10, 0.45],   # P(y>0)=.55, P(y>1)=.45 -> rank 1 (argmax 0)
                      [0.60, 0.30, 0.10],   # rank 0 = argmax 0
                      [0.05, 0.15, 0.80]])  # rank 2 = argmax 2
    y = np.array([1, 1, 0, 2])
    subjects = np.array(["a", "b", "c", "d"])
    rank = score_predictions(y, probs, subjects, CLASSES, True, n_boot=50, ordinal_head="corn")
    plain = score_predictions(y, probs, subjects, CLASSES, True, n_boot=50)
    assert rank["image"]["model"]["accuracy"] == 1.0      # 1, 1, 0, 2: all four right
    assert plain["image"]["model"]["accuracy"] == 0.5     # 2, 0, 0, 2: two right
    assert rank["image"]["model"]["mae"] == 0.0 and plain["image"]["model"]["mae"] == 0.5


def test_evaluate_reproduces_the_validation_figure_training_chose_by(tmp_path):
    """A CORN run: `evaluate --split val` gives the accuracy / QWK training recorded for its best epoch, and the
    export's parity table the same accuracy - one rule for the class everywhere."""
    from skinage.evaluation.evaluate import evaluate
    from skinage.export.export import export
    from skinage.models.decode import predict_labels
    from skinage.training.train import train

    manifest = _manifest(tmp_path, n_subjects=36)
    # The check needs a model with validation rows whose most probable class is not their rank. Over seeds 0-9,
    # one (seed 5) trained a model without such a row among its 18 test-split rows, and a CPU's rounding can
    # pick which seed does; so up to three seeds are tried, and the test fails if none of them gives one.
    for seed in range(3):
        run = train(data=manifest, model="squeezenet1_1", mode="finetune", epochs=3, size=32, pretrained=False,
                    ordinal="corn", precision="fp32", lr=3e-3, seed=seed, project=tmp_path / "runs",
                    name=f"corn{seed}", progress=False, threads=1, warmup=0.0)
        ev = tmp_path / f"ev{seed}"
        res = evaluate(run, split="val", out=str(ev), **dict(FAST, gradcam=0, embedding="none"))
        pred = pd.read_csv(ev / "eval_predictions.csv")
        p = pred[[f"p_{j}" for j in range(3)]].to_numpy()
        if (p.argmax(1) != predict_labels(p, "corn")).any():
            break
    else:
        pytest.fail("no row tells the two rules apart, with any of three seeds")
    assert (pred["pred"].to_numpy() == predict_labels(p, "corn")).all()
    val = run.metrics["val"]
    got = res.metrics["image"]["model"]
    assert got["accuracy"] == pytest.approx(val["accuracy"], abs=1e-9)
    assert got["qwk"] == pytest.approx(val["qwk"], abs=1e-9)
    ex = export(str(run), check_split="val", repeats=2)
    torch_row = next(r for r in ex["rows"] if r["format"] == "pytorch fp32")
    assert torch_row["accuracy"] == pytest.approx(val["accuracy"], abs=1e-9)


def test_report_confusion_matrices_name_the_classes(tmp_path, monkeypatch):
    """The confusion matrices evaluate puts in the report (image and person level) tick both axes of both
    panels with the model's class names, and their counts are metrics.json's confusion matrices."""
    import skinage
    from skinage.evaluation import plots

    made = []
    draw = plots.confusion_figure

    def keep(*args, **kwargs):  # the real figure, kept to be read after it is saved
        made.append(draw(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(plots, "confusion_figure", keep)
    run = _fake_run(tmp_path, _manifest(tmp_path))
    res = skinage.evaluate(run, **dict(FAST, gradcam=0, embedding="none"))
    assert [fig.get_suptitle() for fig in made] == ["image level", "person level (views averaged)"]
    for fig, key in zip(made, ("confusion", "person_confusion")):
        panels = {ax.get_title(): ax for ax in fig.axes if ax.get_title()}
        for title in ("counts", "row-normalised (recall)"):
            xt = [t.get_text() for t in panels[title].get_xticklabels()]
            yt = [t.get_text() for t in panels[title].get_yticklabels()]
            assert xt == CLASSES and yt == CLASSES, (key, title, xt, yt)
        counts = [int(t.get_text()) for t in panels["counts"].texts]
        assert counts == [c for row in res.metrics[key] for c in row]
    html = (res.out_dir / "report.html").read_text()
    assert res.metrics["files"]["confusion"] == "confusion_matrix.png"
    assert "Confusion matrix, image level" in html and "Confusion matrix, person level" in html
