#!/usr/bin/env python
"""Cross-source measurement: a UTKFace-trained age model on london-5view front views, given vs found crops.

Question (issue 22): a model trained on UTKFace's tight face crops scores much less on photos framed
differently. Does cutting the *found* face (``skinage ingest --find face``; ``skinage predict`` finds it
by itself) close the gap between sources? And does each phone-photo augmentation (``jpeg``, ``blur``,
``light``, ``box``) narrow it further?

Data
    * ``utk4_given``: ``skinage ingest utkface-age --remap UTK_REMAP4`` (the suite's utk4: the UTKFace images
      as they are, whole image = the crop).
    * ``utk4_found``: the same with ``--find face``; its split is set row by row from ``utk4_given`` (same
      train / val / test images; the images with no usable face are left out of it).
    * ``london_given`` / ``london_found``: the front views (``*_03.jpg``) of london-5view with an age, levels
      of the same 4 bins (<30, 30-49, 50-59, 60+, named like utk4's classes), whole 600x600 photos vs
      ``--find face``. Scored whole (``skinage evaluate --data``): these people are never trained on.

Runs (all mobilenet_v2; every setting fixed in advance, nothing chosen on a test split)
    * ``feature``: the suite's utk4 feature-mode head (hidden 512,128, dropout 0.4, 60 epochs).
    * ``finetune``: the suite's best recipe ``utk4_mnv2_finetune224_mixup_ema`` (224 px, hidden 256,
      dropout 0.3, weight decay 0.05, CORN, mixup 0.2, EMA 0.995, 12 epochs).
    * ``augment``: feature mode on found crops with 2 augmented views per training image, the default steps
      (flip,rotate,jitter,crop) alone and with each phone step, and with all four; 3 seeds of the head each.
    * ``finetune_aug``: the fine-tune recipe on found crops with ``--ft-augment``'s steps (chosen from the
      feature-mode results).

Each model is scored with ``skinage evaluate`` (95 % bootstrap intervals, trivial baselines fitted on the
UTKFace training split) on its own UTKFace test split and on both london sets. Results:
``benchmarks/results/cross_source.json`` (written after every run), tables in
``docs/results/cross_source.md`` (between its ``tables`` markers). Heavy: ``--lock /tmp/skinage-heavy.lock``
takes that lock around each step of work (as ``flock`` does), so other jobs of a shared machine run between them;
a run already in the work folder is scored again, not retrained.

    python benchmarks/bench_cross_source.py --steps prepare,feature,finetune,augment
    python benchmarks/bench_cross_source.py --steps finetune_aug --ft-augment flip,rotate,jitter,crop,light
    python benchmarks/bench_cross_source.py --render
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from suite import DOCS_RESULTS, RESULTS, ROOT, UTK_REMAP4  # noqa: E402

sys.path.insert(0, str(ROOT))
from run_all import extract_eval, machine_info  # noqa: E402

from skinage.utils import atomic_write_json, atomic_write_text, say  # noqa: E402

DATA = Path(os.environ.get("SKINAGE_SHARED_DATA", ROOT.parent / "shared" / "data"))
OUT_JSON = RESULTS / "cross_source.json"
OUT_MD = DOCS_RESULTS / "cross_source.md"
STEPS = ("prepare", "feature", "finetune", "augment", "finetune_aug")
#: age -> level, the bins of UTK_REMAP4's decades (10,20 | 30,40 | 50 | 60,70)
LEVELS = ((30, "10-29"), (50, "30-49"), (60, "50-59"), (200, "60-79"))
FEATURE = {"epochs": 60, "hidden": (512, 128), "dropout": (0.4,)}
FINETUNE = {"epochs": 12, "size": 224, "hidden": (256,), "dropout": (0.3,), "weight_decay": 0.05, "ordinal": "corn",
            "mixup": 0.2, "ema": 0.995}
BASE_AUGMENT = "flip,rotate,jitter,crop"
AUG_VIEWS = 2
AUG_SEEDS = (0, 1, 2)
PHONE = ("jpeg", "blur", "light", "box")


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _load() -> str:
    return ", ".join(f"{v:.2f}" for v in os.getloadavg())


# ----------------------------------------------------------------------------------------------- data
def level_of(age: float) -> str:
    """>>> level_of(29), level_of(30), level_of(54), level_of(61)
    ('10-29', '30-49', '50-59', '60-79')"""
    return next(name for top, name in LEVELS if age < top)


def prepare(work: Path, seed: int) -> dict:
    """The four manifests (given / found crops of UTKFace and of the london front views)."""
    import pandas as pd

    from skinage.data.ingest import ingest
    from skinage.data.manifest import read_manifest, write_manifest

    d = work / "data"
    d.mkdir(parents=True, exist_ok=True)
    utk = DATA / "utkface-age"
    t0 = time.perf_counter()
    ingest(str(utk), out=str(d / "utk4_given.csv"), remap=UTK_REMAP4, ordinal=True, seed=seed, quiet=True)
    t1 = time.perf_counter()
    ingest(str(utk), out=str(d / "utk4_found.csv"), remap=UTK_REMAP4, ordinal=True, seed=seed, quiet=True,
           find="face")
    t2 = time.perf_counter()
    given, found = read_manifest(d / "utk4_given.csv"), read_manifest(d / "utk4_found.csv")
    split = dict(zip(given.df["path"], given.df["split"]))
    found.df["split"] = found.df["path"].map(split)
    found.meta.setdefault("notes", []).append("split taken row by row from utk4_given.csv (bench_cross_source)")
    write_manifest(found, d / "utk4_found.csv")
    labels = pd.read_csv(DATA / "london-5view" / "labels.csv", dtype={"subject_id": str})
    front = labels[labels["file"].str.endswith("_03.jpg") & labels["age"].notna()]
    table = pd.DataFrame({"path": [str(DATA / "london-5view" / f) for f in front["file"]],
                          "subject": front["subject_id"], "level": [level_of(a) for a in front["age"]]})
    table.to_csv(d / "london_front.csv", index=False)
    for name, find in (("london_given", None), ("london_found", "face")):
        ingest(str(d / "london_front.csv"), out=str(d / f"{name}.csv"), label="level", path_col="path",
               subject_col="subject", ordinal=True, seed=seed, quiet=True, find=find)
    info = {"utk4_given_s": round(t1 - t0, 1), "utk4_found_s": round(t2 - t1, 1)}
    for name in ("utk4_given", "utk4_found", "london_given", "london_found"):
        m = read_manifest(d / f"{name}.csv")
        info[name] = {"rows": len(m.df), "classes": list(m.classes),
                      "by_split": m.df["split"].value_counts().to_dict(),
                      "by_class": m.df["class_name"].value_counts().to_dict(), "finder": m.meta.get("finder")}
    return info


# ----------------------------------------------------------------------------------------------- runs
def _trained(project: Path, name: str) -> Path | None:
    run = project / name
    return run if (run / "metrics.json").is_file() and (run / "weights" / "best.json").is_file() else None


def train_run(work: Path, name: str, data: str, mode: str, options: dict, seed: int) -> tuple[Path, float]:
    from skinage.training.train import train

    project = work / "runs"
    done = _trained(project, name)
    if done is not None:
        say(f"== {name}: trained already ({done}), scored again")
        return done, float(json.loads((done / "metrics.json").read_text()).get("time_s") or 0.0)
    say(f"\n== {name}: mobilenet_v2 {mode} on {data} {options} (load {_load()})")
    t0 = time.perf_counter()
    tr = train(data=str(work / "data" / f"{data}.csv"), model="mobilenet_v2", mode=mode, seed=seed,
               project=str(project), name=name, exist_ok=True, progress=False, **options)
    return Path(tr), time.perf_counter() - t0


def score(run: Path, seed: int, data: str | None, work: Path) -> dict:
    """evaluate's figures of ``run`` on its own test split (data None) or on all rows of a london manifest."""
    from skinage.evaluation.evaluate import evaluate

    opts = dict(seed=seed, progress=False, plots=False, report=False, gradcam=0, embedding="none")
    if data is None:
        res = evaluate(str(run), out=str(run / "eval_utk"), **opts)
    else:
        res = evaluate(str(run), data=str(work / "data" / f"{data}.csv"), out=str(run / f"eval_{data}"), **opts)
    return extract_eval(res.metrics)


