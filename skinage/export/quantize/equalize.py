"""Activation equalisation before int8: spread each activation tensor's channels over its uint8 range.

ONNX Runtime quantises each activation tensor with *one* scale (per tensor), set by its largest
channel; a channel whose values are a few percent of the tensor's is rounded to a handful of levels.
Equalisation multiplies such a channel ``c`` by ``s_c >= 1`` in the convolution that makes it (weights and
bias) and divides it back out of the convolution that reads it. Two places in MobileNetV2-like graphs:

* :func:`equalize_depthwise_inputs`: the input of a depthwise convolution (the ReLU6 output of the expansion
  convolution). A depthwise convolution has one weight group per channel, and ONNX Runtime quantises weights
  per output channel, so the division leaves its int8 rounding unchanged: the activation is rounded ``s_c``
  times finer and nothing is rounded coarser. The fp32 graph computes the same as long as the activation is
  scale-equivariant: ``Relu(s x) = s Relu(x)``; ``Clip(s x, 0, hi) = s Clip(x, 0, hi / s)``, the same while
  ``x <= hi / s``, so ``s_c`` is capped to keep the channel's largest value on the calibration images
  ``headroom`` times below ``hi`` (6 for ReLU6).
* :func:`equalize_streams`: the linear bottlenecks (a projection convolution's output and the residual Adds
  it flows through). Nothing but additions lies between producers and consumers, so this is exact; the
  price is paid by the consumers' int8 weights, whose divided input channels are rounded more coarsely
  relative to their size.

This is cross-layer equalisation (Nagel et al. 2019, "Data-free quantization through weight
equalization and bias correction", section 4.1) with the scales set by the activation ranges measured on
calibration images (as SmoothQuant does, Xiao et al. 2023) rather than by the weight ranges.

>>> import numpy as np
>>> channel_scales(np.array([6.0, 0.5, 0.0, 3.0]), hi=6.0).round(3)  # 0.5 -> 4.0 = 6 / 1.5
array([1.   , 8.   , 1.   , 1.333])
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from ...runtime.onnx_io import INPUT_NAME
from ..graph import graph_index

__all__ = ["EqualizationPair", "Stream", "find_pairs", "find_streams", "channel_scales", "stream_scales",
           "intermediate_batches", "equalize_depthwise_inputs", "equalize_streams", "equalize", "equalization_summary"]


@dataclass
class EqualizationPair:
    """A convolution whose output goes through a scale-equivariant activation into a depthwise convolution."""

    conv: str  # the producing convolution's node name
    activation: str  # its Relu / Clip node
    depthwise: str  # the consuming depthwise convolution
    hi: float  # the activation's upper bound (inf for Relu)
    tensor: str  # the producing convolution's output (pre-activation)


def _constant(proto, name: str, inits: dict) -> np.ndarray | None:
    from onnx import numpy_helper

    if not name:
        return None
    if name in inits:
        return numpy_helper.to_array(inits[name])
    for n in proto.graph.node:
        if n.op_type == "Constant" and n.output[0] == name:
            for a in n.attribute:
                if a.name == "value":
                    return numpy_helper.to_array(a.t)
    return None


def _attr(node, name: str, default=None):
    import onnx

    return next((onnx.helper.get_attribute_value(a) for a in node.attribute if a.name == name), default)


def find_pairs(proto) -> list[EqualizationPair]:
    """Every Conv -> Relu/Clip(0, hi) -> depthwise Conv chain whose weights can be rescaled safely: constant
    weights and bias (:func:`equalize_depthwise_inputs` gives a private copy to a node that shares one), and no
    other consumer of the two tensors in between."""
    g = proto.graph
    inits, producer, consumers = graph_index(proto)
    graph_outputs = {o.name for o in g.output}
    pairs = []
    for act in g.node:
        if act.op_type not in ("Relu", "Clip"):
            continue
        conv = producer.get(act.input[0])
        after = consumers.get(act.output[0], [])
        if (conv is None or conv.op_type != "Conv" or len(conv.input) < 3 or len(after) != 1
                or len(consumers.get(conv.output[0], [])) != 1
                or {conv.output[0], act.output[0]} & graph_outputs):
            continue
        dw = after[0]
        if dw.op_type != "Conv" or dw.input[0] != act.output[0] or len(dw.input) < 2:
            continue
        w_names = (conv.input[1], conv.input[2], dw.input[1])
        if any(w not in inits for w in w_names):
            continue
        if len(inits[conv.input[1]].dims) != 4 or len(inits[dw.input[1]].dims) != 4:
            continue  # 2-d convolutions only
        channels = inits[conv.input[1]].dims[0]
        w_dw = inits[dw.input[1]].dims
        if _attr(dw, "group", 1) != channels or w_dw[0] != channels or w_dw[1] != 1:
            continue  # not depthwise (one weight group per channel)
        hi = np.inf
        if act.op_type == "Clip":
            lo_v = _constant(proto, act.input[1], inits) if len(act.input) > 1 else None
            hi_v = _constant(proto, act.input[2], inits) if len(act.input) > 2 else None
            if len(act.input) > 1 and act.input[1] and lo_v is None:
                continue  # a bound that is not a constant
            if len(act.input) > 2 and act.input[2] and hi_v is None:
                continue
            if lo_v is None or float(lo_v) != 0.0:
                continue  # only Clip(0, hi) is scale-equivariant below hi
            hi = float(hi_v) if hi_v is not None else np.inf
        pairs.append(EqualizationPair(conv.name, act.name, dw.name, hi, conv.output[0]))
    return pairs


def channel_scales(channel_max: np.ndarray, hi: float = np.inf, max_scale: float = 16.0,
                   headroom: float = 1.5) -> np.ndarray:
    """Per-channel factors ``s_c >= 1`` that lift each channel's largest value ``channel_max[c]`` towards the
    tensor's (the largest channel's, at most ``hi``), at most ``max_scale``, and never closer than ``headroom``
    to the activation's upper bound ``hi``. Channels that never turn positive keep 1."""
    m = np.asarray(channel_max, dtype=np.float64)
    s = np.ones_like(m)
    live = m > 1e-6
    if not live.any():
        return s
    top = float(np.minimum(m[live], hi).max())
    s[live] = top / m[live]
    if np.isfinite(hi):
        s[live] = np.minimum(s[live], hi / (headroom * m[live]))
    return np.clip(s, 1.0, max_scale)


