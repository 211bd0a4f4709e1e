"""Which training rows each optimiser step of an epoch sees: the epoch's order, cut into batches.

Both training loops (``skinage train``'s and :func:`skinage.training.tune.fit_head`) draw their
batches here, from the epoch's generator, so the order is repeatable and there is one place to
change how rows are dealt out (e.g. to several processes).

>>> g = torch.Generator().manual_seed(0)
>>> [len(b) for b in epoch_batches(10, batch_size=4, generator=g)]
[4, 4, 2]
>>> sorted(torch.cat(epoch_batches(10, batch_size=4, generator=g)).tolist()) == list(range(10))
True
"""

from __future__ import annotations

import math
from typing import Optional

import torch

__all__ = ["n_batches", "epoch_order", "epoch_batches"]


def n_batches(n: int, batch_size: int) -> int:
    """Optimiser steps per epoch over ``n`` rows: ``ceil(n / batch_size)``, but never a last batch of one row.

    A batch of one row breaks batch norm in training mode, so when the last batch would hold one row
    that row sits the epoch out (another one each epoch, as the order changes).

    >>> n_batches(10, 4), n_batches(9, 4), n_batches(1, 4), n_batches(8, 4)
    (3, 2, 1, 2)
    """
    nb = max(1, math.ceil(n / batch_size))
    if nb > 1 and n % batch_size == 1:
        nb -= 1
    return nb


def epoch_order(n: int, y: Optional[torch.Tensor], balance: bool, generator: torch.Generator) -> torch.Tensor:
    """The epoch's row order: a permutation of ``range(n)``, or (``balance``) ``n`` rows drawn with replacement
    with probability inversely proportional to their class's count, so every class comes up equally often.

    >>> g = torch.Generator().manual_seed(0)
    >>> order = epoch_order(1000, torch.tensor([0] * 900 + [1] * 100), True, g)
    >>> 400 < int((order >= 900).sum()) < 600
    True
    """
    if not balance:
        return torch.randperm(n, generator=generator)
    counts = torch.bincount(y)
    w = 1.0 / counts[y].float()
    return torch.multinomial(w, n, replacement=True, generator=generator)


def epoch_batches(n: int, batch_size: int, generator: torch.Generator, y: Optional[torch.Tensor] = None,
                  balance: bool = False, rank: int = 0, world: int = 1) -> list[torch.Tensor]:
    """The row indices of each optimiser step of one epoch (:func:`epoch_order` cut into :func:`n_batches`).

    With ``world`` > 1 processes, ``batch_size`` is the global batch: every rank draws the same order, cuts
    the same global batches and takes its share of each
    (:func:`skinage.training.distributed.shard_batch`: every ``world``-th row, the batch padded with its own
    rows when its length does not divide), so every rank runs the same number of steps and the ranks'
    shares of a step together are one process's batch.

    >>> g = lambda: torch.Generator().manual_seed(0)
    >>> one = epoch_batches(10, 4, g())
    >>> two = [epoch_batches(10, 4, g(), rank=r, world=2) for r in (0, 1)]
    >>> [(len(a), len(b)) for a, b in zip(*two)], all(set(torch.cat(ab).tolist()) == set(o.tolist())
    ...                                             for o, *ab in zip(one, *two))
    ([(2, 2), (2, 2), (1, 1)], True)
    """
    from .distributed import shard_batch

    order = epoch_order(n, y, balance, generator)
    return [shard_batch(order[b * batch_size:(b + 1) * batch_size], rank, world) for b in range(n_batches(n, batch_size))]
