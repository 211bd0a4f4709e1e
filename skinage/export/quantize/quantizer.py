"""The int8 quantiser: calibrate once, quantise many times (:class:`Int8Quantizer`), with ONNX Runtime's
static QDQ quantisation (per-channel int8 weights, uint8 activations), and which nodes stay fp32.

Before calibration the graph is equalised (:mod:`skinage.export.quantize.equalize`); before each
quantisation the biases absorb the int8 weights' mean error (:mod:`skinage.export.quantize.bias`).
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ...config import ConfigError
from ...runtime.onnx_io import INPUT_NAME
from ...utils import say
from ..graph import graph_index
from .bias import bias_shifts, weight_qmax, write_bias_corrected
from .equalize import equalization_summary, equalize

__all__ = ["Int8Quantizer", "CALIB_METHODS", "CALIB_STRIDE", "EQUALIZE_IMAGES", "head_nodes", "stem_nodes",
           "say_stage"]

CALIB_METHODS = ("percentile", "minmax", "entropy")
CALIB_STRIDE = 8  # calibration images held in memory at once by ONNX Runtime's calibrator
EQUALIZE_IMAGES = 200  # calibration images whose per-channel maxima set the equalisation factors


def say_stage(on: bool, msg: str) -> None:
    """Say one stage of the int8 export on stderr (``skinage export: ...``) when ``on``."""
    if on:
        say(f"skinage export: {msg}")


def stem_nodes(model_proto, n_convs: int) -> list[str]:
    """Names of the nodes up to and including the ``n_convs``-th convolution (the stem)."""
    out, seen = [], 0
    if n_convs <= 0:
        return out
    for n in model_proto.graph.node:
        out.append(n.name)
        if n.op_type == "Conv":
            seen += 1
            if seen >= n_convs:
                break
    return [x for x in out if x]


def head_nodes(model_proto) -> list[str]:
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


def ort_method(method: str):
    """ONNX Runtime's ``CalibrationMethod`` for ``percentile``, ``minmax`` or ``entropy``."""
    from onnxruntime.quantization import CalibrationMethod

    return {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
            "entropy": CalibrationMethod.Entropy}[method]


def check_method(method: str) -> None:
    """A :class:`~skinage.config.ConfigError` unless ``method`` is one of :data:`CALIB_METHODS`."""
    if method not in CALIB_METHODS:
        raise ConfigError(f"calibration must be one of {', '.join(CALIB_METHODS)}, not {method!r}")


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
    quantised absorbs the mean error its int8 weights make (see
    :func:`skinage.export.quantize.bias.weight_error_shift`).

    ``equalize`` (default): before calibration, the small channels of depthwise convolutions' inputs and of
    the linear bottlenecks are scaled up to fill their tensor's uint8 range, and back out of the convolutions
    that read them (:func:`skinage.export.quantize.equalize.equalize`); :attr:`equalization` reports what moved.
    :attr:`ref` is the pre-processed graph *before* equalisation, the fp32 reference to compare with.

    ``reduce_range`` (default): weights on 7 bits (-64..64), ONNX Runtime's ``reduce_range``. x86 CPUs
    without VNNI multiply u8 activations by s8 weights with ``vpmaddubsw``, which sums two products into
    16 bits and saturates when both are large (255 * 127 * 2 > 32767); with 7-bit weights it cannot
    (255 * 64 * 2 < 32767), so the file computes the same on every CPU.

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
            self._equalize(calib)
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
            say_stage(self.progress, f"int8: bias correction (one fp32 pass over {len(self.calib)} images)")
            self.bias_shift = bias_shifts(self.proto, self.calib, qmax=weight_qmax(self.reduce_range))

    def _equalize(self, calib: np.ndarray) -> None:
        import onnx

        t0 = time.perf_counter()
        n = min(len(calib), EQUALIZE_IMAGES)
        say_stage(self.progress, f"int8: equalising activations (one fp32 pass over {n} images)")
        equalized, self.equalization = equalize(self.proto, calib[:EQUALIZE_IMAGES])
        e = equalization_summary(self.equalization)
        say_stage(self.progress, f"int8: scaled {e['channels_scaled']} of {e['channels']} channels in "
                                 f"{e['depthwise_inputs']} depthwise inputs and {e['streams']} streams "
                                 f"({time.perf_counter() - t0:.0f} s)")
        if self.equalization:  # else keep the graph as it was (equalize may have named unnamed nodes)
            self.proto = equalized
            self.pre = self.dir / "equalized.onnx"
            onnx.save(self.proto, str(self.pre))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        self._td.cleanup()

    def head_nodes(self) -> list[str]:
        return head_nodes(self.proto)

    def stem_nodes(self, n_convs: int) -> list[str]:
        return stem_nodes(self.proto, n_convs)

    def ranges(self, method: str) -> Path:
        """The activation ranges of ``method`` (computed on first use), as an ORT calibration cache."""
        from onnxruntime.quantization import create_calibrator, save_tensors_data
        from tqdm import tqdm

        check_method(method)
        if method in self._ranges:
            return self._ranges[method]
        calib = self.calib
        calibrator = create_calibrator(self.pre, [], augmented_model_path=str(self.dir / f"aug-{method}.onnx"),
                                       calibrate_method=ort_method(method), extra_options={"symmetric": False})
        reader = _reader(calib)
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
            write_bias_corrected(self.proto, self.bias_shift, set(exclude), src)
        log = logging.getLogger()
        level = log.level
        log.setLevel(logging.ERROR)  # ORT warns about every node it leaves alone
        try:
            quantize_static(str(src), str(out), None, quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, reduce_range=self.reduce_range,
                            nodes_to_exclude=list(exclude), calibrate_method=ort_method(method),
                            extra_options={"CalibTensorRangeSymmetric": False}, calibration_cache_path=str(cache))
        finally:
            log.setLevel(level)
        return Path(out)


def _reader(calib: np.ndarray):
    """An ONNX Runtime calibration data reader over ``calib``, one image at a time, in ranges set by ``set_range``."""
    from onnxruntime.quantization import CalibrationDataReader

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

    return _Reader()
