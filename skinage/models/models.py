"""``skinage models``: the backbones of the registry, with their parameters, MACs and pretrained weights.

>>> build_config(ModelsConfig, {"json": "yes"})
ModelsConfig(json=True)
"""

from __future__ import annotations

import argparse
import json as _json
from dataclasses import dataclass, field
from typing import Any

from ..config import add_config_arguments, build_config, config_from_args
from ..preprocess import Preprocess
from . import weights
from .registry import create_backbone, get_config, list_models

__all__ = ["ModelsConfig", "models", "model_stats", "add_arguments", "run"]


@dataclass
class ModelsConfig:
    """Options of ``skinage models`` (also the keywords of :func:`models`)."""

    json: bool = field(default=False, metadata={"help": "print the table as JSON"})


def model_stats(name: str, size: int | None = None) -> dict:
    """Parameters and multiply-accumulates of backbone ``name`` on one ``size`` x ``size`` image
    (default: its own input size)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    side = size or Preprocess.for_model(name).size
    backbone, _, _ = create_backbone(name, pretrained=False)
    backbone.eval()
    params = sum(p.numel() for p in backbone.parameters())
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        backbone(torch.zeros(1, 3, side, side))
    return {"params": params, "macs": fc.get_total_flops() // 2}


def models(**options: Any) -> list[dict]:
    """One row per backbone: parameters (millions), MACs (millions), input side, feature size, whether its
    ImageNet weights are installed here, and the library it comes from; the Python form of ``skinage models``
    (``json`` only chooses how the command prints the rows)."""
    build_config(ModelsConfig, options)
    rows = []
    for name in list_models():
        cfg = get_config(name)
        st = model_stats(name)
        rows.append({
            "model": name,
            "params_M": round(st["params"] / 1e6, 2),
            "MMACs": round(st["macs"] / 1e6),
            "input": Preprocess.for_model(name).size,
            "features": cfg.feature_dim,
            "imagenet_weights": "yes" if weights.available(name) else "no (scratch or distill)",
            "source": cfg.source,
        })
    return rows


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, ModelsConfig)


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(ModelsConfig, args)
    rows = models()
    if cfg.json:
        print(_json.dumps(rows, indent=2))
        return 0
    cols = list(rows[0])
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in cols}
    print("  ".join(c.ljust(widths[c]) for c in cols))
    for r in rows:
        print("  ".join(str(r[c]).ljust(widths[c]) for c in cols))
    print("\n(params and MACs of the backbone at its input size; ImageNet weights are installed by `make setup`)")
    return 0
