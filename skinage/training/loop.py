"""The training loop of ``skinage train``: epochs, batches, validation, the best epoch, resume.

:func:`fit` runs the epochs of a *task* (:mod:`skinage.training.task`): AdamW and the learning-rate
schedule (:mod:`skinage.training.optim`), each epoch's batches (:mod:`skinage.training.batches`),
the validation score and epoch selection (:mod:`skinage.training.selection`), early stopping, and
after every epoch the ``best`` / ``last`` checkpoints and ``weights/last_state.pt``, written through
the run (:class:`skinage.training.run.Run`). :func:`finish` scores the best epoch on val and test.

Exact resume: every epoch starts by seeding all RNGs from ``(seed, epoch)``
(:mod:`skinage.training.reproduce`), so an epoch is a pure function of the weights and optimiser
state before it; those are saved in ``weights/last_state.pt`` after every epoch (the file is the
source of truth: written last, atomically).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from ..models.decode import predict_labels
from ..utils import say
from .batches import epoch_batches, n_batches
from .distributed import shard_rows
from .optim import adamw, lr_scheduler
from .reproduce import rng_state, seed_epoch, set_rng_state
from .selection import compute_metrics, epoch_score, results_columns, selection_metric

__all__ = ["TrainingInterrupted", "Standing", "fit", "train_epoch", "rank_generator", "score_split", "finish"]


class TrainingInterrupted(KeyboardInterrupt):
    """Raised by the ``interrupt_at`` test hook, like a Ctrl-C or a kill."""


@dataclass
class Standing:
    """Where a run stands between epochs (what ``last_state.pt`` keeps besides the weights and optimiser)."""

    next_epoch: int = 0
    best: tuple = (-math.inf, -math.inf)
    best_epoch: int = -1  # 0-based; -1 before the first epoch
    bad: int = 0  # epochs since the best one
    finished: bool = False

    def record(self, epoch: int, score: tuple, patience: int, epochs: int) -> bool:
        """Take epoch ``epoch``'s score; True when it is the new best (the first epoch always is)."""
        better = self.best_epoch < 0 or score > self.best
        if better:
            self.best, self.best_epoch, self.bad = score, epoch, 0
        else:
            self.bad += 1
        self.next_epoch = epoch + 1
        self.finished = self.stopped(patience) or epoch + 1 >= epochs
        return better

    def stopped(self, patience: int) -> bool:
        return patience > 0 and self.bad >= patience


def _check_interrupt(cfg, epoch: int, b: int, nb: int) -> None:
    if cfg.interrupt_at is not None and epoch + (b + 1) / nb >= cfg.interrupt_at - 1e-9:
        raise TrainingInterrupted(f"interrupted at epoch {epoch + (b + 1) / nb:.2f} (interrupt_at)")


