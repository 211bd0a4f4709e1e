#!/usr/bin/env python
"""The skinage benchmark suite on the real data in ../shared/data (``make bench``).

Sections (run in this order; choose with ``--only``/``--skip``):

``aihub``
    aihub-forehead-labels (labels only, 4,825 rows, 965 people): the label-only baselines
    (majority, stratified, age-only, age+gender) on the person-grouped test split, and by
    5-fold person-grouped cross-validation. This is the bar an image model of the real
    forehead data would have to clear.
``utk``
    utkface-age (3,700 aligned faces, no person ids: each image is its own group), the 4-level
    remap {10,20} {30,40} {50} {60,70} and the 7 decades: mobilenet_v2 and efficientnet_lite0
    in ``feature`` mode (and ``finetune`` in the full suite), squeezenet1_1 from scratch and
    distilled from the best teacher (the teacher is chosen by *validation* QWK).
``forehead``
    the same 4-level task on forehead crops: the top band of the aligned faces, bbox
    x 0.15-0.85, y 0.00-0.25 of the 200x200 images (pixels 30..170 x 0..50), written into the
    manifest's bbox columns. UTKFace's alignment cuts most of the forehead off, so the band holds
    what is left of the forehead, the eyebrows and often some hair: the closest real analogue of
    the forehead grade available here.
``london``
    london-5view (102 people x 5 angles, age binned 18-24 / 25-29 / 30+): image-level vs
    person-level (views fused) figures.
``speed``
    the speed benchmarks of the other issues (``benchmarks/bench_decode.py``, ``bench_train.py``,
    ``bench_infer.py``) when present, each in its own process; their JSON is collected.

Every training setting below is fixed in advance or chosen on validation splits only; the test
split is only scored. Seeds are fixed (``--seed``). Results: ``benchmarks/results/<section>.json``
and ``benchmarks/results/RESULTS.md`` (regenerated from all section files present, with date,
machine and command). Heavy: run it under ``flock /tmp/skinage-heavy.lock`` on shared machines.

Examples::

    python benchmarks/run_all.py --quick                  # feature-mode runs only (~15 min, 2 cores)
    python benchmarks/run_all.py --only aihub,london
    python benchmarks/run_all.py                          # everything, incl. fine-tuning and distillation
    python benchmarks/run_all.py --table-only             # rebuild RESULTS.md from the JSON files
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import shlex
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from skinage.utils import atomic_write_json, atomic_write_text, say  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
SECTIONS = ("aihub", "utk", "forehead", "london", "speed")
UTK_REMAP4 = "10,20:10-29 30,40:30-49 50:50-59 60,70:60-79"  # ordered levels (ordinal=True)
AIHUB_REMAP = "0,1:0 2,3:1 4:2 5,6:3"
FOREHEAD_BAND = (0.15, 0.00, 0.85, 0.25)  # x0, y0, x1, y1 as fractions of the 200x200 UTK image
LONDON_BINS = "-inf,25,30,inf"  # <25, 25-29, 30+
HEADLINE = ("accuracy", "f1_macro", "qwk", "mae", "within_one")
TARGETS = {"qwk": 0.82, "accuracy": 0.66, "student_qwk_gap": 0.05, "student_size_ratio": 2.0}


# ----------------------------------------------------------------------------- machine / provenance
def machine_info() -> dict:
    flags: list[str] = []
    model = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and not model:
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = line.split(":", 1)[1].split()
    except OSError:
        pass
    interesting = ("avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "amx_bf16",
                   "amx_int8", "amx_tile", "avx_vnni")
    info = {
        "cpu": model,
        "cores": os.cpu_count(),
        "cpu_flags": [f for f in interesting if f in flags],
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    for mod in ("torch", "torchvision", "timm", "onnxruntime", "sklearn"):
        try:
            info[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001 - provenance only
            info[mod] = None
    try:
        info["git_commit"] = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                                            capture_output=True, text=True, timeout=10).stdout.strip()
    except Exception:  # noqa: BLE001
        info["git_commit"] = None
    return info


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


# ----------------------------------------------------------------------------- small helpers
def _f(v, nd=3):
    if v is None or (isinstance(v, float) and v != v):
        return "–"
    s = f"{v:.{nd}f}"
    return s[1:] if s.startswith("-") and float(s) == 0 else s  # no "-0.000"


def _fci(m: dict | None, key: str, nd=3) -> str:
    if not m or m.get(key) is None:
        return "–"
    ci = (m.get("ci") or {}).get(key)
    s = _f(m[key], nd)
    if ci and ci[0] is not None:
        s += f" [{_f(ci[0], nd)}, {_f(ci[1], nd)}]"
    return s


def _scores(y, pred, groups, n_classes, seed) -> dict:
    """Headline metrics plus 95 % bootstrap CIs (over groups)."""
    from skinage.evaluation.bootstrap import bootstrap_ci
    from skinage.evaluation.metrics import classification_metrics

    m = classification_metrics(y, pred, n_classes=n_classes, ordinal=True)
    ci = bootstrap_ci(y, pred, groups=groups, n_classes=n_classes, n_boot=1000, seed=seed)
    out = {k: m.get(k) for k in (*HEADLINE, "balanced_accuracy", "n")}
    out["ci"] = {k: list(v) for k, v in ci.items() if k in HEADLINE}
    return out


def _ingest(source, out: Path, **opts):
    from skinage.data.ingest import ingest

    out.parent.mkdir(parents=True, exist_ok=True)
    ingest(str(source), out=str(out), **opts)
    from skinage.data.manifest import read_manifest

    return read_manifest(out)


# ----------------------------------------------------------------------------- section: aihub
def section_aihub(ctx: "Ctx") -> dict:
    import numpy as np
    from sklearn.model_selection import StratifiedGroupKFold

    from skinage.evaluation.baselines import run_baselines

    src = ctx.data / "aihub-forehead-labels" / "json_to_dataframe.csv"
    man = _ingest(src, ctx.work / "aihub" / "aihub.csv", labels_only=True, label="forehead_wrinkle",
                  subject_col="id", view_col="angle", remap=AIHUB_REMAP, seed=ctx.seed, quiet=True)
    df, k = man.df, len(man.classes)
    say(f"aihub: {len(df)} rows, {df['subject'].nunique()} people, classes {man.classes}, "
        f"counts {np.bincount(df['label'], minlength=k).tolist()}")
    entries = []

    def add(name, desc, pred, evdf, protocol):
        e = {"task": "forehead wrinkle, 4 levels (labels only)", "dataset": "aihub-forehead-labels",
             "baseline": name, "description": desc, "protocol": protocol,
             "test": _scores(evdf["label"].to_numpy(), pred, evdf["subject"].to_numpy(), k, ctx.seed)}
        entries.append(e)
        t = e["test"]
        say(f"aihub: {protocol:<28} {name:<22} acc {_fci(t, 'accuracy')}  qwk {_fci(t, 'qwk')}")

    # the test split, scored by `skinage evaluate --baselines-only` itself (person bootstrap, expected
    # figures for the stratified guesser)
    from skinage.evaluation.evaluate import evaluate

    for feats, label in ((None, "metadata (age+gender)"), (("age",), "age only")):
        ev = evaluate(baselines_only=True, data=str(man.path), meta_features=feats or (), plots=False,
                      report=False, out=str(ctx.work / "aihub" / ("eval_" + "_".join(feats or ("all",)))),
                      seed=ctx.seed, progress=False).metrics
        for name, m in (ev.get("image") or {}).items():
            if feats and name != "metadata":
                continue
            e = {"task": "forehead wrinkle, 4 levels (labels only)", "dataset": "aihub-forehead-labels",
                 "baseline": label if name == "metadata" else name,
                 "description": (ev.get("systems") or {}).get(name, ""), "protocol": "test split (by person)",
                 "test": _flat_metrics(m)}
            entries.append(e)
            say(f"aihub: test split (by person)       {e['baseline']:<22} acc {_fci(e['test'], 'accuracy')}  "
                f"qwk {_fci(e['test'], 'qwk')}")

    # 5-fold person-grouped CV of the age-only model: every person predicted once, out of fold
    pred = np.full(len(df), -1)
    cv = StratifiedGroupKFold(n_splits=5, shuffle=True, random_state=ctx.seed)
    for tr, te in cv.split(df, df["label"], df["subject"]):
        r = run_baselines(df.iloc[tr], df.iloc[te], k, features=["age"], seed=ctx.seed)
        pred[te] = r["metadata"].pred
    add("age only", "logistic regression on age, out-of-fold", pred, df, "5-fold CV (by person)")
    return {"entries": entries, "classes": man.classes, "n_rows": int(len(df)),
            "n_people": int(df["subject"].nunique()),
            "class_counts": np.bincount(df["label"], minlength=k).tolist(),
            "split_counts": df["split"].value_counts().to_dict()}


# ----------------------------------------------------------------------------- model runs
@dataclass
class RunSpec:
    name: str
    task: str                # manifest key
    model: str
    mode: str                # feature / finetune / distill
    options: dict = field(default_factory=dict)
    quick: bool = True       # part of --quick
    teacher: str | None = None   # "best:<task>" -> best run of that task by validation QWK
    label: str = ""          # shown in the table (e.g. "scratch", "distilled")
    candidates: list = field(default_factory=list)  # head settings tried; the best by validation QWK is kept
    eval_options: dict = field(default_factory=dict)  # e.g. meta_features for the metadata baseline
    base: str | None = None  # no training: score the run of this spec again, with ``tta`` (test-time augmentation)
    tta: str | None = None


#: head settings tried in feature mode (cheap on cached embeddings); chosen by validation QWK only
FEATURE_HEADS = [
    {},                                                         # linear head, dropout 0.2
    {"hidden": (256,), "dropout": (0.3,)},
    {"hidden": (256,), "dropout": (0.3,), "ordinal": "corn"},
    {"hidden": (512, 128), "dropout": (0.4,)},
]


def _flat_metrics(d: dict | None) -> dict | None:
    """Headline figures (+ CIs) from an evaluate/train metrics block, whatever its exact nesting."""
    if not isinstance(d, dict):
        return None
    out: dict[str, Any] = {}
    for key in (*HEADLINE, "balanced_accuracy", "n"):
        v = d.get(key)
        if isinstance(v, dict):
            out[key] = v.get("value", v.get("point"))
            if "ci" in v:
                out.setdefault("ci", {})[key] = list(v["ci"])
            elif "low" in v:
                out.setdefault("ci", {})[key] = [v["low"], v["high"]]
        elif v is not None:
            out[key] = v
    if "f1_macro" not in out and "macro_f1" in d:
        out["f1_macro"] = d["macro_f1"]
    ci = d.get("ci")
    if isinstance(ci, dict):
        for key, v in ci.items():
            if key in HEADLINE or key == "macro_f1":
                out.setdefault("ci", {})["f1_macro" if key == "macro_f1" else key] = list(v)
    return out or None


def _evaluate(run_dir: Path, seed: int, **options) -> dict:
    """Evaluate a run on its test split; returns evaluate's metrics dict (model, baselines, person level)."""
    from skinage.evaluation.evaluate import evaluate

    res = evaluate(str(run_dir), seed=seed, progress=False, **options)
    return res.metrics


