"""SkinageModel: backbone + head, with normalisation inside the model.

The model takes float RGB in [0, 1] of shape (B, 3, H, W); mean/std are buffers
of the model, so an exported graph needs nothing but pixels.

>>> import torch
>>> m = SkinageModel("squeezenet1_1", num_classes=3, hidden=(16,), pretrained=False).eval()
>>> m(torch.rand(2, 3, 64, 64)).shape
torch.Size([2, 3])
>>> torch.allclose(m.predict_proba(torch.rand(2, 3, 64, 64)).sum(1), torch.ones(2))
True

Test-time augmentation: with ``tta="flip"`` an eval-mode forward averages the raw outputs
of each image and its mirror image, so a face and its mirror get the same prediction:

>>> m.tta = "flip"
>>> x = torch.rand(2, 3, 64, 64)
>>> torch.allclose(m(x), m(x.flip(-1)), atol=1e-5)
True
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn

from .heads import Head
from .registry import create_backbone, get_config

__all__ = ["SkinageModel", "TTA_CHOICES", "check_tta"]

#: test-time augmentations: none, or the mean of the outputs of the image and its mirror image
TTA_CHOICES = ("none", "flip")


def check_tta(tta: str | None) -> str | None:
    """Normalise a ``--tta`` value (``None``/``"none"`` -> ``None``); a clear error for anything else."""
    if tta in (None, "", "none"):
        return None
    if tta not in TTA_CHOICES:
        raise ValueError(f"unknown test-time augmentation {tta!r}; choose one of {', '.join(TTA_CHOICES)}")
    return tta


class SkinageModel(nn.Module):
    """A registry backbone with a classification head.

    Parameters
    ----------
    backbone : str
        Registry name (``skinage models`` lists them).
    num_classes : int
        Number of classes / levels.
    hidden, dropout, batchnorm, ordinal :
        Head options, see :class:`skinage.models.heads.Head`.
    pretrained : bool
        Start the backbone from the ImageNet weights installed by ``make setup``.
    tta : str or None
        Test-time augmentation of eval-mode forwards: ``None`` or ``"flip"`` (the raw outputs of
        the image and its horizontal mirror, averaged). Training forwards never use it; a
        checkpoint stores it, so evaluate, predict and export follow it.
    """

    def __init__(self, backbone: str, num_classes: int, *, hidden: Sequence[int] = (), dropout=0.0,
                 batchnorm: bool = False, ordinal: str | None = None, pretrained: bool = True,
                 tta: str | None = None):
        super().__init__()
        self.tta = check_tta(tta)
        cfg = get_config(backbone)
        self.backbone_name = backbone
        self.backbone, cam, self.weights_from = create_backbone(backbone, pretrained)
        self._cam = [cam]  # a plain list: a reference into the backbone, not a second registered module
        self.register_buffer("mean", torch.tensor(cfg.mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(cfg.std, dtype=torch.float32).view(1, 3, 1, 1))
        self.head = Head(cfg.feature_dim, num_classes, hidden=hidden, dropout=dropout,
                         batchnorm=batchnorm, ordinal=ordinal)
        self.head_config = {"hidden": [int(h) for h in hidden],
                            "dropout": list(dropout) if isinstance(dropout, (list, tuple)) else float(dropout),
                            "batchnorm": bool(batchnorm), "ordinal": ordinal}
        self.num_classes = num_classes
        self.feature_dim = cfg.feature_dim

    @property
    def cam_layer(self) -> nn.Module:
        """The last convolutional block (target layer for Grad-CAM)."""
        return self._cam[0]

    @property
    def ordinal(self) -> str | None:
        return self.head.ordinal

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled backbone embeddings (B, feature_dim) of [0, 1] images."""
        return self.backbone(self.normalize(x))

    def _flip_tta(self) -> bool:
        return self.tta == "flip" and not self.training

    def _views(self, x: torch.Tensor) -> torch.Tensor:
        """The batch the backbone sees: the images, then (flip TTA) their mirrors."""
        return torch.cat([x, x.flip(-1)], dim=0) if self._flip_tta() else x

    def _merge(self, out: torch.Tensor) -> torch.Tensor:
        """Raw outputs of :meth:`_views` -> one row per image (the mean of each image and its mirror)."""
        return out.reshape(2, -1, out.shape[-1]).mean(dim=0) if self._flip_tta() else out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._merge(self.head(self.features(self._views(x))))

    def outputs_and_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(forward(x), features(x))`` in one pass: raw outputs (with ``tta``) and the plain view's embeddings."""
        f = self.features(self._views(x))
        return self._merge(self.head(f)), f[: x.shape[0]]

    def probs_from_outputs(self, outputs: torch.Tensor) -> torch.Tensor:
        return self.head.probs(outputs)

    @torch.no_grad()
    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        return self.probs_from_outputs(self(x))

    def freeze_backbone(self, unfreeze_last: int = 0) -> None:
        """Freeze the backbone, optionally leaving its last ``unfreeze_last`` child blocks trainable."""
        for p in self.backbone.parameters():
            p.requires_grad = False
        if unfreeze_last > 0:
            blocks = _blocks(self.backbone)
            for b in blocks[-unfreeze_last:]:
                for p in b.parameters():
                    p.requires_grad = True


def _blocks(backbone: nn.Module) -> list[nn.Module]:
    """The backbone's sequence of blocks, finest first-level granularity (for --unfreeze N)."""
    seq = backbone[0] if isinstance(backbone, nn.Sequential) and isinstance(backbone[0], nn.Sequential) else None
    if seq is not None:  # torchvision: Sequential(features, pool, flatten)
        return list(seq.children())
    # timm EfficientNet: conv_stem, bn1, blocks[*][*], conv_head, bn2
    out: list[nn.Module] = [backbone.conv_stem, backbone.bn1]
    for stage in backbone.blocks:
        out.extend(stage.children())
    out.extend([backbone.conv_head, backbone.bn2])
    return out
