"""``skinage tune``: Optuna search of the head's hyper-parameters on cached features.

The backbone's embeddings of every train and val image (plus up to ``--aug-views``
augmented views of each) come from the feature cache of ``feature`` mode, so a trial
only trains small heads: seconds, not hours. Each trial is scored by person-grouped
cross-validation on the train + val part of the manifest (the test split is never
looked at): ``--folds`` stratified folds grouped by ``subject``, one head per fold,
the out-of-fold predictions pooled and scored by QWK for ordered classes, macro-F1
otherwise. Trials that are clearly worse after a few folds are pruned (median rule).

Searched: dropout, hidden layer sizes, batch norm, batch size, learning rate,
weight decay and the number of augmented views. The run folder ``<project>/<name>``
(``runs/tune``, ``runs/tune2``, ...) receives ``args.yaml``, ``trials.csv`` (one row
per trial, written after every trial), ``best.yaml`` (the best options, ready for
``skinage train``) and ``best.json`` (with its score); ``--train-best`` then trains that
configuration in ``feature`` mode into ``<project>/<name>-best``.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from ..config import (ConfigError, Progress, RunFolder, Seeded, Threaded, add_config_arguments,
                     build_config, config_from_args, config_to_dict)
from ..models.decode import predict_labels
from ..utils import atomic_write, atomic_write_json, atomic_write_text, say
from . import optim
from .augment import DEFAULT_AUGMENT
from .batches import epoch_batches, n_batches
from .run import increment_run_dir
from .selection import compute_metrics, selection_metric, worst_if_nan

__all__ = ["TuneConfig", "TuneResult", "tune", "fit_head", "HIDDEN_CHOICES", "add_arguments", "run"]

#: hidden-layer choices of the search ("" = linear head)
HIDDEN_CHOICES = ("", "64", "128", "256", "256,32", "512,64")


@dataclass
class TuneConfig(RunFolder, Threaded, Progress, Seeded):
    """Every option of ``skinage tune`` (= keyword of :func:`tune`)."""

    data: Optional[Path] = field(default=None, metadata={"help": "manifest (CSV/Parquet written by `skinage ingest`)"})
    model: str = field(default="mobilenet_v2", metadata={"help": "backbone from the registry"})
    trials: int = field(default=30, metadata={"help": "number of Optuna trials"})
    folds: int = field(default=5, metadata={"help": "person-grouped cross-validation folds on train + val"})
    epochs: int = field(default=40, metadata={"help": "epochs per head (cosine schedule, no early stopping)"})
    aug_views: int = field(default=2, metadata={"help": "largest number of augmented views per training image tried (0: none)"})
    augment: str = field(default=DEFAULT_AUGMENT, metadata={"help": "augmentation steps of the views"})
    ordinal: Optional[str] = field(default=None, metadata={"help": "ordinal head (corn / coral) for every trial", "choices": ("none", "corn", "coral")})
    select: str = field(default="auto", metadata={"help": "score of a trial, on the pooled out-of-fold predictions: auto (qwk for ordered classes, else macro_f1), qwk (ordered classes only), macro_f1, accuracy; an undefined score (NaN) ranks below every defined one", "choices": ("auto", "qwk", "macro_f1", "accuracy")})
    size: Optional[int] = field(default=None, metadata={"help": "input side in pixels (default: the model's)"})
    margin: float = field(default=0.0, metadata={"help": "extra margin around the bounding box"})
    square: bool = field(default=False, metadata={"help": "square the bounding box before cropping"})
    pretrained: bool = field(default=True, metadata={"help": "ImageNet weights for the backbone"})
    precision: str = field(default="fp32", metadata={"help": "precision of the feature extraction", "choices": ("auto", "fp32", "bf16")})
    timeout: Optional[float] = field(default=None, metadata={"help": "stop starting new trials after this many seconds"})
    train_best: bool = field(default=False, metadata={"help": "train the best configuration (feature mode) when the search ends"})


@dataclass
class TuneResult:
    run_dir: Path
    best_params: dict
    best_score: float
    trials: "object"  # pandas DataFrame
    best_run: Optional[Path] = None

    def __fspath__(self) -> str:
        return str(self.run_dir)


def fit_head(X, y, num_classes: int, *, hidden=(), dropout=0.0, batchnorm=False, ordinal=None, lr=1e-3,
             weight_decay=1e-4, batch_size=64, epochs=40, seed=0, class_weights=True, warmup=1.0):
    """Train a :class:`skinage.models.heads.Head` on embeddings (AdamW, warm-up + cosine, as ``skinage train``).

    Returns the head in eval mode.

    >>> import torch
    >>> g = np.random.default_rng(0)
    >>> X = np.r_[g.normal(-1, 1, (40, 5)), g.normal(1, 1, (40, 5))].astype("float32"); y = np.r_[[0] * 40, [1] * 40]
    >>> head = fit_head(X, y, 2, epochs=20, lr=1e-2, batch_size=16)
    >>> acc = (head(torch.from_numpy(X)).argmax(1).numpy() == y).mean(); bool(acc > 0.9)
    True
    """
    import torch

    from ..models.heads import Head, make_loss

    g = torch.Generator().manual_seed(int(seed))
    torch.manual_seed(int(seed))
    Xt = torch.as_tensor(np.asarray(X, dtype=np.float32))
    yt = torch.as_tensor(np.asarray(y, dtype=np.int64))
    head = Head(Xt.shape[1], num_classes, hidden=hidden, dropout=dropout, batchnorm=batchnorm, ordinal=ordinal)
    loss_fn = make_loss(num_classes, ordinal, optim.class_weights(yt.numpy(), num_classes) if class_weights else None)
    opt = optim.adamw(head.parameters(), lr, weight_decay)
    n = len(yt)
    sched = optim.lr_scheduler(opt, epochs, n_batches(n, batch_size), warmup)
    head.train()
    for _ in range(epochs):
        for idx in epoch_batches(n, batch_size, g):
            loss = loss_fn(head(Xt[idx]), yt[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    return head.eval()


def _hidden(s: str) -> tuple:
    return tuple(int(v) for v in s.split(",") if v)


def tune(data=None, model: str | None = None, **options) -> TuneResult:
    """Search head hyper-parameters (the ``skinage tune`` command); see the module doc."""
    from .device import torch_threads

    values = dict(options)
    if data is not None:
        values["data"] = data
    if model is not None:
        values["model"] = model
    cfg = build_config(TuneConfig, values)
    with torch_threads(cfg.threads):
        return _tune(cfg)


@dataclass
class _Problem:
    """What every trial scores on: the embeddings (N, 1 + views, D) of the train + val rows, their labels and folds."""

    feats: np.ndarray
    y: np.ndarray
    folds: list
    K: int
    ordered: bool
    ordinal: Optional[str]
    metric: str
    set_aside: list
    features_dir: str


def _problem(cfg: TuneConfig) -> _Problem:
    """Read the manifest, embed its train + val rows (through the feature cache) and cut the person-grouped folds."""
    import torch
    from sklearn.model_selection import StratifiedGroupKFold

    from ..data.manifest import read_manifest
    from ..models.model import SkinageModel
    from ..preprocess import Preprocess
    from .device import resolve_precision
    from .features import FeatureCache, finite_rows

    man = read_manifest(cfg.data)
    try:
        pre = Preprocess.for_model(cfg.model, size=cfg.size, margin=cfg.margin, square=cfg.square,
                                   region=man.meta.get("region"))
    except ValueError as e:
        raise ConfigError(str(e)) from None
    ordinal = None if cfg.ordinal in (None, "", "none") else cfg.ordinal
    ordered = bool(man.meta.get("ordinal", False)) or bool(ordinal)
    try:
        metric = selection_metric(cfg.select, ordered)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    df = man.df
    df = df[df["split"].astype(str).str.lower().isin(["train", "val"])].reset_index(drop=True)
    torch.manual_seed(cfg.seed)
    net = SkinageModel(cfg.model, len(man.classes), pretrained=cfg.pretrained)
    cache = FeatureCache(net, pre, precision=resolve_precision(cfg.precision), progress=cfg.progress)
    bad: set[int] = set()
    set_aside = []

    def on_error(i, reason):
        bad.add(i)
        set_aside.append({"path": str(df.iloc[i]["path"]), "reason": reason})

    t0 = time.perf_counter()
    feats = cache.get(df, views=cfg.aug_views, aug_spec=cfg.augment, desc="features", on_error=on_error)
    ok = finite_rows(feats)  # feats is memory-mapped from the cache: copied only when rows must go
    ok[list(bad)] = False
    if not ok.all():
        df, feats = df[ok].reset_index(drop=True), feats[ok]
    say(f"  features: {cache.stats['computed']} computed, {cache.stats['reused']} reused ({time.perf_counter() - t0:.1f} s); "
        f"{len(set_aside)} image(s) set aside")
    y = df["label"].astype(int).to_numpy()
    groups = df["subject"].astype(str).to_numpy() if "subject" in df.columns else np.arange(len(df)).astype(str)
    cv = StratifiedGroupKFold(n_splits=cfg.folds, shuffle=True, random_state=cfg.seed)
    folds = list(cv.split(np.zeros(len(y)), y, groups))
    return _Problem(feats, y, folds, len(man.classes), ordered, ordinal, metric, set_aside, str(cache.dir))


def _objective(cfg: TuneConfig, pb: _Problem):
    """Optuna's objective: a trial's options -> its pooled out-of-fold score (NaN, undefined, ranks worst)."""
    import optuna
    import torch

    def objective(trial: "optuna.Trial") -> float:
        hidden = _hidden(trial.suggest_categorical("hidden", list(HIDDEN_CHOICES)))
        params = {
            "hidden": hidden,
            "dropout": trial.suggest_float("dropout", 0.0, 0.6),
            "batchnorm": trial.suggest_categorical("batchnorm", [False, True]) if hidden else False,
            "batch_size": trial.suggest_categorical("batch_size", [16, 32, 64, 128]),
            "lr": trial.suggest_float("lr", 1e-4, 1e-2, log=True),
            "weight_decay": trial.suggest_float("weight_decay", 1e-6, 1e-1, log=True),
        }
        views = trial.suggest_int("aug_views", 0, cfg.aug_views) if cfg.aug_views > 0 else 0
        feats, y, K = pb.feats, pb.y, pb.K
        oof = np.full((len(y), K), np.nan, dtype=np.float64)
        fold_scores = []
        for f, (tr, va) in enumerate(pb.folds):
            Xtr = feats[tr][:, : 1 + views].reshape(-1, feats.shape[-1])
            head = fit_head(Xtr, np.repeat(y[tr], 1 + views), K, ordinal=pb.ordinal, epochs=cfg.epochs,
                            seed=cfg.seed + f, **params)
            with torch.no_grad():
                probs = head.probs(head(torch.from_numpy(feats[va][:, 0]))).numpy()
            oof[va] = probs
            m = compute_metrics(y[va], predict_labels(probs, pb.ordinal), K, pb.ordered)
            fold_scores.append(m[pb.metric])
            trial.report(float(np.mean([worst_if_nan(s) for s in fold_scores])), f)
            if trial.should_prune():
                raise optuna.TrialPruned()
        m = compute_metrics(y, predict_labels(oof, pb.ordinal), K, pb.ordered)
        for k, v in m.items():
            trial.set_user_attr(f"cv_{k}", v)
        trial.set_user_attr("fold_scores", [round(s, 4) for s in fold_scores])
        return worst_if_nan(m[pb.metric])

    return objective


def _search(cfg: TuneConfig, run_dir: Path, objective, metric: str):
    """Run the Optuna study (TPE, median pruning), writing trials.csv after every trial."""
    import optuna
    from tqdm.auto import tqdm

    def save_trials(study):
        with atomic_write(run_dir / "trials.csv", "w", encoding="utf-8", newline="") as fh:
            study.trials_dataframe().to_csv(fh, index=False)

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=cfg.seed)
    pruner = optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)
    study = optuna.create_study(direction="maximize", sampler=sampler, pruner=pruner, study_name=run_dir.name)
    bar = tqdm(total=cfg.trials, desc="trials", unit="trial", disable=not cfg.progress, dynamic_ncols=True)

    def cb(study, trial):
        save_trials(study)
        bar.update(1)
        try:
            bar.set_postfix_str(f"best {metric} {study.best_value:.4f}")
        except ValueError:
            pass

    study.optimize(objective, n_trials=cfg.trials, timeout=cfg.timeout, callbacks=[cb])
    bar.close()
    save_trials(study)
    return study


def _tune(cfg: TuneConfig) -> TuneResult:
    import optuna
    import yaml

    if cfg.data is None:
        raise ConfigError("no data: give --data MANIFEST")
    if cfg.trials < 1 or cfg.folds < 2:
        raise ConfigError("--trials must be >= 1 and --folds >= 2")
    run_dir = increment_run_dir(cfg.project, cfg.name or "tune", cfg.exist_ok)
    say(f"skinage tune: {cfg.trials} trials, {cfg.folds}-fold person-grouped CV, {cfg.model} features -> {run_dir}")
    pb = _problem(cfg)  # first: a wrong manifest or option leaves no run folder behind
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "args.yaml", yaml.safe_dump(config_to_dict(cfg), sort_keys=False, allow_unicode=True))
    study = _search(cfg, run_dir, _objective(cfg, pb), pb.metric)
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not done:
        raise RuntimeError("no trial completed")
    best = study.best_trial
    bp = dict(best.params)
    train_opts = {
        "model": cfg.model, "mode": "feature", "size": cfg.size, "margin": cfg.margin, "square": cfg.square,
        "hidden": list(_hidden(bp["hidden"])), "dropout": [round(bp["dropout"], 4)],
        "batchnorm": bool(bp.get("batchnorm", False)), "batch_size": int(bp["batch_size"]),
        "lr": float(f"{bp['lr']:.3g}"), "weight_decay": float(f"{bp['weight_decay']:.3g}"),
        "aug_views": int(bp.get("aug_views", 0)), "augment": cfg.augment, "ordinal": pb.ordinal,
        "pretrained": cfg.pretrained, "seed": cfg.seed,
    }
    atomic_write_text(run_dir / "best.yaml", yaml.safe_dump(train_opts, sort_keys=False))
    summary = {"metric": pb.metric, "best_score": best.value, "best_trial": best.number, "params": train_opts,
               "cv": {k[3:]: v for k, v in best.user_attrs.items() if k.startswith("cv_")},
               "fold_scores": best.user_attrs.get("fold_scores"), "folds": cfg.folds,
               "trials_complete": len(done), "trials_pruned": sum(t.state == optuna.trial.TrialState.PRUNED for t in study.trials),
               "rows": int(len(pb.y)), "set_aside": pb.set_aside, "features_dir": pb.features_dir}
    atomic_write_json(run_dir / "best.json", summary)
    say(f"  best trial {best.number}: cv {pb.metric} {best.value:.4f} with {train_opts}")
    result = TuneResult(run_dir, train_opts, float(best.value), study.trials_dataframe())
    if cfg.train_best:
        _train_best(cfg, run_dir, train_opts, summary, result)
    return result


def _train_best(cfg: TuneConfig, run_dir: Path, train_opts: dict, summary: dict, result: TuneResult) -> None:
    """``--train-best``: train the best options in feature mode into ``<name>-best``; add it to best.json."""
    from .train import train

    opts = {k: v for k, v in train_opts.items() if k not in ("model", "mode")}
    res = train(data=cfg.data, model=cfg.model, mode="feature", project=cfg.project, name=f"{run_dir.name}-best",
                exist_ok=cfg.exist_ok, progress=cfg.progress, threads=cfg.threads, **opts)
    result.best_run = res.run_dir
    summary["best_run"] = str(res.run_dir)
    summary["best_run_metrics"] = {"val": res.metrics.get("val"), "test": res.metrics.get("test")}
    atomic_write_json(run_dir / "best.json", summary)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, TuneConfig)


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(TuneConfig, args)
    values = config_to_dict(cfg)
    res = tune(**values)
    print(res.run_dir)
    return 0
