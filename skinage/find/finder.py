"""The face finder: BlazeFace, then FaceMesh on each detection, then the statuses.

:class:`Finder` holds the two onnxruntime sessions. ``Finder.find(image)`` takes a path, a
``PIL.Image`` or an ``(H, W, 3)`` uint8 array and returns a :class:`~skinage.find.result.Found`
list of :class:`~skinage.find.result.Face`, largest first, with a status and its reason.

Steps
-----
1. Decode upright RGB (EXIF orientation applied). A large image is reduced by the largest whole
   factor of 2, 4, 8 that keeps both sides >= ``DECODE_SIZE`` px (:func:`reduction_factor`): JPEGs
   by DCT scaling (Pillow's ``draft``), others with ``Image.reduce`` (box average). Reduced pixel
   ``i`` covers full-resolution pixels ``[i * factor, (i + 1) * factor)``, so everything below runs
   on the reduced image and boxes and landmarks are multiplied by the factor at the end.
2. Detect (:mod:`skinage.find.detector`): letterbox to 128, decode 896 anchors, weighted NMS.
3. Detections whose eye keypoints are closer than ``MIN_EYE_SPAN`` (0.2) of the box's long side
   are faces in profile: set aside (no usable forehead). For each other detection, FaceMesh
   (:mod:`skinage.find.landmarks`); those whose face-presence probability is below
   ``MIN_PRESENCE`` (0.5) are dropped as false positives.
4. Boxes (:mod:`skinage.find.regions`) and the status (:func:`status_of`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageOps

from ..data.images import ImageError, open_image, to_rgb
from .assets import model_path
from .constants import COMPARABLE_AREA, DECODE_SIZE, MIN_EYE_SPAN, MIN_FACE_SIZE, MIN_PRESENCE
from .detector import Detection, Detector
from .landmarks import Landmarker, Roi
from .regions import forehead_box, roll_degrees, square_box
from .result import FACE_TOO_SMALL, NO_FACE, OK, SEVERAL_FACES, UNREADABLE, Face, Found

__all__ = ["Finder", "Decoded", "ort_session", "status_of", "unreadable", "decode", "reduction_factor"]


class Decoded(NamedTuple):
    """An upright RGB ``image``, the whole ``factor`` it was reduced by, and the full-resolution ``size`` (W, H)."""

    image: Image.Image
    factor: int
    size: tuple


def reduction_factor(width: int, height: int, min_side: int = DECODE_SIZE) -> int:
    """The largest of 8, 4, 2 (else 1) whose reduction keeps both sides at least ``min_side`` px.

    The rule of Pillow's JPEG ``draft(mode, (min_side, min_side))``, so files and images in memory
    are reduced alike.

    >>> reduction_factor(4000, 3000, 750), reduction_factor(1920, 1080, 750), reduction_factor(600, 600, 750)
    (4, 1, 1)
    """
    for s in (8, 4, 2):
        if width >= s * min_side and height >= s * min_side:
            return s
    return 1


def ort_session(path: str | os.PathLike, threads: int = 0):
    """An onnxruntime CPU session with ``threads`` intra-op threads (0: the runtime's default)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    if threads:
        so.intra_op_num_threads = int(threads)
        so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def decode(image, min_side: int = DECODE_SIZE) -> Decoded:
    """Any accepted input -> :class:`Decoded` (upright RGB, reduction factor, full size).

    A path goes through :func:`skinage.data.images.open_image` with JPEG draft decoding (raises
    ``ImageError``); a ``PIL.Image`` is turned upright by its EXIF orientation
    (``ImageOps.exif_transpose``) and converted to RGB; an array must be ``(H, W, 3)`` uint8 RGB,
    already upright. Whatever is still large is reduced with ``Image.reduce``.
    """
    if isinstance(image, (str, os.PathLike)):
        im = open_image(image, draft=min_side)
        full = tuple(im.info["full_size"])
    elif isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"an image array must be (H, W, 3) uint8 RGB, not {image.shape} {image.dtype}")
        im = Image.fromarray(np.ascontiguousarray(image), "RGB")
        full = im.size
    elif isinstance(image, Image.Image):
        im = to_rgb(ImageOps.exif_transpose(image))
        full = im.size
    else:
        raise TypeError(f"find() takes a path, a PIL.Image or an (H, W, 3) uint8 array, not {type(image).__name__}")
    # a DCT-scaled JPEG is ceil(W / s) wide: s is the nearest whole ratio of the long sides
    done = max(1, round(max(full) / max(im.size)))
    more = reduction_factor(im.size[0], im.size[1], min_side)
    return Decoded(im.reduce(more) if more > 1 else im, done * more, full)


