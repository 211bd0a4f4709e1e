"""``skinage export``: a trained run -> the files a phone runs (ONNX fp32, int8, TorchScript), each checked
against the trained model and timed.

The formats are one table, :func:`skinage.export.formats.export_formats`; the graph and its metadata are
described in :mod:`skinage.export.graph`. Files (in ``<run>/export/`` unless ``--out``): ``model.onnx``
(fp32), ``model.fp16.onnx`` (``--fp16``: the weights stored as float16, computed in float32, see
:mod:`skinage.export.fp16`), ``model.int8.onnx`` (``--int8``: static QDQ quantisation calibrated on the run's training images,
see :mod:`skinage.export.quantize`; ``--int8-search`` chooses the calibration method and the fp32
convolutions on the run's validation images), ``model.ts.pt`` (``--format torchscript``),
``export_results.json`` and ``export_results.md``.

After every export a parity check runs on the run's validation images (:mod:`skinage.export.parity`): ONNX
fp32 vs PyTorch top-1 agreement and largest probability difference; the fp32 file against itself with one
level of pixel noise (the noise floor); int8 vs fp32 agreement, accuracy change and how near a tie its
disagreements were; latency of one image on one thread (median, formats alternating). The table is printed
and saved.

>>> res = export("runs/utk/exp", int8=True)  # doctest: +SKIP
>>> res["rows"][1]["agreement"]  # doctest: +SKIP
1.0
"""

from __future__ import annotations

import argparse
import functools
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import __version__
from ..config import ConfigError, Seeded, add_config_arguments, build_config, config_from_args, config_to_dict
from ..preprocess import Preprocess
from ..runtime.onnx_io import INPUT_NAME, OUTPUT_NAME, read_onnx_metadata
from ..utils import atomic_write_json, atomic_write_text, say
from .calibration import export_images, find_manifest
from .formats import ExportJob, export_formats
from .graph import onnx_metadata
from .parity import (NOISE_ROW, Scorer, batched, near_tie_sentence, noise_row, one_torch_thread, parity_row,
                     pytorch_probs, results_table, time_alternating, torch_one_thread_fn)

__all__ = ["ExportConfig", "export", "load_run", "add_arguments", "run"]


@dataclass
class ExportConfig(Seeded):
    """Options of ``skinage export`` / :func:`skinage.export`."""

    run: str = field(default="", metadata={"positional": True,
        "help": "a run folder (runs/<project>/<name>) or a checkpoint (.safetensors/.json)"})
    format: str = field(default="onnx", metadata={"choices": ("onnx", "torchscript", "all"),
        "help": "onnx, torchscript (a traced TorchScript file as well) or all"})
    int8: bool = field(default=False, metadata={
        "help": "also write model.int8.onnx: static int8 quantisation (QDQ, per-channel) calibrated on training images"})
    fp16: bool = field(default=False, metadata={
        "help": "also write model.fp16.onnx: the fp32 graph with its weights stored as float16 (half the size; "
                "computed in float32, the same speed as fp32; what the browser page ships)"})
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
        "help": "int8: correct each quantised convolution's bias for the mean output error of its int8 weights on "
                "the calibration images (Nagel et al. 2019)"})
    int8_reduce_range: bool = field(default=True, metadata={
        "help": "int8: 7-bit weights (-64..64), which the fast int8 kernels of x86 CPUs without VNNI cannot "
                "saturate, so the file computes the same on every CPU (off: 8-bit weights)"})
    int8_equalize: bool = field(default=True, metadata={
        "help": "int8: before calibration, scale the small channels of depthwise-convolution inputs and linear "
                "bottlenecks up to their tensor's uint8 range, and back out of the convolutions that read them "
                "(finer int8 rounding; fp32 unchanged unless a channel exceeds 1.5x its calibration maximum)"})
    int8_search: bool = field(default=False, metadata={
        "help": "write model.int8.onnx (implies --int8) with the calibration method and the convolution blocks kept "
                "fp32 chosen on the run's VALIDATION images, until int8/fp32 agreement reaches --int8-search-target "
                "or --int8-search-budget convolutions are fp32 (minutes: one quantisation per block)"})
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


