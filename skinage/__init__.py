"""skinage: lightweight image classifiers for facial skin-aging grades and age groups.

The pipeline, one subpackage per stage: data (ingest, splits, image loading) -> preprocess (the crop
and normalisation a model reads) -> models (registry, heads, pretrained weights) -> training (feature /
finetune / distill, tuning) -> evaluation (metrics, baselines, reports, comparison) -> export (ONNX
fp32 / int8, parity) -> runtime (predict with an exported file, no torch).

The Python API mirrors the ``skinage`` command, with the flags as keywords: ``skinage.<command>(...)``
for the commands of :data:`skinage.commands.COMMANDS` (``skinage.train(...)``, ``skinage.evaluate(...)``,
...). The commands named like a module of skinage (``export``, ``models``, ``demo``) are
``skinage.commands.api("export")(...)`` or imported from their module (``from skinage.demo import demo``).
"""

from __future__ import annotations

from .commands import API, COMMANDS

__version__ = "0.1.0"


def __getattr__(name: str):
    # Lazy: `import skinage` stays light (no torch) until a function is used.
    if name in API:
        from .commands import api

        return api(name)
    if name == "find":  # the finder's package is callable: skinage.find(photo) is the find command's function
        from importlib import import_module

        return import_module(".find", __name__)
    if name in COMMANDS:
        raise AttributeError(f"skinage.{name} is a module of skinage, not yet imported; the function of "
                             f"`skinage {name}` is skinage.commands.api({name!r}), or "
                             f"`from {COMMANDS[name].module} import {name}`")
    raise AttributeError(f"module 'skinage' has no attribute {name!r}")


__all__ = ["__version__", *API]
