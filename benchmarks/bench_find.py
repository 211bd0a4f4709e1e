"""The face finder: milliseconds per photo by stage (1 thread), and found rates on the shared data sets.

Speed. Three kinds of photo, timed in turn (round-robin, so a load spike on this shared machine
hits all of them), each stage apart:

* ``200 px``: UTKFace crops (200x200 JPEG);
* ``600 px``: london-5view front views (600x600 JPEG);
* ``12 MP``: london front views cropped to 4:3 (600x450) and upscaled to 4000x3000 (bicubic, JPEG
  quality 90), written to a temporary folder (never the repository); found at 1000x750 (DCT-scaled
  decoding), boxes in full-resolution pixels.

Stages: ``decode`` (file -> upright RGB, reduced when large), ``detection`` (letterbox, BlazeFace,
anchors, NMS), ``landmarks`` (per face: rotated crop, FaceMesh, boxes), and ``past decode`` (the
whole :meth:`Finder.find_decoded`: detection + landmarks + statuses). Medians (and minima) over all
photos x repeats. Target: <= 15 ms a photo past decode.

Found rates. Every image of ``utkface-age`` (or ``--utk N`` sampled), also with a 25 % grey border
added around each crop (UTKFace crops are tight; the detector was trained on looser framing), and
every view of ``london-5view`` (01..05): the count of each status.

Writes ``benchmarks/results/bench_find.json`` and ``docs/results/finder.md``.

Usage::

    flock /tmp/skinage-heavy.lock .venv/bin/python benchmarks/bench_find.py [--repeats 20] [--utk 0]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from skinage.find import STATUSES, Finder  # noqa: E402
from skinage.find.constants import DECODE_SIZE  # noqa: E402
from skinage.find.finder import decode  # noqa: E402
from skinage.utils import atomic_write_json, atomic_write_text  # noqa: E402

DATA = Path(os.environ.get("SKINAGE_SHARED_DATA", ROOT.parent / "shared" / "data"))
TARGET_MS = 15.0
VIEWS = {"01": "left profile", "02": "left 3/4", "03": "front", "04": "right 3/4", "05": "right profile"}


def machine() -> dict:
    import onnxruntime

    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    cpu = next((ln.split(":", 1)[1].strip() for ln in info.splitlines() if ln.startswith("model name")),
               platform.processor())
    flags = next((ln.split(":", 1)[1].split() for ln in info.splitlines() if ln.startswith("flags")), [])
    return {"cpu": cpu, "cores": os.cpu_count(), "load_average": list(os.getloadavg()),
            "cpu_flags": [f for f in flags if f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile")],
            "python": platform.python_version(), "onnxruntime": onnxruntime.__version__,
            "numpy": np.__version__, "pillow": Image.__version__}


def make_12mp(sources, folder: Path) -> list[Path]:
    """4000x3000 JPEGs (quality 90) upscaled from 4:3 crops of 600x600 photos."""
    out = []
    for s in sources:
        im = Image.open(s).convert("RGB").crop((0, 75, 600, 525))
        p = folder / f"12mp_{s.stem}.jpg"
        im.resize((4000, 3000), Image.Resampling.BICUBIC).save(p, quality=90)
        out.append(p)
    return out


def time_stages(finder: Finder, path: Path) -> dict:
    """One pass over ``path``: wall-clock and CPU ms of each stage (CPU time of this process: onnxruntime
    runs its one intra-op thread on the caller's, so other jobs on a shared machine hardly change it)."""
    clocks = [(time.perf_counter(), time.process_time())]

    def tick():
        clocks.append((time.perf_counter(), time.process_time()))

    dec = decode(path)
    tick()
    dets = finder.detector(dec.image)
    tick()
    arr = np.asarray(dec.image, dtype=np.uint8)
    for det in dets:
        finder.face(arr, det, dec.factor, dec.size)
    tick()
    finder.find_decoded(dec)
    tick()
    out = {"faces": len(dets), "working size": list(dec.image.size), "size": list(dec.size)}
    for i, stage in enumerate(("decode", "detection", "landmarks", "past decode")):
        per = max(1, len(dets)) if stage == "landmarks" else 1
        out[stage] = (clocks[i + 1][0] - clocks[i][0]) * 1e3 / per
        out[stage + " cpu"] = (clocks[i + 1][1] - clocks[i][1]) * 1e3 / per
    return out


def speed(finder: Finder, sets: dict, repeats: int) -> dict:
    from tqdm import tqdm

    samples = {name: [] for name in sets}
    for name, files in sets.items():  # warm up: sessions, caches
        for f in files[:2]:
            time_stages(finder, f)
    bar = tqdm(total=repeats * sum(len(v) for v in sets.values()), desc="speed", unit="photo", file=sys.stderr)
    for _ in range(repeats):
        longest = max(len(v) for v in sets.values())
        for i in range(longest):
            for name, files in sets.items():
                if i < len(files):
                    samples[name].append(time_stages(finder, files[i]))
                    bar.update(1)
    bar.close()
    out = {}
    for name, rows in samples.items():
        stats = {}
        for stage in ("decode", "detection", "landmarks", "past decode"):
            v = [r[stage] for r in rows]
            c = [r[stage + " cpu"] for r in rows]
            stats[stage] = {"median": round(statistics.median(v), 2), "min": round(min(v), 2),
                            "cpu_median": round(statistics.median(c), 2)}
        stats["photos"] = len(sets[name])
        stats["samples"] = len(rows)
        stats["working size"] = rows[0]["working size"]
        stats["size"] = rows[0]["size"]
        stats["faces per photo"] = round(statistics.mean(r["faces"] for r in rows), 2)
        out[name] = stats
    return out


def rate(finder: Finder, items, desc: str) -> dict:
    """Status counts over ``items`` (paths or PIL images), and how often the detector alone fired."""
    from tqdm import tqdm

    counts, detected, second = Counter(), 0, 0
    for item in tqdm(items, desc=desc, unit="img", file=sys.stderr, leave=False):
        dec = decode(item)
        detected += bool(finder.detector(dec.image))
        found = finder.find_decoded(dec)
        counts[found.status] += 1
        second += found.ok and found.border > 0
    n = sum(counts.values())
    return {"n": n, "ok": counts.get("ok", 0), "ok_rate": round(counts.get("ok", 0) / max(n, 1), 4),
            "detected": detected, "second_pass": second, "statuses": {s: counts.get(s, 0) for s in STATUSES}}


def bordered(path: Path, frac: float = 0.25) -> Image.Image:
    im = Image.open(path).convert("RGB")
    w, h = im.size
    dx, dy = round(w * frac), round(h * frac)
    canvas = Image.new("RGB", (w + 2 * dx, h + 2 * dy), (128, 128, 128))
    canvas.paste(im, (dx, dy))
    return canvas


def found_rates(finder: Finder, utk_n: int, seed: int = 0) -> dict:
    out = {}
    utk = sorted((DATA / "utkface-age").glob("*/*.jpg"))
    if utk:
        sample = utk if not utk_n or utk_n >= len(utk) else sorted(random.Random(seed).sample(utk, utk_n))
        out["utkface-age"] = rate(finder, sample, "utkface")
        border = sample if len(sample) <= 500 else sorted(random.Random(seed).sample(sample, 500))
        out["utkface-age, 25 % border"] = rate(finder, (bordered(p) for p in border), "utk+border")
    london = DATA / "london-5view" / "images"
    for v, name in VIEWS.items():
        files = sorted(london.glob(f"*_{v}.jpg"))
        if files:
            out[f"london-5view {v} ({name})"] = rate(finder, files, f"london {v}")
    return out


def markdown(res: dict) -> str:
    m = res["machine"]
    lines = ["# Face finder: speed and found rates", "",
             f"Written by `benchmarks/bench_find.py` on {res['date']} (`{res['command']}`); "
             f"{m['cpu']}, {m['cores']} cores, load average {', '.join(f'{x:.2f}' for x in m['load_average'])} "
             f"at the start and {', '.join(f'{x:.2f}' for x in res['load_average_end'])} at the end (a shared "
             f"machine: minima show the unloaded cost); onnxruntime {m['onnxruntime']}, 1 thread.", "",
             "## Milliseconds per photo, 1 thread", "",
             "Each cell: wall-clock median (minimum) / CPU-time median. The CPU time of this process is the "
             "work the finder does (onnxruntime's single thread is the caller's); wall-clock medians also hold "
             "the waits for the other jobs of a loaded machine, and the minima are the closest to an idle one.", "",
             "| photo | size found at | decode | detection | landmarks (per face) | past decode | target (CPU median) |",
             "|---|---|---|---|---|---|---|"]
    for name, s in res["speed"].items():
        def cell(stage):
            return f"{s[stage]['median']:.2f} ({s[stage]['min']:.2f}) / {s[stage]['cpu_median']:.2f}"
        met = "met" if s["past decode"]["cpu_median"] <= TARGET_MS else "missed"
        lines.append(f"| {name} ({s['size'][0]}x{s['size'][1]}, {s['photos']} photos x {res['repeats']}) | "
                     f"{s['working size'][0]}x{s['working size'][1]} | {cell('decode')} | {cell('detection')} | "
                     f"{cell('landmarks')} | {cell('past decode')} | <= {TARGET_MS:.0f}: {met} |")
    lines += ["", "*past decode* = detection + landmarks of every face + statuses (the whole `Finder.find_decoded`); "
              "the 12 MP photos are decoded at 1/4 scale (JPEG draft) and found at that size.", "",
              "## Found rates", "", f"Measured on {res.get('found_date', res['date'])} (load average "
              f"{res.get('found_load', '–')}).", "",
              "| data | images | detector fired | ok | of which on the second pass | " + " | ".join(STATUSES[1:]) + " |",
              "|---|---|---|---|---|" + "---|" * (len(STATUSES) - 1)]
    for name, r in res["found"].items():
        st = r["statuses"]
        lines.append(f"| {name} | {r['n']} | {r['detected']} | {r['ok']} ({r['ok_rate']:.1%}) | "
                     f"{r.get('second_pass', '–')} | " + " | ".join(str(st[s]) for s in STATUSES[1:]) + " |")
    lines += ["", "*detector fired*: images where BlazeFace alone (first pass, the photo as it is) found at least one "
              "face; *ok* and the other statuses come after FaceMesh's face-presence check (>= 0.5), which drops "
              "detector false positives, and after the finder's second pass (a grey border of 0.25 of the long side "
              "around a photo where the first pass found no face; *of which on the second pass*). "
              "UTKFace's 25 % border row: the same frame added by hand before finding (the crops are tight)."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=20, help="passes over the speed photos")
    ap.add_argument("--photos", type=int, default=10, help="photos of each kind for speed (12 MP: half as many)")
    ap.add_argument("--utk", type=int, default=0, help="UTKFace images for the found rate (0: all)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "bench_find.json")
    ap.add_argument("--md", type=Path, default=ROOT / "docs" / "results" / "finder.md")
    ap.add_argument("--found-only", action="store_true",
                    help="measure the found rates only; keep the speed part of the existing --out file")
    a = ap.parse_args(argv)
    if not (DATA / "london-5view").is_dir():
        print(f"bench_find: the shared data is not at {DATA} (set SKINAGE_SHARED_DATA)", file=sys.stderr)
        return 2
    res = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
           "command": "benchmarks/bench_find.py " + " ".join(argv if argv is not None else sys.argv[1:]),
           "machine": machine(), "threads": 1, "repeats": a.repeats, "decode_size": DECODE_SIZE,
           "target_ms_past_decode": TARGET_MS}
    finder = Finder(threads=1)
    if a.found_only:  # the speed part (and its date, machine, load) as measured before
        import json

        res = {**json.loads(a.out.read_text()), "found_command": res["command"]}
    else:
        utk = sorted((DATA / "utkface-age").glob("*/*.jpg"))
        fronts = sorted((DATA / "london-5view" / "images").glob("*_03.jpg"))
        with tempfile.TemporaryDirectory(prefix="bench-find-") as tmp:
            sets = {"200 px": sorted(random.Random(1).sample(utk, a.photos)), "600 px": fronts[:a.photos],
                    "12 MP": make_12mp(fronts[:max(1, a.photos // 2)], Path(tmp))}
            res["speed"] = speed(finder, sets, a.repeats)
        res["load_average_end"] = list(os.getloadavg())
    load0 = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    res["found"] = found_rates(finder, a.utk)
    res["found_date"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    res["found_load"] = f"{load0} at the start, {', '.join(f'{x:.2f}' for x in os.getloadavg())} at the end"
    atomic_write_json(a.out, res)
    atomic_write_text(a.md, markdown(res))
    print(markdown(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
