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
import math
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
from .bootstrap import bootstrap_ci, paired_bootstrap_difference
from .fusion import fuse_persons, metrics_by_view
from .metrics import (
    HEADLINE,
    ORDINAL_KEYS,
    classification_metrics,
    confusion,
    expected_calibration_error,
    metrics_from_confusion,
    per_class_metrics,
)

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
        "help": "test-time augmentation: auto (the checkpoint's own, none unless trained with --tta), none, or flip "
                "(mean of the outputs of each image and its mirror)", "choices": ("auto", "none", "flip")})
    gradcam: int = field(default=8, metadata={"help": "Grad-CAM examples of each kind (right / worst wrong); 0 = none"})
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
# finding things


def _read_yaml(path: Path) -> dict:
    try:
        import yaml

        return yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except Exception:  # an unreadable args.yaml only costs the default manifest
        return {}


def _run_dir(run: Path) -> Path:
    """The run folder of a run folder, a weights file or a weights stem."""
    run = Path(run)
    if run.is_dir():
        return run
    if run.parent.name == "weights":
        return run.parent.parent
    return run.parent


def run_manifest_path(run: Path, meta: dict | None = None) -> Path | None:
    """The manifest a run was trained on: ``args.yaml`` ``data``, else the checkpoint's ``train.data``."""
    rd = _run_dir(run)
    cands = []
    args = rd / "args.yaml"
    if args.is_file():
        a = _read_yaml(args)
        cands += [a.get("data"), a.get("manifest")]
    meta = meta or {}
    tr = meta.get("train") if isinstance(meta.get("train"), dict) else {}
    cands += [tr.get("data"), meta.get("manifest")]
    for c in cands:
        if c and str(c) not in ("None", ""):
            p = Path(str(c))
            for q in (p, rd / p, Path.cwd() / p):
                if q.is_file():
                    return q
    return None


# ----------------------------------------------------------------------------------------------
# scoring (no model, no images: also used for baselines and by `compare`)


def _ci_metrics(y, pred, groups, k, ordinal, n_boot, seed) -> dict:
    """Figures with intervals; ``pred`` as classes (N,) or probabilities (N, K) for expected figures."""
    if np.ndim(pred) == 2:
        point = metrics_from_confusion(_soft_confusion(y, pred, k), ordinal)
        point["n"] = int(len(y))
    else:
        point = classification_metrics(y, pred, k, ordinal)
    ci = bootstrap_ci(y, pred, groups=groups, n_classes=k, n_boot=n_boot, seed=seed, ordinal=ordinal)
    point["ci"] = {key: list(v) for key, v in ci.items()}
    return point


def _soft_confusion(y, probs, k) -> np.ndarray:
    """Expected confusion counts: row ``y_i`` receives ``probs[i]``."""
    c = np.zeros((k, k))
    np.add.at(c, np.asarray(y).astype(int), np.asarray(probs, dtype=float))
    return c


def _subjects(df) -> np.ndarray:
    """Person ids; an image without one is a person of its own."""
    s = df["subject"].astype(str).to_numpy() if "subject" in df.columns else np.array([""] * len(df))
    own = np.array([f"__image_{i}" for i in range(len(df))])
    return np.where((s == "") | (s == "nan"), own, s)


