"""Robust image loading, bbox crops at training size, and a decoded-crop cache.

Every later step (ingest checks, training, evaluation, torch-free ONNX prediction) reads images
through this module, so it depends on numpy and Pillow only (never torch).

* :func:`open_image` -- the whole image in RGB, EXIF orientation applied, any mode converted
  (CMYK, L, LA, P, RGBA, 16-bit ``I;16`` / ``I`` / ``F``), decompression bombs refused.
* :func:`load_crop` -- a ``(size, size, 3)`` uint8 crop of a bbox (optional margin and square
  expansion, clamped to the image). Large JPEGs are decoded at reduced scale (``draft``: 1/2,
  1/4 or 1/8, never below the output size) and only down to the last row the crop needs, so a
  2136x3216 photo cut to its forehead box costs a fraction of a full decode.
* :func:`probe_image` -- a cheap but complete check that a file decodes (used by ingest).
* :class:`CropCache` -- decoded crops stored as ``.npy`` under ``cache_dir()/crops``, keyed by
  file path, mtime, file size, bbox, size, margin, square and resampling filter.

Coordinates are always pixels of the EXIF-rotated image, ``(x0, y0, x1, y1)`` with ``x1``/``y1``
exclusive (continuous box edges).

>>> import tempfile, os, numpy as np
>>> from PIL import Image
>>> p = os.path.join(tempfile.mkdtemp(), "x.jpg")
>>> Image.new("RGB", (320, 200), (200, 30, 30)).save(p)
>>> load_crop(p, (10, 10, 110, 60), size=32).shape
(32, 32, 3)
>>> probe_image(p)
ImageInfo(width=320, height=200, format='JPEG', mode='RGB', orientation=1)
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Tuple

import numpy as np
from PIL import Image, ImageFile

__all__ = [
    "ImageError",
    "ImageInfo",
    "IMAGE_EXTENSIONS",
    "MAX_PIXELS",
    "open_image",
    "probe_image",
    "load_crop",
    "expand_box",
    "to_rgb",
    "CropCache",
]

#: File name endings taken as images when scanning folders.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")

#: Images with more pixels than this are refused as decompression bombs (150 MP covers
#: 108 MP phone cameras; Pillow's own hard limit is about 179 MP).
MAX_PIXELS = 150_000_000

_RESAMPLE = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
}

# EXIF orientation -> the transpose that makes the image upright (same table as
# PIL.ImageOps.exif_transpose).
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


class ImageError(Exception):
    """An image that cannot be used; ``reason`` is a short code for reports.

    Reasons: ``missing file``, ``zero-byte file``, ``non-image``, ``corrupt``, ``truncated``,
    ``decompression bomb``, ``unsupported mode``, ``bbox outside image``, ``bbox inverted``,
    ``bbox zero-area``.
    """

    def __init__(self, reason: str, detail: str = "", path: object = None):
        self.reason = reason
        self.detail = detail
        self.path = path
        self.message = reason if not detail else f"{reason}: {detail}"  # without the path
        super().__init__(f"{path}: {self.message}" if path is not None else self.message)


@dataclass(frozen=True)
class ImageInfo:
    """Size (after EXIF rotation), format, mode and EXIF orientation of a checked image."""

    width: int
    height: int
    format: Optional[str]
    mode: str
    orientation: int


# --------------------------------------------------------------------------- opening


_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG", b"GIF8", b"BM", b"II*\x00", b"MM\x00*", b"RIFF")


def _read_bytes(path) -> bytes:
    if isinstance(path, (bytes, bytearray, memoryview)):  # an upload held in memory
        if not len(path):
            raise ImageError("zero-byte file", "the upload is empty")
        return bytes(path)
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise ImageError("missing file", "no such file", path) from None
    except IsADirectoryError:
        raise ImageError("non-image", "is a directory", path) from None
    except OSError as e:
        raise ImageError("missing file", f"cannot read: {e}", path) from None
    if not data:
        raise ImageError("zero-byte file", "the file is empty", path)
    return data


def _name(path):
    """How errors name an image: its path, or ``<upload>`` for bytes held in memory."""
    return "<upload>" if isinstance(path, (bytes, bytearray, memoryview)) else path


def _open_bytes(data: bytes, path) -> Image.Image:
    """PIL-open (header only) with the decompression-bomb guard."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as e:
        raise ImageError("decompression bomb", str(e), path) from None
    except Image.UnidentifiedImageError:
        if data.startswith(_SIGNATURES) or data[8:12] == b"WEBP":
            raise ImageError("corrupt", "an image signature, but the header cannot be read", path) from None
        raise ImageError("non-image", "not an image format Pillow can read", path) from None
    except (OSError, SyntaxError, ValueError, struct.error, EOFError) as e:
        reason = "truncated" if "truncat" in str(e).lower() or isinstance(e, EOFError) else "corrupt"
        raise ImageError(reason, f"cannot read the header: {e}", path) from None
    w, h = im.size
    if w <= 0 or h <= 0:
        raise ImageError("corrupt", f"image size {w}x{h}", path)
    if w * h > MAX_PIXELS:
        raise ImageError("decompression bomb", f"{w}x{h} = {w * h / 1e6:.0f} MP > {MAX_PIXELS / 1e6:.0f} MP", path)
    return im


