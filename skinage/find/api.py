"""``skinage.find(image)``: the faces of one image, with a finder kept per (models, threads).

>>> import numpy as np
>>> found = find(np.zeros((240, 320, 3), dtype=np.uint8))
>>> found.status, len(found)
('no_face', 0)
"""

from __future__ import annotations

import threading
from pathlib import Path

from .assets import model_path
from .finder import Finder
from .options import image_options
from .result import Found

__all__ = ["find", "get_finder"]

_LOCK = threading.Lock()
_FINDERS: dict = {}


def get_finder(models=None, threads: int = 0) -> Finder:
    """A shared :class:`Finder` for these models and thread count (made on first use)."""
    folder = Path(model_path("detector", models)).parent.resolve()
    key = (str(folder), int(threads))
    with _LOCK:
        if key not in _FINDERS:
            _FINDERS[key] = Finder(folder, int(threads))
        return _FINDERS[key]


def find(image, **options) -> Found:
    """The faces in one image, largest first, with the image's status.

    Parameters
    ----------
    image : str, os.PathLike, PIL.Image.Image or numpy.ndarray
        A file path (EXIF orientation applied; large JPEGs decoded at reduced scale), a
        ``PIL.Image`` (turned upright by its EXIF orientation) or an ``(H, W, 3)`` uint8 RGB array.
    threads : int, optional
        onnxruntime threads per model (default 0: the runtime's default, all cores).
    models : path, optional
        Folder holding the two finder ONNX files.

    Returns
    -------
    Found
        A list of :class:`~skinage.find.result.Face` (``box``, ``forehead``, ``landmarks``,
        ``score``, ``keypoints``, ...; pixels of the upright full-resolution image), largest first,
        with ``.status`` (``ok``, ``no_face``, ``several_faces``, ``face_too_small``, ``unreadable``)
        and ``.reason``. An unreadable file is a status, not an exception.
    """
    cfg = image_options(options)
    return get_finder(cfg.models, cfg.threads).find(image)
