"""Bias correction of int8 weights: each quantised convolution's bias absorbs the mean output error its
rounded weights make (Nagel et al. 2019, "Data-free quantization through weight equalization and bias
correction", section 4.2, with the input means measured on calibration images).

:func:`weight_error_shift` is the arithmetic (worked by hand in its example); :func:`bias_shifts` measures the
input means of every convolution in one fp32 pass and gives the corrected biases; :func:`write_bias_corrected`
writes the graph with them for the convolutions that will be quantised.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .equalize import intermediate_batches

__all__ = ["weight_qmax", "weight_error_shift", "bias_shifts", "write_bias_corrected"]


def weight_qmax(reduce_range: bool) -> int:
    """The largest int8 weight ONNX Runtime writes: 127, or 64 with ``reduce_range`` (7-bit weights).

    >>> weight_qmax(False), weight_qmax(True)
    (127, 64)
    """
    return 64 if reduce_range else 127


def weight_error_shift(w: np.ndarray, mean_in: np.ndarray, group: int = 1, qmax: int = 127) -> np.ndarray:
    """The mean change of a convolution's output channels when its weights ``w`` (Cout, Cin/group, kh, kw)
    are rounded to int8 the way ONNX Runtime's per-channel symmetric quantiser does (scale = max |w| / ``qmax``
    per output channel: 127, or 64 with ``reduce_range``), for inputs whose per-channel mean is ``mean_in`` (Cin,):
    ``sum (w_q - w) * E[x]``.

    Subtracting it from the bias is the bias correction: the rounding of the weights no longer shifts the
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


def bias_shifts(proto, calib: np.ndarray, batch: int = 16, qmax: int = 127) -> dict[str, tuple[str, np.ndarray]]:
    """``{conv: (bias initializer, corrected bias)}`` for every convolution of ``proto`` with constant weights and
    bias, from the per-channel means of its input over ``calib`` (one fp32 pass with those inputs as extra
    outputs)."""
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


def write_bias_corrected(proto, shifts: dict[str, tuple[str, np.ndarray]], exclude: set, path: Path) -> None:
    """``proto`` with the corrected biases of the convolutions that will be quantised (not in ``exclude``),
    saved at ``path``; ``proto`` itself is left alone."""
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
