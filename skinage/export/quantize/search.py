"""``skinage export --int8-search``: choose, on validation images, the calibration method and the
convolution blocks an int8 file keeps fp32 (:func:`search_int8`)."""

from __future__ import annotations

import time
from typing import Sequence

import numpy as np

from ...models.decode import predict_labels
from ...runtime.onnx_io import INPUT_NAME, ort_session
from ..parity import batched, mean_kl
from .quantizer import Int8Quantizer, say_stage

__all__ = ["search_int8", "conv_units", "with_activations"]


def conv_units(model_proto, max_convs: int = 4) -> dict[str, list[str]]:
    """Convolutions grouped into units the int8 search keeps fp32 together: the shallowest name
    scope holding at most ``max_convs`` convolutions (MobileNetV2: one inverted-residual block;
    a nameless convolution is a unit of its own). Keeping a whole block fp32 removes the Q/DQ
    pairs inside it; keeping a single convolution of a block fp32 can *raise* the error, as the
    quantisation errors of neighbouring layers partly cancel."""
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


def with_activations(model_proto, convs: Sequence[str]) -> list[str]:
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


class _Trials:
    """Quantise ``q`` with a calibration method and a set of fp32 nodes, and score the file on ``val_x`` against
    the fp32 reference ``ref`` (probabilities; labels read by ``ordinal``'s rule)."""

    def __init__(self, q: Int8Quantizer, val_x: np.ndarray, ref: np.ndarray, ordinal: str | None):
        self.q, self.val_x, self.ref, self.ordinal = q, val_x, ref, ordinal
        self.ref_labels = predict_labels(ref, ordinal)
        self.n = 0

    def __call__(self, method: str, exclude: Sequence[str]) -> dict:
        self.n += 1
        path = self.q.quantize(self.q.dir / "candidate.onnx", method, exclude)
        s = ort_session(path, 1)
        p = batched(lambda b: s.run(None, {INPUT_NAME: b})[0], self.val_x)
        return {"agreement": float((predict_labels(p, self.ordinal) == self.ref_labels).mean()),
                "kl": mean_kl(p, self.ref), "size_bytes": path.stat().st_size}


def _sensitivity(q: Int8Quantizer, trial: _Trials, method: str, units: dict, chosen: list,
                 max_fp32_convs: int) -> dict[str, float]:
    """Each unit quantised *alone* (everything else fp32): its KL from fp32, one quantisation per unit."""
    names = [n.name for n in q.proto.graph.node]
    out: dict[str, float] = {}
    for u, cs in units.items():
        if set(cs) <= set(chosen) or len(set(chosen) | set(cs)) > max_fp32_convs:
            continue
        # quantise this unit only: its nodes (a name scope, or one convolution and its activation)
        only = set([n for n in names if n.startswith(u)] if u.endswith("/") else with_activations(q.proto, [u]))
        out[u] = trial(method, [n for n in names if n and n not in only])["kl"]
    return out


def search_int8(q: Int8Quantizer, val_x: np.ndarray, target: float = 0.99, max_fp32_convs: int = 6,
                max_mb: float | None = 4.0, methods: Sequence[str] = ("entropy", "percentile"),
                start_stem_convs: int = 3, progress: bool = True, ordinal: str | None = None) -> dict:
    """Choose, on validation images only, the calibration method and the convolutions kept fp32.

    1. Each calibration method in ``methods`` is tried with the head and the first
       ``start_stem_convs`` convolutions fp32; the one whose int8 probabilities are closest to
       fp32 (mean KL divergence over ``val_x``) is kept.
    2. Sensitivity: each unit (a block of convolutions, see :func:`conv_units`) is quantised
       *alone*, everything else fp32, and its KL from fp32 measured - one quantisation per unit.
    3. The most sensitive units are kept fp32 one after the other, each checked on all of
       ``val_x`` and kept only if it lowered the KL, while int8/fp32 agreement is below ``target``,
       at most ``max_fp32_convs`` convolutions are fp32 and the int8 file stays under ``max_mb``
       (fp32 weights are 4x larger: one late MobileNetV2 block is ~1 MB).

    KL, not agreement, ranks: agreement over a few hundred images moves by whole images on
    near-ties and picks noise. Each fp32 unit costs latency (early high-resolution blocks most),
    hence the small default budget.

    Returns the chosen ``method``, ``fp32_convs``, the ``exclude`` list for
    :meth:`Int8Quantizer.quantize`, the validation agreement / KL reached, the unit
    ``sensitivity`` and the ``history`` of accepted steps.
    """
    t0 = time.perf_counter()
    sess32 = ort_session(q.ref, 1)  # the graph before equalisation: what int8 must agree with
    trial = _Trials(q, val_x, batched(lambda x: sess32.run(None, {INPUT_NAME: x})[0], val_x), ordinal)
    stem_nodes = q.stem_nodes(start_stem_convs)
    base = q.head_nodes() + stem_nodes  # as without the search: the stem with the input scaling before it
    units = conv_units(q.proto)
    all_convs = {c for cs in units.values() for c in cs}

    def _exclude(convs):
        return list(dict.fromkeys(base + with_activations(q.proto, convs)))

    stem = [c for c in stem_nodes if c in all_convs]
    tried = {m: trial(m, _exclude(stem)) for m in methods}
    for m, r in tried.items():
        say_stage(progress, f"int8 search: {m} calibration, {len(stem)} stem convolutions fp32: "
                            f"val agreement {100 * r['agreement']:.2f} %, KL {r['kl']:.5f}")
    method = min(tried, key=lambda m: tried[m]["kl"])
    chosen, best = list(stem), tried[method]
    history = [{"fp32_convs": len(chosen), "added": None, **best}]
    sensitivity: dict[str, float] = {}
    if best["agreement"] < target:
        sensitivity = _sensitivity(q, trial, method, units, chosen, max_fp32_convs)
        for u in sorted(sensitivity, key=sensitivity.get, reverse=True):
            if best["agreement"] >= target:
                break
            step = chosen + [c for c in units[u] if c not in chosen]
            if len(step) > max_fp32_convs:
                continue
            r = trial(method, _exclude(step))
            ok = r["kl"] < best["kl"] and not (max_mb and r["size_bytes"] > max_mb * 1e6)
            say_stage(progress, f"int8 search: {u} fp32 too ({len(step)} convolutions): val agreement "
                                f"{100 * r['agreement']:.2f} %, KL {r['kl']:.5f}, "
                                f"{r['size_bytes'] / 1e6:.2f} MB: {'kept' if ok else 'dropped'}")
            if ok:
                chosen, best = step, r
                history.append({"fp32_convs": len(chosen), "added": u, **best})
    return {"method": method, "fp32_convs": chosen, "exclude": _exclude(chosen),
            "val_agreement": best["agreement"], "val_kl": best["kl"], "val_images": int(len(val_x)),
            "target": float(target), "max_fp32_convs": int(max_fp32_convs), "max_mb": max_mb,
            "methods_tried": tried, "sensitivity": sensitivity, "history": history,
            "quantisations": trial.n, "seconds": round(time.perf_counter() - t0, 1)}
