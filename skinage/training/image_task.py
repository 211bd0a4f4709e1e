"""``finetune`` and ``distill`` modes: the model sees augmented crops, decoded once and held in memory."""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn as nn

from ..utils import say
from .device import autocast_context
from .task import Task, copy_state

__all__ = ["ImageTask", "TrainForward"]


def _mixup_draw(alpha: float, n: int, gen: torch.Generator) -> tuple[float, torch.Tensor | None]:
    """Mixup weight ``lam ~ Beta(alpha, alpha)`` and a pairing permutation, from the epoch's generator.

    Returns ``(1.0, None)`` when mixup is off. Drawn from ``gen`` so that resumed runs repeat them.

    >>> g = torch.Generator().manual_seed(0)
    >>> _mixup_draw(0.0, 4, g)
    (1.0, None)
    >>> lam, perm = _mixup_draw(0.4, 4, g); 0.0 <= lam <= 1.0, sorted(perm.tolist())
    (True, [0, 1, 2, 3])
    """
    if alpha <= 0 or n < 2:
        return 1.0, None
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=gen))
    lam = float(np.random.default_rng(seed).beta(alpha, alpha))
    return lam, torch.randperm(n, generator=gen)


class TrainForward(nn.Module):
    """The trained modules of an image task as one module: the model (``forward`` gives its embeddings and
    outputs) and ``extra``, e.g. the distiller's projection, trained in the loss; so that DDP averages the
    gradients of all of them."""

    def __init__(self, model: nn.Module, extra: nn.Module | None = None):
        super().__init__()
        self.model = model
        self.extra = extra

    def forward(self, x: torch.Tensor):
        feats = self.model.features(x)
        return feats, self.model.head(feats)


