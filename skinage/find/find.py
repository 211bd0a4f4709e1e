"""``skinage find``: the command module (``FindConfig``, ``find()``, ``find_batch()``, ``add_arguments``, ``run``).

``skinage find PATH... --out FILE.csv [--region face|forehead] [--crops DIR]`` writes one CSV row per
image (``path,status,reason,faces,score,face_x0..face_y1,forehead_x0..forehead_y1``, pixels of the
upright full-resolution image, empty unless ``ok``), with a progress bar, and with ``--crops DIR`` the
chosen region of each ``ok`` image under its relative file name. Exit 0 when the batch ran (whatever
the statuses), 2 on bad arguments (a missing path, no ``--out``, a bad ``--region``).

:func:`find` is the Python API on one image (also ``skinage.find(...)``: the package is callable);
:func:`find_batch` is the command's job from Python.

>>> from skinage.config import build_config
>>> build_config(FindConfig, {"paths": "a.jpg,b", "region": "forehead", "threads": "2"}).region
'forehead'
>>> image_options({"thread": 2})
Traceback (most recent call last):
...
skinage.config.ConfigError: unknown option 'thread' (did you mean 'threads'?)
>>> import numpy as np
>>> found = find(np.zeros((240, 320, 3), dtype=np.uint8))
>>> found.status, len(found)
('no_face', 0)
"""

from __future__ import annotations

import argparse
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ..config import ConfigError, Progress, Threaded, add_config_arguments, build_config, config_from_args
from ..utils import say
from .assets import model_path
from .batch import BatchResult, run_batch
from .constants import COMPARABLE_AREA, MIN_FACE_SIZE
from .finder import Finder
from .result import Found

__all__ = ["FindConfig", "REGIONS", "IMAGE_OPTIONS", "image_options", "get_finder", "find", "find_batch",
           "add_arguments", "run"]

REGIONS = ("face", "forehead")


@dataclass
class FindConfig(Threaded, Progress):
    """Options of ``skinage find`` (flags) and of the Python API (keywords).

    ``threads`` (onnxruntime intra-op threads per model; 0: its default, all cores) and ``progress``
    come from the shared mixins of :mod:`skinage.config`.
    """

    paths: tuple = field(default=(), metadata={"positional": True, "nargs": "+", "type": "strs",
        "help": "image files, or folders searched recursively for image files"})
    out: Path | None = field(default=None, metadata={
        "help": "write one CSV row per image to this file (required on the command line)"})
    region: str = field(default="face", metadata={"choices": REGIONS,
        "help": "the region --crops cuts out: the face box or the forehead box"})
    crops: Path | None = field(default=None, metadata={
        "help": "write the chosen region of every 'ok' image into this folder, under its relative file name"})
    models: Path | None = field(default=None, metadata={
        "help": "folder holding the two finder ONNX files (default: $SKINAGE_FINDER_MODELS or <repo>/assets/finder)"})


#: The options that apply to finding faces in one image (the others are about batches and their outputs).
IMAGE_OPTIONS = ("threads", "models")


def image_options(options: Mapping[str, Any]) -> FindConfig:
    """A :class:`FindConfig` from the keywords of :func:`find` (one image); batch options are refused."""
    batch = [k for k in options if k.replace("-", "_") in FindConfig.__dataclass_fields__
             and k.replace("-", "_") not in IMAGE_OPTIONS]
    if batch:
        raise ConfigError(f"option '{batch[0]}' is for batches of files: use skinage.find.find_batch(...) "
                          f"or `skinage find`; find() on one image takes {', '.join(IMAGE_OPTIONS)}")
    return build_config(FindConfig, options)


_LOCK = threading.Lock()
_FINDERS: dict = {}


def get_finder(models=None, threads: int = 0) -> Finder:
    """A shared :class:`~skinage.find.finder.Finder` for these models and thread count (made on first use)."""
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


def find_batch(paths, **options) -> BatchResult:
    """Find faces in files and folders; write the CSV (``out``) and crops (``crops``) when asked.

    Keywords are the fields of :class:`FindConfig` (``out``, ``region``, ``crops``, ``threads``,
    ``models``, ``progress``). Returns the rows (dicts with the CSV's columns) and the count of each status.
    """
    cfg = build_config(FindConfig, {**options, "paths": paths})
    return run_batch(cfg, get_finder(cfg.models, cfg.threads))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, FindConfig)
    parser.epilog = (f"Statuses: ok, no_face, several_faces (a second face of at least {COMPARABLE_AREA:.0%} of "
                     f"the largest's area), face_too_small (under {MIN_FACE_SIZE} px wide), unreadable. Boxes are "
                     "x0,y0,x1,y1 in pixels of the EXIF-rotated full-resolution image. See docs/finder.md.")


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(FindConfig, args)
    if cfg.out is None:
        raise ConfigError("--out FILE.csv is required (where to write one row per image)")
    result = run_batch(cfg, get_finder(cfg.models, cfg.threads))
    if not result.rows:
        say(f"find: no image files found in {', '.join(map(str, cfg.paths))}")
    counts = ", ".join(f"{k} {v}" for k, v in result.counts.items() if v)
    crops = f"; {result.crops} crop(s) in {cfg.crops}" if cfg.crops is not None else ""
    say(f"find: {len(result.rows)} image(s): {counts or 'none'} -> {result.out}{crops}")
    return 0