def train_epoch(task, epoch: int, gen: torch.Generator, opt, sched) -> dict:
    """One pass over the task's training rows in batches drawn from ``gen``; ``{"loss", "acc", "images"}``.

    In several processes each rank takes its share of every batch (:func:`epoch_batches`) and draws its
    augmentations and mixup pairs from its own generator (:func:`rank_generator`). Its loss is scaled by
    ``world * norm_rank / sum(norm)`` (``norm``: the rows' class-weight sum, or their number;
    :meth:`skinage.training.task.Task.loss_norm`), so DDP's average of the ranks' gradients is the gradient of
    the global batch's loss (exactly for cross-entropy and CORAL, weighted or not). The loss, accuracy and
    image count reported are summed over the ranks.
    """
    from tqdm.auto import tqdm

    cfg, dist = task.cfg, task.run.dist
    task.begin_epoch()
    y_train = task.train_labels
    batches = epoch_batches(len(y_train), cfg.batch_size, gen, y_train, cfg.balance, dist.rank, dist.world)
    gen = rank_generator(gen, dist)
    tot_loss, correct, seen = 0.0, 0, 0
    t0 = time.perf_counter()
    bar = tqdm(batches, desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="batch", leave=False, dynamic_ncols=True,
               disable=not cfg.progress or task.per_epoch_bar)
    for b, idx in enumerate(bar):
        out, y, loss = task.step(idx, gen)
        # DDP averages the ranks' gradients: each weighted by its share of the global batch's loss
        scaled = loss * dist.share(task.loss_norm(y)) if dist.active else loss
        opt.zero_grad(set_to_none=True)
        scaled.backward()
        opt.step()
        sched.step()
        task.after_step()
        with torch.no_grad():
            pred = torch.from_numpy(predict_labels(task.probs(out.detach()).cpu().numpy(), cfg.ordinal))
        tot_loss += float(loss.detach()) * len(y)
        correct += int((pred == y.cpu()).sum())
        seen += len(y)
        if not bar.disable:
            el = time.perf_counter() - t0
            bar.set_postfix_str(f"loss {tot_loss / seen:.3f} acc {correct / seen:.3f} {seen / max(el, 1e-9):.1f} img/s")
        _check_interrupt(cfg, epoch, b, len(batches))
    bar.close()
    if not cfg.sync_bn:  # per-rank batch-norm statistics: score and save rank 0's
        dist.sync_buffers(task.model, task.net)
    tot_loss, correct, seen = dist.all_sum([tot_loss, correct, seen])
    return {"loss": tot_loss / max(seen, 1), "acc": correct / max(seen, 1), "images": int(seen)}


def rank_generator(gen: torch.Generator, dist) -> torch.Generator:
    """The generator of this rank's steps: ``gen`` itself in one process; in several, a generator (and global
    RNGs, for dropout) seeded from ``gen`` and the rank, so that ranks augment their rows independently."""
    if dist.world <= 1:
        return gen
    s = int(torch.randint(0, 2**62, (1,), generator=gen)) + 1_000_003 * dist.rank
    torch.manual_seed(s)
    return torch.Generator().manual_seed(s)


def score_split(task, split: str) -> tuple[float, dict, "object", "object", "object"]:
    """Loss, metrics (:func:`skinage.training.selection.compute_metrics`), probabilities, labels and
    predicted classes of the scored weights on one split.

    In several processes each rank scores its share of the rows (unpadded) and the outputs are gathered,
    so every rank holds the whole split's (one rank's share is never what is reported)."""
    cfg, data, dist = task.cfg, task.data, task.run.dist
    if dist.active:
        n = task.split_size(split)
        rows = shard_rows(n, dist.rank, dist.world)
        out = dist.gather_rows(rows, task.outputs(split, rows).cpu().numpy(), n)
        loss, probs, y = task.score(split, torch.from_numpy(out))
    else:
        loss, probs, y = task.evaluate(split)
    pred = predict_labels(probs, cfg.ordinal)
    return loss, compute_metrics(y, pred, data.K, data.ordered), probs, y, pred


def _resume(run, task, opt, sched) -> Standing:
    st = run.load_state()
    task.load_state(st["model"])
    opt.load_state_dict(st["optimizer"])
    sched.load_state_dict(st["scheduler"])
    if st.get("extra") is not None:
        task.load_extra_state(st["extra"])
    standing = Standing(next_epoch=int(st["epoch"]) + 1, best=tuple(float(v) for v in st["best_score"]),
                         best_epoch=int(st["best_epoch"]), bad=int(st["bad_epochs"]),
                         finished=bool(st.get("finished", False)))
    set_rng_state(st["rng"])
    say(f"  resuming after epoch {standing.next_epoch} of {run.cfg.epochs} (best so far: epoch {standing.best_epoch + 1})"
        + (" - the run had already finished" if standing.finished else ""))
    return standing


def _row(epoch: int, tr: dict, vloss: float, vm: dict, lr: float, train_time: float, t0: float) -> dict:
    row = {"epoch": epoch + 1, "train_loss": tr["loss"], "train_acc": tr["acc"], "val_loss": vloss}
    row.update(results_columns(vm))
    row.update({"lr": lr, "img_s": round(tr["images"] / max(train_time, 1e-9), 2),
                "time_s": round(time.perf_counter() - t0, 3)})
    return row


