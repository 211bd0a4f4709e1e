"""One photo through a model: the box (given or found), the crop, the refusals, the row.

This is what ``skinage predict`` does for each image, and what a web server does for an upload held
in memory: :func:`predict_image` takes a path *or the bytes of an image file* and returns the same
row ``skinage predict`` writes (and its ``--out x.json`` lists under ``predictions``).

Steps (:func:`prepare`):

1. **Box.** A box given by the caller (``--bbox``, a manifest row's box) is used as it is. Otherwise,
   when the model reads a found region (its :class:`~skinage.preprocess.Preprocess` has ``region``
   ``face`` or ``forehead``: ``pre.finds``), the face finder (:mod:`skinage.find`) runs on the photo:
   unless its status is ``ok`` the photo is refused with the finder's status (``no_face``,
   ``several_faces``, ``face_too_small``) and its sentence; an unreadable file is an ``error``, as for
   every model. With ``ok``, the chosen face's face or forehead box is the box.
2. **Crop**: ``pre.load(source, box)``, the crop the model reads (an unreadable file or an unusable box:
   status ``error`` and the reason).
3. **Light**: a crop whose mean luma is below :data:`skinage.runtime.quality.MIN_LUMA` is refused as
   ``too_dark`` (:mod:`skinage.runtime.quality`).

Statuses of a row: ``ok``, ``error``, ``no_face``, ``several_faces``, ``face_too_small``, ``too_dark``;
a refused row has ``class``, ``level``, ``confidence`` and ``probs`` None and the sentence in ``error``.

>>> row = predict_image(predictor, open("face.jpg", "rb").read(), name="face.jpg")  # doctest: +SKIP
>>> row["status"], row["class"], row["bbox"], row["finder"]  # doctest: +SKIP
('ok', '30-49', [212.4, 180.0, 508.4, 476.0], 'ok')
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ..data.images import ImageError
from ..models.decode import predict_labels
from .quality import TOO_DARK, mean_luma, too_dark

__all__ = ["Prepared", "prepare", "predict_image", "make_row", "STATUSES", "ERROR", "BYTES"]

#: The status of a photo that cannot be read, or whose box cannot be cut.
ERROR = "error"
#: Every status a row can have (``ok`` and the refusals).
STATUSES = ("ok", ERROR, "no_face", "several_faces", "face_too_small", TOO_DARK)
#: The types taken as the content of an image file (an upload held in memory).
BYTES = (bytes, bytearray, memoryview)
#: What the row names a photo given as bytes without a name.
UPLOAD = "<upload>"
#: What a crop can fail with besides an ImageError (a file system error, a value the loader refuses).
_CROP_ERRORS = (ImageError, OSError, ValueError)


@dataclass
class Prepared:
    """A photo made ready for the model: its ``crop`` (None when refused), ``status``, ``error`` (the sentence),
    the ``bbox`` cut (None: the whole image), what the finder said (``finder`` status, ``faces``,
    ``face_score``; None when it did not run) and the crop's mean ``luma``."""

    crop: Optional[np.ndarray]
    status: str = "ok"
    error: str = ""
    bbox: Optional[tuple] = None
    finder: Optional[str] = None
    faces: Optional[int] = None
    face_score: Optional[float] = None
    luma: Optional[float] = None


def _default_finder():
    from ..find.find import get_finder

    return get_finder()


def _find_box(pre, source, finder, prep: Prepared) -> bool:
    """Run the finder on ``source``; fill ``prep`` (the box, or the refusal). True when a box was found."""
    from ..find.result import OK, UNREADABLE

    found = (finder or _default_finder()).find(source)
    prep.finder, prep.faces = found.status, len(found)
    if found.status == UNREADABLE:
        prep.status, prep.error = ERROR, found.reason
        return False
    if found.status != OK:
        prep.status, prep.error = found.status, found.reason
        return False
    prep.face_score = float(found.face.score)
    prep.bbox = tuple(float(v) for v in found.face.region(pre.region))
    return True


