"""The page against Python on many real photos, and the phone screenshot for the README.

Builds the small real run and site of tests/app_site_helpers.py (or reuses ``--root`` when it holds one),
opens the site in headless chromium at a phone's viewport (390 x 844), uploads ``--per-decade`` UTKFace
photos of each decade (ones the run was not trained on) and ``--london`` london-5view front views (and
half as many three-quarter views), and compares each with Python's answer (the finder's face box,
``Preprocess.load``, onnxruntime on the site's model.onnx, the class rule, too_dark). Writes
``docs/results/app_agreement.md`` and ``.json`` (``--out``), and with ``--screenshot PNG`` a picture of the
page after a photo.

    flock /tmp/skinage-heavy.lock .venv/bin/python scripts/app_agreement.py --screenshot docs/app-phone.png
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from app_site_helpers import PythonReference, build_site, page_photos  # noqa: E402

from skinage.app.browser import OFFLINE_FLAGS, chromium_executable, serve_dir  # noqa: E402

DATA = Path(os.environ.get("SKINAGE_SHARED_DATA", ROOT.parent / "shared" / "data"))
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True, "device_scale_factor": 2}


def shoot(browser, base: str, photo: Path, png: Path) -> None:
    """The page at a phone's viewport (CSS pixels, scale 1) after one photo, as a small PNG (256 colours)."""
    from PIL import Image

    context = browser.new_context(**{**PHONE, "device_scale_factor": 1}, service_workers="block")
    page = context.new_page()
    page.goto(base + "index.html")
    page.wait_for_selector("body[data-ready='true']", state="attached", timeout=120_000)
    page.set_input_files("#photo", str(photo))
    page.wait_for_selector("#result[data-n='1']", state="attached", timeout=60_000)
    png.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(png))
    context.close()
    Image.open(png).convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT).save(png, optimize=True)


def run_page(site: Path, photos: list, reference, screenshot: Path | None, shot_photo: Path | None = None) -> list[dict]:
    from playwright.sync_api import sync_playwright

    rows = []
    with serve_dir(site) as base, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_executable(), headless=True, args=OFFLINE_FLAGS)
        context = browser.new_context(**PHONE, service_workers="block")
        foreign = []
        context.on("request", lambda r: foreign.append(r.url) if not r.url.startswith(base) else None)
        page = context.new_page()
        page.goto(base + "index.html")
        page.wait_for_selector("body[data-ready='true']", state="attached", timeout=120_000)
        for i, photo in enumerate(photos, 1):
            page.set_input_files("#photo", str(photo))
            page.wait_for_selector(f"#result[data-n='{i}']", state="attached", timeout=60_000)
            d = page.evaluate("() => Object.assign({}, document.getElementById('result').dataset)")
            rows.append({"photo": f"{photo.parent.name}/{photo.name}", "page": d, "python": reference(photo)})
        if screenshot is not None:
            shoot(browser, base, shot_photo, screenshot)
        browser.close()
    if foreign:
        raise SystemExit(f"requests left the origin: {foreign}")
    return rows


def summarise(rows: list[dict]) -> dict:
    same_status = [r for r in rows if r["page"]["status"] == r["python"]["status"]]
    ok = [r for r in same_status if r["python"]["status"] == "ok"]
    same_class = [r for r in ok if r["page"]["class"] == r["python"]["class"]]
    boxes = [float(np.abs(np.subtract(json.loads(r["page"]["face"]), r["python"]["face"])).max()) for r in ok]
    dp = [float(np.abs(np.subtract(json.loads(r["page"]["probs"]), r["python"]["probs"])).max()) for r in ok]
    ms = [float(r["page"]["ms"]) for r in rows]
    return {"photos": len(rows), "same_status": len(same_status), "ok": len(ok), "same_class": len(same_class),
            "class_agreement": len(same_class) / max(1, len(ok)),
            "status_differences": [(r["photo"], r["page"]["status"], r["python"]["status"], r["page"]["reason"])
                                   for r in rows if r not in same_status],
            "class_differences": [(r["photo"], r["page"]["class"], r["python"]["class"]) for r in ok if r not in same_class],
            "face_box_max_diff_px": max(boxes) if boxes else None, "prob_max_diff_median": float(np.median(dp)) if dp else None,
            "prob_max_diff_largest": max(dp) if dp else None, "page_ms_median": float(np.median(ms)),
            "page_ms_p90": float(np.percentile(ms, 90))}


