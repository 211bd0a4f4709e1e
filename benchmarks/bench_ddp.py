"""Distributed training on this machine: one process against torchrun's processes, side by side.

(a) ``finetune`` training throughput (MobileNetV2, ImageNet weights, 112 px, global batch 16, fp32,
    images/s of the training epochs from results.csv): 1 process x 2 threads against
    ``torchrun --nproc_per_node 2`` (2 processes x 1 thread: the cores shared, as the command does), with
    synchronised batch norms (the default) and with ``--no-sync-bn``.
(b) ``feature`` mode's embedding extraction (224 px, empty caches, ``feature_seconds`` of metrics.json):
    1 process x 2 threads, 1 process x 1 thread (what rank 0 alone would have inside a 2-process run)
    and 2 processes x 1 thread each embedding half the images (what the command does).

Data: the first ``--images`` images of ../shared/data/utkface-age (4 age groups). Alternating, ``--repeats``
rounds; the load average (1 min) is recorded before each run, since the machine is shared.
Run (heavy; one at a time on a shared machine):
    flock /tmp/skinage-heavy.lock .venv/bin/python benchmarks/bench_ddp.py
Writes benchmarks/results/bench_ddp.json.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DATA = Path(os.environ.get("SKINAGE_SHARED_DATA", ROOT.parent / "shared" / "data")) / "utkface-age"
REMAP = "10,20:0 30,40:1 50:2 60,70:3"


def make_manifest(out: Path, n: int) -> Path:
    from skinage.data.ingest import ingest
    from skinage.data.manifest import Manifest, read_manifest, write_manifest

    ingest(str(DATA), out=str(out), remap=REMAP, quiet=True)
    m = read_manifest(out)
    df = m.df.sample(n=min(n, len(m.df)), random_state=0).reset_index(drop=True)
    write_manifest(Manifest(df, m.classes, m.meta), out)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(args: list, procs: int, threads: int, cache: Path) -> dict:
    """``skinage train ARGS`` in 1 process (``threads`` threads) or under torchrun (``procs`` x 1 thread)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), SKINAGE_CACHE=str(cache))
    if procs == 1:
        cmd = [sys.executable, "-m", "skinage", "train", *args, "--threads", str(threads)]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", str(procs),
               "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{free_port()}", "-m", "skinage", "train", *args]
    load = os.getloadavg()[0]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(p.stderr[-3000:])
    run_dir = Path(p.stdout.split()[-1])
    return {"load1": round(load, 2), "run": run_dir}


def bench_train(manifest: Path, work: Path, repeats: int, epochs: int) -> dict:
    import pandas as pd

    args = ["--data", str(manifest), "--model", "mobilenet_v2", "--mode", "finetune", "--size", "112",
            "--batch-size", "16", "--epochs", str(epochs), "--precision", "fp32", "--no-progress", "--project",
            str(work / "train")]
    cache = work / "cache-train"  # decoded crops shared: (a) measures the training steps
    configs = (("1x2", 1, 2, []), ("2x1", 2, 1, []), ("2x1-no-sync-bn", 2, 1, ["--no-sync-bn"]))
    rows: dict = {name: [] for name, *_ in configs}
    for r in range(repeats):
        for name, procs, threads, extra in configs:
            res = run(args + extra + ["--name", f"{name}-{r}"], procs, threads, cache)
            img_s = pd.read_csv(res["run"] / "results.csv")["img_s"].tolist()
            rows[name].append({"img_s": img_s, "median_img_s": statistics.median(img_s), "load1": res["load1"]})
            print(f"  train {name} round {r}: {img_s} img/s (load {res['load1']})", file=sys.stderr)
    out: dict = {"runs": rows}
    for name in rows:
        if name != "1x2":
            ratios = [b["median_img_s"] / a["median_img_s"] for a, b in zip(rows["1x2"], rows[name])]
            out[f"ratio_{name}_over_1x2"] = [round(x, 3) for x in ratios]
            out[f"median_ratio_{name}"] = round(statistics.median(ratios), 3)
    return out


def bench_features(manifest: Path, work: Path, repeats: int) -> dict:
    args = ["--data", str(manifest), "--model", "mobilenet_v2", "--mode", "feature", "--epochs", "1",
            "--no-progress", "--project", str(work / "feat")]
    rows = {"1x2": [], "1x1": [], "2x1": []}
    for r in range(repeats):
        for name, procs, threads in (("1x2", 1, 2), ("1x1", 1, 1), ("2x1", 2, 1)):
            cache = Path(tempfile.mkdtemp(dir=work))  # empty crop and feature caches: decode + embed
            res = run(args + ["--name", f"{name}-{r}"], procs, threads, cache)
            m = json.loads((res["run"] / "metrics.json").read_text())
            n = m["features_computed"]
            rows[name].append({"seconds": m["feature_seconds"], "img_s": round(n / m["feature_seconds"], 2),
                               "images": n, "load1": res["load1"]})
            print(f"  features {name} round {r}: {rows[name][-1]}", file=sys.stderr)
    med = {k: statistics.median(x["img_s"] for x in v) for k, v in rows.items()}
    return {"runs": rows, "median_img_s": med,
            "ratio_2x1_over_1x2": round(med["2x1"] / med["1x2"], 3), "ratio_2x1_over_1x1": round(med["2x1"] / med["1x1"], 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=800)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--parts", default="train,features", help="which measurements (the others are kept from --out)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "bench_ddp.json")
    a = ap.parse_args()
    import torch

    out = json.loads(a.out.read_text()) if a.out.is_file() else {}
    out.update({"machine": {"cores": os.cpu_count(), "python": sys.version.split()[0], "torch": torch.__version__},
                "images": a.images, "repeats": a.repeats})
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        manifest = make_manifest(work / "utk.csv", a.images)
        if "train" in a.parts:
            out["train"] = bench_train(manifest, work, a.repeats, a.epochs)
        if "features" in a.parts:
            out["features"] = bench_features(manifest, work, a.repeats)
    a.out.write_text(json.dumps(out, indent=1, default=str))
    print(json.dumps({k: {m: v for m, v in out[k].items() if m != "runs"} for k in ("train", "features") if k in out}))


if __name__ == "__main__":
    main()