def score_predictions(y, probs, subjects, classes, ordinal: bool, views=None, baselines: dict | None = None,
                      n_boot: int = 1000, seed: int = 0, ordinal_head: str | None = None) -> dict:
    """Every figure of an evaluation from labels and probabilities (model and baselines).

    Parameters
    ----------
    y : (N,) int labels; probs : (N, K) model probabilities (or None for baselines only)
    subjects : (N,) person ids; views : (N,) view names or None
    baselines : ``{name: BaselineResult}`` scored on the same rows

    Returns the ``metrics.json`` dict (``image``, ``person``, ``by_view``, ``per_class``, ...).
    """
    y = np.asarray(y).astype(int)
    k = len(classes)
    subjects = np.asarray(subjects).astype(str)
    n_persons = len(np.unique(subjects))
    has_persons = n_persons < len(y)
    groups = subjects if has_persons else None
    systems: dict[str, dict] = {}
    if probs is not None:
        probs = np.asarray(probs, dtype=float)
        # the model's class by its head's own rule (the rank of an ordinal head), as training chose epochs by
        systems["model"] = {"probs": probs, "pred": predict_labels(probs, ordinal_head),
                            "description": "the image model", "expected": False, "ordinal_head": ordinal_head}
    skipped = {}
    for name, b in (baselines or {}).items():
        if name.endswith("_skipped"):
            skipped[b.name] = b.description
            continue
        systems[name] = {"probs": b.probs, "pred": b.pred, "description": b.description,
                         "expected": bool(getattr(b, "expected", False))}
    for s in systems.values():  # what is scored: classes, or probabilities for expected figures
        s["score"] = s["probs"] if s["expected"] else s["pred"]
    out: dict[str, Any] = {
        "classes": list(classes), "ordinal": bool(ordinal), "n_images": int(len(y)), "n_persons": int(n_persons),
        "bootstrap": {"unit": "person" if has_persons else "image", "resamples": int(n_boot), "seed": int(seed),
                      "level": 0.95},
        "class_counts": np.bincount(y, minlength=k).tolist(),
        "systems": {name: s["description"] for name, s in systems.items()},
        "baselines_skipped": skipped,
        "image": {},
    }
    for name, s in systems.items():
        out["image"][name] = _ci_metrics(y, s["score"], groups, k, ordinal, n_boot, seed)
    if "model" in systems:
        pred = systems["model"]["pred"]
        out["confusion"] = confusion(y, pred, k).tolist()
        out["per_class"] = per_class_metrics(y, pred, k, classes)
        out["ece"] = expected_calibration_error(probs, y, n_bins=10)
        keys = [kk for kk in ("accuracy", "f1_macro", "qwk", "mae") if ordinal or kk not in ORDINAL_KEYS]
        out["gain_over_baselines"] = {}
        for name, s in systems.items():
            if name == "model":
                continue
            d = paired_bootstrap_difference(y, pred, s["score"], groups=groups, n_classes=k, n_boot=n_boot,
                                            seed=seed, ordinal=ordinal, keys=keys)
            out["gain_over_baselines"][name] = {kk: {"difference": v[0], "ci": [v[1], v[2]]} for kk, v in d.items()}
    # a perfect (or null) score makes every resample identical: the bootstrap interval collapses.
    # Say so, with the exact (Clopper-Pearson) bound for "all n persons right": (0.025) ** (1 / n).
    out["notes"] = []
    for name, mm in out["image"].items():
        if mm.get("accuracy") == 1.0:
            lo = 0.025 ** (1.0 / n_persons)
            out["notes"].append(
                f"{name}: every image right, so the bootstrap interval collapses to [1, 1]; with {n_persons} "
                f"{'persons' if has_persons else 'images'} all right, the exact 95 % lower bound of the "
                f"accuracy is {lo:.3f} (Clopper-Pearson)")
    # person level: average each person's probabilities
    if has_persons:
        out["person"] = {}
        persons_table = None
        for name, s in systems.items():
            f = fuse_persons(s["probs"], y, subjects, ordinal_head=s.get("ordinal_head"))
            m = _ci_metrics(f.y_true, f.probs if s["expected"] else f.y_pred, None, k, ordinal, n_boot, seed)
            m["label_disagreements"] = f.n_label_disagreements
            out["person"][name] = m
            if name == "model":
                persons_table = f.table
                out["person_confusion"] = confusion(f.y_true, f.y_pred, k).tolist()
        out["_persons_table"] = persons_table
    if views is not None:
        v = np.asarray(views).astype(str)
        if len(set(v.tolist()) - {""}) > 1:
            out["by_view"] = {}
            for name, s in systems.items():
                if not s["expected"]:
                    out["by_view"][name] = metrics_by_view(y, s["pred"], v, k, ordinal)
    return out


# ----------------------------------------------------------------------------------------------
# the model