def load_run(run: str | os.PathLike, which: str = "best", tta: str = "auto"):
    """``(model, meta, run_dir)`` of a run folder or checkpoint (``which``: best or last; ``tta``: auto keeps the
    checkpoint's test-time augmentation, none / flip override it)."""
    from ..models.checkpoint import load_checkpoint, resolve_checkpoint

    if not run:
        raise ConfigError("no RUN given: name a run folder (runs/<project>/<name>) or a checkpoint")
    src = Path(run)
    wpath = resolve_checkpoint(src, which)
    model, meta = load_checkpoint(wpath, tta=tta)
    run_dir = src if src.is_dir() else (wpath.parent.parent if wpath.parent.name == "weights" else wpath.parent)
    return model, meta, run_dir


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
    if cfg.int8_search:
        cfg.int8 = True
    job = _start(cfg)
    out = Path(cfg.out) if cfg.out else job.run_dir / "export"
    out.mkdir(parents=True, exist_ok=True)
    written = _write(job, out)
    rows = _check(job, written)
    timing = _time(job, written)
    for r in rows:
        t = timing.get(r["format"])
        r["latency_ms"] = None if t is None else t["median_ms"]
    result = _result(job, rows, timing)
    _report(job, result, out)
    return result


def _start(cfg: ExportConfig) -> ExportJob:
    """The job: the checkpoint loaded, said on stderr, its fp32 metadata."""
    model, meta, run_dir = load_run(cfg.run, cfg.which, cfg.tta)
    pre = Preprocess.from_meta(meta)
    say(f"skinage export: {meta.get('model')} ({len(meta['classes'])} classes, {pre.describe()}) from "
        f"{meta['checkpoint']}" + (f", test-time augmentation {meta['tta']} in the graph" if meta.get("tta") else ""))
    return ExportJob(model, meta, cfg, run_dir, onnx_metadata(meta, "fp32", str(run_dir)))


def _write(job: ExportJob, out: Path) -> list:
    """Write the formats the options ask for, in the table's order; ``[(format, path)]``. The fp32 file comes
    first (int8 is made from it), then the images are read (int8 calibrates on them), then the others."""
    cfg = job.cfg
    fp32, *others = [f for f in export_formats() if f.wanted(cfg)]
    written = [(fp32, fp32.write(job, out / fp32.file))]
    job.files[fp32.key] = written[0][1]
    manifest = Path(cfg.manifest) if cfg.manifest else find_manifest(job.run_dir, job.meta)
    job.images = export_images(manifest, Preprocess.from_meta(job.meta), check_split=cfg.check_split,
                               check_images=cfg.check_images, calib_images=cfg.calib_images, seed=cfg.seed,
                               int8=cfg.int8, search=cfg.int8_search)
    for fmt in others:
        job.files[fmt.key] = fmt.write(job, out / fmt.file)
        written.append((fmt, job.files[fmt.key]))
    return written


def _check(job: ExportJob, written: list) -> list[dict]:
    """The parity rows: PyTorch, then each file against its reference (and the noise floor after fp32)."""
    x = job.images.check_x
    score = Scorer(job.images.check_y, job.meta.get("ordinal"))
    ckpt = Path(job.meta["checkpoint"])
    probs = {"pytorch fp32": pytorch_probs(job.model, x)}
    rows = [{"format": "pytorch fp32", "file": ckpt.name, "size_bytes": ckpt.stat().st_size, "agreement": None,
             "reference": None, "max_abs_prob_diff": None, "accuracy": score.accuracy(probs["pytorch fp32"])}]
    for fmt, path in written:
        run = fmt.runner(path, 0)
        p = probs[fmt.name] = batched(run, x)
        rows.append(parity_row(fmt.name, path, p, probs[fmt.reference], fmt.reference, score, fmt.near_ties))
        if fmt.noise_floor:
            rows.append(noise_row(path, run, x, p, score, job.cfg.seed, reference=fmt.name))
    return rows


