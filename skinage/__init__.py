"""skinage: lightweight image classifiers for facial skin-aging grades and age groups.

The pipeline, one subpackage per stage: data (ingest, splits, image loading) -> preprocess (the crop
and normalisation a model reads) -> models (registry, heads, pretrained weights) -> training (feature /
finetune / distill, tuning) -> evaluation (metrics, baselines, reports, comparison) -> export (ONNX
fp32 / int8, parity) -> runtime (predict with an exported file, no torch).

The Python API mirrors the ``skinage`` command, with the flags as keywords: ``skinage.<command>(...)``
for every command of :data:`skinage.commands.COMMANDS` (``skinage.train(...)``, ``skinage.export(...)``,
``skinage.find(...)``, ...). A command named like a module of skinage (``export``, ``models``, ``find``,
``demo``) is that module, made callable (:func:`skinage.commands.callable_module`).
"""

from __future__ import annotations

from .commands import API

__version__ = "0.1.0"


def __getattr__(name: str):
    # Lazy: `import skinage` stays light (no torch) until a function is used.
    from .commands import PACKAGE_NAMED, api

    if name in PACKAGE_NAMED:  # the module is callable: skinage.export(run) calls the export command
        from importlib import import_module

        return import_module(f".{name}", __name__)
    if name in API:
        return api(name)
    raise AttributeError(f"module 'skinage' has no attribute {name!r}")


__all__ = ["__version__", *API]
