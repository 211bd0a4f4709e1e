"""BlazeFace short-range: letterboxed input, anchor decoding, weighted non-maximum suppression.

The model returns, for each of the 896 anchors, 16 regressors (box centre offset ``cx, cy``, size
``w, h``, then six keypoints ``x, y``; all in 128-px detector pixels, centres and keypoints as
offsets from the anchor centre) and one logit. :func:`decode` turns them into boxes in units of the
detector input (0..1): ``centre = raw / 128 + anchor``, ``size = raw / 128``. Scores are
``1 / (1 + exp(-clip(logit, -100, 100)))`` in float64 (float32 would overflow at -100).

:func:`weighted_nms` is MediaPipe's weighted NMS: take the best remaining detection, gather every
remaining one whose IoU with it is above 0.3 (itself included), replace it by their
score-weighted average (box corners and keypoints; the score stays the best one's), drop them all,
repeat. Ties in score keep the anchor order.

>>> boxes = np.array([[0.1, 0.1, 0.5, 0.5], [0.12, 0.1, 0.52, 0.5], [0.6, 0.6, 0.9, 0.9]])
>>> kps = np.zeros((3, 6, 2)); scores = np.array([0.9, 0.6, 0.8])
>>> [(np.round(b, 4).tolist(), s) for b, _, s in weighted_nms(boxes, kps, scores, 0.3)]
[([0.108, 0.1, 0.508, 0.5], 0.9), ([0.6, 0.6, 0.9, 0.9], 0.8)]
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from .anchors import ssd_anchors
from .constants import DETECTOR_SIZE, LOGIT_CLIP, MIN_DETECTION_SCORE, NMS_IOU, NUM_REGRESSORS
from .imaging import Letterbox, detector_tensor, letterbox

__all__ = ["Detection", "decode", "iou", "weighted_nms", "Detector", "to_image"]


@dataclass(frozen=True)
class Detection:
    """One detected face in image pixels: ``box`` (x0, y0, x1, y1), ``keypoints`` (6, 2), ``score``."""

    box: tuple
    keypoints: np.ndarray
    score: float

    @property
    def area(self) -> float:
        x0, y0, x1, y1 = self.box
        return (x1 - x0) * (y1 - y0)

    @property
    def eye_span(self) -> float:
        """Distance between the two eye keypoints over the box's long side (small for a face in profile)."""
        x0, y0, x1, y1 = self.box
        dx = float(self.keypoints[1, 0] - self.keypoints[0, 0])
        dy = float(self.keypoints[1, 1] - self.keypoints[0, 1])
        return math.sqrt(dx * dx + dy * dy) / max(x1 - x0, y1 - y0)


def decode(regressors: np.ndarray, logits: np.ndarray, anchors: np.ndarray, size: int = DETECTOR_SIZE):
    """Raw outputs -> (boxes (N, 4) x0,y0,x1,y1, keypoints (N, 6, 2), scores (N,)), all float64 in 0..1."""
    raw = np.asarray(regressors, dtype=np.float64).reshape(-1, NUM_REGRESSORS) / size
    cx = raw[:, 0] + anchors[:, 0]
    cy = raw[:, 1] + anchors[:, 1]
    w, h = raw[:, 2], raw[:, 3]
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    kps = raw[:, 4:].reshape(-1, 6, 2) + anchors[:, None, :]
    z = np.clip(np.asarray(logits, dtype=np.float64).reshape(-1), -LOGIT_CLIP, LOGIT_CLIP)
    scores = 1.0 / (1.0 + np.exp(-z))
    return boxes, kps, scores


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of box ``a`` (4,) with each of ``b`` (N, 4); 0 where the union is empty."""
    ix = np.minimum(a[2], b[:, 2]) - np.maximum(a[0], b[:, 0])
    iy = np.minimum(a[3], b[:, 3]) - np.maximum(a[1], b[:, 1])
    inter = np.where((ix > 0) & (iy > 0), ix * iy, 0.0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def weighted_nms(boxes, keypoints, scores, threshold: float = NMS_IOU, min_score: float = MIN_DETECTION_SCORE):
    """Merge overlapping detections; returns ``[(box (4,), keypoints (6, 2), score), ...]``, best first."""
    keep = np.flatnonzero((scores >= min_score) & (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1]))
    order = keep[np.lexsort((keep, -scores[keep]))]  # score descending, then anchor order
    out = []
    while order.size:
        best = order[0]
        close = iou(boxes[best], boxes[order]) > threshold
        group = order[close]
        w = scores[group]
        total = w.sum()
        box = (boxes[group] * w[:, None]).sum(axis=0) / total
        kps = (keypoints[group] * w[:, None, None]).sum(axis=0) / total
        out.append((box, kps, float(scores[best])))
        order = order[~close]
    return out


class Detector:
    """BlazeFace short-range on an onnxruntime session; call it with an upright RGB ``PIL.Image``."""

    def __init__(self, session):
        self.session = session
        self.input_name = session.get_inputs()[0].name
        self.anchors = ssd_anchors()

    def run(self, image: Image.Image):
        """Raw model outputs and the letterbox: (regressors (896, 16), logits (896,), Letterbox)."""
        square, lb = letterbox(image, DETECTOR_SIZE)
        regressors, logits = self.session.run(None, {self.input_name: detector_tensor(square)})
        return regressors.reshape(-1, NUM_REGRESSORS), logits.reshape(-1), lb

    def __call__(self, image: Image.Image) -> list[Detection]:
        """Faces in ``image``, in its pixels, highest score first."""
        regressors, logits, lb = self.run(image)
        boxes, kps, scores = decode(regressors, logits, self.anchors)
        return [to_image(box, k, s, lb) for box, k, s in weighted_nms(boxes, kps, scores)]


def to_image(box: np.ndarray, keypoints: np.ndarray, score: float, lb: Letterbox) -> Detection:
    """A detection in detector units (0..1) -> image pixels (undoing the letterbox)."""
    n = lb.size
    x0, y0 = lb.to_image(box[0] * n, box[1] * n)
    x1, y1 = lb.to_image(box[2] * n, box[3] * n)
    kx, ky = lb.to_image(keypoints[:, 0] * n, keypoints[:, 1] * n)
    return Detection((float(x0), float(y0), float(x1), float(y1)), np.stack([kx, ky], axis=1), score)
