"""A model as a callable: uint8 crops (N, H, W, 3) in, class probabilities (N, K) out.

:class:`OnnxPredictor` runs an exported ``.onnx`` file with ONNX Runtime (no torch); it reads the
classes, the ordinal type (how the class is read from the probabilities, :mod:`skinage.models.decode`)
and the :class:`~skinage.preprocess.Preprocess` that cuts its crops from the file's metadata.
:func:`load_predictor` gives one for an ``.onnx`` file and, for a run folder or checkpoint, the PyTorch
twin :class:`skinage.export.torch_predictor.TorchPredictor` (imported only then).

>>> p = OnnxPredictor("runs/train/export/model.int8.onnx")  # doctest: +SKIP
>>> p(p.pre.load("face.jpg")[None]).round(2), p.classes  # doctest: +SKIP
(array([[0.1 , 0.7 , 0.15, 0.05]], dtype=float32), ['20', '30', '40', '50'])
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..preprocess import Preprocess
from .onnx_io import ort_session, read_onnx_metadata

__all__ = ["OnnxPredictor", "load_predictor"]


class OnnxPredictor:
    """Predict with an exported ``.onnx`` file (onnxruntime + NumPy only).

    Attributes: ``classes``, ``ordinal`` (``None``, ``"coral"`` or ``"corn"``), ``pre`` (the
    :class:`~skinage.preprocess.Preprocess`), ``meta`` (the file's metadata), ``name``, ``session``.
    """

    def __init__(self, path: str | os.PathLike, threads: int = 0):
        self.path = Path(path)
        self.threads = int(threads)
        if not self.path.is_file():
            raise FileNotFoundError(f"no ONNX file at {self.path}")
        self.session = ort_session(self.path, threads)
        self.meta = read_onnx_metadata(self.session)
        self.classes = list(self.meta["classes"])
        self.ordinal = self.meta.get("ordinal") or None  # how the class is read from the probabilities
        self.pre = Preprocess.from_meta(self.meta)
        self.name = self.meta.get("model", self.path.stem)
        inputs = self.session.get_inputs()
        self.input_name = inputs[0].name

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        """uint8 (N, H, W, 3) -> float32 probabilities (N, K)."""
        return self.session.run(None, {self.input_name: np.ascontiguousarray(pixels, dtype=np.uint8)})[0]


def load_predictor(model: str | os.PathLike, which: str = "best", threads: int = 0):
    """An :class:`OnnxPredictor` for ``.onnx`` files, else a PyTorch
    :class:`~skinage.export.torch_predictor.TorchPredictor` (run folder or checkpoint; ``which``: best or last)."""
    p = Path(model)
    if p.suffix.lower() == ".onnx":
        return OnnxPredictor(p, threads)
    if not p.exists() and not p.with_suffix(".safetensors").exists():
        raise FileNotFoundError(f"model {p} not found: give a run folder, a .safetensors/.json checkpoint "
                                f"or an .onnx file")
    from ..export.torch_predictor import TorchPredictor  # torch: only for checkpoints

    return TorchPredictor(p, which, threads)
