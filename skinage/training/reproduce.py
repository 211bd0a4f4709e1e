"""Reproducible epochs: every RNG seeded from ``(seed, epoch)``, and the RNG states saved and restored.

Each epoch starts from :func:`seed_epoch`, so an epoch is a pure function of the weights and
optimiser state before it; with those saved after every epoch (``weights/last_state.pt``),
``skinage train --resume`` repeats the uninterrupted run exactly. :func:`rng_state` /
:func:`set_rng_state` carry the global generators (Python, NumPy, torch) through that file as
tensors and plain values, so it loads with ``torch.load(weights_only=True)``.

>>> a = seed_epoch(0, 3); x = torch.rand(2, generator=a); y = torch.rand(2)
>>> b = seed_epoch(0, 3); torch.equal(x, torch.rand(2, generator=b)) and torch.equal(y, torch.rand(2))
True
>>> st = rng_state(); u = (random.random(), float(np.random.rand()), float(torch.rand(1)))
>>> set_rng_state(st); u == (random.random(), float(np.random.rand()), float(torch.rand(1)))
True
"""

from __future__ import annotations

import ast
import random

import numpy as np
import torch

__all__ = ["epoch_seed", "seed_epoch", "rng_state", "set_rng_state"]


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of epoch ``epoch`` (0-based) of a run with seed ``seed``.

    >>> epoch_seed(0, 0), epoch_seed(0, 1), epoch_seed(1, 0)
    (17, 7936, 1000020)
    """
    return (int(seed) * 1_000_003 + int(epoch) * 7919 + 17) % (2**31 - 1)


def seed_epoch(seed: int, epoch: int) -> torch.Generator:
    """Seed Python's, NumPy's and torch's global RNGs for an epoch; returns a torch generator seeded alike.

    The generator draws the epoch's order, augmentations and mixup pairs.
    """
    s = epoch_seed(seed, epoch)
    random.seed(s)
    np.random.seed(s)
    torch.manual_seed(s)
    return torch.Generator().manual_seed(s)


def rng_state() -> dict:
    """The global RNG states (torch, NumPy, Python) as tensors and plain values."""
    npst = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "numpy_keys": torch.from_numpy(npst[1].astype(np.int64)),
        "numpy_pos": int(npst[2]),
        "numpy_gauss": [int(npst[3]), float(npst[4])],
        "python": repr(random.getstate()),
    }


def set_rng_state(st: dict) -> None:
    """Restore the global RNG states saved by :func:`rng_state`."""
    torch.set_rng_state(st["torch"])
    np.random.set_state(("MT19937", st["numpy_keys"].numpy().astype(np.uint32), st["numpy_pos"],
                         int(st["numpy_gauss"][0]), float(st["numpy_gauss"][1])))
    random.setstate(ast.literal_eval(st["python"]))
