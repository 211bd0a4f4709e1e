"""The page's pixel code (skinage/app/web/*.mjs) computes the same bytes as Python, in node.

Pillow is the reference: every case compares all pixels of the JavaScript result with
``PIL.Image.resize`` / ``Image.reduce`` / ``Image.transpose`` / ``to_rgb`` / ``load_crop`` on the
same input. Real photos decoded by chromium are in test_app_pixels_browser.py.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from app_pixel_helpers import TRANSPOSE, draft_scale, load_crop_reduced
from browser_helpers import browser_missing
from skinage.data.images import ImageError, expand_box, load_crop, to_rgb

DRIVER = Path(__file__).resolve().parent / "js" / "run_cases.mjs"
FILTERS = {"nearest": 0, "lanczos": 1, "bilinear": 2, "bicubic": 3, "box": 4, "hamming": 5}
#: filters made of + - * / only: bit-exact by construction. hamming and lanczos use sin / cos,
#: whose last bit V8 and the C library may round differently.
EXACT = {"nearest", "bilinear", "bicubic", "box"}
MODES = {"L": 1, "RGB": 3, "RGBA": 4}


def require_node() -> str:
    node = shutil.which("node")
    if node is None:
        browser_missing("node (Node.js) is not installed: it runs the page's JavaScript in these tests (apt-get install -y nodejs)")
    return node


def smooth_image(rng, h, w, nc) -> np.ndarray:
    """Photo-like content (gradients, edges, noise) or plain noise: both stress the rounding."""
    if rng.random() < 0.3:
        return rng.integers(0, 256, (h, w, nc), dtype=np.uint8)
    yy, xx = np.mgrid[0:h, 0:w].astype(float)
    base = 128 + 100 * np.sin(xx / max(w, 1) * rng.uniform(1, 9) + rng.uniform(0, 6)) * np.cos(yy / max(h, 1) * rng.uniform(1, 9))
    edge = np.where(xx * rng.uniform(-1, 1) + yy * rng.uniform(-1, 1) > rng.uniform(-w, h) / 2, 60, -60)
    arr = base[..., None] + edge[..., None] + rng.normal(0, 12, (h, w, nc)) + rng.uniform(-40, 40, nc)
    return np.clip(arr, 0, 255).astype(np.uint8)


def pil(arr: np.ndarray, mode: str) -> Image.Image:
    return Image.fromarray(arr[..., 0] if mode == "L" else arr, mode)


class NodeCases:
    """Collect cases with their Pillow reference, run them in one node process, compare."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.cases: list[dict] = []
        self.refs: list = []

    def add(self, case: dict, ref, arr: np.ndarray | None = None, info=None):
        i = len(self.cases)
        if arr is not None:
            case["input"] = str(self.tmp / f"in{i}.raw")
            Path(case["input"]).write_bytes(np.ascontiguousarray(arr).tobytes())
        case["output"] = str(self.tmp / f"out{i}.raw")
        self.cases.append(case)
        self.refs.append((ref, info if info is not None else case))

    def run(self) -> list[tuple]:
        """[(reference, js result dict, js pixels or None, info)] in the order added."""
        node = require_node()
        path = self.tmp / "cases.json"
        path.write_text(json.dumps(self.cases))
        r = subprocess.run([node, str(DRIVER), str(path), str(self.tmp / "results.json")], capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, f"node failed: {r.stderr[-2000:]}"
        results = json.loads((self.tmp / "results.json").read_text())
        out = []
        for case, (ref, info), res in zip(self.cases, self.refs, results):
            pixels = None
            if "width" in res and isinstance(ref, np.ndarray):
                pixels = np.fromfile(case["output"], dtype=np.uint8).reshape(ref.shape)
            out.append((ref, res, pixels, info))
        return out


def _diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a.astype(np.int16) - b.astype(np.int16))


# --------------------------------------------------------------------------- resize / reduce


