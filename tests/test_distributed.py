"""Distributed training (torchrun + DDP): sharding, padding and gathering, the backend and device choice,
synchronised batch norm, and two-process gloo runs of `skinage train` on real data (london-5view): one
run folder, the same split on both ranks, the result of one process, a killed worker resumed."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import ROOT, shared_data

torch = pytest.importorskip("torch")

from skinage.training import distributed as D  # noqa: E402
from skinage.training.batches import epoch_batches, n_batches  # noqa: E402
from skinage.training.run import read_resume_args, remember_run, remembered_run  # noqa: E402


# ----------------------------------------------------------------------------------------------
# pure functions


def test_shard_batch_gives_every_rank_equal_shares_padded_from_the_batch():
    for n in range(1, 10):
        batch = torch.arange(100, 100 + n)
        for world in range(1, 5):
            shares = [D.shard_batch(batch, r, world) for r in range(world)]
            per = -(-n // world)
            assert all(len(s) == per for s in shares), (n, world)
            got = torch.cat(shares)
            assert set(got.tolist()) == set(batch.tolist())  # every row, nothing else
            # padded by repeating the batch from its first row: at most once more when it has a row per rank
            assert sorted(got.tolist()) == sorted(np.resize(batch.numpy(), per * world).tolist())
            if n >= world:
                assert np.bincount(got.numpy() - 100).max() <= 2


def test_epoch_batches_same_steps_on_every_rank_and_the_one_process_batches():
    y = torch.tensor([0, 1, 2] * 12 + [0])  # 37 rows
    for balance in (False, True):
        one = epoch_batches(37, 8, torch.Generator().manual_seed(3), y, balance)
        ranks = [epoch_batches(37, 8, torch.Generator().manual_seed(3), y, balance, rank=r, world=3) for r in range(3)]
        assert all(len(b) == n_batches(37, 8) == len(one) for b in ranks)
        for step, o in enumerate(one):
            shares = [b[step] for b in ranks]
            assert len({len(s) for s in shares}) == 1
            assert set(torch.cat(shares).tolist()) == set(o.tolist())


def test_place_rows_keeps_a_padded_row_once_and_refuses_a_gap():
    parts = [(np.array([0, 2, 4]), np.array([[0.0], [2.0], [4.0]])), (np.array([1, 3, 0]), np.array([[1.0], [3.0], [0.0]]))]
    assert D.place_rows(parts, 5)[:, 0].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    with pytest.raises(ValueError, match="rows \\[5\\]"):
        D.place_rows(parts, 6)
    assert [D.shard_rows(5, r, 2).tolist() for r in (0, 1)] == [[0, 2, 4], [1, 3]]


def test_backend_and_device_follow_the_device(monkeypatch):
    assert D.backend_for("cpu") == "gloo"
    assert D.backend_for("cuda") == D.backend_for("cuda:1") == "nccl"
    assert D.rank_device("cuda", 3) == "cuda:3"  # LOCAL_RANK picks the node's GPU
    assert D.rank_device("cpu", 3) == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert D.rank_device("auto", 1) == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert D.rank_device("auto", 1) == "cuda:1" and D.backend_for(D.rank_device("auto", 1)) == "nccl"


def test_without_torchrun_or_with_one_process_no_group_is_made():
    for env in ({}, {"WORLD_SIZE": "1", "RANK": "0", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "1",
                     "TORCHELASTIC_RUN_ID": "x", "TORCHELASTIC_RESTART_COUNT": "0"}):
        d = D.start("cpu", env=env)
        assert not d.active and d.main and d.backend is None
        assert d.describe() == {"world_size": 1, "backend": "none"}
        assert d.broadcast({"a": 1}) == {"a": 1} and d.all_gather(2) == [2] and d.all_sum([1.0, 2.0]) == [1.0, 2.0]
        assert not torch.distributed.is_initialized()
    e = D.launch_env({"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2",
                      "TORCHELASTIC_RESTART_COUNT": "1", "TORCHELASTIC_RUN_ID": "job7"})
    assert (e["world"], e["rank"], e["local_rank"], e["local_world"], e["restart"], e["run_id"], e["torchrun"]) == \
        (4, 3, 1, 2, 1, "job7", True)


def test_threads_per_rank_share_the_cores():
    assert D.threads_per_rank(0, 2, cores=2) == 1
    assert D.threads_per_rank(0, 3, cores=8) == 2
    assert D.threads_per_rank(0, 4, cores=2) == 1
    assert D.threads_per_rank(3, 2, cores=2) == 3  # --threads wins


def test_restart_marker_and_recorded_keys(tmp_path):
    remember_run(tmp_path / "runs", "a/b c", tmp_path / "runs" / "train2")
    assert remembered_run(tmp_path / "runs", "a/b c") == (tmp_path / "runs" / "train2").absolute()
    assert remembered_run(tmp_path / "runs", "other") is None
    run = tmp_path / "runs" / "train2"
    (run / "weights").mkdir(parents=True)
    (run / "weights" / "last_state.pt").write_bytes(b"")
    (run / "args.yaml").write_text("epochs: 3\nworld_size: 2\nbackend: gloo\nprecision_used: fp32\n")
    assert read_resume_args(run)[1] == {"epochs": 3}


# ----------------------------------------------------------------------------------------------
# two gloo processes in this machine: one step equals one process's step


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tiny_net():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                               torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 3)).double()


def _step_worker(rank: int, world: int, port: int, out: str) -> None:
    env = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank), "WORLD_SIZE": str(world),
           "LOCAL_RANK": str(rank), "LOCAL_WORLD_SIZE": str(world)}
    torch.set_num_threads(1)
    d = D.start("cpu", env=env)
    net = _tiny_net()
    ddp = d.wrap(net)
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(7, 3, 6, 6, generator=g, dtype=torch.float64) * 3 + 1, torch.arange(7) % 3
    idx = D.shard_batch(torch.arange(6), rank, world)  # a batch of 6 that divides
    loss = torch.nn.functional.cross_entropy(ddp(x[idx]), y[idx])
    loss.backward()
    rows = D.shard_rows(7, rank, world)  # scoring: unpadded shares, gathered
    net.eval()
    with torch.no_grad():
        scored = d.gather_rows(rows, net(x[rows]).numpy(), 7)
    torch.save({"grads": {k: p.grad for k, p in net.named_parameters()}, "buffers": dict(net.named_buffers()),
                "scored": torch.from_numpy(scored), "bn": type(net[1]).__name__}, f"{out}.{rank}")
    d.shutdown()


def test_two_ranks_compute_one_process_step_and_scores(tmp_path):
    import torch.multiprocessing as mp

    out = str(tmp_path / "r")
    mp.start_processes(_step_worker, args=(2, _free_port(), out), nprocs=2, start_method="spawn")
    r0, r1 = torch.load(f"{out}.0"), torch.load(f"{out}.1")
    net = _tiny_net()
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(7, 3, 6, 6, generator=g, dtype=torch.float64) * 3 + 1, torch.arange(7) % 3
    torch.nn.functional.cross_entropy(net(x[:6]), y[:6]).backward()
    assert r0["bn"] == "CpuSyncBatchNorm"
    for k, p in net.named_parameters():  # DDP's averaged gradient = the gradient of the whole batch
        torch.testing.assert_close(r0["grads"][k], p.grad, rtol=1e-10, atol=1e-12)
        assert torch.equal(r0["grads"][k], r1["grads"][k])
    for k, b in net.named_buffers():  # running statistics of the global batch
        torch.testing.assert_close(r0["buffers"][k], b, rtol=1e-10, atol=1e-12)
    # scoring: each rank's unpadded share, gathered: every rank holds the whole set's outputs once
    torch.testing.assert_close(r0["scored"], r1["scored"])
    net.load_state_dict(r0["buffers"], strict=False)
    with torch.no_grad():
        torch.testing.assert_close(r0["scored"], net.eval()(x))