def gap(run: Path, london: str, n_boot: int = 1000, seed: int = 0) -> dict:
    """UTKFace test minus ``london`` (accuracy, QWK, MAE): the point difference and a 95 % interval from
    independent bootstrap resamples of the two sets' images (one image per person in both)."""
    import numpy as np
    import pandas as pd

    from skinage.evaluation.metrics import classification_metrics

    sets = [pd.read_csv(run / d / "eval_predictions.csv") for d in ("eval_utk", f"eval_{london}")]
    keys = ("accuracy", "qwk", "mae")

    def figures(df):
        m = classification_metrics(df["label"].to_numpy(), df["pred"].to_numpy(), n_classes=4, ordinal=True)
        return np.array([m[k] for k in keys], dtype=float)

    point = figures(sets[0]) - figures(sets[1])
    rng = np.random.default_rng(seed)
    draws = np.array([figures(sets[0].iloc[rng.integers(0, len(sets[0]), len(sets[0]))])
                      - figures(sets[1].iloc[rng.integers(0, len(sets[1]), len(sets[1]))]) for _ in range(n_boot)])
    lo, hi = np.nanpercentile(draws, [2.5, 97.5], axis=0)
    return {k: [float(point[i]), float(lo[i]), float(hi[i])] for i, k in enumerate(keys)}