def _score_run(spec: RunSpec, run_dir: Path, ctx: "Ctx", tta: str | None = None) -> tuple[dict, dict | None]:
    """The test evaluation of a run folder and its ONNX export (int8 too, with the parity check); an export
    that fails is reported and left out: the figures stand without it. With ``tta`` both use it, in their
    own ``eval_<tta>`` / ``export_<tta>`` folders."""
    from skinage.export.export import export

    ev_opts = {"tta": tta, "out": str(run_dir / f"eval_{tta}")} if tta else {}
    ev = _evaluate(run_dir, ctx.seed, **ev_opts, **spec.eval_options)
    ex = None
    try:
        ex_opts = {"tta": tta, "out": str(run_dir / f"export_{tta}")} if tta else {}
        ex = export(str(run_dir), int8=True, repeats=30 if ctx.quick else 100, **ex_opts)
    except Exception as e:  # noqa: BLE001 - the figures stand without the export
        say(f"{spec.name}: export failed: {e}")
    return ev, ex


def _model_entry(spec: RunSpec, run_dir: Path, ev: dict, ex: dict | None, train_s: float, tm: dict) -> dict:
    meta_p = run_dir / "weights" / "best.json"
    meta = json.loads(meta_p.read_text()) if meta_p.exists() else {}
    entry: dict[str, Any] = {
        "name": spec.name, "task": spec.task, "model": spec.model, "mode": spec.mode, "label": spec.label,
        "options": spec.options, "run": str(run_dir), "weights_from": meta.get("weights_from"),
        "input_size": (meta.get("preprocessing") or {}).get("input_size"),
        "teacher": spec.teacher, "train_time_s": round(train_s, 1),
    }
    entry.update(extract_eval(ev))
    # validation figures as recorded by training at its best epoch (used to choose teachers; never the test)
    entry["val"] = _flat_metrics(tm.get("val"))
    entry["best_epoch"] = tm.get("best_epoch")
    entry["train_test"] = _flat_metrics(tm.get("test"))
    if ex:
        rows = {r["format"]: r for r in ex.get("rows", [])}
        entry["size_bytes"] = {f: r.get("size_bytes") for f, r in rows.items()}
        entry["latency_ms"] = {f: r.get("latency_ms") for f, r in rows.items()}
        i8 = rows.get("onnx int8") or {}
        entry["int8_agreement"] = i8.get("agreement")
        entry["int8_accuracy_change"] = i8.get("accuracy_change")
        entry["onnx_int8"] = ex.get("files", {}).get("onnx_int8")
    return entry


def extract_eval(ev: dict) -> dict:
    """The test figures of the model, the baselines and the person level from evaluate's metrics."""
    img = ev.get("image") or {}
    out: dict[str, Any] = {
        "test": _flat_metrics(img.get("model")),
        "baselines": {n: _flat_metrics(m) for n, m in img.items() if n != "model"},
        "person_level": None, "person_baselines": {}, "by_view": None,
        "gain_over_baselines": ev.get("gain_over_baselines"),
        "n_test_images": ev.get("n_images"), "n_test_persons": ev.get("n_persons"),
        "bootstrap_unit": (ev.get("bootstrap") or {}).get("unit"),
        "baselines_skipped": ev.get("baselines_skipped"),
        "class_rule": ev.get("decision_rule"),  # how the model's class was read from its probabilities
    }
    person = ev.get("person") or {}
    if person.get("model"):
        out["person_level"] = _flat_metrics(person["model"])
        out["person_baselines"] = {n: _flat_metrics(m) for n, m in person.items() if n != "model"}
    bv = (ev.get("by_view") or {}).get("model")
    if bv:
        out["by_view"] = bv
    return out


def _tta_spec(spec: RunSpec, ctx: "Ctx", done: dict, earlier: list | None) -> dict:
    """The weights of run ``spec.base`` scored with test-time augmentation ``spec.tta``: validation (which is what
    the best model is chosen by) and test through ``skinage evaluate --tta``, the ONNX files through
    ``skinage export --tta`` (the augmentation is in the graph, so its latency is counted)."""
    pool = {e["name"]: e for e in (earlier or [])}
    pool.update(done)
    base = pool.get(spec.base)
    if not base or not Path(base.get("run", "")).exists():
        raise RuntimeError(f"{spec.name} scores the run of {spec.base}, which has no run folder here; run it first")
    run_dir = Path(base["run"])
    say(f"\n== {spec.name}: the weights of {spec.base} with test-time augmentation {spec.tta} (no training)")
    val = _evaluate(run_dir, ctx.seed, split="val", tta=spec.tta, out=str(run_dir / f"eval_{spec.tta}_val"),
                    plots=False, report=False, **spec.eval_options)
    ev, ex = _score_run(spec, run_dir, ctx, tta=spec.tta)
    tm = {"val": (val.get("image") or {}).get("model"), "best_epoch": base.get("best_epoch")}
    entry = _model_entry(spec, run_dir, ev, ex, float(base.get("train_time_s") or 0.0), tm)
    entry["options"] = dict(base.get("options") or {})
    entry.update({"tta": spec.tta, "base": spec.base, "command": ctx.command, "date": _now()})
    t = entry.get("test") or {}
    say(f"== {spec.name}: test acc {_fci(t, 'accuracy')}  qwk {_fci(t, 'qwk')}")
    return entry


