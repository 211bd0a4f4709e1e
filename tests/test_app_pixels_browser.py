"""In chromium, on real photos: the page decodes and crops to the same pixels as Python's load_crop.

The page decodes a photo with createImageBitmap (EXIF orientation applied) and a canvas, then
crops and resizes it with skinage/app/web/boxes.mjs; Python reads the file with
``skinage.data.images.load_crop`` (the default, fast path). Every pixel is compared. Photos come
from ../shared/data (skipped with the reason when absent).

One case cannot be bit-exact: when the crop is at least twice the output size on both sides,
load_crop decodes the JPEG at 1/2, 1/4 or 1/8 scale (libjpeg's scaled IDCT, ``draft``), which the
browser's full-size pixels cannot reproduce. For those crops the page is compared bit for bit with
load_crop on Pillow's *full* decode of the same file (saved losslessly), and its distance from the
draft path is measured and reported.
"""

from __future__ import annotations

import base64
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app_pixel_helpers import draft_scale, exif_orientation, load_crop_reduced
from browser_helpers import serve_dir
from conftest import shared_data
from skinage.app import WEB_DIR
from skinage.data.images import load_crop

PAGE_JS = Path(__file__).resolve().parent / "js" / "pixels_page.mjs"
# the registry's preprocessing: MobileNetV2 bilinear, EfficientNet-Lite0 bicubic
FACE_JOBS = [
    {"size": 224, "margin": 0.1, "square": True, "interpolation": "bilinear"},
    {"size": 224, "margin": 0.0, "square": False, "interpolation": "bicubic"},
]

pytestmark = pytest.mark.realdata


@pytest.fixture
def site(tmp_path):
    site = tmp_path / "site"
    (site / "web").mkdir(parents=True)
    (site / "photos").mkdir()
    for f in WEB_DIR.glob("*.mjs"):
        shutil.copyfile(f, site / "web" / f.name)
    shutil.copyfile(PAGE_JS, site / "pixels_page.mjs")
    (site / "index.html").write_text('<!doctype html><meta charset="utf-8"><script type="module" src="./pixels_page.mjs"></script>')
    return site


def run_page(offline_context, site: Path, photos: list, jobs: list) -> list:
    """Run the page on each photo (a file in site/photos) with jobs[i]; the page's results."""
    context, log = offline_context
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    out = []
    with serve_dir(site) as base:
        page.goto(base + "index.html")
        page.wait_for_function("window.ready === true", timeout=30_000)
        for name, photo_jobs in zip(photos, jobs):
            out.append(page.evaluate("([u, j]) => window.runPhoto(u, j)", [f"photos/{name}", photo_jobs]))
    assert not errors, errors
    assert not log.blocked and not log.foreign, log.foreign
    return out


def pixels(b64: str, shape) -> np.ndarray:
    return np.frombuffer(base64.b64decode(b64), dtype=np.uint8).reshape(shape)


def pillow_rgb(path) -> np.ndarray:
    """The whole photo as Python decodes it (upright, RGB)."""
    from skinage.data.images import open_image

    return np.asarray(open_image(path))


