"""`skinage predict` with a model trained on found face crops (it finds faces itself), too_dark, one photo as bytes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT, shared_data
from test_ingest_find import make_photo_folder

import skinage
from skinage.runtime.photo import predict_image
from skinage.runtime.predict import predict, to_json
from skinage.runtime.predictor import OnnxPredictor
from skinage.runtime.quality import MIN_LUMA, mean_luma, too_dark

pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")


def _export(run: Path, out: Path) -> Path:
    from skinage.export.formats import export_onnx
    from skinage.models.checkpoint import load_checkpoint

    model, meta = load_checkpoint(run)
    return export_onnx(model, meta, out)


def darkened(src: Path, dst: Path, light: float = 1 / 64) -> Path:
    """``src`` (a studio photo) with its light divided by 64 in linear sRGB (6 stops: a room lit by one lamp at
    night, to a camera that does not make up for it), saved as a JPEG."""
    x = np.asarray(Image.open(src).convert("RGB"), dtype=np.float64) / 255
    lin = np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4) * light
    y = np.where(lin <= 0.0031308, 12.92 * lin, 1.055 * lin ** (1 / 2.4) - 0.055)
    Image.fromarray(np.round(y * 255).astype(np.uint8)).save(dst, quality=90)
    return dst


@pytest.fixture(scope="module")
def face_model(tmp_path_factory):
    """A tiny mobilenet_v2 (32 px, no ImageNet weights) trained in feature mode on `ingest --find face` crops."""
    root = tmp_path_factory.mktemp("face-model")
    photos = make_photo_folder(root / "photos")
    skinage.ingest(photos, out=root / "m.csv", find="face", quiet=True)
    run = skinage.train(data=root / "m.csv", model="mobilenet_v2", mode="feature", size=32, pretrained=False,
                        epochs=2, project=root / "runs", name="face", progress=False)
    return {"photos": photos, "manifest": root / "m.csv", "run": Path(run),
            "onnx": _export(Path(run), root / "face.onnx"), "root": root}


@pytest.fixture(scope="module")
def plain_model(tmp_path_factory):
    from export_helpers import make_tiny_run

    t = make_tiny_run(tmp_path_factory.mktemp("plain-model"))
    t["onnx"] = _export(t["run"], t["root"] / "plain.onnx")
    return t


def test_a_face_model_finds_faces_itself_and_refuses_with_the_finders_status(face_model):
    predictor = OnnxPredictor(face_model["onnx"])
    assert predictor.pre.region == "face" and predictor.pre.finds
    rows = {Path(r["path"]).name: r for r in predict(face_model["onnx"], face_model["photos"])}
    assert len(rows) == 12
    for name, status in (("sky.jpg", "no_face"), ("two.jpg", "several_faces"), ("profile_010_01.jpg", "no_face")):
        r = rows[name]
        assert (r["status"], r["finder"]) == (status, status) and r["class"] is None and r["probs"] is None
        assert r["error"] == skinage.find(face_model["photos"] / ("30" if "profile" in name else "20") / name).reason
    assert rows["truncated.jpg"]["status"] == "error" and "truncated" in rows["truncated.jpg"]["error"]
    good = [r for r in rows.values() if r["status"] == "ok"]
    assert len(good) == 8
    for r in good:  # the found face box, the crop it gives, the model's answer on that crop
        face = skinage.find(r["path"])[0]
        assert r["finder"] == "ok" and r["faces"] == 1 and r["face_score"] == pytest.approx(face.score, abs=1e-4)
        assert r["bbox"] == pytest.approx(list(face.box), abs=0.006)
        probs = predictor(predictor.pre.load(r["path"], face.box)[None])[0]
        assert r["probs"] == pytest.approx(probs.tolist(), abs=1e-6)


def test_boxes_given_win_over_the_finder(face_model):
    img = face_model["photos"] / "30" / "004_03.jpg"
    r = predict(face_model["onnx"], img, bbox=(100, 100, 400, 400))[0]
    assert r["status"] == "ok" and r["bbox"] == [100, 100, 400, 400] and r["finder"] is None
    rows = predict(face_model["onnx"], face_model["manifest"])  # a manifest's rows keep their (found) boxes
    assert len(rows) == 8 and all(r["finder"] is None and r["bbox"] is not None for r in rows)


def test_predict_image_on_bytes_equals_predict_on_the_file(face_model, plain_model):
    img = face_model["photos"] / "30" / "005_03.jpg"
    for onnx in (face_model["onnx"], plain_model["onnx"]):
        predictor = OnnxPredictor(onnx)
        on_file = predict(onnx, img)[0]
        on_bytes = predict_image(predictor, img.read_bytes(), name=str(img))
        assert on_bytes == on_file
        assert to_json([on_bytes], predictor, onnx) == _json_of(onnx, img, face_model["root"] / "p.json")
    refused = predict_image(OnnxPredictor(face_model["onnx"]), (face_model["photos"] / "20" / "sky.jpg").read_bytes())
    assert refused["status"] == "no_face" and refused["path"] == "<upload>" and refused["class"] is None


def _json_of(onnx, img, out: Path) -> dict:
    predict(onnx, img, out=out)
    return json.loads(out.read_text())


def test_mean_luma_and_the_too_dark_rule_by_hand():
    crop = np.zeros((2, 2, 3), dtype=np.uint8)
    crop[0, 0] = (255, 0, 0)  # 0.299 * 255 = 76.245
    crop[1, 1] = (0, 100, 50)  # 0.587 * 100 + 0.114 * 50 = 64.4
    assert mean_luma(crop) == pytest.approx((76.245 + 64.4) / 4)  # 35.16: not too dark
    assert too_dark(crop) is None and MIN_LUMA == 30.0
    assert too_dark(np.full((3, 3, 3), 29, dtype=np.uint8)) is not None  # luma 29 < 30
    assert too_dark(np.full((3, 3, 3), 31, dtype=np.uint8)) is None
    assert "too dark" in too_dark(np.zeros((1, 1, 3), dtype=np.uint8))


def test_a_photo_of_a_dim_room_is_too_dark_for_every_model(face_model, plain_model, tmp_path):
    src = shared_data("london-5view") / "images" / "012_03.jpg"
    dark = darkened(src, tmp_path / "dim.jpg")
    for onnx in (plain_model["onnx"], face_model["onnx"]):
        ok, dim = predict(onnx, src, dark)
        assert ok["status"] == "ok" and ok["luma"] >= MIN_LUMA
        assert dim["status"] == "too_dark" and dim["luma"] < MIN_LUMA and dim["class"] is None
        assert "too dark" in dim["error"]
    assert predict(face_model["onnx"], dark)[0]["finder"] == "ok"  # the face is found; its crop is too dark


def test_a_face_model_predicts_without_torch(face_model, tmp_path):
    code = (
        "import sys, json\n"
        "from skinage.cli import main\n"
        f"rc = main(['predict', {str(face_model['onnx'])!r}, {str(face_model['photos'])!r}, '--out', "
        f"{str(tmp_path / 'p.json')!r}])\n"
        "import skinage\n"
        "from skinage.runtime.photo import predict_image\n"
        "from skinage.runtime.predictor import OnnxPredictor\n"
        f"row = predict_image(OnnxPredictor({str(face_model['onnx'])!r}), "
        f"open({str(face_model['photos'] / '30' / '004_03.jpg')!r}, 'rb').read())\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torchvision', 'timm'))\n"
        "print(json.dumps({'rc': rc, 'heavy': heavy, 'finder': row['finder'], 'status': row['status']}))\n"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {"rc": 0, "heavy": [], "finder": "ok", "status": "ok"}
    saved = json.loads((tmp_path / "p.json").read_text())
    assert saved["n_ok"] == 8 and saved["n_failed"] == 4
    assert sorted(r["status"] for r in saved["predictions"] if r["status"] != "ok") == \
        ["error", "no_face", "no_face", "several_faces"]
