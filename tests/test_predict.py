"""`skinage predict`: ONNX / checkpoint models, folders with a corrupt image, manifests, grouping, no torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from skinage.preprocess import Preprocess

pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")

from export_helpers import CLASSES, SIZE, make_tiny_run  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from skinage.export.formats import export_onnx
    from skinage.models.checkpoint import load_checkpoint

    t = make_tiny_run(tmp_path_factory.mktemp("predict"))
    model, meta = load_checkpoint(t["run"])
    t["onnx"] = export_onnx(model, meta, t["root"] / "model.onnx")
    # a folder of images with one corrupt file among them
    folder = t["root"] / "images"
    (folder / "dark" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    t["folder"] = folder
    return t


def _reference_probs(model, paths, bboxes=None):
    from skinage.data.images import load_crop

    bboxes = bboxes or [None] * len(paths)
    x = np.stack([load_crop(p, b, size=SIZE) for p, b in zip(paths, bboxes)])
    with torch.no_grad():
        return model.predict_proba(torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255).numpy()


def test_folder_with_a_corrupt_image_onnx(tiny):
    from skinage.runtime.predict import predict

    rows = predict(tiny["onnx"], tiny["folder"])
    assert len(rows) == 25  # 24 good images + the corrupt one, none dropped
    bad = [r for r in rows if r["status"] == "error"]
    assert [Path(r["path"]).name for r in bad] == ["broken.jpg"]
    assert bad[0]["error"] and bad[0]["class"] is None and bad[0]["probs"] is None
    # the reason, without the path the row already holds in its path column
    assert bad[0]["error"].split(":")[0] in {"non-image", "corrupt", "truncated"} and "broken.jpg" not in bad[0]["error"]
    good = [r for r in rows if r["status"] == "ok"]
    ref = _reference_probs(tiny["model"], [r["path"] for r in good])
    got = np.array([r["probs"] for r in good])
    assert np.abs(got - ref).max() < 1e-4
    for r, p in zip(good, ref):
        assert r["level"] == int(p.argmax()) and r["class"] == CLASSES[r["level"]]
        assert r["confidence"] == pytest.approx(p.max(), abs=1e-4)
    # the trained toy model tells dark from bright on most images
    correct = np.mean([r["class"] == Path(r["path"]).parent.name for r in good])
    assert correct >= 0.75


def test_checkpoint_and_run_folder_give_the_same_as_onnx(tiny):
    from skinage.runtime.predict import predict

    img = sorted((tiny["folder"] / "bright").glob("*.png"))[:3]
    a = predict(tiny["onnx"], *img)
    b = predict(tiny["run"], *img)
    c = predict(tiny["run"] / "weights" / "best.safetensors", *img)
    for x, y, z in zip(a, b, c):
        assert np.allclose(x["probs"], y["probs"], atol=1e-4) and y["probs"] == z["probs"]


def test_manifest_input_bbox_split_and_group_by_subject(tiny, tmp_path):
    from skinage.data.manifest import read_manifest
    from skinage.runtime.predict import predict

    man = read_manifest(tiny["manifest"])
    val = man.split("val")
    rows = predict(tiny["onnx"], tiny["manifest"], split="val")
    assert len(rows) == len(val) == 8
    bboxes = [None if np.isnan(r["x0"]) else (r["x0"], r["y0"], r["x1"], r["y1"]) for r in val.to_dict("records")]
    assert sum(b is not None for b in bboxes) == 1
    ref = _reference_probs(tiny["model"], val["path"].tolist(), bboxes)
    assert np.abs(np.array([r["probs"] for r in rows]) - ref).max() < 1e-4
    assert [r["true_level"] for r in rows] == val["label"].tolist()

    out = tmp_path / "people.json"
    groups = predict(tiny["onnx"], tiny["manifest"], split="val", group_by="subject", out=out)
    assert sorted(g["subject"] for g in groups) == ["p4", "p5"]
    for g in groups:
        idx = (val["subject"] == g["subject"]).to_numpy()
        expected = ref[idx].mean(0)
        assert g["n_images"] == idx.sum() == 4
        assert np.allclose(g["probs"], expected, atol=1e-4)
        assert g["level"] == int(expected.argmax())
    saved = json.loads(out.read_text())
    assert saved["classes"] == CLASSES and saved["group_by"] == "subject" and len(saved["predictions"]) == 2


def test_single_image_bbox_and_csv_out(tiny, tmp_path):
    from skinage.cli import main

    img = sorted((tiny["folder"] / "dark").glob("*.png"))[0]
    out = tmp_path / "preds.csv"
    rc = main(["predict", str(tiny["onnx"]), str(img), "--bbox", "4,4,30,30", "--out", str(out)])
    assert rc == 0
    import csv

    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 1 and rows[0]["status"] == "ok" and rows[0]["bbox"] == "4,4,30,30"
    ref = _reference_probs(tiny["model"], [img], [(4, 4, 30, 30)])[0]
    assert float(rows[0]["p_dark"]) == pytest.approx(ref[0], abs=1e-4)
    assert float(rows[0]["p_bright"]) == pytest.approx(ref[1], abs=1e-4)
    # a box outside the image is reported, not a crash
    rows = __import__("skinage").predict(tiny["onnx"], img, bbox=(100, 100, 200, 200))
    assert rows[0]["status"] == "error" and rows[0]["error"]


def test_onnx_predict_never_imports_torch(tiny, tmp_path):
    code = (
        "import sys, json\n"
        "from skinage.cli import main\n"
        f"rc = main(['predict', {str(tiny['onnx'])!r}, {str(tiny['folder'])!r}, {str(tiny['manifest'])!r},"
        f" '--out', {str(tmp_path / 'p.json')!r}, '--group-by', 'subject'])\n"
        "import skinage\n"
        f"rows = skinage.predict({str(tiny['onnx'])!r}, {str(tiny['folder'])!r})\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torchvision', 'timm'))\n"
        "print(json.dumps({'rc': rc, 'n': len(rows), 'heavy': heavy,\n"
        "                  'ort': 'onnxruntime' in sys.modules}))\n"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert res == {"rc": 0, "n": 25, "heavy": [], "ort": True}
    saved = json.loads((tmp_path / "p.json").read_text())
    assert saved["n_failed"] == 1  # the corrupt image's subject has no readable image -> reported


def test_missing_inputs_and_bad_model(tiny, tmp_path, capsys):
    from skinage.cli import main
    from skinage.runtime.predict import predict

    rows = predict(tiny["onnx"], tmp_path / "missing.jpg", sorted((tiny["folder"] / "dark").glob("*.png"))[0])
    assert [r["status"] for r in rows] == ["error", "ok"] and rows[0]["error"] == "file not found"
    assert main(["predict", str(tmp_path / "nomodel.onnx"), str(tiny["folder"])]) == 2
    assert "no ONNX file" in capsys.readouterr().err


class _ConstantPredictor:
    """Every image gets [0.3, 0.3, 0.4]: most probable class 2, rank 1 (P(y>0) = 0.7, P(y>1) = 0.4)."""

    classes = ["low", "mid", "high"]
    pre = Preprocess(size=SIZE)

    def __init__(self, ordinal):
        self.ordinal = ordinal

    def __call__(self, pixels):
        return np.tile([0.3, 0.3, 0.4], (len(pixels), 1))


@pytest.mark.parametrize("ordinal,level", [(None, 2), ("corn", 1), ("coral", 1)])
def test_predict_reads_the_class_by_the_heads_rule(tiny, ordinal, level):
    from skinage.runtime.predict import collect_inputs, group_rows, predict_items

    items, _ = collect_inputs([str(tiny["folder"])])
    rows = predict_items(_ConstantPredictor(ordinal), items)
    ok = [r for r in rows if r["status"] == "ok"]
    assert len(ok) == len(rows) - 1  # the corrupt image is an error row
    assert {r["level"] for r in ok} == {level} and {r["confidence"] for r in ok} == {[0.3, 0.3, 0.4][level]}
    fused = group_rows(ok, _ConstantPredictor.classes, "subject", ordinal)
    assert {g["level"] for g in fused} == {level}


def test_onnx_predictor_knows_the_ordinal_head(tmp_path):
    from skinage.export.formats import export_onnx
    from skinage.runtime.onnx_io import read_onnx_metadata
    from skinage.runtime.predictor import OnnxPredictor
    from skinage.models.checkpoint import load_checkpoint

    t = make_tiny_run(tmp_path, ordinal="corn")
    model, meta = load_checkpoint(t["run"])
    path = export_onnx(model, meta, tmp_path / "corn.onnx")
    assert OnnxPredictor(path).ordinal == "corn"
    assert read_onnx_metadata(path)["output"]["class_rule"].startswith("rank")


def test_ort_session_exact_int8_sets_onnxruntimes_precise_kernels(tmp_path):
    """bench_infer's exact-kernel scores rely on this option reaching the session."""
    import onnx
    from onnx import TensorProto, helper

    from skinage.runtime.onnx_io import ort_session

    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    path = tmp_path / "relu.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    opts = ort_session(path, 1, exact_int8=True).get_session_options()
    assert opts.get_session_config_entry("session.x64quantprecision") == "1"
    with pytest.raises(RuntimeError, match="x64quantprecision"):  # not set: the fast kernels
        ort_session(path, 1).get_session_options().get_session_config_entry("session.x64quantprecision")
