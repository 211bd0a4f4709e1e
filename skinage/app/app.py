"""``skinage app RUN --out SITE/``: a static site that grades a photo in the browser, nothing uploaded.

Steps:

1. **Export** what the page needs when ``RUN/export/`` lacks it (or is older than the run's weights):
   ``model.onnx`` (fp32, the reference; needs torch) and ``model.fp16.onnx`` (fp16 storage, made from the
   fp32 file alone, :mod:`skinage.export.fp16`); ``model.int8.onnx`` is a candidate when it is there (or with
   ``--int8``, exported then).
2. **Evaluate** the run when its ``metrics.json`` has no evaluation (``skinage evaluate RUN``), unless
   ``--no-evaluate``: then the card says the run was not evaluated.
3. **Choose** the file the page ships (:mod:`skinage.app.choose`): the fastest in headless chromium of the
   files agreeing with Python on >= 98 % of the run's validation crops, within 8 MB with the finder.
4. **Write** the site (:mod:`skinage.app.site`): ``index.html``, the page's ES modules, CSS, a service worker,
   onnxruntime-web's runtime files (from the cache ``make setup`` fills), the finder's two ONNX files,
   ``model.onnx`` and ``card.json`` (:mod:`skinage.app.card`).

Open it with ``skinage serve SITE`` (127.0.0.1:8000, the right MIME types, ``POST /api/predict``) or any
static server. See ``docs/app.md``.

>>> from skinage.config import build_config
>>> build_config(AppConfig, {"run": "runs/train", "out": "site", "model": "fp16"}).model
'fp16'
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..config import ConfigError, Seeded, add_config_arguments, build_config, config_from_args
from ..utils import say
from .choose import FILES, choose

__all__ = ["AppConfig", "app", "add_arguments", "run"]

MODEL_CHOICES = ("auto", "fp32", "fp16", "int8")


@dataclass
class AppConfig(Seeded):
    """Options of ``skinage app`` / :func:`skinage.app`."""

    run: str = field(default="", metadata={"positional": True, "help": "a trained run folder (runs/<project>/<name>)"})
    out: Path | None = field(default=None, metadata={"help": "the folder to write the site into (required)"})
    model: str = field(default="auto", metadata={"choices": MODEL_CHOICES,
        "help": "the classifier file the page ships: auto (the rule of skinage.app.choose: the fastest in the browser "
                "of the files agreeing with Python on >= 98 %% of the validation crops, within 8 MB with the finder), "
                "or fp32 / fp16 / int8 (still measured and reported)"})
    measure: int = field(default=50, metadata={
        "help": "validation crops to check and time the candidate files on, in headless chromium when installed "
                "(0: no measurement; auto then takes the documented default)"})
    int8: bool = field(default=False, metadata={
        "help": "export model.int8.onnx too when the run has none, so int8 is a candidate (minutes: calibration)"})
    evaluate: bool = field(default=True, metadata={
        "help": "run `skinage evaluate RUN` first when metrics.json has no evaluation (the card's test figures)"})
    title: str | None = field(default=None, metadata={"help": "the page's title (default: from the label)"})
    label: str | None = field(default=None, metadata={
        "help": "what the classes are, shown before the class, e.g. 'Age group' or 'Forehead wrinkles' (default: Grade)"})


def _export_dir(run_dir: Path) -> Path:
    return run_dir / "export"


def _stale(fp32: Path, run_dir: Path) -> bool:
    weights = run_dir / "weights" / "best.safetensors"
    return not fp32.is_file() or (weights.is_file() and weights.stat().st_mtime > fp32.stat().st_mtime)


def ensure_export(run_dir: Path, cfg: AppConfig) -> dict[str, Path]:
    """The candidate files (name -> path), exporting what is missing; fp32 and fp16 always, int8 if there/asked."""
    exp = _export_dir(run_dir)
    fp32 = exp / FILES["fp32"]
    need_int8 = (cfg.int8 or cfg.model == "int8") and not (exp / FILES["int8"]).is_file()
    if _stale(fp32, run_dir) or need_int8:
        from ..export.export import export

        say(f"skinage app: exporting {run_dir} (" + ("model.onnx missing or older than the weights"
                                                   if _stale(fp32, run_dir) else "int8 asked for") + ")")
        export(run_dir, fp16=True, int8=cfg.int8 or cfg.model == "int8", seed=cfg.seed)
    if not fp32.is_file():
        raise ConfigError(f"no {fp32}: the export failed")
    fp16 = exp / FILES["fp16"]
    if not fp16.is_file() or fp16.stat().st_mtime < fp32.stat().st_mtime:
        from ..export.fp16 import write_fp16

        write_fp16(fp32, fp16)
        say(f"skinage app: wrote {fp16} ({fp16.stat().st_size / 1e6:.2f} MB, weights stored as float16)")
    files = {name: exp / f for name, f in FILES.items() if (exp / f).is_file()}
    if "int8" in files and files["int8"].stat().st_mtime < fp32.stat().st_mtime:
        say("skinage app: model.int8.onnx is older than model.onnx: left out (export again with --int8)")
        files.pop("int8")
    return files


def ensure_evaluation(run_dir: Path, cfg: AppConfig) -> tuple[dict, bool]:
    """metrics.json of the run, evaluated now if it has no evaluation and ``cfg.evaluate``; (metrics, evaluated now)."""
    import json

    path = run_dir / "metrics.json"
    metrics = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    if metrics.get("evaluation") or not cfg.evaluate:
        if not metrics.get("evaluation"):
            say("skinage app: the run has no evaluation (--no-evaluate): the card says so")
        return metrics, False
    from ..evaluation.evaluate import evaluate

    say(f"skinage app: evaluating {run_dir} for the card's test figures (skinage evaluate)")
    evaluate(run_dir, seed=cfg.seed)
    return json.loads(path.read_text(encoding="utf-8")), True


def validation_crops(manifest: Path | None, pre, n: int, seed: int) -> np.ndarray:
    """Up to ``n`` crops of the manifest's validation split (the model's Preprocess, the manifest's boxes)."""
    if manifest is None or n <= 0:
        return pre.empty(0)
    from ..data.crops import load_crops
    from ..export.calibration import manifest_rows

    rows, split = manifest_rows(manifest, "val", n, seed)
    _, x, errors = load_crops(pre, [(p, b) for p, b, _ in rows])
    if errors:
        say(f"skinage app: {len(errors)} validation image(s) could not be read, left out")
    say(f"skinage app: {len(x)} {split} crops to check the model files on")
    return np.asarray(x, dtype=np.uint8)


