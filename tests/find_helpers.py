"""Helpers for tests/test_find.py: .tem landmark files, composed photos, EXIF-rotated copies."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

# The inverse of each EXIF orientation's "make upright" transpose: raw pixels = upright.transpose(INVERSE[o]).
INVERSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}

# Points of the 189-point Psychomorph template of the London set (from the .tem line definitions):
PUPILS = (0, 1)
UPPER_BROWS = tuple(range(71, 83))  # lines 71-76 (image-left brow) and 77-82 (image-right brow), upper contours
HAIRLINE = (109, *range(134, 145))  # line from the left temple over the hairline


def read_tem(path: Path) -> np.ndarray:
    """The points of a Psychomorph/WebMorph ``.tem`` file: first line the count, then one ``x y`` per line."""
    lines = Path(path).read_text().split("\n")
    n = int(lines[0].strip())
    pts = np.array([[float(v) for v in lines[1 + i].split()[:2]] for i in range(n)])
    if pts.shape != (n, 2):
        raise ValueError(f"{path}: expected {n} points")
    return pts


def side_by_side(*images: Image.Image, gap: int = 0, fill=(128, 128, 128)) -> Image.Image:
    """Images pasted left to right, tops aligned, on a canvas as tall as the tallest."""
    W = sum(im.width for im in images) + gap * (len(images) - 1)
    H = max(im.height for im in images)
    canvas = Image.new("RGB", (W, H), fill)
    x = 0
    for im in images:
        canvas.paste(im, (x, 0))
        x += im.width + gap
    return canvas


def save_with_orientation(upright: Image.Image, orientation: int, path: Path, quality: int = 95) -> Path:
    """Write the pixels a camera would store for ``upright`` with EXIF Orientation ``orientation`` (JPEG)."""
    raw = upright.transpose(INVERSE[orientation]) if orientation in INVERSE else upright
    exif = Image.Exif()
    exif[0x0112] = orientation
    raw.save(path, "JPEG", quality=quality, exif=exif.tobytes())
    return path


def jpeg_bytes(image: Image.Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=quality)
    return buf.getvalue()
