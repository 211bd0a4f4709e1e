"""Depthwise-input equalisation before int8 (`skinage.export.quantize.equalize`)."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from skinage.runtime.onnx_io import INPUT_NAME  # noqa: E402


def _graph(lo: float = 0.0, hi: float = 6.0, a_weights=(5.0, 0.5, -1.0), dw_weights=(0.1, 1.0, 1.0)):
    """pixels (N,1,4,4) -> 1x1 Conv to 3 channels (weights ``a_weights``) -> Clip(lo, hi) -> 3x3 depthwise Conv
    (centre tap ``dw_weights``) -> probs. With inputs in [0, 1] the channel maxima are ``a_weights`` clipped at 0."""
    a_w = np.array(a_weights, np.float32).reshape(3, 1, 1, 1)
    dw = np.zeros((3, 1, 3, 3), np.float32)
    dw[:, 0, 1, 1] = dw_weights
    inits = [numpy_helper.from_array(a_w, "a_w"), numpy_helper.from_array(np.zeros(3, np.float32), "a_b"),
             numpy_helper.from_array(np.float32(lo), "lo"), numpy_helper.from_array(np.float32(hi), "hi"),
             numpy_helper.from_array(dw, "dw_w"), numpy_helper.from_array(np.zeros(3, np.float32), "dw_b")]
    nodes = [helper.make_node("Conv", [INPUT_NAME, "a_w", "a_b"], ["a"], name="conv_a"),
             helper.make_node("Clip", ["a", "lo", "hi"], ["act"], name="clip"),
             helper.make_node("Conv", ["act", "dw_w", "dw_b"], ["probs"], name="conv_dw", group=3, pads=[1, 1, 1, 1])]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["N", 1, 4, 4])],
                          [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", 3, 4, 4])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def _calib(n=16, seed=0):
    x = np.random.default_rng(seed).random((n, 1, 4, 4)).astype(np.float32)
    x[0, 0, 0, 0] = 1.0  # the largest input is exactly 1, so the channel maxima are the weights
    return x


def _run(model, x):
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {INPUT_NAME: x})[0]


def test_scales_worked_by_hand_and_the_fp32_function_is_unchanged():
    from skinage.export.quantize.equalize import equalize_depthwise_inputs

    model, x = _graph(), _calib()
    eq, report = equalize_depthwise_inputs(model, x, max_scale=16.0, headroom=1.5)
    # channel maxima 5, 0.5 and 0 (dead); top = 5. Channel 1: 5 / 0.5 = 10, capped at 6 / (1.5 * 0.5) = 8 so
    # that ReLU6 stays out of reach; channel 0 is the top, channel 2 never turns positive: both 1.
    w = {i.name: numpy_helper.to_array(i) for i in eq.graph.initializer}
    np.testing.assert_allclose(w["a_w"].ravel(), [5.0, 4.0, -1.0], rtol=1e-6)
    np.testing.assert_allclose(w["dw_w"][:, 0, 1, 1], [0.1, 1.0 / 8, 1.0], rtol=1e-6)
    assert report == [{"kind": "depthwise input", "conv": "conv_a", "depthwise": "conv_dw", "channels": 3, "scaled": 1,
                       "median_scale": 1.0, "max_scale": 8.0}]
    for seed in (0, 1):  # the calibration images and others
        np.testing.assert_allclose(_run(eq, _calib(seed=seed)), _run(model, _calib(seed=seed)), rtol=1e-5, atol=1e-6)
    # the original is left alone
    assert numpy_helper.to_array(model.graph.initializer[0]).ravel()[1] == np.float32(0.5)


def test_a_clip_that_is_not_scale_equivariant_is_left_alone():
    from skinage.export.quantize.equalize import equalize_depthwise_inputs, find_pairs

    assert [p.hi for p in find_pairs(_graph())] == [6.0]
    model = _graph(lo=-1.0)  # Clip(s x, -1, 6) != s Clip(x, -1, 6)
    assert find_pairs(model) == []
    eq, report = equalize_depthwise_inputs(model, _calib())
    assert report == [] and eq.SerializeToString() == model.SerializeToString()


def test_equalised_int8_rounds_the_small_channel_finer(tmp_path):
    """The point of it: ONNX Runtime's int8 file of the equalised graph is closer to fp32 on the small channel
    (one uint8 scale for the tensor; the channel spans 1/10 of it before and 8/10 after), and no worse on the
    others."""
    from skinage.export.quantize.quantizer import Int8Quantizer

    model = _graph()
    src = tmp_path / "m.onnx"
    onnx.save(model, str(src))
    calib, test = _calib(64, 0), _calib(64, 1)
    ref = _run(model, test)
    err = {}
    for on in (False, True):
        with Int8Quantizer(src, calib, bias_correction=False, reduce_range=False, equalize=on) as q:
            out = q.quantize(tmp_path / f"q{on}.onnx", "minmax", [])
            assert bool(q.equalization) is on
        got = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, {INPUT_NAME: test})[0]
        err[on] = np.abs(got - ref).mean(axis=(0, 2, 3))  # per channel
    assert err[True][1] < 0.5 * err[False][1], err
    assert err[True][0] <= err[False][0] * 1.05 + 1e-6, err


def test_int8_export_records_the_equalisation(tmp_path):
    """`skinage export --int8` equalises by default and says so in the file's metadata; --no-int8-equalize does
    not, and then no weight of the int8 file differs from the plain quantisation's because of it."""
    pytest.importorskip("torch")
    from export_helpers import make_tiny_run

    from skinage.export.export import export
    from skinage.runtime.onnx_io import read_onnx_metadata

    tiny = make_tiny_run(tmp_path)
    eq = {}
    for on in (True, False):
        res = export(tiny["run"], int8=True, int8_equalize=on, repeats=2, calib_images=8, out=str(tmp_path / f"eq{on}"))
        eq[on] = read_onnx_metadata(res["files"]["onnx_int8"])["quantization"]["equalization"]
    # MobileNetV2: 17 inverted residual blocks, each with one ReLU6 -> depthwise convolution pair (the first
    # block's pair is the stem convolution's output); depthwise widths 32 + 96 + 2 * 144 + 3 * 192 + 4 * 384 +
    # 3 * 576 + 3 * 960 = 7136 channels; 7 linear bottlenecks (one per stage) of 16 + 24 + 32 + 64 + 96 + 160 +
    # 320 = 712 channels
    assert eq[True]["depthwise_inputs"] == 17 and eq[True]["streams"] == 7
    assert eq[True]["channels"] == 7136 + 712
    assert 0 < eq[True]["channels_scaled"] <= eq[True]["channels"] and eq[True]["max_scale"] > 1
    assert eq[False] is None


