"""``skinage evaluate``: how good a trained model really is, against what, and where it fails.

By default a run is scored on its own manifest's *test* split; on another
manifest (``--data``, new data) on all of its rows unless ``--split`` says
otherwise. Out come:

* image-level figures with 95 % bootstrap intervals over persons (over images
  when there are no person ids): accuracy, balanced accuracy, precision /
  recall / F1 (macro, weighted), and for ordered grades QWK, MAE in levels and
  within-one-level accuracy; per-class figures; expected calibration error;
* the same figures for trivial baselines on the same rows (majority class,
  stratified random, and a metadata-only logistic regression when the data has
  age / gender ...), fitted on the training split, plus the paired bootstrap
  interval of the model's gain over each;
* person-level figures (each person's view probabilities averaged) and a
  breakdown by view;
* ``metrics.json`` (the training's keys are kept; the evaluation goes under
  ``"evaluation"``), ``eval_predictions.csv``, ``persons.csv``, PNG plots and a
  self-contained ``report.html``, into the run folder or ``--out``.

``--baselines-only`` needs no run: it scores the baselines of a manifest's test
split (e.g. the forehead label table, which has no images).

>>> res = evaluate("runs/forehead/train", split="test")  # doctest: +SKIP
>>> res.metrics["image"]["model"]["accuracy"]  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ..config import (ConfigError, Progress, Seeded, Threaded, add_config_arguments, build_config,
                     config_from_args, config_to_dict)
from ..models.decode import decision_rule, predict_labels
from ..utils import atomic_write, atomic_write_json, say
from .baselines import label_source_columns, run_baselines
from .rows import align_labels, person_ids, run_dir_of, run_manifest_path, select_split, training_rows
from .scoring import score_predictions
from .tables import format_tables

__all__ = ["EvaluateConfig", "EvaluateResult", "evaluate", "score_predictions", "format_tables",
           "run_manifest_path", "add_arguments", "run"]

SPLITS = ("test", "val", "train", "all")


@dataclass
class EvaluateConfig(Threaded, Progress, Seeded):
    """Every option of ``skinage evaluate`` (= keyword of :func:`evaluate`)."""

    run: Optional[Path] = field(default=None, metadata={
        "help": "run folder (or a weights .safetensors file) to evaluate", "positional": True, "nargs": "?"})
    data: Optional[Path] = field(default=None, metadata={
        "help": "manifest to evaluate on (default: the run's own manifest)"})
    split: Optional[str] = field(default=None, metadata={
        "help": "rows to score: test, val, train or all (default: test of the run's own manifest, all rows of another)",
        "choices": SPLITS})
    out: Optional[Path] = field(default=None, metadata={
        "help": "output folder for metrics.json, plots and report.html (default: the run folder)"})
    baselines_only: bool = field(default=False, metadata={
        "help": "score only the baselines of --data (no run, no images needed)"})
    meta_features: tuple[str, ...] = field(default=(), metadata={
        "help": "metadata columns of the metadata-only baseline, e.g. age,gender (default: every known one present)",
        "type": "strs"})
    n_boot: int = field(default=1000, metadata={"help": "bootstrap resamples for the confidence intervals"})
    batch_size: int = field(default=32, metadata={"help": "inference batch size"})
    tta: str = field(default="auto", metadata={
        "help": "test-time augmentation: auto (the one the checkpoint was trained with), none, or flip "
                "(mean of the outputs of each image and its mirror)", "choices": ("auto", "none", "flip")})
    gradcam: int = field(default=8, metadata={"help": "Grad-CAM pictures of each kind (most confident right answers, worst wrong ones); 0: none"})
    embedding: str = field(default="auto", metadata={
        "help": "2-D map of the embeddings: auto (t-SNE, PCA for very small or large sets), tsne, pca or none",
        "choices": ("auto", "tsne", "pca", "none")})
    plots: bool = field(default=True, metadata={"help": "write the PNG plots"})
    report: bool = field(default=True, metadata={"help": "write report.html (needs --plots for the pictures)"})


@dataclass
class EvaluateResult:
    """What :func:`evaluate` returns: the output folder and everything written to metrics.json."""

    out_dir: Path
    metrics: dict
    files: dict = field(default_factory=dict)

    def __fspath__(self) -> str:
        return str(self.out_dir)


# ----------------------------------------------------------------------------------------------
# the steps of an evaluation


@dataclass
class _Rows:
    """The rows scored and where they come from."""

    path: Path  # the manifest scored
    own_path: Optional[Path]  # the run's own manifest
    split: str
    manifest: Any
    df: Any
    classes: list
    ordinal: bool
    set_aside: list


def _load_model(cfg: EvaluateConfig):
    """(model, checkpoint meta, run folder), all None with --baselines-only."""
    if cfg.baselines_only:
        if cfg.data is None:
            raise ConfigError("--baselines-only needs --data MANIFEST")
        return None, None, None
    if cfg.run is None:
        raise ConfigError("give the run folder to evaluate (or --baselines-only --data MANIFEST)")
    import torch

    from ..models.checkpoint import load_checkpoint

    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    model, meta = load_checkpoint(cfg.run, tta=cfg.tta)
    return model, meta, run_dir_of(Path(cfg.run))


def _select_rows(cfg: EvaluateConfig, meta: dict | None) -> _Rows:
    """The labelled rows of the chosen split, with labels in the model's class order."""
    from ..data.manifest import read_manifest

    own_path = run_manifest_path(cfg.run, meta) if cfg.run is not None else None
    data_path = Path(cfg.data) if cfg.data is not None else own_path
    if data_path is None:
        raise ConfigError(f"cannot find the manifest {cfg.run} was trained on (args.yaml 'data'); pass --data MANIFEST")
    on_own = cfg.baselines_only or (own_path is not None and data_path.resolve() == own_path.resolve())
    split = cfg.split or ("test" if on_own else "all")
    man = read_manifest(data_path)
    classes = list(meta["classes"]) if meta else list(man.classes)
    if meta and "ordered" in meta:  # written by training: the classes are ordered levels
        ordinal = bool(meta["ordered"])
    else:
        ordinal = bool(man.ordinal) or bool(meta and meta.get("ordinal"))
    df = select_split(man.df, split, str(data_path))
    if meta:
        df = align_labels(df, man.classes, classes, str(data_path))
    set_aside = []
    unlabeled = df["label"].astype(int) < 0
    if unlabeled.any():
        for p in df.loc[unlabeled, "path"]:
            set_aside.append({"path": str(p), "reason": "no label (evaluate needs labelled rows; use skinage predict)"})
        df = df[~unlabeled].reset_index(drop=True)
    if len(df) == 0:
        raise ConfigError(f"no labelled rows to evaluate in {data_path} (split {split})")
    return _Rows(data_path, own_path, split, man, df, classes, ordinal, set_aside)


