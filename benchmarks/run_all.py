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

Every training setting (the runs and their settings: ``benchmarks/suite.py``) is fixed in advance or chosen
on validation splits only; the test split is only scored. Seeds are fixed (``--seed``).
Results: ``benchmarks/results/<section>.json`` (with date, machine and command); after each section
``benchmarks/render.py`` turns them into ``docs/results/benchmarks.md`` and the README's results table.
Heavy: run it under ``flock /tmp/skinage-heavy.lock`` on shared machines.

Examples::

    python benchmarks/run_all.py --quick                  # feature-mode runs only (~15 min, 2 cores)
    python benchmarks/run_all.py --only aihub,london
    python benchmarks/run_all.py                          # everything, incl. fine-tuning and distillation
    python benchmarks/run_all.py --table-only             # only re-render the Markdown (= benchmarks/render.py)
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

sys.path.insert(0, str(Path(__file__).resolve().parent))  # suite.py and render.py beside this file
from suite import (AIHUB_REMAP, FOREHEAD_BAND, FEATURE_HEADS, HEADLINE, LONDON_BINS, RESULTS, ROOT,  # noqa: E402
                   SECTIONS, SUITE_AUGMENT, UTK_REMAP4, RunSpec, entry_size, forehead_specs, utk_specs)

sys.path.insert(0, str(ROOT))
from render import TABLES, num_ci, write_results  # noqa: E402

from skinage.utils import atomic_write_json, say  # noqa: E402


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
        say(f"aihub: {protocol:<28} {name:<22} acc {num_ci(t, 'accuracy')}  qwk {num_ci(t, 'qwk')}")

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
            say(f"aihub: test split (by person)       {e['baseline']:<22} acc {num_ci(e['test'], 'accuracy')}  "
                f"qwk {num_ci(e['test'], 'qwk')}")

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
    from skinage.preprocess import Preprocess

    meta_p = run_dir / "weights" / "best.json"
    meta = json.loads(meta_p.read_text()) if meta_p.exists() else {}
    entry: dict[str, Any] = {
        "name": spec.name, "task": spec.task, "model": spec.model, "mode": spec.mode, "label": spec.label,
        "options": spec.options, "run": str(run_dir), "weights_from": meta.get("weights_from"),
        "size": Preprocess.from_meta(meta).size if meta else None,
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
    say(f"== {spec.name}: test acc {num_ci(t, 'accuracy')}  qwk {num_ci(t, 'qwk')}")
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
    say(f"== {spec.name}: test acc {num_ci(t, 'accuracy')}  qwk {num_ci(t, 'qwk')}  (scored again)")
    return entry


def _run_spec(spec: RunSpec, manifest: Path, ctx: "Ctx", done: dict, earlier: list | None = None) -> dict:
    from skinage.training.train import train

    if spec.base:
        return _tta_spec(spec, ctx, done, earlier)
    if ctx.rescore:
        return _rescore_spec(spec, ctx, done, earlier)
    opts = {"augment": SUITE_AUGMENT, **spec.options}
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
        if "size" not in opts and entry_size(best):
            opts["size"] = entry_size(best)  # student and teacher see the same crop
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
    say(f"== {spec.name}: test acc {num_ci(t, 'accuracy')}  qwk {num_ci(t, 'qwk')}  ({train_s:.0f} s training)")
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
    ap.add_argument("--table-only", action="store_true",
                    help="only re-render the Markdown from the JSON files (as benchmarks/render.py does)")
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
        print(write_results())
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
        write_results()
    say(f"\nresults: {RESULTS}/<section>.json; tables: {TABLES}")
    return status


def _merge(old: dict, new: dict) -> dict:
    """Keep earlier entries of runs not redone in this call (``--runs`` selects a few)."""
    names = {e["name"] for e in new.get("entries", [])}
    kept = [e for e in old.get("entries", []) if e.get("name") not in names]
    new["entries"] = kept + new.get("entries", [])
    return new


if __name__ == "__main__":
    sys.exit(main())
