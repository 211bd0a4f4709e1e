"""Checkpoints that know their model: weights as safetensors, metadata as JSON.

``save_checkpoint(model, meta, "runs/x/weights/best")`` writes ``best.safetensors``
and ``best.json``. The JSON carries everything ``predict`` and ``export`` need:
model name, classes, head, preprocessing (input size, mean/std, interpolation,
crop margin / square), mode, starting weights and package versions.
Loading never unpickles: safetensors only.

>>> import tempfile, torch
>>> from skinage.models.model import SkinageModel
>>> m = SkinageModel("squeezenet1_1", 2, pretrained=False)
>>> stem = tempfile.mkdtemp() + "/best"
>>> _ = save_checkpoint(m, {"classes": ["dark", "bright"]}, stem)
>>> m2, meta = load_checkpoint(stem + ".safetensors")
>>> meta["classes"], meta["model"]
(['dark', 'bright'], 'squeezenet1_1')
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import torch

from ..utils import atomic_write_json
from .model import SkinageModel, check_tta

__all__ = ["save_checkpoint", "load_checkpoint", "resolve_checkpoint", "versions", "model_meta"]


def versions() -> dict:
    import torchvision

    out = {"torch": torch.__version__, "torchvision": torchvision.__version__, "python": platform.python_version()}
    try:
        import timm

        out["timm"] = timm.__version__
    except ImportError:  # pragma: no cover
        pass
    from .. import __version__

    out["skinage"] = __version__
    return out


def model_meta(model: SkinageModel, pre=None) -> dict:
    """The metadata a checkpoint needs to rebuild ``model`` and preprocess like training.

    ``pre`` is the run's :class:`skinage.preprocess.Preprocess` (default: the registry's for the backbone).
    """
    from ..preprocess import Preprocess

    pre = pre or Preprocess.for_model(model.backbone_name)
    return {
        "model": model.backbone_name,
        "num_classes": model.num_classes,
        "head": dict(model.head_config),
        "ordinal": model.ordinal,
        "weights_from": model.weights_from,
        "feature_dim": model.feature_dim,
        "preprocessing": pre.to_meta(),
        "input_range": "RGB float in [0, 1]; normalisation is inside the model",
        "tta": getattr(model, "tta", None),
    }


def save_checkpoint(model: SkinageModel, meta: dict, stem: str | os.PathLike) -> Path:
    """Write ``<stem>.safetensors`` and ``<stem>.json`` atomically; returns the weights path.

    ``meta`` must hold ``classes``; anything else in it (mode, epoch, metrics,
    preprocessing overrides, ...) is stored as given, on top of :func:`model_meta`.
    """
    from safetensors.torch import save_file

    if "classes" not in meta:
        raise ValueError("checkpoint metadata needs 'classes' (the ordered class names)")
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    from ..preprocess import Preprocess

    full = model_meta(model)
    default_pre = full["preprocessing"]
    given = meta.get("preprocessing")
    full.update(meta)
    if given:  # gaps filled from the registry
        full["preprocessing"] = Preprocess.from_meta({"model": model.backbone_name, "preprocessing": given}).to_meta()
    else:
        full["preprocessing"] = default_pre
    full.setdefault("versions", versions())
    if len(full["classes"]) != model.num_classes:
        raise ValueError(f"{len(full['classes'])} class names for a {model.num_classes}-class model")
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    path = stem.with_suffix(".safetensors")
    tmp = path.with_name("." + path.name + ".tmp")
    save_file(state, str(tmp), metadata={"skinage": json.dumps({"model": full["model"], "classes": full["classes"]})})
    os.replace(tmp, path)
    atomic_write_json(stem.with_suffix(".json"), full)
    return path


def resolve_checkpoint(path: str | os.PathLike, which: str = "best") -> Path:
    """A run folder, a ``.safetensors`` file, its ``.json`` or a stem -> the ``.safetensors`` path."""
    p = Path(path)
    if p.is_dir():
        cand = p / "weights" / f"{which}.safetensors"
        if cand.is_file():
            return cand
        raise FileNotFoundError(f"{p} is not a run folder with weights/{which}.safetensors "
                                f"(train one with `skinage train`, or pass a .safetensors file)")
    given = p
    if p.suffix in (".json", ""):
        p = p.with_suffix(".safetensors")
    if not p.is_file():
        raise FileNotFoundError(f"no checkpoint at {given}: it is neither a run folder (runs/<name> from `skinage train`) "
                                f"nor a checkpoint file (<stem>.safetensors beside <stem>.json)")
    return p


def load_checkpoint(path: str | os.PathLike, which: str = "best", map_location: str = "cpu", tta: str | None = "auto"):
    """Rebuild the model of a checkpoint (eval mode) -> ``(model, meta)``. No pickle involved.

    ``tta="auto"`` keeps the checkpoint's test-time augmentation (``meta["tta"]``, none for
    checkpoints written before it existed); ``"none"`` or ``"flip"`` override it, in the model
    and in the returned ``meta``.
    """
    from safetensors.torch import load_file

    wpath = resolve_checkpoint(path, which)
    jpath = wpath.with_suffix(".json")
    if not jpath.is_file():
        raise FileNotFoundError(f"{jpath} (the checkpoint's metadata) is missing beside {wpath.name}")
    meta = json.loads(jpath.read_text(encoding="utf-8"))
    head = meta.get("head", {})
    model = SkinageModel(meta["model"], len(meta["classes"]), hidden=head.get("hidden", ()),
                         dropout=head.get("dropout", 0.0), batchnorm=head.get("batchnorm", False),
                         ordinal=head.get("ordinal"), pretrained=False,
                         tta=meta.get("tta") if tta == "auto" else check_tta(tta))
    meta["tta"] = model.tta
    model.weights_from = meta.get("weights_from", model.weights_from)
    model.load_state_dict(load_file(str(wpath), device=map_location), strict=True)
    model.eval()
    meta["checkpoint"] = str(wpath)
    return model, meta
