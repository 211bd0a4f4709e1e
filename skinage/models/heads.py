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

__all__ = ["Head", "make_loss", "outputs_to_probs", "ORDINAL_CHOICES"]

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
    """Class probabilities (B, K) from a head's raw outputs: the model's and the exported graph's.

    A plain head's K logits go through a softmax. CORAL outputs are P(y > k); CORN outputs are
    P(y > k | y > k-1), whose running product is P(y > k); CORAL's are made monotone by a running
    minimum. Class probabilities are the differences of the cumulative ones. Written with ops every
    ONNX opset has (no cumprod / cummin): K is small and static, so the running product / minimum is
    unrolled over the K-1 thresholds.

    >>> import torch
    >>> outputs_to_probs(torch.zeros(1, 3), None)
    tensor([[0.3333, 0.3333, 0.3333]])
    >>> outputs_to_probs(torch.zeros(1, 2), "coral")  # P(y>0)=.5, P(y>1)=.5
    tensor([[0.5000, 0.0000, 0.5000]])
    >>> outputs_to_probs(torch.zeros(1, 2), "corn")  # P(y>0)=.5, P(y>1)=.5*.5
    tensor([[0.5000, 0.2500, 0.2500]])
    """
    if ordinal is None:
        return torch.softmax(outputs.float(), dim=1)
    p = torch.sigmoid(outputs.float())
    cols = [p[:, 0:1]]  # P(y > 0), then P(y > k) for k = 1..K-2
    for k in range(1, p.shape[1]):
        if ordinal == "corn":
            cols.append(cols[-1] * p[:, k:k + 1])
        else:  # coral: enforce monotone cumulative probabilities for the difference
            cols.append(torch.minimum(cols[-1], p[:, k:k + 1]))
    ones = torch.ones_like(cols[0])
    zeros = torch.zeros_like(cols[0])
    cum = torch.cat([ones, *cols, zeros], dim=1)  # P(y > k-1) for k = 0..K
    return torch.clamp(cum[:, :-1] - cum[:, 1:], min=0.0)


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