def _orientation(im: Image.Image) -> int:
    try:
        o = int(im.getexif().get(0x0112, 1) or 1)
    except Exception:  # a broken EXIF block must not make the image unusable
        return 1
    return o if 1 <= o <= 8 else 1


def _load(im: Image.Image, path) -> None:
    """Decode pixels; map Pillow's errors to :class:`ImageError` reasons."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im.load()
    except Image.DecompressionBombError as e:
        raise ImageError("decompression bomb", str(e), path) from None
    except OSError as e:
        msg = str(e)
        if "truncat" in msg.lower() or "unexpected end" in msg.lower():
            raise ImageError("truncated", msg, path) from None
        raise ImageError("corrupt", msg, path) from None
    except (SyntaxError, ValueError, struct.error, EOFError, IndexError, TypeError) as e:
        raise ImageError("corrupt", f"{type(e).__name__}: {e}", path) from None


def to_rgb(im: Image.Image, background=(255, 255, 255)) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB.

    Transparent pixels are laid on ``background``; 16-bit and 32-bit integer images are scaled
    (not clipped) to 0-255; float images are taken as 0-1 when their maximum is <= 1.

    >>> to_rgb(Image.new("I;16", (2, 2), 65535)).getpixel((0, 0))
    (255, 255, 255)
    >>> to_rgb(Image.new("CMYK", (2, 2), (0, 255, 255, 0))).getpixel((0, 0))
    (255, 0, 0)
    """
    mode = im.mode
    if mode == "RGB":
        return im
    if mode == "P":
        im = im.convert("RGBA") if "transparency" in im.info else im.convert("RGB")
        mode = im.mode
        if mode == "RGB":
            return im
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = im.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, tuple(background) + (255,))
        return Image.alpha_composite(bg, rgba).convert("RGB")
    if mode.startswith("I;16") or mode in ("I", "F"):
        arr = np.asarray(im)
        if arr.ndim == 3:  # unusual multi-band high bit depth
            arr = arr[..., :3]
        arr = arr.astype(np.float64)
        if mode == "F":
            hi = 1.0 if np.nanmax(arr) <= 1.0 else 255.0
            arr = arr / hi * 255.0
        elif mode.startswith("I;16") or np.nanmax(arr) > 255:
            arr = arr / 257.0  # 0..65535 -> 0..255
        arr = np.clip(np.nan_to_num(arr), 0, 255).round().astype(np.uint8)
        if arr.ndim == 2:
            arr = np.stack([arr] * 3, axis=-1)
        return Image.fromarray(arr, "RGB")
    try:
        return im.convert("RGB")
    except (ValueError, OSError) as e:
        raise ImageError("unsupported mode", f"cannot convert mode {mode} to RGB: {e}") from None


def open_image(path, draft: int = 0) -> Image.Image:
    """The whole image as an upright 8-bit RGB ``PIL.Image``; ``info["full_size"]`` is its upright (W, H) on file.

    ``draft`` > 0: a JPEG is decoded reduced by the largest DCT factor (2, 4, 8) that keeps both sides at least
    ``draft`` px (Pillow's ``draft``: a fraction of the cost; the image is then smaller than ``full_size``).

    Raises
    ------
    ImageError
        with ``reason`` set (missing file, zero-byte file, non-image, corrupt, truncated,
        decompression bomb, unsupported mode).
    """
    data = _read_bytes(path)
    path = _name(path)
    im = _open_bytes(data, path)
    orient = _orientation(im)
    full = im.size[::-1] if orient in (5, 6, 7, 8) else im.size
    if draft > 0 and im.format == "JPEG":
        im.draft("RGB", (draft, draft))
    _load(im, path)
    try:
        rgb = to_rgb(im)
    except ImageError as e:
        raise ImageError(e.reason, e.detail, path) from None
    if orient in _TRANSPOSE:
        rgb = rgb.transpose(_TRANSPOSE[orient])
    rgb.info["full_size"] = full
    return rgb


