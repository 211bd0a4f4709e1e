"""The options of ``skinage find`` and of :func:`skinage.find` / :func:`skinage.find.find_batch`: one dataclass.

>>> from skinage.config import build_config
>>> build_config(FindConfig, {"paths": "a.jpg,b", "region": "forehead", "threads": "2"}).region
'forehead'
>>> image_options({"thread": 2})
Traceback (most recent call last):
...
skinage.config.ConfigError: unknown option 'thread' (did you mean 'threads'?)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ..config import ConfigError, Progress, Threaded, build_config

__all__ = ["FindConfig", "REGIONS", "IMAGE_OPTIONS", "image_options"]

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
    """A :class:`FindConfig` from the keywords of :func:`skinage.find` (one image); others are refused."""
    batch = [k for k in options if k.replace("-", "_") in FindConfig.__dataclass_fields__
             and k.replace("-", "_") not in IMAGE_OPTIONS]
    if batch:
        raise ConfigError(f"option '{batch[0]}' is for batches of files: use skinage.find.find_batch(...) "
                          f"or `skinage find`; find() on one image takes {', '.join(IMAGE_OPTIONS)}")
    return build_config(FindConfig, options)