def _infer(model, df, pre, batch_size: int, progress: bool):
    """Probabilities (N, K) and embeddings (N, D) of the readable rows; the rest set aside."""
    import torch

    from ..data.crops import iter_crops
    from ..data.images import CropCache
    from ..data.manifest import row_bbox

    recs = df.to_dict("records")
    keep, probs, embs, aside = [], [], [], []
    for idx, x, errors in iter_crops(pre, [(str(r["path"]), row_bbox(r)) for r in recs], batch_size=batch_size,
                                     cache=CropCache(), progress=progress, desc="evaluate"):
        aside += [{"path": str(recs[i].get("path", "")), "reason": str(e) or type(e).__name__} for i, e in errors]
        if len(idx):
            x = torch.from_numpy(x).permute(0, 3, 1, 2).float().div_(255.0)
            with torch.inference_mode():
                out, emb = model.outputs_and_features(x)  # outputs with the model's tta; plain-view embeddings
                p = model.probs_from_outputs(out)
            keep += idx.tolist()
            probs.append(p.float().numpy())
            embs.append(emb.float().numpy())
    k = model.num_classes
    probs = np.concatenate(probs) if probs else np.zeros((0, k))
    embs = np.concatenate(embs) if embs else np.zeros((0, model.feature_dim))
    return np.asarray(keep, dtype=int), probs, embs, aside


def _crops(df, idx, pre) -> np.ndarray:
    from ..data.images import CropCache
    from ..data.manifest import row_bbox

    cache = CropCache()
    return np.stack([pre.load(str(r["path"]), row_bbox(r), cache=cache) for r in df.iloc[idx].to_dict("records")])


def _pick_gradcam(y, probs, pred, n: int, ordinal: bool):
    """Indices of confident right answers (spread over classes) and of the worst wrong ones."""
    conf = probs[np.arange(len(pred)), pred]
    right = np.flatnonzero(pred == y)
    by_class = [list(right[y[right] == c][np.argsort(-conf[right[y[right] == c]])]) for c in range(probs.shape[1])]
    pick = []
    while len(pick) < n and any(by_class):
        for lst in by_class:
            if lst and len(pick) < n:
                pick.append(lst.pop(0))
    wrong = np.flatnonzero(pred != y)
    err = np.abs(pred[wrong] - y[wrong]) if ordinal else np.zeros(len(wrong))
    order = np.lexsort((-conf[wrong], -err))  # biggest level error first, then most confident
    return np.asarray(pick, dtype=int), wrong[order][:n]


def _write_plots(out_dir: Path, run_dir: Path | None, model, df, y, probs, emb, classes, ordinal, metrics,
                 cfg: EvaluateConfig, pre, pred) -> dict:
    """The plots of an evaluation; ``pred``: the model's classes (by its head's rule), None without a model."""
    from . import plots
    files = {}
    if "confusion" in metrics:
        files["confusion"] = plots.plot_confusion(metrics["confusion"], classes, out_dir / "confusion_matrix.png",
                                                  "image level")
    if "person_confusion" in metrics:
        files["person_confusion"] = plots.plot_confusion(metrics["person_confusion"], classes,
                                                         out_dir / "confusion_matrix_persons.png",
                                                         "person level (views averaged)")
    if run_dir is not None:
        p = plots.plot_training_curves(run_dir / "results.csv", out_dir / "training_curves.png")
        if p:
            files["training_curves"] = p
    if probs is not None and len(y):
        files["reliability"] = plots.plot_reliability(probs, y, out_dir / "reliability.png")
    if emb is not None and cfg.embedding != "none" and len(y) >= 3:
        files["embeddings"] = plots.plot_embeddings(emb, y, classes, out_dir / "embeddings.png", cfg.embedding,
                                                    ordinal, cfg.seed, pred=pred)
    if model is not None and cfg.gradcam > 0 and len(y):
        import torch

        right, wrong = _pick_gradcam(y, probs, pred, cfg.gradcam, ordinal)
        for kind, idx in (("right", right), ("wrong", wrong)):
            if len(idx) == 0:
                continue
            imgs = _crops(df, idx, pre)
            x = torch.from_numpy(imgs).permute(0, 3, 1, 2).float().div(255.0)
            cams, _ = plots.gradcam(model, x, target=pred[idx])
            titles = [f"true {classes[y[i]]} / pred {classes[p]}\np={probs[i, p]:.2f}  {Path(str(df.iloc[i]['path'])).name[:22]}"
                      for i, p in zip(idx, pred[idx])]
            title = ("most confident right answers" if kind == "right"
                     else "worst wrong answers (largest error, then most confident)")
            files[f"gradcam_{kind}"] = plots.plot_gradcam(imgs, cams, titles, out_dir / f"gradcam_{kind}.png", title)
    return files