def prepare(pre, source, bbox=None, finder=None) -> Prepared:
    """The crop of one photo (a path or the bytes of an image file) for a model reading ``pre``, or the refusal.

    ``bbox``: a box given with the photo (it wins over the finder); ``finder``: a
    :class:`skinage.find.Finder` to use (default: the shared one). Never raises for a bad photo.
    """
    if isinstance(source, os.PathLike):
        source = os.fspath(source)
    prep = Prepared(None, bbox=pre.box(bbox))
    if prep.bbox is None and pre.finds and not _find_box(pre, source, finder, prep):
        return prep
    try:
        crop = pre.load(source, prep.bbox)
    except _CROP_ERRORS as e:
        prep.status, prep.error = ERROR, getattr(e, "message", None) or str(e) or type(e).__name__
        return prep
    prep.luma = mean_luma(crop)
    dark = too_dark(crop)
    if dark is not None:
        prep.status, prep.error = TOO_DARK, dark
        return prep
    prep.crop = crop
    return prep


def make_row(prep: Prepared, probs: Optional[np.ndarray], classes: list, ordinal: Optional[str] = None,
             finds: bool = False, **where: Any) -> dict:
    """The output row of one photo: ``where`` (``input``, ``path``, ``subject``, ``view``; ``true_level`` ...),
    the box, the finder's fields (``finds``: the model reads a found region), the status and the class."""
    row: dict[str, Any] = {k: where.get(k, "") for k in ("input", "path", "subject", "view")}
    row["bbox"] = None if prep.bbox is None else [round(float(v), 2) for v in prep.bbox]
    if finds:
        row.update(finder=prep.finder, faces=prep.faces,
                   face_score=None if prep.face_score is None else round(prep.face_score, 4))
    true = where.get("true_level")
    if true is not None:
        row["true_level"] = true
        row["true_class"] = classes[true] if 0 <= true < len(classes) else ""
    row["luma"] = None if prep.luma is None else round(prep.luma, 2)
    if probs is None or prep.status != "ok":
        status = prep.status if prep.status != "ok" else ERROR
        row.update(status=status, error=prep.error or "unknown error", **{"class": None}, level=None,
                   confidence=None, probs=None)
    else:
        k = int(predict_labels(probs, ordinal)[0])
        row.update(status="ok", error="", **{"class": classes[k]}, level=k, confidence=float(probs[k]),
                   probs=[float(v) for v in probs])
    return row


def predict_image(predictor, source, bbox=None, *, name: str | None = None, subject: str | None = None,
                  finder=None) -> dict:
    """Predict ONE photo, given as a path or as the bytes of an image file (nothing is written to disk).

    Parameters
    ----------
    predictor : OnnxPredictor or TorchPredictor
        From :func:`skinage.runtime.predictor.load_predictor` (``classes``, ``ordinal``, ``pre``, callable).
    source : str, os.PathLike or bytes
        The photo.
    bbox : (x0, y0, x1, y1), optional
        A box in pixels of the upright photo; without one a face/forehead model finds the face itself.
    name : str, optional
        What the row's ``path`` says (default: the path, or ``<upload>`` for bytes); ``subject`` defaults to
        its stem.
    finder : skinage.find.Finder, optional
        The finder to use (default: the shared one).

    Returns
    -------
    dict
        The row ``skinage predict`` writes for this photo (``input`` and ``path`` = ``name``).
    """
    if name is None:
        name = UPLOAD if isinstance(source, BYTES) else os.fspath(source)
    prep = prepare(predictor.pre, source, bbox, finder)
    probs = None
    if prep.crop is not None:
        probs = np.asarray(predictor(prep.crop[None])[0], dtype=np.float64)
    return make_row(prep, probs, list(predictor.classes), getattr(predictor, "ordinal", None), predictor.pre.finds,
                    input=str(name), path=str(name), subject=Path(str(name)).stem if subject is None else subject)