def status_of(faces: list[Face], size: tuple, profiles: int = 0) -> tuple[str, str]:
    """(status, reason) for ``faces`` (largest first) in an image of ``size`` (W, H).

    ``profiles``: how many faces in profile were set aside (they only change the no_face reason).
    """
    if not faces and profiles:
        return NO_FACE, ("only a face in profile (turned sideways) was found: the face must look roughly "
                         "towards the camera")
    if not faces:
        return NO_FACE, ("no face found: the face must look roughly towards the camera, be uncovered and "
                         "fill a fair part of the photo")
    first = faces[0]
    rivals = [f for f in faces[1:] if f.area >= COMPARABLE_AREA * first.area]
    if rivals:
        n = 1 + len(rivals)
        return SEVERAL_FACES, (f"{n} faces of comparable size (the second largest is "
                               f"{rivals[0].area / first.area:.0%} of the largest's area, "
                               f"{COMPARABLE_AREA:.0%} or more counts): crop the photo to one person")
    if first.width < MIN_FACE_SIZE:
        return FACE_TOO_SMALL, (f"the face is {first.width:.0f} px wide, fewer than the {MIN_FACE_SIZE} px "
                                f"its landmarks need: use a larger or closer photo")
    others = f" (and {len(faces) - 1} much smaller face(s), ignored)" if len(faces) > 1 else ""
    return OK, f"one face, {first.width:.0f} px wide, detector score {first.score:.2f}{others}"


def unreadable(error: ImageError) -> Found:
    """The :class:`Found` of a file that cannot be decoded."""
    return Found([], UNREADABLE, f"the file cannot be read as an image: {error.message}")


class Finder:
    """Two onnxruntime sessions (BlazeFace short-range, FaceMesh) and the pipeline around them.

    Parameters
    ----------
    models : path, optional
        Folder holding the two ONNX files (default: ``$SKINAGE_FINDER_MODELS`` or
        ``<repo>/assets/finder``); a missing file raises ``FinderModelsMissing`` naming
        ``make finder-models``.
    threads : int
        onnxruntime intra-op threads per session (0, the default: the runtime's default, all cores).

    >>> finder = Finder(threads=1)                     # doctest: +SKIP
    >>> found = finder.find("photo.jpg")               # doctest: +SKIP
    >>> found.status, found[0].box, found[0].forehead  # doctest: +SKIP
    ('ok', (212.4, 180.0, 508.4, 476.0), (290.1, 151.7, 431.0, 226.3))
    """

    def __init__(self, models: str | os.PathLike | None = None, threads: int = 0):
        self.models = Path(model_path("detector", models)).parent
        self.threads = int(threads)
        self.detector = Detector(ort_session(model_path("detector", models), threads))
        self.landmarker = Landmarker(ort_session(model_path("landmarks", models), threads))

    def find(self, image) -> Found:
        """Faces in ``image`` (a path, a ``PIL.Image`` or an ``(H, W, 3)`` uint8 RGB array).

        An unreadable file gives status ``unreadable`` (never an exception); a wrong argument
        type or array shape raises ``TypeError`` / ``ValueError``.
        """
        try:
            reduced = decode(image)
        except ImageError as e:
            return unreadable(e)
        return self.find_decoded(reduced)

    def find_decoded(self, reduced: Decoded) -> Found:
        """Faces in an image already decoded by :func:`decode`."""
        work = reduced.image
        arr = np.asarray(work, dtype=np.uint8)
        faces, profiles = [], 0
        for det in self.detector(work):
            if det.eye_span < MIN_EYE_SPAN:
                profiles += 1
                continue
            face = self.face(arr, det, reduced.factor, reduced.size)
            if face is not None:
                faces.append(face)
        faces.sort(key=lambda f: -f.area)
        status, reason = status_of(faces, reduced.size, profiles)
        return Found(faces, status, reason, reduced.size)

    def face(self, image: np.ndarray, det: Detection, factor: int, size: tuple) -> Face | None:
        """FaceMesh on one detection of the working ``image``; None when FaceMesh sees no face."""
        roi = Roi.from_detection(det.box, det.keypoints)
        points, presence = self.landmarker(image, roi)
        if presence < MIN_PRESENCE:
            return None
        points[:, :3] *= factor  # x, y and depth alike: full-resolution pixels
        box = tuple(v * factor for v in det.box)
        return Face(box=square_box(box, size), forehead=forehead_box(points, size), landmarks=points,
                    score=det.score, keypoints=det.keypoints * factor, presence=presence,
                    roll=roll_degrees(points), detection=box)