def intermediate_batches(proto, tensors: list[str], calib: np.ndarray, batch: int = 16):
    """Run ``proto`` (fp32, one ONNX Runtime session) over ``calib`` in batches of ``batch`` images and yield,
    per batch, ``{tensor: array}`` for the inner ``tensors`` (made graph outputs for the purpose)."""
    import onnx
    import onnxruntime as ort

    m = onnx.ModelProto()
    m.CopyFrom(proto)
    outputs = {o.name for o in m.graph.output}
    for t in dict.fromkeys(tensors):
        if t not in outputs:
            m.graph.output.append(onnx.helper.make_empty_tensor_value_info(t))
    so = ort.SessionOptions()
    so.intra_op_num_threads = max(1, min(4, os.cpu_count() or 1))
    so.log_severity_level = 3
    sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    for i in range(0, len(calib), batch):
        yield dict(zip(names, sess.run(None, {INPUT_NAME: calib[i:i + batch]})))


def _channel_max(proto, tensors: list[str], calib: np.ndarray, absolute=()) -> dict[str, np.ndarray]:
    """The largest value of each channel of ``tensors`` (N, C, H, W) over ``calib``, from one fp32 pass; for the
    tensors in ``absolute``, the largest magnitude."""
    absolute = set(absolute)
    out: dict[str, np.ndarray] = {}
    for res in intermediate_batches(proto, tensors, calib):
        for t in tensors:
            v = (np.abs(res[t]) if t in absolute else res[t]).max(axis=(0, 2, 3))
            out[t] = v if t not in out else np.maximum(out[t], v)
    return out


class _Weights:
    """Scales constant inputs of nodes in a graph, giving a node its own copy of an initializer it shares."""

    def __init__(self, proto):
        self.proto = proto
        self.inits = {i.name: i for i in proto.graph.initializer}
        self.uses: dict[str, int] = {}
        for n in proto.graph.node:
            for x in n.input:
                self.uses[x] = self.uses.get(x, 0) + 1

    def scale(self, node, k: int, factor: np.ndarray) -> None:
        from onnx import numpy_helper

        name = node.input[k]
        orig = numpy_helper.to_array(self.inits[name])
        arr = (orig.astype(np.float64) * factor).astype(orig.dtype)
        if self.uses[name] > 1:  # shared with another node (e.g. two all-zero biases merged): give this one its own
            self.uses[name] -= 1
            name = f"{name}_equalized_{node.name}"
            node.input[k] = name
            self.inits[name] = self.proto.graph.initializer.add()
            self.uses[name] = 1
        self.inits[name].CopyFrom(numpy_helper.from_array(arr, name))