def _rescore_spec(spec: RunSpec, ctx: "Ctx", done: dict, earlier: list | None) -> dict:
    """``--rescore``: the run folder of an earlier entry evaluated and exported again with the current code, no
    training. The training figures (validation QWK, best epoch, time), the options, the teacher and the date of
    the training stay those of the earlier entry; ``rescored`` records when and how it was scored again."""
    pool = {e["name"]: e for e in (earlier or [])}
    pool.update(done)
    base = pool.get(spec.name)
    if not base or not (Path(base.get("run", "")) / "weights").is_dir():
        raise RuntimeError(f"--rescore: {spec.name} has no run folder here to score again; train it first "
                           f"(the same --runs without --rescore)")
    run_dir = Path(base["run"])
    say(f"\n== {spec.name}: the run folder {run_dir} scored again (no training)")
    mp = run_dir / "metrics.json"
    tm = json.loads(mp.read_text()) if mp.exists() else {}
    ev, ex = _score_run(spec, run_dir, ctx)
    entry = _model_entry(spec, run_dir, ev, ex, float(base.get("train_time_s") or 0.0), tm)
    for k in ("options", "teacher", "selection", "command", "date"):
        if k in base:
            entry[k] = base[k]
    entry["rescored"] = {"date": _now(), "command": ctx.command}
    t = entry.get("test") or {}
    say(f"== {spec.name}: test acc {_fci(t, 'accuracy')}  qwk {_fci(t, 'qwk')}  (scored again)")
    return entry


def _run_spec(spec: RunSpec, manifest: Path, ctx: "Ctx", done: dict, earlier: list | None = None) -> dict:
    from skinage.training.train import train

    if spec.base:
        return _tta_spec(spec, ctx, done, earlier)
    if ctx.rescore:
        return _rescore_spec(spec, ctx, done, earlier)
    opts = dict(spec.options)
    if spec.teacher:
        task = spec.teacher.split(":", 1)[1]
        pool = {e["name"]: e for e in (earlier or [])}
        pool.update(done)
        # a distillation teacher is used without test-time augmentation: entries that add one do not compete
        cands = [e for e in pool.values() if e.get("task") == task and e.get("mode") != "distill" and not e.get("tta")
                 and (e.get("val") or {}).get("qwk") is not None and Path(e.get("run", "")).exists()]
        if not cands:
            raise RuntimeError(f"no teacher run with validation figures for task {task!r}")
        best = max(cands, key=lambda e: e["val"]["qwk"])
        opts["teacher"] = best["run"]
        if "size" not in opts and best.get("input_size"):
            opts["size"] = int(best["input_size"])  # student and teacher see the same crop
        say(f"{spec.name}: teacher = {best['name']} (best validation QWK {best['val']['qwk']:.3f})")
    say(f"\n== {spec.name}: {spec.model} {spec.mode} on {spec.task} {opts}")
    selection = []
    t0 = time.perf_counter()
    if spec.candidates:
        best_tr, best_q = None, -2.0
        for i, cand in enumerate(spec.candidates):
            tr = train(data=str(manifest), model=spec.model, mode=spec.mode, seed=ctx.seed,
                       project=str(ctx.work / "runs"), name=f"{spec.name}_c{i}", exist_ok=True, progress=False,
                       **opts, **cand)
            q = ((tr.metrics or {}).get("val") or {}).get("qwk")
            selection.append({"options": {k: list(v) if isinstance(v, tuple) else v for k, v in cand.items()},
                              "run": str(Path(tr)), "val": _flat_metrics(tr.metrics.get("val"))})
            say(f"{spec.name}: candidate {i} {cand}: validation QWK {q}")
            if q is not None and q > best_q:
                best_tr, best_q = tr, q
        tr = best_tr if best_tr is not None else tr
        opts.update(spec.candidates[[c["run"] for c in selection].index(str(Path(tr)))])
    else:
        tr = train(data=str(manifest), model=spec.model, mode=spec.mode, seed=ctx.seed,
                   project=str(ctx.work / "runs"), name=spec.name, exist_ok=True, progress=False, **opts)
    run_dir = Path(tr)
    train_s = time.perf_counter() - t0
    train_metrics = dict(getattr(tr, "metrics", None) or {})
    ev, ex = _score_run(spec, run_dir, ctx)
    entry = _model_entry(spec, run_dir, ev, ex, train_s, train_metrics)
    entry["options"] = {k: list(v) if isinstance(v, tuple) else v for k, v in opts.items()}
    entry["command"] = ctx.command
    entry["date"] = _now()
    if selection:
        entry["selection"] = {"by": "validation QWK", "candidates": selection}
    if spec.teacher:
        entry["teacher"] = opts["teacher"]
    t = entry.get("test") or {}
    say(f"== {spec.name}: test acc {_fci(t, 'accuracy')}  qwk {_fci(t, 'qwk')}  ({train_s:.0f} s training)")
    return entry


def _utk_manifests(ctx: "Ctx") -> dict[str, Path]:
    """utk4 (4 levels), utk7 (decades) and utk4_forehead (utk4's rows and split, bbox = the top band)."""
    if ctx.manifests:
        return ctx.manifests
    from skinage.data.manifest import read_manifest, write_manifest

    src = ctx.data / "utkface-age"
    d = ctx.work / "utk"
    names = ("utk4.csv", "utk7.csv", "utk4_forehead.csv")
    if ctx.runs and all((d / n).exists() for n in names):  # a few runs redone: same manifests, same splits
        ctx.manifests = {n[:-4]: d / n for n in names}
        return ctx.manifests
    _ingest(src, d / "utk4.csv", remap=UTK_REMAP4, ordinal=True, seed=ctx.seed, quiet=True)
    _ingest(src, d / "utk7.csv", ordinal=True, seed=ctx.seed, quiet=True)
    fm = read_manifest(d / "utk4.csv")
    df = fm.df.copy()
    w = h = 200.0  # every utkface-age image is 200x200 (aligned and cropped)
    df["x0"], df["y0"] = FOREHEAD_BAND[0] * w, FOREHEAD_BAND[1] * h
    df["x1"], df["y1"] = FOREHEAD_BAND[2] * w, FOREHEAD_BAND[3] * h
    fm.df = df
    fm.meta = dict(fm.meta, forehead_band=list(FOREHEAD_BAND),
                   note="bbox = top band of the aligned UTKFace images (benchmarks/run_all.py)")
    write_manifest(fm, d / "utk4_forehead.csv")
    ctx.manifests = {"utk4": d / "utk4.csv", "utk7": d / "utk7.csv", "utk4_forehead": d / "utk4_forehead.csv"}
    return ctx.manifests


