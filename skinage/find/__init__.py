"""The face and forehead finder: MediaPipe BlazeFace short-range + FaceMesh, run with onnxruntime.

``skinage.find(image)`` returns the faces of one image (a path, a ``PIL.Image`` or an
``(H, W, 3)`` uint8 array), largest first, as a :class:`Found` list of :class:`Face` (``box``,
``forehead``, ``landmarks``, ``score``, ``keypoints``) that also carries ``status`` and ``reason``;
``skinage find`` (:func:`find_batch`) does it for files and folders into a CSV. Torch-free: NumPy,
Pillow and onnxruntime only. See ``docs/finder.md``.

``skinage.find`` is this package and, called, the ``find`` command's function: the package is
callable (``skinage.find(photo)`` calls :func:`skinage.find.find.find`). The command's module, by the
rule of :mod:`skinage.commands`, is :mod:`skinage.find.find` (``FindConfig``, ``find``, ``find_batch``,
``add_arguments``, ``run``), so ``skinage.find.find`` is that module and
``skinage.commands.api("find")`` the plain function.

Modules: :mod:`~skinage.find.constants` (every threshold, size and landmark index),
:mod:`~skinage.find.assets` (the ONNX files), :mod:`~skinage.find.imaging` (letterbox and rotated
crop, as plain arithmetic), :mod:`~skinage.find.anchors`, :mod:`~skinage.find.detector`,
:mod:`~skinage.find.landmarks`, :mod:`~skinage.find.regions`, :mod:`~skinage.find.finder`
(:class:`Finder`), :mod:`~skinage.find.batch` (files -> CSV rows, crops), :mod:`~skinage.find.find` (the command).
"""

from __future__ import annotations

import sys
import types

from . import find as command
from .assets import FinderModelsMissing
from .batch import COLUMNS, BatchResult
from .find import FindConfig, find_batch, get_finder
from .finder import Finder
from .result import FACE_TOO_SMALL, NO_FACE, OK, SEVERAL_FACES, STATUSES, UNREADABLE, Face, Found

__all__ = ["find_batch", "get_finder", "Finder", "Face", "Found", "FindConfig", "BatchResult",
           "FinderModelsMissing", "COLUMNS", "OK", "NO_FACE", "SEVERAL_FACES", "FACE_TOO_SMALL", "UNREADABLE",
           "STATUSES"]


class FindPackage(types.ModuleType):
    """The type of ``skinage.find``: a package that can be called like its :func:`find` function."""

    def __call__(self, image, **options) -> Found:
        return command.find(image, **options)


sys.modules[__name__].__class__ = FindPackage
