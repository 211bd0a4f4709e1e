"""Training in several processes (``torchrun ... -m skinage train``): the process group, sharding, gathering.

Started by ``torchrun`` (``WORLD_SIZE`` > 1) every process (*rank*) runs the same command; :func:`start`
makes the process group (gloo on CPU, NCCL on CUDA, from the device; ``LOCAL_RANK`` picks the GPU) and
returns a :class:`Dist` that the loop asks where it differs from one process:

* the epoch's order is the same on every rank (same seed); each global batch of ``--batch-size`` rows is
  dealt out across the ranks (:func:`shard_batch`, padded by repeating rows of the batch so that every
  rank takes the same number of rows and steps);
* gradients are averaged by DistributedDataParallel (:meth:`Dist.wrap`), batch-norm statistics over the
  whole global batch (:mod:`skinage.training.syncbn`), so 2 ranks x 8 rows compute the step of 1 x 16;
* validation and test are scored in unpadded shards (:func:`shard_rows`) and gathered (:func:`place_rows`),
  so metrics are over the whole split, once;
* only rank 0 writes (:class:`skinage.training.run.Run`); the other ranks print nothing.

Started without torchrun (``WORLD_SIZE`` unset or 1) no process group is made and every method here is
the identity or a no-op.

>>> [b.tolist() for b in (shard_batch(torch.arange(5), r, 2) for r in (0, 1))]
[[0, 2, 4], [1, 3, 0]]
>>> shard_rows(5, 1, 2).tolist()
[1, 3]
>>> place_rows([(np.array([0, 2]), np.array([10, 12])), (np.array([1, 0]), np.array([11, 10]))], 3).tolist()
[10, 11, 12]
>>> backend_for("cpu"), backend_for("cuda"), rank_device("cuda", 1), rank_device("cpu", 1)
('gloo', 'nccl', 'cuda:1', 'cpu')
"""

from __future__ import annotations

import gc
import os
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Mapping, Optional

import numpy as np
import torch

from .device import resolve_device

__all__ = ["Dist", "start", "launch_env", "backend_for", "rank_device", "threads_per_rank", "shard_batch",
           "shard_rows", "place_rows"]

TIMEOUT = timedelta(minutes=30)  # the longest any rank waits for the others at a collective
_calls = [0]  # process groups made by this process (a second `train` in one worker gets fresh store keys)


# ----------------------------------------------------------------------------------------------
# pure choices (unit-tested without a process group or a GPU)


def launch_env(env: Mapping[str, str] = os.environ) -> dict:
    """What torchrun told this process: rank, world, local rank / world, restart count, run id.

    >>> launch_env({})["world"], launch_env({"WORLD_SIZE": "2", "RANK": "1", "LOCAL_WORLD_SIZE": "2"})["rank"]
    (1, 1)
    """
    def num(name, default):
        return int(env.get(name, default) or default)

    return {"rank": num("RANK", 0), "world": num("WORLD_SIZE", 1), "local_rank": num("LOCAL_RANK", 0),
            "local_world": num("LOCAL_WORLD_SIZE", 1), "restart": num("TORCHELASTIC_RESTART_COUNT", 0),
            "run_id": env.get("TORCHELASTIC_RUN_ID") or None, "torchrun": "LOCAL_WORLD_SIZE" in env}


def backend_for(device: str) -> str:
    """The process-group backend of a device: NCCL for CUDA, gloo for the CPU."""
    return "nccl" if str(device).startswith("cuda") else "gloo"


def rank_device(device: str, local_rank: int) -> str:
    """The device of one rank: ``cuda`` becomes this node's GPU ``cuda:LOCAL_RANK``; others are kept.

    ``auto`` is resolved first (:func:`skinage.training.device.resolve_device`).
    """
    device = resolve_device(device)
    return f"cuda:{int(local_rank)}" if device == "cuda" else device