def test_resize_is_bit_exact_with_pillow(tmp_path):
    """400 random resizes: every filter and mode, sub-pixel boxes, up and down, reducing gaps."""
    rng = np.random.default_rng(20261206)
    nc = NodeCases(tmp_path)
    for i in range(400):
        mode = str(rng.choice(["L", "RGB", "RGB", "RGBA"]))
        w, h = int(rng.integers(1, 320)), int(rng.integers(1, 320))
        arr = smooth_image(rng, h, w, MODES[mode])
        if mode == "RGBA" and rng.random() < 0.5:  # real transparency: the premultiplied path
            arr[..., 3] = rng.choice([0, 37, 128, 254, 255], (h, w))
        ow, oh = int(rng.integers(1, 300)), int(rng.integers(1, 300))
        filt = str(rng.choice(list(FILTERS)))
        box = None
        if rng.random() < 0.7:
            x0, y0 = rng.uniform(0, w * 0.7), rng.uniform(0, h * 0.7)
            box = [float(x0), float(y0), float(rng.uniform(x0 + 0.01, w)), float(rng.uniform(y0 + 0.01, h))]
            if rng.random() < 0.15 and ow <= w - 3 and oh <= h - 4:  # Pillow's crop shortcut
                box = [3.0, 4.0, 3.0 + ow, 4.0 + oh]
        gap = None if rng.random() < 0.4 else float(rng.choice([1.0, 1.5, 2.0, 3.0]))
        ref = np.asarray(pil(arr, mode).resize((ow, oh), FILTERS[filt], box=tuple(box) if box else None, reducing_gap=gap))
        ref = ref.reshape(oh, ow, MODES[mode])
        nc.add({"op": "resize", "width": w, "height": h, "mode": mode, "size": [ow, oh],
                "params": {"filter": filt, "box": box, "reducingGap": gap}}, ref, arr)
    exact, near = 0, []
    for ref, res, out, info in nc.run():
        assert "error" not in res, (res, info)
        d = _diff(out, ref)
        if d.max() == 0:
            exact += 1
            continue
        assert info["params"]["filter"] not in EXACT, f"{info['params']} differs: max {d.max()}, {(d > 0).mean():.4%} of values"
        near.append((int(d.max()), float((d > 0).mean())))
    # sin / cos filters: at most one level on a few values when the last bit of sin differs
    assert all(m <= 1 and share < 0.01 for m, share in near), near
    print(f"\nresize: {exact}/400 bit-identical; hamming/lanczos off by <= 1 on {len(near)}")


def test_big_reductions_take_pillows_reduce_path(tmp_path):
    """Large shrink factors run Image.reduce first (reducing_gap); partial blocks at the edges."""
    rng = np.random.default_rng(7)
    nc = NodeCases(tmp_path)
    specs = [  # (w, h, out w, out h, box)
        (2136, 1601, 224, 224, (469.3, 661.7, 1638.2, 1197.9)),
        (1203, 907, 100, 100, None),
        (3001, 37, 7, 5, None),
        (37, 3001, 5, 7, (0.5, 10.25, 36.9, 2999.0)),
        (1000, 1000, 160, 96, (13.0, 17.0, 1000.0, 911.5)),
        (955, 1279, 96, 96, (3.7, 100.2, 950.1, 1270.0)),
    ]
    for k, (w, h, ow, oh, box) in enumerate(specs):
        rgba = smooth_image(rng, h, w, 4)
        for j, filt in enumerate(("bilinear", "bicubic", "box", "lanczos")):
            mode = ("RGB", "L", "RGBA")[(k + j) % 3]
            arr = np.ascontiguousarray(rgba[..., : MODES[mode]])
            im = pil(arr, mode)
            ref = np.asarray(im.resize((ow, oh), FILTERS[filt], box=box, reducing_gap=3.0)).reshape(oh, ow, -1)
            plain = np.asarray(im.resize((ow, oh), FILTERS[filt], box=box)).reshape(oh, ow, -1)
            nc.add({"op": "resize", "width": w, "height": h, "mode": mode, "size": [ow, oh],
                    "params": {"filter": filt, "box": list(box) if box else None, "reducingGap": 3.0}},
                   ref, arr, info=(w, h, mode, filt, bool((ref != plain).any())))
    changed = 0
    for ref, res, out, info in nc.run():
        d = _diff(out, ref)
        assert d.max() == 0 or (info[3] not in EXACT and d.max() <= 1), (info, d.max())
        changed += info[4]
    # the reduction is not a no-op: with reducing_gap Pillow's pixels differ from a plain resize
    assert changed >= 20, changed


def test_reduce_is_bit_exact_with_pillow(tmp_path):
    rng = np.random.default_rng(3)
    nc = NodeCases(tmp_path)
    for _ in range(150):
        mode = str(rng.choice(list(MODES)))
        w, h = int(rng.integers(1, 200)), int(rng.integers(1, 200))
        arr = smooth_image(rng, h, w, MODES[mode])
        fx, fy = int(rng.integers(1, 10)), int(rng.integers(1, 10))
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        box = [x0, y0, int(rng.integers(x0 + 1, w + 1)), int(rng.integers(y0 + 1, h + 1))]
        ref = np.asarray(pil(arr, mode).reduce((fx, fy), box=tuple(box)))
        ref = ref.reshape(ref.shape[0], ref.shape[1], MODES[mode])
        nc.add({"op": "reduce", "width": w, "height": h, "mode": mode, "factor": [fx, fy], "box": box}, ref, arr)
    for ref, res, out, info in nc.run():
        assert out is not None and (out == ref).all(), info


