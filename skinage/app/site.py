"""Writing the static site: the page's files, onnxruntime-web's runtime, the three models, the card.

Layout of ``SITE/`` (everything relative, nothing from another origin)::

    index.html  app.css  manifest.webmanifest  icon.svg  sw.js  version.json  card.json  model.onnx
    js/*.mjs  js/find/*.mjs          the page's ES modules (skinage/app/web), no bundler
    ort/ort.wasm.min.mjs  ort/ort-wasm-simd-threaded.mjs  ort/ort-wasm-simd-threaded.wasm
    models/face_detection_short_range.onnx  models/face_landmark.onnx

``sw.js`` and ``version.json`` are written last, with the list of every other file and a version (a
hash of their bytes), so the service worker caches the whole site and a rebuilt site replaces the old
cache; the page keeps what it fetches in the same cache (``skinage-<version>``), so nothing is
downloaded twice. The site is
written into a temporary folder beside ``SITE`` and moved into place; an existing ``SITE`` is replaced
only if it is empty or a site written by ``skinage app`` (it has ``card.json`` and ``sw.js``).

>>> site_files_ok(["index.html", "js/app.mjs", "./"])
True
>>> site_files_ok(["https://cdn.example.com/ort.min.js"])
False
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

from ..utils import atomic_write_json
from . import WEB_DIR

__all__ = ["SITE_FILES", "JS_DIR", "ORT_DIR", "MODELS_DIR", "site_files_ok", "write_site", "site_sizes"]

#: The page's root files (from skinage/app/web/site).
SITE_FILES = ("index.html", "app.css", "manifest.webmanifest", "icon.svg")
JS_DIR = "js"
ORT_DIR = "ort"
MODELS_DIR = "models"


def site_files_ok(files) -> bool:
    """Whether every entry is a relative path inside the site (no scheme, no host, no '..')."""
    for f in files:
        if "://" in f or f.startswith(("/", "\\")) or ".." in Path(f).parts:
            return False
    return True


def _copy_web(dst: Path) -> None:
    for name in SITE_FILES:
        shutil.copyfile(WEB_DIR / "site" / name, dst / name)
    for src in sorted(WEB_DIR.rglob("*.mjs")):
        rel = src.relative_to(WEB_DIR)
        if rel.parts[0] == "site":
            continue
        out = dst / JS_DIR / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, out)


def _write_sw(dst: Path) -> str:
    """version.json and sw.js with the list of the site's files and their hash; returns the version."""
    files = sorted(p.relative_to(dst).as_posix() for p in dst.rglob("*") if p.is_file())
    h = hashlib.sha256()
    for f in files:
        h.update(f.encode())
        h.update(hashlib.sha256((dst / f).read_bytes()).digest())
    version = h.hexdigest()[:16]
    (dst / "version.json").write_text(json.dumps({"version": version}) + "\n", encoding="utf-8")
    listed = ["./"] + files + ["version.json"]
    assert site_files_ok(listed)
    text = (WEB_DIR / "site" / "sw.js").read_text(encoding="utf-8")
    text = text.replace("'__VERSION__'", json.dumps(version)).replace("__FILES__", json.dumps(listed))
    (dst / "sw.js").write_text(text, encoding="utf-8")
    return version


def _replaceable(out: Path) -> bool:
    return not out.exists() or (out.is_dir() and (not any(out.iterdir()) or
                                                  ((out / "card.json").is_file() and (out / "sw.js").is_file())))


def write_site(out: Path, model: Path, finder: dict[str, Path], runtime: dict[str, Path], card: dict) -> str:
    """Write the site into ``out`` (see the module docstring); returns the service worker's cache version.

    ``model`` the classifier to ship (copied as ``model.onnx``); ``finder`` role -> ONNX file (detector,
    landmarks); ``runtime`` onnxruntime-web's files by name; ``card`` the model card (its ``files`` and
    ``sizes`` are filled in here).
    """
    out = Path(out)
    if not _replaceable(out):
        raise FileExistsError(f"{out} exists and is not a site written by `skinage app` (no card.json and sw.js): "
                              f"choose another --out, or empty it")
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        _copy_web(tmp)
        (tmp / ORT_DIR).mkdir()
        for name, src in runtime.items():
            shutil.copyfile(src, tmp / ORT_DIR / name)
        (tmp / MODELS_DIR).mkdir()
        for role, src in finder.items():
            shutil.copyfile(src, tmp / MODELS_DIR / Path(src).name)
        shutil.copyfile(model, tmp / "model.onnx")
        card["files"] = {"model": "model.onnx",
                         **{role: f"{MODELS_DIR}/{Path(src).name}" for role, src in finder.items()}}
        atomic_write_json(tmp / "card.json", card)
        card["sizes"] = site_sizes(tmp)
        atomic_write_json(tmp / "card.json", card)  # with the sizes (card.json's own size is the first one's)
        version = _write_sw(tmp)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return version


def site_sizes(folder: Path) -> dict:
    """Bytes of each file of a site, and totals: ``models`` (the three ONNX files), ``runtime``, ``all``."""
    folder = Path(folder)
    sizes = {p.relative_to(folder).as_posix(): p.stat().st_size for p in sorted(folder.rglob("*")) if p.is_file()}
    models = sum(v for k, v in sizes.items() if k.endswith(".onnx"))
    runtime = sum(v for k, v in sizes.items() if k.startswith(ORT_DIR + "/"))
    return {"files": sizes, "models": models, "runtime": runtime, "all": sum(sizes.values())}