def _report(cfg, bar, epoch: int, tr: dict, vloss: float, vm: dict, row: dict, best: bool) -> None:
    msg = f"val acc {vm['accuracy']:.3f} f1 {vm['macro_f1']:.3f}" + (f" qwk {vm['qwk']:.3f}" if "qwk" in vm else "")
    if bar is not None:
        bar.update(1)
        bar.set_postfix_str(f"loss {tr['loss']:.3f} {msg}")
    else:
        say(f"  epoch {epoch + 1}/{cfg.epochs}: train loss {tr['loss']:.4f} acc {tr['acc']:.3f}, val loss {vloss:.4f} {msg}, "
            f"{row['img_s']:.1f} img/s" + (" *" if best else ""))


def fit(run, task) -> int:
    """Train ``task`` for ``run.cfg.epochs`` epochs (or until early stopping), resuming if asked.

    Returns the best epoch (0-based).
    """
    cfg, data = run.cfg, run.data
    params = [p for p in task.params() if p.requires_grad]
    opt = adamw(params, cfg.lr, cfg.weight_decay)
    sched = lr_scheduler(opt, cfg.epochs, n_batches(len(task.train_labels), cfg.batch_size), cfg.warmup,
                         cfg.schedule, cfg.step_size)
    standing = _resume(run, task, opt, sched) if run.resuming else Standing()
    task.trainer = run.dist.wrap(task.trainer, cfg.sync_bn)  # DDP in several processes (rank 0's weights go to all)
    bar = None
    if task.per_epoch_bar:
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.epochs, initial=standing.next_epoch, desc="epochs", unit="ep", disable=not cfg.progress,
                   dynamic_ncols=True)
    while not standing.finished and standing.next_epoch < cfg.epochs:
        epoch = standing.next_epoch
        gen = seed_epoch(cfg.seed, epoch)
        t0 = time.perf_counter()
        tr = train_epoch(task, epoch, gen, opt, sched)
        train_time = time.perf_counter() - t0
        vloss, vm, *_ = score_split(task, "val")
        row = _row(epoch, tr, vloss, vm, opt.param_groups[0]["lr"], train_time, t0)
        run.add_row(row)
        better = standing.record(epoch, epoch_score(vm, vloss, cfg.select, data.ordered), cfg.patience, cfg.epochs)
        if better:
            task.save("best", epoch)
        task.save("last", epoch)
        run.save_state({
            "epoch": epoch, "model": task.model_state(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
            "rng": rng_state(), "best_score": list(standing.best), "best_epoch": standing.best_epoch,
            "bad_epochs": standing.bad, "finished": standing.finished, "extra": task.extra_state(),
        })
        _report(cfg, bar, epoch, tr, vloss, vm, row, better)
        if standing.stopped(cfg.patience):
            say(f"  early stop: no better validation score for {cfg.patience} epochs (best epoch {standing.best_epoch + 1})")
    if bar is not None:
        bar.close()
    task.trainer = run.dist.unwrap(task.trainer)
    task.flush()
    return standing.best_epoch


def finish(run, task, best_epoch: int) -> dict:
    """Reload the best weights, score val and test, write predictions.csv (test); the metrics.json dict."""
    cfg, data = run.cfg, run.data
    task.load_best()
    out = {"model": cfg.model, "mode": cfg.mode, "classes": data.classes, "ordered": data.ordered,
           "ordinal": cfg.ordinal, "best_epoch": best_epoch + 1, "epochs_run": len(run.rows),
           "select": selection_metric(cfg.select, data.ordered),
           "precision": run.precision, "weights_from": task.model.weights_from,
           "preprocessing": run.pre.to_meta(), "carved_val": data.carved_val,
           "class_weights": task.class_weight_values}
    for split in ("val", "test"):
        if not task.has_split(split):
            out[split] = None
            continue
        loss, m, probs, y, pred = score_split(task, split)
        m["loss"] = float(loss)
        out[split] = m
        if split == "test":
            run.write_predictions(task.split_df(split), y, pred, probs)
    out.update(task.extra_metrics())
    return out