def _copy(proto):
    """A copy of ``proto`` in which every node has a name of its own (the passes find nodes by name)."""
    import onnx

    out = onnx.ModelProto()
    out.CopyFrom(proto)
    seen: set[str] = set()
    for i, n in enumerate(out.graph.node):
        if not n.name or n.name in seen:
            n.name = f"{n.name or n.op_type}_equalize_{i}"
        seen.add(n.name)
    return out


def _summary(kind: str, s: np.ndarray, **names) -> dict:
    return {"kind": kind, **names, "channels": int(len(s)), "scaled": int((s > 1.0).sum()),
            "median_scale": round(float(np.median(s)), 3), "max_scale": round(float(s.max()), 3)}


def equalize_depthwise_inputs(proto, calib: np.ndarray, max_scale: float = 16.0, headroom: float = 1.5):
    """A copy of ``proto`` with the input channels of every depthwise convolution (see :func:`find_pairs`)
    scaled up by :func:`channel_scales` of their largest values over ``calib`` (uint8 images, the graph's
    input), and a report per pair: channels, how many were scaled, median and largest factor."""
    out = _copy(proto)
    pairs = find_pairs(out)
    if not pairs or not len(calib):
        return out, []
    return out, _scale_pairs(out, pairs, _channel_max(out, [p.tensor for p in pairs], calib), max_scale, headroom)


def _scale_pairs(out, pairs: list[EqualizationPair], maxima: dict, max_scale: float, headroom: float) -> list[dict]:
    """Scale ``pairs`` of ``out`` in place from the channel maxima of their tensors; the report."""
    nodes = {n.name: n for n in out.graph.node}
    w = _Weights(out)
    report = []
    for p in pairs:
        conv, dw = nodes[p.conv], nodes[p.depthwise]
        s = channel_scales(maxima[p.tensor], p.hi, max_scale, headroom)
        w.scale(conv, 1, s.reshape(-1, 1, 1, 1))
        w.scale(conv, 2, s)
        w.scale(dw, 1, 1.0 / s.reshape(-1, 1, 1, 1))
        report.append(_summary("depthwise input", s, conv=p.conv, depthwise=p.depthwise))
    return report


@dataclass
class Stream:
    """Tensors joined by Add nodes (a residual stream; or one tensor) whose every producer is a convolution or
    one of those Adds and whose every consumer is a convolution reading it as its input, or one of those Adds:
    no activation anywhere, so scaling channel ``c`` of all of them by ``s_c`` is exact."""

    tensors: list[str]
    producers: list[str]  # convolutions: output channel c x s_c (weights and bias)
    consumers: list[str]  # convolutions: input channel c / s_c (weights)


def find_streams(proto) -> list[Stream]:
    """Every :class:`Stream` of ``proto`` (MobileNetV2: the linear bottleneck of each stage, with its residual
    Adds). A consumer must be an ordinary (group 1) or depthwise convolution with constant weights; a producer a
    convolution with constant weights and bias."""
    g = proto.graph
    inits, producer, consumers = graph_index(proto)
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for n in g.node:
        if n.op_type == "Conv":
            find(n.output[0])
        elif n.op_type == "Add" and len(n.input) == 2 and not set(n.input) & inits.keys():
            for x in n.input:
                parent[find(x)] = find(n.output[0])
    groups: dict[str, list[str]] = {}
    for t in list(parent):
        groups.setdefault(find(t), []).append(t)
    graph_io = {o.name for o in g.output} | {i.name for i in g.input}
    streams = []
    for ts in groups.values():
        members, prods, cons, ok = set(ts), [], [], True
        for t in ts:
            p = producer.get(t)
            if t in graph_io or p is None:
                ok = False
            elif p.op_type == "Conv" and len(p.input) > 2 and p.input[1] in inits and p.input[2] in inits \
                    and len(inits[p.input[1]].dims) == 4:
                prods.append(p.name)
            elif not (p.op_type == "Add" and p.output[0] in members):
                ok = False
            for c in consumers.get(t, []):
                if c.op_type == "Add" and c.output[0] in members:
                    continue
                if _reads_per_channel(c, t, inits):
                    cons.append(c.name)
                else:
                    ok = False
        if ok and prods and cons:
            streams.append(Stream(sorted(ts), prods, cons))
    return streams


def _reads_per_channel(node, tensor: str, inits: dict) -> bool:
    """Whether ``node`` is a convolution reading ``tensor`` as its data input only, with constant weights, either
    ordinary (group 1: input channel c is weight column c) or depthwise (one weight row per channel)."""
    if node.op_type != "Conv" or node.input[0] != tensor or tensor in node.input[1:] or len(node.input) < 2 \
            or node.input[1] not in inits:
        return False
    group, dims = _attr(node, "group", 1), inits[node.input[1]].dims
    return len(dims) == 4 and (group == 1 or (group == dims[0] and dims[1] == 1))


