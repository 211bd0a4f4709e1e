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
    w = torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64)  # class weights: the ranks' shares weigh differently
    loss = torch.nn.functional.cross_entropy(ddp(x[idx]), y[idx], weight=w)
    (loss * d.share(float(w[y[idx]].sum()))).backward()
    plain = _tiny_net()  # --no-sync-bn: per-rank statistics; after the epoch every rank takes rank 0's
    d.wrap(plain, sync_bn=False)(x[idx])
    own = plain[1].running_mean.clone()
    d.sync_buffers(plain)
    rows = D.shard_rows(7, rank, world)  # scoring: unpadded shares, gathered
    net.eval()
    with torch.no_grad():
        scored = d.gather_rows(rows, net(x[rows]).numpy(), 7)
    torch.save({"grads": {k: p.grad for k, p in net.named_parameters()}, "buffers": dict(net.named_buffers()),
                "scored": torch.from_numpy(scored), "bn": type(net[1]).__name__, "plain_bn": type(plain[1]).__name__,
                "own_mean": own, "synced_mean": plain[1].running_mean}, f"{out}.{rank}")
    d.shutdown()


def test_two_ranks_compute_one_process_step_and_scores(tmp_path):
    import torch.multiprocessing as mp

    out = str(tmp_path / "r")
    mp.start_processes(_step_worker, args=(2, _free_port(), out), nprocs=2, start_method="spawn")
    r0, r1 = torch.load(f"{out}.0"), torch.load(f"{out}.1")
    net = _tiny_net()
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(7, 3, 6, 6, generator=g, dtype=torch.float64) * 3 + 1, torch.arange(7) % 3
    w = torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64)
    torch.nn.functional.cross_entropy(net(x[:6]), y[:6], weight=w).backward()
    assert r0["bn"] == "CpuSyncBatchNorm"
    for k, p in net.named_parameters():  # DDP's average of the weighted shares = the whole batch's gradient
        torch.testing.assert_close(r0["grads"][k], p.grad, rtol=1e-10, atol=1e-12)
        assert torch.equal(r0["grads"][k], r1["grads"][k])
    for k, b in net.named_buffers():  # running statistics of the global batch
        torch.testing.assert_close(r0["buffers"][k], b, rtol=1e-10, atol=1e-12)
    assert r0["plain_bn"] == "BatchNorm2d" and not torch.equal(r0["own_mean"], r1["own_mean"])
    assert torch.equal(r1["synced_mean"], r0["own_mean"]) and torch.equal(r0["synced_mean"], r0["own_mean"])
    # scoring: each rank's unpadded share, gathered: every rank holds the whole set's outputs once
    torch.testing.assert_close(r0["scored"], r1["scored"])
    net.load_state_dict(r0["buffers"], strict=False)
    with torch.no_grad():
        torch.testing.assert_close(r0["scored"], net.eval()(x))


# ----------------------------------------------------------------------------------------------
# `torchrun -m skinage train` with two gloo processes on real data (london-5view, 200 images at 32 px)

SEED = 3
RUN = ["--model", "mobilenet_v2", "--mode", "finetune", "--size", "32", "--epochs", "2", "--batch-size", "16",
       "--precision", "fp32", "--ordinal", "corn", "--ema", "0.9", "--tta", "flip", "--mixup", "0.2", "--seed", SEED,
       "--no-progress"]


@pytest.fixture(scope="module")
def london(tmp_path_factory):
    """london-5view's front and left three-quarter views, age <25 / 25-29 / 30+: 140 train, 30 val, 30 test."""
    from skinage.data.ingest import ingest
    from skinage.data.manifest import Manifest, read_manifest, write_manifest

    src = shared_data("london-5view") / "labels.csv"
    d = tmp_path_factory.mktemp("london")
    ingest(str(src), out=str(d / "all.csv"), label="age", bins="-inf,25,30,inf", quiet=True)
    m = read_manifest(d / "all.csv")
    df = m.df[m.df["view"].isin(["front", "left_3quarter"])].reset_index(drop=True)
    write_manifest(Manifest(df, m.classes, m.meta), d / "london.csv")
    return d / "london.csv"


