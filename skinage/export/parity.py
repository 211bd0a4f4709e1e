"""Parity and timing of exported files: how far each is from its reference (top-1 agreement by the head's
own rule, largest probability difference, accuracy), the model's own noise floor (:func:`pixel_noise`),
how near a tie int8's disagreements were, latency measured side by side (:func:`time_alternating`), and the
results table.

>>> p, ref = np.array([[0.9, 0.1], [0.4, 0.6]]), np.array([[0.8, 0.2], [0.6, 0.4]])
>>> s = Scorer(np.array([0, 1]), None)
>>> s.agreement(p, ref), s.accuracy(p), s.accuracy(ref)
(0.5, 1.0, 0.5)
>>> round(mean_kl(p, ref), 4)  # (0.8 ln(0.8/0.9) + 0.2 ln 2 + 0.6 ln 1.5 + 0.4 ln(0.4/0.6)) / 2
0.0627
"""

from __future__ import annotations

import contextlib
import math
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..models.decode import near_ties, predict_labels
from ..utils import say
from .graph import PixelModel

__all__ = ["batched", "mean_kl", "pixel_noise", "Scorer", "parity_row", "noise_row", "pytorch_probs",
           "time_alternating", "torch_one_thread_fn", "one_torch_thread", "results_table", "near_tie_sentence"]

NOISE_ROW = "onnx fp32, pixels +-1"


def batched(fn: Callable[[np.ndarray], np.ndarray], x: np.ndarray, bs: int = 32) -> np.ndarray:
    """``fn`` over ``x`` in batches of ``bs`` rows, concatenated.

    >>> batched(lambda b: b * 2, np.arange(5), bs=2).tolist()
    [0, 2, 4, 6, 8]
    """
    return np.concatenate([fn(x[i:i + bs]) for i in range(0, len(x), bs)]) if len(x) else np.zeros((0, 0))


def mean_kl(p: np.ndarray, ref: np.ndarray) -> float:
    """Mean KL(ref || p) over images: how far int8 probabilities are from fp32 (finer than top-1)."""
    eps = 1e-7
    return float((ref * (np.log(ref + eps) - np.log(p + eps))).sum(1).mean())


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


class Scorer:
    """Accuracy against ``labels`` (None: unknown; -1: an unknown label) and top-1 agreement, each image's class
    read by the head's rule (``ordinal``: :func:`skinage.models.decode.predict_labels`)."""

    def __init__(self, labels: np.ndarray | None, ordinal: str | None):
        self.labels, self.ordinal = labels, ordinal or None

    def accuracy(self, p: np.ndarray) -> float | None:
        y = self.labels
        if y is None or len(p) == 0 or not (y >= 0).any():
            return None
        known = y >= 0  # -1: unknown label
        return float((predict_labels(p[known], self.ordinal) == y[known]).mean())

    def agreement(self, a: np.ndarray, b: np.ndarray) -> float:
        return float((predict_labels(a, self.ordinal) == predict_labels(b, self.ordinal)).mean())


def parity_row(name: str, path: Path, p: np.ndarray, ref: np.ndarray, reference: str, score: Scorer,
               ties: bool = False) -> dict:
    """One row of the results table: the file at ``path`` (probabilities ``p``) against ``reference`` (``ref``).
    ``ties``: also the accuracy change and how near a tie its disagreements were in the reference
    (:func:`skinage.models.decode.near_ties`: the largest decision margin among them, and the share of images
    that near)."""
    row = {"format": name, "file": path.name, "size_bytes": path.stat().st_size, "agreement": score.agreement(p, ref),
           "reference": reference, "max_abs_prob_diff": float(np.abs(p - ref).max()), "accuracy": score.accuracy(p)}
    if ties:
        a, a_ref = row["accuracy"], score.accuracy(ref)
        worst, share = near_ties(ref, p, score.ordinal)
        row.update(accuracy_change=None if a is None else a - a_ref, disagreement_max_margin=worst,
                   near_tie_share=share)
    return row


def noise_row(path: Path, run: Callable[[np.ndarray], np.ndarray], x: np.ndarray, p: np.ndarray, score: Scorer,
              seed: int, reference: str = "onnx fp32") -> dict:
    """The noise floor: the file at ``path`` (``run``) on ``x`` with every pixel moved by -1, 0 or +1
    (:func:`pixel_noise` with ``seed``) against its own probabilities ``p`` on ``x``."""
    pn = batched(run, pixel_noise(x, 1, seed))
    return {"format": NOISE_ROW, "file": path.name, "size_bytes": None, "agreement": score.agreement(pn, p),
            "reference": reference, "max_abs_prob_diff": float(np.abs(pn - p).max()), "accuracy": score.accuracy(pn)}


def pytorch_probs(model, x: np.ndarray) -> np.ndarray:
    """The export wrapper's (:func:`~skinage.export.graph.PixelModel`) probabilities on uint8 ``x``, checked
    against the model's own ``predict_proba`` (a warning when they differ)."""
    import torch

    wrapper = PixelModel(model)
    with torch.inference_mode():
        p = batched(lambda b: wrapper(torch.from_numpy(b)).numpy(), x)
        p_model = batched(lambda b: model.predict_proba(torch.from_numpy(b).permute(0, 3, 1, 2).float() / 255.0)
                          .numpy(), x)
    if np.abs(p_model - p).max() > 1e-5:
        say("skinage export: warning: the export wrapper's probabilities differ from model.predict_proba")
    return p


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


@contextlib.contextmanager
def one_torch_thread():
    """torch on one intra-op thread inside the block (the thread count before it restored after)."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(old)


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
    """A markdown table of the export results.

    >>> print(results_table([{"format": "onnx fp32", "file": "model.onnx", "size_bytes": 2e6, "latency_ms": 1.5,
    ...                       "agreement": 1.0, "reference": "pytorch fp32", "max_abs_prob_diff": 1e-7}]))
    | format | file | size | latency 1 img, 1 thread | agreement | compared with | max |dp| | accuracy |
    |---|---|---|---|---|---|---|---|
    | onnx fp32 | model.onnx | 2.00 MB | 1.50 ms | 100.0 % | pytorch fp32 | 1e-07 | - |
    """
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


def near_tie_sentence(row: dict | None) -> str | None:
    """What the int8 row's near-tie figures say, in one sentence (None when int8 agrees everywhere or is absent).

    >>> near_tie_sentence({"disagreement_max_margin": 0.0123, "near_tie_share": 0.05})[:52]
    'the images int8 reads differently were near-ties in '
    """
    if row is None or row.get("disagreement_max_margin") is None:
        return None
    return (f"the images int8 reads differently were near-ties in fp32: the largest decision margin (the "
            f"probability that must move for the class to change) among them was {row['disagreement_max_margin']:.3f}, "
            f"and {100 * row['near_tie_share']:.1f} % of the checked images have a margin that small")
