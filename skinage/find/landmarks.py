"""FaceMesh: a rotated square crop around a detection, 468 landmarks mapped back to the image.

The crop (MediaPipe's ``face_detection_front_detection_to_roi``) is a square centred on the
detection box, of side ``1.5 x`` the box's long side, turned so that its x axis runs along the eye
line (keypoint 0 -> keypoint 1); the unit vector of that line is computed without trigonometry
(``d / |d|``), so a JavaScript port gets the same numbers. FaceMesh sees it at 192 x 192 in [0, 1]
(:func:`skinage.find.imaging.warp_square`), returns 468 ``(x, y, z)`` in crop pixels and a
face-presence logit; the landmarks go back through the same transform
(:func:`skinage.find.imaging.square_to_image`), ``z`` scaled like ``x``.

>>> roi = Roi.from_detection((100.0, 100.0, 200.0, 180.0), np.array([[120.0, 130.0], [180.0, 130.0]]))
>>> roi.cx, roi.cy, roi.side, roi.cos, roi.sin
(150.0, 140.0, 150.0, 1.0, 0.0)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .constants import LANDMARK_SIZE, NUM_LANDMARKS, ROI_SCALE
from .imaging import landmark_tensor, square_to_image, warp_square

__all__ = ["Roi", "Landmarker"]


@dataclass(frozen=True)
class Roi:
    """A turned square: centre ``(cx, cy)``, ``side``, and the unit vector ``(cos, sin)`` of its x axis."""

    cx: float
    cy: float
    side: float
    cos: float
    sin: float

    @classmethod
    def from_detection(cls, box, keypoints: np.ndarray, scale: float = ROI_SCALE) -> "Roi":
        """The FaceMesh crop of a detection: box centre, ``scale x`` long side, eye-line rotation."""
        x0, y0, x1, y1 = (float(v) for v in box)
        dx = float(keypoints[1, 0]) - float(keypoints[0, 0])
        dy = float(keypoints[1, 1]) - float(keypoints[0, 1])
        norm = math.sqrt(dx * dx + dy * dy)
        cos, sin = (dx / norm, dy / norm) if norm > 0 else (1.0, 0.0)
        return cls((x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, y1 - y0) * scale, cos, sin)

    def crop(self, image: np.ndarray, n: int = LANDMARK_SIZE) -> np.ndarray:
        """float64 ``(3, n, n)`` samples of ``image`` (uint8 ``(H, W, 3)``), channels first."""
        return warp_square(image, self.cx, self.cy, self.side, self.cos, self.sin, n)

    def to_image(self, points: np.ndarray, n: int = LANDMARK_SIZE) -> np.ndarray:
        """Crop coordinates (0..n) -> image pixels."""
        return square_to_image(points, self.cx, self.cy, self.side, self.cos, self.sin, n)


class Landmarker:
    """FaceMesh on an onnxruntime session."""

    def __init__(self, session):
        self.session = session
        self.input_name = session.get_inputs()[0].name
        names = [o.name for o in session.get_outputs()]
        shapes = [int(np.prod([d for d in o.shape if isinstance(d, int)])) for o in session.get_outputs()]
        # the landmark tensor has 1404 values, the presence logit 1
        self.points_name = names[int(np.argmax(shapes))]
        self.presence_name = names[int(np.argmin(shapes))]

    def run(self, crop: np.ndarray) -> tuple[np.ndarray, float]:
        """float64 ``(3, 192, 192)`` pixels -> (landmarks (468, 3) in crop pixels, presence logit)."""
        points, logit = self.session.run([self.points_name, self.presence_name],
                                         {self.input_name: landmark_tensor(crop)})
        return points.reshape(NUM_LANDMARKS, 3).astype(np.float64), float(np.asarray(logit).reshape(-1)[0])

    def __call__(self, image: np.ndarray, roi: Roi) -> tuple[np.ndarray, float]:
        """(landmarks (468, 3) in image pixels, face-presence probability) for the face in ``roi``."""
        points, logit = self.run(roi.crop(image))
        presence = 1.0 / (1.0 + math.exp(-min(max(logit, -100.0), 100.0)))
        return roi.to_image(points), presence
