"""`skinage export`: a trained run -> ONNX fp32 (and int8) files a phone can run, with parity checks.

The exported graph
------------------
* input ``pixels``: **uint8** RGB, shape ``(N, H, W, 3)`` (channels last, batch size dynamic,
  H = W = the model's input size) - exactly the crop ``skinage.data.images.load_crop`` returns,
  and the byte layout a phone camera / bitmap API hands out. The cast to float, the scaling to
  [0, 1] and the ImageNet mean/std normalisation are *inside* the graph;
* output ``probs``: float32 ``(N, K)`` class probabilities (softmax, or the class probabilities of
  an ordinal CORAL / CORN head), in the order of ``classes``.
* ``metadata_props["skinage"]``: JSON with the model name, classes, ordinal type, preprocessing
  (input size, mean, std, interpolation, bbox margin, square crop), the input/output description,
  precision, the skinage version and the run it came from. ``classes`` and ``preprocessing`` are
  also stored as their own keys for apps that only want those.

Files (in ``<run>/export/`` unless ``--out``): ``model.onnx`` (fp32), ``model.int8.onnx``
(``--int8``: static QDQ quantisation, per-channel int8 weights, uint8 activations, calibrated
on the run's training images, percentile calibration, activations equalised (see
:mod:`skinage.export.equalize`), bias correction of the int8 weights' mean error; the stem - first
3 convolutions -, the pooled embedding, the head and the probability layer stay fp32;
``--int8-search`` instead chooses the calibration method and the fp32 convolutions on the run's
validation images, see
:func:`search_int8`), ``model.ts.pt``
(``--format torchscript``), ``export_results.json`` and ``export_results.md``.

After every export a parity check runs on the run's validation images: ONNX fp32 vs PyTorch
top-1 agreement and largest probability difference; int8 vs fp32 agreement and accuracy
change; latency of one image on one thread (median). The table is printed and saved.

>>> res = export("runs/utk/exp", int8=True)  # doctest: +SKIP
>>> res["rows"][1]["agreement"]  # doctest: +SKIP
1.0
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .. import __version__
from ..config import ConfigError, Seeded, add_config_arguments, build_config, config_from_args, config_to_dict
from ..models.decode import decision_rule, near_ties, predict_labels
from ..utils import atomic_write, atomic_write_json, atomic_write_text, say
from .equalize import graph_index, equalize as equalize_activations, intermediate_batches
from ..preprocess import Preprocess
from .predict import INPUT_NAME, METADATA_KEY, OUTPUT_NAME, ort_session, read_onnx_metadata

__all__ = ["ExportConfig", "export", "export_onnx", "quantize_int8", "Int8Quantizer", "search_int8", "PixelModel",
           "pixel_noise",
           "onnx_metadata", "time_alternating", "find_manifest", "add_arguments", "run"]


@dataclass
class ExportConfig(Seeded):
    """Options of ``skinage export`` / :func:`skinage.export`."""

    run: str = field(default="", metadata={"positional": True,
        "help": "a run folder (runs/<project>/<name>) or a checkpoint (.safetensors/.json)"})
    format: str = field(default="onnx", metadata={"choices": ("onnx", "torchscript", "all"),
        "help": "onnx, torchscript (a traced TorchScript file as well) or all"})
    int8: bool = field(default=False, metadata={
        "help": "also write model.int8.onnx: static int8 quantisation (QDQ, per-channel) calibrated on training images"})
    opset: int = field(default=17, metadata={"help": "ONNX opset version"})
    out: Path | None = field(default=None, metadata={"help": "output folder (default: <run>/export)"})
    manifest: Path | None = field(default=None, metadata={
        "help": "manifest for calibration and the parity check (default: the run's own manifest)"})
    calib_images: int = field(default=200, metadata={"help": "training images used to calibrate int8"})
    calibration: str = field(default="percentile", metadata={"choices": ("percentile", "minmax", "entropy"),
        "help": "how int8 activation ranges are set from the calibration images (percentile: 99.999 %% of "
                "values, robust to outliers; minmax: the full range)"})
    fp32_stem_convs: int = field(default=3, metadata={
        "help": "first convolutions kept in fp32 in the int8 file (more: closer to fp32, a little slower)"})
    int8_bias_correction: bool = field(default=True, metadata={
        "help": "int8: each quantised convolution's bias absorbs the mean output error of its int8 weights, measured "
                "with the calibration images (Nagel et al. 2019); --no-int8-bias-correction turns it off"})
    int8_reduce_range: bool = field(default=True, metadata={
        "help": "int8: weights on 7 bits (-64..64, per channel), so that x86 CPUs without VNNI (AVX2, AVX-512 without "
                "VNNI) cannot saturate their 16-bit sums of u8 x s8 products (on such a CPU the 8-bit file of the "
                "utkface-age MobileNetV2 was 2.4x as far from fp32, mean KL 0.0070 against 0.0029); "
                "--no-int8-reduce-range: full 8-bit weights (ARM phones and VNNI CPUs do not saturate)"})
    int8_equalize: bool = field(default=True, metadata={
        "help": "int8: before calibration, scale the small channels of depthwise convolutions' inputs and of the "
                "linear bottlenecks up to fill their tensor's uint8 range, and back out of the convolutions that "
                "read them (the fp32 function is unchanged unless a channel goes past 1.5 times its largest "
                "value on the calibration images; same latency and size, finer rounding); "
                "--no-int8-equalize turns it off"})
    int8_search: bool = field(default=False, metadata={
        "help": "write model.int8.onnx (implies --int8) with the calibration method and the fp32 convolutions "
                "chosen on the run's VALIDATION images: entropy or percentile, then the convolution blocks that "
                "hurt most when quantised alone stay fp32 until int8/fp32 agreement reaches --int8-search-target "
                "or --int8-search-budget convolutions are fp32 (about 2 min for MobileNetV2 224 on 2 cores)"})
    int8_search_target: float = field(default=0.99, metadata={
        "help": "validation int8/fp32 top-1 agreement at which --int8-search stops"})
    int8_search_budget: int = field(default=6, metadata={
        "help": "most convolutions --int8-search keeps fp32 (each costs latency)"})
    int8_search_max_mb: float = field(default=4.0, metadata={
        "help": "--int8-search skips fp32 blocks that would make model.int8.onnx larger than this (MB)"})
    check_images: int = field(default=0, metadata={
        "help": "validation images for the parity check (0: all of them)"})
    check_split: str = field(default="val", metadata={
        "help": "manifest split for the parity check (falls back to test, then train, when empty)"})
    repeats: int = field(default=50, metadata={"help": "timed runs per format for the one-image latency"})
    which: str = field(default="best", metadata={"choices": ("best", "last"), "help": "which checkpoint of the run"})
    tta: str = field(default="auto", metadata={
        "choices": ("auto", "none", "flip"),
        "help": "test-time augmentation built into the graph: auto (the checkpoint's own), none, or flip (each image "
                "and its mirror in one batch, outputs averaged; twice the latency)"})


CALIB_STRIDE = 8  # calibration images held in memory at once by ONNX Runtime's calibrator
EQUALIZE_IMAGES = 200  # calibration images whose per-channel maxima set the equalisation factors

# --------------------------------------------------------------------------------------------
# the graph

def _ordinal_probs(outputs, ordinal: str | None):
    """``outputs_to_probs`` written with ops every ONNX opset has (no cumprod / cummin).

    K is small and static, so the cumulative product / minimum is unrolled.
    """
    import torch

    if ordinal is None:
        return torch.softmax(outputs.float(), dim=1)
    p = torch.sigmoid(outputs.float())
    cols = [p[:, 0:1]]
    for k in range(1, p.shape[1]):
        if ordinal == "corn":
            cols.append(cols[-1] * p[:, k:k + 1])
        else:  # coral
            cols.append(torch.minimum(cols[-1], p[:, k:k + 1]))
    ones = torch.ones_like(cols[0])
    zeros = torch.zeros_like(cols[0])
    cum = torch.cat([ones, *cols, zeros], dim=1)
    return torch.clamp(cum[:, :-1] - cum[:, 1:], min=0.0)


def PixelModel(model):  # noqa: N802 - a class factory, so that torch is imported lazily
    """Wrap a SkinageModel: uint8 (N, H, W, 3) pixels in, class probabilities out."""
    import torch.nn as nn

    class _PixelModel(nn.Module):
        def __init__(self, m):
            super().__init__()
            self.model = m
            self.ordinal = getattr(m, "ordinal", None)

        def forward(self, pixels):
            x = pixels.permute(0, 3, 1, 2).float() / 255.0
            return _ordinal_probs(self.model(x), self.ordinal)

    return _PixelModel(model).eval()


def onnx_metadata(meta: dict, precision: str, run: str | None = None, extra: dict | None = None) -> dict:
    """The JSON stored under ``metadata_props['skinage']``."""
    pre = Preprocess.from_meta(meta)
    out = {
        "model": meta.get("model"),
        "classes": list(meta["classes"]),
        "ordinal": meta.get("ordinal"),
        "preprocessing": pre.to_meta(),
        "input": {"name": INPUT_NAME, "dtype": "uint8", "shape": ["N", pre.size, pre.size, 3], "layout": "NHWC",
                  "range": "RGB 0-255; scaling and mean/std normalisation are inside the graph"},
        "output": {"name": OUTPUT_NAME, "dtype": "float32", "shape": ["N", len(meta["classes"])],
                   "meaning": "class probabilities in the order of 'classes'",
                   "class_rule": decision_rule(meta.get("ordinal"))},
        "precision": precision,
        "skinage_version": __version__,
        "run": run,
        "mode": meta.get("mode"),
        "weights_from": meta.get("weights_from"),
        "epoch": meta.get("epoch"),
        "tta": meta.get("tta"),
    }
    if extra:
        out.update(extra)
    return out


def _set_metadata(path: Path, info: dict) -> None:
    import onnx

    m = onnx.load(str(path))
    del m.metadata_props[:]
    for k, v in ((METADATA_KEY, json.dumps(info, ensure_ascii=False)),
                 ("classes", json.dumps(info["classes"], ensure_ascii=False)),
                 ("preprocessing", json.dumps(info["preprocessing"])),
                 ("skinage_version", __version__)):
        p = m.metadata_props.add()
        p.key, p.value = k, v
    m.producer_name = "skinage"
    m.producer_version = __version__
    m.doc_string = (f"skinage {info.get('model')} classifier ({info['precision']}); input '{INPUT_NAME}' uint8 "
                    f"NHWC RGB {info['input']['shape'][1]}x{info['input']['shape'][2]}; output '{OUTPUT_NAME}' "
                    f"probabilities over {info['classes']}")
    with atomic_write(path) as f:
        f.write(m.SerializeToString())


def export_onnx(model, meta: dict, path: str | os.PathLike, opset: int = 17, run: str | None = None) -> Path:
    """Write the fp32 ONNX graph of ``model`` (uint8 NHWC in, probabilities out) with metadata.

    Uses the TorchScript-based exporter (``dynamo=False``): it gives a plain graph with
    batch norm folded into the convolutions, which ONNX Runtime's quantiser handles well.
    """
    import warnings

    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wrapper = PixelModel(model)
    dummy = torch.zeros(2, *Preprocess.from_meta(meta).shape, dtype=torch.uint8)
    tmp = path.with_name("." + path.name + ".tmp")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(wrapper, (dummy,), str(tmp), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
                          opset_version=int(opset), do_constant_folding=True, dynamo=False)
    import onnx

    m = onnx.load(str(tmp))
    if _fold_input_scaling(m):
        onnx.save(m, str(tmp))
    os.replace(tmp, path)
    onnx.checker.check_model(str(path))
    _set_metadata(path, onnx_metadata(meta, "fp32", run))
    return path


def _fold_input_scaling(model_proto) -> bool:
    """Replace ``x / 255``, ``- mean``, ``/ std`` (three passes over the input image) by one
    per-channel ``x * a + b`` (two passes); the same numbers to ~1e-7. Saves ~0.07 ms of the
    ~2.3 ms of a 224 px int8 MobileNetV2. Returns False (graph untouched) if the chain is not there.
    """
    from onnx import helper, numpy_helper

    g = model_proto.graph
    consts = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    consts.update({n.output[0]: numpy_helper.to_array(n.attribute[0].t) for n in g.node
                   if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value"})
    users = graph_index(model_proto)[2]
    for first in g.node:
        if first.op_type != "Div" or first.input[1] not in consts or consts[first.input[1]].size != 1:
            continue
        chain = [first]
        for op in ("Sub", "Div"):
            nxt = users.get(chain[-1].output[0], [])
            if len(nxt) != 1 or nxt[0].op_type != op or nxt[0].input[0] != chain[-1].output[0] \
                    or nxt[0].input[1] not in consts:
                break
            chain.append(nxt[0])
        if len(chain) != 3:
            continue
        k = consts[first.input[1]].astype(np.float64)
        mean, std = (consts[n.input[1]].astype(np.float64) for n in chain[1:])
        if mean.ndim != 4 or std.ndim != 4:
            continue
        scale = (1.0 / (k * std)).astype(np.float32)
        shift = (-mean / std).astype(np.float32)
        g.initializer.extend([numpy_helper.from_array(scale, "input_scale"),
                              numpy_helper.from_array(shift, "input_shift")])
        mul = helper.make_node("Mul", [first.input[0], "input_scale"], ["input_scaled"], name="/input/Mul")
        add = helper.make_node("Add", ["input_scaled", "input_shift"], [chain[-1].output[0]], name="/input/Add")
        at = list(g.node).index(first)
        for n in chain:
            g.node.remove(n)
        g.node.insert(at, add)
        g.node.insert(at, mul)
        used = {i for n in g.node for i in n.input}
        for init in [i for i in g.initializer if i.name not in used]:
            g.initializer.remove(init)
        for n in [n for n in g.node if n.op_type == "Constant" and n.output[0] not in used]:
            g.node.remove(n)
        return True
    return False


def _stem_nodes(model_proto, n_convs: int) -> list[str]:
    """Names of the nodes up to and including the ``n_convs``-th convolution (the stem)."""
    out, seen = [], 0
    if n_convs <= 0:
        return out
    for n in model_proto.graph.node:
        out.append(n.name)
        if n.op_type == "Conv":
            seen += 1
            if seen >= n_convs:
                # and the activation right after it
                break
    return [x for x in out if x]


def _head_nodes(model_proto) -> list[str]:
    """Names of the nodes kept fp32 when quantising: the global pooling (the embedding), the
    head and everything after them (the probability layer)."""
    nodes = list(model_proto.graph.node)
    consumers = graph_index(model_proto)[2]
    seeds = [n for n in nodes if "/head/" in n.name or n.op_type in ("GlobalAveragePool", "ReduceMean")]
    keep: dict[str, Any] = {}
    stack = list(seeds)
    while stack:
        n = stack.pop()
        if n.name in keep:
            continue
        keep[n.name] = n
        for o in n.output:
            stack.extend(consumers.get(o, []))
    return [name for name in keep if name]


CALIB_METHODS = ("percentile", "minmax", "entropy")


def _conv_units(model_proto, max_convs: int = 4) -> dict[str, list[str]]:
    """Convolutions grouped into units the int8 search keeps fp32 together: the shallowest name
    scope holding at most ``max_convs`` convolutions (MobileNetV2: one inverted-residual block;
    a nameless convolution is a unit of its own). Keeping a whole block fp32 removes the Q/DQ
    pairs inside it; keeping one convolution of a block fp32 often *raised* the error on the
    utkface-age run (quantisation errors of neighbouring layers partly cancel)."""
    convs = [n.name for n in model_proto.graph.node if n.op_type == "Conv" and n.name]
    units: dict[str, list[str]] = {}
    for c in convs:
        parts, key = c.split("/"), c
        for k in range(2, len(parts)):
            scope = "/".join(parts[:k]) + "/"
            if sum(x.startswith(scope) for x in convs) <= max_convs:
                key = scope
                break
        units.setdefault(key, []).append(c)
    return units


def _with_activations(model_proto, convs: Sequence[str]) -> list[str]:
    """``convs`` plus the Relu / Clip right after each (kept fp32 with its convolution)."""
    consumers: dict[str, list] = {}
    for n in model_proto.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    by_name = {n.name: n for n in model_proto.graph.node}
    out = []
    for c in convs:
        out.append(c)
        nxt = consumers.get(by_name[c].output[0], []) if c in by_name else []
        if len(nxt) == 1 and nxt[0].op_type in ("Relu", "Clip") and nxt[0].name:
            out.append(nxt[0].name)
    return out


class Int8Quantizer:
    """Calibrate once, quantise many times.

    The fp32 graph is pre-processed (``quant_pre_process``) once; activation ranges are computed
    once per calibration method with ONNX Runtime's calibrator (``create_calibrator`` +
    ``collect_data`` in strides of ``CALIB_STRIDE`` images + ``compute_data``) and saved with
    ``save_tensors_data``; each :meth:`quantize` then calls ``quantize_static`` with
    ``calibration_cache_path`` pointing at those ranges (the public way of onnxruntime >= 1.24 to
    reuse ranges: no calibration inference is run again), so one QDQ model for another set of
    fp32 nodes takes about half a second for MobileNetV2.

    ``bias_correction`` (default): before each quantisation the bias of every convolution that is
    quantised absorbs the mean error its int8 weights make (see :func:`weight_error_shift`).

    ``equalize`` (default): before calibration, the small channels of depthwise convolutions' inputs and of
    the linear bottlenecks are scaled up to fill their tensor's uint8 range, and back out of the convolutions
    that read them (:func:`skinage.export.equalize.equalize`); :attr:`equalization` reports what moved.
    :attr:`ref` is the pre-processed graph *before* equalisation, the fp32 reference to compare with.

    ``reduce_range`` (default): weights on 7 bits (-64..64), ONNX Runtime's ``reduce_range``. x86 CPUs
    without VNNI multiply u8 activations by s8 weights with ``vpmaddubsw``, which sums two products into
    16 bits and saturates when both are large (255 * 127 * 2 > 32767); with 7-bit weights it cannot
    (255 * 64 * 2 < 32767). On the utkface-age MobileNetV2 run, on an AVX2 CPU (AMD EPYC), the 8-bit file's
    mean KL from fp32 on validation was 0.0070 with ONNX Runtime's fast kernels and 0.0026 with its exact
    ones (``session.x64quantprecision``), the 7-bit file's 0.0029 with both, at the same latency.

    ``progress``: say each stage on stderr (equalisation, bias correction, a bar over the calibration images).

    Use as a context manager (it owns a temporary folder).
    """

    def __init__(self, fp32_path: str | os.PathLike, calib: np.ndarray, bias_correction: bool = True,
                 reduce_range: bool = True, equalize: bool = True, progress: bool = False):
        import tempfile

        import onnx
        from onnxruntime.quantization.shape_inference import quant_pre_process

        self.progress = bool(progress)
        self._td = tempfile.TemporaryDirectory(prefix="skinage-quant-")
        self.dir = Path(self._td.name)
        self.pre = self.dir / "pre.onnx"
        quant_pre_process(str(fp32_path), str(self.pre), skip_symbolic_shape=False)
        self.ref = self.pre
        self.proto = onnx.load(str(self.pre))
        self.equalization: list[dict] = []
        if equalize:
            t0 = time.perf_counter()
            n = min(len(calib), EQUALIZE_IMAGES)
            _say_progress(self.progress, f"int8: equalising activations (one fp32 pass over {n} images)")
            equalized, self.equalization = equalize_activations(self.proto, calib[:EQUALIZE_IMAGES])
            e = _equalization_summary(self.equalization)
            _say_progress(self.progress, f"int8: scaled {e['channels_scaled']} of {e['channels']} channels in "
                                         f"{e['depthwise_inputs']} depthwise inputs and {e['streams']} streams "
                                         f"({time.perf_counter() - t0:.0f} s)")
            if self.equalization:  # else keep the graph as it was (equalize may have named unnamed nodes)
                self.proto = equalized
                self.pre = self.dir / "equalized.onnx"
                onnx.save(self.proto, str(self.pre))
        # ONNX Runtime's histogram calibrators keep every intermediate tensor of every image they
        # are fed at once (about 40 MB per 224 px MobileNetV2 image); feeding them in strides of a
        # few images bounds the memory.
        stride = min(CALIB_STRIDE, len(calib))
        self.calib = calib[: max(stride, len(calib) - len(calib) % stride)]
        self.stride = stride
        self._ranges: dict[str, Path] = {}
        self.reduce_range = bool(reduce_range)
        self.bias_shift = {}
        if bias_correction:
            _say_progress(self.progress, f"int8: bias correction (one fp32 pass over {len(self.calib)} images)")
            self.bias_shift = _bias_shifts(self.proto, self.pre, self.calib, qmax=_weight_qmax(self.reduce_range))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        self._td.cleanup()

    def head_nodes(self) -> list[str]:
        return _head_nodes(self.proto)

    def stem_nodes(self, n_convs: int) -> list[str]:
        return _stem_nodes(self.proto, n_convs)

    def ranges(self, method: str) -> Path:
        """The activation ranges of ``method`` (computed on first use), as an ORT calibration cache."""
        from onnxruntime.quantization import CalibrationDataReader, create_calibrator, save_tensors_data

        if method not in CALIB_METHODS:
            raise ConfigError(f"calibration must be one of {', '.join(CALIB_METHODS)}, not {method!r}")
        if method in self._ranges:
            return self._ranges[method]
        calib = self.calib

        class _Reader(CalibrationDataReader):
            def __init__(self):
                self.set_range(0, len(calib))

            def __len__(self):
                return len(calib)

            def set_range(self, start_index: int, end_index: int):
                self._it = iter(range(start_index, min(end_index, len(calib))))

            def get_next(self):
                i = next(self._it, None)
                return None if i is None else {INPUT_NAME: calib[i:i + 1]}

        calibrator = create_calibrator(self.pre, [], augmented_model_path=str(self.dir / f"aug-{method}.onnx"),
                                       calibrate_method=_ort_method(method), extra_options={"symmetric": False})
        reader = _Reader()
        from tqdm import tqdm

        with contextlib.redirect_stdout(io.StringIO()), \
                tqdm(total=len(calib), desc=f"int8 calibration ({method})", unit="img", leave=False,
                     disable=not self.progress, file=sys.stderr) as bar:  # ORT prints a line per stride
            for start in range(0, len(calib), self.stride):
                reader.set_range(start, start + self.stride)
                calibrator.collect_data(reader)
                bar.update(min(self.stride, len(calib) - start))
            ranges = calibrator.compute_data()
        path = self.dir / f"ranges-{method}.json"
        save_tensors_data(ranges, path)
        del calibrator
        self._ranges[method] = path
        return path

    def quantize(self, out: str | os.PathLike, method: str, exclude: Sequence[str]) -> Path:
        """A QDQ model (per-channel int8 weights, uint8 activations) with ``exclude`` nodes left fp32."""
        import logging

        from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

        cache = self.ranges(method)
        src = self.pre
        if self.bias_shift:
            src = self.dir / "bias-corrected.onnx"
            _write_bias_corrected(self.proto, self.bias_shift, set(exclude), src)
        log = logging.getLogger()
        level = log.level
        log.setLevel(logging.ERROR)  # ORT warns about every node it leaves alone
        try:
            quantize_static(str(src), str(out), None, quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, reduce_range=self.reduce_range,
                            nodes_to_exclude=list(exclude), calibrate_method=_ort_method(method),
                            extra_options={"CalibTensorRangeSymmetric": False}, calibration_cache_path=str(cache))
        finally:
            log.setLevel(level)
        return Path(out)


def _equalization_summary(report: list[dict]) -> dict:
    """What :func:`skinage.export.equalize.equalize` moved, for the int8 file's metadata."""
    return {"depthwise_inputs": sum(r["kind"] == "depthwise input" for r in report),
            "streams": sum(r["kind"] == "stream" for r in report),
            "channels_scaled": sum(r["scaled"] for r in report), "channels": sum(r["channels"] for r in report),
            "max_scale": max((r["max_scale"] for r in report), default=1.0)}


