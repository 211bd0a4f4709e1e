"""`skinage export`: ONNX fp32 parity with PyTorch, int8 export and its metadata, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")

from export_helpers import CLASSES, SIZE, make_tiny_run  # noqa: E402


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from skinage.export.export import export

    tiny = make_tiny_run(tmp_path_factory.mktemp("export"))
    res = export(tiny["run"], int8=True, repeats=3, calib_images=16)
    return tiny, res


def _val_pixels(tiny):
    """The val crops loaded independently of the export code (load_crop with the manifest bboxes)."""
    from skinage.data.images import load_crop
    from skinage.data.manifest import read_manifest

    df = read_manifest(tiny["manifest"]).split("val")
    xs = []
    for r in df.to_dict("records"):
        bbox = None if np.isnan(r["x0"]) else (r["x0"], r["y0"], r["x1"], r["y1"])
        xs.append(load_crop(r["path"], bbox, size=SIZE))
    return np.stack(xs), df["label"].to_numpy()


def test_fp32_parity_is_exact(exported):
    import onnxruntime as ort

    tiny, res = exported
    files = res["files"]
    x, y = _val_pixels(tiny)
    sess = ort.InferenceSession(files["onnx_fp32"], providers=["CPUExecutionProvider"])
    assert sess.get_inputs()[0].name == "pixels"
    p_onnx = sess.run(None, {"pixels": x})[0]
    model = tiny["model"]
    with torch.no_grad():
        p_torch = model.predict_proba(torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255).numpy()
    # probabilities that mean something (not a constant model), and the same from both
    assert p_torch.max() - p_torch.min() > 0.1
    assert np.allclose(p_onnx.sum(1), 1, atol=1e-5)
    assert np.abs(p_onnx - p_torch).max() < 1e-4
    assert (p_onnx.argmax(1) == p_torch.argmax(1)).all()
    # the export's own report agrees with the independent check
    fp32 = next(r for r in res["rows"] if r["format"] == "onnx fp32")
    assert fp32["agreement"] == 1.0 and fp32["max_abs_prob_diff"] < 1e-4
    assert res["check_images"] == len(x) == 8 and res["check_split"] == "val"
    acc_torch = float((p_torch.argmax(1) == y).mean())
    assert fp32["accuracy"] == pytest.approx(acc_torch)
    # dynamic batch: one image and three images give the same rows
    one = sess.run(None, {"pixels": x[:1]})[0]
    assert np.allclose(one, p_onnx[:1], atol=1e-6)


def test_int8_export_and_metadata_round_trip(exported):
    import onnx

    from skinage import __version__
    from skinage.runtime.onnx_io import read_onnx_metadata

    tiny, res = exported
    int8 = res["files"]["onnx_int8"]
    meta = read_onnx_metadata(int8)
    assert meta["classes"] == CLASSES
    assert meta["precision"] == "int8"
    assert meta["model"] == "mobilenet_v2"
    assert meta["preprocessing"]["size"] == SIZE
    assert meta["preprocessing"]["mean"] == pytest.approx([0.485, 0.456, 0.406])
    assert meta["preprocessing"]["interpolation"] == "bilinear"
    assert meta["input"]["dtype"] == "uint8" and meta["input"]["shape"] == ["N", SIZE, SIZE, 3]
    assert meta["skinage_version"] == __version__
    assert meta["quantization"]["format"] == "QDQ" and meta["quantization"]["calibration_images"] == 16
    fp32_meta = read_onnx_metadata(res["files"]["onnx_fp32"])
    assert fp32_meta["precision"] == "fp32" and fp32_meta["classes"] == CLASSES
    g = onnx.load(int8)
    ops = [n.op_type for n in g.graph.node]
    assert ops.count("QuantizeLinear") > 10  # the backbone is quantised
    assert ops[-1] != "DequantizeLinear"  # ... the probabilities are not
    props = {p.key: p.value for p in g.metadata_props}
    assert json.loads(props["classes"]) == CLASSES
    row = next(r for r in res["rows"] if r["format"] == "onnx int8")
    assert 0 <= row["agreement"] <= 1 and row["reference"] == "onnx fp32"
    assert row["size_bytes"] < 0.5 * next(r for r in res["rows"] if r["format"] == "onnx fp32")["size_bytes"]
    assert row["accuracy_change"] == pytest.approx(row["accuracy"] - res["rows"][1]["accuracy"])


def test_results_files_written(exported):
    tiny, res = exported
    out = tiny["run"] / "export"
    saved = json.loads((out / "export_results.json").read_text())
    assert [r["format"] for r in saved["rows"]] == ["pytorch fp32", "onnx fp32", "onnx fp32, pixels +-1", "onnx int8"]
    assert all(r["latency_ms"] > 0 for r in saved["rows"] if r["format"] != "onnx fp32, pixels +-1")
    md = (out / "export_results.md").read_text()
    assert "| onnx int8 | model.int8.onnx |" in md and "uint8" in md


@pytest.mark.parametrize("ordinal", ["coral", "corn"])
def test_ordinal_probabilities_in_graph_match_model(ordinal):
    """The model and the export wrapper share one function, written with ops every ONNX opset has (the running
    product / minimum unrolled); it gives the cumulative product (CORN) / minimum (CORAL) worked out here."""
    from skinage.models.heads import outputs_to_probs

    g = torch.Generator().manual_seed(1)
    out = torch.randn(7, 4, generator=g) * 3
    p = torch.sigmoid(out)
    cum = torch.cumprod(p, dim=1) if ordinal == "corn" else torch.cummin(p, dim=1).values
    cum = torch.cat([torch.ones(7, 1), cum, torch.zeros(7, 1)], dim=1)
    assert torch.allclose(outputs_to_probs(out, ordinal), (cum[:, :-1] - cum[:, 1:]).clamp_min(0), atol=1e-6)


def test_cli_export_ordinal_run_with_torchscript(tmp_path):
    from skinage.cli import main

    tiny = make_tiny_run(tmp_path, ordinal="coral", steps=30)
    out = tmp_path / "exp"
    rc = main(["export", str(tiny["run"]), "--format", "all", "--opset", "17", "--repeats", "2",
               "--out", str(out)])
    assert rc == 0
    res = json.loads((out / "export_results.json").read_text())
    assert (out / "model.onnx").is_file() and (out / "model.ts.pt").is_file()
    assert not (out / "model.int8.onnx").exists()  # --int8 not given
    by = {r["format"]: r for r in res["rows"]}
    assert by["onnx fp32"]["agreement"] == 1.0 and by["onnx fp32"]["max_abs_prob_diff"] < 1e-4
    assert by["torchscript fp32"]["agreement"] == 1.0
    assert res["options"]["opset"] == 17
    # --format all includes the fp16-storage file: half the size, float16 weights read through Casts, the
    # same metadata but its precision, probabilities within float16's rounding of fp32's
    import onnx

    from skinage.runtime.onnx_io import read_onnx_metadata

    fp16 = out / "model.fp16.onnx"
    assert by["onnx fp16"]["reference"] == "onnx fp32" and by["onnx fp16"]["agreement"] >= 0.9
    assert by["onnx fp16"]["max_abs_prob_diff"] < 0.05
    assert fp16.stat().st_size < 0.6 * (out / "model.onnx").stat().st_size
    meta16, meta32 = read_onnx_metadata(fp16), read_onnx_metadata(out / "model.onnx")
    assert meta16["precision"] == "fp16-storage" and meta32["precision"] == "fp32"
    assert {k: v for k, v in meta16.items() if k not in ("precision", "weights_storage")} == \
        {k: v for k, v in meta32.items() if k != "precision"}
    g = onnx.load(fp16).graph
    halves = [i for i in g.initializer if i.data_type == onnx.TensorProto.FLOAT16]
    assert halves and all(len(i.dims) >= 2 for i in halves)
    assert sum(n.op_type == "Cast" for n in g.node) >= len(halves)


def test_export_missing_run_is_a_clear_error(tmp_path, capsys):
    from skinage.cli import main

    assert main(["export", str(tmp_path / "nope")]) == 2
    assert "no checkpoint" in capsys.readouterr().err


def test_flip_tta_in_the_graph_matches_the_model(tmp_path):
    """``--tta flip``: the ONNX graph averages each image with its mirror, as the PyTorch model does."""
    import onnxruntime as ort

    from skinage.export.export import export
    from skinage.runtime.onnx_io import read_onnx_metadata

    tiny = make_tiny_run(tmp_path, steps=30)
    res = export(tiny["run"], tta="flip", repeats=2)
    x, _ = _val_pixels(tiny)
    sess = ort.InferenceSession(res["files"]["onnx_fp32"], providers=["CPUExecutionProvider"])
    p_onnx = sess.run(None, {"pixels": x})[0]
    p_mirror = sess.run(None, {"pixels": np.ascontiguousarray(x[:, :, ::-1])})[0]
    model = tiny["model"]
    xt = torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():  # the mean of the plain model's logits for the image and its mirror, by hand
        logits = (model.head(model.features(xt)) + model.head(model.features(xt.flip(-1)))) / 2
        want = torch.softmax(logits, 1).numpy()
    assert np.abs(p_onnx - want).max() < 1e-4
    assert np.abs(p_onnx - p_mirror).max() < 1e-4  # a face and its mirror image get the same answer
    assert read_onnx_metadata(res["files"]["onnx_fp32"])["tta"] == "flip"
    one = sess.run(None, {"pixels": x[:1]})[0]  # dynamic batch still works with the doubled batch inside
    assert np.allclose(one, p_onnx[:1], atol=1e-6)
    fp32 = next(r for r in res["rows"] if r["format"] == "onnx fp32")
    assert fp32["agreement"] == 1.0


def test_noise_floor_row_is_fp32_against_itself_with_one_level_of_pixel_noise(exported):
    """The reference row for reading int8 agreement: the fp32 file on the val crops with every pixel moved by
    -1, 0 or +1, compared with the fp32 file on the clean crops - worked out here with onnxruntime directly."""
    import onnxruntime as ort

    tiny, res = exported
    x, y = _val_pixels(tiny)
    rng = np.random.default_rng(0)  # the export's seed
    noisy = np.clip(x.astype(np.int16) + rng.integers(-1, 2, size=x.shape, dtype=np.int16), 0, 255).astype(np.uint8)
    assert (noisy != x).mean() > 0.5  # about two thirds of the values moved
    sess = ort.InferenceSession(res["files"]["onnx_fp32"], providers=["CPUExecutionProvider"])
    clean, moved = sess.run(None, {"pixels": x})[0], sess.run(None, {"pixels": noisy})[0]
    row = next(r for r in res["rows"] if r["format"] == "onnx fp32, pixels +-1")
    assert row["reference"] == "onnx fp32"
    assert row["agreement"] == pytest.approx(float((clean.argmax(1) == moved.argmax(1)).mean()))
    assert row["max_abs_prob_diff"] == pytest.approx(float(np.abs(clean - moved).max()), abs=1e-6)
    assert row["max_abs_prob_diff"] > 0  # the noise did reach the model
    assert row["accuracy"] == pytest.approx(float((moved.argmax(1) == y).mean()))
    assert res["noise_floor_agreement"] == row["agreement"]


def test_int8_row_says_how_near_a_tie_its_disagreements_were(exported):
    """The int8 row's near-tie figures, worked out here from the two files with onnxruntime directly."""
    import onnxruntime as ort

    tiny, res = exported
    x, _ = _val_pixels(tiny)
    run = lambda f: ort.InferenceSession(f, providers=["CPUExecutionProvider"]).run(None, {"pixels": x})[0]  # noqa: E731
    p32, p8 = run(res["files"]["onnx_fp32"]), run(res["files"]["onnx_int8"])
    top2 = np.sort(p32, axis=1)[:, -2:]
    margin = (top2[:, 1] - top2[:, 0]) / 2  # a softmax head: half the gap between its two best classes
    differ = p8.argmax(1) != p32.argmax(1)
    row = next(r for r in res["rows"] if r["format"] == "onnx int8")
    if not differ.any():
        assert row["disagreement_max_margin"] is None and row["near_tie_share"] is None
    else:
        assert row["disagreement_max_margin"] == pytest.approx(float(margin[differ].max()), abs=1e-6)
        assert row["near_tie_share"] == pytest.approx(float((margin <= margin[differ].max()).mean()))
    assert (tiny["run"] / "export" / "export_results.md").exists()