def _stream_graph(relu: bool = False):
    """pixels (N,1,4,4) -> two 1x1 Convs to 2 channels (weights [4, 0.1] and [2, 0.05]) -> Add -> [Relu ->]
    1x1 Conv to 1 channel (weights [1, 1]) -> probs: a residual stream whose channel 1 is 1/40 of channel 0."""
    def conv(name, x, w, out):
        w = np.array(w, np.float32)
        return (helper.make_node("Conv", [x, f"{name}_w", f"{name}_b"], [out], name=name),
                [numpy_helper.from_array(w, f"{name}_w"),
                 numpy_helper.from_array(np.full(w.shape[0], 0.01, np.float32) * (1 + len(name)), f"{name}_b")])
    n1, i1 = conv("p1", INPUT_NAME, [[[[4.0]]], [[[0.1]]]], "t1")
    n2, i2 = conv("p2", INPUT_NAME, [[[[2.0]]], [[[0.05]]]], "t2")
    n3, i3 = conv("c", "r" if relu else "t3", [[[[1.0]], [[1.0]]]], "probs")
    nodes = [n1, n2, helper.make_node("Add", ["t1", "t2"], ["t3"], name="add")]
    nodes += [helper.make_node("Relu", ["t3"], ["r"], name="relu")] if relu else []
    g = helper.make_graph(nodes + [n3], "g",
                          [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["N", 1, 4, 4])],
                          [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", 1, 4, 4])], i1 + i2 + i3)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def test_stream_scales_worked_by_hand_and_exact():
    from skinage.export.quantize.equalize import equalize_streams, find_streams

    model = _stream_graph()
    (st,) = find_streams(model)
    assert st.tensors == ["t1", "t2", "t3"] and sorted(st.producers) == ["p1", "p2"] and st.consumers == ["c"]
    eq, report = equalize_streams(model, _calib(), max_scale=16.0)
    # inputs in [0, 1], biases 0.03: channel 1 reaches 0.13 of 4.03 (t1), 0.08 of 2.03 (t2), 0.21 of 6.06 (t3); the
    # largest ratio, 0.039, gives 1 / 0.039 = 25, capped at 16; channel 0 is each tensor's largest: 1
    w = {i.name: numpy_helper.to_array(i) for i in eq.graph.initializer}
    np.testing.assert_allclose(w["p1_w"].ravel(), [4.0, 1.6], rtol=1e-6)
    np.testing.assert_allclose(w["p2_w"].ravel(), [2.0, 0.8], rtol=1e-6)
    np.testing.assert_allclose(w["c_w"].ravel(), [1.0, 1.0 / 16], rtol=1e-6)
    np.testing.assert_allclose(w["p1_b"], numpy_helper.to_array(model.graph.initializer[1]) * [1, 16], rtol=1e-6)
    assert report[0]["kind"] == "stream" and report[0]["max_scale"] == 16.0 and report[0]["tensors"] == 3
    for seed in (0, 1):
        np.testing.assert_allclose(_run(eq, _calib(seed=seed)), _run(model, _calib(seed=seed)), rtol=1e-5, atol=1e-6)


def test_a_stream_read_through_an_activation_is_left_alone():
    from skinage.export.quantize.equalize import equalize_streams, find_streams

    model = _stream_graph(relu=True)  # Relu(s x) is fine, but Relu is not a convolution that can divide s out
    assert find_streams(model) == []
    eq, report = equalize_streams(model, _calib())
    assert report == [] and eq.SerializeToString() == model.SerializeToString()


def test_unnamed_nodes_are_equalised_exactly_too():
    """Exporters need not name nodes; the passes find nodes by name, so they name them first."""
    from skinage.export.quantize.equalize import equalize

    model = _stream_graph()
    for n in model.graph.node:
        n.name = ""
    eq, report = equalize(model, _calib())
    assert [r["kind"] for r in report] == ["stream"] and report[0]["max_scale"] == 16.0
    np.testing.assert_allclose(_run(eq, _calib(seed=1)), _run(model, _calib(seed=1)), rtol=1e-5, atol=1e-6)


def test_quantize_int8_says_each_stage_when_asked_and_writes_the_same_file(tmp_path, capsys):
    from skinage.export.graph import onnx_metadata
    from skinage.export.quantize.int8 import quantize_int8

    src = tmp_path / "g.onnx"
    onnx.save(_graph(), str(src))
    x = _calib(16)
    info = onnx_metadata({"classes": ["a", "b", "c"], "preprocessing": {"input_size": 4}}, "fp32")
    quiet = quantize_int8(src, tmp_path / "quiet.onnx", x, info=info, fp32_stem_convs=0, progress=False)
    assert capsys.readouterr().err == ""
    loud = quantize_int8(src, tmp_path / "loud.onnx", x, info=info, fp32_stem_convs=0, progress=True)
    err = capsys.readouterr().err
    # the graph's one depthwise pair: channel 1 scaled, channel 0 (the top) and channel 2 (dead) not
    for stage in ("int8: equalising activations (one fp32 pass over 16 images)",
                  "int8: scaled 1 of 3 channels in 1 depthwise inputs and 0 streams",
                  "int8: bias correction (one fp32 pass over 16 images)",
                  "int8 calibration (percentile)",
                  "int8: writing the QDQ model"):
        assert stage in err, (stage, err)
    assert quiet.read_bytes() == loud.read_bytes()
