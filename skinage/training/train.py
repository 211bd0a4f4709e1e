"""``skinage train``: a manifest in, a trained, self-describing model in a run folder out.

Three modes share one loop (AdamW, cosine or step schedule with warm-up, early
stopping, per-epoch checkpoints, exact resume):

``feature``   the backbone is frozen; its embeddings of every image (plus
              ``--aug-views N`` augmented views of each training image) are computed
              once, cached on disk (:mod:`skinage.training.features`) and the head
              trains on the cache in seconds.
``finetune``  the backbone trains too (all of it, or its last N blocks with
              ``--unfreeze N``) on augmented crops (:mod:`skinage.training.augment`),
              bf16 autocast where the CPU supports it, channels-last, crops decoded
              once into the crop cache and held in memory, so epochs decode nothing.
``distill``   a student (e.g. ``squeezenet1_1``) learns from a trained teacher run
              (``--teacher RUN``): soft targets at temperature T, the labels, and the
              teacher's embeddings through a projection (:mod:`skinage.training.distill`).

A run folder ``<project>/<name>`` (``runs/train``, ``runs/train2``, ...) holds
``args.yaml``, ``results.csv`` (one row per epoch), ``weights/best.*`` and
``weights/last.*`` (safetensors + JSON metadata), ``weights/last_state.pt``
(optimizer, scheduler, epoch, RNG states, early-stopping state; loaded with
``weights_only=True``), ``metrics.json`` (val and test at the best epoch),
``predictions.csv`` (test split) and ``set_aside.csv`` (unreadable images, if any).

Python API: ``skinage.train(data="m.csv", model="mobilenet_v2", mode="feature", epochs=30)``
returns a :class:`TrainResult` (``.run_dir``, ``.metrics``; usable as a path).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ..config import (ConfigError, Progress, RunFolder, Seeded, Threaded, add_config_arguments,
                     build_config, config_from_args, config_to_dict)
from ..models.decode import predict_labels  # noqa: F401 - re-exported: training selects epochs with it
from ..utils import atomic_write, atomic_write_json, atomic_write_text, say

__all__ = ["TrainConfig", "TrainResult", "train", "add_arguments", "run", "compute_metrics",
           "predict_labels", "increment_run_dir"]

MODES = ("feature", "finetune", "distill")
# mode -> (epochs, lr, batch size, weight decay)
MODE_DEFAULTS = {
    "feature": (100, 1e-3, 64, 1e-4),
    "finetune": (10, 3e-4, 32, 1e-4),
    "distill": (30, 1e-3, 32, 1e-4),
}


@dataclass
class TrainConfig(RunFolder, Threaded, Progress, Seeded):
    """Every option of ``skinage train`` (= keyword of :func:`train`)."""

    data: Optional[Path] = field(default=None, metadata={"help": "manifest (CSV/Parquet written by `skinage ingest`)"})
    model: str = field(default="mobilenet_v2", metadata={"help": "backbone from the registry (`skinage models` lists them)"})
    mode: str = field(default="feature", metadata={"help": "feature: frozen backbone, cached embeddings; finetune: train the backbone too; distill: learn from --teacher", "choices": MODES})
    epochs: Optional[int] = field(default=None, metadata={"help": "passes over the training data (default: feature 100, finetune 10, distill 30)"})
    batch_size: Optional[int] = field(default=None, metadata={"help": "training batch size (default: feature 64, finetune/distill 32)"})
    lr: Optional[float] = field(default=None, metadata={"help": "peak AdamW learning rate (default: feature 1e-3, finetune 3e-4, distill 1e-3)"})
    weight_decay: Optional[float] = field(default=None, metadata={"help": "AdamW weight decay (default 1e-4)"})
    schedule: str = field(default="cosine", metadata={"help": "learning-rate schedule after warm-up", "choices": ("cosine", "step", "constant")})
    warmup: float = field(default=1.0, metadata={"help": "linear warm-up length in epochs (fractions allowed)"})
    step_size: Optional[int] = field(default=None, metadata={"help": "step schedule: epochs between x0.1 decays (default: epochs // 3)"})
    patience: int = field(default=10, metadata={"help": "stop after this many epochs without a better validation score (0 = never)"})
    select: str = field(default="auto", metadata={"help": "validation score that picks the best epoch (auto: qwk for ordered classes, else macro_f1)", "choices": ("auto", "qwk", "macro_f1", "accuracy", "loss")})
    hidden: tuple[int, ...] = field(default=(), metadata={"help": "hidden layer sizes of the head, e.g. 256,32 (empty: linear head)", "type": "ints"})
    dropout: tuple[float, ...] = field(default=(0.2,), metadata={"help": "dropout per hidden layer (one value for all)", "type": "floats"})
    batchnorm: bool = field(default=False, metadata={"help": "batch norm after each hidden layer of the head"})
    ordinal: Optional[str] = field(default=None, metadata={"help": "ordinal head for ordered grades: corn or coral (default: plain softmax)", "choices": ("none", "corn", "coral")})
    class_weights: bool = field(default=True, metadata={"help": "weight the loss by inverse class frequency"})
    balance: bool = field(default=False, metadata={"help": "balanced sampler (each class equally often) instead of class weights"})
    label_smoothing: float = field(default=0.0, metadata={"help": "label smoothing of the cross-entropy"})
    pretrained: bool = field(default=True, metadata={"help": "start the backbone from its ImageNet weights where installed"})
    size: Optional[int] = field(default=None, metadata={"help": "input side in pixels (default: the model's, 224)"})
    margin: float = field(default=0.0, metadata={"help": "extra margin around the bounding box, as a fraction of its size"})
    square: bool = field(default=False, metadata={"help": "square the bounding box before cropping"})
    mixup: float = field(default=0.0, metadata={"help": "finetune/distill: mix pairs of training images with a Beta(a, a) weight, a = this value (0 = off); in distill mode the teacher labels the mixed image (function matching)"})
    ema: float = field(default=0.0, metadata={"help": "finetune/distill: keep an exponential moving average of the weights, updated after every step with this decay (e.g. 0.995: a memory of about 1 / (1 - 0.995) = 200 steps); validation, checkpoints, evaluate and export use the average (0 = off)"})
    tta: str = field(default="none", metadata={"help": "finetune/distill: test-time augmentation of the validation and test scoring, kept in the checkpoint (so evaluate, predict and export use it): none, or flip (mean of the outputs of the image and its mirror; twice the inference cost)", "choices": ("none", "flip")})
    aug_views: int = field(default=0, metadata={"help": "feature mode: augmented views per training image added to the cache"})
    augment: str = field(default="flip,rotate,jitter,crop", metadata={"help": "augmentation steps: any of flip, rotate, jitter, crop, noise, or none (noise: Gaussian pixel noise, off by default)"})
    rotate: float = field(default=10.0, metadata={"help": "maximum rotation in degrees of the rotate step"})
    crop_scale: float = field(default=0.75, metadata={"help": "smallest area fraction kept by the crop step"})
    noise_std: float = field(default=0.03, metadata={"help": "noise step: each image's noise standard deviation is drawn uniformly from [0, this], in units of the 0..1 pixel range (0.03 = about 8 of 255 levels)"})
    unfreeze: Optional[int] = field(default=None, metadata={"help": "finetune: train only the last N backbone blocks (default: all)"})
    precision: str = field(default="auto", metadata={"help": "auto: bf16 autocast where the CPU supports it (AVX-512 BF16 / AMX) for finetune/distill, fp32 features; or fp32 / bf16", "choices": ("auto", "fp32", "bf16")})
    channels_last: bool = field(default=True, metadata={"help": "channels-last memory format (faster convolutions on CPU)"})
    init: Optional[Path] = field(default=None, metadata={"help": "start from the weights of this run or checkpoint (same model and classes), e.g. a feature-mode run's trained head before fine-tuning"})
    teacher: Optional[Path] = field(default=None, metadata={"help": "distill: the teacher run folder or checkpoint"})
    temperature: float = field(default=2.0, metadata={"help": "distill: softmax temperature of the soft targets"})
    alpha: float = field(default=0.5, metadata={"help": "distill: weight of the soft-target loss (1 - alpha for the labels)"})
    embed_weight: float = field(default=1.0, metadata={"help": "distill: weight of the embedding (cosine) loss through a projection; 0 = logits only"})
    embed_center: bool = field(default=True, metadata={"help": "distill: match the teacher's embedding minus its mean over the training crops (what tells faces apart) rather than the raw, mostly shared, embedding"})
    workers: int = field(default=1, metadata={"help": "threads decoding images ahead of the model"})
    device: str = field(default="cpu", metadata={"help": "cpu or cuda"})
    resume: Optional[Path] = field(default=None, metadata={"help": "continue the killed run in this folder from its last checkpoint (other options come from its args.yaml)"})
    interrupt_at: Optional[float] = field(default=None, metadata={"help": "testing: stop as if killed after this many epochs (fractions allowed)", "cli": False})


@dataclass
class TrainResult:
    """What :func:`train` returns: the run folder and the final metrics; usable as a path."""

    run_dir: Path
    metrics: dict

    def __fspath__(self) -> str:
        return str(self.run_dir)

    def __str__(self) -> str:
        return str(self.run_dir)


class TrainingInterrupted(KeyboardInterrupt):
    """Raised by the ``interrupt_at`` test hook, like a Ctrl-C or a kill."""


# ----------------------------------------------------------------------------------------------
# small helpers


def increment_run_dir(project: Path, name: str, exist_ok: bool = False) -> Path:
    """``project/name``, or ``project/name2``, ``name3``, ... if taken.

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> increment_run_dir(d, "train").name
    'train'
    >>> (d / "train").mkdir(); increment_run_dir(d, "train").name
    'train2'
    """
    project = Path(project)
    p = project / name
    if exist_ok or not p.exists():
        return p
    i = 2
    while (project / f"{name}{i}").exists():
        i += 1
    return project / f"{name}{i}"


def compute_metrics(y: np.ndarray, pred: np.ndarray, num_classes: int, ordered: bool) -> dict:
    """Accuracy, macro-F1 and (ordered classes) QWK, MAE, within-one, with scikit-learn.

    >>> m = compute_metrics(np.array([0, 1, 2, 2]), np.array([0, 1, 1, 2]), 3, True)
    >>> m["accuracy"], round(m["mae"], 2), m["within_one"]
    (0.75, 0.25, 1.0)
    """
    from sklearn.metrics import accuracy_score, cohen_kappa_score, f1_score

    y = np.asarray(y, dtype=np.int64)
    pred = np.asarray(pred, dtype=np.int64)
    labels = list(range(num_classes))
    out = {
        "n": int(len(y)),
        "accuracy": float(accuracy_score(y, pred)),
        "macro_f1": float(f1_score(y, pred, labels=labels, average="macro", zero_division=0)),
    }
    if ordered:
        with np.errstate(all="ignore"):
            k = cohen_kappa_score(y, pred, labels=labels, weights="quadratic")
        out["qwk"] = float(k) if np.isfinite(k) else 0.0
        out["mae"] = float(np.abs(y - pred).mean())
        out["within_one"] = float((np.abs(y - pred) <= 1).mean())
    return out


def _seed_epoch(seed: int, epoch: int) -> "Any":
    """Seed every RNG from (seed, epoch): each epoch is a pure function of the state before it."""
    import torch

    s = (int(seed) * 1_000_003 + int(epoch) * 7919 + 17) % (2**31 - 1)
    random.seed(s)
    np.random.seed(s)
    torch.manual_seed(s)
    return torch.Generator().manual_seed(s)


def _rng_state() -> dict:
    import torch

    npst = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "numpy_keys": torch.from_numpy(npst[1].astype(np.int64)),
        "numpy_pos": int(npst[2]),
        "numpy_gauss": [int(npst[3]), float(npst[4])],
        "python": repr(random.getstate()),
    }


def _set_rng_state(st: dict) -> None:
    import ast

    import torch

    torch.set_rng_state(st["torch"])
    np.random.set_state(("MT19937", st["numpy_keys"].numpy().astype(np.uint32), st["numpy_pos"],
                         int(st["numpy_gauss"][0]), float(st["numpy_gauss"][1])))
    random.setstate(ast.literal_eval(st["python"]))


def _lr_lambda(cfg: TrainConfig, steps_per_epoch: int):
    total = max(1, cfg.epochs * steps_per_epoch)
    warm = int(round(cfg.warmup * steps_per_epoch))
    warm = min(warm, total - 1) if total > 1 else 0
    step_size = cfg.step_size or max(1, cfg.epochs // 3)

    def f(step: int) -> float:
        if warm > 0 and step < warm:
            return (step + 1) / warm
        if cfg.schedule == "constant":
            return 1.0
        if cfg.schedule == "step":
            return 0.1 ** ((step // steps_per_epoch) // step_size)
        t = (step - warm) / max(1, total - warm)
        return 0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * min(1.0, t)))

    return f


def _carve_val(df, seed: int):
    """No 'val' rows: move ~15 % of the training people to val (grouped by subject)."""
    from sklearn.model_selection import GroupShuffleSplit

    tr = df.index[df["split"] == "train"]
    groups = df.loc[tr, "subject"].astype(str).values if "subject" in df.columns else np.arange(len(tr))
    gss = GroupShuffleSplit(n_splits=1, test_size=0.15, random_state=seed)
    _, vi = next(gss.split(np.zeros(len(tr)), groups=groups))
    df = df.copy()
    df.loc[tr[vi], "split"] = "val"
    return df


# ----------------------------------------------------------------------------------------------
# configuration


def resolve_config(cfg: TrainConfig) -> TrainConfig:
    """Fill mode-dependent defaults and check combinations; raises ConfigError."""
    if cfg.data is None:
        raise ConfigError("no data: give --data MANIFEST (a CSV/Parquet written by `skinage ingest`)")
    if cfg.mode not in MODES:
        raise ConfigError(f"mode must be one of {', '.join(MODES)}")
    from ..models.registry import get_config, list_models

    if cfg.model not in list_models():
        try:
            get_config(cfg.model)
        except ValueError as e:
            raise ConfigError(str(e)) from None
    ep, lr, bs, wd = MODE_DEFAULTS[cfg.mode]
    ordinal = None if cfg.ordinal in (None, "", "none") else cfg.ordinal
    upd: dict[str, Any] = {
        "epochs": cfg.epochs if cfg.epochs is not None else ep,
        "lr": cfg.lr if cfg.lr is not None else lr,
        "batch_size": cfg.batch_size if cfg.batch_size is not None else bs,
        "weight_decay": cfg.weight_decay if cfg.weight_decay is not None else wd,
        "ordinal": ordinal,
        # absolute, so args.yaml (and --resume) work from any folder
        "data": Path(cfg.data).absolute(),
        "teacher": Path(cfg.teacher).absolute() if cfg.teacher is not None else None,
        "init": Path(cfg.init).absolute() if cfg.init is not None else None,
    }
    cfg = dataclasses.replace(cfg, **upd)
    if cfg.epochs < 1:
        raise ConfigError("--epochs must be at least 1")
    if cfg.batch_size < 1:
        raise ConfigError("--batch-size must be at least 1")
    try:
        preprocess(cfg)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if cfg.mode == "distill" and cfg.teacher is None:
        raise ConfigError("distill mode needs --teacher RUN (a run folder or checkpoint of a trained model)")
    if cfg.mode != "feature" and cfg.aug_views:
        say("  note: --aug-views applies to feature mode only (finetune/distill augment on the fly)")
    if cfg.mixup < 0:
        raise ConfigError(f"--mixup must be >= 0 (the Beta distribution's parameter), not {cfg.mixup}")
    if cfg.mixup > 0 and cfg.mode == "feature":
        say("  note: --mixup applies to finetune/distill only (feature mode trains on cached embeddings)")
    if cfg.aug_views < 0:
        raise ConfigError("--aug-views must be >= 0")
    if not 0.0 <= cfg.ema < 1.0:
        raise ConfigError(f"--ema is the decay of the moving average per step, in [0, 1) (e.g. 0.995; 0 = off), not {cfg.ema}")
    if cfg.ema > 0 and cfg.mode == "feature":
        say("  note: --ema applies to finetune/distill only (feature mode trains a small head on cached embeddings)")
    if cfg.tta != "none" and cfg.mode == "feature":
        raise ConfigError("--tta applies to finetune/distill (feature mode scores cached embeddings of the plain image); "
                          "for a feature-mode run use `skinage evaluate RUN --tta flip` or `skinage export RUN --tta flip`")
    from .augment import parse_augment

    parse_augment(cfg.augment)
    return cfg


def preprocess(cfg: TrainConfig, region: Optional[str] = None):
    """The run's :class:`skinage.preprocess.Preprocess`: the model's, with ``--size``, ``--margin``, ``--square``."""
    from ..preprocess import Preprocess

    return Preprocess.for_model(cfg.model, size=cfg.size, margin=cfg.margin, square=cfg.square, region=region)


# ----------------------------------------------------------------------------------------------
# data


class _Data:
    """The manifest split into train / val / test with labels; unreadable rows set aside."""

    def __init__(self, cfg: TrainConfig):
        from ..data.manifest import read_manifest

        man = read_manifest(cfg.data)
        df = man.df.reset_index(drop=True)
        if "split" not in df.columns:
            raise ConfigError(f"{cfg.data} has no 'split' column; ingest it with `skinage ingest` (which makes person-grouped splits)")
        df["split"] = df["split"].astype(str).str.lower()
        if not (df["split"] == "train").any():
            raise ConfigError(f"{cfg.data} has no rows with split == 'train'")
        self.carved_val = False
        if not (df["split"] == "val").any():
            df = _carve_val(df, cfg.seed)
            self.carved_val = True
            say("  no 'val' split in the manifest: 15 % of the training people (by subject) are used for validation")
        self.df = df
        self.classes = [str(c) for c in man.classes]
        self.meta = dict(man.meta or {})
        self.ordered = bool(self.meta.get("ordinal", False)) or bool(cfg.ordinal)
        self.K = len(self.classes)
        if self.K < 2:
            raise ConfigError(f"{cfg.data} has {self.K} class(es); a classifier needs at least 2")
        self.set_aside: list[dict] = []
        self.model_name = cfg.model

    def rows(self, split: str):
        return self.df[self.df["split"] == split]

    def aside(self, row, reason: str) -> None:
        self.set_aside.append({"path": str(row.get("path", "")), "split": str(row.get("split", "")), "reason": reason})


# ----------------------------------------------------------------------------------------------
# the run


class _Run:
    def __init__(self, cfg: TrainConfig, run_dir: Path, resuming: bool):
        import torch

        self.cfg = cfg
        self.dir = run_dir
        self.wdir = run_dir / "weights"
        self.resuming = resuming
        self.pre = None  # the Preprocess, set once the manifest is read (its region)
        self.device = cfg.device if cfg.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
        from .features import resolve_precision

        p = cfg.precision
        if p == "auto":
            self.precision = "fp32" if cfg.mode == "feature" else resolve_precision("auto", self.device)
        else:
            self.precision = p
        self.rows: list[dict] = []

    # -- artifacts ------------------------------------------------------------------------------
    def write_results(self) -> None:
        import pandas as pd

        with atomic_write(self.dir / "results.csv", "w", encoding="utf-8", newline="") as f:
            pd.DataFrame(self.rows).to_csv(f, index=False, float_format="%.6g")

    def ckpt_meta(self, epoch: int) -> dict:
        cfg = self.cfg
        from ..models.checkpoint import versions

        return {
            "classes": self.data.classes,
            "ordered": self.data.ordered,
            "mode": cfg.mode,
            "epoch": epoch,
            "preprocessing": self.pre.to_meta(),
            "versions": versions(),
            "train": {"data": str(cfg.data), "seed": cfg.seed, "precision": self.precision,
                      "teacher": str(cfg.teacher) if cfg.teacher else None},
        }


def _build_model(cfg: TrainConfig, K: int):
    from ..models.model import SkinageModel
    from ..models.weights import WeightsMissing

    try:
        return SkinageModel(cfg.model, K, hidden=cfg.hidden, dropout=cfg.dropout, batchnorm=cfg.batchnorm,
                            ordinal=cfg.ordinal, pretrained=cfg.pretrained, tta=cfg.tta)
    except WeightsMissing as e:
        raise ConfigError(f"{e}; or train from scratch with --no-pretrained") from None


def _init_from(model, path, classes) -> None:
    """Copy every tensor of a run's checkpoint whose name and shape match (``--init``)."""
    from ..models.checkpoint import load_checkpoint

    src, meta = load_checkpoint(path)
    if meta["model"] != model.backbone_name:
        raise ConfigError(f"--init {path} is a {meta['model']} checkpoint; this run trains {model.backbone_name}")
    if [str(c) for c in meta["classes"]] != list(classes):
        raise ConfigError(f"--init {path} predicts {meta['classes']}, this data has {list(classes)}")
    own = model.state_dict()
    take = {k: v for k, v in src.state_dict().items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(take, strict=False)
    skipped = len(own) - len(take)
    model.weights_from = f"run:{meta.get('checkpoint', path)} (from {meta.get('weights_from')})"
    say(f"  initialised from {path}: {len(take)} tensors" + (f", {skipped} kept fresh (head differs)" if skipped else ""))


def _class_weights(y: np.ndarray, K: int):
    import torch

    counts = np.bincount(y, minlength=K).astype(np.float64)
    w = np.where(counts > 0, len(y) / (K * np.maximum(counts, 1)), 0.0)
    return torch.tensor(w, dtype=torch.float32)


def _order(n: int, y, balance: bool, gen):
    """Index order of one epoch: a permutation, or a class-balanced draw with replacement."""
    import torch

    if not balance:
        return torch.randperm(n, generator=gen)
    counts = torch.bincount(y)
    w = 1.0 / counts[y].float()
    return torch.multinomial(w, n, replacement=True, generator=gen)


def train(data=None, model: str | None = None, mode: str | None = None, **options) -> TrainResult:
    """Train a model from a manifest into a run folder (the ``skinage train`` command).

    Parameters
    ----------
    data : path
        Manifest written by ``skinage ingest``.
    model : str
        Registry backbone (``mobilenet_v2``, ``efficientnet_lite0``, ``squeezenet1_1``).
    mode : str
        ``feature``, ``finetune`` or ``distill``.
    **options
        Any other :class:`TrainConfig` field, e.g. ``epochs=20, hidden=(256, 32), ordinal="corn"``.
        A misspelt option raises :class:`skinage.config.ConfigError` with a suggestion.

    Returns
    -------
    TrainResult
        ``.run_dir`` (the run folder) and ``.metrics`` (the content of ``metrics.json``).
    """
    values = dict(options)
    if data is not None:
        values["data"] = data
    if model is not None:
        values["model"] = model
    if mode is not None:
        values["mode"] = mode
    if isinstance(values.get("cfg"), TrainConfig):
        cfg = values.pop("cfg")
    else:
        cfg = build_config(TrainConfig, values)
    return _train(cfg)


def _load_resume(cfg: TrainConfig) -> tuple[TrainConfig, Path]:
    import yaml

    run_dir = Path(cfg.resume)
    if (run_dir / "weights" / "last_state.pt").is_file() is False and (run_dir.name == "weights"):
        run_dir = run_dir.parent
    args = run_dir / "args.yaml"
    if not args.is_file():
        raise FileNotFoundError(f"{run_dir} is not a run folder (no args.yaml); --resume takes the folder of a run started with `skinage train`")
    if not (run_dir / "weights" / "last_state.pt").is_file():
        raise FileNotFoundError(f"{run_dir} has no weights/last_state.pt: the run stopped before finishing its first epoch; start it again")
    saved = yaml.safe_load(args.read_text(encoding="utf-8")) or {}
    saved.pop("resume", None)
    saved.pop("precision_used", None)
    new = build_config(TrainConfig, saved)
    if cfg.interrupt_at is not None:
        new = dataclasses.replace(new, interrupt_at=cfg.interrupt_at)
    if cfg.threads:
        new = dataclasses.replace(new, threads=cfg.threads)
    new = dataclasses.replace(new, progress=cfg.progress)
    return new, run_dir


def _train(cfg: TrainConfig) -> TrainResult:
    import torch

    threads_before = torch.get_num_threads()
    try:
        return _train_inner(cfg)
    finally:
        torch.set_num_threads(threads_before)


def _train_inner(cfg: TrainConfig) -> TrainResult:
    import torch

    resuming = cfg.resume is not None
    if resuming:
        cfg, run_dir = _load_resume(cfg)
    cfg = resolve_config(cfg)
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    data = _Data(cfg)  # read the manifest first: a wrong --data leaves no empty run folder behind
    if not resuming:
        run_dir = increment_run_dir(cfg.project, cfg.name or "train", cfg.exist_ok)
    run = _Run(cfg, run_dir, resuming)
    (run_dir / "weights").mkdir(parents=True, exist_ok=True)
    if not resuming:
        import yaml

        saved = config_to_dict(cfg)
        saved.pop("interrupt_at", None)
        saved["resume"] = None
        saved["precision_used"] = run.precision
        atomic_write_text(run_dir / "args.yaml", yaml.safe_dump(saved, sort_keys=False, allow_unicode=True))
    say(f"skinage train: {cfg.mode} {cfg.model} on {cfg.data} -> {run_dir}" + (" (resuming)" if resuming else ""))
    t_start = time.perf_counter()
    run.data = data
    run.pre = preprocess(cfg, data.meta.get("region"))
    torch.manual_seed(cfg.seed)
    model = _build_model(cfg, data.K)
    if cfg.init is not None and not resuming:
        _init_from(model, cfg.init, data.classes)
    if cfg.mode == "feature":
        from .loops import FeatureTask

        task = FeatureTask(run, model)
    else:
        from .loops import ImageTask

        task = ImageTask(run, model)
    from .loops import fit

    try:
        fit(run, task)
    except KeyboardInterrupt:
        if (run_dir / "weights" / "last_state.pt").is_file():
            say(f"\n  interrupted; continue with: skinage train --resume {run_dir}")
        raise
    metrics = task.finish()
    metrics["time_s"] = round(time.perf_counter() - t_start, 2)
    metrics["set_aside"] = len(data.set_aside)
    atomic_write_json(run_dir / "metrics.json", metrics)
    if data.set_aside:
        import pandas as pd

        with atomic_write(run_dir / "set_aside.csv", "w", encoding="utf-8", newline="") as f:
            pd.DataFrame(data.set_aside).to_csv(f, index=False)
        say(f"  {len(data.set_aside)} image(s) set aside (unreadable); reasons in {run_dir / 'set_aside.csv'}")
    _summary(metrics, run_dir)
    return TrainResult(run_dir, metrics)


def _summary(m: dict, run_dir: Path) -> None:
    def fmt(d):
        if not d:
            return "-"
        keys = [k for k in ("accuracy", "macro_f1", "qwk", "mae") if k in d]
        return ", ".join(f"{k} {d[k]:.3f}" for k in keys) + f" (n={d['n']})"

    say(f"  best epoch {m.get('best_epoch')}: val {fmt(m.get('val'))}")
    say(f"  test: {fmt(m.get('test'))}")
    say(f"  done in {m.get('time_s')} s; results in {run_dir}")


# ----------------------------------------------------------------------------------------------
# CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, TrainConfig)


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(TrainConfig, args)
    res = _train(cfg)
    print(res.run_dir)
    return 0