def test_transpose_and_alpha_compositing_match_pillow(tmp_path):
    rng = np.random.default_rng(5)
    nc = NodeCases(tmp_path)
    arr = smooth_image(rng, 13, 21, 3)
    for o in range(2, 9):
        ref = np.asarray(Image.fromarray(arr).transpose(TRANSPOSE[o]))
        nc.add({"op": "transpose", "width": 21, "height": 13, "mode": "RGB", "orientation": o, "inverse": False}, ref, arr)
        nc.add({"op": "transpose", "width": ref.shape[1], "height": ref.shape[0], "mode": "RGB", "orientation": o,
                "inverse": True}, arr, ref)
    rgba = rng.integers(0, 256, (64, 64, 4), dtype=np.uint8)
    rgba[:8, :, 3] = 0
    rgba[8:16, :, 3] = 255
    ref = np.asarray(to_rgb(Image.fromarray(rgba, "RGBA")))
    nc.add({"op": "rgbaToRgb", "width": 64, "height": 64}, ref, rgba)
    for ref, res, out, info in nc.run():
        assert out is not None and (out == ref).all(), info


# --------------------------------------------------------------------------- load_crop


def _random_bbox(rng, uw, uh):
    r = rng.random()
    if r < 0.1:
        return None
    if r < 0.15:
        return [float("nan")] * 4
    x0, y0 = rng.uniform(-0.15 * uw, 0.85 * uw), rng.uniform(-0.15 * uh, 0.85 * uh)
    box = [float(x0), float(y0), float(x0 + rng.uniform(0.5, uw)), float(y0 + rng.uniform(0.5, uh))]
    if rng.random() < 0.25:
        box = [float(round(v)) for v in box]
    if rng.random() < 0.03:  # inverted / zero-area / outside: the same ImageError reason
        box = [[5.0, 5.0, 1.0, 9.0], [3.0, 3.0, 3.0, 9.0], [uw + 5.0, 1.0, uw + 9.0, 4.0]][int(rng.integers(3))]
    return box


def test_crop_resize_is_load_crop(tmp_path):
    """cropResize on the upright decoded pixels == load_crop on the file, EXIF orientations included."""
    rng = np.random.default_rng(11)
    nc = NodeCases(tmp_path)
    n_err = 0
    for i in range(260):
        w, h = int(rng.integers(6, 420)), int(rng.integers(6, 420))
        o = int(rng.choice([1, 1, 1, 2, 3, 4, 5, 6, 7, 8]))
        path = tmp_path / f"img{i}.png"  # lossless, so both sides start from the same pixels
        ex = Image.Exif()
        if o != 1:
            ex[0x0112] = o
        if rng.random() < 0.15:  # transparency: to_rgb lays it on white
            arr = smooth_image(rng, h, w, 4)
            arr[..., 3] = np.where(rng.random((h, w)) < 0.5, 255, arr[..., 3])
            Image.fromarray(arr, "RGBA").save(path, exif=ex.tobytes())
        else:
            Image.fromarray(smooth_image(rng, h, w, 3)).save(path, exif=ex.tobytes())
        with Image.open(path) as im:
            assert im.getexif().get(0x0112, 1) == o
            upright = np.asarray(ImageOps.exif_transpose(im).convert("RGBA"))
        uh, uw = upright.shape[:2]
        bbox = _random_bbox(rng, uw, uh)
        params = {"size": int(rng.choice([1, 7, 32, 96, 160, 224, 260, 299])), "margin": float(rng.choice([0.0, 0.0, 0.1, 0.25, 0.6])),
                  "square": bool(rng.random() < 0.5), "interpolation": str(rng.choice(["bilinear", "bicubic", "bicubic", "nearest", "box", "lanczos"]))}
        try:
            ref = load_crop(path, bbox, size=params["size"], margin=params["margin"], square=params["square"], resample=params["interpolation"])
        except ImageError as e:
            ref = e
            n_err += 1
        js_bbox = None if bbox is None else [None if v != v else v for v in bbox]  # NaN -> null in JSON
        nc.add({"op": "cropResize", "width": uw, "height": uh, "bbox": js_bbox, "params": {**params, "orientation": o}}, ref, upright,
               info=(o, w, h, bbox, params))
        nc.add({"op": "orientation", "input": str(path)}, o, None, info=path.name)
    identical = 0
    for ref, res, out, info in nc.run():
        if isinstance(ref, int):  # the EXIF orientation as exif.mjs reads it
            assert res["orientation"] == ref, info
        elif isinstance(ref, ImageError):
            assert res.get("reason") == ref.reason, (info, res, ref)
        else:
            assert "error" not in res, (info, res)
            d = _diff(out, ref)
            assert d.max() == 0 or (info[4]["interpolation"] not in EXACT and d.max() <= 1), (info, int(d.max()))
            identical += d.max() == 0
    assert n_err >= 1  # the error cases were exercised
    print(f"\nload_crop: {identical}/{260 - n_err} crops bit-identical, {n_err} errors with the same reason")