def threads_per_rank(threads: int, local_world: int, cores: Optional[int] = None) -> int:
    """``--threads`` if given, else this machine's cores shared among its ranks (at least 1).

    >>> threads_per_rank(0, 2, cores=2), threads_per_rank(0, 1, cores=2), threads_per_rank(3, 2, cores=2)
    (1, 2, 3)
    """
    if threads:
        return int(threads)
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, int(cores) // max(1, int(local_world)))


def shard_batch(batch: torch.Tensor, rank: int, world: int) -> torch.Tensor:
    """Rank ``rank``'s rows of one global batch: every ``world``-th row, starting at ``rank``.

    A batch whose length does not divide by ``world`` is first padded by repeating its own rows from the
    start (as ``DistributedSampler`` pads an epoch), so every rank takes the same number of rows and the
    ranks run the same number of steps; the padded rows count twice in that step's average. (A rank may
    hold one row: batch norms are synchronised over the ranks, :mod:`skinage.training.syncbn`.)

    >>> shard_batch(torch.arange(3), 3, 4).tolist(), shard_batch(torch.arange(8), 1, 2).tolist()
    ([0], [1, 3, 5, 7])
    """
    if world <= 1:
        return batch
    n = len(batch)
    per = -(-n // world)
    if per * world > n:
        reps = -(-per * world // n)
        batch = batch.repeat(reps)[:per * world]
    return batch[rank::world]


def shard_rows(n: int, rank: int, world: int) -> np.ndarray:
    """Rank ``rank``'s share of ``n`` rows to score: every ``world``-th, unpadded (shares differ by one at most)."""
    return np.arange(rank, n, max(1, world))


def place_rows(parts, n: int) -> np.ndarray:
    """The ``n`` rows put together from ``(row indices, values)`` parts; a row given twice (padding) is kept once.

    Raises ValueError when a row is missing.
    """
    parts = [(np.asarray(i, dtype=np.int64), np.asarray(v)) for i, v in parts]
    first = next((v for _, v in parts if len(v)), None)
    if first is None:
        if n:
            raise ValueError(f"no rows gathered, {n} expected")
        return np.zeros((0,))
    out = np.zeros((n,) + first.shape[1:], dtype=first.dtype)
    seen = np.zeros(n, dtype=bool)
    for idx, vals in parts:
        out[idx] = vals
        seen[idx] = True
    if not seen.all():
        raise ValueError(f"rows {np.flatnonzero(~seen)[:10].tolist()} of {n} were gathered from no rank")
    return out


# ----------------------------------------------------------------------------------------------
# the process group


@dataclass
class Dist:
    """This process's place in a distributed run (the default: one process, no process group)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    local_world: int = 1
    backend: Optional[str] = None  # None: no process group
    device: str = "cpu"
    restart: int = 0  # TORCHELASTIC_RESTART_COUNT: how often torchrun restarted the workers
    run_id: Optional[str] = None  # TORCHELASTIC_RUN_ID (started by torchrun)
    torchrun: bool = False
    _group: bool = field(default=False, repr=False)

    @property
    def active(self) -> bool:
        """More than one process: collectives, sharding and DDP are on."""
        return self.world > 1 and self._group

    @property
    def main(self) -> bool:
        """Rank 0: the one process that writes files and prints."""
        return self.rank == 0

    def describe(self) -> dict:
        """What the run files record: world size and backend (``none`` in one process)."""
        return {"world_size": self.world, "backend": self.backend or "none"}

    # -- collectives (identity in one process) -----------------------------------------------------
    def barrier(self) -> None:
        if self.active:
            torch.distributed.barrier()

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank (picklable objects, tensors included)."""
        if not self.active:
            return obj
        box = [obj if self.main else None]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]

    def all_gather(self, obj: Any) -> list:
        """Every rank's ``obj``, in rank order, on every rank."""
        if not self.active:
            return [obj]
        out: list = [None] * self.world
        torch.distributed.all_gather_object(out, obj)
        return out

    def all_sum(self, values: list[float]) -> list[float]:
        """Element-wise sums of ``values`` over the ranks (float64)."""
        if not self.active:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64)
        torch.distributed.all_reduce(t)
        return t.tolist()

    def share(self, value: float) -> float:
        """``world * value / (sum of value over the ranks)``: 1 when every rank holds the same."""
        if not self.active:
            return 1.0
        total = self.all_sum([value])[0]
        return self.world * value / total if total else 1.0

    def sync_buffers(self, *modules: torch.nn.Module) -> None:
        """Give every rank rank 0's buffers of ``modules`` (batch-norm running statistics kept per rank)."""
        if not self.active:
            return
        for m in modules:
            for b in m.buffers():
                torch.distributed.broadcast(b, src=0)

    def gather_rows(self, rows: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
        """The ``n`` rows of a split on every rank, from each rank's ``values`` for its ``rows``."""
        if not self.active:
            return place_rows([(rows, values)], n)
        return place_rows(self.all_gather((np.asarray(rows), np.asarray(values))), n)

    # -- the model ----------------------------------------------------------------------------------
    def wrap(self, module: torch.nn.Module, sync_bn: bool = True) -> torch.nn.Module:
        """``module`` in DistributedDataParallel, its batch norms synchronised (``sync_bn``); ``module`` itself in
        one process.

        Synchronised batch norms keep their running statistics equal on every rank, so buffers are not
        broadcast at every forward; without them rank 0's running statistics are sent to the others at each
        forward (DDP's default), so the ranks still score and save one model.
        """
        if not self.active:
            return module
        from torch.nn.parallel import DistributedDataParallel

        from .syncbn import sync_batchnorms

        if sync_bn:
            module = sync_batchnorms(module, self.device)
        ids = [torch.device(self.device)] if self.device.startswith("cuda") else None
        return DistributedDataParallel(module, device_ids=ids, forward_sync_buffers=not sync_bn)

    @staticmethod
    def unwrap(module: torch.nn.Module) -> torch.nn.Module:
        """The module inside a DistributedDataParallel wrapper (itself otherwise)."""
        return getattr(module, "module", module) if type(module).__name__ == "DistributedDataParallel" else module

    def shutdown(self) -> None:
        """End the process group cleanly: barrier, free what holds on to it, destroy it (a no-op without one)."""
        if not self._group:
            return
        torch.distributed.barrier()
        gc.collect()
        torch.distributed.destroy_process_group()
        self._group = False


def start(device: str = "cpu", env: Mapping[str, str] = os.environ) -> Dist:
    """This process's :class:`Dist`; under torchrun with ``WORLD_SIZE`` > 1 also the process group.

    The TCP store is made here rather than by ``init_process_group``: a store on ``MASTER_ADDR:MASTER_PORT``
    (the agent's when ``TORCHELASTIC_USE_AGENT_STORE``), under a prefix named after the restart count, so
    workers restarted by ``torchrun --max-restarts`` never read the addresses their killed predecessors left
    in the agent's store (with the stock store, restarts failed or hung in 6 of 8 tries here; with this, 10 of 10).
    """
    e = launch_env(env)
    dev = rank_device(device, e["local_rank"])
    d = Dist(rank=e["rank"], world=e["world"], local_rank=e["local_rank"], local_world=e["local_world"],
             device=dev, restart=e["restart"], run_id=e["run_id"], torchrun=e["torchrun"])
    if d.world <= 1:
        return d
    dist = torch.distributed
    d.backend = backend_for(dev)
    if dev.startswith("cuda"):
        torch.cuda.set_device(torch.device(dev))
    if not dist.is_initialized():
        use_agent = str(env.get("TORCHELASTIC_USE_AGENT_STORE", "")).lower() == "true"
        store = dist.TCPStore(env["MASTER_ADDR"], int(env["MASTER_PORT"]), world_size=d.world,
                              is_master=d.rank == 0 and not use_agent, timeout=TIMEOUT,
                              multi_tenant=not use_agent)
        _calls[0] += 1
        store = dist.PrefixStore(f"skinage/restart{d.restart}/group{_calls[0]}", store)
        dist.init_process_group(d.backend, store=store, rank=d.rank, world_size=d.world, timeout=TIMEOUT)
    d._group = True
    return d