def utk_specs(quick: bool) -> list[RunSpec]:
    feat = {"epochs": 60}
    ft = {"epochs": 8, "size": 160}
    mixup224 = {"epochs": 12, "size": 224, "hidden": (256,), "dropout": (0.3,), "weight_decay": 0.05,
                "ordinal": "corn", "mixup": 0.2}
    specs = [
        RunSpec("utk4_mnv2_feature", "utk4", "mobilenet_v2", "feature", feat, candidates=FEATURE_HEADS),
        RunSpec("utk4_effl0_feature", "utk4", "efficientnet_lite0", "feature", feat, candidates=FEATURE_HEADS),
        RunSpec("utk7_mnv2_feature", "utk7", "mobilenet_v2", "feature", feat, candidates=FEATURE_HEADS),
        RunSpec("utk7_effl0_feature", "utk7", "efficientnet_lite0", "feature", feat, candidates=FEATURE_HEADS),
        RunSpec("utk4_mnv2_finetune", "utk4", "mobilenet_v2", "finetune", ft, quick=False),
        # the MobileNetV2 224 px recipe below (fixed in advance, not tuned on test) on the other backbone
        RunSpec("utk4_effl0_finetune", "utk4", "efficientnet_lite0", "finetune",
                {"epochs": 10, "size": 224, "hidden": (256,), "dropout": (0.3,), "weight_decay": 0.05,
                 "ordinal": "corn"}, quick=False),
        # a second fine-tuning setting, fixed in advance against the first one's over-fitting (train acc
        # 0.80 vs val 0.61 after 8 epochs): full 224 px, ordinal CORN head, stronger weight decay
        RunSpec("utk4_mnv2_finetune224", "utk4", "mobilenet_v2", "finetune",
                {"epochs": 10, "size": 224, "hidden": (256,), "dropout": (0.3,), "weight_decay": 0.05,
                 "ordinal": "corn"}, quick=False),
        # a third setting, fixed in advance against the 224 px run's remaining over-fitting (train acc
        # 0.83 vs val 0.66 at epoch 10): the same recipe with mixup 0.2 and 12 epochs
        RunSpec("utk4_mnv2_finetune224_mixup", "utk4", "mobilenet_v2", "finetune", mixup224, quick=False),
        # a fourth setting, fixed in advance: the mixup recipe with a moving average of the weights (--ema 0.995 per
        # step: a memory of ~200 steps, 2.5 of its 81-step epochs). Its validation QWK peaked at epoch 6 of 12 while
        # the learning rate was still high, where single-epoch weights are noisiest; the average smooths them
        RunSpec("utk4_mnv2_finetune224_mixup_ema", "utk4", "mobilenet_v2", "finetune", {**mixup224, "ema": 0.995},
                quick=False, label="EMA"),
        # the same weights with flip test-time augmentation (mean of each face and its mirror image; built into
        # the exported graph, twice the latency); it competes for "best model" on validation QWK like any run
        RunSpec("utk4_mnv2_finetune224_mixup_tta", "utk4", "mobilenet_v2", "finetune", quick=False,
                label="flip TTA", base="utk4_mnv2_finetune224_mixup", tta="flip"),
        # fixed in advance from the EMA run's validation curve: the average did not degrade late (QWK 0.838-0.840 at
        # epochs 10-12 where the raw weights fell to 0.826), so the same recipe gets 16 epochs to use
        RunSpec("utk4_mnv2_finetune224_mixup_ema16", "utk4", "mobilenet_v2", "finetune",
                {**mixup224, "ema": 0.995, "epochs": 16}, quick=False, label="EMA, 16 ep"),
        RunSpec("utk4_mnv2_finetune224_mixup_ema_tta", "utk4", "mobilenet_v2", "finetune", quick=False,
                label="EMA, flip TTA", base="utk4_mnv2_finetune224_mixup_ema", tta="flip"),
        # fixed in advance against the int8 gap of issue 5: the EMA run's fp32 model changes its class on 13-17 % of
        # images when every pixel moves by one level of 255, and its int8 file disagrees with it on 2-4 %. The same
        # recipe with Gaussian pixel noise as the last augmentation step (per image a standard deviation uniform in
        # [0, 0.03], up to about 8 levels), so that the model learns not to answer such changes
        RunSpec("utk4_mnv2_finetune224_mixup_ema_noise", "utk4", "mobilenet_v2", "finetune",
                {**mixup224, "ema": 0.995, "augment": "flip,rotate,jitter,crop,noise", "noise_std": 0.03},
                quick=False, label="EMA, pixel noise"),
        # students last, so that "best:utk4" is chosen among every teacher above (by validation QWK).
        # A student from scratch learns slowly: 8 epochs left its validation QWK still rising steeply
        # (0.03 -> 0.52), and 25 epochs at 160 px with the teacher fed the same 160 px crop left it
        # 0.13 QWK below its teacher. Now (fixed in advance, not tuned on test): 40 epochs, the
        # teacher sees each crop at its own 224 px, mixup 0.4 so that it labels mixed images too
        # ("function matching", Beyer et al. 2022), more weight on its soft targets (alpha 0.7).
        RunSpec("utk4_sqz_distill", "utk4", "squeezenet1_1", "distill",
                {"epochs": 40, "size": 160, "pretrained": False, "mixup": 0.4, "alpha": 0.7, "embed_center": False},
                quick=False, teacher="best:utk4", label="distilled"),
        # the same recipe with the embedding term centred (skinage's default since): the raw pooled embeddings of
        # two different faces already have cosine 0.76, so the uncentred term mostly asks for the mean embedding
        RunSpec("utk4_sqz_distill_centred", "utk4", "squeezenet1_1", "distill",
                {"epochs": 40, "size": 160, "pretrained": False, "mixup": 0.4, "alpha": 0.7, "embed_center": True},
                quick=False, teacher="best:utk4", label="distilled, centred embedding"),
        # the centred recipe, longer and averaged (fixed in advance): its best epoch was 36 of 40 with validation QWK
        # still rising, and a student from scratch gains from long schedules (Beyer et al.'s "patient" teacher):
        # 60 epochs, moving average of the weights with decay 0.998 (~500 steps, 6 epochs)
        RunSpec("utk4_sqz_distill_centred_ema", "utk4", "squeezenet1_1", "distill",
                {"epochs": 60, "size": 160, "pretrained": False, "mixup": 0.4, "alpha": 0.7, "embed_center": True,
                 "ema": 0.998}, quick=False, teacher="best:utk4", label="distilled, centred, 60 ep, EMA"),
        RunSpec("utk4_sqz_scratch", "utk4", "squeezenet1_1", "finetune",
                {"epochs": 30, "size": 128, "pretrained": False}, quick=False, label="scratch"),
    ]
    return [s for s in specs if s.quick or not quick]


def forehead_specs(quick: bool) -> list[RunSpec]:
    specs = [
        RunSpec("forehead4_mnv2_feature", "utk4_forehead", "mobilenet_v2", "feature", {"epochs": 60},
                candidates=FEATURE_HEADS),
        RunSpec("forehead4_effl0_feature", "utk4_forehead", "efficientnet_lite0", "feature", {"epochs": 60},
                candidates=FEATURE_HEADS),
        RunSpec("forehead4_mnv2_finetune", "utk4_forehead", "mobilenet_v2", "finetune",
                {"epochs": 6, "size": 160}, quick=False),
    ]
    return [s for s in specs if s.quick or not quick]


def _model_section(ctx: "Ctx", specs: list[RunSpec], manifests: dict[str, Path], name: str) -> dict:
    done: dict[str, dict] = {}
    errors = {}
    earlier = []
    p = RESULTS / f"{name}.json"
    if ctx.runs and p.exists():  # runs of an earlier call can be teachers
        earlier = json.loads(p.read_text()).get("entries", [])
    for spec in specs:
        if ctx.runs and spec.name not in ctx.runs:
            continue
        try:
            done[spec.name] = _run_spec(spec, manifests[spec.task], ctx, done, earlier)
        except Exception as e:  # noqa: BLE001 - one failing run must not lose the others
            errors[spec.name] = f"{type(e).__name__}: {e}"
            say(f"{spec.name}: FAILED: {errors[spec.name]}")
            traceback.print_exc()
        ctx.save_partial(name, {"entries": list(done.values()), "errors": errors})
    return {"entries": list(done.values()), "errors": errors,
            "manifests": {k: str(v) for k, v in manifests.items()}}


def section_utk(ctx: "Ctx") -> dict:
    return _model_section(ctx, utk_specs(ctx.quick), _utk_manifests(ctx), "utk")


def section_forehead(ctx: "Ctx") -> dict:
    res = _model_section(ctx, forehead_specs(ctx.quick), _utk_manifests(ctx), "forehead")
    res["forehead_band"] = {"x0": FOREHEAD_BAND[0], "y0": FOREHEAD_BAND[1], "x1": FOREHEAD_BAND[2],
                            "y1": FOREHEAD_BAND[3], "units": "fraction of the 200x200 aligned image"}
    return res


def section_london(ctx: "Ctx") -> dict:
    src = ctx.data / "london-5view" / "labels.csv"
    man_p = ctx.work / "london" / "london.csv"
    _ingest(src, man_p, path_col="file", subject_col="subject_id", view_col="view", label="age", bins=LONDON_BINS,
            image_root=str(ctx.data / "london-5view"), seed=ctx.seed, quiet=True)
    # the label is binned age: the metadata-only baseline may use gender and ethnicity, never age
    meta = {"meta_features": ("gender", "ethnicity")}
    specs = [RunSpec("london_mnv2_feature", "london", "mobilenet_v2", "feature", {"epochs": 60},
                     candidates=FEATURE_HEADS, eval_options=meta),
             RunSpec("london_effl0_feature", "london", "efficientnet_lite0", "feature", {"epochs": 60},
                     candidates=FEATURE_HEADS, eval_options=meta)]
    return _model_section(ctx, specs, {"london": man_p}, "london")


