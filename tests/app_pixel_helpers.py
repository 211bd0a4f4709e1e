"""Reference helpers for the page's pixel tests (test_app_pixels*.py), written from the EXIF
standard and from what load_crop is documented to do, not imported from its private parts."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from skinage.data.images import expand_box

#: EXIF orientation -> the transpose that makes the stored image upright
TRANSPOSE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
             5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
             8: Image.Transpose.ROTATE_90}
RESAMPLE = {"nearest": 0, "lanczos": 1, "bilinear": 2, "bicubic": 3, "box": 4, "hamming": 5}


def exif_orientation(path) -> int:
    with Image.open(path) as im:
        o = int(im.getexif().get(0x0112, 1) or 1)
    return o if 1 <= o <= 8 else 1


def upright_box_to_stored(box, o: int, W: int, H: int):
    """A box in upright coordinates -> coordinates of the stored image (W x H) of EXIF orientation o."""
    x0, y0, x1, y1 = box
    return {2: (W - x1, y0, W - x0, y1), 3: (W - x1, H - y1, W - x0, H - y0), 4: (x0, H - y1, x1, H - y0),
            5: (y0, x0, y1, x1), 6: (y0, H - x1, y1, H - x0), 7: (W - y1, H - x1, W - y0, H - x0),
            8: (W - y1, x0, W - y0, x1)}.get(o, (x0, y0, x1, y1))


def draft_scale(path, bbox, size, margin, square, any_format: bool = False) -> int:
    """The JPEG scale load_crop decodes at: the largest of 8, 4, 2 keeping the crop >= size on both
    sides (1 for other formats, unless ``any_format``)."""
    with Image.open(path) as im:
        fmt, (W, H) = im.format, im.size
    o = exif_orientation(path)
    x0, y0, x1, y1 = expand_box(bbox, (H, W) if o >= 5 else (W, H), margin, square)
    if fmt != "JPEG" and not any_format:
        return 1
    for s in (8, 4, 2):
        if (x1 - x0) / s >= size and (y1 - y0) / s >= size:
            return s
    return 1


def load_crop_reduced(path, bbox, size, margin, square, resample, scale: int):
    """load_crop's reduced-scale path with Pillow's box reduction of the full decode standing in for
    libjpeg's scaled IDCT: what the page's cropResize(jpegDraft=true) must compute exactly."""
    with Image.open(path) as im:
        o = exif_orientation(path)
        W, H = im.size
        full = im.convert("RGB")
    box = expand_box(bbox, (H, W) if o >= 5 else (W, H), margin, square)
    r = upright_box_to_stored(box, o, W, H)
    small = full.reduce(scale) if scale > 1 else full
    k = W / small.size[0]
    s0, s1, s2, s3 = (v / k for v in r)
    ix0, iy0 = max(0, math.floor(s0) - 2), max(0, math.floor(s1) - 2)
    ix1, iy1 = min(small.size[0], math.ceil(s2) + 2), min(small.size[1], math.ceil(s3) + 2)
    part = small.crop((ix0, iy0, ix1, iy1))
    out = part.resize((size, size), RESAMPLE[resample], box=(s0 - ix0, s1 - iy0, min(s2, ix1) - ix0, min(s3, iy1) - iy0),
                      reducing_gap=3.0)
    if o in TRANSPOSE:
        out = out.transpose(TRANSPOSE[o])
    return np.asarray(out)