def _run_model(model, meta: dict, cfg: EvaluateConfig, rows: _Rows):
    """(probabilities, embeddings, Preprocess) of the readable rows; the others leave ``rows`` set aside."""
    from ..preprocess import Preprocess
    from .inference import infer

    pre = Preprocess.from_meta(meta)
    say(f"skinage evaluate: {meta['model']} ({meta.get('mode', '?')}) from {cfg.run} on {len(rows.df)} image(s) "
        f"of {rows.path} [{rows.split}]" + (f", test-time augmentation {meta['tta']}" if meta.get("tta") else ""))
    keep, probs, emb, aside = infer(model, rows.df, pre, cfg.batch_size, cfg.progress)
    rows.set_aside += aside
    rows.df = rows.df.iloc[keep].reset_index(drop=True)
    if len(rows.df) == 0:
        raise ConfigError("none of the images could be read; see the reasons above")
    for a in aside:
        say(f"  set aside {a['path']}: {a['reason']}")
    return probs, emb, pre


def _baselines(cfg: EvaluateConfig, rows: _Rows, train_df, subjects) -> tuple[dict, list[str]]:
    """The baselines fitted on ``train_df`` and scored on the rows, and the metadata columns left out."""
    if train_df is None:
        say("  no training split found: baselines skipped (they are fitted on training rows)")
        return {}, []
    b_groups = subjects if len(np.unique(subjects)) < len(subjects) else None
    label_key = (rows.manifest.meta.get("options") or {}).get("label") if isinstance(rows.manifest.meta, dict) else None
    exclude = label_source_columns(train_df, label_key)
    excluded: list[str] = []
    if exclude and not cfg.meta_features:
        say(f"  metadata baseline leaves out {', '.join(exclude)}: the label is made from it")
        excluded = exclude
    baselines = run_baselines(train_df, rows.df, len(rows.classes), groups=b_groups,
                              features=list(cfg.meta_features) or None, seed=cfg.seed, exclude=exclude)
    return baselines, excluded


def _describe(m: dict, cfg: EvaluateConfig, rows: _Rows, meta: dict | None, train_from, excluded) -> None:
    """Add what was evaluated, on what and how to the figures ``m``."""
    m.update({
        "run": str(cfg.run) if cfg.run else None,
        "data": str(rows.path), "split": rows.split, "train_rows_for_baselines": train_from,
        "set_aside": rows.set_aside, "n_set_aside": len(rows.set_aside), "metadata_excluded": excluded,
        "options": config_to_dict(cfg),
    })
    if meta:
        m["model"] = {"name": meta.get("model"), "mode": meta.get("mode"), "weights_from": meta.get("weights_from"),
                      "epoch": meta.get("epoch"), "checkpoint": meta.get("checkpoint"), "head": meta.get("head"),
                      "tta": meta.get("tta")}


def _out_dir(cfg: EvaluateConfig, run_dir: Path | None, data_path: Path) -> Path:
    if cfg.out is not None:
        out_dir = Path(cfg.out)
    elif run_dir is not None:
        out_dir = run_dir
    else:
        out_dir = Path("runs") / "evaluate" / f"{data_path.stem}-baselines"
    out_dir.mkdir(parents=True, exist_ok=True)
    return out_dir