def real_photos(rng) -> list:
    """(path, face-like bbox, jobs) for 30 UTKFace and 30 london-5view photos."""
    utk = sorted(shared_data("utkface-age").glob("*/*.jpg"))
    london = shared_data("london-5view") / "images"
    out = []
    for p in utk[:: max(1, len(utk) // 30)][:30]:  # 200x200, the face fills the photo
        box = [float(30 + rng.uniform(-12, 12)), float(38 + rng.uniform(-12, 12)), float(170 + rng.uniform(-12, 12)), float(188 + rng.uniform(-10, 10))]
        out.append((p, box, FACE_JOBS + [{"size": 224, "margin": 0.0, "square": False, "interpolation": "bilinear", "whole": True}]))
    fronts = sorted(london.glob("*_03.tem"))[:15]
    for tem in fronts:  # 600x600; the face box from the 189 landmarks
        lines = tem.read_text().split("\n")
        pts = np.array([[float(v) for v in line.split()] for line in lines[1 : int(lines[0]) + 1]])
        box = [float(v) for v in (*pts.min(0), *pts.max(0))]
        out.append((tem.with_suffix(".jpg"), box, FACE_JOBS))
    others = [p for p in sorted(london.glob("*.jpg")) if not p.name.endswith("_03.jpg")][::25][:15]
    for p in others:
        c = rng.uniform(260, 340, 2)
        half = rng.uniform(110, 170, 2)
        out.append((p, [float(c[0] - half[0]), float(c[1] - half[1]), float(c[0] + half[0]), float(c[1] + half[1])], FACE_JOBS))
    return out


def _jobs(bbox, settings, ignore_orientation=False, jpeg_draft=False, reader=False):
    return [{"bbox": None if s.get("whole") else bbox, "ignoreOrientation": ignore_orientation, "reader": reader,
             "params": {**{k: v for k, v in s.items() if k != "whole"}, "jpegDraft": jpeg_draft}} for s in settings]


def _python_crop(path, bbox, s):
    return load_crop(path, None if s.get("whole") else bbox, size=s["size"], margin=s["margin"], square=s["square"],
                     resample=s["interpolation"])


def references(path, bbox, s, tmp: Path):
    """(the pixels the page must give, load_crop's pixels, Python's JPEG draft scale) for one crop.

    Where load_crop decodes at reduced scale the page cannot match it; it must then match
    load_crop on Pillow's full-size decode (saved losslessly, EXIF kept) instead.
    """
    python = _python_crop(path, bbox, s)
    scale = draft_scale(path, None if s.get("whole") else bbox, s["size"], s["margin"], s["square"])
    if scale == 1:
        return python, python, 1
    full = tmp / f"{Path(path).stem}.full.png"
    if not full.exists():
        with Image.open(path) as im:
            im.convert("RGB").save(full, exif=im.getexif().tobytes())
    return _python_crop(full, bbox, s), python, scale


def check_draft_job(path, bbox, s, scale, crop) -> tuple:
    """The page's jpegDraft crop: exactly load_crop_reduced; (max, mean) |diff| from load_crop."""
    b = None if s.get("whole") else bbox
    want = load_crop_reduced(path, b, s["size"], s["margin"], s["square"], s["interpolation"], scale)
    got = pixels(crop["data"], want.shape)
    assert crop["draftScale"] == scale and (got == want).all(), (Path(path).name, s)
    d = np.abs(got.astype(int) - _python_crop(path, bbox, s))
    return int(d.max()), float(d.mean())


def draft_summary(full, emulated) -> str:
    if not full:
        return "no crop took Python's JPEG draft path"
    fmt = lambda st: f"max |diff| {max(m for m, _ in st)}, mean {np.mean([a for _, a in st]):.3f}"  # noqa: E731
    return (f"{len(full)} crop{'s' * (len(full) != 1)} took Python's JPEG draft path: page vs load_crop {fmt(full)} from the full-size pixels "
            f"(bit-identical to load_crop on the full decode), {fmt(emulated)} with jpegDraft")


def test_page_decodes_and_crops_real_photos_like_python(site, offline_context, tmp_path):
    rng = np.random.default_rng(23)
    photos = real_photos(rng)
    names = []
    for i, (p, _, _) in enumerate(photos):
        names.append(f"{i:02d}_{p.name}")
        shutil.copyfile(p, site / "photos" / names[-1])
    # every crop as the page does it by default, then the draft-path crops again with jpegDraft
    jobs = [_jobs(b, s) + _jobs(b, [x for x in s if draft_scale(p, None if x.get("whole") else b, x["size"], x["margin"], x["square"]) > 1],
                                jpeg_draft=True, reader=True) for p, b, s in photos]
    results = run_page(offline_context, site, names, jobs)

    decoded_same = crops_same = n_crops = 0
    full, emulated, wrong = [], [], []
    for (p, bbox, settings), res in zip(photos, results):
        ref = pillow_rgb(p)
        assert res["opaque"] and res["orientation"] == 1
        got = pixels(res["rgb"], (res["height"], res["width"], 3))
        decoded_same += got.shape == ref.shape and bool((got == ref).all())
        extra = iter(res["crops"][len(settings):])
        for s, crop in zip(settings, res["crops"]):
            assert "error" not in crop, (p, crop)
            exact, python, scale = references(p, bbox, s, tmp_path)
            got = pixels(crop["data"], exact.shape)
            n_crops += 1
            crops_same += bool((got == exact).all())
            if not (got == exact).all():
                wrong.append((p.name, s, int(np.abs(got.astype(int) - exact).max())))
            if scale > 1:
                d = np.abs(got.astype(int) - python)
                full.append((int(d.max()), float(d.mean())))
                emulated.append(check_draft_job(p, bbox, s, scale, next(extra)))
    print(f"\nchromium vs Pillow on {len(photos)} real photos: JPEG decode bit-identical on {decoded_same}/{len(photos)}; "
          f"crops bit-identical {crops_same}/{n_crops}; {draft_summary(full, emulated)}; cropResize median "
          f"{np.median([c['ms'] for r in results for c in r['crops']]):.1f} ms a crop in the page")
    assert decoded_same == len(photos)
    assert crops_same == n_crops, wrong[:10]
    assert len(full) < n_crops / 4  # the face crops mostly take the exact path


def with_exif_orientation(jpeg: bytes, orientation: int) -> bytes:
    """The same JPEG (not re-encoded) with an EXIF block saying ``orientation``."""
    tiff = b"MM\x00\x2a" + struct.pack(">IH", 8, 1) + struct.pack(">HHIHH", 0x0112, 3, 1, orientation, 0) + struct.pack(">I", 0)
    app1 = b"Exif\x00\x00" + tiff
    segment = b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1
    i = 2 + (2 + struct.unpack(">H", jpeg[4:6])[0] if jpeg[2:4] == b"\xff\xe0" else 0)  # after JFIF's APP0
    return jpeg[:i] + segment + jpeg[i:]


def test_exif_rotated_photos(site, offline_context, tmp_path):
    """Python resizes in the stored orientation and transposes after; the page must do the same.

    With the orientation (exif.mjs) cropResize turns the part back to the stored frame: identical.
    Resizing the browser's upright pixels directly ('naive') is measured and reported: the passes
    swap for a quarter turn and mirrored boxes round their edges the other way.
    """
    rng = np.random.default_rng(29)
    chosen = [p for p in real_photos(rng) if p[0].name.endswith("_03.jpg")][:3] + real_photos(rng)[:3]
    photos, names, jobs = [], [], []
    for i, ((p, bbox, settings), o) in enumerate(zip(chosen, [6, 8, 3, 6, 5, 2])):
        name = f"rot{o}_{p.name}"
        path = site / "photos" / name
        path.write_bytes(with_exif_orientation(p.read_bytes(), o))
        assert exif_orientation(path) == o
        W, H = Image.open(p).size
        # the same face, in upright coordinates of the rotated photo
        from PIL import ImageOps

        up = ImageOps.exif_transpose(Image.open(path))
        box = _map_box(bbox, o, W, H)
        settings = [s for s in settings if not s.get("whole")]
        photos.append((path, box, settings, o, up.size))
        names.append(name)
        # the exact crops read only their rectangle from the canvas (a 12 MP photo is not read whole)
        jobs.append(_jobs(box, settings, reader=True) + _jobs(box, settings, ignore_orientation=True)
                    + _jobs(box, settings, jpeg_draft=True, reader=True))
    results = run_page(offline_context, site, names, jobs)
    naive, full, emulated = [], [], []
    for (path, box, settings, o, size), res in zip(photos, results):
        assert res["orientation"] == o and (res["width"], res["height"]) == size
        assert (pixels(res["rgb"], (size[1], size[0], 3)) == pillow_rgb(path)).all()  # same upright pixels
        n = len(settings)
        for k, s in enumerate(settings):
            want, python, scale = references(path, box, s, tmp_path)
            got = pixels(res["crops"][k]["data"], want.shape)
            assert (got == want).all(), (path.name, s)
            if scale > 1:
                full.append((int(np.abs(got.astype(int) - python).max()), float(np.abs(got.astype(int) - python).mean())))
                emulated.append(check_draft_job(path, box, s, scale, res["crops"][2 * n + k]))
            d = np.abs(pixels(res["crops"][n + k]["data"], want.shape).astype(int) - want)
            naive.append((o, s["interpolation"], int(d.max()), float(d.mean()), float((d > 0).mean())))
    print(f"\nEXIF-rotated photos ({len(naive)} crops): with the orientation, bit-identical on all ({draft_summary(full, emulated)}); "
          "ignoring it (resizing the upright pixels): "
          + "; ".join(f"o={o} {f}: max {m}, mean {a:.3f}, {share:.1%} of values" for o, f, m, a, share in naive))
    assert any(m > 0 for _, _, m, _, _ in naive)  # the orientation matters: the naive path is not exact


def _map_box(box, o, W, H):
    """A box of the stored image (W x H) in upright coordinates after EXIF orientation ``o``."""
    r0, r1, r2, r3 = box
    return {
        2: [W - r2, r1, W - r0, r3], 3: [W - r2, H - r3, W - r0, H - r1], 4: [r0, H - r3, r2, H - r1],
        5: [r1, r0, r3, r2], 6: [H - r3, r0, H - r1, r2], 7: [H - r3, W - r2, H - r1, W - r0], 8: [r1, W - r2, r3, W - r0],
    }.get(o, list(box))


def test_big_crops_differ_only_by_pythons_jpeg_draft(site, offline_context, tmp_path):
    """A whole 600x600 photo at 224 / 96 px: Python decodes the JPEG at 1/2 / 1/4 scale (draft).

    The page equals load_crop on the full decode (bit-exact); with jpegDraft it equals load_crop's
    reduced-scale arithmetic with a box reduction for the decoder, bit-exact too; both distances
    from Python's draft path are measured, and the emulation must be the closer one.
    """
    london = shared_data("london-5view") / "images"
    photos = sorted(london.glob("*.jpg"))[::32][:16]
    settings = [{"size": 224, "margin": 0.0, "square": False, "interpolation": "bilinear", "whole": True},  # 1/2
                {"size": 96, "margin": 0.0, "square": False, "interpolation": "bicubic", "whole": True}]  # 1/4
    for p in photos:
        shutil.copyfile(p, site / "photos" / p.name)
    results = run_page(offline_context, site, [p.name for p in photos],
                       [_jobs(None, settings) + _jobs(None, settings, jpeg_draft=True)] * len(photos))
    stats = {s["size"]: ([], []) for s in settings}
    for p, res in zip(photos, results):
        for k, s in enumerate(settings):
            exact, python, scale = references(p, None, s, tmp_path)
            assert scale == {224: 2, 96: 4}[s["size"]]
            got = pixels(res["crops"][k]["data"], exact.shape)
            assert (got == exact).all(), (p.name, s)
            d = np.abs(got.astype(int) - python)
            stats[s["size"]][0].append((int(d.max()), float(d.mean())))
            stats[s["size"]][1].append(check_draft_job(p, None, s, scale, res["crops"][len(settings) + k]))
    for size, (full, emulated) in stats.items():
        print(f"\nwhole 600x600 photo -> {size} px, {len(full)} photos: " + draft_summary(full, emulated))
        assert np.mean([a for _, a in emulated]) < np.mean([a for _, a in full]) < 2.0
