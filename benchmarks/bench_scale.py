#!/usr/bin/env python
"""How ingest, feature extraction and training scale with the number of images, on one machine.

For each size N of ``--sizes`` this makes (once, reused between runs under ``--work``) a synthetic
folder-per-class data set of N real image files: JPEGs (some greyscale, some PNG) of 64-200 px a
side, four classes, 1-4 images per person (``<person>_<k>.jpg``), and a few bad files (one in 500
truncated, one in 2,000 random bytes) that ingest must set aside. The sets are hard links into one
pool of generated images, so the N-image set is the first N images of every larger one.

Each measurement runs the real command (``python -m skinage ...``) in its own process; its peak RSS
is that process's own high-water mark (``VmHWM``, written by the child as it exits; ``ru_maxrss``
where there is no /proc), its time the wall-clock time seen by this script:

``ingest``
    ``skinage ingest SET --out m.parquet --subject-regex '^(\\d+)_'`` (``ingest_s``, ``peak_rss_mb``),
    and the same with ``--out m.csv`` (``ingest_csv_s``, ``ingest_csv_peak_rss_mb``).
    With both, ``read_parquet_s`` / ``read_csv_s``: the seconds ``read_manifest`` takes for each
    file (best of 3 in this script's process), and the two files' sizes.
``features``
    ``skinage train --mode feature --size 96 --epochs 1`` with empty crop and feature caches:
    MobileNetV2 (ImageNet weights) embeddings of every image, fp32; ``features_img_s`` is
    ``features_computed / feature_seconds`` from the run's metrics.json (decode + crop + forward +
    cache writes), ``features_peak_rss_mb`` the process's peak.
``train``
    the same command with ``--epochs E`` on the now warm feature cache: ``train_steps_s`` is the
    median over epochs of the head's optimizer steps per second (results.csv ``img_s`` x steps /
    training rows), ``train_peak_rss_mb`` the process's peak (embeddings loaded from the cache and
    handed to torch), ``features_load_s`` the time to load them.
``finetune`` (not in the default ``--steps``)
    ``skinage train --mode finetune --epochs 1`` on a fixed ``--finetune`` K-image subset of the
    training split (the same person ids at every N), so its steps/s is comparable across sizes.

The machine is shared: every row records the 1-minute load average before and after each step;
compare sizes within one run. Writes ``--out`` (JSON, ``{"rows": [...]}``) and a Markdown table
(``--md``, default ``docs/results/scale.md``), both atomically, after every size.

Run (heavy; one at a time on a shared machine)::

    flock /tmp/skinage-heavy.lock .venv/bin/python benchmarks/bench_scale.py \\
        --sizes 2000,8000,32000,100000 --out benchmarks/results/bench_scale.json
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CODE = ROOT  # the checkout whose skinage the measured commands run (--code)

CLASSES = ("20", "30", "40", "50")
POOL_VERSION = 1  # change when the generated images change (the pool is then made again)
SUBJECT_REGEX = r"^(\d+)_"


# ------------------------------------------------------------------------------------- the data


def _plan(n: int, seed: int):
    """(class, file name, kind) of the first n pool images; prefix-stable (image i never depends on n).

    kind: 'jpg', 'grey' (greyscale JPEG), 'png', 'truncated' (a JPEG cut in half), 'corrupt' (random bytes).
    """
    import numpy as np

    rng = np.random.default_rng([seed, 0])
    out = []
    subject = 0
    while len(out) < n:
        k = int(rng.integers(1, 5))  # images of this person
        cls = CLASSES[int(rng.integers(0, len(CLASSES)))]
        for j in range(k):
            i = len(out)
            if i % 500 == 499:
                kind = "truncated"
            elif i % 2000 == 1333:
                kind = "corrupt"
            elif i % 20 == 7:
                kind = "png"
            elif i % 20 == 13:
                kind = "grey"
            else:
                kind = "jpg"
            ext = ".png" if kind == "png" else ".jpg"
            out.append((cls, f"{subject:06d}_{j}{ext}", kind))
        subject += 1
    return out[:n]


def _image_bytes(i: int, kind: str, seed: int) -> bytes:
    """One generated image file: a lit, textured ellipse ("face") on a gradient, varied size and tone."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng([seed, 1, i])
    w, h = (int(v) for v in rng.integers(64, 201, size=2))
    if kind == "corrupt":
        return rng.bytes(int(rng.integers(200, 3000)))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = rng.uniform(40, 200, size=3).astype(np.float32)
    grad = (xx / w)[..., None] * rng.uniform(-60, 60, size=3) + (yy / h)[..., None] * rng.uniform(-60, 60, size=3)
    cx, cy = w * rng.uniform(0.35, 0.65), h * rng.uniform(0.35, 0.65)
    rx, ry = w * rng.uniform(0.2, 0.4), h * rng.uniform(0.25, 0.45)
    face = (((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1.0)[..., None]
    skin = rng.uniform(120, 230, size=3).astype(np.float32)
    lines = 12 * np.sin(yy / rng.uniform(2, 6) + rng.uniform(0, 6.3))[..., None]  # "wrinkles"
    img = np.where(face, skin + lines, base + grad) + rng.normal(0, 8, size=(h, w, 3))
    pil = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    buf = io.BytesIO()
    if kind == "png":
        pil.save(buf, format="PNG", compress_level=1)
    else:
        if kind == "grey":
            pil = pil.convert("L")
        pil.save(buf, format="JPEG", quality=int(rng.integers(75, 96)))
    data = buf.getvalue()
    return data[: len(data) // 2] if kind == "truncated" else data


def make_pool(work: Path, n: int, seed: int) -> list:
    """Generate (or extend) the pool of images under work/pool; return the plan of its first n."""
    from tqdm import tqdm

    from skinage.utils import atomic_write_json

    pool = work / "pool"
    marker = pool / "pool.json"
    have = 0
    if marker.is_file():
        info = json.loads(marker.read_text())
        if info.get("version") == POOL_VERSION and info.get("seed") == seed:
            have = int(info.get("n", 0))
        else:
            shutil.rmtree(pool)
    plan = _plan(n, seed)
    if have < n:
        for c in CLASSES:
            (pool / c).mkdir(parents=True, exist_ok=True)
        for i in tqdm(range(have, n), desc="generating images", unit="img", file=sys.stderr, mininterval=5):
            cls, name, kind = plan[i]
            (pool / cls / name).write_bytes(_image_bytes(i, kind, seed))
        atomic_write_json(marker, {"version": POOL_VERSION, "seed": seed, "n": n})
    return plan


def make_set(work: Path, plan: list, n: int) -> Path:
    """work/sets/n<N>: the first n pool images as a folder per class (hard links; copies across devices)."""
    d = work / "sets" / f"n{n}"
    done = d / ".complete"
    if done.is_file() and done.read_text() == str(n):
        return d
    if d.exists():
        shutil.rmtree(d)
    for c in CLASSES:
        (d / c).mkdir(parents=True)
    for cls, name, _ in plan[:n]:
        src, dst = work / "pool" / cls / name, d / cls / name
        try:
            os.link(src, dst)
        except OSError:
            shutil.copyfile(src, dst)
    done.write_text(str(n))
    return d


# ------------------------------------------------------------------------------------- measuring


def loadavg() -> float:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return float("nan")


# The child runs ``python -m skinage ...`` and, on exit, writes its peak RSS: VmHWM, the high-water mark of
# its own memory since exec (ru_maxrss from wait4 / RUSAGE_CHILDREN would not do: Linux carries the
# spawning process's RSS over exec into it, so every child would report at least this script's size),
# and the peaks of its anonymous and file-backed parts (RssAnon / RssFile, sampled every 50 ms: memory-
# mapped files such as the feature cache's sets are file-backed, pages the system can drop and read again).
_LAUNCHER = """
import atexit, json, os, resource, runpy, sys, threading, time

_parts = {"RssAnon": 0, "RssFile": 0}

def _status():
    with open("/proc/self/status") as f:
        return {k: int(v.split()[0]) for k, v in (ln.split(":", 1) for ln in f) if k in ("VmHWM", "RssAnon", "RssFile")}

def _sample():
    while True:
        try:
            st = _status()
        except (OSError, ValueError):
            return
        for k in _parts:
            _parts[k] = max(_parts[k], st.get(k, 0))
        time.sleep(0.05)

def _peak():
    try:
        st = _status()
        out = {"hwm": st["VmHWM"], "anon": max(_parts["RssAnon"], st["RssAnon"]),
               "file": max(_parts["RssFile"], st["RssFile"])}
    except (OSError, KeyError, ValueError):
        out = {"hwm": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // (1024 if sys.platform == "darwin" else 1)}
    with open(os.environ["BENCH_PEAK_FILE"], "w") as f:
        json.dump(out, f)

threading.Thread(target=_sample, daemon=True).start()
atexit.register(_peak)
runpy.run_module("skinage", run_name="__main__", alter_sys=True)
"""


def run_child(cmd: list, log: Path, env: dict | None = None) -> dict:
    """Run ``skinage CMD...`` in its own process: wall seconds, its peak RSS (total, anonymous, file-backed; MB),
    load averages before and after."""
    peak_file = log.with_suffix(".peak")
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = str(CODE) + (os.pathsep + full_env["PYTHONPATH"] if full_env.get("PYTHONPATH") else "")
    full_env["BENCH_PEAK_FILE"] = str(peak_file)
    full_env.update(env or {})
    la0 = loadavg()
    log.parent.mkdir(parents=True, exist_ok=True)
    peak_file.unlink(missing_ok=True)
    with open(log, "w") as lf:
        lf.write("$ skinage " + " ".join(map(str, cmd)) + "\n")
        lf.flush()
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", _LAUNCHER, *map(str, cmd)], stdout=lf, stderr=subprocess.STDOUT,
                              env=full_env, cwd=CODE)
        wall = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = log.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"skinage {cmd[0]} failed ({proc.returncode}); end of {log}:\n{tail}")
    peak = json.loads(peak_file.read_text())
    mb = {k: round(v / 1024, 1) for k, v in peak.items()}
    return {"s": round(wall, 2), "peak_rss_mb": mb["hwm"], "peak_anon_mb": mb.get("anon"), "peak_file_mb": mb.get("file"),
            "load_before": la0, "load_after": loadavg()}


def n_steps(rows: int, batch_size: int) -> int:
    """Optimiser steps per epoch, by the rule of ``skinage.training.batches.n_batches`` (not imported: it loads
    torch, and this script stays small)."""
    nb = max(1, math.ceil(rows / batch_size))
    return nb - 1 if nb > 1 and rows % batch_size == 1 else nb


def bench_ingest(ds: Path, out: Path, log: Path, workers: int) -> dict:
    r = run_child(["ingest", ds, "--out", out, "--subject-regex", SUBJECT_REGEX, "--workers", workers, "--quiet"],
                  log)
    meta = json.loads(out.with_name(out.stem + ".meta.json").read_text())
    r.update(rows=int(meta["rows"]), rejected=int(sum(meta["rejected"].values())),
             file_mb=round(out.stat().st_size / 2**20, 2))
    return r


def read_seconds(manifest: Path) -> float:
    """Seconds ``read_manifest`` takes (best of 3, in this process, libraries already loaded)."""
    from skinage.data.manifest import read_manifest

    read_manifest(manifest)
    best = math.inf
    for _ in range(3):
        t0 = time.perf_counter()
        read_manifest(manifest)
        best = min(best, time.perf_counter() - t0)
    return round(best, 3)


def _train_args(manifest: Path, runs: Path, name: str, size: int, epochs: int, mode: str = "feature") -> list:
    return ["train", "--data", manifest, "--model", "mobilenet_v2", "--mode", mode, "--size", size, "--epochs", epochs,
            "--patience", 0, "--precision", "fp32", "--project", runs, "--name", name, "--exist-ok", "--no-progress"]


def _read_run(run: Path) -> tuple[dict, list]:
    metrics = json.loads((run / "metrics.json").read_text())
    with open(run / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return metrics, rows


def bench_features(manifest: Path, work: Path, n: int, size: int, cache: Path) -> dict:
    if cache.exists():
        shutil.rmtree(cache)
    r = run_child(_train_args(manifest, work / "runs", f"feat{n}", size, 1), work / "logs" / f"features-{n}.log",
                  env={"SKINAGE_CACHE": str(cache)})
    m, _ = _read_run(work / "runs" / f"feat{n}")
    return {"features_img_s": round(m["features_computed"] / max(m["feature_seconds"], 1e-9), 1),
            "features_computed": m["features_computed"], "features_s": m["feature_seconds"],
            "features_wall_s": r["s"], "features_peak_rss_mb": r["peak_rss_mb"],
            "features_peak_anon_mb": r["peak_anon_mb"], "features_peak_file_mb": r["peak_file_mb"],
            "features_load": [r["load_before"], r["load_after"]]}


def bench_train(manifest: Path, work: Path, n: int, size: int, cache: Path, epochs: int) -> dict:
    r = run_child(_train_args(manifest, work / "runs", f"train{n}", size, epochs), work / "logs" / f"train-{n}.log",
                  env={"SKINAGE_CACHE": str(cache)})
    m, rows = _read_run(work / "runs" / f"train{n}")
    train_rows = int(m["train_rows"])
    steps = n_steps(train_rows, 64)  # the default batch of feature mode
    per_epoch = [float(row["img_s"]) * steps / train_rows for row in rows]  # img_s: training rows / epoch time
    return {"train_steps_s": round(statistics.median(per_epoch), 1), "train_rows": train_rows,
            "train_epochs": len(rows), "features_load_s": m["feature_seconds"],
            "features_reused": m["features_reused"], "train_wall_s": r["s"], "train_peak_rss_mb": r["peak_rss_mb"],
            "train_peak_anon_mb": r["peak_anon_mb"], "train_peak_file_mb": r["peak_file_mb"],
            "train_load": [r["load_before"], r["load_after"]]}


def bench_finetune(manifest: Path, work: Path, n: int, size: int, cache: Path, k: int) -> dict:
    """One finetune epoch on a fixed K-image subset of the training split (same people at every N)."""
    import pandas as pd

    from skinage.data.manifest import Manifest, read_manifest, write_manifest

    man = read_manifest(manifest)
    df = man.df
    tr = df[df["split"] == "train"].sort_values("path").head(k)
    va = df[df["split"] == "val"].sort_values("path").head(max(16, k // 8))
    sub = work / "manifests" / f"ft{n}.parquet"
    write_manifest(Manifest(pd.concat([tr, va]), man.classes, dict(man.meta)), sub)
    r = run_child(_train_args(sub, work / "runs", f"ft{n}", size, 1, mode="finetune"),
                  work / "logs" / f"finetune-{n}.log", env={"SKINAGE_CACHE": str(cache)})
    _, rows = _read_run(work / "runs" / f"ft{n}")
    img_s = float(rows[0]["img_s"])
    return {"finetune_images": len(tr), "finetune_steps_s": round(img_s / 32, 2), "finetune_img_s": img_s,
            "finetune_peak_rss_mb": r["peak_rss_mb"], "finetune_load": [r["load_before"], r["load_after"]]}


# ------------------------------------------------------------------------------------- results


def machine() -> dict:
    from importlib import metadata

    cpu = platform.processor()
    try:
        cpu = next(ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                   if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem = ""
    try:
        mem = next(ln.split(":", 1)[1].strip() for ln in Path("/proc/meminfo").read_text().splitlines()
                   if ln.startswith("MemTotal"))
    except (OSError, StopIteration):
        pass
    vers = {}
    for p in ("torch", "pandas", "pyarrow", "pillow", "numpy"):
        try:
            vers[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            pass
    return {"cpu": cpu, "cores": os.cpu_count(), "memory": mem, "python": platform.python_version(), **vers}


def _fmt(v, spec=""):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return format(v, spec)


def markdown(res: dict, baseline: dict | None = None) -> str:
    rows = res["rows"]
    lines = [
        "# Scale on one machine (`benchmarks/bench_scale.py`)",
        "",
        f"Measured {res['finished'] or res['started']} on {res['machine']['cpu']} "
        f"({res['machine']['cores']} cores, shared with other work: see the load averages), "
        f"torch {res['machine'].get('torch', '?')}, pandas {res['machine'].get('pandas', '?')}, "
        f"pyarrow {res['machine'].get('pyarrow', '?')}.",
        "",
        f"Command: `{res['command']}`",
        "",
        "Synthetic folder-per-class JPEG/PNG sets (64-200 px, 4 classes, 1-4 images per person, 1 in 500 truncated "
        "and 1 in 2,000 random bytes, set aside by ingest). Each figure is one process's: wall-clock seconds and "
        "peak RSS (its own high-water mark, VmHWM). Features: MobileNetV2 frozen, "
        f"{res['settings']['feature_size']} px, fp32, empty caches. Train: feature-mode linear head, batch 64, "
        f"median of {res['settings']['epochs']} epochs, on the cached features.",
        "",
        "| images | kept | ingest s (parquet) | peak RSS MB | s per 1k | ingest s (csv) | csv peak RSS MB "
        "| features img/s | features peak RSS MB | train steps/s | train peak RSS MB | load avg (1 min) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        loads = [v for k in ("ingest_load", "ingest_csv_load", "features_load", "train_load") for v in r.get(k, [])]
        la = f"{min(loads):.1f}-{max(loads):.1f}" if loads else "-"
        lines.append(
            f"| {r['images']:,} | {r.get('rows', 0):,} | {_fmt(r.get('ingest_s'), '.1f')} | {_fmt(r.get('peak_rss_mb'), '.0f')} "
            f"| {_fmt(r.get('ingest_s_per_1k'), '.2f')} | {_fmt(r.get('ingest_csv_s'), '.1f')} "
            f"| {_fmt(r.get('ingest_csv_peak_rss_mb'), '.0f')} | {_fmt(r.get('features_img_s'), '.0f')} "
            f"| {_fmt(r.get('features_peak_rss_mb'), '.0f')} | {_fmt(r.get('train_steps_s'), '.0f')} "
            f"| {_fmt(r.get('train_peak_rss_mb'), '.0f')} | {la} |")
    if any("manifest_csv_mb" in r for r in rows):
        lines += ["", "Manifest files (the same table): size and `read_manifest` time, best of 3.", "",
                  "| images | Parquet MB | CSV MB | read Parquet s | read CSV s |", "|---:|---:|---:|---:|---:|"]
        for r in rows:
            if "manifest_csv_mb" in r:
                lines.append(f"| {r['images']:,} | {_fmt(r.get('manifest_parquet_mb'), '.2f')} | {r['manifest_csv_mb']:.2f} "
                             f"| {_fmt(r.get('read_parquet_s'), '.3f')} | {_fmt(r.get('read_csv_s'), '.3f')} |")
    if any("features_peak_anon_mb" in r or "train_peak_anon_mb" in r for r in rows):
        lines += ["", "Memory of the feature steps, MB: peak total (VmHWM) / anonymous / file-backed (RssAnon / RssFile, "
                  "sampled every 50 ms; the feature cache's sets are memory-mapped files, so file-backed).", "",
                  "| images | features: total | anon | file | train: total | anon | file | train: embeddings loaded in s |",
                  "|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in rows:
            lines.append(f"| {r['images']:,} | " + " | ".join(_fmt(r.get(k), '.0f') for k in (
                "features_peak_rss_mb", "features_peak_anon_mb", "features_peak_file_mb", "train_peak_rss_mb",
                "train_peak_anon_mb", "train_peak_file_mb")) + f" | {_fmt(r.get('features_load_s'), '.2f')} |")
    if len(rows) >= 2:
        a, b = rows[0], rows[-1]
        lines += ["", f"From {a['images']:,} to {b['images']:,} images ({b['images'] / a['images']:.0f}x):"]
        for key, what in (("ingest_s", "ingest time"), ("peak_rss_mb", "ingest peak RSS (parquet)"),
                          ("peak_anon_mb", "ingest peak anonymous memory (parquet)"),
                          ("ingest_csv_peak_rss_mb", "ingest peak RSS (csv)"),
                          ("features_peak_rss_mb", "feature extraction peak RSS"),
                          ("train_peak_rss_mb", "feature-mode training peak RSS"),
                          ("train_peak_anon_mb", "feature-mode training peak anonymous memory")):
            if a.get(key) and b.get(key):
                lines.append(f"* {what}: {b[key] / a[key]:.2f}x")
        c = rows[-2]
        if c.get("ingest_s") and b.get("ingest_s"):
            lines.append(f"* ingest time from {c['images']:,} to {b['images']:,} images "
                         f"({b['images'] / c['images']:.2f}x the images): {b['ingest_s'] / c['ingest_s']:.2f}x")
    if baseline:
        lines += _baseline_lines(res, baseline)
    if any("finetune_steps_s" in r for r in rows):
        lines += ["", "| images | finetune subset | finetune steps/s | peak RSS MB |", "|---:|---:|---:|---:|"]
        for r in rows:
            if "finetune_steps_s" in r:
                lines.append(f"| {r['images']:,} | {r['finetune_images']} | {r['finetune_steps_s']:.2f} "
                             f"| {r['finetune_peak_rss_mb']:.0f} |")
    return "\n".join(lines) + "\n"


_COMPARED = (("peak_rss_mb", "ingest peak RSS MB"), ("ingest_s", "ingest s"),
             ("features_peak_rss_mb", "features peak RSS MB"), ("train_peak_rss_mb", "train peak RSS MB"),
             ("train_peak_anon_mb", "train peak anonymous MB"), ("features_load_s", "train: embeddings loaded in s"),
             ("train_steps_s", "train steps/s"))


def _baseline_lines(res: dict, base: dict) -> list:
    """A table of this run's figures beside another run's (``--baseline``), size by size."""
    mine = {r["images"]: r for r in res["rows"]}
    keys = [(k, what) for k, what in _COMPARED
            if any(k in b and k in mine.get(b["images"], {}) for b in base["rows"])]
    sizes = [b["images"] for b in base["rows"] if b["images"] in mine]
    if not keys or not sizes:
        return []
    lines = ["", f"Against `{base['settings'].get('code', '?')}` (commit {base['settings'].get('commit') or '?'}), "
                 f"measured {base.get('finished') or base.get('started')} with `{base['command']}`: "
                 "baseline -> this run.", "",
             "| images | " + " | ".join(what for _, what in keys) + " |", "|---:|" + "---:|" * len(keys)]
    for n in sizes:
        b, r = next(x for x in base["rows"] if x["images"] == n), mine[n]
        cells = [f"{_fmt(b.get(k), '.1f')} -> {_fmt(r.get(k), '.1f')}" for k, _ in keys]
        lines.append(f"| {n:,} | " + " | ".join(cells) + " |")
    return lines


def write_results(res: dict, out: Path, md: Path, baseline: dict | None = None) -> None:
    from skinage.utils import atomic_write_json, atomic_write_text

    atomic_write_json(out, res)
    atomic_write_text(md, markdown(res, baseline))


def _commit(code: Path) -> str | None:
    try:
        return subprocess.run(["git", "-C", str(code), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip() or None
    except (OSError, subprocess.CalledProcessError):
        return None


# ------------------------------------------------------------------------------------- main


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="", help="comma-separated numbers of images, e.g. 2000,8000,32000,100000")
    ap.add_argument("--out", required=True, help="JSON results file")
    ap.add_argument("--md", default=str(ROOT / "docs" / "results" / "scale.md"), help="Markdown table to write")
    ap.add_argument("--work", default=os.path.join(os.environ.get("TMPDIR", "/tmp"), "skinage-bench-scale"),
                    help="work folder: the generated images (kept and reused), manifests, caches, run folders, logs")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", default="ingest,csv,features,train",
                    help="what to measure: any of ingest, csv (ingest to .csv too), features, train, finetune")
    ap.add_argument("--workers", type=int, default=2, help="ingest --workers")
    ap.add_argument("--feature-size", type=int, default=96, help="input side of the feature extraction")
    ap.add_argument("--epochs", type=int, default=5, help="feature-mode training epochs (steps/s is their median)")
    ap.add_argument("--finetune", type=int, default=256, help="images of the fixed finetune subset (step 'finetune')")
    ap.add_argument("--keep-cache", action="store_true", help="keep each size's crop/feature caches (GBs at 100k)")
    ap.add_argument("--code", default=str(ROOT), help="checkout whose skinage the commands run (default: this one)")
    ap.add_argument("--baseline", default="", help="another run's JSON to show beside this one in the Markdown")
    ap.add_argument("--render-only", action="store_true", help="only write --md from the --out JSON (and --baseline)")
    args = ap.parse_args(argv)
    global CODE
    CODE = Path(args.code).expanduser().resolve()
    baseline = json.loads(Path(args.baseline).read_text()) if args.baseline else None
    if args.render_only:
        from skinage.utils import atomic_write_text

        atomic_write_text(Path(args.md), markdown(json.loads(Path(args.out).read_text()), baseline))
        return 0
    sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()})
    steps = {s.strip() for s in args.steps.split(",") if s.strip()}
    unknown = steps - {"ingest", "csv", "features", "train", "finetune"}
    if unknown or not sizes:
        ap.error(f"unknown steps {sorted(unknown)}" if unknown else "give --sizes")
    work = Path(args.work).expanduser().resolve()
    out, md = Path(args.out), Path(args.md)
    res = {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "finished": None, "machine": machine(),
           "command": "python benchmarks/bench_scale.py " + " ".join(argv if argv is not None else sys.argv[1:]),
           "settings": {"feature_size": args.feature_size, "epochs": args.epochs, "workers": args.workers,
                        "seed": args.seed, "steps": sorted(steps), "work": str(work), "code": str(CODE),
                        "commit": _commit(CODE)},
           "rows": []}
    plan = make_pool(work, max(sizes), args.seed)
    for n in sizes:
        print(f"== {n} images (load {loadavg()})", flush=True)
        ds = make_set(work, plan, n)
        row = {"images": n}
        man = work / "manifests" / f"m{n}.parquet"
        man.parent.mkdir(parents=True, exist_ok=True)
        if "ingest" in steps or not man.is_file():
            r = bench_ingest(ds, man, work / "logs" / f"ingest-{n}.log", args.workers)
            row.update(ingest_s=r["s"], peak_rss_mb=r["peak_rss_mb"], peak_anon_mb=r["peak_anon_mb"],
                       ingest_s_per_1k=round(r["s"] / n * 1000, 3),
                       rows=r["rows"], rejected=r["rejected"], manifest_parquet_mb=r["file_mb"],
                       ingest_load=[r["load_before"], r["load_after"]])
            print(f"  ingest -> parquet: {r['s']} s, {r['peak_rss_mb']} MB peak, {r['rows']} rows, "
                  f"{r['rejected']} set aside", flush=True)
        if "csv" in steps:
            r = bench_ingest(ds, man.with_suffix(".csv"), work / "logs" / f"ingest-csv-{n}.log", args.workers)
            row.update(ingest_csv_s=r["s"], ingest_csv_peak_rss_mb=r["peak_rss_mb"], manifest_csv_mb=r["file_mb"],
                       ingest_csv_load=[r["load_before"], r["load_after"]])
            print(f"  ingest -> csv: {r['s']} s, {r['peak_rss_mb']} MB peak", flush=True)
            if man.is_file():
                row.update(read_parquet_s=read_seconds(man), read_csv_s=read_seconds(man.with_suffix(".csv")))
        cache = work / "cache" / f"n{n}"
        if "features" in steps:
            row.update(bench_features(man, work, n, args.feature_size, cache))
            print(f"  features: {row['features_img_s']} img/s, {row['features_peak_rss_mb']} MB peak", flush=True)
        if "train" in steps:
            row.update(bench_train(man, work, n, args.feature_size, cache, args.epochs))
            print(f"  train: {row['train_steps_s']} steps/s, {row['train_peak_rss_mb']} MB peak", flush=True)
        if "finetune" in steps:
            row.update(bench_finetune(man, work, n, args.feature_size, cache, args.finetune))
            print(f"  finetune: {row['finetune_steps_s']} steps/s", flush=True)
        if not args.keep_cache and cache.exists():
            shutil.rmtree(cache)
        res["rows"].append(row)
        res["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        write_results(res, out, md, baseline)
    print(markdown(res, baseline))
    return 0


if __name__ == "__main__":
    sys.exit(main())
