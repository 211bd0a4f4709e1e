"""Classification heads: an MLP with dropout / batch norm, plain or ordinal output.

``ordinal=None`` gives K logits (softmax cross-entropy). ``"coral"`` (rank-consistent,
shared weights, K-1 biases) and ``"corn"`` (conditional, K-1 logits) predict a level
that respects the order of the classes; both come from coral-pytorch.

>>> import torch
>>> head = Head(8, 4, hidden=(16,), dropout=(0.1,), ordinal="corn")
>>> out = head(torch.randn(5, 8))
>>> out.shape, head.probs(out).shape
(torch.Size([5, 3]), torch.Size([5, 4]))
>>> bool(torch.allclose(head.probs(out).sum(1), torch.ones(5)))
True
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["Head", "make_loss", "ORDINAL_CHOICES"]

ORDINAL_CHOICES = (None, "corn", "coral")


def _broadcast_dropout(dropout: float | Sequence[float] | None, n: int) -> list[float]:
    if dropout is None:
        return [0.0] * n
    if isinstance(dropout, (int, float)):
        return [float(dropout)] * n
    d = [float(x) for x in dropout]
    if len(d) == 1:
        return d * n
    if len(d) != n:
        raise ValueError(f"dropout has {len(d)} values but the head has {n} dropout places "
                         f"(one per hidden layer, or one before the output when there is none); give 1 or {n}")
    return d


class Head(nn.Module):
    """MLP head: ``[Linear -> (BatchNorm) -> ReLU -> Dropout] * len(hidden) -> output``.

    Parameters
    ----------
    in_dim : int
        Feature size of the backbone (e.g. 1280).
    num_classes : int
        K, the number of classes (levels).
    hidden : sequence of int
        Hidden layer sizes, e.g. ``(256, 32)``; empty for a linear head.
    dropout : float or sequence of float
        Dropout after each hidden layer (one value for all), or before the output
        layer when there is no hidden layer.
    batchnorm : bool
        Batch norm after each hidden Linear.
    ordinal : None, "corn" or "coral"
        Output type; the output has K (None) or K-1 (ordinal) columns.
    """

    def __init__(self, in_dim: int, num_classes: int, hidden: Sequence[int] = (), dropout=0.0,
                 batchnorm: bool = False, ordinal: str | None = None):
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"a classifier needs at least 2 classes, got {num_classes}")
        if ordinal not in ORDINAL_CHOICES:
            raise ValueError(f"ordinal must be one of None, 'corn', 'coral', got {ordinal!r}")
        hidden = tuple(int(h) for h in (hidden or ()))
        drops = _broadcast_dropout(dropout, max(len(hidden), 1))
        layers: list[nn.Module] = []
        d = in_dim
        for h, p in zip(hidden, drops):
            layers.append(nn.Linear(d, h))
            if batchnorm:
                layers.append(nn.BatchNorm1d(h))
            layers.append(nn.ReLU(inplace=True))
            if p > 0:
                layers.append(nn.Dropout(p))
            d = h
        if not hidden and drops[0] > 0:
            layers.append(nn.Dropout(drops[0]))
        self.body = nn.Sequential(*layers)
        self.num_classes = num_classes
        self.ordinal = ordinal
        if ordinal == "coral":
            from coral_pytorch.layers import CoralLayer

            self.out = CoralLayer(d, num_classes)
        else:
            self.out = nn.Linear(d, num_classes - 1 if ordinal == "corn" else num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.body(x))

    def probs(self, outputs: torch.Tensor) -> torch.Tensor:
        """Class probabilities (B, K) from the head's raw outputs."""
        return outputs_to_probs(outputs, self.ordinal)


def outputs_to_probs(outputs: torch.Tensor, ordinal: str | None) -> torch.Tensor:
    """Class probabilities from raw outputs.

    CORAL outputs are P(y > k); CORN outputs are P(y > k | y > k-1), whose cumulative
    product is P(y > k). Class probabilities are the differences of the cumulative ones.

    >>> import torch
    >>> outputs_to_probs(torch.zeros(1, 3), None)
    tensor([[0.3333, 0.3333, 0.3333]])
    >>> outputs_to_probs(torch.zeros(1, 2), "coral")  # P(y>0)=.5, P(y>1)=.5
    tensor([[0.5000, 0.0000, 0.5000]])
    """
    if ordinal is None:
        return F.softmax(outputs.float(), dim=1)
    p = torch.sigmoid(outputs.float())
    if ordinal == "corn":
        p = torch.cumprod(p, dim=1)
    else:  # coral: enforce monotone cumulative probabilities for the difference
        p = torch.cummin(p, dim=1).values
    ones = torch.ones_like(p[:, :1])
    zeros = torch.zeros_like(p[:, :1])
    cum = torch.cat([ones, p, zeros], dim=1)  # P(y > k-1) for k = 0..K
    return (cum[:, :-1] - cum[:, 1:]).clamp_min(0)


def make_loss(num_classes: int, ordinal: str | None = None, class_weights: torch.Tensor | None = None,
              label_smoothing: float = 0.0):
    """The training loss for a head's outputs: ``loss(outputs, targets) -> scalar``.

    Class weights apply to cross-entropy (per class) and to CORAL/CORN (per sample,
    by the sample's class).
    """
    if ordinal is None:
        return nn.CrossEntropyLoss(weight=class_weights, label_smoothing=label_smoothing)
    if ordinal == "coral":
        from coral_pytorch.dataset import levels_from_labelbatch
        from coral_pytorch.losses import coral_loss

        def loss(outputs, y):
            levels = levels_from_labelbatch(y, num_classes).to(outputs.device, outputs.dtype)
            per = coral_loss(outputs.float(), levels.float(), reduction=None)
            if class_weights is not None:
                w = class_weights.to(per.device)[y]
                return (per * w).sum() / w.sum()
            return per.mean()

        return loss
    if ordinal == "corn":
        from coral_pytorch.losses import corn_loss

        def loss(outputs, y):
            if class_weights is None:
                return corn_loss(outputs.float(), y, num_classes)
            # weighted: average of per-class-group CORN losses weighted by class weight
            total, norm = 0.0, 0.0
            for c in torch.unique(y):
                m = y == c
                w = float(class_weights[int(c)])
                total = total + w * m.sum() * corn_loss(outputs[m].float(), y[m], num_classes)
                norm += w * float(m.sum())
            return total / max(norm, 1e-12)

        return loss
    raise ValueError(f"unknown ordinal type {ordinal!r}")
