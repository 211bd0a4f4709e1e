#!/usr/bin/env python
"""Inference speed and int8 fidelity: PyTorch eager fp32 vs ONNX Runtime fp32 vs ONNX Runtime int8.

Part 1 (speed, every registry model at its input size): the model (ImageNet backbone where
installed, a 4-class head) is exported with :func:`skinage.export.onnx.export_onnx` and quantised
with :func:`skinage.export.onnx.quantize_int8` (calibrated on utkface-age images); then one image
on one thread is timed for the three runtimes side by side, alternating every round, and the
medians of ``--repeats`` rounds are reported with the file sizes.

Part 2 (fidelity, MobileNetV2): a trained utkface-age run (4 levels: {10,20} {30,40} {50} {60,70})
is exported with ``skinage export RUN --int8`` and its parity check is run on the run's *test*
split: int8 vs fp32 top-1 agreement and accuracy change. ``--run RUN`` uses an existing run;
without it, a feature-mode mobilenet_v2 run is trained first (``skinage ingest`` + ``skinage
train``, about a minute of embedding computation per 1,000 images on 2 cores).

Targets (issue 5, MobileNetV2): int8 >= 5x faster than eager fp32, int8 file <= 4 MB, int8 vs
fp32 agreement >= 98 % and accuracy loss <= 1 point on the utkface-age test split.

Writes ``benchmarks/results/bench_infer.json`` and ``benchmarks/results/bench_infer.md``.
Heavy: run it as ``flock /tmp/skinage-heavy.lock python benchmarks/bench_infer.py``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from skinage.utils import atomic_write_json, atomic_write_text, say  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
UTK_REMAP4 = "10,20:0 30,40:1 50:2 60,70:3"
TARGETS = {"speedup_vs_eager": 5.0, "int8_size_mb": 4.0, "agreement": 0.98, "accuracy_loss": 0.01}


def _utk_images(data: Path, n: int, seed: int) -> list[str]:
    files = sorted(str(p) for p in (data / "utkface-age").glob("*/*.jpg"))
    if not files:
        raise SystemExit(f"no utkface-age images under {data / 'utkface-age'} (the real data lives in ../shared/data)")
    rng = np.random.default_rng(seed)
    return [files[i] for i in rng.choice(len(files), size=min(n, len(files)), replace=False)]


def speed_part(models: list[str], data: Path, repeats: int, calib_n: int, seed: int,
               calibration: str = "percentile") -> list[dict]:
    import torch

    from skinage.export.onnx import export_onnx, quantize_int8, time_alternating, torch_one_thread_fn
    from skinage.export.predict import INPUT_NAME, load_pixels, ort_session
    from skinage.models import weights as W
    from skinage.models.checkpoint import model_meta
    from skinage.models.model import SkinageModel

    paths = _utk_images(data, calib_n + 1, seed)
    out = []
    for name in models:
        torch.manual_seed(seed)
        pretrained = W.available(name)
        model = SkinageModel(name, 4, pretrained=pretrained).eval()
        meta = model_meta(model)
        meta["classes"] = ["10-29", "30-49", "50-59", "60-79"]
        pre = meta["preprocessing"]
        size = pre["input_size"]
        say(f"bench_infer: {name} ({'ImageNet' if pretrained else 'scratch'} backbone) at {size} px")
        x = np.stack([load_pixels(p, None, pre) for p in paths])
        calib, one = x[:calib_n], np.ascontiguousarray(x[calib_n:calib_n + 1])
        with tempfile.TemporaryDirectory(prefix="bench-infer-") as td:
            f32 = export_onnx(model, meta, Path(td) / "model.onnx")
            t0 = time.perf_counter()
            i8 = quantize_int8(f32, Path(td) / "model.int8.onnx", calib, calibration=calibration)
            qsec = time.perf_counter() - t0
            old = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                s32, s8 = ort_session(f32, 1), ort_session(i8, 1)
                fns = {"pytorch eager fp32": torch_one_thread_fn(model, one),
                       "onnxruntime fp32": lambda: s32.run(None, {INPUT_NAME: one}),
                       "onnxruntime int8": lambda: s8.run(None, {INPUT_NAME: one})}
                timing = time_alternating(fns, repeats=repeats, warmup=10)
            finally:
                torch.set_num_threads(old)
            # the three give (nearly) the same answer on this image
            with torch.inference_mode():
                pe = fns["pytorch eager fp32"]().numpy()
            p32 = s32.run(None, {INPUT_NAME: one})[0]
            sizes = {"pytorch fp32 parameters": int(sum(p.numel() * 4 for p in model.state_dict().values())),
                     "onnxruntime fp32": f32.stat().st_size, "onnxruntime int8": i8.stat().st_size}
        eager = timing["pytorch eager fp32"]["median_ms"]
        row = {"model": name, "input_size": size, "weights": "imagenet" if pretrained else "scratch",
               "timing": timing, "sizes_bytes": sizes, "quantize_seconds": round(qsec, 1),
               "eager_vs_ort_fp32_max_abs_prob_diff": float(np.abs(pe - p32).max()),
               "speedup_ort_fp32_vs_eager": eager / timing["onnxruntime fp32"]["median_ms"],
               "speedup_int8_vs_eager": eager / timing["onnxruntime int8"]["median_ms"],
               "speedup_int8_vs_ort_fp32": timing["onnxruntime fp32"]["median_ms"] / timing["onnxruntime int8"]["median_ms"]}
        say(f"bench_infer: {name}: eager {eager:.2f} ms, ort fp32 {timing['onnxruntime fp32']['median_ms']:.2f} ms, "
            f"int8 {timing['onnxruntime int8']['median_ms']:.2f} ms ({row['speedup_int8_vs_eager']:.1f}x vs eager); "
            f"int8 file {sizes['onnxruntime int8'] / 1e6:.2f} MB")
        out.append(row)
    return out


def train_utk_run(data: Path, work: Path, seed: int, epochs: int) -> Path:
    from skinage.data.ingest import ingest
    from skinage.training.train import train

    man = work / "utk4.csv"
    if not man.exists():
        say(f"bench_infer: ingesting {data / 'utkface-age'} -> {man} (4 levels: {UTK_REMAP4})")
        ingest(str(data / "utkface-age"), out=str(man), remap=UTK_REMAP4, seed=seed)
    say("bench_infer: training a feature-mode mobilenet_v2 run on it")
    res = train(data=str(man), model="mobilenet_v2", mode="feature", epochs=epochs, seed=seed,
                project=str(work / "runs"), name="mnv2-feature", exist_ok=True)
    return Path(res)


def fidelity_part(run: Path, repeats: int, calib_n: int, seed: int, calibration: str = "percentile") -> dict:
    from skinage.export.onnx import export

    res = export(str(run), int8=True, check_split="test", check_images=0, calib_images=calib_n,
                 repeats=repeats, seed=seed, calibration=calibration)
    rows = {r["format"]: r for r in res["rows"]}
    return {"run": str(run), "model": res["model"], "classes": res["classes"], "check_split": res["check_split"],
            "test_images": res["check_images"], "calibration_images": res["calibration_images"],
            "skipped_images": len(res["skipped_images"]), "rows": res["rows"],
            "int8_agreement": rows["onnx int8"]["agreement"],
            "fp32_accuracy": rows["onnx fp32"]["accuracy"], "int8_accuracy": rows["onnx int8"]["accuracy"],
            "accuracy_change": rows["onnx int8"]["accuracy_change"],
            "onnx_fp32_vs_pytorch_agreement": rows["onnx fp32"]["agreement"],
            "onnx_fp32_vs_pytorch_max_abs_prob_diff": rows["onnx fp32"]["max_abs_prob_diff"],
            "int8_size_bytes": rows["onnx int8"]["size_bytes"], "files": res["files"]}


def check_targets(speed: list[dict], fid: dict | None) -> dict:
    mn = next((r for r in speed if r["model"] == "mobilenet_v2"), None)
    t: dict = {}
    if mn:
        t["int8_speedup_vs_eager"] = {"value": round(mn["speedup_int8_vs_eager"], 2),
                                      "target": f">= {TARGETS['speedup_vs_eager']}",
                                      "met": mn["speedup_int8_vs_eager"] >= TARGETS["speedup_vs_eager"]}
    size = (fid or {}).get("int8_size_bytes") or (mn or {}).get("sizes_bytes", {}).get("onnxruntime int8")
    if size:
        t["int8_file_mb"] = {"value": round(size / 1e6, 2), "target": f"<= {TARGETS['int8_size_mb']}",
                             "met": size / 1e6 <= TARGETS["int8_size_mb"]}
    if fid:
        t["int8_vs_fp32_agreement"] = {"value": round(fid["int8_agreement"], 4), "target": f">= {TARGETS['agreement']}",
                                       "met": fid["int8_agreement"] >= TARGETS["agreement"]}
        loss = -fid["accuracy_change"]
        t["accuracy_loss"] = {"value": round(loss, 4), "target": f"<= {TARGETS['accuracy_loss']}",
                              "met": loss <= TARGETS["accuracy_loss"]}
    return t


def render(res: dict) -> str:
    L = ["# bench_infer: one image, one thread", "",
         f"{res['date']}; `{res['command']}`; {res['machine']['cpu']} ({res['machine']['cores']} cores), "
         f"torch {res['machine']['torch']}, onnxruntime {res['machine']['onnxruntime']}.", "",
         f"Median of {res['repeats']} alternating rounds (eager / ORT fp32 / ORT int8 one after the other each "
         "round); ORT sessions with intra_op_num_threads=1, torch.set_num_threads(1). Input: one uint8 "
         "224x224 RGB utkface-age image; 4-class linear head.", "",
         "| model | weights | eager fp32 | ORT fp32 | ORT int8 | int8 vs eager | int8 vs ORT fp32 | ORT fp32 file | int8 file |",
         "|---|---|---|---|---|---|---|---|---|"]
    for r in res["speed"]:
        t, s = r["timing"], r["sizes_bytes"]
        L.append(f"| {r['model']} | {r['weights']} | {t['pytorch eager fp32']['median_ms']:.2f} ms | "
                 f"{t['onnxruntime fp32']['median_ms']:.2f} ms | {t['onnxruntime int8']['median_ms']:.2f} ms | "
                 f"{r['speedup_int8_vs_eager']:.1f}x | {r['speedup_int8_vs_ort_fp32']:.1f}x | "
                 f"{s['onnxruntime fp32'] / 1e6:.2f} MB | {s['onnxruntime int8'] / 1e6:.2f} MB |")
    f = res.get("fidelity")
    if f:
        L += ["", f"## int8 fidelity: trained mobilenet_v2 on utkface-age (4 levels), {f['test_images']} "
              f"{f['check_split']} images", "", f"Run `{f['run']}`; int8 calibrated on {f['calibration_images']} "
              f"training images ({res['calibration']} calibration); the pooled embedding, the head, the "
              "probabilities and the stem (first 3 convolutions) stay fp32.", "",
              "| format | file | size | agreement | compared with | max abs prob diff | accuracy |", "|---|---|---|---|---|---|---|"]
        for r in f["rows"]:
            agr = "-" if r.get("agreement") is None else f"{100 * r['agreement']:.2f} %"
            dp = "-" if r.get("max_abs_prob_diff") is None else f"{r['max_abs_prob_diff']:.3g}"
            acc = "-" if r.get("accuracy") is None else f"{100 * r['accuracy']:.2f} %"
            L.append(f"| {r['format']} | {r['file']} | {r['size_bytes'] / 1e6:.2f} MB | {agr} | {r.get('reference') or '-'} | {dp} | {acc} |")
    if res.get("targets"):
        L += ["", "## Targets (MobileNetV2)", ""]
        for k, v in res["targets"].items():
            L.append(f"- {k}: {v['value']} (target {v['target']}): {'met' if v['met'] else 'NOT met'}")
    return "\n".join(L) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="all", help="comma-separated registry models (default: all)")
    ap.add_argument("--repeats", type=int, default=100, help="alternating timing rounds per model")
    ap.add_argument("--calib-images", type=int, default=200, help="calibration images for int8")
    ap.add_argument("--calibration", default="percentile", choices=("percentile", "minmax", "entropy"),
                    help="int8 calibration method (as `skinage export --calibration`)")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--run", type=Path, default=None, help="a trained utkface-age 4-level mobilenet_v2 run "
                    "(default: train one into --work)")
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "bench-infer")
    ap.add_argument("--epochs", type=int, default=30, help="epochs when training the run")
    ap.add_argument("--skip-fidelity", action="store_true", help="speed part only")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)

    import onnxruntime
    import torch

    from skinage.models.registry import list_models

    models = list_models() if a.models == "all" else [m for m in a.models.split(",") if m]
    argv_s = sys.argv[1:] if argv is None else list(argv)
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else platform.processor()
    res: dict = {"date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                 "command": "python benchmarks/bench_infer.py " + " ".join(shlex.quote(x) for x in argv_s),
                 "machine": {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__,
                             "onnxruntime": onnxruntime.__version__, "python": platform.python_version()},
                 "repeats": a.repeats, "calibration": a.calibration, "calibration_images": a.calib_images}
    t0 = time.perf_counter()
    res["speed"] = speed_part(models, a.data, a.repeats, a.calib_images, a.seed, a.calibration)
    fid = None
    if not a.skip_fidelity:
        run = a.run or train_utk_run(a.data, a.work, a.seed, a.epochs)
        fid = fidelity_part(run, a.repeats, a.calib_images, a.seed, a.calibration)
    res["fidelity"] = fid
    res["targets"] = check_targets(res["speed"], fid)
    res["summary"] = {k: v["value"] for k, v in res["targets"].items()}
    res["seconds"] = round(time.perf_counter() - t0, 1)
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_json(RESULTS / "bench_infer.json", res)
    md = render(res)
    atomic_write_text(RESULTS / "bench_infer.md", md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
