#!/usr/bin/env python
"""Inference speed and int8 fidelity: PyTorch eager fp32 vs ONNX Runtime fp32 vs ONNX Runtime int8.

Part 1 (speed, every registry model at its input size): the model (ImageNet backbone where
installed, a 4-class head) is exported with :func:`skinage.export.formats.export_onnx` and quantised
with :func:`skinage.export.quantize.int8.quantize_int8` (calibrated on utkface-age images); then one image
on one thread is timed for the three runtimes side by side, alternating every round, and the
medians of ``--repeats`` rounds are reported with the file sizes.

Part 2 (fidelity, MobileNetV2): a trained utkface-age run (4 levels: {10,20} {30,40} {50} {60,70})
is exported with ``skinage export RUN --int8`` (default settings) and with ``skinage export RUN
--int8-search`` (calibration method and fp32 convolution blocks chosen on the run's *val* split);
both int8 files are compared with fp32 on val and on the *test* split (int8 vs fp32 top-1
agreement, accuracy change) and timed beside eager PyTorch. The targets are checked on the
``--int8-search`` file (``--no-int8-search``: on the default one). ``--run RUN`` uses an existing run;
without it, a feature-mode mobilenet_v2 run is trained first (``skinage ingest`` + ``skinage
train``, about a minute of embedding computation per 1,000 images on 2 cores).

Targets (issue 5, MobileNetV2): int8 >= 5x faster than eager fp32, int8 file <= 4 MB, int8 vs
fp32 agreement >= 98 % and accuracy loss <= 1 point on the utkface-age test split.

Writes ``benchmarks/results/bench_infer.json`` and ``benchmarks/results/bench_infer.md`` (``--out NAME``: NAME.json, NAME.md).
Heavy: run it as ``flock /tmp/skinage-heavy.lock python benchmarks/bench_infer.py``. The committed results:
``python benchmarks/bench_infer.py --run runs/bench/runs/utk4_mnv2_finetune224_mixup_ema --repeats 100
--int8-search-budget 6`` (the run of ``benchmarks/run_all.py``; speed part: ``skinage export --int8`` defaults for every model; the
target speed-up is the trained run's ``--int8-search`` file timed beside eager PyTorch).
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
               calibration: str = "percentile", fp32_stem_convs: int = 3) -> list[dict]:
    import torch

    from skinage.export.formats import export_onnx
    from skinage.export.parity import time_alternating, torch_one_thread_fn
    from skinage.export.quantize.int8 import quantize_int8
    from skinage.runtime.onnx_io import INPUT_NAME, ort_session
    from skinage.models import weights as W
    from skinage.models.checkpoint import model_meta
    from skinage.models.model import SkinageModel
    from skinage.preprocess import Preprocess

    paths = _utk_images(data, calib_n + 1, seed)
    out = []
    for name in models:
        torch.manual_seed(seed)
        pretrained = W.available(name)
        model = SkinageModel(name, 4, pretrained=pretrained).eval()
        meta = model_meta(model)
        meta["classes"] = ["10-29", "30-49", "50-59", "60-79"]
        pre = Preprocess.from_meta(meta)
        say(f"bench_infer: {name} ({'ImageNet' if pretrained else 'scratch'} backbone) at {pre.size} px")
        x = np.stack([pre.load(p) for p in paths])
        calib, one = x[:calib_n], np.ascontiguousarray(x[calib_n:calib_n + 1])
        with tempfile.TemporaryDirectory(prefix="bench-infer-") as td:
            f32 = export_onnx(model, meta, Path(td) / "model.onnx")
            t0 = time.perf_counter()
            i8 = quantize_int8(f32, Path(td) / "model.int8.onnx", calib, calibration=calibration,
                               fp32_stem_convs=fp32_stem_convs)
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
        row = {"model": name, "input_size": pre.size, "weights": "imagenet" if pretrained else "scratch",
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


def fidelity_part(run: Path, repeats: int, calib_n: int, seed: int, search: bool = True,
                  search_budgets: tuple[int, ...] = (6,)) -> dict:
    """The run exported twice - ``skinage export RUN --int8`` (the default settings) and ``skinage
    export RUN --int8-search`` (settings chosen on the run's val split) - then both int8 files are
    compared with the fp32 ONNX file on the val split (what the search saw) and on the test split
    (reported only), and timed side by side with eager PyTorch (one image, one thread). One
    ``--int8-search`` export per budget in ``search_budgets``; the targets are checked on the first."""
    import torch

    from skinage.export.calibration import find_manifest, load_batch, manifest_rows
    from skinage.export.export import export, load_run
    from skinage.export.parity import batched, mean_kl, pixel_noise, time_alternating, torch_one_thread_fn
    from skinage.runtime.onnx_io import INPUT_NAME, ort_session, read_onnx_metadata
    from skinage.models.decode import near_ties, predict_labels
    from skinage.preprocess import Preprocess

    settings = {"--int8": {"int8": True}}  # skinage export's defaults
    for b in search_budgets if search else ():
        settings[f"--int8-search --int8-search-budget {b}"] = {"int8_search": True, "int8_search_budget": b}
    # the plain quantisation beside them, so that the bias correction's effect is measured in the same run
    settings["--int8 --no-int8-bias-correction"] = {"int8": True, "int8_bias_correction": False}
    # and full 8-bit weights, which x86 CPUs without VNNI saturate on (the default has 7-bit weights)
    settings["--int8 --no-int8-reduce-range"] = {"int8": True, "int8_reduce_range": False}
    # and without the activation equalisation (the default before it), to measure what it buys
    settings["--int8 --no-int8-equalize"] = {"int8": True, "int8_equalize": False}
    exports = {}
    for name, opts in settings.items():
        t0 = time.perf_counter()
        folder = name.replace("--int8-search-budget ", "budget").replace("--", "").replace(" ", "-")
        res = export(str(run), out=str(run / "export-bench" / folder), check_split="test", check_images=0,
                     calib_images=calib_n, repeats=5, seed=seed, **opts)
        exports[name] = (res, round(time.perf_counter() - t0, 1))
    model, meta, _ = load_run(run)
    rule = meta.get("ordinal") or None
    manifest = find_manifest(run, meta)
    data = {}
    for split in ("val", "test"):
        rows, used = manifest_rows(Path(manifest), split, 0, seed)
        x, y, _ = load_batch(rows, Preprocess.from_meta(meta), split)
        data[split] = (x, y)
    first = next(iter(exports.values()))[0]
    s32 = ort_session(first["files"]["onnx_fp32"], 1)
    probs = {split: {"onnx fp32": batched(lambda b: s32.run(None, {INPUT_NAME: b})[0], x)}
             for split, (x, _) in data.items()}
    # the noise floor: fp32 against itself with every pixel moved by -1, 0 or +1 level
    noise_floor = {}
    for split, (x, _) in data.items():
        pn = batched(lambda b: s32.run(None, {INPUT_NAME: b})[0], pixel_noise(x, 1, seed))
        noise_floor[split] = float((predict_labels(pn, rule) == predict_labels(probs[split]["onnx fp32"], rule)).mean())
    sessions = {"onnx fp32": s32}
    exact = {}  # the same files with ONNX Runtime's exact int8 kernels (see ort_session)
    for name, (res, _) in exports.items():
        s8 = ort_session(res["files"]["onnx_int8"], 1)
        sessions[f"int8 {name}"] = s8
        sx = ort_session(res["files"]["onnx_int8"], 2, exact_int8=True)
        for split, (x, _) in data.items():
            probs[split][f"int8 {name}"] = batched(lambda b: s8.run(None, {INPUT_NAME: b})[0], x)
            exact[(name, split)] = batched(lambda b: sx.run(None, {INPUT_NAME: b})[0], x)
    one = np.ascontiguousarray(data["test"][0][:1])
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        fns = {"pytorch eager fp32": torch_one_thread_fn(model, one)}
        fns.update({k: (lambda s: lambda: s.run(None, {INPUT_NAME: one}))(s) for k, s in sessions.items()})
        timing = time_alternating(fns, repeats=repeats, warmup=10)  # cold: each call follows another model's
        # warm (steady state): 10 calls in a row per round, the last 9 timed; rounds still alternate
        timing_warm = time_alternating(fns, repeats=max(10, repeats // 5), warmup=2, block=10)
    finally:
        torch.set_num_threads(old)
    eager = timing["pytorch eager fp32"]["median_ms"]
    eager_warm = timing_warm["pytorch eager fp32"]["median_ms"]
    rows_out = []
    for name, (res, secs) in exports.items():
        key = f"int8 {name}"
        f8 = res["files"]["onnx_int8"]
        q = read_onnx_metadata(f8)["quantization"]
        row = {"setting": f"skinage export RUN {name}", "export_seconds": secs,
               "calibration_method": q["calibration_method"],
               "fp32_convs": len(q["search"]["fp32_convs"]) if "search" in q else q["fp32_stem_convs"],
               "search": q.get("search"), "int8_size_bytes": Path(f8).stat().st_size,
               "int8_latency_ms": timing[key]["median_ms"], "eager_latency_ms": eager,
               "speedup_vs_eager": eager / timing[key]["median_ms"],
               "int8_latency_warm_ms": timing_warm[key]["median_ms"], "eager_latency_warm_ms": eager_warm,
               "speedup_vs_eager_warm": eager_warm / timing_warm[key]["median_ms"]}
        for split, (x, y) in data.items():
            p32, p8 = probs[split]["onnx fp32"], probs[split][key]
            # classes by the head's own rule (the rank of an ordinal head), as evaluate and predict read them
            c32, c8 = predict_labels(p32, rule), predict_labels(p8, rule)
            row[f"{split}_agreement"] = float((c8 == c32).mean())
            row[f"{split}_kl"] = mean_kl(p8, p32)
            row[f"{split}_agreement_exact_kernels"] = float((predict_labels(exact[(name, split)], rule) == c32).mean())
            row[f"{split}_kl_exact_kernels"] = mean_kl(exact[(name, split)], p32)
            row[f"{split}_fp32_accuracy"] = float((c32 == y).mean())
            row[f"{split}_int8_accuracy"] = float((c8 == y).mean())
            row[f"{split}_images"] = int(len(x))
            # how near a tie the images int8 reads differently were in fp32 (see decision_margin), and how many
            # images of the split are that near: the pool any small change of the arithmetic can flip
            worst, share = near_ties(p32, p8, rule)
            row[f"{split}_disagreement_max_margin"] = worst  # None: int8 agrees on every image
            row[f"{split}_near_tie_share"] = share
        row["accuracy_change"] = row["test_int8_accuracy"] - row["test_fp32_accuracy"]
        rows_out.append(row)
    chosen = next((r for r in rows_out if "--int8-search" in r["setting"]), rows_out[0])
    rows = {r["format"]: r for r in first["rows"]}
    return {"run": str(run), "model": first["model"], "classes": first["classes"], "check_split": "test",
            "test_images": chosen["test_images"], "val_images": chosen["val_images"],
            "calibration_images": first["calibration_images"], "settings": rows_out, "timing": timing,
            "chosen_setting": chosen["setting"], "int8_agreement": chosen["test_agreement"],
            "fp32_accuracy": chosen["test_fp32_accuracy"], "int8_accuracy": chosen["test_int8_accuracy"],
            "accuracy_change": chosen["accuracy_change"], "speedup_vs_eager": chosen["speedup_vs_eager"],
            "speedup_vs_eager_warm": chosen["speedup_vs_eager_warm"], "timing_warm": timing_warm,
            "onnx_fp32_vs_pytorch_agreement": rows["onnx fp32"]["agreement"],
            "onnx_fp32_vs_pytorch_max_abs_prob_diff": rows["onnx fp32"]["max_abs_prob_diff"],
            "int8_size_bytes": chosen["int8_size_bytes"], "noise_floor_agreement": noise_floor}


def check_targets(speed: list[dict], fid: dict | None) -> dict:
    mn = next((r for r in speed if r["model"] == "mobilenet_v2"), None)
    t: dict = {}
    if fid:  # the chosen int8 file of the trained run, timed beside eager PyTorch
        t["int8_speedup_vs_eager"] = {"value": round(fid["speedup_vs_eager"], 2),
                                      "target": f">= {TARGETS['speedup_vs_eager']}",
                                      "met": fid["speedup_vs_eager"] >= TARGETS["speedup_vs_eager"]}
        if fid.get("speedup_vs_eager_warm"):
            t["int8_speedup_vs_eager_warm"] = {"value": round(fid["speedup_vs_eager_warm"], 2),
                                               "target": f">= {TARGETS['speedup_vs_eager']}",
                                               "met": fid["speedup_vs_eager_warm"] >= TARGETS["speedup_vs_eager"]}
    elif mn:
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
         f"{res['date']}; `{res['command']}`; {res['machine']['cpu']} ({res['machine']['cores']} cores, "
         f"{' '.join(res['machine'].get('simd', [])) or 'SIMD not read'}), "
         f"torch {res['machine']['torch']}, onnxruntime {res['machine']['onnxruntime']}.", "",
         f"Median of {res['repeats']} alternating rounds (eager / ORT fp32 / ORT int8 one after the other each "
         "round); ORT sessions with intra_op_num_threads=1, torch.set_num_threads(1). Input: one uint8 "
         "224x224 RGB utkface-age image; 4-class linear head. int8 here: "
         f"{res['calibration']} calibration, first {res.get('fp32_stem_convs', 3)} convolutions fp32.", "",
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
        L += ["", f"## int8 fidelity: trained mobilenet_v2 on utkface-age (4 levels), {f['val_images']} val and "
              f"{f['test_images']} test images", "",
              f"Run `{f['run']}`, exported with each setting; int8 calibrated on {f['calibration_images']} training "
              "images; agreement = int8 vs ONNX fp32 top-1, each image's class read by the head's own rule (an ordinal "
              "head's rank, as evaluate and predict read it). `--int8-search` chooses the calibration method and the "
              "fp32 convolution blocks on the **val** split only; test is only reported. Latency: the same int8 "
              f"files and eager PyTorch, one image, one thread, median of {res['repeats']} alternating rounds. "
              f"ONNX fp32 vs PyTorch: {100 * f['onnx_fp32_vs_pytorch_agreement']:.2f} % agreement, max |dp| "
              f"{f['onnx_fp32_vs_pytorch_max_abs_prob_diff']:.2g}.", "",
              "Latency *cold*: one call of each per round, so each follows another model's (its weights have "
              "left the caches); *warm*: 10 calls in a row per round, the last 9 timed (steady state, as an app "
              "running on every camera frame); the rounds alternate in both.", "",
              "| setting | calibration | fp32 convs | val agreement | test agreement | test accuracy fp32 -> int8 "
              "| int8 latency cold / warm | eager latency cold / warm | speed-up cold / warm | int8 file | export time |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in f["settings"]:
            L.append(f"| `{r['setting']}` | {r['calibration_method']} | {r['fp32_convs']} | "
                     f"{100 * r['val_agreement']:.2f} % | {100 * r['test_agreement']:.2f} % | "
                     f"{100 * r['test_fp32_accuracy']:.2f} % -> {100 * r['test_int8_accuracy']:.2f} % | "
                     f"{r['int8_latency_ms']:.2f} / {r.get('int8_latency_warm_ms', float('nan')):.2f} ms | "
                     f"{r['eager_latency_ms']:.2f} / {r.get('eager_latency_warm_ms', float('nan')):.2f} ms | "
                     f"{r['speedup_vs_eager']:.2f}x / {r.get('speedup_vs_eager_warm', float('nan')):.2f}x | "
                     f"{r['int8_size_bytes'] / 1e6:.2f} MB | {r['export_seconds']:.0f} s |")
        if all("val_kl" in r for r in f["settings"]):
            L += ["", "ONNX Runtime's fast int8 kernels vs its exact ones (`session.x64quantprecision=1`; on x86 CPUs "
                  f"without VNNI - this one: {'has' if res['machine'].get('vnni') else 'has no'} VNNI - the fast ones "
                  "sum pairs of u8 x s8 products in 16 bits, which 8-bit weights can saturate); KL = mean "
                  "KL(fp32 || int8) of the probabilities:", "",
                  "| setting | val agreement fast / exact | test agreement fast / exact | val KL fast / exact | "
                  "test KL fast / exact |", "|---|---|---|---|---|"]
            for r in f["settings"]:
                L.append(f"| `{r['setting']}` | {100 * r['val_agreement']:.2f} / "
                         f"{100 * r['val_agreement_exact_kernels']:.2f} % | {100 * r['test_agreement']:.2f} / "
                         f"{100 * r['test_agreement_exact_kernels']:.2f} % | {r['val_kl']:.4f} / "
                         f"{r['val_kl_exact_kernels']:.4f} | {r['test_kl']:.4f} / {r['test_kl_exact_kernels']:.4f} |")
        if all("test_disagreement_max_margin" in r for r in f["settings"]):
            L += ["", "Where int8 disagrees: the largest fp32 *decision margin* (`skinage.models.decode.decision_margin`: "
                  "the probability that must move for the class to change) among the images int8 reads differently, "
                  "and the share of all images with a margin that small (near-ties):", "",
                  "| setting | val: largest margin, near-ties | test: largest margin, near-ties |", "|---|---|---|"]
            def ties(r, split):
                m, share = r[f"{split}_disagreement_max_margin"], r[f"{split}_near_tie_share"]
                return "no disagreement" if m is None else f"{m:.3f}, {100 * share:.1f} %"

            for r in f["settings"]:
                L.append(f"| `{r['setting']}` | {ties(r, 'val')} | {ties(r, 'test')} |")
        nf = f.get("noise_floor_agreement")
        if nf:
            L += ["", f"**Noise floor:** the fp32 file against itself, with every pixel of the same images moved by a "
                  f"random -1, 0 or +1 level of 255 (`skinage.export.parity.pixel_noise`, seed {res.get('seed', 0)}): "
                  f"{100 * nf['val']:.2f} % agreement on val, {100 * nf['test']:.2f} % on test. An int8 agreement above "
                  "these figures is closer to fp32 than fp32 is to itself under an invisible change of the input."]
        srch = next((r["search"] for r in f["settings"] if r.get("search")), None)
        if srch:
            L += ["", f"Search ({srch['quantisations']} quantisations, {srch['seconds']:.0f} s): methods tried on val "
                  + ", ".join(f"{m} (agreement {100 * v['agreement']:.2f} %, KL {v['kl']:.4f})"
                              for m, v in srch["methods_tried"].items())
                  + f"; fp32: the first {srch['history'][0]['fp32_convs']} convolutions, then "
                  + (", ".join(f"`{h['added']}` (val agreement {100 * h['agreement']:.2f} %, KL {h['kl']:.4f})"
                               for h in srch["history"][1:]) or "nothing")
                  + f" (budget {srch['max_fp32_convs']} convolutions, target val agreement {100 * srch['target']:.0f} %)."]
    if f:
        L += ["", "## Targets per setting (MobileNetV2, test split)", "",
              "| setting | speed-up cold / warm (>= 5x) | int8 file (<= 4 MB) | agreement (>= 98 %) | "
              "accuracy loss (<= 1 point) |", "|---|---|---|---|---|"]

        def mark(ok):
            return "met" if ok else "**not met**"

        for r in f["settings"]:
            sc, sw = r["speedup_vs_eager"], r.get("speedup_vs_eager_warm") or float("nan")
            loss = -100 * r["accuracy_change"]
            L.append(f"| `{r['setting']}` | {sc:.2f}x / {sw:.2f}x: {mark(sc >= TARGETS['speedup_vs_eager'])} / "
                     f"{mark(sw >= TARGETS['speedup_vs_eager'])} | {r['int8_size_bytes'] / 1e6:.2f} MB: "
                     f"{mark(r['int8_size_bytes'] / 1e6 <= TARGETS['int8_size_mb'])} | "
                     f"{100 * r['test_agreement']:.2f} %: {mark(r['test_agreement'] >= TARGETS['agreement'])} | "
                     f"{loss:.2f}: {mark(loss <= 100 * TARGETS['accuracy_loss'])} |")
    if res.get("targets"):
        L += ["", "## Targets (MobileNetV2)", ""]
        for k, v in res["targets"].items():
            L.append(f"- {k}: {v['value']} (target {v['target']}): {'met' if v['met'] else 'NOT met'}")
        chosen = next((r for r in (f or {}).get("settings", []) if r["setting"] == f.get("chosen_setting")), None)
        if chosen and chosen["val_agreement"] < TARGETS["agreement"]:
            L += ["", f"Caution: on the val split the same file agrees on only {100 * chosen['val_agreement']:.2f} % "
                  f"(target {100 * TARGETS['agreement']:.0f} %); one image is {100 / chosen['val_images']:.2f} points, "
                  "and agreement moved by about a point between splits and between graph changes that leave fp32 "
                  "untouched, so the test figure is not a safe margin."]
    return "\n".join(L) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="all", help="comma-separated registry models (default: all)")
    ap.add_argument("--repeats", type=int, default=100, help="alternating timing rounds per model")
    ap.add_argument("--calib-images", type=int, default=200, help="calibration images for int8")
    ap.add_argument("--calibration", default="percentile", choices=("percentile", "minmax", "entropy"),
                    help="speed part: int8 calibration method (as `skinage export --calibration`; the fidelity "
                         "part uses skinage export's defaults and the search)")
    ap.add_argument("--fp32-stem-convs", type=int, default=3,
                    help="speed part: first convolutions kept fp32 (as `skinage export --fp32-stem-convs`)")
    ap.add_argument("--int8-search", action=argparse.BooleanOptionalAction, default=True,
                    help="fidelity part: also export with `skinage export --int8-search` (settings chosen on val) "
                         "and make it the setting the targets are checked on")
    ap.add_argument("--int8-search-budget", default="6", help="as `skinage export --int8-search-budget`; a comma "
                    "list exports once per budget (targets checked on the first)")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--run", type=Path, default=None, help="a trained utkface-age 4-level mobilenet_v2 run "
                    "(default: train one into --work)")
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "bench-infer")
    ap.add_argument("--epochs", type=int, default=30, help="epochs when training the run")
    ap.add_argument("--skip-fidelity", action="store_true", help="speed part only")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="bench_infer", help="results file names in benchmarks/results/: OUT.json and "
                    "OUT.md (another name keeps the committed results, e.g. when benchmarking a second run)")
    a = ap.parse_args(argv)
    if not a.out or Path(a.out).name != a.out or a.out.endswith((".json", ".md")):
        ap.error(f"--out {a.out!r}: give a bare name such as bench_infer_noise (the .json and .md are added)")
    if a.run is not None and not a.skip_fidelity:
        # checked before the speed part (minutes), not after it
        from skinage.models.checkpoint import resolve_checkpoint

        try:
            resolve_checkpoint(a.run, "best")
        except FileNotFoundError as e:
            print(f"bench_infer: error: --run {a.run}: {e}\nTrain it first, e.g. `python benchmarks/run_all.py "
                  "--only utk --runs utk4_mnv2_finetune224_mixup_ema` (about 20 min on 2 cores), leave --run out "
                  "to train a shorter one into --work, or pass --skip-fidelity for the speed part only.",
                  file=sys.stderr)
            return 2

    import onnxruntime
    import torch

    from skinage.models.registry import list_models

    models = list_models() if a.models == "all" else [m for m in a.models.split(",") if m]
    argv_s = sys.argv[1:] if argv is None else list(argv)
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    cpu = next((line.split(":", 1)[1].strip() for line in info.splitlines()
                if line.startswith("model name")), platform.processor()) or platform.processor()
    flags = set(next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), []))
    res: dict = {"date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                 "command": "python benchmarks/bench_infer.py " + " ".join(shlex.quote(x) for x in argv_s),
                 "machine": {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__,
                             "vnni": bool(flags & {"avx512_vnni", "avx_vnni", "amx_int8"}),
                             "simd": sorted(f for f in flags if f.startswith(("avx", "amx"))),
                             "onnxruntime": onnxruntime.__version__, "python": platform.python_version()},
                 "repeats": a.repeats, "calibration": a.calibration, "calibration_images": a.calib_images,
                 "fp32_stem_convs": a.fp32_stem_convs, "seed": a.seed}
    t0 = time.perf_counter()
    res["speed"] = speed_part(models, a.data, a.repeats, a.calib_images, a.seed, a.calibration, a.fp32_stem_convs)
    fid = None
    if not a.skip_fidelity:
        run = a.run or train_utk_run(a.data, a.work, a.seed, a.epochs)
        fid = fidelity_part(run, a.repeats, a.calib_images, a.seed, a.int8_search,
                            tuple(int(b) for b in str(a.int8_search_budget).split(",") if b))
    res["fidelity"] = fid
    res["targets"] = check_targets(res["speed"], fid)
    res["summary"] = {k: v["value"] for k, v in res["targets"].items()}
    res["seconds"] = round(time.perf_counter() - t0, 1)
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_json(RESULTS / f"{a.out}.json", res)
    md = render(res)
    atomic_write_text(RESULTS / f"{a.out}.md", md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
