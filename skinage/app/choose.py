"""Which model file the page ships: fp32, fp16-storage or int8, by one rule, on measured evidence.

**The rule.** Among the candidate files (``model.onnx`` fp32, ``model.fp16.onnx``, ``model.int8.onnx``
when exported), keep those whose class agrees with Python's (the fp32 file in onnxruntime, read by the
model's class rule) on at least :data:`MIN_AGREEMENT` (98 %) of the run's validation crops, and whose size
with the finder's two files stays within :data:`BUDGET_MB` (8 MB); of these take the fastest, a file within
:data:`SAME_SPEED` (10 %) of the fastest's time counting as as fast (then the smaller wins). If none fits
the budget, the fastest agreeing file is taken and the card says so.

**The evidence.** Measured where the page runs: headless chromium (onnxruntime-web, wasm, one thread,
``graphOptimizationLevel: 'all'``) on the same validation crops Python reads (``Preprocess.load`` of the
manifest's boxes), each candidate in turn per crop: its class against Python's fp32 class and its
median time. Without a chromium and the ``playwright`` package (or with ``measure=0``) nothing is timed
and the documented default applies: fp16-storage when it agrees (checked in Python's onnxruntime on the
same crops), because onnxruntime-web folds its casts into fp32 constants at load (fp32 speed, measured in
``docs/app.md``) at half the size, and int8 runs about 1.7x slower than fp32 in the wasm runtime.

>>> c = [Candidate("fp32", None, 8_900_000, agreement=1.0, ms=40.0), Candidate("fp16", None, 4_500_000, agreement=1.0, ms=41.0),
...      Candidate("int8", None, 3_900_000, agreement=0.97, ms=65.0)]
>>> pick(c, finder_bytes=2_864_406)[0].name
'fp16'
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from ..models.decode import predict_labels
from ..runtime.onnx_io import INPUT_NAME, OUTPUT_NAME
from ..utils import say

__all__ = ["FILES", "MIN_AGREEMENT", "BUDGET_MB", "SAME_SPEED", "Candidate", "python_probs", "measure_in_browser",
           "pick", "choose"]

#: candidate name -> file in the run's export folder
FILES = {"fp32": "model.onnx", "fp16": "model.fp16.onnx", "int8": "model.int8.onnx"}
#: The least share of validation crops on which a file's class must equal Python's fp32 class.
MIN_AGREEMENT = 0.98
#: The most the page's models may weigh together (classifier + the finder's two files), in MB (10^6 bytes).
BUDGET_MB = 8.0
#: Times within this fraction of the fastest count as the same speed (then the smaller file wins).
SAME_SPEED = 0.10
MEASURE_JS = Path(__file__).resolve().parent / "measure.mjs"


@dataclass
class Candidate:
    """One model file and what was measured of it (``agreement`` / ``ms``: the evidence the rule reads)."""

    name: str
    path: Optional[Path]
    bytes: int
    agreement: Optional[float] = None  # class = Python fp32's, share of the crops (browser when measured)
    ms: Optional[float] = None  # median ms of one crop in the browser (1 thread); None: not measured
    python_agreement: Optional[float] = None  # the same in Python's onnxruntime
    max_abs_prob_diff: Optional[float] = None  # largest |p - p_fp32| in the browser (else in Python)
    notes: list = field(default_factory=list)

    def row(self) -> dict:
        d = asdict(self)
        d["file"] = self.path.name if self.path else None
        del d["path"]
        return d


def python_probs(path: Path, crops: np.ndarray) -> np.ndarray:
    """Probabilities of ``crops`` (N, S, S, 3) uint8 from the ONNX file at ``path`` in onnxruntime (1 thread)."""
    from ..runtime.onnx_io import ort_session

    sess = ort_session(path, 1)
    return np.concatenate([sess.run(None, {INPUT_NAME: crops[i:i + 16]})[0] for i in range(0, len(crops), 16)])


def measure_in_browser(candidates: list[Candidate], crops: np.ndarray, warmup: int = 3) -> dict:
    """Run every candidate in headless chromium on ``crops``: ``{name: {"probs": (N, K), "ms": [...]}}``.

    Raises ``RuntimeError`` (with the reason) when chromium or playwright is missing or the page fails.
    """
    from .browser import OFFLINE_FLAGS, chromium_executable, playwright_missing, serve_dir
    from .runtime_files import runtime_files

    why = playwright_missing()
    if why:
        raise RuntimeError(why)
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="skinage-measure-") as tmp:
        tmp = Path(tmp)
        (tmp / "ort").mkdir()
        for name, src in runtime_files().items():
            os.symlink(src, tmp / "ort" / name)
        for c in candidates:
            os.symlink(c.path.resolve(), tmp / f"{c.name}.onnx")
        (tmp / "crops.bin").write_bytes(np.ascontiguousarray(crops, dtype=np.uint8).tobytes())
        shutil.copyfile(MEASURE_JS, tmp / "measure.mjs")
        (tmp / "index.html").write_text('<!doctype html><meta charset="utf-8"><script type="module" src="measure.mjs">'
                                        '</script>', encoding="utf-8")
        args = {"names": [c.name for c in candidates], "n": int(len(crops)), "size": int(crops.shape[1]),
                "warmup": warmup, "input": INPUT_NAME, "output": OUTPUT_NAME}
        with serve_dir(tmp) as base, sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium_executable(), headless=True, args=OFFLINE_FLAGS)
            try:
                page = browser.new_page()
                errors = []
                page.on("pageerror", lambda e: errors.append(str(e)))
                page.goto(base + "index.html")
                page.wait_for_function("window.ready === true", timeout=60_000)
                out = page.evaluate("(a) => window.measure(a)", args)
            except Exception as e:  # a page or browser failure: the documented default applies
                raise RuntimeError(f"the measurement page failed: {e}; {errors}") from e
            finally:
                browser.close()
    return {k: {"probs": np.asarray(v["probs"], dtype=np.float64), "ms": list(v["ms"])} for k, v in out.items()}


def pick(candidates: list[Candidate], finder_bytes: int, min_agreement: float = MIN_AGREEMENT,
         budget_mb: float = BUDGET_MB, same_speed: float = SAME_SPEED) -> tuple[Candidate, str]:
    """The file the rule of this module chooses, and why (one sentence)."""
    agree = [c for c in candidates if c.agreement is not None and c.agreement >= min_agreement]
    if not agree:
        fp32 = next(c for c in candidates if c.name == "fp32")
        return fp32, f"no file agreed with Python on {min_agreement:.0%} of the crops; fp32 is the reference"
    budget = budget_mb * 1e6
    fits = [c for c in agree if c.bytes + finder_bytes <= budget]
    pool = fits or agree
    timed = [c for c in pool if c.ms is not None]
    if timed:
        fastest = min(c.ms for c in timed)
        near = [c for c in timed if c.ms <= fastest * (1 + same_speed)]
        best = min(near, key=lambda c: c.bytes)
        why = (f"the fastest in the browser ({best.ms:.1f} ms a crop, 1 thread; within {same_speed:.0%} counts as as "
               f"fast, then the smaller wins) of the files agreeing with Python on >= {min_agreement:.0%} of the crops")
    else:
        order = {"fp16": 0, "fp32": 1, "int8": 2}  # the documented default (see the module docstring)
        best = min(pool, key=lambda c: (order.get(c.name, 9), c.bytes))
        why = ("not measured in a browser: the documented default, fp16-storage (fp32 speed in onnxruntime-web, half "
               "the size; int8 is about 1.7x slower there) when it agrees with Python")
    if fits:
        why += f", within the {budget_mb:g} MB budget with the finder"
    else:
        why += f"; no agreeing file fits the {budget_mb:g} MB budget with the finder ({finder_bytes / 1e6:.2f} MB)"
    return best, why


def choose(files: dict[str, Path], crops: np.ndarray, ordinal: Optional[str], finder_bytes: int,
           measure: bool = True) -> tuple[Candidate, str, dict]:
    """Measure the ``files`` (name -> path; ``fp32`` required) on ``crops`` and pick one.

    Returns (the chosen candidate, why, the evidence for the card).
    """
    ref = python_probs(files["fp32"], crops) if len(crops) else None
    cands = []
    for name, path in files.items():
        c = Candidate(name, Path(path), Path(path).stat().st_size)
        if ref is not None:
            p = ref if name == "fp32" else python_probs(path, crops)
            c.python_agreement = float((predict_labels(p, ordinal) == predict_labels(ref, ordinal)).mean())
            c.max_abs_prob_diff = float(np.abs(p - ref).max())
            c.agreement = c.python_agreement
        cands.append(c)
    where = "python"
    if measure and len(crops):
        try:
            res = measure_in_browser(cands, crops)
            for c in cands:
                p = res[c.name]["probs"]
                c.agreement = float((predict_labels(p, ordinal) == predict_labels(ref, ordinal)).mean())
                c.max_abs_prob_diff = float(np.abs(p - ref).max())
                c.ms = float(statistics.median(res[c.name]["ms"]))
            where = "browser"
        except RuntimeError as e:
            say(f"skinage app: the model files were not measured in a browser ({e}); the documented default applies")
            for c in cands:
                c.notes.append(f"not measured in a browser: {e}")
    elif not len(crops):
        for c in cands:
            c.agreement = 1.0 if c.name == "fp32" else None
            c.notes.append("no validation crops to check it on")
    best, why = pick(cands, finder_bytes)
    evidence = {"measured_in": where, "crops": int(len(crops)), "min_agreement": MIN_AGREEMENT, "budget_mb": BUDGET_MB,
                "same_speed": SAME_SPEED, "candidates": [c.row() for c in cands],
                "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None}
    return best, why, json.loads(json.dumps(evidence))
