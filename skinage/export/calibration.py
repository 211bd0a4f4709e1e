"""The images an export reads: calibration images for int8 (the run's training split), validation images for
the parity check and for ``--int8-search``, all cut by the model's :class:`~skinage.preprocess.Preprocess`
from the run's manifest (:func:`find_manifest`); unreadable images are set aside with their reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..config import ConfigError
from ..preprocess import Preprocess
from ..utils import say

__all__ = ["find_manifest", "manifest_rows", "load_batch", "ExportImages", "export_images"]


def find_manifest(run: Path, meta: dict) -> Path | None:
    """The manifest a run was trained on: ``args.yaml`` of the run, else the checkpoint metadata."""
    cands: list[Any] = []
    for d in (run, run.parent, run.parent.parent):
        args = d / "args.yaml"
        if args.is_file():
            try:
                import yaml

                data = yaml.safe_load(args.read_text(encoding="utf-8")) or {}
            except Exception:  # unreadable args.yaml: fall back to the checkpoint
                data = {}
            cands += [data.get("manifest"), data.get("data")]
            break
    cands += [meta.get("manifest"), (meta.get("data") or {}).get("manifest") if isinstance(meta.get("data"), dict) else None]
    for c in cands:
        if c and isinstance(c, str):
            p = Path(c)
            if not p.is_absolute() and not p.exists():
                p = run / c
            if p.is_file():
                return p
    return None


def manifest_rows(manifest_path: Path, split: str, n: int, seed: int
                  ) -> tuple[list[tuple[str, tuple | None, int]], str]:
    """``(path, bbox or None, label)`` of ``split``'s rows (``n`` drawn with ``seed`` when more; 0: all) and the
    split used: an empty ``val`` falls back to ``test``, then ``train`` (said on stderr)."""
    from ..data.manifest import read_manifest

    df = read_manifest(manifest_path).df
    used = split
    sub = df[df["split"].astype(str) == split] if "split" in df.columns else df
    if len(sub) == 0 and split == "val":
        for alt in ("test", "train"):
            sub = df[df["split"].astype(str) == alt]
            if len(sub):
                used = alt
                say(f"skinage export: the manifest has no '{split}' images; using '{alt}' for the check")
                break
    if n and len(sub) > n:
        sub = sub.sample(n=n, random_state=seed)
    out = []
    for r in sub.itertuples(index=False):
        d = r._asdict()
        b = tuple(d.get(k) for k in ("x0", "y0", "x1", "y1"))
        if any(v is None or (isinstance(v, float) and math.isnan(v)) for v in b):
            b = None
        out.append((str(d["path"]), b, int(d["label"])))
    return out, used


def load_batch(rows: Sequence[tuple[str, tuple | None, int]], pre: Preprocess, desc: str = "load"
               ) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """Crops (uint8 N,H,W,3), labels, and the images that could not be read (with reasons)."""
    from ..data.crops import load_crops

    idx, x, errors = load_crops(pre, [(path, bbox) for path, bbox, _ in rows], progress=len(rows) >= 64, desc=desc)
    labels = np.asarray([rows[i][2] for i in idx], dtype=np.int64)
    return x, labels, [{"path": rows[i][0], "reason": str(e) or type(e).__name__} for i, e in errors]


@dataclass
class ExportImages:
    """What an export checks and calibrates with.

    ``check_x`` / ``check_y``: the parity check's crops and labels (``check_y`` None: random pixels, no labels);
    ``calib_x``: int8 calibration crops (None without int8); ``search_x``: ``--int8-search``'s validation crops;
    ``skipped``: unreadable images with their reason and use; ``manifest``: the manifest given or found (even
    when it is not a file) and ``check_split`` the split checked on (None: random pixels).
    """

    check_x: np.ndarray
    check_y: np.ndarray | None
    manifest: Path | None = None
    check_split: str | None = None
    calib_x: np.ndarray | None = None
    search_x: np.ndarray | None = None
    skipped: list[dict] = field(default_factory=list)


def export_images(manifest: Path | None, pre: Preprocess, *, check_split: str = "val", check_images: int = 0,
                  calib_images: int = 200, seed: int = 0, int8: bool = False, search: bool = False) -> ExportImages:
    """The check, calibration (``int8``) and search (``search``) images of a run whose manifest is ``manifest``.

    Without a manifest the check uses 64 random images (agreement is measured, accuracy is not), which also
    calibrate int8; ``--int8-search`` then has nothing to search on (a :class:`~skinage.config.ConfigError`).
    """
    if manifest is None or not Path(manifest).is_file():
        if search:
            raise ConfigError("--int8-search chooses its settings on the run's validation images: give --manifest")
        say("skinage export: warning: the run's manifest was not found (give --manifest): the parity check "
            "uses 64 random images, so agreement is measured but accuracy is not")
        x = np.random.default_rng(seed).integers(0, 256, (64, *pre.shape), dtype=np.uint8)
        return ExportImages(check_x=x, check_y=None, manifest=manifest, calib_x=x)
    manifest = Path(manifest)
    rows, used = manifest_rows(manifest, check_split, check_images, seed)
    check_x, check_y, bad = load_batch(rows, pre, f"{used} images")
    got = ExportImages(check_x, check_y, manifest, used, skipped=[dict(b, use="check") for b in bad])
    if int8:
        crows, _ = manifest_rows(manifest, "train", calib_images, seed)
        got.calib_x, _, bad = load_batch(crows, pre, "calibration images")
        got.skipped += [dict(b, use="calibration") for b in bad]
        if len(got.calib_x) == 0:
            raise ConfigError(f"no readable training images in {manifest} to calibrate int8 with")
    if search:
        got.search_x = _search_images(got, manifest, pre, check_images, seed)
    if len(check_x) == 0:
        raise ConfigError(f"no readable {used} images in {manifest} for the parity check")
    for b in got.skipped:
        say(f"skinage export: skipped unreadable image {b['path']}: {b['reason']}")
    return got


def _search_images(got: ExportImages, manifest: Path, pre: Preprocess, check_images: int, seed: int) -> np.ndarray:
    """All the validation images (the check's own when it read them all), for ``--int8-search``."""
    if got.check_split == "val" and not check_images:
        x = got.check_x
    else:
        srows, used = manifest_rows(manifest, "val", 0, seed)
        if used != "val":
            raise ConfigError(f"--int8-search needs validation images; {manifest} has no 'val' split")
        x, _, bad = load_batch(srows, pre, "val images (int8 search)")
        got.skipped += [dict(b, use="int8 search") for b in bad]
    if len(x) == 0:
        raise ConfigError(f"no readable val images in {manifest} for --int8-search")
    return x