def _torchrun(args: list, *, max_restarts: int = 0) -> subprocess.Popen:
    """Two workers on this machine, rendezvous on 127.0.0.1; the workers import this checkout."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
           "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{_free_port()}", "--rdzv-id", "skinage-test",
           "--max-restarts", str(max_restarts), "-m", "skinage", "train", *map(str, args)]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _workers(parent: int) -> dict[int, int]:
    """rank -> pid of the worker processes torchrun ``parent`` started."""
    out = {}
    for p in Path("/proc").iterdir():
        try:
            if p.name.isdigit() and int((p / "stat").read_text().rsplit(")", 1)[1].split()[1]) == parent:
                env = dict(kv.split("=", 1) for kv in (p / "environ").read_text().split("\0") if "=" in kv)
                out[int(env["RANK"])] = int(p.name)
        except (OSError, KeyError, IndexError, ValueError):
            continue
    return out


def _weights(run: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(run / "weights" / "last.safetensors"))


@pytest.fixture(scope="module")
def two_process_run(london, tmp_path_factory):
    project = tmp_path_factory.mktemp("ddp")
    p = _torchrun(["--data", london, "--project", project, *RUN])
    out, err = p.communicate(timeout=900)
    assert p.returncode == 0, err[-3000:]
    return project, out, err


def test_two_processes_one_run_folder_same_split_only_rank0_speaks(two_process_run, london):
    from skinage.training.data import TrainData

    project, out, err = two_process_run
    runs = [d for d in project.iterdir() if not d.name.startswith(".")]
    assert [d.name for d in runs] == ["train"]  # one folder, named once by rank 0
    run = runs[0]
    assert out.split() == [str(run.absolute())]  # rank 1 printed nothing
    assert err.count("skinage train: finetune") == 1 and err.count("epoch 2/2") == 1
    metrics = json.loads((run / "metrics.json").read_text())
    assert (metrics["world_size"], metrics["backend"]) == (2, "gloo")
    assert metrics["threads_per_rank"] == D.threads_per_rank(0, 2)  # the cores shared by the node's 2 ranks
    import yaml

    args = yaml.safe_load((run / "args.yaml").read_text())
    assert (args["world_size"], args["backend"], args["batch_size"]) == (2, "gloo", 16)
    # both ranks built the split this process builds from the manifest and seed
    assert metrics["split_digests"] == [TrainData(london, SEED, "corn").digest()] * 2
    assert len(pd.read_csv(run / "results.csv")) == 2
    pred = pd.read_csv(run / "predictions.csv")  # the whole test split, each image once
    test = pd.read_csv(london).query("split == 'test'")
    assert sorted(pred["path"]) == sorted(test["path"]) and metrics["test"]["n"] == len(test) == 30
    assert metrics["val"]["n"] == 30 and metrics["ema"] == 0.9


def test_two_processes_within_noise_of_one(two_process_run, london, tmp_path):
    """The same recipe in one process (seed 3): the metrics differ by less than their sampling noise.

    Noise: two binomial standard errors of a proportion on the 30 test (val) images, sqrt(p (1 - p) / n),
    for accuracy and within-one accuracy; 10 % for the validation loss. (The ranks augment and pair mixup
    images with their own draws, so the two runs are the same recipe, not the same numbers; that the step
    itself is one process's is shown in float64 by test_two_ranks_compute_one_process_step_and_scores.)
    """
    from skinage.training.train import train

    project, _, _ = two_process_run
    two = json.loads((project / "train" / "metrics.json").read_text())
    one = train(data=london, model="mobilenet_v2", mode="finetune", size=32, epochs=2, batch_size=16, precision="fp32",
                ordinal="corn", ema=0.9, tta="flip", mixup=0.2, seed=SEED, progress=False, threads=1,
                project=tmp_path).metrics
    assert one["world_size"] == 1 and one["backend"] == "none"
    for split in ("val", "test"):
        for key in ("accuracy", "within_one"):
            p = (one[split][key] + two[split][key]) / 2
            se = max(np.sqrt(p * (1 - p) / one[split]["n"]), 1 / one[split]["n"])
            assert abs(one[split][key] - two[split][key]) <= 2 * se, (split, key, one[split], two[split])
    assert abs(one["val"]["loss"] - two["val"]["loss"]) <= 0.1 * one["val"]["loss"]


def test_killed_worker_restarts_and_resumes_the_run(two_process_run, london, tmp_path):
    """SIGKILL rank 1 after the first epoch's checkpoint; torchrun --max-restarts 1 restarts both workers,
    which find the run's folder and resume it: the run ends with the weights of the run without the kill."""
    p = _torchrun(["--data", london, "--project", tmp_path, *RUN], max_restarts=1)
    state = tmp_path / "train" / "weights" / "last_state.pt"
    while not state.exists() and p.poll() is None:
        time.sleep(0.05)
    assert p.poll() is None, "the run ended before its first checkpoint"
    victim = _workers(p.pid).get(1)
    assert victim is not None
    os.kill(victim, signal.SIGKILL)
    out, err = p.communicate(timeout=900)
    assert p.returncode == 0, err[-3000:]
    assert "torchrun restart 1: resuming" in err and "resuming after epoch 1" in err
    run = tmp_path / "train"
    assert [d.name for d in tmp_path.iterdir() if not d.name.startswith(".")] == ["train"]
    assert pd.read_csv(run / "results.csv")["epoch"].tolist() == [1, 2]
    ref = two_process_run[0] / "train"
    a, b = _weights(ref), _weights(run)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert json.loads((run / "metrics.json").read_text())["test"] == json.loads((ref / "metrics.json").read_text())["test"]


def test_feature_mode_extracts_in_shards_and_trains_like_one_process(london, tmp_path):
    """Feature mode: each rank embeds half the images, the embeddings are gathered; the head then trains on
    the same batches as in one process (linear head, no dropout, class weights: each rank's loss weighted by
    its share of the batch's class weights): the same predictions up to float rounding."""
    from skinage.training.train import train

    opts = dict(model="mobilenet_v2", size=32, epochs=5, batch_size=16, lr=1e-2, seed=SEED, dropout=0.0)
    p = _torchrun(["--data", london, "--project", tmp_path / "two", "--mode", "feature", "--no-progress",
                   *[a for k, v in opts.items() for a in (f"--{k.replace('_', '-')}", v)]])
    out, err = p.communicate(timeout=900)
    assert p.returncode == 0, err[-3000:]
    two = json.loads((tmp_path / "two" / "train" / "metrics.json").read_text())
    assert two["world_size"] == 2 and two["features_computed"] == 200  # each image once, by one of the ranks
    one = train(data=london, mode="feature", project=tmp_path / "one", progress=False, threads=1,
                **dict(opts, dropout=(0.0,)))
    assert one.metrics["features_reused"] == 200  # the ranks' embeddings, from the shared cache
    a = pd.read_csv(tmp_path / "two" / "train" / "predictions.csv")
    b = pd.read_csv(one.run_dir / "predictions.csv")
    assert (a["path"] == b["path"]).all()
    np.testing.assert_allclose(a.filter(like="p_").values, b.filter(like="p_").values, atol=1e-4)
    assert (a["pred"] == b["pred"]).all()