def slim(rows: list[dict]) -> list[dict]:
    """One short record a photo for the JSON file."""
    out = []
    for r in rows:
        pg, py = r["page"], r["python"]
        rec = {"photo": r["photo"], "page_status": pg["status"], "python_status": py["status"],
               "page_class": pg["class"] or None, "python_class": py.get("class"), "page_ms": float(pg["ms"])}
        if pg["face"] and py.get("face"):
            rec["face_box_diff_px"] = float(np.abs(np.subtract(json.loads(pg["face"]), py["face"])).max())
        if pg["status"] == py["status"] == "ok":
            rec["prob_max_diff"] = float(np.abs(np.subtract(json.loads(pg["probs"]), py["probs"])).max())
        out.append(rec)
    return out


def write_markdown(out: Path, s: dict, meta: dict) -> None:
    lines = [
        "# The page against Python on real photos (`scripts/app_agreement.py`)", "",
        f"{meta['date']}, {meta['machine']}, load average {meta['load']}. Site: {meta['site']}. "
        f"Model file: {meta['model_file']}.", "",
        f"Photos: {s['photos']} ({meta['photos']}), uploaded to the page in headless chromium (390 x 844, 1 wasm "
        "thread) and given to Python (finder box, `Preprocess.load`, onnxruntime on the site's model.onnx, the CORN "
        "rank rule, too_dark).", "",
        "| | |", "|---|---|",
        f"| same status | {s['same_status']} / {s['photos']} |",
        f"| same class (both ok) | {s['same_class']} / {s['ok']} ({100 * s['class_agreement']:.1f} %) |",
        f"| face box, largest difference | {s['face_box_max_diff_px']:.1e} px |",
        f"| probabilities, max abs difference: median / largest | {s['prob_max_diff_median']:.1e} / "
        f"{s['prob_max_diff_largest']:.1e} |",
        f"| page, ms from reading the file to the grade: median / 90th percentile | {s['page_ms_median']:.0f} / "
        f"{s['page_ms_p90']:.0f} |", "",
        "Status differences: " + ("; ".join(f"{p}: page {a}, Python {b} ({why})" for p, a, b, why in
                                            s["status_differences"]) or "none") + ".", "",
        "Class differences: " + ("; ".join(f"{p}: page {a}, Python {b}" for p, a, b in s["class_differences"])
                                 or "none") + ".", "",
        "Why the numbers are not always identical: the face box comes from the same ONNX files in onnxruntime-web "
        "and onnxruntime, whose float32 outputs differ by ~1e-5 (relative); the box then differs by ~1e-5 px and, "
        "rounded to float32 by the resize as in Pillow, can move a crop pixel by one grey level, which moves the "
        "probabilities by ~1e-4 (more on near-ties). Decoding (chromium vs Pillow/libjpeg) and the crop and resize "
        "(boxes.mjs/resample.mjs vs Pillow) are bit-exact on these photos.", ""]
    out.write_text("\n".join(lines), encoding="utf-8")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, help="work folder (kept; reused when it holds a site)")
    ap.add_argument("--per-decade", type=int, default=10)
    ap.add_argument("--london", type=int, default=20)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "results" / "app_agreement.md")
    ap.add_argument("--screenshot", type=Path, help="save a picture of the page at a phone's viewport here")
    ap.add_argument("--screenshot-photo", default="012_03.jpg",
                    help="the london-5view photo in the picture (CC BY 4.0, Face Research Lab London Set)")
    a = ap.parse_args(argv)
    root = a.root or Path(tempfile.mkdtemp(prefix="skinage-app-"))
    site = root / "site"
    if not (site / "card.json").is_file():
        build_site(DATA / "utkface-age", root, measure=50)
    photos = page_photos(DATA / "utkface-age", DATA / "london-5view", a.per_decade, a.london)
    shot_photo = DATA / "london-5view" / "images" / a.screenshot_photo
    rows = run_page(site, photos, PythonReference(site / "model.onnx"), a.screenshot, shot_photo)
    s = summarise(rows)
    card = json.loads((site / "card.json").read_text())
    meta = {"date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores", "load": [round(v, 1) for v in os.getloadavg()],
            "site": f"{card['sizes']['all'] / 1e6:.1f} MB, models {card['sizes']['models'] / 1e6:.2f} MB",
            "model_file": card["model_file"]["description"],
            "photos": f"{a.per_decade} UTKFace a decade, {a.london} london front and {a.london // 2} three-quarter views"}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.with_suffix(".json").write_text(json.dumps({"summary": s, "meta": meta, "rows": slim(rows)}, indent=1) + "\n")
    write_markdown(a.out, s, meta)
    print(a.out.read_text())
    return 0 if s["class_agreement"] >= 0.98 else 1


if __name__ == "__main__":
    sys.exit(main())