class ImageTask(Task):
    """``finetune`` (the backbone trains too, all of it or its last ``--unfreeze`` blocks) and ``distill``
    (a :class:`skinage.training.distill.Distiller` adds the teacher's targets to the loss), on augmented
    crops (:class:`skinage.training.augment.BatchAugment`), with optional mixup and a moving average of
    the weights (``--ema``)."""

    def __init__(self, run, model):
        super().__init__(run, model)
        from .augment import BatchAugment

        cfg = self.cfg
        self.channels_last = bool(cfg.channels_last)
        self._load_crops()
        model.to(run.device)
        if cfg.mode == "finetune" and cfg.unfreeze is not None:
            model.freeze_backbone(int(cfg.unfreeze))
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        self.aug = BatchAugment(cfg.augment, run.pre.size, cfg.rotate, cfg.crop_scale, cfg.noise_std)
        self.train_labels = self.stores["train"].y
        self.loss_fn = self.make_loss(self.stores["train"].y.numpy())
        self.distiller = None
        if cfg.mode == "distill":
            from .distill import Distiller

            self.distiller = Distiller.from_run(cfg.teacher, model, self.data.classes, temperature=cfg.temperature,
                                                alpha=cfg.alpha, embed_weight=cfg.embed_weight,
                                                embed_center=cfg.embed_center,
                                                precision=run.precision, device=run.device,
                                                channels_last=self.channels_last)
        # what the optimiser trains, with the training forward (the loop may wrap it in DDP)
        self.trainer = TrainForward(model, None if self.distiller is None else self.distiller.proj)
        self.ema = None
        if cfg.ema > 0:
            from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

            # batch-norm statistics are averaged too (use_buffers), so the average is a model of its own
            self.ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema), use_buffers=True)
            self.ema.requires_grad_(False)

    def _load_crops(self) -> None:
        from ..data.crops import CropStore
        from ..data.images import CropCache

        from .augment import needs_context
        from .phone_augment import BOX_CONTEXT

        cfg, data, run = self.cfg, self.data, self.run
        t0 = time.perf_counter()
        self.stores = {}
        for split in ("train", "val", "test"):
            df = data.rows(split)
            # --augment box: training crops keep context around the box; val / test are exactly pre.load's
            context = BOX_CONTEXT if split == "train" and needs_context(cfg.augment) else 0.0
            if len(df):
                self.stores[split] = CropStore(df, run.pre, cache=CropCache(), workers=cfg.workers,
                                               progress=cfg.progress, desc=f"crops {split}", on_error=data.aside,
                                               context=context)
        if not self.has_split("train"):
            raise RuntimeError("no readable training images")
        self.require_val()
        self.load_seconds = time.perf_counter() - t0
        say(f"  crops: {sum(len(s) for s in self.stores.values())} images at {run.pre.size} px in memory "
            f"({self.load_seconds:.1f} s, decoded-crop cache)")

    @property
    def net(self):
        return self.model if self.ema is None else self.ema.module

    def has_split(self, split: str) -> bool:
        return split in self.stores and len(self.stores[split]) > 0

    def split_df(self, split: str):
        return self.stores[split].df

    def params(self):
        ps = [p for p in self.model.parameters() if p.requires_grad]
        if self.distiller is not None:
            ps += list(self.distiller.trainable_parameters())
        return ps

    def extra_state(self):
        return {"distiller": None if self.distiller is None else self.distiller.state(),
                "ema": None if self.ema is None else copy_state(self.ema)}

    def load_extra_state(self, st) -> None:
        if st is None:
            return
        if "distiller" not in st and "ema" not in st:  # written before --ema existed: the distiller's state
            st = {"distiller": st, "ema": None}
        if self.distiller is not None and st["distiller"] is not None:
            self.distiller.load_state(st["distiller"])
        if self.ema is not None:  # --resume takes --ema from args.yaml: a run with an average saved one
            self.ema.load_state_dict(st["ema"])

    # -- training ---------------------------------------------------------------------------------
    def begin_epoch(self) -> None:
        store = self.stores["train"]
        if self.distiller is not None and self.distiller.embed_center and self.distiller.center is None:
            # once per run: a resumed run has it from last_state.pt (no RNG is drawn here, so resume stays exact)
            t1 = time.perf_counter()
            self.distiller.fit_center(store.x)
            say(f"  teacher's mean embedding of {len(store)} training crops: the centre of its targets "
                f"({time.perf_counter() - t1:.1f} s)")
        self.model.train()
        # frozen parts (--unfreeze N) keep their batch-norm statistics
        for m in self.model.backbone.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and not any(p.requires_grad for p in m.parameters()):
                m.eval()
        if self.distiller is not None:
            self.distiller.train()

    def step(self, idx: torch.Tensor, gen: torch.Generator):
        """Augment the crops ``idx`` (and mix pairs of them under ``--mixup``); outputs, labels, loss."""
        cfg, store = self.cfg, self.stores["train"]
        x = self.aug(store.x[idx].to(self.run.device), gen, None if store.rects is None else store.rects[idx])
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        y = store.y[idx].to(self.run.device)
        lam, perm = _mixup_draw(cfg.mixup, len(y), gen)
        if perm is not None:
            x = lam * x + (1.0 - lam) * x[perm]
        with autocast_context(self.run.precision, self.run.device):
            feats, out = self.trainer(x)
        out = out.float()
        loss = self.loss_fn(out, y)
        if perm is not None:
            loss = lam * loss + (1.0 - lam) * self.loss_fn(out, y[perm])
        if self.distiller is not None:
            loss = self.distiller.loss(x, feats.float(), out, loss, self.model)
        return out, y, loss

    def after_step(self) -> None:
        if self.ema is not None:
            self.ema.update_parameters(self.model)

    # -- scoring ----------------------------------------------------------------------------------
    @torch.no_grad()
    def predict_outputs(self, x_uint8: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
        """Raw outputs of the scored weights (:attr:`net`, eval mode) for uint8 crops (N, 3, S, S)."""
        from .augment import to_float

        net = self.net
        net.eval()
        outs = []
        for s in range(0, len(x_uint8), batch_size):
            x = to_float(x_uint8[s:s + batch_size]).to(self.run.device)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast_context(self.run.precision, self.run.device):
                outs.append(net(x).float().cpu())
        return torch.cat(outs) if outs else torch.zeros((0, self.data.K))

    def split_size(self, split: str) -> int:
        return len(self.stores[split])

    def outputs(self, split: str, rows=None) -> torch.Tensor:
        x = self.stores[split].x
        return self.predict_outputs(x if rows is None else x[torch.as_tensor(rows)])

    def score(self, split: str, out: torch.Tensor):
        store = self.stores[split]
        with torch.no_grad():
            loss = float(self.loss_fn(out, store.y))
            probs = self.net.probs_from_outputs(out).numpy()
        return loss, probs, store.y.numpy()

    def extra_metrics(self) -> dict:
        out = {"crop_load_seconds": round(self.load_seconds, 2), "unfreeze": self.cfg.unfreeze,
               "augment": self.cfg.augment, "ema": self.cfg.ema}
        if self.distiller is not None:
            out["teacher"] = self.distiller.describe()
        return out
