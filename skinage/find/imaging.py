"""The finder's two image operations, as plain arithmetic a JavaScript port can repeat exactly.

Coordinates
-----------
All positions are *continuous* pixel coordinates of the upright image: pixel ``(i, j)`` (column,
row) covers ``[i, i + 1) x [j, j + 1)`` and its centre is ``(i + 0.5, j + 0.5)``. Boxes are
``(x0, y0, x1, y1)`` with ``x1``/``y1`` exclusive, as everywhere in skinage. Arithmetic is float64
(JavaScript numbers); the model inputs are rounded to float32 only at the very end.

Letterbox (detector input)
--------------------------
:func:`letterbox` scales the image by its long side to ``size`` (``scale = size / max(W, H)``,
``w = floor(W * scale + 0.5)``, ``h = floor(H * scale + 0.5)``, at least 1), resizes the *whole*
image to ``w x h`` with Pillow's ``Image.resize(..., BILINEAR, reducing_gap=None)`` (the antialiased
bilinear filter, whose support widens with the reduction), and pastes it at
``(floor((size - w) / 2), floor((size - h) / 2))`` on black. A letterbox point ``(x, y)`` is the
image point ``((x - left) * W / w, (y - top) * H / h)``.

Rotated square crop (FaceMesh input)
------------------------------------
:func:`warp_square` samples a square of side ``S`` centred on ``(cx, cy)`` and turned by the unit
vector ``(cos, sin)`` (its x axis) into ``n x n`` pixels. With ``step = S / n`` and
``half = S / 2``, output pixel ``(i, j)`` has local coordinates ``u = (i + 0.5) * step - half``,
``v = (j + 0.5) * step - half`` and reads the image at ``x = cx + u * cos - v * sin``,
``y = cy + u * sin + v * cos`` (evaluated left to right). Bilinear sampling there: ``xs = x - 0.5``,
``ys = y - 0.5`` (array coordinates of pixel centres), ``x0 = floor(xs)``, ``fx = xs - x0`` (same for
y), ``top = p(x0, y0) * (1 - fx) + p(x0 + 1, y0) * fx``, ``bottom = p(x0, y0 + 1) * (1 - fx) +
p(x0 + 1, y0 + 1) * fx``, ``value = top * (1 - fy) + bottom * fy``, where ``p`` is the uint8 pixel
value and 0 outside the image. :func:`square_to_image` maps crop coordinates back the same way.

>>> import numpy as np
>>> from PIL import Image
>>> arr, lb = letterbox(Image.new("RGB", (200, 100), (255, 0, 0)), 128)
>>> arr.shape, (lb.width, lb.height, lb.left, lb.top)
((128, 128, 3), (128, 64, 0, 32))
>>> lb.to_image(np.array([64.0]), np.array([64.0]))
(array([100.]), array([50.]))
>>> img = np.arange(16, dtype=np.uint8).reshape(4, 4, 1).repeat(3, axis=2)
>>> warp_square(img, 2.0, 2.0, 4.0, 1.0, 0.0, 4)[0].tolist() == img[..., 0].tolist()
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

__all__ = ["Letterbox", "letterbox", "warp_square", "square_to_image", "detector_tensor", "landmark_tensor"]


@dataclass(frozen=True)
class Letterbox:
    """Where an image of ``source`` = (W, H) sits in the square letterbox of side ``size``."""

    size: int
    source: tuple
    width: int
    height: int
    left: int
    top: int

    def to_image(self, x, y):
        """Letterbox coordinates (pixels of the square) -> image coordinates."""
        W, H = self.source
        return (x - self.left) * (W / self.width), (y - self.top) * (H / self.height)


def letterbox(image: Image.Image, size: int) -> tuple[np.ndarray, Letterbox]:
    """The image scaled by its long side into a black ``size x size`` square; uint8 ``(size, size, 3)``."""
    W, H = image.size
    scale = size / max(W, H)
    w = max(1, math.floor(W * scale + 0.5))
    h = max(1, math.floor(H * scale + 0.5))
    left, top = (size - w) // 2, (size - h) // 2
    resized = image if (w, h) == (W, H) else image.resize((w, h), Image.Resampling.BILINEAR, reducing_gap=None)
    canvas = Image.new("RGB", (size, size), (0, 0, 0))
    canvas.paste(resized, (left, top))
    return np.asarray(canvas, dtype=np.uint8), Letterbox(size, (W, H), w, h, left, top)


def detector_tensor(square: np.ndarray) -> np.ndarray:
    """uint8 ``(n, n, 3)`` -> BlazeFace input float32 ``(1, 3, n, n)`` in [-1, 1]: ``px / 127.5 - 1``."""
    x = square.astype(np.float64) / 127.5 - 1.0
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None], dtype=np.float32)


def landmark_tensor(crop: np.ndarray) -> np.ndarray:
    """float64 ``(3, n, n)`` pixel values (:func:`warp_square`) -> FaceMesh input float32 ``(1, 3, n, n)``: ``px / 255``."""
    return np.ascontiguousarray((crop / 255.0)[None], dtype=np.float32)


def _local(n: int, side: float) -> np.ndarray:
    """Local coordinates of the n pixel centres along one axis of the square."""
    step, half = side / n, side / 2
    return (np.arange(n, dtype=np.float64) + 0.5) * step - half


def _window(image: np.ndarray, x0: np.ndarray, y0: np.ndarray):
    """The part of ``image`` the samples at ``(x0 .. x0 + 1, y0 .. y0 + 1)`` read, channels first.

    Returns (planes (C, h, w) uint8, first column, first row). The window covers the sampled range
    cut to the image plus a one-pixel frame of zeros, so a sample outside it lies outside the image
    and may be moved onto the frame.
    """
    H, W, C = image.shape
    ca, cb = max(int(x0.min()), -1), min(int(x0.max()) + 1, W)
    ra, rb = max(int(y0.min()), -1), min(int(y0.max()) + 1, H)
    planes = np.zeros((C, max(rb - ra + 1, 1), max(cb - ca + 1, 1)), dtype=np.uint8)
    ia, ib, ja, jb = max(ca, 0), min(cb, W - 1), max(ra, 0), min(rb, H - 1)
    if ia <= ib and ja <= jb:
        planes[:, ja - ra:jb - ra + 1, ia - ca:ib - ca + 1] = image[ja:jb + 1, ia:ib + 1].transpose(2, 0, 1)
    return planes, ca, ra


def warp_square(image: np.ndarray, cx: float, cy: float, side: float, cos: float, sin: float,
                n: int) -> np.ndarray:
    """Bilinear samples of a turned square of ``image`` (uint8 ``(H, W, C)``), channels first: float64 ``(C, n, n)``.

    See the module docstring for the exact arithmetic; outside the image counts as 0.
    """
    C = image.shape[2]
    u = _local(n, side)[None, :]  # columns
    v = _local(n, side)[:, None]  # rows
    xs = (cx + u * cos - v * sin - 0.5).reshape(-1)
    ys = (cy + u * sin + v * cos - 0.5).reshape(-1)
    x0 = np.floor(xs)
    y0 = np.floor(ys)
    fx = xs - x0
    fy = ys - y0
    planes, ca, ra = _window(image, x0, y0)
    h, w = planes.shape[1:]
    flat = planes.reshape(C, -1)
    xi = x0.astype(np.int64) - ca
    yi = y0.astype(np.int64) - ra
    c1, r1 = _clamp(xi + 1, w - 1), _clamp(yi + 1, h - 1) * w
    c0, r0 = _clamp(xi, w - 1), _clamp(yi, h - 1) * w
    gx = 1.0 - fx
    # uint8 samples times float64 weights: the products are float64 (the uint8 values are exact)
    top = np.take(flat, r0 + c0, axis=1) * gx
    top += np.take(flat, r0 + c1, axis=1) * fx  # p(x0, y0) * (1 - fx) + p(x0 + 1, y0) * fx
    bottom = np.take(flat, r1 + c0, axis=1) * gx
    bottom += np.take(flat, r1 + c1, axis=1) * fx  # p(x0, y0 + 1) * (1 - fx) + p(x0 + 1, y0 + 1) * fx
    top *= 1.0 - fy
    bottom *= fy
    top += bottom
    return top.reshape(C, n, n)


def _clamp(index: np.ndarray, hi: int) -> np.ndarray:
    """``index`` limited to 0..hi, in place."""
    np.maximum(index, 0, out=index)
    np.minimum(index, hi, out=index)
    return index


def square_to_image(points: np.ndarray, cx: float, cy: float, side: float, cos: float, sin: float,
                    n: int) -> np.ndarray:
    """Map ``(N, 2+)`` points in the square's pixel coordinates (0..n) back into the image.

    ``x``/``y`` go through the same transform as :func:`warp_square`; a third column (depth) is
    scaled by ``side / n``. Returns float64 of the same shape.
    """
    pts = np.asarray(points, dtype=np.float64)
    step, half = side / n, side / 2
    u = pts[:, 0] * step - half
    v = pts[:, 1] * step - half
    out = pts.copy()
    out[:, 0] = cx + u * cos - v * sin
    out[:, 1] = cy + u * sin + v * cos
    if pts.shape[1] > 2:
        out[:, 2:] = pts[:, 2:] * step
    return out
