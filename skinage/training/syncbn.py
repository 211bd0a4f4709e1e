"""Batch norm over the whole global batch when several CPU processes train one model.

In training mode a batch norm normalises with its batch's mean and variance. Split over ranks, each rank
would use its own share's statistics: a different function from one process (measured here: the
difference exceeds the update itself), and ``torch.nn.SyncBatchNorm`` refuses CPU tensors. So
:class:`CpuSyncBatchNorm` sums ``(x - c)`` and ``(x - c)^2`` per channel and the row count over the ranks
in one differentiable all-reduce (``c``: the running mean, a shift that keeps the float32 sums from
cancelling), and normalises with the global statistics; the all-reduce's backward sums the gradients of
the statistics over the ranks, so DDP's averaged gradient is the one-process gradient of the global batch
(2 ranks x 8 rows vs 1 x 16: equal to float precision, float64 1e-12 in the recipe's measurement).
Evaluation mode, and training in one process, are plain batch norm. On CUDA ``torch.nn.SyncBatchNorm``
does the same.

Parameter and buffer names are batch norm's, so checkpoints are unchanged.
"""

from __future__ import annotations

import torch
import torch.nn as nn

__all__ = ["AllReduce", "CpuSyncBatchNorm", "sync_batchnorms"]


class AllReduce(torch.autograd.Function):
    """A sum over the ranks whose gradient is the sum over the ranks of the gradients."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        x = x.clone(memory_format=torch.contiguous_format)
        torch.distributed.all_reduce(x)
        return x

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone(memory_format=torch.contiguous_format)
        torch.distributed.all_reduce(grad)
        return grad


class CpuSyncBatchNorm(nn.modules.batchnorm._BatchNorm):
    """A batch norm (any input rank >= 2, channels in dimension 1) whose training statistics span all ranks."""

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"expected an input of at least 2 dimensions (batch, channels, ...), got {x.dim()}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dist = torch.distributed
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        self._check_input_dim(x)
        dims = [0] + list(range(2, x.dim()))
        shape = [1, -1] + [1] * (x.dim() - 2)
        xf = x if x.dtype == torch.float64 else x.float()  # bf16 / fp16 (autocast) statistics in float32
        c = self.running_mean if self.running_mean is not None else torch.zeros(x.shape[1], device=x.device)
        d = xf - c.detach().to(xf.dtype).view(shape)
        count = torch.full((1,), float(x.numel() // x.shape[1]), dtype=xf.dtype, device=x.device)
        total = AllReduce.apply(torch.cat([d.sum(dims), (d * d).sum(dims), count]))
        C, n = x.shape[1], total[-1]
        mean_d = total[:C] / n
        var = (total[C:2 * C] / n - mean_d * mean_d).clamp_min(0.0)
        mean = c + mean_d
        y = (xf - mean.view(shape)) * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            y = y * self.weight.to(xf.dtype).view(shape) + self.bias.to(xf.dtype).view(shape)
        if self.track_running_stats:
            self._update_running(mean.detach(), var.detach(), float(n.detach()))
        return y.to(x.dtype)

    @torch.no_grad()
    def _update_running(self, mean: torch.Tensor, var: torch.Tensor, n: float) -> None:
        """The running statistics as one process's batch norm updates them (unbiased variance)."""
        self.num_batches_tracked.add_(1)
        m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
        unbiased = var * (n / max(n - 1.0, 1.0))
        self.running_mean.mul_(1 - m).add_(mean.to(self.running_mean.dtype), alpha=m)
        self.running_var.mul_(1 - m).add_(unbiased.to(self.running_var.dtype), alpha=m)


def _convert(module: nn.Module) -> nn.Module:
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, CpuSyncBatchNorm):
        new = CpuSyncBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                               module.track_running_stats)
        # the very parameter and buffer objects: an optimiser or moving average made before still holds them
        for name, p in module.named_parameters(recurse=False):
            setattr(new, name, p)
        for name, b in module.named_buffers(recurse=False):
            setattr(new, name, b)
        new.train(module.training)
        return new
    for name, child in module.named_children():
        new = _convert(child)
        if new is not child:
            setattr(module, name, new)
    return module


def sync_batchnorms(module: nn.Module, device: str = "cpu") -> nn.Module:
    """``module`` with every batch norm synchronised across ranks: :class:`CpuSyncBatchNorm` on the CPU,
    ``torch.nn.SyncBatchNorm`` on CUDA. Replaced in place (the parents keep their children's names).

    >>> net = sync_batchnorms(nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4)))
    >>> type(net[1]).__name__, sorted(net[1].state_dict()) == sorted(nn.BatchNorm2d(4).state_dict())
    ('CpuSyncBatchNorm', True)
    """
    if str(device).startswith("cuda"):
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    return _convert(module)

