"""The model on the rows of an evaluation: probabilities and embeddings, unreadable images set aside."""

from __future__ import annotations

import numpy as np

__all__ = ["infer", "load_crops"]


def infer(model, df, pre, batch_size: int, progress: bool):
    """``(kept row indices, probabilities (N, K), embeddings (N, D), set-aside rows)`` of ``df``'s images.

    The outputs use the model's test-time augmentation; the embeddings are the plain view's.
    Set-aside rows are ``{"path", "reason"}`` for the images that could not be read.
    """
    import torch

    from ..data.crops import iter_crops
    from ..data.images import CropCache
    from ..data.manifest import row_bbox

    recs = df.to_dict("records")
    keep, probs, embs, aside = [], [], [], []
    for idx, x, errors in iter_crops(pre, [(str(r["path"]), row_bbox(r)) for r in recs], batch_size=batch_size,
                                     cache=CropCache(), progress=progress, desc="evaluate"):
        aside += [{"path": str(recs[i].get("path", "")), "reason": str(e) or type(e).__name__} for i, e in errors]
        if len(idx):
            x = torch.from_numpy(x).permute(0, 3, 1, 2).float().div_(255.0)
            with torch.inference_mode():
                out, emb = model.outputs_and_features(x)
                p = model.probs_from_outputs(out)
            keep += idx.tolist()
            probs.append(p.float().numpy())
            embs.append(emb.float().numpy())
    k = model.num_classes
    probs = np.concatenate(probs) if probs else np.zeros((0, k))
    embs = np.concatenate(embs) if embs else np.zeros((0, model.feature_dim))
    return np.asarray(keep, dtype=int), probs, embs, aside


def load_crops(df, idx, pre) -> np.ndarray:
    """The model's input crops (n, size, size, 3) uint8 of rows ``idx`` of ``df``."""
    from ..data.images import CropCache
    from ..data.manifest import row_bbox

    cache = CropCache()
    return np.stack([pre.load(str(r["path"]), row_bbox(r), cache=cache) for r in df.iloc[idx].to_dict("records")])