def probe_image(path) -> ImageInfo:
    """Check that ``path`` decodes completely, cheaply; return its upright size.

    JPEGs are decoded at 1/8 scale (the entropy-coded data is still read to the end, so a
    truncated file is caught); other formats are decoded fully. Raises :class:`ImageError`.
    """
    data = _read_bytes(path)
    path = _name(path)
    im = _open_bytes(data, path)
    w, h = im.size
    fmt, mode = im.format, im.mode
    orient = _orientation(im)
    if fmt == "JPEG":
        try:
            im.draft(im.mode, (max(1, w // 8), max(1, h // 8)))
        except Exception:  # draft is only a speed-up
            pass
    _load(im, path)
    if orient in (5, 6, 7, 8):
        w, h = h, w
    return ImageInfo(width=w, height=h, format=fmt, mode=mode, orientation=orient)


# --------------------------------------------------------------------------- boxes


def expand_box(bbox, image_size: Tuple[int, int], margin: float = 0.0, square: bool = False):
    """The crop box for ``bbox`` in an image of ``image_size`` = (width, height).

    ``bbox`` is ``(x0, y0, x1, y1)`` or ``None`` / NaNs for the whole image. ``margin`` adds that
    fraction of the box's width and height on every side; ``square`` grows the shorter side
    around the centre to the longer one. The result is clamped to the image (a square box near
    an edge is shifted inside when it fits). Raises :class:`ImageError` for boxes that are
    inverted, of zero area, or entirely outside the image.

    >>> expand_box((10, 10, 30, 20), (100, 100), margin=0.5)
    (0.0, 5.0, 40.0, 25.0)
    >>> expand_box((10, 40, 30, 60), (100, 100), square=True)
    (10.0, 40.0, 30.0, 60.0)
    >>> expand_box((0, 0, 40, 10), (100, 100), square=True)
    (0.0, 0.0, 40.0, 40.0)
    >>> expand_box(None, (64, 48))
    (0.0, 0.0, 64.0, 48.0)
    """
    W, H = float(image_size[0]), float(image_size[1])
    if bbox is None or any(v is None or (isinstance(v, float) and math.isnan(v)) for v in bbox):
        x0, y0, x1, y1 = 0.0, 0.0, W, H
        if not square and not margin:
            return (x0, y0, x1, y1)
    else:
        x0, y0, x1, y1 = (float(v) for v in bbox)
        if x1 < x0 or y1 < y0:
            raise ImageError("bbox inverted", f"{(x0, y0, x1, y1)} has x1 < x0 or y1 < y0")
        if x1 == x0 or y1 == y0:
            raise ImageError("bbox zero-area", f"{(x0, y0, x1, y1)}")
        if x1 <= 0 or y1 <= 0 or x0 >= W or y0 >= H:
            raise ImageError("bbox outside image", f"{(x0, y0, x1, y1)} vs image {int(W)}x{int(H)}")
    bw, bh = x1 - x0, y1 - y0
    if margin:
        x0, x1 = x0 - margin * bw, x1 + margin * bw
        y0, y1 = y0 - margin * bh, y1 + margin * bh
    if square:
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        side = min(max(x1 - x0, y1 - y0), W, H)
        x0, x1 = cx - side / 2, cx + side / 2
        y0, y1 = cy - side / 2, cy + side / 2
        # shift inside the image rather than cut, so the box stays square
        if x0 < 0:
            x0, x1 = 0.0, x1 - x0
        if x1 > W:
            x0, x1 = x0 - (x1 - W), W
        if y0 < 0:
            y0, y1 = 0.0, y1 - y0
        if y1 > H:
            y0, y1 = y0 - (y1 - H), H
    x0, y0 = max(0.0, x0), max(0.0, y0)
    x1, y1 = min(W, x1), min(H, y1)
    if x1 - x0 <= 0 or y1 - y0 <= 0:
        raise ImageError("bbox outside image", f"nothing of the box lies inside the {int(W)}x{int(H)} image")
    return (x0, y0, x1, y1)


def _box_to_raw(box, orient: int, W: int, H: int):
    """Map a box in upright coordinates to the stored (pre-EXIF-rotation) image of size W x H."""
    x0, y0, x1, y1 = box
    if orient == 2:
        r = (W - x1, y0, W - x0, y1)
    elif orient == 3:
        r = (W - x1, H - y1, W - x0, H - y0)
    elif orient == 4:
        r = (x0, H - y1, x1, H - y0)
    elif orient == 5:
        r = (y0, x0, y1, x1)
    elif orient == 6:
        r = (y0, H - x1, y1, H - x0)
    elif orient == 7:
        r = (W - y1, H - x1, W - y0, H - x0)
    elif orient == 8:
        r = (W - y1, x0, W - y0, x1)
    else:
        r = (x0, y0, x1, y1)
    return tuple(float(v) for v in r)


# --------------------------------------------------------------------------- fast JPEG path


def _jpeg_sof(data: bytes):
    """(offset of the SOF height field, SOF marker) of a JPEG, or (None, None)."""
    i, n = 2, len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            return None, None
        m = data[i + 1]
        if m == 0xFF:  # fill byte
            i += 1
            continue
        if m in (0x01,) or 0xD0 <= m <= 0xD7:  # standalone markers
            i += 2
            continue
        if m in (0xD9, 0xDA):  # EOI / SOS before any SOF
            return None, None
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if 0xC0 <= m <= 0xCF and m not in (0xC4, 0xC8, 0xCC):
            return (i + 5, m) if i + 7 <= n else (None, None)
        i += 2 + length
    return None, None


def _jpeg_rows_only(data: bytes, rows: int) -> Optional[bytes]:
    """A copy of a baseline JPEG whose frame header says it is only ``rows`` tall.

    libjpeg then decodes just the first ``rows`` rows and skips the rest of the entropy-coded
    data: decoding stops at the last row the crop needs. Only for sequential Huffman JPEGs
    (SOF0 / SOF1); ``None`` otherwise.
    """
    off, marker = _jpeg_sof(data)
    if off is None or marker not in (0xC0, 0xC1):
        return None
    (height,) = struct.unpack(">H", data[off : off + 2])
    if height == 0 or rows >= height:
        return None
    b = bytearray(data)
    b[off : off + 2] = struct.pack(">H", rows)
    return bytes(b)


def _pick_scale(crop_w: float, crop_h: float, size: int) -> int:
    """The largest JPEG DCT scale (1, 2, 4, 8) that keeps the crop at least ``size`` px."""
    for s in (8, 4, 2):
        if crop_w / s >= size and crop_h / s >= size:
            return s
    return 1


def load_crop(
    path,
    bbox,
    size: int,
    margin: float = 0.0,
    square: bool = False,
    resample: str = "bilinear",
    fast: bool = True,
) -> np.ndarray:
    """Crop ``bbox`` (upright pixel coordinates; ``None`` = whole image) and resize to ``size``.

    Parameters
    ----------
    path : str, Path or bytes
        The image file, or its content.
    bbox : (x0, y0, x1, y1) or None
    size : int
        Output side; the result is ``(size, size, 3)`` uint8 RGB (a non-square box is stretched,
        unless ``square`` is set).
    margin : float
        Fraction of the box's width / height added on every side before cropping.
    square : bool
        Grow the box to a square (around its centre, kept inside the image).
    resample : str
        ``bilinear`` (default), ``bicubic``, ``lanczos``, ``nearest`` or ``box``.
    fast : bool
        Use reduced-scale JPEG decoding (never below ``size``) and stop decoding after the last
        row the crop needs. ``False`` decodes the full image (reference path).

    Returns
    -------
    numpy.ndarray
        ``(size, size, 3)`` uint8.

    Raises
    ------
    ImageError
        for unreadable files and for bboxes that are inverted, empty or outside the image.
    """
    if resample not in _RESAMPLE:
        raise ValueError(f"resample must be one of {', '.join(_RESAMPLE)}, not {resample!r}")
    size = int(size)
    data = _read_bytes(path)
    path = _name(path)
    im = _open_bytes(data, path)
    orient = _orientation(im)
    W, H = im.size
    up = (H, W) if orient in (5, 6, 7, 8) else (W, H)
    try:
        box = expand_box(bbox, up, margin, square)
    except ImageError as e:
        raise ImageError(e.reason, e.detail, path) from None
    rbox = _box_to_raw(box, orient, W, H)
    scale = 1
    if fast and im.format == "JPEG":
        s = _pick_scale(rbox[2] - rbox[0], rbox[3] - rbox[1], size)
        # rows needed: the box bottom plus a little slack for the resampling filter, rounded up
        # to a whole MCU row (16 px) times the scale
        unit = 16 * s
        rows = int(math.ceil((rbox[3] + 4 * s) / unit) * unit)
        if rows < H:
            cut = _jpeg_rows_only(data, rows)
            if cut is not None:
                im = _open_bytes(cut, path)
        if s > 1:
            w_, h_ = im.size
            try:
                im.draft(im.mode, (max(1, w_ // s), max(1, h_ // s)))
            except Exception:
                pass
        scale = W / im.size[0]
    _load(im, path)
    sbox = tuple(v / scale for v in rbox)
    # crop a little more than needed (filter support), convert that only, then resize
    ix0 = max(0, int(math.floor(sbox[0])) - 2)
    iy0 = max(0, int(math.floor(sbox[1])) - 2)
    ix1 = min(im.size[0], int(math.ceil(sbox[2])) + 2)
    iy1 = min(im.size[1], int(math.ceil(sbox[3])) + 2)
    part = im.crop((ix0, iy0, ix1, iy1))
    try:
        part = to_rgb(part)
    except ImageError as e:
        raise ImageError(e.reason, e.detail, path) from None
    rel = (sbox[0] - ix0, sbox[1] - iy0, min(sbox[2], ix1) - ix0, min(sbox[3], iy1) - iy0)
    out = part.resize((size, size), _RESAMPLE[resample], box=rel, reducing_gap=None if fast is False else 3.0)
    if orient in _TRANSPOSE:
        out = out.transpose(_TRANSPOSE[orient])
    arr = np.asarray(out, dtype=np.uint8)
    return np.ascontiguousarray(arr)


# --------------------------------------------------------------------------- cache


def _norm_bbox(bbox):
    if bbox is None:
        return None
    vals = []
    for v in bbox:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return None
        vals.append(round(float(v), 3))
    return tuple(vals)


class CropCache:
    """Decoded crops at training size, on disk, so later epochs and runs decode nothing.

    One ``.npy`` file per crop under ``root`` (default ``skinage.utils.cache_dir()/crops``),
    named by a hash of (absolute path, mtime, file size, bbox, size, margin, square, resample):
    editing or replacing an image makes a new key. Files are written atomically, so parallel
    data-loader workers can share the cache.

    >>> import tempfile, os
    >>> from PIL import Image
    >>> d = tempfile.mkdtemp(); p = os.path.join(d, "a.png")
    >>> Image.new("RGB", (40, 30), (10, 20, 30)).save(p)
    >>> cache = CropCache(os.path.join(d, "crops"))
    >>> a = cache.get(p, None, 16); b = cache.get(p, None, 16)
    >>> (cache.misses, cache.hits, a.shape, bool((a == b).all()))
    (1, 1, (16, 16, 3), True)
    """

    def __init__(self, root=None):
        if root is None:
            from ..utils import cache_dir

            root = cache_dir() / "crops"
        self.root = Path(root)
        self.hits = 0
        self.misses = 0

    def key(self, path, bbox, size: int, margin: float = 0.0, square: bool = False,
            resample: str = "bilinear") -> str:
        p = os.path.abspath(os.fspath(path))
        try:
            st = os.stat(p)
            stamp = (st.st_mtime_ns, st.st_size)
        except OSError:
            stamp = (None, None)
        raw = repr((p, stamp, _norm_bbox(bbox), int(size), round(float(margin), 6), bool(square), resample))
        return hashlib.sha1(raw.encode("utf-8")).hexdigest()

    def _file(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.npy"

    def get(self, path, bbox, size: int, margin: float = 0.0, square: bool = False,
            resample: str = "bilinear") -> np.ndarray:
        """The crop from the cache, or decoded with :func:`load_crop` and stored."""
        f = self._file(self.key(path, bbox, size, margin, square, resample))
        try:
            arr = np.load(f, allow_pickle=False)
            if arr.shape == (int(size), int(size), 3) and arr.dtype == np.uint8:
                self.hits += 1
                return arr
        except (OSError, ValueError, EOFError):
            pass
        arr = load_crop(path, bbox, size=size, margin=margin, square=square, resample=resample)
        self.misses += 1
        self._store(f, arr)
        return arr

    def _store(self, f: Path, arr: np.ndarray) -> None:
        try:
            f.parent.mkdir(parents=True, exist_ok=True)
            tmp = f.with_name(f"{f.stem}.{os.getpid()}.{id(arr)}.tmp")
            with open(tmp, "wb") as fh:
                np.save(fh, arr, allow_pickle=False)
            os.replace(tmp, f)
        except OSError:  # a read-only or full cache only costs speed
            try:
                tmp.unlink()  # type: ignore[has-type]
            except Exception:
                pass

    def clear(self) -> int:
        """Delete all cached crops; return how many files were removed."""
        n = 0
        if self.root.is_dir():
            for f in self.root.glob("*/*.npy"):
                f.unlink(missing_ok=True)
                n += 1
        return n
