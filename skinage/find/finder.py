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
5. Fallback: when 3 leaves no face, the working image is framed by a grey border of
   ``FALLBACK_BORDER`` (0.25) of its long side on every side (:func:`add_border`) and 2-4 run again
   on it; the border is taken off the boxes and landmarks (in working pixels, before the reduction
   factor) and the boxes are clamped to the photo. Faces that fill the photo edge to edge (tight
   crops) are found so; a photo where the second pass finds nothing keeps the first pass's answer.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageOps

from ..data.images import ImageError, open_image, to_rgb
from .assets import model_path
from .constants import (COMPARABLE_AREA, DECODE_SIZE, FALLBACK_BORDER, FALLBACK_FILL, MIN_EYE_SPAN, MIN_FACE_SIZE,
                        MIN_PRESENCE)
from .detector import Detection, Detector
from .landmarks import Landmarker, Roi
from .regions import forehead_box, roll_degrees, square_box
from .result import FACE_TOO_SMALL, NO_FACE, OK, SEVERAL_FACES, UNREADABLE, Face, Found

__all__ = ["Finder", "Decoded", "ort_session", "status_of", "unreadable", "decode", "reduction_factor", "add_border"]

#: What :func:`decode` reads as the content of an image file (an upload held in memory).
BYTES = (bytes, bytearray, memoryview)


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

    A path, or the bytes of an image file (an upload held in memory), goes through
    :func:`skinage.data.images.open_image` with JPEG draft decoding (raises ``ImageError``); a ``PIL.Image`` is turned upright by its EXIF orientation
    (``ImageOps.exif_transpose``) and converted to RGB; an array must be ``(H, W, 3)`` uint8 RGB,
    already upright. Whatever is still large is reduced with ``Image.reduce``.
    """
    if isinstance(image, (str, os.PathLike, *BYTES)):
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
        raise TypeError(f"find() takes a path, the bytes of an image file, a PIL.Image or an (H, W, 3) uint8 array, "
                        f"not {type(image).__name__}")
    # a DCT-scaled JPEG is ceil(W / s) wide: s is the nearest whole ratio of the long sides
    done = max(1, round(max(full) / max(im.size)))
    more = reduction_factor(im.size[0], im.size[1], min_side)
    return Decoded(im.reduce(more) if more > 1 else im, done * more, full)


def add_border(image: Image.Image, fraction: float = FALLBACK_BORDER, fill=FALLBACK_FILL) -> tuple[np.ndarray, int]:
    """``image`` framed by ``pad = floor(fraction * max(W, H) + 0.5)`` pixels of ``fill`` on every side; (array, pad).

    >>> arr, pad = add_border(Image.new("RGB", (200, 100), (255, 0, 0)))
    >>> arr.shape, pad, arr[0, 0].tolist(), arr[pad, pad].tolist()
    ((200, 300, 3), 50, [128, 128, 128], [255, 0, 0])
    """
    arr = np.asarray(image, dtype=np.uint8)
    pad = int(np.floor(fraction * max(arr.shape[0], arr.shape[1]) + 0.5))
    out = np.empty((arr.shape[0] + 2 * pad, arr.shape[1] + 2 * pad, 3), dtype=np.uint8)
    out[...] = np.asarray(fill, dtype=np.uint8)
    out[pad:pad + arr.shape[0], pad:pad + arr.shape[1]] = arr
    return out, pad


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
        """Faces in an image already decoded by :func:`decode` (with the bordered second pass, step 5)."""
        faces, profiles = self.faces(reduced.image, reduced.factor, reduced.size)
        border = 0
        if not faces and FALLBACK_BORDER > 0:
            framed, pad = add_border(reduced.image)
            again, again_profiles = self.faces(Image.fromarray(framed, "RGB"), reduced.factor, reduced.size, offset=pad)
            if again:
                faces, profiles, border = again, again_profiles, pad * reduced.factor
        faces.sort(key=lambda f: -f.area)
        status, reason = status_of(faces, reduced.size, profiles)
        if border:
            reason += " (found with a border added around the photo: the face fills it)"
        return Found(faces, status, reason, reduced.size, border=border)

    def faces(self, work: Image.Image, factor: int, size: tuple, offset: int = 0) -> tuple[list[Face], int]:
        """(faces, number of profiles set aside) in the working image ``work``, whose pixel ``offset + i`` is the
        photo's reduced pixel ``i`` (``offset`` > 0: a bordered copy)."""
        arr = np.asarray(work, dtype=np.uint8)
        faces, profiles = [], 0
        for det in self.detector(work):
            if det.eye_span < MIN_EYE_SPAN:
                profiles += 1
                continue
            face = self.face(arr, det, factor, size, offset)
            if face is not None:
                faces.append(face)
        return faces, profiles

    def face(self, image: np.ndarray, det: Detection, factor: int, size: tuple, offset: int = 0) -> Face | None:
        """FaceMesh on one detection of the working ``image``; None when FaceMesh sees no face.

        ``offset``: the border around the photo in ``image`` (working pixels), taken off the results."""
        roi = Roi.from_detection(det.box, det.keypoints)
        points, presence = self.landmarker(image, roi)
        if presence < MIN_PRESENCE:
            return None
        points[:, :2] -= offset
        points[:, :3] *= factor  # x, y and depth alike: full-resolution pixels
        box = tuple((v - offset) * factor for v in det.box)
        return Face(box=square_box(box, size), forehead=forehead_box(points, size), landmarks=points,
                    score=det.score, keypoints=(det.keypoints - offset) * factor, presence=presence,
                    roll=roll_degrees(points), detection=box)
