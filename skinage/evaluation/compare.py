"""``skinage compare RUN...``: the model comparison table, complete and honest.

One row per run: model, mode, starting weights, test accuracy, macro-F1, QWK
and MAE each with its 95 % interval (bootstrap over persons), parameters,
file size (fp32 weights; int8 when ``<run>/export/model.int8.onnx`` exists),
latency of one image on one CPU thread and the training time.

Where the figures come from, per run:

* test metrics: the run's ``metrics.json`` ``evaluation`` entry when it was an
  evaluation of the run's own test split; else the training's
  ``predictions.csv`` (test split), re-scored with intervals here; else a quick
  ``skinage evaluate`` without plots into a temporary folder;
* latency: ``export/export_results.json`` (written by ``skinage export``, which
  times PyTorch, ONNX fp32 and int8 side by side) when present; otherwise
  measured here: median of ``--repeats`` runs of the PyTorch model on one image
  with one thread;
* training time: ``metrics.json`` ``time_s`` (end to end), else the sum of the
  ``time_s`` column of ``results.csv``.

Markdown is printed (and written to ``--out``), with a CSV beside it.

>>> table = compare(["runs/a", "runs/b"], out="table.md")  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from ..config import ConfigError, Seeded, add_config_arguments, build_config, config_from_args
from ..utils import atomic_write_text, say
from .rows import person_ids, run_manifest_path

__all__ = ["CompareConfig", "compare", "run_row", "to_markdown", "add_arguments", "run"]


@dataclass
class CompareConfig(Seeded):
    """Every option of ``skinage compare`` (= keyword of :func:`compare`)."""

    runs: tuple[str, ...] = field(default=(), metadata={
        "help": "run folders to compare", "positional": True, "nargs": "+", "type": "strs"})
    out: Optional[Path] = field(default=None, metadata={
        "help": "write the table as Markdown to this file (and CSV beside it, same name .csv)"})
    measure: bool = field(default=True, metadata={
        "help": "measure the one-image, one-thread PyTorch latency when the run has no export results"})
    repeats: int = field(default=30, metadata={"help": "timed runs of a measured latency (the median is shown)"})
    n_boot: int = field(default=1000, metadata={"help": "bootstrap resamples for the intervals compare computes (runs without an evaluation of their test split)"})


def _load_json(p: Path) -> dict:
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _test_metrics(run: Path, meta: dict, cfg: CompareConfig) -> tuple[dict | None, str]:
    """Image-level model metrics with ``ci`` on the run's own test split, and where they came from."""
    ev = _load_json(run / "metrics.json").get("evaluation")
    own = run_manifest_path(run, meta)
    if ev and ev.get("split") == "test" and "model" in ev.get("image", {}) and own is not None \
            and Path(ev.get("data", "")).resolve() == own.resolve():
        return ev["image"]["model"], "metrics.json (skinage evaluate)"
    pred = run / "predictions.csv"
    if pred.is_file():
        import pandas as pd

        from .bootstrap import bootstrap_ci
        from .metrics import classification_metrics

        df = pd.read_csv(pred, dtype={"subject": str})
        df = df[df["label"].astype(int) >= 0]
        if len(df):
            k = len(meta["classes"])
            ordinal = bool(meta.get("ordered", True))
            y, p = df["label"].astype(int).to_numpy(), df["pred"].astype(int).to_numpy()
            s = person_ids(df.fillna({"subject": ""}))
            groups = s if len(np.unique(s)) < len(s) else None
            m = classification_metrics(y, p, k, ordinal)
            m["ci"] = {kk: list(v) for kk, v in bootstrap_ci(y, p, groups, k, cfg.n_boot, cfg.seed,
                                                              ordinal=ordinal).items()}
            return m, "predictions.csv (training, test split)"
    if own is None:
        return None, "no test predictions and no manifest"
    from .evaluate import evaluate

    with tempfile.TemporaryDirectory() as td:
        res = evaluate(run, out=td, plots=False, report=False, n_boot=cfg.n_boot, seed=cfg.seed, progress=False)
    return res.metrics["image"].get("model"), "skinage evaluate (computed now)"


def _latency(model, size: int, repeats: int) -> float:
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        x = torch.rand(1, 3, size, size)
        with torch.inference_mode():
            for _ in range(3):
                model(x)
            times = []
            for _ in range(max(1, repeats)):
                t = time.perf_counter()
                model(x)
                times.append((time.perf_counter() - t) * 1000)
    finally:
        torch.set_num_threads(old)
    return float(np.median(times))


def _train_time(run: Path) -> tuple[float | None, str]:
    t = _load_json(run / "metrics.json").get("time_s")
    if isinstance(t, (int, float)):
        return float(t), "metrics.json time_s"
    rc = run / "results.csv"
    if rc.is_file():
        import pandas as pd

        df = pd.read_csv(rc)
        if "time_s" in df.columns:
            return float(df["time_s"].sum()), "results.csv time_s"
    return None, ""