def _time(job: ExportJob, written: list) -> dict:
    """Latency of one image on one thread: PyTorch and every file, alternating rounds."""
    one = np.ascontiguousarray(job.images.check_x[:1])
    with one_torch_thread():
        fns = {"pytorch fp32": torch_one_thread_fn(job.model, one)}
        for fmt, path in written:
            fns[fmt.name] = functools.partial(fmt.runner(path, 1), one)
        return time_alternating(fns, job.cfg.repeats)


def _result(job: ExportJob, rows: list[dict], timing: dict) -> dict:
    """What ``export_results.json`` holds."""
    import torch

    meta, images, cfg = job.meta, job.images, job.cfg
    int8 = job.files.get("onnx_int8")
    return {
        "run": str(job.run_dir), "checkpoint": meta["checkpoint"], "model": meta.get("model"),
        "classes": list(meta["classes"]), "preprocessing": Preprocess.from_meta(meta).to_meta(),
        "input": job.info["input"], "output": job.info["output"], "files": {k: str(v) for k, v in job.files.items()},
        "manifest": str(images.manifest) if images.manifest else None, "check_split": images.check_split,
        "check_images": int(len(images.check_x)), "check_labels": images.check_y is not None,
        "calibration_images": None if images.calib_x is None or int8 is None else int(len(images.calib_x)),
        "int8_quantization": None if int8 is None else read_onnx_metadata(int8).get("quantization"),
        "skipped_images": images.skipped, "timing": timing, "rows": rows,
        "noise_floor_agreement": next(r["agreement"] for r in rows if r["format"] == NOISE_ROW),
        "options": config_to_dict(cfg), "skinage_version": __version__,
        "onnxruntime_version": _version("onnxruntime"), "torch_version": torch.__version__,
    }


def _report(job: ExportJob, result: dict, out: Path) -> None:
    """Save ``export_results.json`` / ``.md``, print the table and say what it means."""
    rows, images, pre = result["rows"], job.images, Preprocess.from_meta(job.meta)
    table = results_table(rows)
    where = f"{len(images.check_x)} {images.check_split or 'random'} images" + \
        ("" if images.check_y is not None else " (no labels)")
    md = (f"# Export of {job.meta.get('model')} ({job.run_dir})\n\n"
          f"Input `{INPUT_NAME}`: uint8 RGB (N, {pre.size}, {pre.size}, 3); output `{OUTPUT_NAME}`: "
          f"probabilities over {result['classes']}.\n\nParity on {where}; latency: median of {job.cfg.repeats} runs of "
          f"one image on one thread, formats alternating. The row *onnx fp32, pixels +-1* is the fp32 file on the same "
          f"images with every pixel moved by a random -1, 0 or +1 level: the model's own noise floor, for reading the "
          f"int8 agreement.\n\n{table}\n")
    by = {r["format"]: r for r in rows}
    r8 = by.get("onnx int8")
    ties = near_tie_sentence(r8)  # one sentence for the saved Markdown and the console
    if ties:
        md += f"\n{ties[0].upper()}{ties[1:]}.\n"
    if images.skipped:
        md += f"\n{len(images.skipped)} unreadable images were skipped (listed in export_results.json).\n"
    atomic_write_json(out / "export_results.json", result)
    atomic_write_text(out / "export_results.md", md)
    print(table)
    say(f"skinage export: parity on {where}; results in {out / 'export_results.md'}")
    if r8 is not None:
        say(f"skinage export: int8 agrees with fp32 on {100 * r8['agreement']:.1f} % of the images; the fp32 model agrees "
            f"with itself on {100 * by[NOISE_ROW]['agreement']:.1f} % when every pixel moves by one level (its noise floor)")
        if ties:
            say(f"skinage export: {ties}")
    if by["onnx fp32"]["agreement"] < 1.0:
        say(f"skinage export: WARNING: ONNX fp32 agrees with PyTorch on only {100 * by['onnx fp32']['agreement']:.2f} % "
            f"of the images")


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