def _choice(cfg: AppConfig, files: dict, crops: np.ndarray, ordinal, finder_bytes: int) -> tuple[Path, dict]:
    best, why, evidence = choose(files, crops, ordinal, finder_bytes, measure=cfg.measure > 0)
    if cfg.model != "auto":
        if cfg.model not in files:
            raise ConfigError(f"--model {cfg.model}: the run has no {FILES[cfg.model]}")
        name, why = cfg.model, f"asked for with --model {cfg.model} (the rule would take {best.name}: {why})"
    else:
        name = best.name
    evidence.update(chosen=name, file=FILES[name], why=why, bytes=files[name].stat().st_size,
                    description=f"{name} ({FILES[name]}, {files[name].stat().st_size / 1e6:.2f} MB): {why}.")
    say(f"skinage app: the page ships {FILES[name]} ({name}): {why}")
    return files[name], evidence


def app(run, **options) -> dict:
    """Write the static site of a trained run (the ``skinage app`` command); returns the card written.

    Parameters
    ----------
    run : str or path
        A trained run folder.
    **options
        The flags of ``skinage app`` (:class:`AppConfig`): ``out`` (required), ``model``, ``measure``,
        ``int8``, ``evaluate``, ``title``, ``label``, ``seed``.
    """
    cfg = build_config(AppConfig, options, run=str(run))
    return _app(cfg)


def _app(cfg: AppConfig) -> dict:
    from ..export.calibration import find_manifest
    from ..find.assets import MODEL_FILES, model_path
    from ..preprocess import Preprocess
    from ..runtime.onnx_io import read_onnx_metadata
    from .card import build_card
    from .runtime_files import runtime_files
    from .site import site_sizes, write_site

    if cfg.out is None:
        raise ConfigError("--out SITE is required (the folder to write the site into)")
    run_dir = Path(cfg.run)
    if not (run_dir / "weights").is_dir() and not (_export_dir(run_dir) / FILES["fp32"]).is_file():
        raise ConfigError(f"{run_dir} is not a trained run folder (no weights/ and no export/model.onnx)")
    runtime = runtime_files()  # before any work: a missing runtime is a set-up error
    finder = {role: model_path(role) for role in MODEL_FILES}
    files = ensure_export(run_dir, cfg)
    meta = read_onnx_metadata(files["fp32"])
    pre = Preprocess.from_meta(meta)
    if not pre.finds:
        say(f"skinage app: note: the model reads region '{pre.region}', not a found face or forehead: the page grades "
            "the whole photo (the finder still draws the face)")
    metrics, evaluated_now = ensure_evaluation(run_dir, cfg)
    manifest = find_manifest(run_dir, meta)
    crops = validation_crops(manifest, pre, cfg.measure if cfg.measure > 0 else 50, cfg.seed)
    finder_bytes = sum(p.stat().st_size for p in finder.values())
    chosen, evidence = _choice(cfg, files, crops, meta.get("ordinal"), finder_bytes)
    args = _read_args(run_dir)
    card = build_card(read_onnx_metadata(chosen), metrics, manifest, args, evidence, {}, cfg.title, cfg.label,
                      evaluated_now)
    version = write_site(Path(cfg.out), chosen, finder, runtime, card)
    sizes = site_sizes(Path(cfg.out))
    say(f"skinage app: wrote {cfg.out} ({len(sizes['files'])} files, {sizes['all'] / 1e6:.1f} MB; models "
        f"{sizes['models'] / 1e6:.2f} MB; service worker cache {version})")
    return card


def _read_args(run_dir: Path) -> dict[str, Any]:
    p = run_dir / "args.yaml"
    if not p.is_file():
        return {}
    import yaml

    return yaml.safe_load(p.read_text(encoding="utf-8")) or {}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = ("examples:  skinage app runs/utk/exp --out site/ --label 'Age group'\n"
                     "           skinage serve site/        # then open http://127.0.0.1:8000\n"
                     "See docs/app.md.")
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    add_config_arguments(parser, AppConfig)


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(AppConfig, args)
    _app(cfg)
    return 0
