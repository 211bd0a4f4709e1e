"""Shared test fixtures: tiny generated images, the real data folder, fast torch settings."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from browser_helpers import browser, offline_context  # noqa: F401  (fixtures for the browser tests)

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SKINAGE_SHARED_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    """Keep test caches out of the user's cache, but reuse the installed ImageNet weights."""
    old = os.environ.get("SKINAGE_CACHE")
    real = Path(old) if old else Path.home() / ".cache" / "skinage"
    os.environ["SKINAGE_CACHE"] = str(tmp_path_factory.mktemp("skinage-cache"))
    # the converted EfficientNet-Lite0 weights and onnxruntime-web's files (make setup) live in the
    # real cache: link them in
    for name in ("weights", "ort-web"):
        src = real / name
        if src.is_dir():
            (Path(os.environ["SKINAGE_CACHE"]) / name).symlink_to(src, target_is_directory=True)
    try:
        import torch

        torch.set_num_threads(2)
    except ImportError:
        pass
    yield
    if old is None:
        os.environ.pop("SKINAGE_CACHE", None)
    else:
        os.environ["SKINAGE_CACHE"] = old


def shared_data(name: str) -> Path:
    """Path of a ../shared/data folder, or skip the test with the reason."""
    p = SHARED_DATA / name
    if not p.exists():
        pytest.skip(f"real data {p} is absent (it lives in ../shared/data beside the checkout)")
    return p


def make_image(path: Path, value: int | tuple = 128, size=(48, 40), noise: int = 10, seed: int = 0, fmt=None) -> Path:
    """Write a small RGB image of roughly one colour (plus noise)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    base = np.zeros((size[1], size[0], 3), dtype=np.int16) + np.array(value, dtype=np.int16)
    arr = np.clip(base + rng.integers(-noise, noise + 1, base.shape), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, format=fmt)
    return path


@pytest.fixture
def bright_dark_folder(tmp_path) -> Path:
    """A folder-per-class dataset: dark/ and bright/ with 12 tiny images each, 6 people each."""
    root = tmp_path / "bd"
    for cls, v in (("dark", 40), ("bright", 215)):
        for i in range(12):
            make_image(root / cls / f"p{i % 6}_{i}.png", value=v, seed=i + v)
    return root
