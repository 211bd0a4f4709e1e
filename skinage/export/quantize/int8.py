"""The int8 file: :func:`quantize_int8` turns an exported fp32 graph into ``model.int8.onnx`` (the
quantiser, optionally the search, and the metadata saying how it was made)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ...runtime.onnx_io import read_onnx_metadata
from ...utils import atomic_write
from ..graph import write_metadata
from .bias import weight_qmax
from .equalize import equalization_summary
from .quantizer import Int8Quantizer, check_method, say_stage
from .search import search_int8

__all__ = ["quantize_int8"]

_SEARCH_KEYS = ("fp32_convs", "val_agreement", "val_kl", "val_images", "target", "max_fp32_convs", "max_mb",
                "methods_tried", "sensitivity", "history", "quantisations", "seconds")


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
        The fp32 metadata; stored again with ``precision='int8'`` and a ``quantization`` block.
    quantize_head : bool
        Also quantise the pooled embedding, the classification head and the probability layer
        (default: they stay fp32 - they cost nothing, and one 8-bit scale over the whole embedding
        or over the probabilities is coarse).
    calibration : "percentile", "minmax" or "entropy"
        ONNX Runtime's calibration method (ignored with ``search_val``: the search picks it).
    fp32_stem_convs : int
        Keep the first N convolutions fp32 (MobileNetV2: the stem conv and the first inverted
        residual block, at 112x112): closer to fp32, and often faster. 0 quantises them too. With
        ``search_val`` this is where the search starts.
    search_val : uint8 array (N, H, W, 3), optional
        Validation images: run :func:`~skinage.export.quantize.search.search_int8` on them to choose the
        calibration method and the convolutions kept fp32 (until int8/fp32 agreement reaches ``search_target``
        or ``search_max_fp32_convs`` convolutions are fp32, keeping the file under ``search_max_mb``).
        Never pass test images here.
    bias_correction : bool
        Correct the bias of each quantised convolution for the mean error of its int8 weights (see
        :func:`~skinage.export.quantize.bias.weight_error_shift`); no cost in latency or size.
    reduce_range : bool
        Weights on 7 bits (-64..64), so that no x86 CPU saturates while multiplying them (see
        :class:`~skinage.export.quantize.quantizer.Int8Quantizer`); the file then computes the same on every
        CPU. False: full 8-bit weights.
    equalize : bool
        Scale the small channels of each depthwise convolution's input and of each linear bottleneck up to
        fill their tensor's uint8 range, and back out of the convolutions that read them
        (:func:`skinage.export.quantize.equalize.equalize`): the same fp32 function (unless a channel goes past
        1.5 times its largest value on ``calib``), finer int8 rounding of the activations, the same latency and
        size.
    progress : bool
        Say each stage on stderr (equalisation, bias correction, calibration with a bar, the search's steps).

    What these options measured on a trained run: ``docs/results/2026-12-int8.md``.
    """
    fp32_path, int8_path = Path(fp32_path), Path(int8_path)
    check_method(calibration)
    if info is None:
        info = read_onnx_metadata(fp32_path)
    search = None
    with Int8Quantizer(fp32_path, calib, bias_correction=bias_correction, reduce_range=reduce_range,
                       equalize=equalize, progress=progress) as q:
        exclude = [] if quantize_head else q.head_nodes()
        if search_val is not None and len(search_val):
            search = search_int8(q, search_val, target=search_target, max_fp32_convs=search_max_fp32_convs,
                                 max_mb=search_max_mb, start_stem_convs=fp32_stem_convs, progress=progress,
                                 ordinal=info.get("ordinal") or None)
            calibration, exclude = search["method"], list(dict.fromkeys(exclude + search["exclude"]))
        else:
            exclude = exclude + q.stem_nodes(fp32_stem_convs)
        q.ranges(calibration)  # (its own progress bar)
        say_stage(progress, f"int8: writing the QDQ model ({len(exclude)} nodes kept fp32)")
        tmp_out = q.quantize(q.dir / "int8.onnx", calibration, exclude)
        n_calib, equalization = len(q.calib), q.equalization
        int8_path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(int8_path) as f:
            f.write(tmp_out.read_bytes())
    quant = {"method": "onnxruntime quantize_static", "format": "QDQ", "per_channel": True,
             "weights": "int8", "activations": "uint8", "calibration_images": int(n_calib),
             "calibration_method": calibration, "fp32_nodes": len(exclude), "fp32_stem_convs": int(fp32_stem_convs),
             "bias_correction": bool(bias_correction), "reduce_range": bool(reduce_range),
             "weight_range": [-weight_qmax(reduce_range), weight_qmax(reduce_range)],
             "equalization": equalization_summary(equalization) if equalize else None}
    if search is not None:
        quant["search"] = {k: search[k] for k in _SEARCH_KEYS}
        quant["fp32_stem_convs"] = None  # the search chose the fp32 convolutions (listed in search.fp32_convs)
    write_metadata(int8_path, dict(info, precision="int8", quantization=quant))
    return int8_path
