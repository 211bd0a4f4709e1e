"""The training loop shared by the three modes, and the per-mode tasks it drives.

:func:`fit` owns the optimiser (AdamW), the schedule (warm-up + cosine / step), early
stopping, per-epoch artifacts and exact resume; a *task* owns the data and the forward
pass: :class:`FeatureTask` (head on cached embeddings) and :class:`ImageTask`
(``finetune`` and ``distill`` on augmented crops held in memory).

Exact resume: every epoch starts by seeding all RNGs from ``(seed, epoch)``, so an epoch
is a pure function of the weights and optimiser state before it; those are saved in
``weights/last_state.pt`` after every epoch (the file is the source of truth: written
last, atomically).
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from ..utils import say
from ..data.crops import CropStore
from .train import (TrainingInterrupted, _class_weights, _lr_lambda, _order, _rng_state,
                    _seed_epoch, _set_rng_state, compute_metrics, predict_labels)

__all__ = ["fit", "FeatureTask", "ImageTask"]


def _save_state(path: Path, state: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def _score(metrics: dict, loss: float, select: str, ordered: bool) -> tuple[float, float]:
    """(selection metric, -loss): ties on the metric go to the lower validation loss."""
    if select == "auto":
        select = "qwk" if ordered else "macro_f1"
    if select == "loss":
        return (-loss, 0.0)
    return (round(float(metrics.get(select, metrics["accuracy"])), 10), -float(loss))


def _copy_state(module: nn.Module) -> dict:
    """A detached copy of ``module.state_dict()`` (for ``last_state.pt``)."""
    return {k: v.detach().clone().contiguous() for k, v in module.state_dict().items()}


def _check_interrupt(cfg, epoch: int, b: int, nb: int) -> None:
    if cfg.interrupt_at is not None and epoch + (b + 1) / nb >= cfg.interrupt_at - 1e-9:
        raise TrainingInterrupted(f"interrupted at epoch {epoch + (b + 1) / nb:.2f} (interrupt_at)")


def _adamw(params, lr: float, weight_decay: float):
    """AdamW, fused into one kernel where this torch supports it (same arithmetic, fewer passes)."""
    try:
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


def fit(run, task) -> None:
    """Train ``task`` for ``run.cfg.epochs`` epochs (or until early stopping), resuming if asked."""
    import pandas as pd

    cfg = run.cfg
    params = [p for p in task.params() if p.requires_grad]
    opt = _adamw(params, cfg.lr, cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(cfg, task.steps_per_epoch))
    start, best, best_epoch, bad, finished = 0, (-math.inf, -math.inf), -1, 0, False
    state_path = run.wdir / "last_state.pt"
    if run.resuming:
        st = torch.load(state_path, map_location="cpu", weights_only=True)
        task.load_state(st["model"])
        opt.load_state_dict(st["optimizer"])
        sched.load_state_dict(st["scheduler"])
        if st.get("extra") is not None:
            task.load_extra_state(st["extra"])
        start = int(st["epoch"]) + 1
        best, best_epoch, bad = tuple(float(v) for v in st["best_score"]), int(st["best_epoch"]), int(st["bad_epochs"])
        finished = bool(st.get("finished", False))
        _set_rng_state(st["rng"])
        res = run.dir / "results.csv"
        if res.is_file():
            prev = pd.read_csv(res)
            run.rows = prev[prev["epoch"] <= start].to_dict("records")  # 1-based rows of finished epochs
        say(f"  resuming after epoch {start} of {cfg.epochs} (best so far: epoch {best_epoch + 1})"
            + (" - the run had already finished" if finished else ""))
    run.best_epoch = best_epoch
    epochs_bar = None
    if task.per_epoch_bar:
        from tqdm.auto import tqdm

        epochs_bar = tqdm(total=cfg.epochs, initial=start, desc="epochs", unit="ep", disable=not cfg.progress, dynamic_ncols=True)
    epoch = start
    while not finished and epoch < cfg.epochs:
        gen = _seed_epoch(cfg.seed, epoch)
        t0 = time.perf_counter()
        tr = task.train_epoch(epoch, gen, opt, sched)
        train_time = time.perf_counter() - t0
        vloss, vprobs, vy = task.evaluate("val")
        vpred = predict_labels(vprobs, cfg.ordinal)
        vm = compute_metrics(vy, vpred, run.data.K, run.data.ordered)
        score = _score(vm, vloss, cfg.select, run.data.ordered)
        row = {"epoch": epoch + 1, "train_loss": tr["loss"], "train_acc": tr["acc"], "val_loss": vloss,
               "val_acc": vm["accuracy"], "val_macro_f1": vm["macro_f1"]}
        if run.data.ordered:
            row["val_qwk"] = vm["qwk"]
            row["val_mae"] = vm["mae"]
        row.update({"lr": opt.param_groups[0]["lr"], "img_s": round(tr["images"] / max(train_time, 1e-9), 2),
                    "time_s": round(time.perf_counter() - t0, 3)})
        run.rows.append(row)
        run.write_results()
        if score > best:
            best, best_epoch, bad = score, epoch, 0
            task.save(run.wdir / "best", epoch)
        else:
            bad += 1
        task.save(run.wdir / "last", epoch)
        stop = cfg.patience > 0 and bad >= cfg.patience
        finished = stop or epoch + 1 >= cfg.epochs
        _save_state(state_path, {
            "epoch": epoch, "model": task.model_state(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
            "rng": _rng_state(), "best_score": list(best), "best_epoch": best_epoch, "bad_epochs": bad,
            "finished": finished, "extra": task.extra_state(),
        })
        msg = (f"val acc {vm['accuracy']:.3f} f1 {vm['macro_f1']:.3f}" + (f" qwk {vm['qwk']:.3f}" if run.data.ordered else ""))
        if epochs_bar is not None:
            epochs_bar.update(1)
            epochs_bar.set_postfix_str(f"loss {tr['loss']:.3f} {msg}")
        else:
            say(f"  epoch {epoch + 1}/{cfg.epochs}: train loss {tr['loss']:.4f} acc {tr['acc']:.3f}, val loss {vloss:.4f} {msg}, "
                f"{row['img_s']:.1f} img/s" + (" *" if best_epoch == epoch else ""))
        if stop:
            say(f"  early stop: no better validation score for {cfg.patience} epochs (best epoch {best_epoch + 1})")
        epoch += 1
    if epochs_bar is not None:
        epochs_bar.close()
    task.flush()
    run.best_epoch = best_epoch


# ----------------------------------------------------------------------------------------------


class _TaskBase:
    per_epoch_bar = False

    def __init__(self, run, model):
        self.run = run
        self.cfg = run.cfg
        self.model = model
        self.data = run.data

    @property
    def net(self):
        """The weights that are scored, saved and exported (ImageTask: the moving average under ``--ema``)."""
        return self.model

    def extra_state(self):
        return None

    def load_extra_state(self, st) -> None:
        pass

    def flush(self) -> None:
        """Write checkpoints a task kept in memory (feature mode); nothing for the others."""

    def save(self, stem: Path, epoch: int) -> None:
        from ..models.checkpoint import save_checkpoint

        net = self.net
        net.to(memory_format=torch.contiguous_format)
        save_checkpoint(net, self.run.ckpt_meta(epoch + 1), stem)
        if getattr(self, "channels_last", False):
            net.to(memory_format=torch.channels_last)

    def load_weights(self, path: Path) -> None:
        from safetensors.torch import load_file

        self.net.load_state_dict(load_file(str(path)), strict=True)

    def model_state(self) -> dict:
        return _copy_state(self.model)

    def load_state(self, sd: dict) -> None:
        self.model.load_state_dict(sd, strict=True)

    def _loss_fn(self, y_train: np.ndarray):
        from ..models.heads import make_loss

        w = _class_weights(y_train, self.data.K) if (self.cfg.class_weights and not self.cfg.balance) else None
        self.class_weight_values = None if w is None else [round(float(v), 4) for v in w]
        return make_loss(self.data.K, self.cfg.ordinal, w, self.cfg.label_smoothing)

    def finish(self) -> dict:
        """Reload the best weights, score val and test, write predictions.csv; -> metrics dict."""
        import pandas as pd

        from ..utils import atomic_write

        run, cfg, data = self.run, self.cfg, self.data
        self.load_weights(run.wdir / "best.safetensors")
        out = {"model": cfg.model, "mode": cfg.mode, "classes": data.classes, "ordered": data.ordered,
               "ordinal": cfg.ordinal, "best_epoch": run.best_epoch + 1, "epochs_run": len(run.rows),
               "select": cfg.select if cfg.select != "auto" else ("qwk" if data.ordered else "macro_f1"),
               "precision": run.precision, "weights_from": self.model.weights_from,
               "preprocessing": run.pre.to_meta(), "carved_val": data.carved_val,
               "class_weights": getattr(self, "class_weight_values", None)}
        for split in ("val", "test"):
            if not self.has_split(split):
                out[split] = None
                continue
            loss, probs, y = self.evaluate(split)
            pred = predict_labels(probs, cfg.ordinal)
            m = compute_metrics(y, pred, data.K, data.ordered)
            m["loss"] = float(loss)
            out[split] = m
            if split == "test":
                df = self.split_df(split)
                pdf = pd.DataFrame({
                    "path": df["path"].astype(str).values,
                    "subject": df["subject"].astype(str).values if "subject" in df else "",
                    "view": df["view"].astype(str).values if "view" in df else "",
                    "label": y, "pred": pred})
                for k in range(data.K):
                    pdf[f"p_{k}"] = np.round(probs[:, k], 6)
                with atomic_write(run.dir / "predictions.csv", "w", encoding="utf-8", newline="") as f:
                    pdf.to_csv(f, index=False)
        out.update(self.extra_metrics())
        return out

    def extra_metrics(self) -> dict:
        return {}


# ----------------------------------------------------------------------------------------------


class FeatureTask(_TaskBase):
    """Frozen backbone: the head trains on cached embeddings (plus augmented views)."""

    per_epoch_bar = True

    def __init__(self, run, model):
        super().__init__(run, model)
        from .features import FeatureCache

        cfg, data = self.cfg, self.data
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
            df = data.rows(split).reset_index(drop=True)
            if len(df) == 0:
                continue
            views = cfg.aug_views if split == "train" else 0
            bad: set[int] = set()

            def on_error(i, reason, df=df, bad=bad):
                bad.add(i)
                data.aside(df.iloc[i].to_dict(), reason)

            arr = self.cache.get(df, views=views, aug_spec=cfg.augment, desc=f"features {split}", on_error=on_error,
                                 rotate_deg=cfg.rotate, crop_scale=cfg.crop_scale, noise_std=cfg.noise_std)
            ok = np.array([i not in bad for i in range(len(df))], dtype=bool) & np.isfinite(arr).all(axis=(1, 2))
            df, arr = df[ok].reset_index(drop=True), arr[ok]
            y = df["label"].astype(int).values
            if split == "train":
                # every view of an image is a training row (views of one image stay together in the cache)
                self.X[split] = torch.from_numpy(arr.reshape(-1, arr.shape[-1]).copy())
                self.Y[split] = torch.from_numpy(np.repeat(y, arr.shape[1]))
            else:
                self.X[split] = torch.from_numpy(arr[:, 0].copy())
                self.Y[split] = torch.from_numpy(y.copy())
            self.dfs[split] = df
        if "train" not in self.X or len(self.Y["train"]) == 0:
            raise RuntimeError("no readable training images")
        st = self.cache.stats
        self.feature_seconds = time.perf_counter() - t0
        say(f"  features: {st['computed']} computed, {st['reused']} reused from the cache "
            f"({self.feature_seconds:.1f} s; {self.cache.dir})")
        self.loss_fn = self._loss_fn(self.Y["train"].numpy())
        self.pending: dict = {}
        n = len(self.Y["train"])
        self.steps_per_epoch = _n_batches(n, cfg.batch_size)

    def has_split(self, split: str) -> bool:
        return split in self.X

    def split_df(self, split: str):
        return self.dfs[split]

    def params(self):
        return list(self.model.head.parameters())

    def model_state(self) -> dict:  # the backbone is frozen: only the head changes
        return {k: v.detach().clone() for k, v in self.model.head.state_dict().items()}

    def load_state(self, sd: dict) -> None:
        self.model.head.load_state_dict(sd, strict=True)

    # An epoch on cached features takes milliseconds; writing the whole model (backbone
    # included) twice per epoch would dominate. The head's best and last states are kept
    # in memory (and in last_state.pt for resume) and written as checkpoints at the end.
    def save(self, stem: Path, epoch: int) -> None:
        self.pending[stem.name] = (self.model_state(), epoch)

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
                _TaskBase.save(self, self.run.wdir / name, epoch)
        self.load_state(current)

    def train_epoch(self, epoch, gen, opt, sched) -> dict:
        head, cfg = self.model.head, self.cfg
        X, Y = self.X["train"], self.Y["train"]
        head.train()
        order = _order(len(Y), Y, cfg.balance, gen)
        nb = self.steps_per_epoch
        tot_loss, correct, seen = 0.0, 0, 0
        for b in range(nb):
            idx = order[b * cfg.batch_size:(b + 1) * cfg.batch_size]
            x, y = X[idx].to(self.run.device), Y[idx].to(self.run.device)
            out = head(x)
            loss = self.loss_fn(out, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            with torch.no_grad():
                pred = torch.from_numpy(predict_labels(head.probs(out.detach()).cpu().numpy(), cfg.ordinal))
            tot_loss += float(loss.detach()) * len(y)
            correct += int((pred == y.cpu()).sum())
            seen += len(y)
            _check_interrupt(cfg, epoch, b, nb)
        return {"loss": tot_loss / max(seen, 1), "acc": correct / max(seen, 1), "images": seen}

    @torch.no_grad()
    def evaluate(self, split: str):
        head = self.model.head
        head.eval()
        x, y = self.X[split].to(self.run.device), self.Y[split].to(self.run.device)
        out = head(x)
        loss = float(self.loss_fn(out, y))
        return loss, head.probs(out).cpu().numpy(), y.cpu().numpy()

    def extra_metrics(self) -> dict:
        return {"feature_seconds": round(self.feature_seconds, 2), "features_computed": self.cache.stats["computed"],
                "features_reused": self.cache.stats["reused"], "feature_cache": str(self.cache.dir),
                "aug_views": self.cfg.aug_views, "train_rows": int(len(self.Y["train"]))}


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


def _n_batches(n: int, bs: int) -> int:
    nb = max(1, math.ceil(n / bs))
    if nb > 1 and n % bs == 1:  # a last batch of one sample breaks batch norm: fold it away
        nb -= 1
    return nb


# ----------------------------------------------------------------------------------------------


class ImageTask(_TaskBase):
    """``finetune`` and ``distill``: the model sees augmented crops; crops decoded once, kept in memory."""

    def __init__(self, run, model):
        super().__init__(run, model)
        from ..data.images import CropCache
        from .augment import BatchAugment

        cfg, data = self.cfg, self.data
        self.channels_last = bool(cfg.channels_last)
        t0 = time.perf_counter()
        self.stores = {}
        for split in ("train", "val", "test"):
            df = data.rows(split)
            if len(df):
                self.stores[split] = CropStore(df, run.pre, cache=CropCache(), workers=cfg.workers,
                                               progress=cfg.progress, desc=f"crops {split}", on_error=data.aside)
        if "train" not in self.stores or len(self.stores["train"]) == 0:
            raise RuntimeError("no readable training images")
        self.load_seconds = time.perf_counter() - t0
        say(f"  crops: {sum(len(s) for s in self.stores.values())} images at {run.pre.size} px in memory "
            f"({self.load_seconds:.1f} s, decoded-crop cache)")
        model.to(run.device)
        if cfg.mode == "finetune" and cfg.unfreeze is not None:
            model.freeze_backbone(int(cfg.unfreeze))
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        self.aug = BatchAugment(cfg.augment, run.pre.size, cfg.rotate, cfg.crop_scale, cfg.noise_std)
        self.loss_fn = self._loss_fn(self.stores["train"].y.numpy())
        self.distiller = None
        if cfg.mode == "distill":
            from .distill import Distiller

            self.distiller = Distiller.from_run(cfg.teacher, model, data.classes, temperature=cfg.temperature,
                                                alpha=cfg.alpha, embed_weight=cfg.embed_weight,
                                                embed_center=cfg.embed_center,
                                                precision=run.precision, device=run.device,
                                                channels_last=self.channels_last)
        self.steps_per_epoch = _n_batches(len(self.stores["train"]), cfg.batch_size)
        self.ema = None
        if cfg.ema > 0:
            from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

            # batch-norm statistics are averaged too (use_buffers), so the average is a model of its own
            self.ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema), use_buffers=True)
            self.ema.requires_grad_(False)

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
                "ema": None if self.ema is None else _copy_state(self.ema)}

    def load_extra_state(self, st) -> None:
        if st is None:
            return
        if "distiller" not in st and "ema" not in st:  # written before --ema existed: the distiller's state
            st = {"distiller": st, "ema": None}
        if self.distiller is not None and st["distiller"] is not None:
            self.distiller.load_state(st["distiller"])
        if self.ema is not None:  # --resume takes --ema from args.yaml: a run with an average saved one
            self.ema.load_state_dict(st["ema"])

    def _train_mode(self) -> None:
        self.model.train()
        # frozen parts (--unfreeze N) keep their batch-norm statistics
        for m in self.model.backbone.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and not any(p.requires_grad for p in m.parameters()):
                m.eval()

    def _batch(self, x_uint8: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        x = self.aug(x_uint8.to(self.run.device), gen)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def train_epoch(self, epoch, gen, opt, sched) -> dict:
        from tqdm.auto import tqdm

        from .features import autocast_context

        cfg, store = self.cfg, self.stores["train"]
        if self.distiller is not None and self.distiller.embed_center and self.distiller.center is None:
            # once per run: a resumed run has it from last_state.pt (no RNG is drawn here, so resume stays exact)
            t1 = time.perf_counter()
            self.distiller.fit_center(store.x)
            say(f"  teacher's mean embedding of {len(store)} training crops: the centre of its targets "
                f"({time.perf_counter() - t1:.1f} s)")
        self._train_mode()
        if self.distiller is not None:
            self.distiller.train()
        order = _order(len(store), store.y, cfg.balance, gen)
        nb = self.steps_per_epoch
        tot_loss, correct, seen = 0.0, 0, 0
        t0 = time.perf_counter()
        bar = tqdm(range(nb), desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="batch", disable=not cfg.progress,
                   leave=False, dynamic_ncols=True)
        for b in bar:
            idx = order[b * cfg.batch_size:(b + 1) * cfg.batch_size]
            x = self._batch(store.x[idx], gen)
            y = store.y[idx].to(self.run.device)
            lam, perm = _mixup_draw(cfg.mixup, len(y), gen)
            if perm is not None:
                x = lam * x + (1.0 - lam) * x[perm]
            with autocast_context(self.run.precision, self.run.device):
                feats = self.model.features(x)
                out = self.model.head(feats)
            out = out.float()
            loss = self.loss_fn(out, y)
            if perm is not None:
                loss = lam * loss + (1.0 - lam) * self.loss_fn(out, y[perm])
            if self.distiller is not None:
                loss = self.distiller.loss(x, feats.float(), out, loss, self.model)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if self.ema is not None:
                self.ema.update_parameters(self.model)
            with torch.no_grad():
                pred = torch.from_numpy(predict_labels(self.model.probs_from_outputs(out.detach()).cpu().numpy(), cfg.ordinal))
            tot_loss += float(loss.detach()) * len(y)
            correct += int((pred == y.cpu()).sum())
            seen += len(y)
            el = time.perf_counter() - t0
            bar.set_postfix_str(f"loss {tot_loss / seen:.3f} acc {correct / seen:.3f} {seen / max(el, 1e-9):.1f} img/s")
            _check_interrupt(cfg, epoch, b, nb)
        bar.close()
        return {"loss": tot_loss / max(seen, 1), "acc": correct / max(seen, 1), "images": seen}

    @torch.no_grad()
    def predict_outputs(self, x_uint8: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
        from .augment import to_float
        from .features import autocast_context

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

    def evaluate(self, split: str):
        store = self.stores[split]
        out = self.predict_outputs(store.x)
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