def _weight_qmax(reduce_range: bool) -> int:
    """The largest int8 weight ONNX Runtime writes: 127, or 64 with ``reduce_range``."""
    return 64 if reduce_range else 127


def weight_error_shift(w: np.ndarray, mean_in: np.ndarray, group: int = 1, qmax: int = 127) -> np.ndarray:
    """The mean change of a convolution's output channels when its weights ``w`` (Cout, Cin/group, kh, kw)
    are rounded to int8 the way ONNX Runtime's per-channel symmetric quantiser does (scale = max |w| / ``qmax``
    per output channel: 127, or 64 with ``reduce_range``), for inputs whose per-channel mean is ``mean_in`` (Cin,):
    ``sum (w_q - w) * E[x]``.

    Subtracting it from the bias is the bias correction of Nagel et al. 2019 ("Data-free quantization",
    section 4.2, with E[x] measured on calibration images): the rounding of the weights no longer shifts the
    mean of what the layer passes on. Border effects of zero padding are ignored.

    >>> w = np.array([[[[0.5]], [[0.004]]]])  # one output channel, two inputs: scale 0.5 / 127
    >>> round(float(weight_error_shift(w, np.array([1.0, 10.0]))[0]), 6)  # 0.004 -> 1 * scale = 0.003937
    -0.00063
    """
    w = np.asarray(w, dtype=np.float64)
    cout, cin_g = w.shape[0], w.shape[1]
    absmax = np.abs(w).reshape(cout, -1).max(1)
    scale = np.where(absmax > 0, absmax / float(qmax), 1.0)[:, None, None, None]
    dw = (np.clip(np.round(w / scale), -qmax, qmax) * scale - w).sum(axis=(2, 3))  # (Cout, Cin/group)
    mu = np.asarray(mean_in, dtype=np.float64).reshape(group, cin_g)
    return np.einsum("gci,gi->gc", dw.reshape(group, cout // group, cin_g), mu).reshape(-1)


def _bias_shifts(proto, model_path: Path, calib: np.ndarray, batch: int = 16,
                 qmax: int = 127) -> dict[str, tuple[str, np.ndarray]]:
    """``{conv: (bias initializer, corrected bias)}`` for every convolution with constant weights and bias, from
    the per-channel means of its input over ``calib`` (one fp32 pass with those inputs as extra outputs)."""
    from onnx import numpy_helper

    inits = {i.name: i for i in proto.graph.initializer}
    convs = [n for n in proto.graph.node if n.op_type == "Conv" and n.name and len(n.input) > 2
             and n.input[1] in inits and n.input[2] in inits]
    if not convs or not len(calib):
        return {}
    names = list(dict.fromkeys(n.input[0] for n in convs))
    sums: dict[str, np.ndarray] = {}
    for res in intermediate_batches(proto, names, calib, batch):
        for nm in names:
            sums[nm] = sums.get(nm, 0.0) + res[nm].astype(np.float64).mean(axis=(2, 3)).sum(0)
    out = {}
    for n in convs:
        group = next((a.i for a in n.attribute if a.name == "group"), 1)
        w = numpy_helper.to_array(inits[n.input[1]])
        b = numpy_helper.to_array(inits[n.input[2]]).astype(np.float64)
        shift = weight_error_shift(w, sums[n.input[0]] / len(calib), group, qmax)
        out[n.name] = (n.input[2], (b - shift).astype(np.float32))
    return out


def _write_bias_corrected(proto, shifts: dict[str, tuple[str, np.ndarray]], exclude: set, path: Path) -> None:
    """``proto`` with the corrected biases of the convolutions that will be quantised (not in ``exclude``)."""
    import onnx
    from onnx import numpy_helper

    m = onnx.ModelProto()
    m.CopyFrom(proto)
    new = {b: arr for conv, (b, arr) in shifts.items() if conv not in exclude}
    shared = {}
    for n in m.graph.node:  # a bias shared with a convolution kept fp32 stays as it is
        if n.op_type == "Conv" and len(n.input) > 2:
            shared.setdefault(n.input[2], []).append(n.name)
    for init in m.graph.initializer:
        if init.name in new and all(c not in exclude for c in shared.get(init.name, [])):
            init.CopyFrom(numpy_helper.from_array(new[init.name], init.name))
    onnx.save(m, str(path))


def _ort_method(method: str):
    from onnxruntime.quantization import CalibrationMethod

    return {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
            "entropy": CalibrationMethod.Entropy}[method]


def _mean_kl(p: np.ndarray, ref: np.ndarray) -> float:
    """Mean KL(ref || p) over images: how far int8 probabilities are from fp32 (finer than top-1)."""
    eps = 1e-7
    return float((ref * (np.log(ref + eps) - np.log(p + eps))).sum(1).mean())


def search_int8(q: Int8Quantizer, val_x: np.ndarray, target: float = 0.99, max_fp32_convs: int = 6,
                max_mb: float | None = 4.0, methods: Sequence[str] = ("entropy", "percentile"),
                start_stem_convs: int = 3, progress: bool = True, ordinal: str | None = None) -> dict:
    """Choose, on validation images only, the calibration method and the convolutions kept fp32.

    1. Each calibration method in ``methods`` is tried with the head and the first
       ``start_stem_convs`` convolutions fp32; the one whose int8 probabilities are closest to
       fp32 (mean KL divergence over ``val_x``) is kept.
    2. Sensitivity: each unit (a block of convolutions, see :func:`_conv_units`) is quantised
       *alone*, everything else fp32, and its KL from fp32 measured - one quantisation per unit.
    3. The most sensitive units are kept fp32 one after the other, each checked on all of
       ``val_x`` and kept only if it lowered the KL, while int8/fp32 agreement is below ``target``,
       at most ``max_fp32_convs`` convolutions are fp32 and the int8 file stays under ``max_mb``
       (fp32 weights are 4x larger: one late MobileNetV2 block is ~1 MB).

    KL, not agreement, ranks: agreement over a few hundred images moves by whole images on
    near-ties and picks noise. Each fp32 unit costs latency (early high-resolution blocks most):
    on the utkface-age MobileNetV2 run (bias correction on; an Intel Xeon with VNNI) 6 fp32 convolutions
    ran 4.3x faster than eager PyTorch (cold caches; 4.9x warm) against 5.0x / 5.5x for the default 3
    (a later run there: 4.0x / 4.5x against 4.5x / 5.0x), hence the small
    default budget. Quantising single convolutions inside a block fp32 was tried
    and dropped: it often *raised* the error (errors of neighbouring layers partly cancel).

    Returns the chosen ``method``, ``fp32_convs``, the ``exclude`` list for
    :meth:`Int8Quantizer.quantize`, the validation agreement / KL reached, the unit
    ``sensitivity`` and the ``history`` of accepted steps.
    """
    t0 = time.perf_counter()
    sess32 = ort_session(q.ref, 1)  # the graph before equalisation: what int8 must agree with
    ref = _batched(lambda x: sess32.run(None, {INPUT_NAME: x})[0], val_x)
    ref_labels = predict_labels(ref, ordinal)
    head = q.head_nodes()
    stem_nodes = q.stem_nodes(start_stem_convs)
    base = head + stem_nodes  # as without the search: the stem with the input scaling before it
    units = _conv_units(q.proto)
    all_convs = [c for cs in units.values() for c in cs]
    n_evals = 0

    def _exclude(convs):
        return list(dict.fromkeys(base + _with_activations(q.proto, convs)))

    def evaluate(method: str, exclude: Sequence[str]) -> dict:
        nonlocal n_evals
        n_evals += 1
        path = q.quantize(q.dir / "candidate.onnx", method, exclude)
        s = ort_session(path, 1)
        p = _batched(lambda b: s.run(None, {INPUT_NAME: b})[0], val_x)
        return {"agreement": float((predict_labels(p, ordinal) == ref_labels).mean()), "kl": _mean_kl(p, ref),
                "size_bytes": path.stat().st_size}

    stem = [c for c in stem_nodes if c in set(all_convs)]
    tried = {m: evaluate(m, _exclude(stem)) for m in methods}
    for m, r in tried.items():
        _say_progress(progress, f"int8 search: {m} calibration, {len(stem)} stem convolutions fp32: "
                                f"val agreement {100 * r['agreement']:.2f} %, KL {r['kl']:.5f}")
    method = min(tried, key=lambda m: tried[m]["kl"])
    chosen, best = list(stem), tried[method]
    history = [{"fp32_convs": len(chosen), "added": None, **best}]
    sensitivity: dict[str, float] = {}
    if best["agreement"] < target:
        names = [n.name for n in q.proto.graph.node]
        for u, cs in units.items():
            if set(cs) <= set(chosen) or len(set(chosen) | set(cs)) > max_fp32_convs:
                continue
            # quantise this unit only: its nodes (a name scope, or one convolution and its activation)
            only = set([n for n in names if n.startswith(u)] if u.endswith("/") else _with_activations(q.proto, [u]))
            sensitivity[u] = evaluate(method, [n for n in names if n and n not in only])["kl"]
        for u in sorted(sensitivity, key=sensitivity.get, reverse=True):
            if best["agreement"] >= target:
                break
            trial = chosen + [c for c in units[u] if c not in chosen]
            if len(trial) > max_fp32_convs:
                continue
            r = evaluate(method, _exclude(trial))
            ok = r["kl"] < best["kl"] and not (max_mb and r["size_bytes"] > max_mb * 1e6)
            _say_progress(progress, f"int8 search: {u} fp32 too ({len(trial)} convolutions): val agreement "
                                    f"{100 * r['agreement']:.2f} %, KL {r['kl']:.5f}, "
                                    f"{r['size_bytes'] / 1e6:.2f} MB: {'kept' if ok else 'dropped'}")
            if ok:
                chosen, best = trial, r
                history.append({"fp32_convs": len(chosen), "added": u, **best})
    return {"method": method, "fp32_convs": chosen, "exclude": _exclude(chosen),
            "val_agreement": best["agreement"], "val_kl": best["kl"], "val_images": int(len(val_x)),
            "target": float(target), "max_fp32_convs": int(max_fp32_convs), "max_mb": max_mb,
            "methods_tried": tried, "sensitivity": sensitivity, "history": history,
            "quantisations": n_evals, "seconds": round(time.perf_counter() - t0, 1)}


def _say_progress(on: bool, msg: str) -> None:
    if on:
        say(f"skinage export: {msg}")


def quantize_int8(fp32_path: str | os.PathLike, int8_path: str | os.PathLike, calib: np.ndarray,
                  info: dict | None = None, quantize_head: bool = False, calibration: str = "percentile",
                  fp32_stem_convs: int = 3, search_val: np.ndarray | None = None, search_target: float = 0.99,
                  search_max_fp32_convs: int = 6, search_max_mb: float | None = 4.0,
                  bias_correction: bool = True, reduce_range: bool = True, equalize: bool = True,
                  progress: bool = False) -> Path:
    """Static int8 quantisation (QDQ, per-channel weights) of an exported fp32 graph.

    Parameters
    ----------
    calib : uint8 array (N, H, W, 3)
        Calibration images (a few hundred at most), preprocessed like training.
    info : dict
        The fp32 metadata; stored again with ``precision='int8'``.
    quantize_head : bool
        Also quantise the pooled embedding, the classification head and the probability layer
        (default: they stay fp32 - they cost nothing, and one 8-bit scale over the whole embedding
        or over the probabilities is coarse).
    calibration : "percentile", "minmax" or "entropy"
        ONNX Runtime's calibration method (ignored with ``search_val``: the search picks it).
    fp32_stem_convs : int
        Keep the first N convolutions fp32 (MobileNetV2: the stem conv and the first inverted
        residual block, at 112x112). On the utkface-age run this raised int8/fp32 top-1 agreement
        from 86.9 % to 95.1 % and made int8 faster (3.2 -> 2.2 ms). 0 quantises them too. With
        ``search_val`` this is where the search starts.
    search_val : uint8 array (N, H, W, 3), optional
        Validation images: run :func:`search_int8` on them to choose the calibration method and
        the convolutions kept fp32 (until int8/fp32 agreement reaches ``search_target`` or
        ``search_max_fp32_convs`` convolutions are fp32, keeping the file under ``search_max_mb``).
        Never pass test images here.
    bias_correction : bool
        Correct the bias of each quantised convolution for the mean error of its int8 weights (see
        :func:`weight_error_shift`). On the utkface-age MobileNetV2 run (rank rule, default settings)
        it raised int8/fp32 agreement from 95.86 % to 98.38 % on validation, 94.95 % to 97.30 % on test
        (an earlier run of the recipe, on a CPU with VNNI), at no cost in latency or size. On a later run
        of the same recipe (7-bit weights, Intel Xeon with VNNI) it made no difference: KL from fp32 0.0019
        against 0.0020 on validation, the same 96.22 % test agreement (validation: 97.66 % against 98.92 %,
        near-ties going either way; see :func:`skinage.models.decode.near_ties`).
    reduce_range : bool
        Weights on 7 bits (-64..64), so that no x86 CPU saturates while multiplying them (see
        :class:`Int8Quantizer`); the file then computes the same on every CPU. False: full 8-bit weights.
    equalize : bool
        Scale the small channels of each depthwise convolution's input and of each linear bottleneck up to
        fill their tensor's uint8 range, and back out of the convolutions that read them
        (:func:`skinage.export.equalize.equalize`): the same fp32 function (unless a channel goes past 1.5
        times its largest value on ``calib``), finer int8 rounding of the activations, the same latency and size.
    progress : bool
        Say each stage on stderr (equalisation, bias correction, calibration with a bar, the search's steps).
    """
    fp32_path, int8_path = Path(fp32_path), Path(int8_path)
    if calibration not in CALIB_METHODS:
        raise ConfigError(f"calibration must be one of {', '.join(CALIB_METHODS)}, not {calibration!r}")
    if info is None:
        info = json.loads(ort_session(fp32_path).get_modelmeta().custom_metadata_map[METADATA_KEY])
    search = None
    with Int8Quantizer(fp32_path, calib, bias_correction=bias_correction, reduce_range=reduce_range,
                       equalize=equalize, progress=progress) as q:
        if search_val is not None and len(search_val):
            search = search_int8(q, search_val, target=search_target, max_fp32_convs=search_max_fp32_convs,
                                 max_mb=search_max_mb, start_stem_convs=fp32_stem_convs, progress=progress,
                                 ordinal=info.get("ordinal") or None)
            calibration, exclude = search["method"], ([] if quantize_head else q.head_nodes()) + search["exclude"]
            exclude = list(dict.fromkeys(exclude))
        else:
            exclude = ([] if quantize_head else q.head_nodes()) + q.stem_nodes(fp32_stem_convs)
        q.ranges(calibration)  # (its own progress bar)
        _say_progress(progress, f"int8: writing the QDQ model ({len(exclude)} nodes kept fp32)")
        tmp_out = q.quantize(q.dir / "int8.onnx", calibration, exclude)
        n_calib = len(q.calib)
        equalization = q.equalization
        int8_path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(int8_path) as f:
            f.write(tmp_out.read_bytes())
    quant = {"method": "onnxruntime quantize_static", "format": "QDQ", "per_channel": True,
             "weights": "int8", "activations": "uint8", "calibration_images": int(n_calib),
             "calibration_method": calibration, "fp32_nodes": len(exclude), "fp32_stem_convs": int(fp32_stem_convs),
             "bias_correction": bool(bias_correction), "reduce_range": bool(reduce_range),
             "weight_range": [-_weight_qmax(reduce_range), _weight_qmax(reduce_range)],
             "equalization": _equalization_summary(equalization) if equalize else None}
    if search is not None:
        quant["search"] = {k: search[k] for k in ("fp32_convs", "val_agreement", "val_kl", "val_images", "target",
                                                  "max_fp32_convs", "max_mb", "methods_tried", "sensitivity", "history",
                                                  "quantisations", "seconds")}
        quant["fp32_stem_convs"] = None  # the search chose the fp32 convolutions (listed in search.fp32_convs)
    info = dict(info, precision="int8", quantization=quant)
    _set_metadata(int8_path, info)
    return int8_path


def export_torchscript(model, meta: dict, path: str | os.PathLike) -> Path:
    """A traced TorchScript file with the same interface (uint8 NHWC in, probabilities out)."""
    import warnings

    import torch

    path = Path(path)
    shape = Preprocess.from_meta(meta).shape
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        ts = torch.jit.trace(PixelModel(model), torch.zeros(1, *shape, dtype=torch.uint8))
        ts = torch.jit.freeze(ts)
    info = onnx_metadata(meta, "fp32")
    tmp = path.with_name("." + path.name + ".tmp")
    torch.jit.save(ts, str(tmp), _extra_files={"skinage.json": json.dumps(info)})
    os.replace(tmp, path)
    return path


def _jit_load(path):
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated but still the phone format
        return torch.jit.load(str(path))


# --------------------------------------------------------------------------------------------
# data for calibration and checks

def find_manifest(run: Path, meta: dict) -> Path | None:
    """The manifest a run was trained on: ``args.yaml`` of the run, else the checkpoint metadata."""
    cands: list[Any] = []
    for d in (run, run.parent, run.parent.parent):
        args = d / "args.yaml"
        if args.is_file():
            try:
                import yaml

                data = yaml.safe_load(args.read_text(encoding="utf-8")) or {}
            except Exception:  # unreadable args.yaml: fall back to the checkpoint
                data = {}
            cands += [data.get("manifest"), data.get("data")]
            break
    cands += [meta.get("manifest"), (meta.get("data") or {}).get("manifest") if isinstance(meta.get("data"), dict) else None]
    for c in cands:
        if c and isinstance(c, str):
            p = Path(c)
            if not p.is_absolute() and not p.exists():
                p = run / c
            if p.is_file():
                return p
    return None


def _rows(manifest_path: Path, split: str, n: int, seed: int) -> tuple[list[tuple[str, tuple | None, int]], str]:
    from ..data.manifest import read_manifest

    df = read_manifest(manifest_path).df
    used = split
    sub = df[df["split"].astype(str) == split] if "split" in df.columns else df
    if len(sub) == 0 and split == "val":
        for alt in ("test", "train"):
            sub = df[df["split"].astype(str) == alt]
            if len(sub):
                used = alt
                say(f"skinage export: the manifest has no '{split}' images; using '{alt}' for the check")
                break
    if n and len(sub) > n:
        sub = sub.sample(n=n, random_state=seed)
    out = []
    for r in sub.itertuples(index=False):
        d = r._asdict()
        b = tuple(d.get(k) for k in ("x0", "y0", "x1", "y1"))
        if any(v is None or (isinstance(v, float) and math.isnan(v)) for v in b):
            b = None
        out.append((str(d["path"]), b, int(d["label"])))
    return out, used


def load_batch(rows: Sequence[tuple[str, tuple | None, int]], pre: Preprocess, desc: str = "load"
               ) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """Crops (uint8 N,H,W,3), labels, and the images that could not be read (with reasons)."""
    from ..data.crops import load_crops

    idx, x, errors = load_crops(pre, [(path, bbox) for path, bbox, _ in rows], progress=len(rows) >= 64, desc=desc)
    labels = np.asarray([rows[i][2] for i in idx], dtype=np.int64)
    return x, labels, [{"path": rows[i][0], "reason": str(e) or type(e).__name__} for i, e in errors]


# --------------------------------------------------------------------------------------------
# measuring

def _batched(fn: Callable[[np.ndarray], np.ndarray], x: np.ndarray, bs: int = 32) -> np.ndarray:
    return np.concatenate([fn(x[i:i + bs]) for i in range(0, len(x), bs)]) if len(x) else np.zeros((0, 0))


def pixel_noise(x: np.ndarray, level: int = 1, seed: int = 0) -> np.ndarray:
    """``x`` (uint8 pixels) with every value moved by a random integer in ``[-level, level]``, clipped to 0..255.

    The export's *noise floor*: how often the fp32 model itself changes class when each pixel moves by one
    level of 255 (less than a camera's own noise). An int8 file that agrees with fp32 about as
    often as fp32 agrees with itself under this noise is as close to fp32 as fp32 is to itself.

    >>> x = np.array([[0, 128, 255]], dtype=np.uint8)
    >>> y = pixel_noise(x, seed=1)
    >>> y.dtype, bool(np.abs(y.astype(int) - x).max() <= 1), int(y.min()) >= 0, int(y.max()) <= 255
    (dtype('uint8'), True, True, True)
    >>> bool((pixel_noise(x, level=0) == x).all())
    True
    """
    rng = np.random.default_rng(seed)
    noise = rng.integers(-level, level + 1, size=x.shape, dtype=np.int16)
    return np.clip(x.astype(np.int16) + noise, 0, 255).astype(np.uint8)


def time_alternating(fns: dict[str, Callable[[], Any]], repeats: int = 50, warmup: int = 5,
                     block: int = 1) -> dict[str, dict]:
    """Time several callables side by side, alternating each round; median and quartiles in ms.

    ``block=1``: one call of each per round, so every call follows another model's (its weights and
    buffers have left the caches: a *cold* latency). ``block=k > 1``: each round runs each callable
    ``k`` times in a row and times the last ``k - 1`` (a *warm*, steady-state latency, as for an app
    running the same model on every frame); the rounds still alternate, so drift of the machine
    affects all alike.

    >>> t = time_alternating({"a": lambda: sum(range(100)), "b": lambda: None}, repeats=3, warmup=1, block=2)
    >>> t["a"]["repeats"], t["a"]["block"]
    (3, 2)
    """
    for _ in range(max(0, warmup)):
        for f in fns.values():
            f()
    block = max(1, int(block))
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(max(1, repeats)):
        for k, f in fns.items():
            for j in range(block):
                t = time.perf_counter()
                f()
                if block == 1 or j > 0:
                    times[k].append((time.perf_counter() - t) * 1000.0)
    return {k: {"median_ms": float(np.median(v)), "p25_ms": float(np.percentile(v, 25)),
                "p75_ms": float(np.percentile(v, 75)), "repeats": int(repeats), "block": block, "calls": len(v)}
            for k, v in times.items()}


def torch_one_thread_fn(model, x_uint8: np.ndarray) -> Callable[[], Any]:
    """A callable running eager PyTorch on one uint8 NHWC image (call under torch.set_num_threads(1))."""
    import torch

    wrapper = PixelModel(model)
    t = torch.from_numpy(np.ascontiguousarray(x_uint8))

    def f():
        with torch.inference_mode():
            return wrapper(t)

    return f


def _fmt_size(n: int | None) -> str:
    return "" if n is None else f"{n / 1e6:.2f} MB"


def _fmt(v, pct=False, nd=4):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{100 * v:.1f} %" if pct else (f"{v:.{nd}g}" if isinstance(v, float) else str(v))


def results_table(rows: list[dict]) -> str:
    """A markdown table of the export results."""
    head = ["format", "file", "size", "latency 1 img, 1 thread", "agreement", "compared with",
            "max |dp|", "accuracy"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        lat = "-" if r.get("latency_ms") is None else f"{r['latency_ms']:.2f} ms"
        lines.append("| " + " | ".join([
            r["format"], r.get("file") or "-", _fmt_size(r.get("size_bytes")) or "-", lat,
            _fmt(r.get("agreement"), pct=True), r.get("reference") or "-", _fmt(r.get("max_abs_prob_diff"), nd=3),
            _fmt(r.get("accuracy"), pct=True)]) + " |")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# the command

def _resolve(cfg: ExportConfig):
    from ..models.checkpoint import load_checkpoint, resolve_checkpoint

    if not cfg.run:
        raise ConfigError("no RUN given: name a run folder (runs/<project>/<name>) or a checkpoint")
    src = Path(cfg.run)
    wpath = resolve_checkpoint(src, cfg.which)
    model, meta = load_checkpoint(wpath, tta=cfg.tta)
    run_dir = src if src.is_dir() else (wpath.parent.parent if wpath.parent.name == "weights" else wpath.parent)
    out = Path(cfg.out) if cfg.out else run_dir / "export"
    return model, meta, run_dir, out


def export(run: str | os.PathLike, **options) -> dict:
    """Export a run (or checkpoint) to ONNX (+ int8, + TorchScript) and check parity.

    Parameters
    ----------
    run : str or path
        Run folder or checkpoint.
    **options
        The flags of ``skinage export`` (see :class:`ExportConfig`): ``format``, ``int8``,
        ``opset``, ``out``, ``manifest``, ``calib_images``, ``check_images``, ``repeats``, ...

    Returns
    -------
    dict
        What ``export_results.json`` holds: ``files``, ``rows`` (one per format: file, size,
        latency, agreement, max probability difference, accuracy), check details.
    """
    cfg = build_config(ExportConfig, options, run=str(run))
    return _export(cfg)


def _export(cfg: ExportConfig) -> dict:
    import torch

    model, meta, run_dir, out = _resolve(cfg)
    pre = Preprocess.from_meta(meta)
    classes = list(meta["classes"])
    out.mkdir(parents=True, exist_ok=True)
    say(f"skinage export: {meta.get('model')} ({len(classes)} classes, {pre.describe()}) from {meta['checkpoint']}"
        + (f", test-time augmentation {meta['tta']} in the graph" if meta.get("tta") else ""))

    # 1. fp32 ONNX
    fp32_path = export_onnx(model, meta, out / "model.onnx", cfg.opset, run=str(run_dir))
    say(f"skinage export: wrote {fp32_path} ({fp32_path.stat().st_size / 1e6:.2f} MB)")
    info = onnx_metadata(meta, "fp32", str(run_dir))

    # data: the run's manifest
    manifest = Path(cfg.manifest) if cfg.manifest else find_manifest(run_dir, meta)
    calib_x = check_x = None
    check_y = np.zeros(0, np.int64)
    skipped: list[dict] = []
    check_split = None
    search_x = None
    if cfg.int8_search:
        cfg.int8 = True
    if cfg.int8_search and (manifest is None or not Path(manifest).is_file()):
        raise ConfigError("--int8-search chooses its settings on the run's validation images: give --manifest")
    if manifest is None or not Path(manifest).is_file():
        say("skinage export: warning: the run's manifest was not found (give --manifest): the parity check "
            "uses 64 random images, so agreement is measured but accuracy is not")
        rng = np.random.default_rng(cfg.seed)
        check_x = rng.integers(0, 256, (64, *pre.shape), dtype=np.uint8)
        check_y = None
        calib_x = check_x
    else:
        rows, check_split = _rows(Path(manifest), cfg.check_split, cfg.check_images, cfg.seed)
        check_x, check_y, bad = load_batch(rows, pre, f"{check_split} images")
        skipped += [dict(b, use="check") for b in bad]
        if cfg.int8:
            crows, _ = _rows(Path(manifest), "train", cfg.calib_images, cfg.seed)
            calib_x, _, bad = load_batch(crows, pre, "calibration images")
            skipped += [dict(b, use="calibration") for b in bad]
            if len(calib_x) == 0:
                raise ConfigError(f"no readable training images in {manifest} to calibrate int8 with")
        if cfg.int8_search:
            if check_split == "val" and not cfg.check_images:
                search_x = check_x
            else:
                srows, used = _rows(Path(manifest), "val", 0, cfg.seed)
                if used != "val":
                    raise ConfigError(f"--int8-search needs validation images; {manifest} has no 'val' split")
                search_x, _, bad = load_batch(srows, pre, "val images (int8 search)")
                skipped += [dict(b, use="int8 search") for b in bad]
            if len(search_x) == 0:
                raise ConfigError(f"no readable val images in {manifest} for --int8-search")
        if len(check_x) == 0:
            raise ConfigError(f"no readable {check_split} images in {manifest} for the parity check")
        for b in skipped:
            say(f"skinage export: skipped unreadable image {b['path']}: {b['reason']}")

    files = {"onnx_fp32": str(fp32_path)}
    int8_path = ts_path = None
    if cfg.int8:
        say(f"skinage export: quantising to int8 with {len(calib_x)} calibration images")
        int8_path = quantize_int8(fp32_path, out / "model.int8.onnx", calib_x, info, calibration=cfg.calibration,
                                  fp32_stem_convs=cfg.fp32_stem_convs, search_val=search_x,
                                  search_target=cfg.int8_search_target, search_max_fp32_convs=cfg.int8_search_budget,
                                  search_max_mb=cfg.int8_search_max_mb, bias_correction=cfg.int8_bias_correction,
                                  reduce_range=cfg.int8_reduce_range, equalize=cfg.int8_equalize, progress=True)
        files["onnx_int8"] = str(int8_path)
        say(f"skinage export: wrote {int8_path} ({int8_path.stat().st_size / 1e6:.2f} MB)")
    if cfg.format in ("torchscript", "all"):
        ts_path = export_torchscript(model, meta, out / "model.ts.pt")
        files["torchscript"] = str(ts_path)

    # 2. parity
    old_threads = torch.get_num_threads()
    wrapper = PixelModel(model)

    def torch_probs(x):
        with torch.inference_mode():
            return wrapper(torch.from_numpy(x)).numpy()

    p_torch = _batched(torch_probs, check_x)
    sess_fp32 = ort_session(fp32_path, 0)
    p_fp32 = _batched(lambda x: sess_fp32.run(None, {INPUT_NAME: x})[0], check_x)
    # the model's own probability function, as a check of the export wrapper
    with torch.inference_mode():
        p_model = _batched(lambda x: model.predict_proba(torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255.0)
                           .numpy(), check_x)
    if np.abs(p_model - p_torch).max() > 1e-5:
        say("skinage export: warning: the export wrapper's probabilities differ from model.predict_proba")

    rule = meta.get("ordinal") or None

    def acc(p):
        if check_y is None or len(p) == 0 or not (check_y >= 0).any():
            return None
        known = check_y >= 0  # -1: unknown label
        return float((predict_labels(p[known], rule) == check_y[known]).mean())

    def agree(a, b):  # top-1: the class each predicts by the head's own rule
        return float((predict_labels(a, rule) == predict_labels(b, rule)).mean())

    row_torch = {"format": "pytorch fp32", "file": Path(meta["checkpoint"]).name,
                 "size_bytes": Path(meta["checkpoint"]).stat().st_size, "agreement": None, "reference": None,
                 "max_abs_prob_diff": None, "accuracy": acc(p_torch)}
    row_fp32 = {"format": "onnx fp32", "file": fp32_path.name, "size_bytes": fp32_path.stat().st_size,
                "agreement": agree(p_fp32, p_torch), "reference": "pytorch fp32",
                "max_abs_prob_diff": float(np.abs(p_fp32 - p_torch).max()), "accuracy": acc(p_fp32)}
    # the noise floor: fp32 against itself when every pixel moves by one level (see pixel_noise)
    p_noise = _batched(lambda x: sess_fp32.run(None, {INPUT_NAME: x})[0], pixel_noise(check_x, 1, cfg.seed))
    row_noise = {"format": "onnx fp32, pixels +-1", "file": fp32_path.name, "size_bytes": None,
                 "agreement": agree(p_noise, p_fp32), "reference": "onnx fp32",
                 "max_abs_prob_diff": float(np.abs(p_noise - p_fp32).max()), "accuracy": acc(p_noise)}
    rows_out = [row_torch, row_fp32, row_noise]
    sess_int8 = None
    if int8_path is not None:
        sess_int8 = ort_session(int8_path, 0)
        p_int8 = _batched(lambda x: sess_int8.run(None, {INPUT_NAME: x})[0], check_x)
        a8, a32 = acc(p_int8), acc(p_fp32)
        # where int8 reads a class differently: how near a tie those images were in fp32 (decision_margin), and
        # how many of the checked images are that near - agreement over few images is a draw among them
        worst, share = near_ties(p_fp32, p_int8, rule)
        rows_out.append({"format": "onnx int8", "file": int8_path.name, "size_bytes": int8_path.stat().st_size,
                         "agreement": agree(p_int8, p_fp32), "reference": "onnx fp32",
                         "max_abs_prob_diff": float(np.abs(p_int8 - p_fp32).max()), "accuracy": a8,
                         "accuracy_change": None if a8 is None else a8 - a32,
                         "disagreement_max_margin": worst,
                         "near_tie_share": share})
    if ts_path is not None:
        ts = _jit_load(ts_path)
        with torch.inference_mode():
            p_ts = _batched(lambda x: ts(torch.from_numpy(x)).numpy(), check_x)
        rows_out.append({"format": "torchscript fp32", "file": ts_path.name, "size_bytes": ts_path.stat().st_size,
                         "agreement": agree(p_ts, p_torch), "reference": "pytorch fp32",
                         "max_abs_prob_diff": float(np.abs(p_ts - p_torch).max()), "accuracy": acc(p_ts)})

    # 3. latency: one image, one thread, alternating rounds
    one = np.ascontiguousarray(check_x[:1])
    fns: dict[str, Callable[[], Any]] = {}
    torch.set_num_threads(1)
    try:
        fns["pytorch fp32"] = torch_one_thread_fn(model, one)
        s1 = ort_session(fp32_path, 1)
        fns["onnx fp32"] = lambda: s1.run(None, {INPUT_NAME: one})
        if int8_path is not None:
            s8 = ort_session(int8_path, 1)
            fns["onnx int8"] = lambda: s8.run(None, {INPUT_NAME: one})
        if ts_path is not None:
            ts1 = _jit_load(ts_path)
            tone = torch.from_numpy(one)

            def run_ts():
                with torch.inference_mode():
                    return ts1(tone)

            fns["torchscript fp32"] = run_ts
        timing = time_alternating(fns, cfg.repeats)
    finally:
        torch.set_num_threads(old_threads)
    for r in rows_out:
        t = timing.get(r["format"])
        r["latency_ms"] = None if t is None else t["median_ms"]

    result = {
        "run": str(run_dir), "checkpoint": meta["checkpoint"], "model": meta.get("model"), "classes": classes,
        "preprocessing": pre.to_meta(), "input": info["input"], "output": info["output"], "files": files,
        "manifest": str(manifest) if manifest else None, "check_split": check_split,
        "check_images": int(len(check_x)), "check_labels": check_y is not None,
        "calibration_images": None if calib_x is None or int8_path is None else int(len(calib_x)),
        "int8_quantization": None if int8_path is None else read_onnx_metadata(int8_path).get("quantization"),
        "skipped_images": skipped, "timing": timing, "rows": rows_out, "noise_floor_agreement": row_noise["agreement"],
        "options": config_to_dict(cfg), "skinage_version": __version__,
        "onnxruntime_version": _version("onnxruntime"), "torch_version": torch.__version__,
    }
    table = results_table(rows_out)
    where = f"{len(check_x)} {check_split or 'random'} images" + ("" if check_y is not None else " (no labels)")
    md = (f"# Export of {meta.get('model')} ({run_dir})\n\n"
          f"Input `{INPUT_NAME}`: uint8 RGB (N, {pre.size}, {pre.size}, 3); output `{OUTPUT_NAME}`: "
          f"probabilities over {classes}.\n\nParity on {where}; latency: median of {cfg.repeats} runs of one image on "
          f"one thread, formats alternating. The row *onnx fp32, pixels +-1* is the fp32 file on the same images with "
          f"every pixel moved by a random -1, 0 or +1 level: the model's own noise floor, for reading the int8 "
          f"agreement.\n\n{table}\n")
    r8 = next((r for r in rows_out if r["format"] == "onnx int8"), None)
    ties = None  # one sentence for the saved Markdown and the console
    if r8 is not None and r8["disagreement_max_margin"] is not None:
        ties = (f"the images int8 reads differently were near-ties in fp32: the largest decision margin (the "
                f"probability that must move for the class to change) among them was {r8['disagreement_max_margin']:.3f}, "
                f"and {100 * r8['near_tie_share']:.1f} % of the checked images have a margin that small")
        md += f"\n{ties[0].upper()}{ties[1:]}.\n"
    if skipped:
        md += f"\n{len(skipped)} unreadable images were skipped (listed in export_results.json).\n"
    atomic_write_json(out / "export_results.json", result)
    atomic_write_text(out / "export_results.md", md)
    print(table)
    say(f"skinage export: parity on {where}; results in {out / 'export_results.md'}")
    if r8 is not None:
        say(f"skinage export: int8 agrees with fp32 on {100 * r8['agreement']:.1f} % of the images; the fp32 model agrees "
            f"with itself on {100 * row_noise['agreement']:.1f} % when every pixel moves by one level (its noise floor)")
        if ties:
            say(f"skinage export: {ties}")
    if row_fp32["agreement"] < 1.0:
        say(f"skinage export: WARNING: ONNX fp32 agrees with PyTorch on only {100 * row_fp32['agreement']:.2f} % "
            f"of the images")
    return result


def _version(mod: str) -> str | None:
    try:
        return __import__(mod).__version__
    except Exception:  # pragma: no cover
        return None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = ("The ONNX input is 'pixels': uint8 RGB (N, H, W, 3) at the model's input size; the output\n"
                     "'probs' holds class probabilities. Files go to <run>/export/: model.onnx, model.int8.onnx,\n"
                     "export_results.json/.md.\n\n"
                     "example:  skinage export runs/utk/exp --int8")
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    add_config_arguments(parser, ExportConfig)


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(ExportConfig, args)
    res = _export(cfg)
    fp32 = next(r for r in res["rows"] if r["format"] == "onnx fp32")
    # a near-tie may flip on one image in thousands; a real mismatch shows in the probabilities
    return 0 if fp32["max_abs_prob_diff"] <= 1e-3 and fp32["agreement"] >= 0.99 else 1
