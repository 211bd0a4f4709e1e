"""The PyTorch twin of :class:`skinage.runtime.predictor.OnnxPredictor`: predict with a run folder or a
checkpoint (``.safetensors`` / ``.json``) before it is exported. Same interface: uint8 crops (N, H, W, 3)
in, class probabilities (N, K) out, with ``classes``, ``ordinal``, ``pre`` and ``name``."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..preprocess import Preprocess

__all__ = ["TorchPredictor"]


class TorchPredictor:
    """Predict with a checkpoint or a run folder (PyTorch); ``which``: the run's best or last checkpoint;
    ``threads``: torch's intra-op threads (0: leave them)."""

    def __init__(self, path: str | os.PathLike, which: str = "best", threads: int = 0):
        import torch

        from ..models.checkpoint import load_checkpoint

        if threads:
            torch.set_num_threads(int(threads))
        self.model, self.meta = load_checkpoint(path, which)
        self.path = Path(self.meta.get("checkpoint", path))
        self.classes = list(self.meta["classes"])
        self.ordinal = self.meta.get("ordinal") or None  # how the class is read from the probabilities
        self.pre = Preprocess.from_meta(self.meta)
        self.name = self.meta.get("model", "")

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        import torch

        x = torch.from_numpy(np.ascontiguousarray(pixels, dtype=np.uint8)).permute(0, 3, 1, 2).float() / 255.0
        with torch.no_grad():
            return self.model.predict_proba(x).float().numpy()
