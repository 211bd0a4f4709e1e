"""`skinage export --int8-search`: calibrate once, quantise many times; the validation-chosen fp32 convolutions."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")

from export_helpers import make_tiny_run  # noqa: E402


def _weight_dequantized(graph, node) -> bool:
    """Whether the weight input of a Conv node comes out of a DequantizeLinear (i.e. is int8)."""
    producers = {o: n for n in graph.node for o in n.output}
    w = producers.get(node.input[1])
    return w is not None and w.op_type == "DequantizeLinear"


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    from skinage.export.export import export

    tiny = make_tiny_run(tmp_path_factory.mktemp("int8search"))
    # target 1.01 can never be reached: the search adds blocks while they fit its budget (6 convolutions)
    res = export(tiny["run"], int8_search=True, int8_search_target=1.01, int8_search_budget=6,
                 fp32_stem_convs=1, repeats=2, calib_images=8)
    return tiny, res


def test_search_respects_budget_and_records_choice(searched):
    from skinage.runtime.onnx_io import read_onnx_metadata

    tiny, res = searched
    meta = read_onnx_metadata(res["files"]["onnx_int8"])
    q = meta["quantization"]
    s = q["search"]
    assert q["calibration_method"] in ("entropy", "percentile")
    assert set(s["methods_tried"]) == {"entropy", "percentile"}
    # the method kept is the one with the smaller validation KL
    assert q["calibration_method"] == min(s["methods_tried"], key=lambda m: s["methods_tried"][m]["kl"])
    assert 1 <= len(s["fp32_convs"]) <= 6 and s["max_fp32_convs"] == 6
    assert s["val_images"] == 8  # the tiny run's val split, never test
    assert 0.0 <= s["val_agreement"] <= 1.0 and s["val_kl"] >= 0.0
    # each accepted step lowered the validation KL
    kls = [h["kl"] for h in s["history"]]
    assert all(b < a for a, b in zip(kls, kls[1:]))
    assert s["history"][-1]["fp32_convs"] == len(s["fp32_convs"])
    assert res["int8_quantization"] == q


def test_search_exclusions_are_honoured_in_graph(searched):
    import onnx

    from skinage.runtime.onnx_io import read_onnx_metadata

    tiny, res = searched
    g = onnx.load(res["files"]["onnx_int8"]).graph
    fp32 = set(read_onnx_metadata(res["files"]["onnx_int8"])["quantization"]["search"]["fp32_convs"])
    convs = [n for n in g.node if n.op_type == "Conv"]
    kept = [n for n in convs if n.name in fp32]
    assert len(kept) == len(fp32)  # every chosen convolution is in the written graph ...
    assert not any(_weight_dequantized(g, n) for n in kept)  # ... with fp32 weights
    others = [n for n in convs if n.name not in fp32]
    assert others and all(_weight_dequantized(g, n) for n in others)  # the rest are int8


def test_quantizer_reuses_ranges(tmp_path):
    """Ranges are computed once per method; two exclusion sets give two different graphs."""
    import onnx

    from skinage.export.formats import export_onnx
    from skinage.export.quantize.quantizer import Int8Quantizer
    from skinage.export.quantize.search import conv_units
    from skinage.models.checkpoint import model_meta
    from skinage.models.model import SkinageModel

    torch.manual_seed(0)
    model = SkinageModel("mobilenet_v2", 2, pretrained=False).eval()
    meta = dict(model_meta(model), classes=["a", "b"])
    meta["preprocessing"] = dict(meta["preprocessing"], size=32)
    f32 = export_onnx(model, meta, tmp_path / "m.onnx")
    calib = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    with Int8Quantizer(f32, calib) as q:
        r1 = q.ranges("minmax")
        stamp = r1.stat().st_mtime_ns
        a = q.quantize(tmp_path / "a.onnx", "minmax", q.head_nodes())
        b = q.quantize(tmp_path / "b.onnx", "minmax", q.head_nodes() + q.stem_nodes(2))
        assert q.ranges("minmax") == r1 and r1.stat().st_mtime_ns == stamp  # not recomputed
        units = conv_units(q.proto)
    # MobileNetV2: the stem conv, then one unit per inverted-residual block (2 or 3 convs), the last 1x1 conv
    sizes = [len(c) for c in units.values()]
    assert sum(sizes) == 52 and sizes[:3] == [1, 2, 3] and sizes[-1] == 1 and max(sizes) == 3
    dq = [sum(n.op_type == "DequantizeLinear" for n in onnx.load(p).graph.node) for p in (a, b)]
    assert dq[0] > dq[1]


def test_input_scaling_folded_into_one_multiply_add(searched):
    """/255, -mean, /std become one per-channel x*a+b at the graph input (parity: test_export.py)."""
    import onnx
    from onnx import numpy_helper

    tiny, res = searched
    g = onnx.load(res["files"]["onnx_fp32"]).graph
    ops = [n.op_type for n in g.node if n.op_type not in ("Identity", "Constant")]
    assert ops[:5] == ["Transpose", "Cast", "Mul", "Add", "Conv"]
    init = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    assert np.allclose(init["input_scale"].ravel(), 1 / (255 * std), rtol=1e-6)
    assert np.allclose(init["input_shift"].ravel(), -mean / std, rtol=1e-6)


@pytest.mark.parametrize("reduce_range", [False, True])
def test_bias_correction_matches_onnxruntimes_int8_weights(tmp_path, reduce_range):
    """weight_error_shift rounds the weights as ONNX Runtime's quantiser does (read back from its QDQ file, 8-bit
    or 7-bit with reduce_range), and its grouped sum is what a convolution with the weight error gives on an input
    of the mean values."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    from skinage.export.quantize.bias import weight_error_shift, weight_qmax

    rng = np.random.default_rng(0)
    group, cin, cout = 2, 4, 6
    w = rng.normal(0, 0.2, (cout, cin // group, 3, 3)).astype(np.float32)
    b = rng.normal(0, 0.1, cout).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w", "b"], ["y"], name="conv", group=group)], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, cin, 5, 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, cout, 3, 3])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    src, dst = tmp_path / "conv.onnx", tmp_path / "conv.int8.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(src))

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter([{"x": rng.normal(0, 1, (1, cin, 5, 5)).astype(np.float32)} for _ in range(4)])

        def get_next(self):
            return next(self.it, None)

    quantize_static(str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, reduce_range=reduce_range)
    m = onnx.load(str(dst))
    inits = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    dq = next(n for n in m.graph.node if n.op_type == "DequantizeLinear" and inits.get(n.input[0]) is not None
              and inits[n.input[0]].dtype == np.int8 and inits[n.input[0]].shape == w.shape)
    q = inits[dq.input[0]]
    assert np.abs(q).reshape(cout, -1).max(1).tolist() == [64 if reduce_range else 127] * cout  # per channel
    w_ort = q.astype(np.float64) * inits[dq.input[1]].astype(np.float64)[:, None, None, None]

    mean_in = rng.normal(0.5, 0.3, cin)
    x = torch.tensor(np.broadcast_to(mean_in[None, :, None, None], (1, cin, 5, 5)).copy())
    expected = torch.nn.functional.conv2d(x, torch.tensor(w_ort - w.astype(np.float64)), groups=group)[0, :, 1, 1]
    got = weight_error_shift(w, mean_in, group, weight_qmax(reduce_range))
    assert np.abs(w_ort - w).max() > 0  # the rounding does change the weights
    # float32 scales in the file: agreement to 1e-6; one weight rounded the other way would differ by ~1e-3
    np.testing.assert_allclose(got, expected.numpy(), rtol=0, atol=1e-6)


def test_int8_export_records_bias_correction(tmp_path):
    from onnx import numpy_helper
    import onnx

    from skinage.export.export import export
    from skinage.runtime.onnx_io import read_onnx_metadata

    tiny = make_tiny_run(tmp_path)
    biases = {}
    for on in (True, False):
        res = export(tiny["run"], int8=True, int8_bias_correction=on, repeats=2, calib_images=8,
                     out=str(tmp_path / f"bc{on}"))
        f = res["files"]["onnx_int8"]
        assert read_onnx_metadata(f)["quantization"]["bias_correction"] is on
        m = onnx.load(f)
        biases[on] = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer if i.data_type == 6}  # int32
    assert biases[True].keys() == biases[False].keys() and biases[True]
    assert any(not np.array_equal(biases[True][k], biases[False][k]) for k in biases[True])


def test_int8_weights_are_7_bit_by_default(tmp_path):
    """The default file has weights in -64..64 (no x86 CPU can saturate on them); --no-int8-reduce-range gives the
    full -127..127; the metadata says which."""
    import onnx
    from onnx import numpy_helper

    from skinage.export.export import export
    from skinage.runtime.onnx_io import read_onnx_metadata

    tiny = make_tiny_run(tmp_path)
    for on, qmax in ((True, 64), (False, 127)):
        res = export(tiny["run"], int8=True, int8_reduce_range=on, repeats=2, calib_images=8,
                     out=str(tmp_path / f"rr{on}"))
        f = res["files"]["onnx_int8"]
        quant = read_onnx_metadata(f)["quantization"]
        assert quant["reduce_range"] is on and quant["weight_range"] == [-qmax, qmax]
        g = onnx.load(f)
        weights = [numpy_helper.to_array(i) for i in g.graph.initializer
                   if i.data_type == onnx.TensorProto.INT8 and len(i.dims) == 4]
        assert len(weights) > 10
        assert max(int(np.abs(w).max()) for w in weights) == qmax
