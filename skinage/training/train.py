"""``skinage train``: a manifest in, a trained, self-describing model in a run folder out.

Three modes share one loop (:mod:`skinage.training.loop`: AdamW, cosine or step schedule
with warm-up, early stopping, per-epoch checkpoints, exact resume):

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
``predictions.csv`` (test split) and ``set_aside.csv`` (unreadable images, if any); see
:mod:`skinage.training.run`.

The best epoch is the one with the best validation score ``--select`` (see
:mod:`skinage.training.selection`): an undefined score (NaN, e.g. QWK when the validation labels
and predictions hold one class between them) ranks below every defined one, and ties go to the
lower validation loss.

Python API: ``skinage.train(data="m.csv", model="mobilenet_v2", mode="feature", epochs=30)``
returns a :class:`TrainResult` (``.run_dir``, ``.metrics``; usable as a path).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from ..config import (ConfigError, Progress, RunFolder, Seeded, Threaded, add_config_arguments,
                     build_config, config_from_args)
from ..utils import say
from .augment import DEFAULT_AUGMENT
from .loop import TrainingInterrupted, finish, fit
from .optim import SCHEDULES

__all__ = ["TrainConfig", "TrainResult", "TrainingInterrupted", "train", "resolve_config", "preprocess",
           "add_arguments", "run", "MODES", "MODE_DEFAULTS"]

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
    schedule: str = field(default="cosine", metadata={"help": "learning-rate schedule after warm-up: cosine down to 0.01 of the peak, x0.1 every --step-size epochs, or constant", "choices": SCHEDULES})
    warmup: float = field(default=1.0, metadata={"help": "linear warm-up length in epochs (fractions allowed)"})
    step_size: Optional[int] = field(default=None, metadata={"help": "step schedule: epochs between x0.1 decays (default: epochs // 3)"})
    patience: int = field(default=10, metadata={"help": "stop after this many epochs without a better validation score (0 = never)"})
    select: str = field(default="auto", metadata={"help": "validation score that picks the best epoch (auto: qwk for ordered classes, else macro_f1; qwk needs ordered classes); an undefined score (NaN, e.g. qwk when one class occurs) counts as the worst, ties go to the lower validation loss", "choices": ("auto", "qwk", "macro_f1", "accuracy", "loss")})
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
    augment: str = field(default=DEFAULT_AUGMENT, metadata={"help": "augmentation steps (finetune / distill, and feature mode's --aug-views): any of flip, rotate, jitter, crop, noise, jpeg, blur, light, box, or none (noise: Gaussian pixel noise; jpeg, blur, light, box: phone photos: re-compression, blur, brightness / contrast / colour temperature, jitter of the box; see skinage/training/phone_augment.py)"})
    rotate: float = field(default=10.0, metadata={"help": "maximum rotation in degrees of the rotate step"})
    crop_scale: float = field(default=0.75, metadata={"help": "smallest area fraction kept by the crop step"})
    noise_std: float = field(default=0.03, metadata={"help": "noise step: each image's noise standard deviation is drawn uniformly from [0, this], in units of the 0..1 pixel range (0.03 = about 8 of 255 levels)"})
    unfreeze: Optional[int] = field(default=None, metadata={"help": "finetune: train only the last N backbone blocks (default: all)"})
    precision: str = field(default="auto", metadata={"help": "auto: bf16 autocast where the CPU supports it (AVX-512 BF16 / AMX) for finetune/distill, fp32 features; or fp32 / bf16", "choices": ("auto", "fp32", "bf16")})
    channels_last: bool = field(default=True, metadata={"help": "channels-last memory format (faster convolutions on CPU)"})
    sync_bn: bool = field(default=True, metadata={"help": "under torchrun: batch-norm statistics over the whole global batch, as in one process (one all-reduce per batch-norm layer and step, forward and backward); --no-sync-bn: each rank's own rows (cheaper on slow links)"})
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
    rank: int = 0  #: this process's rank in a torchrun launch (only rank 0 wrote the run)

    def __fspath__(self) -> str:
        return str(self.run_dir)

    def __str__(self) -> str:
        return str(self.run_dir)


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
    _check_combinations(cfg)
    return cfg


def _check_combinations(cfg: TrainConfig) -> None:
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


def preprocess(cfg: TrainConfig, region: Optional[str] = None):
    """The run's :class:`skinage.preprocess.Preprocess`: the model's, with ``--size``, ``--margin``, ``--square``."""
    from ..preprocess import Preprocess

    return Preprocess.for_model(cfg.model, size=cfg.size, margin=cfg.margin, square=cfg.square, region=region)


# ----------------------------------------------------------------------------------------------
# the command


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
    """The options of the run ``cfg.resume`` continues (its args.yaml; threads, progress and the test hook
    from ``cfg``) and its folder."""
    from .run import read_resume_args

    run_dir, saved = read_resume_args(cfg.resume)
    new = build_config(TrainConfig, saved)
    if cfg.interrupt_at is not None:
        new = dataclasses.replace(new, interrupt_at=cfg.interrupt_at)
    if cfg.threads:
        new = dataclasses.replace(new, threads=cfg.threads)
    new = dataclasses.replace(new, progress=cfg.progress)
    return new, run_dir


def _train(cfg: TrainConfig) -> TrainResult:
    """Train ``cfg``: in this process, or as one rank of a ``torchrun`` launch (:mod:`skinage.training.distributed`).

    Rank 0 chooses the run folder (and whether it resumes one) and tells the others; the other ranks print
    nothing. Under torchrun each rank uses the node's cores / ``LOCAL_WORLD_SIZE`` threads unless ``--threads``.
    """
    from ..utils import quiet
    from .device import torch_threads
    from .distributed import start, threads_per_rank

    dist = start(_device_of(cfg))
    threads = threads_per_rank(cfg.threads, dist.local_world) if dist.torchrun else cfg.threads
    with quiet(not dist.main), torch_threads(threads), warnings.catch_warnings():
        if not dist.main:
            warnings.simplefilter("ignore")  # rank 0 shows them once
        decided = _choose_run(cfg, dist) if dist.main else None
        cfg, run_dir, resuming = dist.broadcast(decided)
        if not dist.main:
            cfg = dataclasses.replace(cfg, progress=False)
        return _run(cfg, run_dir, resuming, dist)


def _device_of(cfg: TrainConfig) -> str:
    """The device the run will train on (a resumed run's from its args.yaml), which picks the backend."""
    if cfg.resume is not None:
        from .run import read_resume_args

        try:
            return str(read_resume_args(cfg.resume)[1].get("device", cfg.device))
        except (FileNotFoundError, OSError, ValueError):
            pass  # reported by _choose_run
    return cfg.device


def _choose_run(cfg: TrainConfig, dist) -> tuple[TrainConfig, Path, bool]:
    """The resolved options, the run folder and whether it resumes: a new folder, ``--resume RUN``, or, for
    workers restarted by ``torchrun --max-restarts``, the folder this torchrun run started (resumed from its
    last epoch; started again if it had finished none)."""
    from .run import increment_run_dir, remember_run, remembered_run

    project, run_dir = cfg.project, None
    if cfg.resume is None and dist.restart > 0 and dist.run_id:
        prev = remembered_run(project, dist.run_id)
        if prev is not None and (prev / "weights" / "last_state.pt").is_file():
            say(f"  torchrun restart {dist.restart}: resuming {prev}")
            cfg = dataclasses.replace(cfg, resume=prev)
        elif prev is not None:
            say(f"  torchrun restart {dist.restart}: {prev} finished no epoch; starting it again")
            run_dir = prev
    resuming = cfg.resume is not None
    if resuming:
        cfg, run_dir = _load_resume(cfg)
    cfg = resolve_config(cfg)
    if run_dir is None:
        run_dir = increment_run_dir(cfg.project, cfg.name or "train", cfg.exist_ok)
    if dist.run_id:
        remember_run(project, dist.run_id, run_dir)
    return cfg, Path(run_dir), resuming


def _run(cfg: TrainConfig, run_dir: Path, resuming: bool, dist) -> TrainResult:
    """Train the resolved ``cfg`` into a new run folder, or continue the one in ``run_dir``."""
    import torch

    from .data import TrainData
    from .run import Run
    from .selection import selection_metric
    from .start import build_model, init_from

    data = TrainData(cfg.data, cfg.seed, cfg.ordinal)  # first: a wrong --data leaves no empty run folder behind
    try:
        selection_metric(cfg.select, data.ordered)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    digests = dist.all_gather(data.digest())
    if len(set(digests)) > 1:
        raise RuntimeError(f"the ranks built different splits from {cfg.data} (digests {digests}): every node must "
                           "read the same manifest and images at the same paths")
    run = Run(cfg, run_dir, data, preprocess(cfg, data.region), resuming, dist)
    run.start()
    if dist.active and cfg.batch_size % dist.world:
        say(f"  note: --batch-size {cfg.batch_size} (the global batch) does not divide by {dist.world} processes: each "
            f"takes {-(-cfg.batch_size // dist.world)} rows of a batch, which is padded with its own first rows")
    say(f"skinage train: {cfg.mode} {cfg.model} on {cfg.data} -> {run_dir}" + (" (resuming)" if resuming else "")
        + (f" [{dist.world} processes, {dist.backend}]" if dist.active else ""))
    t_start = time.perf_counter()
    torch.manual_seed(cfg.seed)
    model = build_model(cfg, data.K)
    if cfg.init is not None and not resuming:
        init_from(model, cfg.init, data.classes)
    task = _task(run, model)
    try:
        best_epoch = fit(run, task)
    except KeyboardInterrupt:
        if run.has_state() and dist.main:
            say(f"\n  interrupted; continue with: skinage train --resume {run_dir}")
        raise
    metrics = finish(run, task, best_epoch)
    metrics.update(dist.describe(), threads_per_rank=torch.get_num_threads(), split_digests=digests)
    del task, model
    dist.shutdown()  # every collective is done: rank 0's writing below cannot time out the others
    metrics["time_s"] = round(time.perf_counter() - t_start, 2)
    metrics["set_aside"] = len(data.set_aside)
    run.write_metrics(metrics)
    aside = run.write_set_aside()
    if aside is not None:
        say(f"  {len(data.set_aside)} image(s) set aside (unreadable); reasons in {aside}")
    _summary(metrics, run_dir)
    return TrainResult(run_dir, metrics, dist.rank)


def _task(run, model):
    """The task of the run's mode: a head on cached features, or the model on augmented crops."""
    if run.cfg.mode == "feature":
        from .feature_task import FeatureTask

        return FeatureTask(run, model)
    from .image_task import ImageTask

    return ImageTask(run, model)


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
    if res.rank == 0:
        print(res.run_dir)
    return 0
