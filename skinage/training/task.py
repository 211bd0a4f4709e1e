"""What the training loop drives: a *task* owns a run's data, model and forward pass.

The loop (:mod:`skinage.training.loop`) owns the optimiser, the schedule, the batches, the epoch
selection and the files; a task answers its questions. :class:`Task` is the part the tasks share;
:class:`skinage.training.feature_task.FeatureTask` trains a head on cached embeddings and
:class:`skinage.training.image_task.ImageTask` trains on augmented crops (``finetune``, ``distill``).

A task provides

* ``train_labels``: the labels of the training rows (a long tensor; the loop deals out their indices);
* ``params()``: what the optimiser trains; ``begin_epoch()``; ``step(idx, gen) -> (outputs, y, loss)``
  for the training rows ``idx``; ``after_step()`` after each optimiser step;
* ``trainer``: one module holding every trained parameter whose ``forward`` is the one ``step`` calls
  (the loop wraps it in DistributedDataParallel when several processes train);
* ``split_size(split)``, ``outputs(split, rows=None)`` (raw outputs of the scored weights for some rows),
  ``score(split, outputs) -> (loss, probs, y)`` over a whole split's outputs, and :meth:`Task.evaluate`,
  the two together; ``has_split(split)``, ``split_df(split)``;
* ``save(name, epoch)`` / ``flush()`` (checkpoints), ``model_state()`` / ``extra_state()`` and their loaders
  (``weights/last_state.pt``), ``extra_metrics()`` (metrics.json).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from .optim import class_weights

__all__ = ["Task", "copy_state"]


def copy_state(module: nn.Module) -> dict:
    """A detached copy of ``module.state_dict()`` (for ``last_state.pt``)."""
    return {k: v.detach().clone().contiguous() for k, v in module.state_dict().items()}


class Task:
    """The part of a task every mode shares (see the module doc)."""

    #: True: the loop shows one bar over the epochs (epochs take milliseconds); False: one per epoch's batches
    per_epoch_bar = False
    #: the model computes in channels-last memory format (checkpoints are written contiguous)
    channels_last = False

    def __init__(self, run, model):
        self.run = run
        self.cfg = run.cfg
        self.model = model
        self.data = run.data
        self.class_weight_values = None

    @property
    def net(self):
        """The weights that are scored, saved and exported (ImageTask: the moving average under ``--ema``)."""
        return self.model

    def make_loss(self, y_train: np.ndarray):
        """The training loss (class weights from ``y_train`` unless ``--no-class-weights`` or ``--balance``)."""
        from ..models.heads import make_loss

        cfg = self.cfg
        w = class_weights(y_train, self.data.K) if (cfg.class_weights and not cfg.balance) else None
        self.class_weight_values = None if w is None else [round(float(v), 4) for v in w]
        return make_loss(self.data.K, cfg.ordinal, w, cfg.label_smoothing)

    def evaluate(self, split: str):
        """Loss, class probabilities and labels of the scored weights on a whole split."""
        return self.score(split, self.outputs(split))

    def loss_norm(self, y: torch.Tensor) -> float:
        """What the training loss of rows with labels ``y`` is normalised by: their class weights' sum (the
        weighted cross-entropy's and CORAL's denominator), or their number."""
        if self.class_weight_values is None:
            return float(len(y))
        return float(torch.tensor(self.class_weight_values, dtype=torch.float64)[y.cpu()].sum())

    def require_val(self) -> None:
        if not self.has_split("val"):
            raise RuntimeError("no readable validation images: every image of the val split was set aside "
                               f"(reasons in the run's set_aside.csv once written; {len(self.data.set_aside)} so far)")

    def probs(self, outputs: torch.Tensor) -> torch.Tensor:
        """Class probabilities of the model's raw outputs."""
        return self.model.probs_from_outputs(outputs)

    def begin_epoch(self) -> None:
        """Put the trained modules in training mode."""
        self.model.train()

    def after_step(self) -> None:
        """Called after each optimiser step."""

    # -- checkpoints and resumable state ------------------------------------------------------------
    def save(self, name: str, epoch: int) -> None:
        """Checkpoint ``weights/<name>.*`` of the scored weights after epoch ``epoch`` (0-based)."""
        net = self.net
        net.to(memory_format=torch.contiguous_format)
        self.run.save_checkpoint(net, name, epoch + 1)
        if self.channels_last:
            net.to(memory_format=torch.channels_last)

    def flush(self) -> None:
        """Write checkpoints a task kept in memory (feature mode); nothing for the others."""

    def load_best(self) -> None:
        """Load the best epoch's checkpoint into the scored weights (every rank gets rank 0's file)."""
        self.net.load_state_dict(self.run.read_checkpoint("best"), strict=True)

    def model_state(self) -> dict:
        return copy_state(self.model)

    def load_state(self, sd: dict) -> None:
        self.model.load_state_dict(sd, strict=True)

    def extra_state(self):
        return None

    def load_extra_state(self, st) -> None:
        pass

    def extra_metrics(self) -> dict:
        return {}
