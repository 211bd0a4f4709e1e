"""Optimisation pieces shared by ``skinage train`` and ``skinage tune``: AdamW, class weights, the schedule.

The learning rate is the peak rate times a factor per optimiser step (:func:`lr_lambda`): a
linear warm-up over the first ``warmup`` epochs, then cosine from 1 down to 0.01 at the last
step, or x0.1 every ``step_size`` epochs, or constant.

Two epochs of four steps, one epoch of warm-up: the factor climbs to 1, then follows the cosine
``0.01 + 0.99 * (1 + cos(pi * t)) / 2`` with t = 0, 1/4, 1/2, 3/4 of the steps after warm-up.

>>> f = lr_lambda(epochs=2, steps_per_epoch=4, warmup=1.0)
>>> [round(f(s), 4) for s in range(8)]
[0.25, 0.5, 0.75, 1.0, 1.0, 0.855, 0.505, 0.155]
"""

from __future__ import annotations

import math
from typing import Callable, Optional

import numpy as np
import torch

__all__ = ["SCHEDULES", "adamw", "class_weights", "lr_lambda", "lr_scheduler"]

SCHEDULES = ("cosine", "step", "constant")


def adamw(params, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW, fused into one kernel where this torch supports it (same arithmetic, fewer passes)."""
    params = list(params)
    try:
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


def class_weights(y, num_classes: int) -> torch.Tensor:
    """Inverse class frequency ``n / (K * n_k)`` per class (0 for a class with no sample), float32.

    Three samples of class 0 and one of class 1 among 3 classes: 4 / (3 * 3), 4 / (3 * 1), 0.

    >>> class_weights([0, 0, 0, 1], 3).tolist()
    [0.4444444477558136, 1.3333333730697632, 0.0]
    """
    y = np.asarray(y, dtype=np.int64)
    counts = np.bincount(y, minlength=num_classes).astype(np.float64)
    w = np.where(counts > 0, len(y) / (num_classes * np.maximum(counts, 1)), 0.0)
    return torch.tensor(w, dtype=torch.float32)


def lr_lambda(epochs: int, steps_per_epoch: int, warmup: float = 1.0, schedule: str = "cosine",
              step_size: Optional[int] = None) -> Callable[[int], float]:
    """The factor on the peak learning rate at each optimiser step (0-based), for ``LambdaLR``.

    Parameters
    ----------
    epochs, steps_per_epoch : int
        Length of the run.
    warmup : float
        Linear warm-up length in epochs (fractions allowed; rounded to whole steps, at most all steps but one).
    schedule : {"cosine", "step", "constant"}
        After warm-up: cosine from 1 to 0.01 over the remaining steps, x0.1 every ``step_size`` epochs
        (default ``epochs // 3``, at least 1), or 1.

    >>> f = lr_lambda(epochs=6, steps_per_epoch=3, warmup=0.0, schedule="step")
    >>> [f(s) for s in (0, 5, 6, 11, 12)]
    [1.0, 1.0, 0.1, 0.1, 0.010000000000000002]
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, not {schedule!r}")
    total = max(1, epochs * steps_per_epoch)
    warm = int(round(warmup * steps_per_epoch))
    warm = min(warm, total - 1) if total > 1 else 0
    step_epochs = step_size or max(1, epochs // 3)

    def f(step: int) -> float:
        if warm > 0 and step < warm:
            return (step + 1) / warm
        if schedule == "constant":
            return 1.0
        if schedule == "step":
            return 0.1 ** ((step // steps_per_epoch) // step_epochs)
        t = (step - warm) / max(1, total - warm)
        return 0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * min(1.0, t)))

    return f


def lr_scheduler(opt: torch.optim.Optimizer, epochs: int, steps_per_epoch: int, warmup: float = 1.0,
                 schedule: str = "cosine", step_size: Optional[int] = None) -> torch.optim.lr_scheduler.LambdaLR:
    """``LambdaLR`` over :func:`lr_lambda`, stepped after every optimiser step."""
    return torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(epochs, steps_per_epoch, warmup, schedule, step_size))