# ----------------------------------------------------------------------------------------------
# evaluate


def _select(df, split: str, where: str):
    if split == "all":
        return df.reset_index(drop=True)
    if "split" not in df.columns:
        raise ConfigError(f"{where} has no 'split' column; use --split all")
    sub = df[df["split"].astype(str).str.lower() == split]
    if len(sub) == 0:
        have = sorted(set(df["split"].astype(str)))
        raise ConfigError(f"{where} has no rows in split '{split}' (it has: {', '.join(have) or 'none'}); "
                          f"choose one with --split")
    return sub.reset_index(drop=True)


def _align_labels(df, data_classes, model_classes, where):
    """Map the evaluation manifest's labels onto the model's class list by name."""
    if list(data_classes) == list(model_classes):
        return df
    index = {c: i for i, c in enumerate(model_classes)}
    unknown = sorted(set(df["class_name"].astype(str)) - set(index) - {""})
    if unknown:
        raise ConfigError(f"{where} has classes the model does not know: {unknown}; the model's classes are "
                          f"{list(model_classes)}")
    df = df.copy()
    df["label"] = df["class_name"].astype(str).map(index).fillna(-1).astype(int)
    return df


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
    from ..data.manifest import read_manifest

    model = meta = None
    run_dir = None
    if cfg.baselines_only:
        if cfg.data is None:
            raise ConfigError("--baselines-only needs --data MANIFEST")
    else:
        if cfg.run is None:
            raise ConfigError("give the run folder to evaluate (or --baselines-only --data MANIFEST)")
        import torch

        from ..models.checkpoint import load_checkpoint

        if cfg.threads:
            torch.set_num_threads(int(cfg.threads))
        model, meta = load_checkpoint(cfg.run, tta=cfg.tta)
        run_dir = _run_dir(Path(cfg.run))
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
    df = _select(man.df, split, str(data_path))
    if meta:
        df = _align_labels(df, man.classes, classes, str(data_path))
    set_aside = []
    unlabeled = df["label"].astype(int) < 0
    if unlabeled.any():
        for p in df.loc[unlabeled, "path"]:
            set_aside.append({"path": str(p), "reason": "no label (evaluate needs labelled rows; use skinage predict)"})
        df = df[~unlabeled].reset_index(drop=True)
    if len(df) == 0:
        raise ConfigError(f"no labelled rows to evaluate in {data_path} (split {split})")
    # training rows for the baselines: the run's own manifest's train split
    train_df, train_from = None, None
    for cand in ([own_path] if own_path else []) + [data_path]:
        try:
            tm = man if Path(cand).resolve() == data_path.resolve() else read_manifest(cand)
        except (FileNotFoundError, OSError, ValueError):
            continue
        if "split" in tm.df.columns:
            t = tm.df[tm.df["split"].astype(str).str.lower() == "train"]
            if meta and list(tm.classes) != classes:
                t = _align_labels(t, tm.classes, classes, str(cand))
            t = t[t["label"].astype(int) >= 0]
            if len(t) and not (split == "all" and Path(cand).resolve() == data_path.resolve()):
                train_df, train_from = t.reset_index(drop=True), str(cand)
                break
    pre = None
    probs = emb = None
    if model is not None:
        from ..preprocess import Preprocess

        pre = Preprocess.from_meta(meta)
        say(f"skinage evaluate: {meta['model']} ({meta.get('mode', '?')}) from {cfg.run} on {len(df)} image(s) "
            f"of {data_path} [{split}]" + (f", test-time augmentation {meta['tta']}" if meta.get("tta") else ""))
        keep, probs, emb, aside = _infer(model, df, pre, cfg.batch_size, cfg.progress)
        set_aside += aside
        df = df.iloc[keep].reset_index(drop=True)
        if len(df) == 0:
            raise ConfigError("none of the images could be read; see the reasons above")
        for a in aside:
            say(f"  set aside {a['path']}: {a['reason']}")
    y = df["label"].astype(int).to_numpy()
    subjects = _subjects(df)
    baselines = {}
    metadata_excluded: list[str] = []
    if train_df is not None:
        b_groups = subjects if len(np.unique(subjects)) < len(subjects) else None
        label_key = (man.meta.get("options") or {}).get("label") if isinstance(man.meta, dict) else None
        exclude = label_source_columns(train_df, label_key)
        if exclude and not cfg.meta_features:
            say(f"  metadata baseline leaves out {', '.join(exclude)}: the label is made from it")
            metadata_excluded = exclude
        baselines = run_baselines(train_df, df, len(classes), groups=b_groups,
                                  features=list(cfg.meta_features) or None, seed=cfg.seed, exclude=exclude)
    else:
        say("  no training split found: baselines skipped (they are fitted on training rows)")
    views = df["view"].astype(str).to_numpy() if "view" in df.columns else None
    ordinal_head = (meta or {}).get("ordinal") or None
    m = score_predictions(y, probs, subjects, classes, ordinal, views, baselines, cfg.n_boot, cfg.seed,
                          ordinal_head=ordinal_head)
    pred = predict_labels(probs, ordinal_head) if probs is not None else None
    if probs is not None:
        m["decision_rule"] = decision_rule(ordinal_head)
    persons_table = m.pop("_persons_table", None)
    m.update({
        "run": str(cfg.run) if cfg.run else None,
        "data": str(data_path), "split": split, "train_rows_for_baselines": train_from,
        "set_aside": set_aside, "n_set_aside": len(set_aside), "metadata_excluded": metadata_excluded,
        "options": config_to_dict(cfg),
    })
    if meta:
        m["model"] = {"name": meta.get("model"), "mode": meta.get("mode"), "weights_from": meta.get("weights_from"),
                      "epoch": meta.get("epoch"), "checkpoint": meta.get("checkpoint"), "head": meta.get("head"),
                      "tta": meta.get("tta")}
    # output
    if cfg.out is not None:
        out_dir = Path(cfg.out)
    elif run_dir is not None:
        out_dir = run_dir
    else:
        out_dir = Path("runs") / "evaluate" / f"{data_path.stem}-baselines"
    out_dir.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    if probs is not None:
        import pandas as pd

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
    if cfg.plots:
        files.update(_write_plots(out_dir, run_dir, model, df, y, probs, emb, classes, ordinal, m, cfg, pre, pred))
    m["files"] = {k: os.path.relpath(v, out_dir) for k, v in files.items()}
    mpath = out_dir / "metrics.json"
    doc = {}
    if mpath.is_file():
        try:
            import json

            doc = json.loads(mpath.read_text(encoding="utf-8"))
        except (ValueError, OSError):
            doc = {}
    doc["evaluation"] = m
    if cfg.report:
        from .report import write_report

        files["report"] = write_report(m, out_dir, title=f"skinage evaluation: {cfg.run or data_path}")
        m["files"]["report"] = "report.html"
    atomic_write_json(mpath, doc)
    files["metrics"] = mpath
    print(format_tables(m))
    say(f"  written to {out_dir}: " + ", ".join(sorted(Path(v).name for v in files.values())))
    return EvaluateResult(out_dir, m, files)