def model_entry(work: Path, name: str, data: str, mode: str, options: dict, seed: int, group: str) -> dict:
    run, secs = train_run(work, name, data, mode, options, seed)
    t0 = time.perf_counter()
    entry = {"name": name, "group": group, "train_data": data, "mode": mode, "seed": seed,
             "options": {k: list(v) if isinstance(v, tuple) else v for k, v in options.items()},
             "run": str(run), "train_time_s": round(secs, 1), "load_at_end_of_training": _load(),
             "utk_test": score(run, seed, None, work)}
    for ld in ("london_given", "london_found"):
        entry[ld] = score(run, seed, ld, work)
    entry["gap"] = {ld: gap(run, ld, seed=seed) for ld in ("london_given", "london_found")}
    entry["score_time_s"] = round(time.perf_counter() - t0, 1)
    entry["date"] = _now()
    t, lg, lf = (entry[k]["test"] for k in ("utk_test", "london_given", "london_found"))
    say(f"== {name}: QWK utk {t['qwk']:.3f}, london given {lg['qwk']:.3f}, found {lf['qwk']:.3f} (load {_load()})")
    return entry


def runs_of(step: str, ft_augment: str | None, seeds=AUG_SEEDS, tags=None) -> list[tuple]:
    """(name, train data, mode, options, seed, group) of each run of ``step``; ``augment`` runs of ``seeds``
    and of the ``tags`` given (base, jpeg, blur, light, box, all; None: every one)."""
    if step == "feature":
        return [(f"feature_{d}", f"utk4_{d}", "feature", FEATURE, 0, "setting") for d in ("given", "found")]
    if step == "finetune":
        return [(f"finetune_{d}", f"utk4_{d}", "finetune", FINETUNE, 0, "setting") for d in ("given", "found")]
    if step == "augment":
        specs = [("base", BASE_AUGMENT)] + [(p, f"{BASE_AUGMENT},{p}") for p in PHONE]
        specs.append(("all", f"{BASE_AUGMENT},{','.join(PHONE)}"))
        return [(f"augment_{tag}_s{s}", "utk4_found", "feature", {**FEATURE, "aug_views": AUG_VIEWS, "augment": spec},
                 s, "augment") for tag, spec in specs for s in seeds if tags is None or tag in tags]
    if step == "finetune_aug":
        if not ft_augment:
            raise SystemExit("finetune_aug needs --ft-augment SPEC (chosen from the feature-mode results)")
        tag = "_".join(p for p in ft_augment.split(",") if p in PHONE) or "base"
        return [(f"finetune_found_{tag}", "utk4_found", "finetune", {**FINETUNE, "augment": ft_augment}, 0,
                 "finetune_aug")]
    raise ValueError(step)


# ----------------------------------------------------------------------------------------------- output
@contextlib.contextmanager
def _locked(path: Path | None):
    """Hold ``path`` locked (fcntl.flock, exclusive) inside the block; nothing when None."""
    if path is None:
        yield
        return
    import fcntl

    with open(path, "a") as fh:
        t0 = time.perf_counter()
        fcntl.flock(fh, fcntl.LOCK_EX)
        if time.perf_counter() - t0 > 1:
            say(f"  (waited {time.perf_counter() - t0:.0f} s for {path})")
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _read() -> dict:
    return json.loads(OUT_JSON.read_text()) if OUT_JSON.is_file() else {"entries": []}


def _save(doc: dict) -> None:
    atomic_write_json(OUT_JSON, doc)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", default="prepare,feature,finetune,augment", help=f"some of {','.join(STEPS)}")
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "cross_source")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ft-augment", default=None, help="finetune_aug: the --augment of the fine-tune on found crops")
    ap.add_argument("--lock", type=Path, default=None, help="hold this lock file (flock) around each run")
    ap.add_argument("--aug-seeds", default=",".join(map(str, AUG_SEEDS)), help="augment: the head seeds to train")
    ap.add_argument("--aug-tags", default=None, help="augment: only these settings (base,jpeg,blur,light,box,all)")
    ap.add_argument("--render", action="store_true", help="only rewrite the tables of docs/results/cross_source.md")
    args = ap.parse_args(argv)
    from cross_source_render import render

    if args.render:
        render(_read(), OUT_MD)
        return 0
    doc = _read()
    doc.setdefault("machine", machine_info())
    steps = [s.strip() for s in args.steps.split(",") if s.strip()]
    for step in steps:
        if step == "prepare":
            with _locked(args.lock):
                say(f"== prepare (load {_load()})")
                doc["data"] = prepare(args.work, args.seed)
                doc["data"]["date"], doc["data"]["load"] = _now(), _load()
            _save(doc)
            continue
        seeds = tuple(int(x) for x in args.aug_seeds.split(","))
        tags = set(args.aug_tags.split(",")) if args.aug_tags else None
        for name, data, mode, options, seed, group in runs_of(step, args.ft_augment, seeds, tags):
            with _locked(args.lock):
                entry = model_entry(args.work, name, data, mode, options, seed, group)
            entry["command"] = "python benchmarks/bench_cross_source.py " + " ".join(argv or sys.argv[1:])
            doc = {**_read(), "machine": doc["machine"]}  # another process may have added entries meanwhile
            doc["entries"] = [e for e in doc.get("entries", []) if e["name"] != name] + [entry]
            _save(doc)
            render(doc, OUT_MD)
    return 0


if __name__ == "__main__":
    sys.exit(main())
