"""Training speed of skinage against plain PyTorch, measured side by side in one run.

(a) ``finetune`` throughput: skinage's training epoch (the real ``loop.train_epoch`` of an ``ImageTask``:
    crops decoded once into the crop cache and held in memory, per-image augmentation,
    bf16 autocast where the CPU supports it, channels-last) against a plain fp32 eager
    PyTorch loop (PIL decode + torchvision transforms each epoch, NCHW, fp32), same
    model (MobileNetV2, ImageNet weights, 4-class head), same batch size, same images.
    Alternating, median images/s of ``--repeats`` epochs each. Target: >= 2.5x.

(b) ``feature`` mode end to end on ../shared/data/utkface-age (3,700 images, MobileNetV2,
    224 px, no augmented views): ``skinage.train(mode="feature")`` with empty crop and
    feature caches (decode, embeddings, head training, evaluation, run folder) against a
    bare forward pass over the same images (PIL decode + resize + normalise, fp32,
    batch 64, inference mode). Alternating, median of ``--repeats``. Target: <= 1.5x.

Run (heavy; one at a time on a shared machine):
    flock /tmp/skinage-heavy.lock .venv/bin/python benchmarks/bench_train.py
Writes benchmarks/results/bench_train.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

DATA = Path(os.environ.get("SKINAGE_SHARED_DATA", ROOT.parent / "shared" / "data")) / "utkface-age"
REMAP = "10,20:0 30,40:1 50:2 60,70:3"


def machine() -> dict:
    flags = ""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        pass
    model = next((ln.split(":", 1)[1].strip() for ln in flags.splitlines() if ln.startswith("model name")), platform.processor())
    return {"cpu": model, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "flags": [f for f in ("avx512_bf16", "amx_bf16", "avx512_vnni", "avx512f") if f in flags],
            "python": platform.python_version()}


def make_manifest(out: Path) -> Path:
    from skinage.data.ingest import ingest

    ingest(str(DATA), out=str(out), remap=REMAP, quiet=True)
    return out


def warm_page_cache(paths) -> None:
    for p in paths:
        with open(p, "rb") as f:
            f.read()


# ---------------------------------------------------------------------------------------- (a)

def plain_finetune_epoch(model, opt, paths, labels, batch_size, tf) -> float:
    from PIL import Image

    model.train()
    t0 = time.perf_counter()
    for s in range(0, len(paths), batch_size):
        x = torch.stack([tf(Image.open(p).convert("RGB")) for p in paths[s:s + batch_size]])
        y = torch.as_tensor(labels[s:s + batch_size])
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return len(paths) / (time.perf_counter() - t0)


def bench_finetune(manifest: Path, n_images: int, batch_size: int, repeats: int, size: int) -> dict:
    import pandas as pd
    import torchvision
    from torchvision import transforms as T

    from skinage.config import build_config
    from skinage.data.manifest import Manifest, read_manifest, write_manifest
    from skinage.training.data import TrainData
    from skinage.training.image_task import ImageTask
    from skinage.training.loop import train_epoch
    from skinage.training.optim import adamw
    from skinage.training.reproduce import seed_epoch
    from skinage.training.run import Run
    from skinage.training.start import build_model
    from skinage.training.train import TrainConfig, preprocess, resolve_config

    man = read_manifest(manifest)
    tr = man.split("train").sample(n=n_images, random_state=0)
    va = man.split("val").head(8)
    sub = Path(tempfile.mkdtemp()) / "sub.csv"
    write_manifest(Manifest(pd.concat([tr, va]), man.classes, man.meta), sub)
    paths, labels = tr["path"].tolist(), tr["label"].astype(int).tolist()
    warm_page_cache(paths)

    # ours: the real task of `skinage train --mode finetune`
    cfg = resolve_config(build_config(TrainConfig, dict(data=sub, model="mobilenet_v2", mode="finetune", batch_size=batch_size,
                                                        size=size, epochs=100, progress=False)))
    data = TrainData(cfg.data, cfg.seed, cfg.ordinal)
    run = Run(cfg, Path(tempfile.mkdtemp()), data, preprocess(cfg, data.region))
    t0 = time.perf_counter()
    task = ImageTask(run, build_model(cfg, data.K))
    crop_seconds = time.perf_counter() - t0
    opt = adamw(task.params(), 1e-4, 1e-4)  # the optimiser `skinage train` uses
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)

    # plain: the script everyone writes first
    torch.manual_seed(0)
    plain = torchvision.models.mobilenet_v2(weights="IMAGENET1K_V1")
    plain.classifier[1] = torch.nn.Linear(1280, len(man.classes))
    popt = torch.optim.AdamW(plain.parameters(), lr=1e-4)
    tf = T.Compose([T.Resize((size, size)), T.RandomHorizontalFlip(), T.ToTensor(),
                    T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])

    ours_ips, plain_ips = [], []
    # one warm-up epoch each (oneDNN primitive creation, allocator)
    train_epoch(task, 0, seed_epoch(0, 0), opt, sched)
    plain_finetune_epoch(plain, popt, paths[:batch_size], labels[:batch_size], batch_size, tf)
    for r in range(repeats):
        t = time.perf_counter()
        res = train_epoch(task, r + 1, seed_epoch(0, r + 1), opt, sched)
        ours_ips.append(res["images"] / (time.perf_counter() - t))
        plain_ips.append(plain_finetune_epoch(plain, popt, paths, labels, batch_size, tf))
        print(f"  (a) repeat {r + 1}: skinage {ours_ips[-1]:.1f} img/s, plain fp32 {plain_ips[-1]:.1f} img/s", flush=True)
    o, p = statistics.median(ours_ips), statistics.median(plain_ips)
    return {"model": "mobilenet_v2", "images": n_images, "batch_size": batch_size, "size": size, "precision": run.precision,
            "channels_last": cfg.channels_last, "augment": cfg.augment,
            "skinage_img_s": [round(v, 2) for v in ours_ips], "plain_fp32_img_s": [round(v, 2) for v in plain_ips],
            "skinage_median_img_s": round(o, 2), "plain_median_img_s": round(p, 2), "speedup": round(o / p, 2),
            "target": ">= 2.5", "crop_decode_once_s": round(crop_seconds, 2),
            "plain_loop": "PIL decode + Resize + RandomHorizontalFlip + ToTensor + Normalize every epoch, fp32, NCHW, AdamW"}


# ---------------------------------------------------------------------------------------- (b)

def bare_forward(paths, size: int, batch_size: int = 64) -> float:
    import torchvision
    from PIL import Image
    from torchvision import transforms as T

    model = torchvision.models.mobilenet_v2(weights="IMAGENET1K_V1").eval()
    tf = T.Compose([T.Resize((size, size)), T.ToTensor(), T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    t0 = time.perf_counter()
    with torch.inference_mode():
        for s in range(0, len(paths), batch_size):
            x = torch.stack([tf(Image.open(p).convert("RGB")) for p in paths[s:s + batch_size]])
            model.features(x)  # up to the pooled features, as feature mode
    return time.perf_counter() - t0


def ours_feature(manifest: Path, cache_root: Path) -> tuple[float, dict]:
    from skinage.training.train import train

    os.environ["SKINAGE_CACHE"] = str(cache_root)  # empty: nothing decoded or embedded yet
    t0 = time.perf_counter()
    res = train(data=manifest, model="mobilenet_v2", mode="feature", size=224, aug_views=0,
                project=cache_root / "runs", progress=False)
    return time.perf_counter() - t0, res.metrics


def bench_feature(manifest: Path, repeats: int) -> dict:
    import pandas as pd

    paths = pd.read_csv(manifest)["path"].tolist()
    warm_page_cache(paths)
    old = os.environ.get("SKINAGE_CACHE")
    ours, bare, metrics = [], [], None
    try:
        for r in range(repeats):
            bare.append(bare_forward(paths, 224))
            with tempfile.TemporaryDirectory() as d:
                t, metrics = ours_feature(manifest, Path(d))
            ours.append(t)
            print(f"  (b) repeat {r + 1}: skinage feature mode end to end {ours[-1]:.1f} s, bare forward {bare[-1]:.1f} s", flush=True)
    finally:
        if old is None:
            os.environ.pop("SKINAGE_CACHE", None)
        else:
            os.environ["SKINAGE_CACHE"] = old
    o, b = statistics.median(ours), statistics.median(bare)
    return {"images": len(paths), "model": "mobilenet_v2", "size": 224, "aug_views": 0,
            "skinage_s": [round(v, 2) for v in ours], "bare_forward_s": [round(v, 2) for v in bare],
            "skinage_median_s": round(o, 2), "bare_median_s": round(b, 2), "ratio": round(o / b, 2), "target": "<= 1.5",
            "skinage_includes": "empty caches: decode + crop cache, embeddings (fp32, channels-last, batch 64), head training with early stopping, val/test evaluation, run folder",
            "bare_includes": "PIL decode + Resize + ToTensor + Normalize, fp32 forward to the pooled features, batch 64, inference_mode",
            "test_metrics_of_last_repeat": (metrics or {}).get("test"),
            "feature_seconds_of_last_repeat": (metrics or {}).get("feature_seconds")}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--feature-repeats", type=int, default=2)
    ap.add_argument("--images", type=int, default=96, help="(a) training images per epoch")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--size", type=int, default=224, help="(a) input size")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", choices=("a", "b"), default=None)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "bench_train.json"))
    args = ap.parse_args(argv)
    if not DATA.is_dir():
        print(f"skipped: {DATA} is absent", file=sys.stderr)
        return 0
    torch.set_num_threads(args.threads)
    manifest = make_manifest(Path(tempfile.mkdtemp()) / "utk4.csv")
    out = {"machine": machine(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    outp = Path(args.out)
    if outp.is_file():
        try:
            prev = json.loads(outp.read_text())
            out.update({k: prev[k] for k in ("finetune_throughput", "feature_end_to_end") if k in prev})
        except (ValueError, OSError):
            pass
    if args.only in (None, "a"):
        with tempfile.TemporaryDirectory() as d:
            old = os.environ.get("SKINAGE_CACHE")
            os.environ["SKINAGE_CACHE"] = d
            try:
                out["finetune_throughput"] = bench_finetune(manifest, args.images, args.batch_size, args.repeats, args.size)
                out["finetune_throughput"]["measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            finally:
                if old is None:
                    os.environ.pop("SKINAGE_CACHE", None)
                else:
                    os.environ["SKINAGE_CACHE"] = old
        print(f"(a) finetune: {out['finetune_throughput']['speedup']}x plain fp32", flush=True)
    if args.only in (None, "b"):
        out["feature_end_to_end"] = bench_feature(manifest, args.feature_repeats)
        out["feature_end_to_end"]["measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        print(f"(b) feature mode end to end: {out['feature_end_to_end']['ratio']}x a bare forward pass", flush=True)
    out["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    from skinage.utils import atomic_write_json

    atomic_write_json(outp, out)
    print(f"wrote {outp}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
