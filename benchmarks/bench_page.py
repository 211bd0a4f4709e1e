"""The page in headless chromium: ms per photo (finder, classifier, end to end), fp32 / fp16-storage / int8, first load.

What is measured (issue 23, target P6: <= 60 ms a photo end to end at 1 thread, models <= 8 MB; stretch <= 25 ms):

* **A real model.** The small real run of ``tests/app_site_helpers.py`` (40 UTKFace photos a decade, the finder's
  face boxes, MobileNetV2 features at 224 px, CORN head), exported as fp32, fp16-storage and int8, and one site a
  format written by ``skinage app RUN --model F --measure 0`` (``--root`` keeps and reuses them). ``skinage app``'s own
  choice (``--model auto``, measured by :mod:`skinage.app.choose` on 50 validation crops) is recorded beside.
* **Per photo.** >= 50 real photos the run was not trained on (``--per-decade`` UTKFace photos of each decade, from
  the 101st, and ``--london`` london-5view front views), each uploaded to the real page (``#photo``) of every format
  in turn (one tab a format, the order rotating photo by photo, so a load spike on this shared machine hits all
  formats alike), after ``--warmup`` photos not counted. Served by ``skinage serve`` (no COOP/COEP: 1 wasm thread).
  Per photo: ``data-ms`` (file read to grade), the page's stages (``data-times``: decode, find, crop, grade) and
  every ``session.run`` of onnxruntime-web timed by role (detector, landmarks, classifier; its prototype wrapped
  from the benchmark, the page unchanged). The load average is sampled beside every round.
* **Agreement.** Each tab's status and class against Python's (``skinage predict`` on the same photo: the finder's
  face box, ``Preprocess.load``, onnxruntime) with the fp32 file (the reference) and with the tab's own file.
* **First load.** ``--loads`` fresh browser contexts a format (empty cache, service worker blocked): ms from
  navigation to the page's ``data-ready``, and the bytes fetched (the server does not compress; gzip -9 sizes of the
  same files are given as what a compressing server would send; brotli is not in the environment).

The rule ``skinage app`` should follow: of the formats whose class agrees with Python's (fp32) on >= 98 % of the
photos, the fastest (median classifier ms; within 10 % counts as as fast, then the smaller file wins), within the
8 MB budget with the finder.

Writes ``benchmarks/results/bench_page.json`` and ``docs/results/page.md``::

    flock /tmp/skinage-heavy.lock .venv/bin/python benchmarks/bench_page.py --root /tmp/bench-page
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import json
import os
import platform
import re
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from skinage.utils import atomic_write_json, atomic_write_text  # noqa: E402

DATA = Path(os.environ.get("SKINAGE_SHARED_DATA", ROOT.parent / "shared" / "data"))
FORMATS = ("fp32", "int8", "fp16")
FILES = {"fp32": "model.onnx", "fp16": "model.fp16.onnx", "int8": "model.int8.onnx"}
ROLES = {"input": "detector", "input_1": "landmarks", "pixels": "classifier"}  # session input name -> role
TARGET_MS, STRETCH_MS, BUDGET_MB, MIN_AGREEMENT, SAME_SPEED = 60.0, 25.0, 8.0, 0.98, 0.10
DECADES = ("10", "20", "30", "40", "50", "60", "70")
JSON_OUT = ROOT / "benchmarks" / "results" / "bench_page.json"
MD_OUT = ROOT / "docs" / "results" / "page.md"

#: Wraps onnxruntime-web's InferenceSession.run (the page's own module instance) to time each run by its input name.
PROBE = """async () => {
  const ort = await import(new URL('ort/ort.wasm.min.mjs', location.href).href);
  const proto = ort.InferenceSession.prototype;
  if (!proto.__timed) {
    const run = proto.run;
    proto.run = async function (...args) {
      const t = performance.now();
      const out = await run.apply(this, args);
      (window.__runs = window.__runs || []).push([this.inputNames[0], performance.now() - t]);
      return out;
    };
    proto.__timed = true;
  }
  return true;
}"""


def load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


# ------------------------------------------------------------------------------------------ the run and sites


def build(root: Path, per_decade: int) -> dict:
    """The run (reused when ``root`` holds it), one site a format and ``skinage app``'s own choice: ``{"run", "sites"}``."""
    from app_site_helpers import face_manifest

    from skinage.app.app import app
    from skinage.evaluation.evaluate import evaluate
    from skinage.export.export import export
    from skinage.training.train import train

    run = root / "runs" / "utk"
    exp = run / "export"
    if not all((exp / f).is_file() for f in FILES.values()):
        manifest = face_manifest(DATA / "utkface-age", root, per_decade)
        run = Path(train(data=manifest, model="mobilenet_v2", mode="feature", epochs=20, ordinal="corn",
                         project=root / "runs", name="utk", exist_ok=True, progress=False).run_dir)
        evaluate(run, n_boot=200, gradcam=0, embedding="none", plots=False, report=False, progress=False)
        export(run, int8=True, fp16=True, repeats=3)
    sites = {}
    for fmt in FORMATS:
        sites[fmt] = root / f"site-{fmt}"
        if not (sites[fmt] / "card.json").is_file():
            app(run, out=sites[fmt], model=fmt, measure=0, label="Age group")
    auto = root / "site-auto"
    if not (auto / "card.json").is_file():
        app(run, out=auto, measure=50, label="Age group")
    return {"run": run, "sites": sites}