# ----------------------------------------------------------------------------- section: speed
def section_speed(ctx: "Ctx") -> dict:
    out = {}
    for script in ("bench_decode.py", "bench_train.py", "bench_infer.py"):
        p = ROOT / "benchmarks" / script
        if not p.exists():
            out[script] = {"status": "absent"}
            say(f"speed: {script} is not there yet, skipped")
            continue
        stem = Path(script).stem
        if ctx.collect_speed:
            res = {"status": "collected (not re-run by this call; see each file's own date and command)"}
        else:
            cmd = [sys.executable, str(p)] + (["--quick"] if ctx.quick and "--quick" in p.read_text() else [])
            say(f"speed: {' '.join(cmd)}")
            t0 = time.perf_counter()
            r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
            res = {"status": "ok" if r.returncode == 0 else f"exit {r.returncode}", "command": " ".join(cmd),
                   "seconds": round(time.perf_counter() - t0, 1), "stdout_tail": r.stdout[-3000:],
                   "stderr_tail": r.stderr[-1500:] if r.returncode else ""}
        for j in sorted(RESULTS.glob(f"{stem.replace('bench_', '')}*.json")) + sorted(RESULTS.glob(f"{stem}*.json")):
            try:
                res.setdefault("results", {})[j.name] = json.loads(j.read_text())
            except ValueError:
                pass
        out[script] = res
    return {"benchmarks": out}


# ----------------------------------------------------------------------------- driver
@dataclass
class Ctx:
    data: Path
    work: Path
    seed: int
    quick: bool
    runs: set
    command: str
    machine: dict
    manifests: dict = field(default_factory=dict)
    collect_speed: bool = False
    rescore: bool = False

    def save_partial(self, name: str, body: dict) -> None:
        p = RESULTS / f"{name}.json"
        if self.runs and p.exists():  # only a few runs redone: keep the others
            body = _merge(json.loads(p.read_text()), dict(body))
        atomic_write_json(p, self._wrap(name, body, partial=True))

    def _wrap(self, name: str, body: dict, partial: bool = False) -> dict:
        return {"section": name, "date": _now(), "command": self.command, "seed": self.seed, "quick": self.quick,
                "partial": partial, "machine": self.machine, **body}


RUNNERS = {"aihub": section_aihub, "utk": section_utk, "forehead": section_forehead, "london": section_london,
           "speed": section_speed}


# ----------------------------------------------------------------------------- the markdown
def _load_sections() -> dict[str, dict]:
    out = {}
    for name in SECTIONS:
        p = RESULTS / f"{name}.json"
        if p.exists():
            try:
                out[name] = json.loads(p.read_text())
            except ValueError:
                pass
    return out


def _size(e: dict, fmt: str) -> str:
    b = (e.get("size_bytes") or {}).get(fmt)
    return "–" if not b else f"{b / 1e6:.2f}"


def _lat(e: dict, fmt: str) -> str:
    v = (e.get("latency_ms") or {}).get(fmt)
    return "–" if v is None else f"{v:.1f}"


def _beats(m: dict | None, b: dict | None, key: str) -> bool | None:
    """True when the model's CI lies entirely above the baseline's (MAE: below)."""
    if not m or not b:
        return None
    cm, cb = (m.get("ci") or {}).get(key), (b.get("ci") or {}).get(key)
    if not cm or not cb:
        return None
    return cm[1] < cb[0] if key == "mae" else cm[0] > cb[1]


def _head(e: dict) -> str:
    o = e.get("options") or {}
    h = "x".join(str(v) for v in (o.get("hidden") or [])) or "linear"
    if o.get("ordinal"):
        h += f" {o['ordinal']}"
    return h


def _weights(e: dict) -> str:
    w = str(e.get("weights_from") or "–")
    return "imagenet" if w.startswith("imagenet") else w