def run_row(run: str | Path, cfg: CompareConfig | None = None) -> dict:
    """One row of the comparison table for one run folder."""
    from ..models.checkpoint import load_checkpoint, resolve_checkpoint

    cfg = cfg or CompareConfig()
    run = Path(run)
    if not run.is_dir():
        raise FileNotFoundError(f"{run} is not a run folder")
    model, meta = load_checkpoint(run)
    row: dict = {"run": str(run), "model": meta.get("model"), "mode": meta.get("mode"),
                 "weights_from": meta.get("weights_from")}
    m, source = _test_metrics(run, meta, cfg)
    for k in ("accuracy", "f1_macro", "qwk", "mae"):
        row[k] = None if not m else m.get(k)
        ci = (m or {}).get("ci", {}).get(k)
        row[f"{k}_lo"], row[f"{k}_hi"] = (ci if ci else (None, None))
    row["n_test"] = None if not m else m.get("n")
    row["metrics_from"] = source
    row["parameters"] = int(sum(p.numel() for p in model.parameters()))
    row["size_fp32_mb"] = resolve_checkpoint(run).stat().st_size / 1e6
    exp = run / "export"
    int8 = exp / "model.int8.onnx"
    row["size_int8_mb"] = int8.stat().st_size / 1e6 if int8.is_file() else None
    er = _load_json(exp / "export_results.json")
    lat = {r.get("format"): r.get("latency_ms") for r in er.get("rows", [])} if er else {}
    row["latency_ms"] = lat.get("pytorch fp32")
    row["latency_onnx_fp32_ms"] = lat.get("onnx fp32")
    row["latency_int8_ms"] = lat.get("onnx int8")
    row["latency_from"] = "export_results.json" if row["latency_ms"] is not None else ""
    if row["latency_ms"] is None and cfg.measure:
        from ..preprocess import Preprocess

        row["latency_ms"] = _latency(model, Preprocess.from_meta(meta).size, cfg.repeats)
        row["latency_from"] = f"measured: PyTorch eager, 1 thread, median of {cfg.repeats}"
    row["train_time_s"], row["train_time_from"] = _train_time(run)
    return row


def _f(v, nd=3) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:.{nd}f}"


def _ci(row, k) -> str:
    v, lo, hi = row.get(k), row.get(f"{k}_lo"), row.get(f"{k}_hi")
    s = _f(v)
    if lo is not None and hi is not None and v is not None:
        s += f" [{_f(lo)}, {_f(hi)}]"
    return s


def to_markdown(rows: list[dict]) -> str:
    """The comparison as a Markdown table (intervals in brackets)."""
    head = ["run", "model", "mode", "starting weights", "test accuracy", "macro-F1", "QWK", "MAE", "parameters",
            "size fp32", "size int8", "latency 1 img, 1 thread", "int8 latency", "training time"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for r in rows:
        cells = [Path(r["run"]).name, str(r["model"]), str(r["mode"]), str(r["weights_from"]),
                 _ci(r, "accuracy"), _ci(r, "f1_macro"), _ci(r, "qwk"), _ci(r, "mae"),
                 f"{r['parameters'] / 1e6:.2f} M", f"{r['size_fp32_mb']:.2f} MB",
                 "-" if r["size_int8_mb"] is None else f"{r['size_int8_mb']:.2f} MB",
                 "-" if r["latency_ms"] is None else f"{r['latency_ms']:.1f} ms",
                 "-" if r["latency_int8_ms"] is None else f"{r['latency_int8_ms']:.1f} ms",
                 "-" if r["train_time_s"] is None else f"{r['train_time_s']:.0f} s"]
        lines.append("| " + " | ".join(cells) + " |")
    notes = sorted({f"{Path(r['run']).name}: metrics from {r['metrics_from']}; latency "
                    f"{r['latency_from'] or 'not measured'}" for r in rows})
    return "\n".join(lines) + "\n\nIntervals: 95 % bootstrap over persons (over images without person ids).\n" \
        + "\n".join(f"- {n}" for n in notes) + "\n"


def compare(runs=(), **options) -> list[dict]:
    """Compare runs (the ``skinage compare`` command); returns one dict per run."""
    if isinstance(runs, (str, Path)):
        runs = [runs]
    options["runs"] = tuple(str(r) for r in runs) or options.get("runs", ())
    cfg = build_config(CompareConfig, options)
    return _compare(cfg)


def _compare(cfg: CompareConfig) -> list[dict]:
    if not cfg.runs:
        raise ConfigError("give at least one run folder to compare")
    rows = []
    for r in cfg.runs:
        say(f"skinage compare: {r}")
        rows.append(run_row(r, cfg))
    md = to_markdown(rows)
    print(md)
    if cfg.out is not None:
        import pandas as pd

        out = Path(cfg.out)
        atomic_write_text(out, md)
        csv = out.with_suffix(".csv")
        atomic_write_text(csv, pd.DataFrame(rows).to_csv(index=False))
        say(f"  written {out} and {csv}")
    return rows


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = "example:  skinage compare runs/mnv2 runs/effnet runs/squeeze --out table.md"
    add_config_arguments(parser, CompareConfig)


def run(args: argparse.Namespace) -> int:
    _compare(config_from_args(CompareConfig, args))
    return 0