def photos(per_decade: int, london: int) -> list[Path]:
    """UTKFace photos from the 101st of each decade (the run trained on the first 40) and london front views."""
    utk, ldn = DATA / "utkface-age", DATA / "london-5view" / "images"
    out = []
    for d in DECADES:
        out += sorted((utk / d).glob("*.jpg"))[100:100 + per_decade]
    fronts = sorted(ldn.glob("*_03.jpg"))
    out += fronts[::max(1, len(fronts) // max(1, london))][:london]
    return out


def python_answers(sites: dict, pics: list[Path]) -> dict:
    """Python's answer for every photo with each site's model file: {fmt: [answer, ...]}."""
    from app_site_helpers import PythonReference

    out = {}
    for fmt, site in sites.items():
        ref = PythonReference(site / "model.onnx")
        out[fmt] = [ref(p) for p in pics]
    return out


# ------------------------------------------------------------------------------------------ the browser


def _open(browser, url: str):
    context = browser.new_context(service_workers="block")
    fetched = []
    context.on("response", lambda r: fetched.append((r.url, r.status)))
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    t0 = time.perf_counter()
    page.goto(url + "index.html")
    page.wait_for_selector("body[data-ready='true']", state="attached", timeout=180_000)
    wall = (time.perf_counter() - t0) * 1000
    ready = page.evaluate("() => performance.now()")
    status = page.inner_text("#status")
    if errors:
        raise RuntimeError(f"the page failed: {errors}")
    return context, page, fetched, {"wall_ms": wall, "ready_ms": ready, "status": status}


def _bytes_of(site: Path, url: str, fetched: list) -> dict:
    files = {}
    for u, status in fetched:
        rel = u[len(url):].split("?")[0] or "index.html"
        if status == 200 and (site / rel).is_file():
            files[rel] = (site / rel).stat().st_size
    gz = sum(len(gzip.compress((site / f).read_bytes(), 9)) for f in files)
    return {"requests": len(fetched), "bytes": sum(files.values()), "gzip9_bytes": gz, "files": files}


def first_loads(browser, urls: dict, sites: dict, n: int) -> dict:
    """``n`` first loads a format in fresh contexts (rotating order): ms to ready and the bytes fetched."""
    out = {fmt: [] for fmt in urls}
    fmts = list(urls)
    for i in range(n):
        for k in range(len(fmts)):
            fmt = fmts[(i + k) % len(fmts)]
            before = load()
            context, page, fetched, times = _open(browser, urls[fmt])
            models_ms = re.search(r"models loaded in (\d+) ms", times["status"])
            out[fmt].append({**times, "models_ms": int(models_ms.group(1)) if models_ms else None,
                             **_bytes_of(sites[fmt], urls[fmt], fetched), "load": [before, load()]})
            context.close()
    return out


def _one(page, photo: Path, n: int) -> dict:
    page.evaluate("() => { window.__runs = []; }")
    page.set_input_files("#photo", str(photo))
    page.wait_for_selector(f"#result[data-n='{n}']", state="attached", timeout=120_000)
    d = page.evaluate("() => Object.assign({}, document.getElementById('result').dataset)")
    runs = page.evaluate("() => window.__runs")
    by_role = {r: 0.0 for r in ROLES.values()}
    counts = {r: 0 for r in ROLES.values()}
    for name, ms in runs:
        role = ROLES.get(name, name)
        by_role[role] = by_role.get(role, 0.0) + ms
        counts[role] = counts.get(role, 0) + 1
    times = json.loads(d.get("times") or "{}")
    return {"status": d["status"], "class": d.get("class") or None, "ms": float(d["ms"]), "times": times,
            "runs_ms": by_role, "runs": counts, "probs": json.loads(d.get("probs") or "[]")}


def per_photo(browser, urls: dict, pics: list[Path], warmup: int) -> tuple[dict, list]:
    """Every photo on every format's tab in turn (rotating); {fmt: [row, ...]} and the load samples."""
    tabs = {}
    for fmt, url in urls.items():
        context, page, _, _ = _open(browser, url)
        page.evaluate(PROBE)
        tabs[fmt] = (context, page)
    fmts, counts = list(urls), {fmt: 0 for fmt in urls}
    for i in range(warmup):
        for fmt in fmts:
            counts[fmt] += 1
            _one(tabs[fmt][1], pics[i % len(pics)], counts[fmt])
    rows, loads = {fmt: [] for fmt in fmts}, []
    for i, photo in enumerate(pics):
        loads.append(load())
        for k in range(len(fmts)):
            fmt = fmts[(i + k) % len(fmts)]
            counts[fmt] += 1
            row = _one(tabs[fmt][1], photo, counts[fmt])
            rows[fmt].append({"photo": f"{photo.parent.name}/{photo.name}", **row})
        if (i + 1) % 10 == 0:
            print(f"bench_page: {i + 1}/{len(pics)} photos, load {loads[-1]}", file=sys.stderr, flush=True)
    loads.append(load())
    for context, _ in tabs.values():
        context.close()
    return rows, loads


def in_browser(sites: dict, pics: list[Path], warmup: int, n_loads: int) -> dict:
    from playwright.sync_api import sync_playwright

    from skinage.app.browser import OFFLINE_FLAGS, chromium_executable
    from skinage.app.serve import start

    servers = {fmt: start(site, port=0, log=False) for fmt, site in sites.items()}
    urls = {fmt: s.url for fmt, s in servers.items()}
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium_executable(), headless=True, args=OFFLINE_FLAGS)
            try:
                version = browser.version
                loads_before = load()
                firsts = first_loads(browser, urls, sites, n_loads)
                rows, loads = per_photo(browser, urls, pics, warmup)
            finally:
                browser.close()
    finally:
        for s in servers.values():
            s.stop()
    return {"chromium": version, "first_loads": firsts, "rows": rows, "loads": [loads_before] + loads}


# ------------------------------------------------------------------------------------------ summary


def _stats(xs) -> dict:
    xs = [float(x) for x in xs]
    if not xs:
        return {"n": 0}
    return {"n": len(xs), "median": round(statistics.median(xs), 2), "p90": round(float(np.percentile(xs, 90)), 2),
            "min": round(min(xs), 2), "mean": round(statistics.fmean(xs), 2)}


def _agreement(rows: list[dict], ref: list[dict]) -> dict:
    same_status = sum(r["status"] == p["status"] for r, p in zip(rows, ref))
    both_ok = [(r, p) for r, p in zip(rows, ref) if r["status"] == "ok" and p["status"] == "ok"]
    same = sum(r["class"] == p["class"] for r, p in both_ok)
    dp = [float(np.abs(np.subtract(r["probs"], p["probs"])).max()) for r, p in both_ok]
    return {"photos": len(rows), "same_status": same_status, "both_ok": len(both_ok), "same_class": same,
            "class_agreement": round(same / max(1, len(both_ok)), 4),
            "max_abs_prob_diff": round(max(dp), 6) if dp else None,
            "differences": [(r["photo"], r["status"], r["class"], p["status"], p.get("class"))
                            for r, p in zip(rows, ref) if r["status"] != p["status"] or r["class"] != p.get("class")]}


def summarise(measured: dict, python: dict, sites: dict) -> dict:
    out = {}
    finder_bytes = sum(f.stat().st_size for f in (sites["fp32"] / "models").glob("*.onnx"))
    for fmt, rows in measured["rows"].items():
        ok = [r for r in rows if r["status"] == "ok"]
        model_bytes = (sites[fmt] / "model.onnx").stat().st_size
        firsts = measured["first_loads"][fmt]
        out[fmt] = {
            "model_bytes": model_bytes, "models_bytes_with_finder": model_bytes + finder_bytes,
            "end_to_end_ms": _stats(r["ms"] for r in rows), "end_to_end_ok_ms": _stats(r["ms"] for r in ok),
            "detector_ms": _stats(r["runs_ms"]["detector"] for r in rows),
            "landmarks_ms": _stats(r["runs_ms"]["landmarks"] for r in rows if r["runs"]["landmarks"]),
            "classifier_ms": _stats(r["runs_ms"]["classifier"] for r in ok),
            **{f"stage_{k}_ms": _stats(r["times"].get(k) for r in rows if k in r["times"])
               for k in ("decode", "find", "crop", "grade")},
            "agreement_vs_python_fp32": _agreement(rows, python["fp32"]),
            "agreement_vs_python_same_file": _agreement(rows, python[fmt]),
            "first_load_ms": _stats(f["ready_ms"] for f in firsts),
            "first_load_models_ms": _stats(f["models_ms"] for f in firsts if f["models_ms"] is not None),
            "first_load_bytes": firsts[0]["bytes"], "first_load_gzip9_bytes": firsts[0]["gzip9_bytes"],
            "first_load_requests": firsts[0]["requests"],
        }
    rows = measured["rows"]
    ratios = {}
    for other in (f for f in rows if f != "fp32"):
        paired = [o["runs_ms"]["classifier"] / f["runs_ms"]["classifier"] for f, o in zip(rows["fp32"], rows[other])
                  if f["status"] == o["status"] == "ok" and f["runs_ms"]["classifier"] > 0]
        ratios[f"{other}_over_fp32_classifier"] = {
            "of_medians": round(out[other]["classifier_ms"]["median"] / out["fp32"]["classifier_ms"]["median"], 3),
            "median_of_paired": round(statistics.median(paired), 3) if paired else None, "pairs": len(paired)}
    return {"formats": out, "ratios": ratios, "finder_bytes": finder_bytes}


def recommend(formats: dict) -> dict:
    """The rule: agreeing >= 98 % with Python's fp32 class, fastest classifier (10 % = as fast: smaller wins), budget."""
    agree = {f: s for f, s in formats.items() if s["agreement_vs_python_fp32"]["class_agreement"] >= MIN_AGREEMENT}
    if not agree:
        return {"format": "fp32", "why": "no format agreed with Python on >= 98 % of the photos; fp32 is the reference"}
    fits = {f: s for f, s in agree.items() if s["models_bytes_with_finder"] <= BUDGET_MB * 1e6} or agree
    fastest = min(s["classifier_ms"]["median"] for s in fits.values())
    near = [f for f, s in fits.items() if s["classifier_ms"]["median"] <= fastest * (1 + SAME_SPEED)]
    best = min(near, key=lambda f: fits[f]["model_bytes"])
    s = formats[best]
    return {"format": best, "agreeing": sorted(agree), "within_budget": sorted(fits), "as_fast": sorted(near),
            "why": f"{best}: {s['agreement_vs_python_fp32']['class_agreement']:.1%} of the photos' classes equal to "
                   f"Python's fp32, classifier median {s['classifier_ms']['median']} ms (fastest of the agreeing "
                   f"formats within {SAME_SPEED:.0%}, then the smaller), {s['models_bytes_with_finder'] / 1e6:.2f} MB "
                   f"with the finder (budget {BUDGET_MB:g} MB)"}


# ------------------------------------------------------------------------------------------ report


def machine() -> dict:
    import onnxruntime

    cpu = ""
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu or platform.processor(), "cores": os.cpu_count(), "python": platform.python_version(),
            "onnxruntime": onnxruntime.__version__}