def stream_scales(relative_max: np.ndarray, max_scale: float = 16.0) -> np.ndarray:
    """``s_c = 1 / relative_max[c]`` (the channel's largest magnitude as a fraction of its tensor's, the largest
    over the stream's tensors), between 1 and ``max_scale``; channels that are always 0 keep 1.

    >>> stream_scales(np.array([1.0, 0.25, 0.0, 0.01]))
    array([ 1.,  4.,  1., 16.])
    """
    r = np.asarray(relative_max, dtype=np.float64)
    s = np.ones_like(r)
    live = r > 1e-6
    s[live] = 1.0 / r[live]
    return np.clip(s, 1.0, max_scale)


def equalize_streams(proto, calib: np.ndarray, max_scale: float = 16.0):
    """A copy of ``proto`` whose every :class:`Stream` has its channels scaled by :func:`stream_scales` of their
    largest magnitudes over ``calib`` (each relative to its tensor's largest), multiplied into the producers'
    output channels and divided out of the consumers' input channels, and a report per stream. Exact in fp32
    (nothing between producer and consumer but additions). The consumers' int8 weights pay for it: a divided
    input channel's weights are rounded more coarsely relative to their size."""
    out = _copy(proto)
    streams = find_streams(out)
    if not streams or not len(calib):
        return out, []
    tensors = _stream_tensors(streams)
    return out, _scale_streams(out, streams, _channel_max(out, tensors, calib, absolute=tensors), max_scale)


def _stream_tensors(streams: list[Stream]) -> list[str]:
    return sorted({t for st in streams for t in st.tensors})


def _scale_streams(out, streams: list[Stream], absmax: dict, max_scale: float) -> list[dict]:
    """Scale ``streams`` of ``out`` in place from the largest magnitudes of their tensors' channels; the report."""
    nodes = {n.name: n for n in out.graph.node}
    w = _Weights(out)
    report = []
    for st in streams:
        rel = np.max([absmax[t] / max(float(absmax[t].max()), 1e-12) for t in st.tensors], axis=0)
        s = stream_scales(rel, max_scale)
        for p in st.producers:
            w.scale(nodes[p], 1, s.reshape(-1, 1, 1, 1))
            w.scale(nodes[p], 2, s)
        for c in st.consumers:
            depthwise = _attr(nodes[c], "group", 1) > 1
            w.scale(nodes[c], 1, 1.0 / (s.reshape(-1, 1, 1, 1) if depthwise else s.reshape(1, -1, 1, 1)))
        report.append(_summary("stream", s, tensors=len(st.tensors), producers=len(st.producers),
                               consumers=len(st.consumers)))
    return report


def equalize(proto, calib: np.ndarray, max_scale: float = 16.0, headroom: float = 1.5):
    """Both equalisations, :func:`equalize_depthwise_inputs` and :func:`equalize_streams`, measured in one fp32
    pass over ``calib``; one report. What they bought on a trained run: ``docs/results/2026-12-int8.md``.
    """
    out = _copy(proto)
    pairs, streams = find_pairs(out), find_streams(out)
    if not (pairs or streams) or not len(calib):
        return out, []
    # one fp32 pass for both: the depthwise pass leaves the streams' tensors as they were (it scales a
    # depthwise convolution's input channels and divides them back out of its weights)
    stream_tensors = _stream_tensors(streams)
    maxima = _channel_max(out, [p.tensor for p in pairs] + stream_tensors, calib, absolute=stream_tensors)
    return out, _scale_pairs(out, pairs, maxima, max_scale, headroom) + _scale_streams(out, streams, maxima, max_scale)


def equalization_summary(report: list[dict]) -> dict:
    """What :func:`equalize` moved (its report summed up), for the int8 file's metadata.

    >>> equalization_summary([{"kind": "stream", "channels": 4, "scaled": 1, "max_scale": 2.0}])
    {'depthwise_inputs': 0, 'streams': 1, 'channels_scaled': 1, 'channels': 4, 'max_scale': 2.0}
    """
    return {"depthwise_inputs": sum(r["kind"] == "depthwise input" for r in report),
            "streams": sum(r["kind"] == "stream" for r in report),
            "channels_scaled": sum(r["scaled"] for r in report), "channels": sum(r["channels"] for r in report),
            "max_scale": max((r["max_scale"] for r in report), default=1.0)}
