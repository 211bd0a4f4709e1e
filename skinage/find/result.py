"""What the finder returns: :class:`Face`, the list :class:`Found` with its status, and the statuses.

Statuses (each :class:`Found` carries one, with a sentence saying why):

``ok``
    exactly one usable face (other faces, if any, are far smaller: bystanders);
``no_face``
    nothing the detector and FaceMesh agree is a face (profiles, faces turned away or covered,
    faces too small for the detector);
``several_faces``
    a second face comparable in size to the largest (box area at least ``COMPARABLE_AREA`` = 40 %
    of the largest's): which person to grade is ambiguous;
``face_too_small``
    the face is found but narrower than ``MIN_FACE_SIZE`` pixels of the full-resolution image, too
    few for reliable landmarks (and for a forehead crop);
``unreadable``
    the file is not an image Pillow can decode (missing, empty, not an image, truncated, corrupt...).

>>> f = Found([], NO_FACE, "no face found", (640, 480))
>>> f.status, len(f), f.face is None
('no_face', 0, True)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["OK", "NO_FACE", "SEVERAL_FACES", "FACE_TOO_SMALL", "UNREADABLE", "STATUSES", "Face", "Found"]

OK = "ok"
NO_FACE = "no_face"
SEVERAL_FACES = "several_faces"
FACE_TOO_SMALL = "face_too_small"
UNREADABLE = "unreadable"
STATUSES = (OK, NO_FACE, SEVERAL_FACES, FACE_TOO_SMALL, UNREADABLE)


@dataclass(frozen=True, eq=False)
class Face:
    """One face, in pixels of the upright full-resolution image.

    Attributes
    ----------
    box : tuple
        Face box ``(x0, y0, x1, y1)``: the detection box made square, clamped to the image.
    forehead : tuple
        Forehead box ``(x0, y0, x1, y1)`` from the landmarks (see :mod:`skinage.find.regions`).
    landmarks : numpy.ndarray
        ``(468, 3)`` float64 FaceMesh points ``(x, y, z)``; ``z`` (depth) in the same pixel scale.
    score : float
        Detector score (0.5..1).
    keypoints : numpy.ndarray
        ``(6, 2)`` detector keypoints: eyes (image-left, image-right), nose, mouth, ears.
    presence : float
        FaceMesh's face-presence probability (>= 0.5 for every returned face).
    roll : float
        Head tilt in degrees (eye line against the x axis, clockwise positive).
    detection : tuple
        The detector's own box (before squaring).
    """

    box: tuple
    forehead: tuple
    landmarks: np.ndarray = field(repr=False)
    score: float
    keypoints: np.ndarray = field(repr=False)
    presence: float = 1.0
    roll: float = 0.0
    detection: tuple = ()

    @property
    def width(self) -> float:
        """Width of the face box in pixels."""
        return self.box[2] - self.box[0]

    @property
    def area(self) -> float:
        """Area of the detector's box (before squaring and clamping), in square pixels."""
        x0, y0, x1, y1 = self.detection or self.box
        return (x1 - x0) * (y1 - y0)

    def region(self, name: str) -> tuple:
        """The ``face`` or ``forehead`` box."""
        if name == "face":
            return self.box
        if name == "forehead":
            return self.forehead
        raise ValueError(f"region must be 'face' or 'forehead', not {name!r}")


class Found(list):
    """The faces of one image, largest first, plus ``status``, ``reason`` and the image ``size`` (W, H).

    ``border`` is 0, or the border (in full-resolution pixels) the faces were found with on the finder's
    second pass (a face that fills the photo: see :mod:`skinage.find.finder`, step 5).

    ``found[0]`` (also ``found.face``) is the chosen face whenever one was found; ``found.face`` is
    ``None`` for ``no_face`` and ``unreadable``.
    """

    def __init__(self, faces=(), status: str = OK, reason: str = "", size: tuple | None = None, border: int = 0):
        super().__init__(faces)
        self.border = int(border)  # > 0: found on the second pass, with this many full-size pixels of border
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}: one of {', '.join(STATUSES)}")
        self.status = status
        self.reason = reason
        self.size = size

    @property
    def face(self) -> Face | None:
        """The chosen (largest) face, or None."""
        return self[0] if self else None

    @property
    def ok(self) -> bool:
        return self.status == OK

    def __repr__(self) -> str:
        return f"Found({list.__repr__(self)}, status={self.status!r}, reason={self.reason!r}, size={self.size})"