def _ms(s: dict) -> str:
    return f"{s['median']:.1f} ({s['p90']:.1f})" if s.get("n") else "-"


def markdown(res: dict) -> str:
    f, loads = res["summary"]["formats"], res["loads"]
    rec, auto = res["recommendation"], res["skinage_app_auto"]
    mb = lambda b: f"{b / 1e6:.2f}"  # noqa: E731
    lines = [
        "# The page in the browser: speed, agreement, first load (bench_page)", "",
        f"Measured {res['date']} by `benchmarks/bench_page.py` on {res['machine']['cpu']} ({res['machine']['cores']} "
        f"cores, shared with other sessions), headless Chromium {res['chromium']}, onnxruntime-web wasm, **1 thread** "
        f"(served by `skinage serve`, not cross-origin isolated). Load average (1/5/15 min) during the photo rounds: "
        f"min {min(l[0] for l in loads):.2f}, median {statistics.median(l[0] for l in loads):.2f}, max "
        f"{max(l[0] for l in loads):.2f} (1-min); every sample is in `benchmarks/results/bench_page.json`.", "",
        f"Model: the small real run of `tests/app_site_helpers.py` (UTKFace, 4 age groups, finder face boxes, "
        f"MobileNetV2 features at 224 px, CORN head). {res['photos']} real photos it was not trained on "
        f"({res['photo_sets']}), each uploaded to the real page of every format in turn (one tab a format, the order "
        f"rotating photo by photo), after {res['warmup']} warm-up photos. Medians (p90) in ms.", "",
        "| | " + " | ".join(f) + " |", "|---|" + "---:|" * len(f),
        "| model file MB | " + " | ".join(mb(s["model_bytes"]) for s in f.values()) + " |",
        "| models with the finder MB (target <= 8) | " + " | ".join(mb(s["models_bytes_with_finder"]) for s in f.values()) + " |",
        "| **end to end, file to grade** (target <= 60, stretch <= 25) | " + " | ".join(_ms(s["end_to_end_ms"]) for s in f.values()) + " |",
        "| - decode (createImageBitmap + pixels) | " + " | ".join(_ms(s["stage_decode_ms"]) for s in f.values()) + " |",
        "| - find (JS + both models) | " + " | ".join(_ms(s["stage_find_ms"]) for s in f.values()) + " |",
        "| -- detector session.run (all passes) | " + " | ".join(_ms(s["detector_ms"]) for s in f.values()) + " |",
        "| -- landmarks session.run | " + " | ".join(_ms(s["landmarks_ms"]) for s in f.values()) + " |",
        "| - crop (Preprocess in JS) | " + " | ".join(_ms(s["stage_crop_ms"]) for s in f.values()) + " |",
        "| - grade | " + " | ".join(_ms(s["stage_grade_ms"]) for s in f.values()) + " |",
        "| -- **classifier session.run** | " + " | ".join(_ms(s["classifier_ms"]) for s in f.values()) + " |",
        "| class = Python fp32's (photos both ok) | " + " | ".join(
            f"{a['same_class']}/{a['both_ok']} ({a['class_agreement']:.1%})"
            for a in (s["agreement_vs_python_fp32"] for s in f.values())) + " |",
        "| class = Python's on the same file | " + " | ".join(
            f"{a['same_class']}/{a['both_ok']}" for a in (s["agreement_vs_python_same_file"] for s in f.values())) + " |",
        "| status = Python's | " + " | ".join(
            f"{s['agreement_vs_python_fp32']['same_status']}/{s['agreement_vs_python_fp32']['photos']}" for s in f.values()) + " |",
        "| first load, navigation to ready | " + " | ".join(_ms(s["first_load_ms"]) for s in f.values()) + " |",
        "| first load MB fetched (gzip -9 would be) | " + " | ".join(
            f"{mb(s['first_load_bytes'])} ({mb(s['first_load_gzip9_bytes'])})" for s in f.values()) + " |",
        "",
        "Speed ratios (classifier `session.run`, same photos, side by side): " + "; ".join(
            f"{k.replace('_over_fp32_classifier', '')} / fp32 = {v['of_medians']} (ratio of medians), "
            f"{v['median_of_paired']} (median of {v['pairs']} paired photos)" for k, v in res["summary"]["ratios"].items()) + ".",
        "",
        "## Which file `skinage app` should ship",
        f"By the rule (agrees with Python's fp32 class on >= 98 % of the photos; the fastest classifier, within 10 % as "
        f"fast and then the smaller; within the 8 MB budget with the finder): **{rec['format']}**. {rec['why']}.",
        f"`skinage app --model auto` on the same run (its own measurement, 50 validation crops): "
        f"**{auto.get('chosen')}** ({auto.get('why', '')}).", "",
        "## Targets",
    ]
    for fmt, s in f.items():
        e2e = s["end_to_end_ms"]["median"]
        lines.append(f"* {fmt}: end to end {e2e:.1f} ms median: {'meets' if e2e <= TARGET_MS else 'misses'} the 60 ms target, "
                     f"{'meets' if e2e <= STRETCH_MS else 'misses'} the 25 ms stretch; models "
                     f"{mb(s['models_bytes_with_finder'])} MB with the finder: "
                     f"{'within' if s['models_bytes_with_finder'] <= BUDGET_MB * 1e6 else 'over'} 8 MB.")
    diffs = {fmt: s["agreement_vs_python_fp32"]["differences"] for fmt, s in f.items()}
    lines += ["", "## Differences from Python (photo, page status, page class, Python status, Python class)"]
    for fmt, d in diffs.items():
        lines.append(f"* {fmt}: " + ("none" if not d else "; ".join(f"{p} {a}/{b} vs {c}/{e}" for p, a, b, c, e in d)))
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=Path("/tmp/skinage-bench-page"), help="work folder (kept, reused)")
    ap.add_argument("--per-decade", type=int, default=6, help="UTKFace photos of each of the 7 decades")
    ap.add_argument("--london", type=int, default=12, help="london-5view front views")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--loads", type=int, default=3, help="first loads a format")
    ap.add_argument("--train-per-decade", type=int, default=40)
    ap.add_argument("--json", type=Path, default=JSON_OUT)
    ap.add_argument("--md", type=Path, default=MD_OUT)
    a = ap.parse_args(argv)
    a.root.mkdir(parents=True, exist_ok=True)
    started = dt.datetime.now(dt.timezone.utc)
    built = build(a.root, a.train_per_decade)
    auto = json.loads((a.root / "site-auto" / "card.json").read_text()).get("model_file", {})
    pics = photos(a.per_decade, a.london)
    python = python_answers(built["sites"], pics)
    measured = in_browser(built["sites"], pics, a.warmup, a.loads)
    summary = summarise(measured, python, built["sites"])
    res = {"date": started.strftime("%Y-%m-%d %H:%M UTC"), "machine": machine(), "chromium": measured["chromium"],
           "threads": 1, "photos": len(pics),
           "photo_sets": f"{a.per_decade * len(DECADES)} UTKFace, {len(pics) - a.per_decade * len(DECADES)} london front views",
           "warmup": a.warmup, "loads": measured["loads"], "summary": summary,
           "recommendation": recommend(summary["formats"]),
           "skinage_app_auto": {k: auto.get(k) for k in ("chosen", "why", "candidates", "load_average", "crops")},
           "first_loads": measured["first_loads"], "rows": measured["rows"], "python": python}
    atomic_write_json(a.json, json.loads(json.dumps(res, default=str)))
    atomic_write_text(a.md, markdown(res))
    print(markdown(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