def model_table(entries: list[dict]) -> list[str]:
    """One row per run. "int8 agrees": top-1 agreement of the int8 file with the fp32 ONNX file on the
    validation images (export's parity check)."""
    # "val QWK" is what chooses the best model and the teacher; the test columns are only reported
    lines = ["| run | model | mode | px | head | weights | val QWK | test n | test acc [95% CI] | macro-F1 | QWK [95% CI] | "
             "MAE | train s | int8 MB | int8 ms | int8 agrees | > baselines |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    marked = False
    for e in entries:
        t = e.get("test") or {}
        beats = []
        for bname, b in (e.get("baselines") or {}).items():
            ok = [_beats(t, b, k) for k in ("accuracy", "qwk")]
            if all(x is True for x in ok):
                beats.append(True)
            elif any(x is False for x in ok):
                beats.append(False)
        verdict = "–" if not beats else ("yes" if all(beats) else "**no**")
        mode = e["mode"] + (f" ({e['label']})" if e.get("label") else "")
        # an ordinal head scored (before the rank rule reached evaluate) by its most probable class
        old_rule = bool((e.get("options") or {}).get("ordinal")) and not e.get("class_rule")
        marked |= old_rule
        lines.append(
            f"| {e['name']}{' †' if old_rule else ''} | {e['model']} | {mode} | {e.get('input_size') or '–'} | {_head(e)} | "
            f"{_weights(e)} | {_f((e.get('val') or {}).get('qwk'))} | {t.get('n') or '–'} | {_fci(t, 'accuracy')} | "
            f"{_f(t.get('f1_macro'))} | {_fci(t, 'qwk')} | {_f(t.get('mae'))} | {_f(e.get('train_time_s'), 0)} | "
            f"{_size(e, 'onnx int8')} | {_lat(e, 'onnx int8')} | "
            f"{'–' if e.get('int8_agreement') is None else '%.1f %%' % (100 * e['int8_agreement'])} | {verdict} |")
    if marked:
        lines += ["", "† an ordinal head scored before 2026-12-02: its test figures and int8 agreement read each "
                      "image's class as the most probable one, not as its rank (the number of k with P(y > k) > 0.5), "
                      "the rule training chose its best epoch by and that evaluate, export and predict use now. Its run "
                      "folder was not on the machine where the other runs were scored again (`--rescore`)."]
    return lines


def baseline_table(entries: list[dict]) -> list[str]:
    seen = set()
    lines = ["| task | baseline | test acc [95% CI] | macro-F1 | QWK [95% CI] | MAE |", "|---|---|---|---|---|---|"]
    for e in entries:
        for name, b in (e.get("baselines") or {}).items():
            if (e["task"], name) in seen:
                continue
            seen.add((e["task"], name))
            lines.append(f"| {e['task']} | {name} | {_fci(b, 'accuracy')} | {_f(b.get('f1_macro'))} | "
                         f"{_fci(b, 'qwk')} | {_f(b.get('mae'))} |")
    return lines if len(lines) > 2 else []


def targets_block(entries: list[dict]) -> list[str]:
    u4 = [e for e in entries if e["task"] == "utk4" and e.get("test")]
    if not u4:
        return []
    out = ["", "**Targets of issue 6 (utkface-age test split, 4 levels):**", ""]
    with_val = [e for e in u4 if (e.get("val") or {}).get("qwk") is not None]
    chosen = max(with_val, key=lambda e: e["val"]["qwk"]) if with_val else max(u4, key=lambda e: e["test"]["qwk"] or 0)
    how = "chosen by validation QWK" if with_val else "no validation figures recorded: best test QWK"
    t = chosen["test"]
    dq, da = t["qwk"] - TARGETS["qwk"], t["accuracy"] - TARGETS["accuracy"]
    out.append(f"- best model ({chosen['name']}, {how}): QWK {t['qwk']:.3f} (target >= {TARGETS['qwk']}: "
               f"{'met' if dq >= 0 else f'missed by {-dq:.3f}'}), accuracy {t['accuracy']:.3f} (target >= "
               f"{TARGETS['accuracy']}: {'met' if da >= 0 else f'missed by {-da:.3f}'})")
    stu = [e for e in u4 if e["mode"] == "distill"]
    for s in stu:
        # the teacher's own entry, not one that re-scores its weights with test-time augmentation
        teacher = next((e for e in entries if e.get("run") == s.get("teacher") and not e.get("tta")), None)
        if teacher and teacher.get("test") and teacher["test"].get("n") != s["test"].get("n"):
            out.append(f"- student {s['name']} vs teacher {teacher['name']}: not compared (the teacher's run was redone "
                       f"since, on another split: {teacher['test'].get('n')} vs {s['test'].get('n')} test images)")
        elif teacher and teacher.get("test") and (teacher.get("date") or "") > (s.get("date") or ""):
            # dates are "YYYY-MM-DD HH:MM UTC": in that form text order is time order
            out.append(f"- student {s['name']} vs teacher {teacher['name']}: not compared (the teacher's run was redone "
                       f"on {teacher.get('date')}, after this student learnt from its earlier weights)")
        elif teacher and teacher.get("test"):
            gap = teacher["test"]["qwk"] - s["test"]["qwk"]
            ts, ss = (teacher.get("size_bytes") or {}).get("onnx int8"), (s.get("size_bytes") or {}).get("onnx int8")
            ratio = ts / ss if ts and ss else None
            vq = [(e.get("val") or {}).get("qwk") for e in (teacher, s)]
            vgap = f"; on validation {vq[0] - vq[1]:.3f}" if None not in vq else ""
            out.append(f"- student {s['name']} vs teacher {teacher['name']}: QWK gap {gap:.3f} (target <= "
                       f"{TARGETS['student_qwk_gap']}: {'met' if gap <= TARGETS['student_qwk_gap'] else 'missed'}"
                       f"{vgap}); "
                       f"int8 size ratio {('%.2fx' % ratio) if ratio else '–'} (target >= 2x)")
    if not stu:
        out.append("- squeezenet1_1 student: not run in this suite run (full suite only)")
    bad = []
    for e in u4:
        for bname, b in (e.get("baselines") or {}).items():
            for k in ("accuracy", "qwk"):
                if _beats(e["test"], b, k) is False:
                    bad.append(f"{e['name']} vs {bname} ({k})")
    out.append("- every model above every baseline with non-overlapping 95% CIs (accuracy and QWK): "
               + ("yes" if not bad else "no: " + ", ".join(bad)))
    return out


def render_markdown(sections: dict[str, dict]) -> str:
    L = ["# skinage benchmark results", "",
         "Produced by `benchmarks/run_all.py` (not typed by hand). Each section records its own date, "
         "command and machine; rebuild this file with `python benchmarks/run_all.py --table-only`.", ""]
    machines = {json.dumps({k: v for k, v in s.get("machine", {}).items() if k != "git_commit"}, sort_keys=True)
                for s in sections.values()}
    for mj in sorted(machines):  # a set: sorted, so that the file does not change from one call to the next
        m = json.loads(mj)
        L.append(f"Machine: {m.get('cpu')}, {m.get('cores')} cores, flags {' '.join(m.get('cpu_flags', []))}; "
                 f"torch {m.get('torch')}, onnxruntime {m.get('onnxruntime')}, Python {m.get('python')}.")
    L.append("")
    for name in SECTIONS:
        s = sections.get(name)
        if not s:
            continue
        L += [f"## {name}", "", f"{s['date']}; `{s['command']}`; commit {s.get('machine', {}).get('git_commit')}"
              + (" (partial)" if s.get("partial") else "")
              + ("; quick suite" if s.get("quick") else ""), ""]
        if name == "aihub":
            L += [f"{s['n_rows']} rows, {s['n_people']} people, classes {s['classes']} with counts "
                  f"{s['class_counts']}; split by person {s['split_counts']}.", "",
                  "| protocol | baseline | acc [95% CI] | macro-F1 | QWK [95% CI] | MAE | n |",
                  "|---|---|---|---|---|---|---|"]
            for e in s["entries"]:
                t = e["test"]
                L.append(f"| {e['protocol']} | {e['baseline']} | {_fci(t, 'accuracy')} | {_f(t.get('f1_macro'))} | "
                         f"{_fci(t, 'qwk')} | {_f(t.get('mae'))} | {t.get('n')} |")
            L.append("")
            continue
        if name == "speed":
            for script, r in s.get("benchmarks", {}).items():
                L.append(f"- `{script}`: {r.get('status')}" + (f" ({r.get('seconds')} s)" if r.get("seconds") else ""))
                for fn, j in (r.get("results") or {}).items():
                    if not isinstance(j, dict):
                        continue
                    when = j.get("date") or j.get("finished") or j.get("started") or "?"
                    L.append(f"  - `{fn}` ({when}" + (f"; `{j['command']}`" if j.get("command") else "") + ")")
                    targets = j.get("targets")
                    if isinstance(targets, dict):
                        for k, v in targets.items():
                            if isinstance(v, dict):
                                met = v.get("met")
                                L.append(f"    - {k}: {v.get('value')} (target {v.get('target')}: "
                                         f"{'met' if met else 'missed' if met is False else '?'})")
                    elif "headline_speedup" in j:
                        L.append(f"    - speed-up {j['headline_speedup']}x (target {j.get('target_speedup')}x: "
                                 f"{'met' if j.get('meets_target') else 'missed'})")
                    elif j.get("summary"):
                        L.append(f"    - {json.dumps(j['summary'])[:400]}")
                    else:
                        for k, v in j.items():
                            if isinstance(v, dict) and "target" in v:
                                val = next((v[x] for x in ("speedup", "ratio", "value") if x in v), None)
                                L.append(f"    - {k}: {val} (target {v['target']})")
            L.append("")
            continue
        entries = s.get("entries", [])
        cmds = sorted({e["command"] for e in entries if e.get("command")} - {s["command"]})
        if cmds:
            L += ["Some runs come from other calls: " + "; ".join(f"`{c}`" for c in cmds) + ".", ""]
        if entries:
            L += model_table(entries) + [""]
            bt = baseline_table(entries)
            if bt:
                L += ["Baselines on the same test rows:", ""] + bt + [""]
            pl = [e for e in entries if e.get("person_level")]
            if pl:
                L += ["Image level vs person level (a person's views fused):", "",
                      "| model | image acc | image QWK | person acc | person QWK | people |", "|---|---|---|---|---|---|"]
                for e in pl:
                    t, p = e.get("test") or {}, e["person_level"]
                    L.append(f"| {e['name']} | {_fci(t, 'accuracy')} | {_fci(t, 'qwk')} | {_fci(p, 'accuracy')} | "
                             f"{_fci(p, 'qwk')} | {p.get('n', '–')} |")
                L.append("")
            if name == "utk":
                L += targets_block(entries) + [""]
            if name == "forehead" and s.get("forehead_band"):
                b = s["forehead_band"]
                L += [f"Forehead band: x {b['x0']}-{b['x1']}, y {b['y0']}-{b['y1']} of the aligned 200x200 image.", ""]
        planned = {"utk": utk_specs(False), "forehead": forehead_specs(False)}.get(name, [])
        missing = [sp.name for sp in planned if sp.name not in {e["name"] for e in entries}]
        if missing:
            L.append("Runs of the full suite missing from these results (not run yet): " + ", ".join(missing) + ".")
            L.append("")
        for run, err in (s.get("errors") or {}).items():
            L.append(f"- {run}: failed: {err}")
        L.append("")
    return "\n".join(L).rstrip() + "\n"


README_TEXT = """## Results

The figures below are produced by the benchmark suite (`benchmarks/run_all.py`), not typed by hand;
the full tables, with confidence intervals for every figure, the baselines and the machine, are in
[`benchmarks/results/RESULTS.md`](benchmarks/results/RESULTS.md).

{table}

**Reproduce:** `make bench` (everything: feature-mode runs, fine-tuning, distillation and the speed
benchmarks; about 5 hours on 2 cores, the training times in RESULTS.md adding up to 4.9 h), or `.venv/bin/python benchmarks/run_all.py --quick`
(feature-mode runs only, about 15 minutes), with the real data in `../shared/data`; choose sections
with `--only aihub,utk,forehead,london,speed` and single runs with `--runs NAME,...` (`--list` names
them; `--rescore --runs NAME,...` evaluates and exports existing run folders again without training). Seeds
are fixed; training settings are fixed in advance or chosen on validation splits only (in feature
mode four head settings are trained on the cached embeddings and the one with the best *validation*
QWK is kept; the distillation teacher is the run with the best validation QWK); the test splits are
only scored.
On a shared machine wrap it in `flock /tmp/skinage-heavy.lock ...`.

**What the figures mean, and what they do not:**

- *utkface-age* is an age-group task (decades, or 4 levels {{10,20}} {{30,40}} {{50}} {{60,70}}) on real,
  aligned face photos. Age decade is only a **proxy** for skin aging: it says that the models and the
  training modes can read age-related appearance from small images on a CPU, not that they grade
  wrinkles. UTKFace has **no person ids**, so each image is its own group in the split and the
  bootstrap; if the same person appears in several images, train and test may share people and the
  figures can be somewhat optimistic.
- **Two utkface-age splits are in these tables.** Runs whose test split has 529 images (RESULTS.md,
  column "test n") were made on 2026-11-22 with manifests written by an earlier version of the
  splitting code; runs with 555 test images use the split the current code writes (70/15/15 exactly).
  Figures from the two are not strictly comparable, and the "best model" below is chosen by validation
  QWK across both. `make bench` redoes every run on the current split.
- **Ordinal heads are scored by their rank** (since 2026-12-02). A CORN head's class is the number of
  levels k with P(y > k) > 0.5; training always chose its best epoch by that rule, but evaluate, export and
  predict took the most probable class instead, so the test figures were read by a different rule from the
  validation figures that chose the epoch. The mismatch showed on validation: the EMA run's validation QWK
  was 0.841 by training's rule and 0.818 when `skinage evaluate` re-scored it (argmax, fp32). The rule was not chosen on test: it is the head's own,
  fixed before any of these runs. Read by it, the EMA run's test figures were accuracy 0.665 and QWK 0.826
  (0.661 / 0.810 by the argmax; that run has since been redone, see below). The run folders on this machine were scored again (`--rescore`: no
  training; training figures and dates kept); rows marked † in RESULTS.md were not, their folders being gone.
- **Re-runs move by about 0.01.** (Argmax-read figures:) The best recipe without averaging (utk4_mnv2_finetune224_mixup) gave test
  accuracy 0.654 and QWK 0.821 on the earlier split, then 0.640 / 0.814 on the current split, and 0.638 /
  0.806 on the same split on another machine (the table shows the last; its best epoch moved from 11 to 6
  to 9). On one machine a run repeats bit for bit (the EMA run below trained with exactly the same losses
  epoch by epoch); across machines the bf16 fine-tuning does not.
- **Averaging the weights** (utk4_mnv2_finetune224_mixup_ema: the same recipe, the same training
  trajectory, `--ema 0.995`) had the lower validation loss in every epoch from the 7th (0.377-0.391 vs
  0.397-0.408) and the higher validation QWK in all of them but one (0.835-0.841 vs 0.820-0.835; epoch 9:
  0.8346 vs 0.8349), so it is the best model by validation QWK.
  The average lags early in the run (epoch 3: QWK 0.57 vs 0.77), when it still holds much of the
  starting weights.
  Trained for 16 epochs instead of 12 (utk4_mnv2_finetune224_mixup_ema16), the average peaked lower
  (val QWK 0.835) and its validation loss rose after epoch 9: 12 epochs stay the recipe.
  The EMA run was redone twice on 2026-12-03, on other machines: on an AMD EPYC without VNNI (2,161 s of
  training; best epoch 11, val QWK 0.840, test accuracy 0.668 and QWK 0.836), then on an Intel Xeon with AMX
  (bf16, 1,326 s; best epoch 8, val QWK 0.841, test 0.665 / 0.826: the figures in the table, and the weights
  of the int8 figures below).
- **Pixel noise made the model stable, not its int8 file** (utk4_mnv2_finetune224_mixup_ema_noise: the EMA
  recipe with `--augment flip,rotate,jitter,crop,noise`, Gaussian noise of up to 8 levels of 255 per image,
  fixed in advance). Its fp32 file keeps its class on 97.1 % of validation images when every pixel moves by
  one level, against 89.9 % for the EMA run, but its int8 files are no closer to fp32 (validation KL 0.0022
  against 0.0019 for `--int8`, 0.0011 against 0.0009 for `--int8-search`;
  [`bench_infer_noise.md`](benchmarks/results/bench_infer_noise.md)): int8's error comes from the rounding of
  inner activations, which input noise does not imitate. Its validation QWK was lower (0.828 against 0.841),
  so it is not the best model; its test figures were accuracy 0.661, QWK 0.839.
- **Flip TTA did not win on validation** for either set of weights (val QWK 0.835 vs 0.835, 0.833 vs
  0.841), so neither TTA row is "best"; the test split is not used to choose. (The TTA rows' validation
  figures come from `skinage evaluate` in fp32, the others' from training's own bf16 evaluation.)
- **The student's gap depends on the split.** utk4_sqz_distill_centred_ema, redone on 2026-12-04 from the
  EMA run's current weights (2,849 s of training on 2 cores), is 0.049 QWK below its teacher on test, just
  inside the 0.05 target, but 0.131 below it on validation; expect the gap on new data to lie between the
  two, likely above 0.05. Its figures are the same to the last digit as before the teacher was redone
  (2026-12-03), so the redone teacher taught it exactly what the earlier one had.
- *forehead* uses a fixed band at the top of the aligned UTKFace crops (x 0.15-0.85, y 0-0.25 of the
  image). The alignment cuts most of the forehead off, so the band holds the lower forehead, the
  eyebrows and often hair: the closest real analogue of a forehead crop available here, not a
  forehead wrinkle grade.
- *london-5view* has person ids and 5 views per person: figures are given per image and per person
  (the probabilities of a person's views averaged); its 102 people make the intervals wide.
- *aihub-forehead-labels* has labels but no images: only the label-only baselines can be computed.
  They are the bar an image model of the real forehead grade must clear (split by person): a model
  that does not beat the age-only baseline has learnt little more than the person's age.
- The 95 % intervals come from a bootstrap over persons (over images where there are no person
  ids). "> baselines" means the model's interval lies above every baseline's for accuracy and QWK.
- Speed figures (latency of one image on one thread, training time) come from shared 2-core machines,
  not all the same one (each RESULTS.md section names its machine); ratios measured side by side are more
  telling than absolute times. "int8 agrees" in
  RESULTS.md is the top-1 agreement (classes read by the head's rule) of the int8 file with the fp32
  ONNX file on validation images; the rows scored again with `--rescore` on 2026-12-02 have int8 files
  with bias correction, and the two rows exported on 2026-12-03 (EMA, EMA with pixel noise) also have 7-bit
  weights (`reduce_range`, the default since then; the other rows' files have 8-bit weights). All
  of them predate the equalisation (`skinage.export.equalize`, the default since the bench_infer run below).
- **int8 of the best model** (`benchmarks/bench_infer.py`, [`bench_infer.md`](benchmarks/results/bench_infer.md),
  run 2026-12-04 02:10 UTC, the EMA weights of the table, on an Intel Xeon with VNNI): `skinage export --int8`
  agrees with fp32 on 98.7 % of validation and 98.0 % of test images (mean KL from fp32 0.0008 / 0.0008), test
  accuracy 66.5 % -> 65.2 %, 3.94 MB, 4.6x faster than eager PyTorch on one thread (4.6x warm). The
  *equalisation* (`skinage.export.equalize`) made the difference: the same export with `--no-int8-equalize`, in
  the same run, agreed on 97.7 % / 96.2 % (KL 0.0019 / 0.0020) at the same latency and size. With 8-bit weights
  (`--no-int8-reduce-range`): 98.9 % / 98.0 %, KL 0.0006 / 0.0006, test accuracy 66.5 % -> 66.7 %.
  `--int8-search` (6 convolutions fp32, chosen on validation): 98.9 % / 98.6 %, KL 0.0008 / 0.0008, test
  accuracy 66.5 % -> 65.8 %, but slower (4.3x / 4.3x). Issue 5's targets: agreement >= 98 % and size are met by
  every equalised file; the accuracy loss (<= 1 point) is met by `--int8-search` and by 8-bit weights and missed
  by the default (1.26 points: 7 of 555 test images); 5x is not reached on this machine by any setting (4.6x at
  best; the int8 file's time is 70 % ONNX Runtime's QLinearConv kernels, 16 % the three fp32 stem convolutions;
  an earlier VNNI Xeon measured 5.0x warm). The previous run (2026-12-03, equalisation measured in two fp32
  passes instead of one: the same scales up to float rounding) gave the default 98.6 % / 98.4 %, the same KL, and
  a 1.08-point loss: **every disagreement is a near-tie**: among the images int8 reads differently, the largest
  fp32 decision margin (the probability that must move for the class to change,
  `skinage.models.decode.decision_margin`) was at most 0.065, and 4-16 % of all images lie that near a tie, so
  on 555 images agreement and accuracy move by a point between files equally close to fp32 (KL is the steadier
  measure). The 7-bit default exists for x86 CPUs without VNNI, whose fast kernels saturate on 8-bit weights
  (on an AMD EPYC, before equalisation: 94.1 % / 92.1 % with 8-bit, 96.2 % / 95.9 % with 7-bit weights); ONNX
  Runtime's exact kernels (`session.x64quantprecision`) avoid that but ran the 8-bit file 2.2x slower here. The
  fp32 file itself changes its class on 10.1 % of validation and 8.7 % of test images when every pixel moves by
  one level of 255 (the *noise floor* row of `skinage export`): int8 is closer to fp32 than fp32 is to itself
  under an invisible change of the input.
- **Two more tries at the int8 gap, by hand, not kept** (2026-12-03, lab scripts outside the package, the
  EMA weights, Intel Xeon with VNNI). Quantisation-aware training of the weights (2 epochs from the EMA
  weights, every exported-int8 convolution's weight fake-quantised to 7 bits per channel with a
  straight-through gradient, batch norm frozen) gave an int8 file no closer to fp32 than the same 2-epoch
  fine-tune without it: validation / test KL 0.0027 / 0.0024 against 0.0026 / 0.0026, both further than the
  EMA weights themselves (0.0019 / 0.0020). `--int8-search --no-int8-reduce-range` (8-bit weights) gave the
  closest file before equalisation, KL 0.0006 / 0.0007 and 98.9 % / 97.8 % agreement: still under 98 % on test, where 15.7 %
  of the images are as near a tie as its worst disagreement.
"""


def readme_table(sections: dict[str, dict]) -> str:
    rows = ["| data | run | model | mode | test accuracy | QWK | MAE | int8 MB | int8 ms (1 thread) |",
            "|---|---|---|---|---|---|---|---|---|"]
    for name in ("utk", "forehead", "london"):
        for e in (sections.get(name) or {}).get("entries", []):
            t = e.get("test") or {}
            mode = e["mode"] + (f" ({e['label']})" if e.get("label") else "")
            rows.append(f"| {name} | {e['name']} | {e['model']} | {mode} | {_fci(t, 'accuracy', 2)} | "
                        f"{_fci(t, 'qwk', 2)} | {_f(t.get('mae'), 2)} | {_size(e, 'onnx int8')} | "
                        f"{_lat(e, 'onnx int8')} |")
            if e.get("person_level"):
                p = e["person_level"]
                rows.append(f"| {name} | {e['name']} (per person) | {e['model']} | {mode} | "
                            f"{_fci(p, 'accuracy', 2)} | {_fci(p, 'qwk', 2)} | {_f(p.get('mae'), 2)} | | |")
    base = []
    for name in ("utk", "forehead", "london"):
        seen = set()
        for e in (sections.get(name) or {}).get("entries", []):
            for bname, b in (e.get("baselines") or {}).items():
                if (e["task"], bname) not in seen:
                    seen.add((e["task"], bname))
                    base.append(f"| {name} | {e['task']} | baseline: {bname} | – | {_fci(b, 'accuracy', 2)} | "
                                f"{_fci(b, 'qwk', 2)} | {_f(b.get('mae'), 2)} | | |")
    for e in (sections.get("aihub") or {}).get("entries", []):
        t = e["test"]
        base.append(f"| aihub-forehead-labels | forehead grade, 4 levels | baseline: {e['baseline']} | "
                    f"{e['protocol']} | {_fci(t, 'accuracy', 2)} | {_fci(t, 'qwk', 2)} | {_f(t.get('mae'), 2)} | | |")
    out = "\n".join(rows + base)
    tb = targets_block((sections.get("utk") or {}).get("entries", []))
    if tb:
        out += "\n" + "\n".join(tb)
    return out


README_START = "<!-- results:start (written by benchmarks/run_all.py; do not edit by hand) -->"
README_END = "<!-- results:end -->"


def update_readme(text: str, readme: Path = ROOT / "README.md") -> bool:
    """Put ``text`` between the results markers of the README (appending the markers if absent)."""
    if not readme.is_file():
        return False
    old = readme.read_text(encoding="utf-8")
    block = f"{README_START}\n{text.rstrip()}\n{README_END}"
    if README_START in old and README_END in old:
        head, rest = old.split(README_START, 1)
        new = head + block + rest.split(README_END, 1)[1]
    else:
        new = old.rstrip() + "\n\n" + block + "\n"
    atomic_write_text(readme, new)
    return True


def write_markdown() -> Path:
    p = RESULTS / "RESULTS.md"
    sections = _load_sections()
    atomic_write_text(p, render_markdown(sections))
    text = README_TEXT.format(table=readme_table(sections))
    atomic_write_text(RESULTS / "README_results.md", text)
    update_readme(text)
    return p


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="feature-mode runs only (no fine-tuning / distillation)")
    ap.add_argument("--only", default="", help=f"comma-separated sections among {','.join(SECTIONS)}")
    ap.add_argument("--skip", default="", help="comma-separated sections to leave out")
    ap.add_argument("--runs", default="", help="comma-separated run names to do within the model sections")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data", help="the real data folder")
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "bench", help="manifests and run folders")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: all cores)")
    ap.add_argument("--collect-speed", action="store_true",
                    help="speed section: collect the speed benchmarks' existing JSON results instead of re-running them")
    ap.add_argument("--table-only", action="store_true", help="only rebuild RESULTS.md from the JSON files")
    ap.add_argument("--rescore", action="store_true",
                    help="with --runs: evaluate and export the existing run folders again with the current code "
                         "(no training; the training figures and date are kept)")
    ap.add_argument("--list", action="store_true", help="list the sections and runs, then stop")
    a = ap.parse_args(argv)
    if a.list:
        for s in SECTIONS:
            print(s)
        for spec in utk_specs(False) + forehead_specs(False):
            print(f"  {spec.name}: {spec.model} {spec.mode} {spec.options}{'' if spec.quick else '  (full only)'}")
        return 0
    if a.table_only:
        print(write_markdown())
        return 0
    only = [s for s in a.only.split(",") if s] or list(SECTIONS)
    bad = [s for s in only + [s for s in a.skip.split(",") if s] if s not in SECTIONS]
    if bad:
        ap.error(f"unknown section(s) {bad}; choose from {', '.join(SECTIONS)}")
    chosen = [s for s in SECTIONS if s in only and s not in a.skip.split(",")]
    if not a.data.exists():
        ap.error(f"--data {a.data} does not exist (the real data lives in ../shared/data beside the checkout)")
    if a.threads:
        import torch

        torch.set_num_threads(a.threads)
    RESULTS.mkdir(parents=True, exist_ok=True)
    argv_s = sys.argv[1:] if argv is None else list(argv)
    ctx = Ctx(data=a.data.resolve(), work=a.work.resolve(), seed=a.seed, quick=a.quick,
              runs={r for r in a.runs.split(",") if r},
              command="python benchmarks/run_all.py " + " ".join(shlex.quote(x) for x in argv_s),
              machine=machine_info(), collect_speed=a.collect_speed, rescore=a.rescore)
    if a.rescore and not ctx.runs:
        ap.error("--rescore needs --runs NAME[,NAME...]: the run folders to score again")
    status = 0
    for name in chosen:
        say(f"\n######## section {name} ({_now()})")
        t0 = time.perf_counter()
        try:
            body = RUNNERS[name](ctx)
            body["seconds"] = round(time.perf_counter() - t0, 1)
            if ctx.runs and (RESULTS / f"{name}.json").exists() and name in ("utk", "forehead", "london"):
                body = _merge(json.loads((RESULTS / f"{name}.json").read_text()), body)
            atomic_write_json(RESULTS / f"{name}.json", ctx._wrap(name, body))
        except Exception as e:  # noqa: BLE001
            status = 1
            say(f"section {name} FAILED: {type(e).__name__}: {e}")
            traceback.print_exc()
        write_markdown()
    say(f"\nresults: {RESULTS / 'RESULTS.md'}")
    return status


def _merge(old: dict, new: dict) -> dict:
    """Keep earlier entries of runs not redone in this call (``--runs`` selects a few)."""
    names = {e["name"] for e in new.get("entries", [])}
    kept = [e for e in old.get("entries", []) if e.get("name") not in names]
    new["entries"] = kept + new.get("entries", [])
    return new


if __name__ == "__main__":
    sys.exit(main())