# ----------------------------------------------------------------------------------------------
# printing

_SHORT = {"accuracy": "accuracy", "balanced_accuracy": "bal.acc", "f1_macro": "macro-F1", "f1_weighted": "wtd-F1",
          "precision_macro": "macro-P", "recall_macro": "macro-R", "qwk": "QWK", "mae": "MAE",
          "within_one": "within-1"}


def _z(v: float, nd: int) -> float:
    return 0.0 if abs(v) < 0.5 * 10 ** -nd else v  # no "-0.000"


def _fmt_ci(v, ci=None, nd=3) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    s = f"{_z(v, nd):.{nd}f}"
    if ci and all(c is not None and not math.isnan(c) for c in ci):
        s += f" [{_z(ci[0], nd):.{nd}f}, {_z(ci[1], nd):.{nd}f}]"
    return s


def _table(rows: list[list[str]]) -> str:
    w = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w[i]) if i == 0 else c.rjust(w[i]) for i, c in enumerate(r)) for r in rows]
    lines.insert(1, "  ".join("-" * x for x in w))
    return "\n".join(lines)


def headline_keys(ordinal: bool) -> list[str]:
    """The figures printed in the console tables (metrics.json and report.html hold them all)."""
    keys = ["accuracy", "balanced_accuracy", "f1_macro"]
    return keys + (["qwk", "mae", "within_one"] if ordinal else [])


