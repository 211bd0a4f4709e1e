#!/usr/bin/env python
"""The ``too_dark`` threshold, measured: mean luma of model crops of the shared data sets, and of dimmed copies.

For every photo of utkface-age (3,700) and london-5view (510), the crop a mobilenet_v2 model reads (224 px,
``Preprocess.load``) of three regions: the whole photo (``bbox`` models without a box), the found face and
the found forehead (photos the finder accepts; answers from ingest's content cache,
:mod:`skinage.data.finding`). Its mean Rec.601 luma (:func:`skinage.runtime.quality.mean_luma`), and the
luma of the same crop with its light divided by 8, 16, 32 and 64 in linear sRGB (a camera that does not
make up for a dim room: 3 to 6 stops), rounded back to uint8. Reports the distribution and the share a
threshold refuses: ``benchmarks/results/too_dark.json`` and ``docs/results/too_dark.md``.

    python benchmarks/bench_dark.py            # about 2 minutes once the finder's answers are cached
"""

from __future__ import annotations

import datetime as _dt
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from suite import DOCS_RESULTS, RESULTS, ROOT  # noqa: E402

sys.path.insert(0, str(ROOT))
from skinage.runtime.quality import MIN_LUMA, mean_luma  # noqa: E402
from skinage.utils import atomic_write_json, atomic_write_text, say  # noqa: E402

DATA = Path(os.environ.get("SKINAGE_SHARED_DATA", ROOT.parent / "shared" / "data"))
LIGHT = (8, 16, 32, 64)
REGIONS = ("whole", "face", "forehead")
THRESHOLDS = (20.0, 25.0, 30.0, 34.0, 40.0)


def dim(crop: np.ndarray, divide: float) -> np.ndarray:
    """``crop`` with its light divided by ``divide`` in linear sRGB, back to uint8 sRGB."""
    x = crop.astype(np.float64) / 255
    lin = np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4) / divide
    y = np.where(lin <= 0.0031308, 12.92 * lin, 1.055 * lin ** (1 / 2.4) - 0.055)
    return np.round(y * 255).astype(np.uint8)


def measure() -> dict:
    from tqdm import tqdm

    from skinage.data.finding import FindCache, find_cached
    from skinage.find.find import get_finder
    from skinage.preprocess import Preprocess

    pre = Preprocess.for_model("mobilenet_v2")
    finder = get_finder(threads=1)
    cache = FindCache(finder.models)
    sources = {"utkface-age": sorted((DATA / "utkface-age").rglob("*.jpg")),
               "london-5view": sorted((DATA / "london-5view" / "images").glob("*.jpg"))}
    out: dict = {}
    for name, files in sources.items():
        lumas = {r: {"plain": [], **{str(k): [] for k in LIGHT}} for r in REGIONS}
        for p in tqdm(files, desc=name, file=sys.stderr):
            found = find_cached(str(p), finder, cache)
            for region in REGIONS:
                box = None if region == "whole" else found.box(region)
                if region != "whole" and (found.status != "ok" or box is None):
                    continue
                try:
                    crop = pre.load(str(p), box)
                except Exception:  # noqa: BLE001 - e.g. a forehead box of zero height at the photo's edge
                    continue
                lumas[region]["plain"].append(mean_luma(crop))
                for k in LIGHT:
                    lumas[region][str(k)].append(mean_luma(dim(crop, k)))
        out[name] = lumas
    say(f"finder answers: {cache.hits} from the cache, {cache.misses} found now")
    return out


def summarise(raw: dict) -> dict:
    rows = []
    for src, regions in raw.items():
        for region, series in regions.items():
            v = np.asarray(series["plain"])
            if not len(v):
                continue
            row = {"source": src, "region": region, "n": int(len(v)), "min": float(v.min()),
                   "p0_1": float(np.percentile(v, 0.1)), "p1": float(np.percentile(v, 1)),
                   "p5": float(np.percentile(v, 5)), "median": float(np.median(v)),
                   "refused": {f"{t:g}": int((v < t).sum()) for t in THRESHOLDS}, "dimmed": {}}
            for k in LIGHT:
                d = np.asarray(series[str(k)])
                row["dimmed"][str(k)] = {"median": float(np.median(d)), "max": float(d.max()),
                                         "refused_share": {f"{t:g}": float((d < t).mean()) for t in THRESHOLDS}}
            rows.append(row)
    return {"rows": rows}


def markdown(doc: dict) -> str:
    lines = ["# `too_dark`: the luma threshold, measured", "",
             f"Written by `benchmarks/bench_dark.py` on {doc['date']} (load average {doc['load']}). The rule "
             f"(`skinage/runtime/quality.py`): a crop whose mean Rec.601 luma is below `MIN_LUMA` = {MIN_LUMA:g} "
             "is refused as `too_dark`. Crops: mobilenet_v2's 224-px crop of the whole photo, the found face and "
             "the found forehead; *dimmed*: the crop's light divided by 8-64 in linear sRGB (3-6 stops).", "",
             "## Luma of the shared data sets' crops", "",
             "| data | crop | n | min | 0.1 % | 1 % | 5 % | median | refused at 20 / 25 / 30 / 34 / 40 |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in doc["rows"]:
        ref = " / ".join(str(r["refused"][f"{t:g}"]) for t in THRESHOLDS)
        lines.append(f"| {r['source']} | {r['region']} | {r['n']} | {r['min']:.1f} | {r['p0_1']:.1f} | {r['p1']:.1f} | "
                     f"{r['p5']:.1f} | {r['median']:.1f} | {ref} |")
    lines += ["", "## The same crops dimmed: median luma and share refused at 30", "",
              "| data | crop | " + " | ".join(f"light / {k}" for k in LIGHT) + " |",
              "|---|---|" + "---|" * len(LIGHT)]
    for r in doc["rows"]:
        cells = [f"{r['dimmed'][str(k)]['median']:.1f} ({100 * r['dimmed'][str(k)]['refused_share']['30']:.0f} %)"
                 for k in LIGHT]
        lines.append(f"| {r['source']} | {r['region']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> int:
    load0 = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    doc = summarise(measure())
    doc.update(date=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
               load=f"{load0} at the start, {', '.join(f'{v:.2f}' for v in os.getloadavg())} at the end",
               min_luma=MIN_LUMA, light=list(LIGHT), thresholds=list(THRESHOLDS))
    atomic_write_json(RESULTS / "too_dark.json", doc)
    atomic_write_text(DOCS_RESULTS / "too_dark.md", markdown(doc))
    say(markdown(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
