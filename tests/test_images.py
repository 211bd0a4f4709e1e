"""skinage.data.images: modes, EXIF, bad files, bbox crops, reduced-scale JPEG decoding, crop cache."""

from __future__ import annotations

import os
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from skinage.data import images as I
from skinage.data.images import CropCache, ImageError, expand_box, load_crop, open_image, probe_image


def _texture(w, h, seed=0):
    """A photo-like picture: smooth gradients plus fine noise (so JPEG has real detail)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([
        128 + 80 * np.sin(xx / 97.0) * np.cos(yy / 131.0),
        128 + 60 * np.cos(xx / 53.0 + yy / 211.0),
        90 + 0.05 * xx + 0.03 * yy,
    ], axis=-1)
    base += rng.normal(0, 6, base.shape)
    return np.clip(base, 0, 255).astype(np.uint8)


def test_import_without_torch():
    # the ONNX predict path uses images.py with numpy + Pillow only
    code = "import sys, skinage.data.images; assert 'torch' not in sys.modules, 'torch imported'"
    import subprocess

    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pillow(tmp_path, orientation):
    arr = _texture(90, 60, seed=orientation)
    p = tmp_path / f"o{orientation}.jpg"
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(arr).save(p, exif=exif, quality=95)
    ref = ImageOps.exif_transpose(Image.open(p)).convert("RGB")
    got = open_image(p)
    assert got.size == ref.size
    assert np.array_equal(np.asarray(got), np.asarray(ref))
    info = probe_image(p)
    assert (info.width, info.height) == ref.size and info.orientation == orientation
    # a bbox in upright coordinates crops the same region on the fast and the reference path
    W, H = ref.size
    box = (W * 0.2, H * 0.1, W * 0.8, H * 0.6)
    expect = np.asarray(ref.resize((32, 32), Image.Resampling.BILINEAR, box=box)).astype(int)
    for fast in (True, False):
        crop = load_crop(p, box, size=32, fast=fast).astype(int)
        assert np.abs(crop - expect).mean() < 2.0, (orientation, fast)


def test_exif_rotated_crop_content(tmp_path):
    # stored 40 wide x 60 tall, left half red, right half blue; orientation 6 = rotate 90 cw to view
    arr = np.zeros((60, 40, 3), np.uint8)
    arr[:, :20] = (255, 0, 0)
    arr[:, 20:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6
    p = tmp_path / "rot.png"
    Image.fromarray(arr).save(p, exif=exif)
    up = open_image(p)
    assert up.size == (60, 40)  # upright: 60 wide, 40 tall; red on top after a clockwise turn
    top = load_crop(p, (5, 2, 55, 15), size=8)
    bottom = load_crop(p, (5, 25, 55, 38), size=8)
    assert top[..., 0].mean() > 200 and top[..., 2].mean() < 50
    assert bottom[..., 2].mean() > 200 and bottom[..., 0].mean() < 50


def test_modes_to_rgb(tmp_path):
    # CMYK JPEG (pure red = C0 M255 Y255 K0)
    cmyk = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (32, 24), (0, 255, 255, 0)).save(cmyk, quality=95)
    assert Image.open(cmyk).mode == "CMYK"
    px = np.asarray(open_image(cmyk)).reshape(-1, 3).mean(0)
    assert px[0] > 230 and px[1] < 30 and px[2] < 30
    # 16-bit grayscale PNG: 40000/65535 of full scale -> about 156, not clipped to 255
    g16 = tmp_path / "g16.png"
    Image.fromarray(np.full((24, 32), 40000, dtype=np.uint16)).save(g16)
    assert Image.open(g16).mode.startswith("I")
    v = np.asarray(open_image(g16))
    assert v.shape == (24, 32, 3) and abs(int(v[0, 0, 0]) - round(40000 / 257)) <= 1
    # L, LA, P with transparency, RGBA (transparent pixels laid on white)
    Image.new("L", (8, 8), 77).save(tmp_path / "l.png")
    assert tuple(np.asarray(open_image(tmp_path / "l.png"))[0, 0]) == (77, 77, 77)
    Image.new("LA", (8, 8), (0, 0)).save(tmp_path / "la.png")
    assert tuple(np.asarray(open_image(tmp_path / "la.png"))[0, 0]) == (255, 255, 255)
    rgba = Image.new("RGBA", (8, 8), (10, 200, 30, 255))
    rgba.putpixel((0, 0), (0, 0, 0, 0))
    rgba.save(tmp_path / "rgba.png")
    a = np.asarray(open_image(tmp_path / "rgba.png"))
    assert tuple(a[0, 0]) == (255, 255, 255) and tuple(a[1, 1]) == (10, 200, 30)
    p = Image.new("P", (8, 8), 1)
    p.putpalette([0, 0, 0, 250, 5, 5] + [0] * 762)
    p.save(tmp_path / "p.png", transparency=0)
    assert tuple(np.asarray(open_image(tmp_path / "p.png"))[0, 0]) == (250, 5, 5)
    for name in ("cmyk.jpg", "g16.png", "l.png", "la.png", "rgba.png", "p.png"):
        c = load_crop(tmp_path / name, None, size=16)
        assert c.shape == (16, 16, 3) and c.dtype == np.uint8


def _png_with_size(path: Path, w: int, h: int):
    """A tiny valid PNG whose header claims w x h (a decompression bomb needs no big file)."""
    buf = Path(path)
    Image.new("L", (1, 1)).save(buf)
    data = bytearray(buf.read_bytes())
    ihdr = data.index(b"IHDR")
    data[ihdr + 4: ihdr + 12] = struct.pack(">II", w, h)
    crc = zlib.crc32(bytes(data[ihdr: ihdr + 17])) & 0xFFFFFFFF
    data[ihdr + 17: ihdr + 21] = struct.pack(">I", crc)
    buf.write_bytes(bytes(data))


def test_bad_files(tmp_path):
    good = tmp_path / "good.jpg"
    Image.fromarray(_texture(200, 150)).save(good, quality=90)
    data = good.read_bytes()
    cases = {
        "missing file": tmp_path / "nope.jpg",
        "zero-byte file": tmp_path / "zero.jpg",
        "non-image": tmp_path / "text.jpg",
        "truncated": tmp_path / "trunc.jpg",
        "decompression bomb": tmp_path / "bomb.png",
    }
    cases["zero-byte file"].write_bytes(b"")
    cases["non-image"].write_text("this is not a picture", encoding="utf-8")
    cases["truncated"].write_bytes(data[: len(data) // 2])
    _png_with_size(cases["decompression bomb"], 20000, 20000)
    for reason, path in cases.items():
        for fn in (probe_image, open_image, lambda p: load_crop(p, None, 32)):
            with pytest.raises(ImageError) as e:
                fn(path)
            assert e.value.reason == reason, (reason, fn, e.value)
    # a corrupt JPEG: the header is fine, the frame header is garbage
    bad = bytearray(data)
    sof, _ = I._jpeg_sof(bytes(bad))
    bad[sof - 1: sof + 8] = b"\x00" * 9
    (tmp_path / "corrupt.jpg").write_bytes(bytes(bad))
    with pytest.raises(ImageError) as e:
        probe_image(tmp_path / "corrupt.jpg")
    assert e.value.reason == "corrupt"


def test_korean_file_name(tmp_path):
    p = tmp_path / "이마_주름" / "홍길동_정면.jpg"
    p.parent.mkdir()
    Image.fromarray(_texture(64, 48)).save(p)
    assert probe_image(p).width == 64
    assert load_crop(p, (8, 8, 40, 30), 16).shape == (16, 16, 3)


def test_expand_box():
    assert expand_box((10, 10, 30, 20), (100, 100), margin=0.5) == (0.0, 5.0, 40.0, 25.0)
    # square grows the short side around the centre
    assert expand_box((40, 45, 60, 55), (100, 100), square=True) == (40.0, 40.0, 60.0, 60.0)
    # near the bottom edge: shifted inside, still square
    assert expand_box((10, 90, 50, 100), (100, 100), square=True) == (10.0, 60.0, 50.0, 100.0)
    # clamped when partly outside
    assert expand_box((-10, -5, 50, 40), (100, 100)) == (0.0, 0.0, 50.0, 40.0)
    for box, reason in [((30, 10, 10, 20), "bbox inverted"), ((10, 10, 10, 20), "bbox zero-area"),
                        ((150, 150, 200, 200), "bbox outside image")]:
        with pytest.raises(ImageError) as e:
            expand_box(box, (100, 100))
        assert e.value.reason == reason
    assert expand_box([float("nan")] * 4, (64, 48)) == (0.0, 0.0, 64.0, 48.0)


def test_pick_scale_keeps_crop_at_least_output_size():
    # the forehead case: a 1056x453 box at 224 px may be decoded at 1/2, not 1/4
    assert I._pick_scale(1056, 453, 224) == 2
    assert I._pick_scale(1056, 1056, 224) == 4
    assert I._pick_scale(2000, 1900, 224) == 8
    assert I._pick_scale(300, 300, 224) == 1


def test_draft_decode_matches_full_decode(tmp_path):
    # a large JPEG cut to a forehead-like box: fast (1/2 scale, rows limited) vs full decode
    arr = _texture(1068, 1608, seed=3)
    p = tmp_path / "big.jpg"
    Image.fromarray(arr).save(p, quality=92)
    box = (270, 330, 798, 557)  # 528 x 227: decoded at 1/2 scale
    assert I._pick_scale(box[2] - box[0], box[3] - box[1], 112) == 2
    fast = load_crop(p, box, size=112).astype(int)
    full = load_crop(p, box, size=112, fast=False).astype(int)
    ref = np.asarray(open_image(p).resize((112, 112), Image.Resampling.BILINEAR, box=box)).astype(int)
    assert np.array_equal(full, ref)
    diff = np.abs(fast - full)
    assert diff.mean() < 2.0 and np.percentile(diff, 99) < 12, (diff.mean(), diff.max())
    # and the row-limited stream decodes the same pixels as the full one, for the rows it has
    cut = I._jpeg_rows_only(p.read_bytes(), 640)
    import io

    top = np.asarray(Image.open(io.BytesIO(cut)).convert("RGB"))
    assert top.shape == (640, 1068, 3)
    # (the very last rows differ by chroma upsampling at the cut; load_crop decodes slack rows)
    assert np.array_equal(top[:-8], np.asarray(Image.open(p).convert("RGB"))[:632])


def test_progressive_and_bottom_boxes(tmp_path):
    arr = _texture(800, 600, seed=5)
    prog = tmp_path / "prog.jpg"
    Image.fromarray(arr).save(prog, quality=90, progressive=True)
    assert I._jpeg_rows_only(prog.read_bytes(), 100) is None  # not row-limited: still correct
    for box in [(0, 0, 800, 600), (100, 450, 700, 600), (600, 0, 800, 100)]:
        a = load_crop(prog, box, 64).astype(int)
        b = load_crop(prog, box, 64, fast=False).astype(int)
        assert np.abs(a - b).mean() < 2.5
    base = tmp_path / "base.jpg"
    Image.fromarray(arr).save(base, quality=90)
    a = load_crop(base, (100, 500, 700, 600), 64, margin=0.1).astype(int)
    b = load_crop(base, (100, 500, 700, 600), 64, margin=0.1, fast=False).astype(int)
    assert np.abs(a - b).mean() < 2.5


def test_crop_cache_hit_and_invalidation(tmp_path):
    p = tmp_path / "a.jpg"
    Image.fromarray(_texture(300, 200)).save(p, quality=90)
    cache = CropCache(tmp_path / "crops")
    a = cache.get(p, (10, 20, 200, 120), 48)
    assert (cache.misses, cache.hits) == (1, 0)
    files = list((tmp_path / "crops").glob("*/*.npy"))
    assert len(files) == 1 and not list((tmp_path / "crops").glob("*/*.tmp"))
    b = cache.get(p, (10, 20, 200, 120), 48)
    assert (cache.misses, cache.hits) == (1, 1) and np.array_equal(a, b)
    assert np.array_equal(a, load_crop(p, (10, 20, 200, 120), 48))
    # a different size, margin or box is another entry
    cache.get(p, (10, 20, 200, 120), 32)
    cache.get(p, (10, 20, 200, 120), 48, margin=0.1)
    assert cache.misses == 3
    # a new file at the same path (new mtime / size) is decoded again
    Image.fromarray(_texture(300, 200, seed=9)).save(p, quality=80)
    os.utime(p, ns=(10**18, 10**18))
    c = cache.get(p, (10, 20, 200, 120), 48)
    assert cache.misses == 4 and not np.array_equal(a, c)
    # default root is under skinage.utils.cache_dir()
    from skinage.utils import cache_dir

    assert CropCache().root == cache_dir() / "crops"
