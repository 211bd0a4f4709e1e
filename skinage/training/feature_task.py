"""``feature`` mode: the backbone is frozen; the head trains on cached embeddings (plus augmented views)."""

from __future__ import annotations

import time

import numpy as np
import torch

from ..utils import say
from .distributed import shard_rows
from .features import FeatureCache, finite_rows
from .task import Task

__all__ = ["FeatureTask"]


class FeatureTask(Task):
    """Frozen backbone: the head trains on the embeddings of :class:`skinage.training.features.FeatureCache`.

    Every augmented view of a training image (``--aug-views``) is a training row of its own; val and
    test use the plain view.
    """

    per_epoch_bar = True

    def __init__(self, run, model):
        super().__init__(run, model)
        cfg = self.cfg
        model.to(run.device)
        for p in model.backbone.parameters():
            p.requires_grad = False
        self.cache = FeatureCache(model, run.pre, precision=run.precision, batch_size=64,
                                  channels_last=cfg.channels_last, device=run.device, progress=cfg.progress)
        self.X: dict[str, torch.Tensor] = {}
        self.Y: dict[str, torch.Tensor] = {}
        self.dfs = {}
        t0 = time.perf_counter()
        for split in ("train", "val", "test"):
            self._load_split(split)
        if not self.has_split("train"):
            raise RuntimeError("no readable training images")
        self.require_val()
        st = dict(zip(("computed", "reused"), map(int, self.run.dist.all_sum([self.cache.stats["computed"],
                                                                               self.cache.stats["reused"]]))))
        self.feature_stats = st
        self.feature_seconds = time.perf_counter() - t0
        say(f"  features: {st['computed']} computed, {st['reused']} reused from the cache "
            f"({self.feature_seconds:.1f} s; {self.cache.dir})")
        self.train_labels = self.Y["train"]
        self.loss_fn = self.make_loss(self.Y["train"].numpy())
        self.pending: dict = {}
        self.trainer = model.head  # what the optimiser trains and the loop may wrap in DDP

    def _load_split(self, split: str) -> None:
        cfg, data = self.cfg, self.data
        df = data.rows(split).reset_index(drop=True)
        if len(df) == 0:
            return
        views = cfg.aug_views if split == "train" else 0
        # in several processes each rank embeds every world-th image and the embeddings are gathered
        dist = self.run.dist
        rows = shard_rows(len(df), dist.rank, dist.world)
        part = df.iloc[rows] if dist.active else df
        bad: dict[int, str] = {}

        def on_error(i, reason):  # i: the row of ``part``
            bad[int(rows[i])] = reason

        arr = self.cache.get(part, views=views, aug_spec=cfg.augment, desc=f"features {split}", on_error=on_error,
                             rotate_deg=cfg.rotate, crop_scale=cfg.crop_scale, noise_std=cfg.noise_std)
        if dist.active:  # every rank gets every row (in memory)
            arr = dist.gather_rows(rows, arr, len(df))
            bad = {i: r for b in dist.all_gather(bad) for i, r in b.items()}
        for i in sorted(bad):
            data.aside(df.iloc[i].to_dict(), bad[i])
        # in one process arr is memory-mapped from the cache's file: used as it is (no copy) unless rows must go
        ok = finite_rows(arr)
        ok[list(bad)] = False
        if not ok.all():  # unreadable images: the others are copied into memory
            df, arr = df[ok].reset_index(drop=True), arr[ok]
        y = df["label"].astype(int).values
        if split == "train":
            # every view of an image is a training row (views of one image stay together in the cache)
            self.X[split] = torch.from_numpy(arr.reshape(-1, arr.shape[-1]))
            self.Y[split] = torch.from_numpy(np.repeat(y, arr.shape[1]))
        else:
            self.X[split] = torch.from_numpy(arr[:, 0])
            self.Y[split] = torch.from_numpy(y.copy())
        self.dfs[split] = df

    def has_split(self, split: str) -> bool:
        return split in self.X and len(self.Y[split]) > 0

    def split_df(self, split: str):
        return self.dfs[split]

    def params(self):
        return list(self.model.head.parameters())

    def begin_epoch(self) -> None:
        self.model.head.train()

    def step(self, idx: torch.Tensor, gen: torch.Generator):
        dev = self.run.device
        x, y = self.X["train"][idx].to(dev), self.Y["train"][idx].to(dev)
        out = self.trainer(x)
        return out, y, self.loss_fn(out, y)

    def split_size(self, split: str) -> int:
        return len(self.Y[split])

    @torch.no_grad()
    def outputs(self, split: str, rows=None) -> torch.Tensor:
        head = self.model.head
        head.eval()
        x = self.X[split] if rows is None else self.X[split][torch.as_tensor(rows)]
        return head(x.to(self.run.device)).float()

    @torch.no_grad()
    def score(self, split: str, out: torch.Tensor):
        dev = self.run.device
        y = self.Y[split].to(dev)
        out = out.to(dev)
        loss = float(self.loss_fn(out, y))
        return loss, self.model.head.probs(out).cpu().numpy(), y.cpu().numpy()

    # -- state: the backbone is frozen, only the head changes --------------------------------------
    def model_state(self) -> dict:
        return {k: v.detach().clone() for k, v in self.model.head.state_dict().items()}

    def load_state(self, sd: dict) -> None:
        self.model.head.load_state_dict(sd, strict=True)

    # An epoch on cached features takes milliseconds; writing the whole model (backbone
    # included) twice per epoch would dominate. The head's best and last states are kept
    # in memory (and in last_state.pt for resume) and written as checkpoints at the end.
    def save(self, name: str, epoch: int) -> None:
        self.pending[name] = (self.model_state(), epoch)

    def extra_state(self):
        best = self.pending.get("best")
        return None if best is None else {"best_head": best[0], "best_epoch": best[1]}

    def load_extra_state(self, st) -> None:
        if st and "best_head" in st:
            self.pending["best"] = (st["best_head"], int(st["best_epoch"]))

    def flush(self) -> None:
        current = self.model_state()
        for name in ("best", "last"):
            if name in self.pending:
                state, epoch = self.pending[name]
                self.load_state(state)
                Task.save(self, name, epoch)
        self.load_state(current)

    def extra_metrics(self) -> dict:
        return {"feature_seconds": round(self.feature_seconds, 2), "features_computed": self.feature_stats["computed"],
                "features_reused": self.feature_stats["reused"], "feature_cache": str(self.cache.dir),
                "aug_views": self.cfg.aug_views, "train_rows": int(len(self.Y["train"]))}