def test_expand_box_is_the_same_arithmetic(tmp_path):
    rng = np.random.default_rng(17)
    nc = NodeCases(tmp_path)
    for _ in range(500):
        W, H = int(rng.integers(1, 5000)), int(rng.integers(1, 5000))
        bbox = _random_bbox(rng, W, H)
        margin, square = float(rng.choice([0.0, 0.05, 0.1, 1 / 3, 0.5, 2.0])), bool(rng.random() < 0.5)
        try:
            ref = list(expand_box(bbox, (W, H), margin, square))
        except ImageError as e:
            ref = e.reason
        js_bbox = None if bbox is None else [None if v != v else v for v in bbox]
        nc.add({"op": "expandBox", "bbox": js_bbox, "size": [W, H], "margin": margin, "square": square}, ref, None)
    for ref, res, _, info in nc.run():
        if isinstance(ref, str):
            assert res.get("reason") == ref, (info, res)
        else:
            assert res["box"] == ref, (info, res)  # the same doubles, not just close


def test_jpeg_draft_emulation_follows_load_crops_reduced_scale_arithmetic(tmp_path):
    """cropResize(jpegDraft) == load_crop's reduced-scale path with Image.reduce as the decoder.

    Sizes not divisible by the scale (a non-integer W / ceil(W / s)), every orientation. The
    reference helper is checked against load_crop itself where they must agree (scale 1).
    """
    rng = np.random.default_rng(31)
    nc = NodeCases(tmp_path)
    scales = []
    for i in range(80):
        w, h = int(rng.integers(40, 700)), int(rng.integers(40, 700))
        o = int(rng.integers(1, 9))
        path = tmp_path / f"big{i}.png"
        ex = Image.Exif()
        if o != 1:
            ex[0x0112] = o
        Image.fromarray(smooth_image(rng, h, w, 3)).save(path, exif=ex.tobytes())
        with Image.open(path) as im:
            upright = np.asarray(ImageOps.exif_transpose(im).convert("RGBA"))
        uh, uw = upright.shape[:2]
        bbox = None if rng.random() < 0.3 else [float(rng.uniform(0, uw / 3)), float(rng.uniform(0, uh / 3)),
                                               float(rng.uniform(uw / 2, uw)), float(rng.uniform(uh / 2, uh))]
        p = {"size": int(rng.choice([16, 24, 48, 96])), "margin": float(rng.choice([0.0, 0.1])), "square": bool(rng.random() < 0.5),
             "interpolation": str(rng.choice(["bilinear", "bicubic"]))}
        s = draft_scale(path, bbox, p["size"], p["margin"], p["square"], any_format=True)
        scales.append(s)
        ref = load_crop_reduced(path, bbox, p["size"], p["margin"], p["square"], p["interpolation"], s)
        if i < 10:  # the helper is load_crop where no reduction happens
            ref1 = load_crop_reduced(path, bbox, p["size"], p["margin"], p["square"], p["interpolation"], 1)
            assert (ref1 == load_crop(path, bbox, size=p["size"], margin=p["margin"], square=p["square"], resample=p["interpolation"])).all()
        nc.add({"op": "cropResize", "width": uw, "height": uh, "bbox": bbox, "params": {**p, "orientation": o, "jpegDraft": True}},
               ref, upright, info=(o, w, h, s, p))
    for ref, res, out, info in nc.run():
        assert res.get("draftScale") == info[3], (info, res)
        assert (out == ref).all(), (info, int(_diff(out, ref).max()))
    assert {2, 4, 8} <= set(scales)
