"""Where and how a model computes: the device, bf16 autocast, the number of CPU threads.

>>> resolve_precision("fp32")
'fp32'
>>> import torch
>>> with torch_threads(1):
...     torch.get_num_threads()
1
>>> with autocast_context("fp32"):
...     (torch.ones(2) * 2).dtype
torch.float32
"""

from __future__ import annotations

import contextlib
from typing import Iterator, Optional

import torch

__all__ = ["resolve_device", "cpu_supports_bf16", "resolve_precision", "autocast_context", "torch_threads"]


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when a GPU is available, else ``cpu``; any other name is kept."""
    if device != "auto":
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def cpu_supports_bf16() -> bool:
    """Whether this CPU runs bf16 natively (AVX-512 BF16 or AMX), from /proc/cpuinfo flags."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            flags = f.read()
    except OSError:
        return False
    return any(flag in flags for flag in ("avx512_bf16", "amx_bf16"))


def resolve_precision(precision: str, device: str = "cpu") -> str:
    """``auto`` -> ``bf16`` where the CPU (or GPU) supports it natively, else ``fp32``; others are kept."""
    if precision != "auto":
        return precision
    if device.startswith("cuda"):
        return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if cpu_supports_bf16() else "fp32"


def autocast_context(precision: str, device: str = "cpu"):
    """``torch.autocast`` to bf16 for ``precision="bf16"``, a context that changes nothing for fp32."""
    dev = "cuda" if device.startswith("cuda") else "cpu"
    return torch.autocast(dev, dtype=torch.bfloat16, enabled=(precision == "bf16"))


@contextlib.contextmanager
def torch_threads(n: Optional[int]) -> Iterator[None]:
    """Run the block with ``n`` torch CPU threads (0 or None: leave the number as it is); restore it after.

    The number is restored however the block ends (an error, an interrupt), so a command run from
    Python leaves the caller's setting as it found it.
    """
    before = torch.get_num_threads()
    try:
        if n:
            torch.set_num_threads(int(n))
        yield
    finally:
        torch.set_num_threads(before)
