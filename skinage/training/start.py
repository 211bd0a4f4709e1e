"""The model a training run starts from: a registry backbone with the run's head, optionally ``--init`` weights."""

from __future__ import annotations

from ..config import ConfigError
from ..utils import say

__all__ = ["build_model", "init_from"]


def build_model(cfg, num_classes: int):
    """The :class:`skinage.models.model.SkinageModel` of a run's options (backbone, head, ordinal, tta)."""
    from ..models.model import SkinageModel
    from ..models.weights import WeightsMissing

    try:
        return SkinageModel(cfg.model, num_classes, hidden=cfg.hidden, dropout=cfg.dropout, batchnorm=cfg.batchnorm,
                            ordinal=cfg.ordinal, pretrained=cfg.pretrained, tta=cfg.tta)
    except WeightsMissing as e:
        raise ConfigError(f"{e}; or train from scratch with --no-pretrained") from None


def init_from(model, path, classes) -> None:
    """Copy every tensor of a run's checkpoint whose name and shape match (``--init``)."""
    from ..models.checkpoint import load_checkpoint

    src, meta = load_checkpoint(path)
    if meta["model"] != model.backbone_name:
        raise ConfigError(f"--init {path} is a {meta['model']} checkpoint; this run trains {model.backbone_name}")
    if [str(c) for c in meta["classes"]] != list(classes):
        raise ConfigError(f"--init {path} predicts {meta['classes']}, this data has {list(classes)}")
    own = model.state_dict()
    take = {k: v for k, v in src.state_dict().items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(take, strict=False)
    skipped = len(own) - len(take)
    model.weights_from = f"run:{meta.get('checkpoint', path)} (from {meta.get('weights_from')})"
    say(f"  initialised from {path}: {len(take)} tensors" + (f", {skipped} kept fresh (head differs)" if skipped else ""))