def _write_tables(out_dir: Path, df, y, probs, pred, persons_table) -> dict:
    """``eval_predictions.csv`` (one row per image: label, class, probabilities) and ``persons.csv``."""
    import pandas as pd

    files: dict[str, Path] = {}
    if probs is not None:
        pred_df = pd.DataFrame({"path": df["path"].astype(str), "subject": df["subject"].astype(str),
                                "view": df["view"].astype(str) if "view" in df.columns else "",
                                "label": y, "pred": pred})
        for j in range(probs.shape[1]):
            pred_df[f"p_{j}"] = probs[:, j]
        with atomic_write(out_dir / "eval_predictions.csv", "w", encoding="utf-8", newline="") as f:
            pred_df.to_csv(f, index=False, float_format="%.6g")
        files["predictions"] = out_dir / "eval_predictions.csv"
    if persons_table is not None:
        with atomic_write(out_dir / "persons.csv", "w", encoding="utf-8", newline="") as f:
            persons_table.to_csv(f, index=False, float_format="%.6g")
        files["persons"] = out_dir / "persons.csv"
    return files


def _write_metrics_and_report(m: dict, out_dir: Path, files: dict, cfg: EvaluateConfig, title: str) -> None:
    """``report.html`` and ``metrics.json`` (the training's keys kept, the evaluation under ``evaluation``)."""
    m["files"] = {k: os.path.relpath(v, out_dir) for k, v in files.items()}
    mpath = out_dir / "metrics.json"
    doc = {}
    if mpath.is_file():
        try:
            doc = json.loads(mpath.read_text(encoding="utf-8"))
        except (ValueError, OSError):
            doc = {}
    doc["evaluation"] = m
    if cfg.report:
        from .report import write_report

        files["report"] = write_report(m, out_dir, title=title)
        m["files"]["report"] = "report.html"
    atomic_write_json(mpath, doc)
    files["metrics"] = mpath


# ----------------------------------------------------------------------------------------------
# evaluate


def evaluate(run=None, **options) -> EvaluateResult:
    """Evaluate a trained run (the ``skinage evaluate`` command); see the module docstring.

    Parameters
    ----------
    run : path, optional
        Run folder or weights file (not needed with ``baselines_only=True``).
    **options
        Fields of :class:`EvaluateConfig` (``data``, ``split``, ``out``, ``n_boot``, ...).

    Returns
    -------
    EvaluateResult
        ``out_dir``, ``metrics`` (the ``"evaluation"`` entry of metrics.json) and ``files``.
    """
    if isinstance(options.get("cfg"), EvaluateConfig):
        cfg = options.pop("cfg")
    else:
        if run is not None:
            options["run"] = run
        cfg = build_config(EvaluateConfig, options)
    return _evaluate(cfg)


def _evaluate(cfg: EvaluateConfig) -> EvaluateResult:
    model, meta, run_dir = _load_model(cfg)
    rows = _select_rows(cfg, meta)
    train_df, train_from = training_rows(([rows.own_path] if rows.own_path else []) + [rows.path], rows.path,
                                         rows.manifest, rows.classes if meta else None, rows.split)
    pre = probs = emb = None
    if model is not None:
        probs, emb, pre = _run_model(model, meta, cfg, rows)
    df, y, subjects = rows.df, rows.df["label"].astype(int).to_numpy(), person_ids(rows.df)
    baselines, excluded = _baselines(cfg, rows, train_df, subjects)
    views = df["view"].astype(str).to_numpy() if "view" in df.columns else None
    ordinal_head = (meta or {}).get("ordinal") or None
    m = score_predictions(y, probs, subjects, rows.classes, rows.ordinal, views, baselines, cfg.n_boot, cfg.seed,
                          ordinal_head=ordinal_head)
    pred = predict_labels(probs, ordinal_head) if probs is not None else None
    if probs is not None:
        m["decision_rule"] = decision_rule(ordinal_head)
    persons_table = m.pop("_persons_table", None)
    _describe(m, cfg, rows, meta, train_from, excluded)
    out_dir = _out_dir(cfg, run_dir, rows.path)
    files = _write_tables(out_dir, df, y, probs, pred, persons_table)
    if cfg.plots:
        from .figures import write_figures

        files.update(write_figures(out_dir, m, rows.classes, rows.ordinal, run_dir=run_dir, model=model, df=df, y=y,
                                   probs=probs, emb=emb, pred=pred, pre=pre, embedding=cfg.embedding, seed=cfg.seed,
                                   gradcam=cfg.gradcam))
    _write_metrics_and_report(m, out_dir, files, cfg, title=f"skinage evaluation: {cfg.run or rows.path}")
    print(format_tables(m))
    say(f"  written to {out_dir}: " + ", ".join(sorted(Path(v).name for v in files.values())))
    return EvaluateResult(out_dir, m, files)


# ----------------------------------------------------------------------------------------------
# CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = ("examples:\n  skinage evaluate runs/train                        # its own test split\n"
                     "  skinage evaluate runs/train --data new.csv --out eval_new   # all rows of new data\n"
                     "  skinage evaluate --baselines-only --data forehead.csv --meta-features age")
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    add_config_arguments(parser, EvaluateConfig)


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(EvaluateConfig, args)
    _evaluate(cfg)
    return 0
