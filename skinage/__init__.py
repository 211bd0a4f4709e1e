"""skinage: lightweight image classifiers for facial skin-aging grades and age groups.

The pipeline, one module each:  data (ingest, splits, image loading) -> models
(registry, heads, pretrained weights) -> training (feature / finetune / distill,
tuning) -> evaluation (metrics, baselines, reports, comparison) -> export
(ONNX fp32 / int8, parity) -> runtime (predict with an exported file, no torch).

The Python API mirrors the ``skinage`` command: ``skinage.ingest(...)``,
``skinage.train(...)``, ``skinage.evaluate(...)``, ``skinage.export(...)``,
``skinage.predict(...)``; their keywords are the command's flags.
"""

from __future__ import annotations

__version__ = "0.1.0"

_API = {
    "ingest": "skinage.data.ingest",
    "train": "skinage.training.train",
    "tune": "skinage.training.tune",
    "evaluate": "skinage.evaluation.evaluate",
    "compare": "skinage.evaluation.compare",
    "export": "skinage.export.export",
    "predict": "skinage.runtime.predict",
    "demo": "skinage.demo",
}


def __getattr__(name: str):
    # Lazy: `import skinage` stays light (no torch) until a function is used.
    if name in _API:
        import importlib

        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'skinage' has no attribute {name!r}")


__all__ = ["__version__", *_API]