def format_tables(m: dict) -> str:
    """The readable tables printed by ``skinage evaluate``."""
    keys = headline_keys(m.get("ordinal", True))
    parts = []
    b = m["bootstrap"]
    parts.append(f"{m['n_images']} images of {m['n_persons']} persons; split '{m.get('split')}' of {m.get('data')}")
    unit = "persons" if b["unit"] == "person" else "images"
    parts.append(f"\nImage level (95 % CI: {b['resamples']} bootstrap resamples over {unit})")
    rows = [["system"] + [_SHORT[k] for k in keys]]
    for name, mm in m["image"].items():
        rows.append([name] + [_fmt_ci(mm.get(k), mm["ci"].get(k)) for k in keys])
    parts.append(_table(rows))
    for name, why in (m.get("baselines_skipped") or {}).items():
        parts.append(f"  ({name} baseline skipped: {why})")
    for name, s in m.get("systems", {}).items():
        if name != "model":
            parts.append(f"  {name}: {s}")
    if m.get("metadata_excluded"):
        parts.append(f"  (metadata baseline leaves out {', '.join(m['metadata_excluded'])}: the label is made from it)")
    for note in m.get("notes") or []:
        parts.append(f"  note: {note}")
    if m.get("gain_over_baselines"):
        gk = list(next(iter(m["gain_over_baselines"].values())).keys())
        rows = [["model minus"] + [_SHORT[k] for k in gk]]
        for name, d in m["gain_over_baselines"].items():
            rows.append([name] + [f"{d[k]['difference']:+.3f} [{d[k]['ci'][0]:+.3f}, {d[k]['ci'][1]:+.3f}]" for k in gk])
        parts.append("\nGain of the model over each baseline (paired bootstrap, 95 % CI)")
        parts.append(_table(rows))
    if m.get("person"):
        parts.append(f"\nPerson level ({m['n_persons']} persons, each person's views averaged; CI over persons)")
        rows = [["system"] + [_SHORT[k] for k in keys]]
        for name, mm in m["person"].items():
            rows.append([name] + [_fmt_ci(mm.get(k), mm["ci"].get(k)) for k in keys])
        parts.append(_table(rows))
        dis = m["person"].get("model", next(iter(m["person"].values()))).get("label_disagreements", 0)
        if dis:
            parts.append(f"  {dis} person(s) whose images disagree in label (the majority label was used)")
    if m.get("by_view") and "model" in m["by_view"]:
        parts.append("\nBy view (model, image level)")
        vk = keys
        rows = [["view", "n"] + [_SHORT[k] for k in vk]]
        for r in m["by_view"]["model"]:
            rows.append([r["view"], str(r["n"])] + [_fmt_ci(r.get(k)) for k in vk])
        parts.append(_table(rows))
    if m.get("per_class"):
        parts.append("\nPer class (model, image level)")
        rows = [["class", "precision", "recall", "F1", "support", "predicted"]]
        for r in m["per_class"]:
            rows.append([r["class"], f"{r['precision']:.3f}", f"{r['recall']:.3f}", f"{r['f1']:.3f}",
                         str(r["support"]), str(r["predicted"])])
        parts.append(_table(rows))
    if "ece" in m:
        parts.append(f"\nExpected calibration error (10 bins): {m['ece']:.3f}")
    if m.get("n_set_aside"):
        parts.append(f"{m['n_set_aside']} image(s) set aside (unreadable or unlabelled), listed in metrics.json")
    return "\n".join(parts)


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
