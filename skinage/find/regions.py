"""The face box and the forehead box, in image pixels ``(x0, y0, x1, y1)``, clamped to the image.

Face box
    The detection box made square (side = its long side, same centre), then clamped to the image.

Forehead box (from the 468 FaceMesh landmarks)
    Measured in the face-aligned frame, whose x axis runs from the outer eye corner 33 to 263
    (so a tilted head gives the same box as an upright one, turned):

    * bottom: the topmost of the upper eyebrow contours 70, 63, 105, 66, 107 and 300, 293, 334,
      296, 336 (just above the brows);
    * top: the mean of the mesh's top row 10, 338, 109, 297, 67 (the mesh stops below the
      hairline, so the box stays on skin);
    * left / right: the mid-brow points 105 and 334 (off the temples and side hair).

    The aligned rectangle is turned back into the image and the *upright* box around its four
    corners is returned (equal to it when the face is not tilted); :func:`roll_degrees` gives the
    tilt for callers that want a turned crop.

>>> clamp_box((-5.0, 10.0, 50.0, 120.0), (100, 100))
(0.0, 10.0, 50.0, 100.0)
>>> square_box((10.0, 20.0, 30.0, 60.0), (100, 100))
(0.0, 20.0, 40.0, 60.0)
"""

from __future__ import annotations

import math

import numpy as np

from .constants import BROW_UPPER, EYE_CORNERS, FOREHEAD_SIDES, MESH_TOP

__all__ = ["clamp_box", "square_box", "eye_axis", "roll_degrees", "forehead_box"]


def clamp_box(box, size) -> tuple:
    """``box`` cut to the image of ``size`` = (W, H)."""
    W, H = float(size[0]), float(size[1])
    x0, y0, x1, y1 = (float(v) for v in box)
    return (min(max(x0, 0.0), W), min(max(y0, 0.0), H), min(max(x1, 0.0), W), min(max(y1, 0.0), H))


def square_box(box, size) -> tuple:
    """The square of side ``max(w, h)`` with the centre of ``box``, clamped to the image."""
    x0, y0, x1, y1 = (float(v) for v in box)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    half = max(x1 - x0, y1 - y0) / 2
    return clamp_box((cx - half, cy - half, cx + half, cy + half), size)


def eye_axis(landmarks: np.ndarray) -> tuple[float, float, float, float]:
    """(origin x, origin y, cos, sin): the midpoint of the outer eye corners and the unit vector 33 -> 263."""
    a, b = landmarks[EYE_CORNERS[0], :2], landmarks[EYE_CORNERS[1], :2]
    dx, dy = float(b[0] - a[0]), float(b[1] - a[1])
    norm = math.sqrt(dx * dx + dy * dy)
    cos, sin = (dx / norm, dy / norm) if norm > 0 else (1.0, 0.0)
    return (float(a[0] + b[0]) / 2, float(a[1] + b[1]) / 2, cos, sin)


def roll_degrees(landmarks: np.ndarray) -> float:
    """The head's roll: angle of the eye line 33 -> 263 against the image x axis, clockwise positive."""
    _, _, cos, sin = eye_axis(landmarks)
    return math.degrees(math.atan2(sin, cos))


def forehead_box(landmarks: np.ndarray, size) -> tuple:
    """The upright forehead box ``(x0, y0, x1, y1)`` from ``landmarks`` (468, 2+) in image pixels."""
    ox, oy, cos, sin = eye_axis(landmarks)
    px = landmarks[:, 0].astype(np.float64) - ox
    py = landmarks[:, 1].astype(np.float64) - oy
    # into the aligned frame: turn by minus the roll
    ax = px * cos + py * sin
    ay = py * cos - px * sin
    bottom = float(np.min(ay[list(BROW_UPPER)]))
    top = float(np.mean(ay[list(MESH_TOP)]))
    left, right = float(ax[FOREHEAD_SIDES[0]]), float(ax[FOREHEAD_SIDES[1]])
    u = np.array([min(left, right), max(left, right), max(left, right), min(left, right)])
    v = np.array([min(top, bottom), min(top, bottom), max(top, bottom), max(top, bottom)])
    # back into the image: turn by the roll
    xs = ox + u * cos - v * sin
    ys = oy + u * sin + v * cos
    return clamp_box((xs.min(), ys.min(), xs.max(), ys.max()), size)
