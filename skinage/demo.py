"""``skinage demo``: the whole job end to end, on a SYNTHETIC default or on your data.

With no arguments the demo

1. generates a small SYNTHETIC forehead data set in the AI-Hub JSON layout
   (:mod:`skinage.data.synth`: drawn skin patches whose wrinkle lines grow with
   the grade 0-6, several people at 5 angles each);
2. ingests it with the 7 -> 4 remap ``0,1:0 2,3:1 4:2 5,6:3`` and splits it by person;
3. trains MobileNetV2 in ``feature`` mode (frozen ImageNet backbone, cached embeddings);
4. evaluates it on the test split, beside the baselines, with person-level figures,
   and writes the report;
5. exports int8 ONNX and predicts a few test images with that file;
6. writes the comparison table and prints where the report, the model file and the
   table are.

``skinage demo --data DIR`` does the same on your own data (anything ``skinage ingest``
reads: a class-folder tree, an AI-Hub JSON tree, a label table, or a ready manifest).

>>> cfg = build_config(DemoConfig, {"people": 8, "epochs": 1})
>>> cfg.people, cfg.model, cfg.mode
(8, 'mobilenet_v2', 'feature')
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .commands import api, callable_module
from .config import Seeded, Threaded, add_config_arguments, build_config, config_from_args, config_to_dict
from .utils import atomic_write_json, say

__all__ = ["DemoConfig", "DemoResult", "demo", "add_arguments", "run"]

FOREHEAD_REMAP = "0,1:0 2,3:1 4:2 5,6:3"


@dataclass
class DemoConfig(Threaded, Seeded):
    """Options of ``skinage demo`` (also the keywords of :func:`demo`)."""

    data: Path | None = field(default=None, metadata={
        "help": "your own data (class folders, AI-Hub JSON tree, label table or manifest); "
                "default: a generated SYNTHETIC forehead data set"})
    out: Path = field(default=Path("runs/demo"), metadata={
        "help": "work folder for the data, manifest, run, report and model"})
    people: int = field(default=100, metadata={"help": "synthetic people (each at 5 angles)"})
    image_size: tuple = field(default=(256, 192), metadata={
        "type": "ints", "help": "synthetic photo width,height in pixels"})
    model: str = field(default="mobilenet_v2", metadata={"help": "backbone (see `skinage models`)"})
    mode: str = field(default="feature", metadata={
        "choices": ("feature", "finetune"), "help": "training mode"})
    epochs: int = field(default=30, metadata={"help": "training epochs (feature mode: on cached embeddings)"})
    size: int = field(default=0, metadata={
        "help": "side in pixels of the square crop the model reads (0: the backbone's own)"})
    pretrained: bool = field(default=True, metadata={"help": "start from ImageNet weights"})
    label: str = field(default="", metadata={
        "help": "label key for --data JSON trees / column for tables (default: annotations.forehead_wrinkle "
                "for the synthetic set)"})
    remap: str = field(default="", metadata={
        "help": f"label remap for --data (the synthetic set uses \"{FOREHEAD_REMAP}\")"})
    bins: str = field(default="", metadata={"help": "bin numeric labels of --data (e.g. ages), as `skinage ingest --bins`"})
    facepart: int | None = field(default=None, metadata={
        "help": "AI-Hub JSON trees given with --data: keep only this face part (1 = forehead)"})
    predict_n: int = field(default=5, metadata={"help": "test images to predict with the int8 model at the end"})
    int8: bool = field(default=True, metadata={"help": "export int8 ONNX (else fp32 only)"})


@dataclass
class DemoResult:
    """Where everything went. ``skipped`` names steps left out, with the reason (none today: a step that
    cannot run, e.g. for want of a package, stops the demo with what to install)."""

    out: Path
    data: Path
    manifest: Path
    run: Path
    report: Path | None = None
    metrics: Path | None = None
    onnx: Path | None = None
    comparison: Path | None = None
    predictions: list = field(default_factory=list)
    evaluation: dict | None = None
    timings: dict = field(default_factory=dict)
    skipped: dict = field(default_factory=dict)


class _Step:
    """Numbered, timed steps that say what they do."""

    def __init__(self, total: int):
        self.total, self.i, self.timings = total, 0, {}

    def __call__(self, title: str, what: str):
        self.i += 1
        self.title = title
        say(f"\n[{self.i}/{self.total}] {title}: {what}")
        self._t = time.perf_counter()
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        dt = time.perf_counter() - self._t
        self.timings[self.title] = round(dt, 2)
        if exc[0] is None:
            say(f"      done in {dt:.1f} s")
        return False


def _is_manifest(p: Path) -> bool:
    return p.is_file() and p.suffix.lower() in (".csv", ".parquet") and \
        p.with_name(p.stem + ".meta.json").exists()


def _find(run: Path, *names: str) -> Path | None:
    for n in names:
        hits = sorted(run.rglob(n))
        if hits:
            return hits[0]
    return None


def demo(**options: Any) -> DemoResult:
    """Run the whole job; the Python form of ``skinage demo`` (keywords: :class:`DemoConfig`)."""
    return _demo(build_config(DemoConfig, options))


def _demo(cfg: DemoConfig) -> DemoResult:
    t_all = time.perf_counter()
    if cfg.threads:
        import torch

        torch.set_num_threads(cfg.threads)
    out = Path(cfg.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    synthetic = cfg.data is None
    step = _Step(7)
    say("skinage demo: the whole job end to end -- data, ingest + person split, training, evaluation "
        "with baselines, report, int8 export, prediction, comparison table")
    say(f"work folder: {out}")
    source = _data(cfg, out, step)
    manifest = _ingest(cfg, source, out, step)
    res = DemoResult(out=out, data=source, manifest=manifest, run=_train(cfg, manifest, out, step))
    _evaluate(res, step)
    _export(cfg, res, step)
    _predict(cfg, res, step)
    _compare(res, step)
    res.timings = dict(step.timings, total=round(time.perf_counter() - t_all, 1))
    _write_summary(cfg, res, synthetic)
    _print_summary(res, synthetic)
    return res


def _data(cfg: DemoConfig, out: Path, step: _Step) -> Path:
    """Step 1: the SYNTHETIC data set, generated, or the user's ``--data``."""
    if cfg.data is None:
        from .data.synth import make_synthetic_aihub

        with step("data", f"generating a SYNTHETIC forehead data set in the AI-Hub JSON layout "
                          f"({cfg.people} made-up people x 5 angles, {cfg.image_size[0]}x{cfg.image_size[1]} px, "
                          f"wrinkle grade 0-6 drawn on the forehead; not real photos)"):
            source = make_synthetic_aihub(out / "data", n_people=cfg.people, seed=cfg.seed,
                                          image_size=tuple(cfg.image_size))
            say(f"      {source}  (see README_SYNTHETIC.md there)")
        return source
    source = Path(cfg.data).expanduser().resolve()
    if not source.exists():
        raise FileNotFoundError(f"--data {cfg.data}: no such file or folder")
    with step("data", f"using your data at {source}"):
        pass
    return source


def _ingest(cfg: DemoConfig, source: Path, out: Path, step: _Step) -> Path:
    """Step 2: the manifest with its person-grouped split (a manifest given as ``--data`` is used as it is)."""
    if cfg.data is not None and _is_manifest(source):
        with step("ingest", f"{source} is already a manifest: using it as it is (its split column included)"):
            return source
    manifest = out / "manifest.csv"
    if cfg.data is None:
        opts: dict[str, Any] = dict(label="annotations.forehead_wrinkle", facepart=1, remap=FOREHEAD_REMAP)
        what = (f"reading the JSON labels (annotations.forehead_wrinkle, facepart 1), remapping the 7 grades "
                f"to 4 levels \"{FOREHEAD_REMAP}\", splitting by person 70/15/15 (seed {cfg.seed})")
    else:
        opts = {k: getattr(cfg, k) for k in ("label", "remap", "bins") if getattr(cfg, k)}
        if cfg.facepart is not None:
            opts["facepart"] = cfg.facepart
        what = f"reading {source} into a manifest and splitting by person 70/15/15 (seed {cfg.seed})"
    ingest = api("ingest")
    with step("ingest", what):
        ingest(str(source), out=str(manifest), seed=cfg.seed, **opts)
        say(f"      manifest: {manifest}")
    return manifest


def _train(cfg: DemoConfig, manifest: Path, out: Path, step: _Step) -> Path:
    """Step 3: the run folder of the trained model."""
    topts: dict[str, Any] = dict(data=str(manifest), model=cfg.model, mode=cfg.mode, epochs=cfg.epochs,
                                 seed=cfg.seed, project=str(out / "runs"), name=f"{cfg.model}-{cfg.mode}")
    if cfg.size:
        topts["size"] = cfg.size
    if not cfg.pretrained:
        topts["pretrained"] = False
    train = api("train")
    with step("train", f"{cfg.model} in {cfg.mode} mode ("
                       + ("frozen ImageNet backbone, embeddings cached once, a small head trained on them"
                          if cfg.mode == "feature" else "whole network trained") + f", {cfg.epochs} epochs)"):
        run_dir = Path(train(**topts))
        say(f"      run folder: {run_dir}")
    return run_dir


def _evaluate(res: DemoResult, step: _Step) -> None:
    """Step 4: test figures beside the baselines, and the report."""
    evaluate = api("evaluate")
    with step("evaluate", "test split (people never seen in training): accuracy, macro-F1, QWK, MAE, "
                          "within-one with 95% CIs by person, beside the majority / stratified / metadata-only (age, gender) "
                          "baselines; per-view and person-level (views fused) figures; report.html"):
        ev = evaluate(str(res.run))
        files = getattr(ev, "files", {}) or {}
        res.metrics = Path(files["metrics"]) if "metrics" in files else _find(res.run, "metrics.json")
        res.report = Path(files["report"]) if "report" in files else _find(res.run, "report.html")
        res.evaluation = getattr(ev, "metrics", None)


def _export(cfg: DemoConfig, res: DemoResult, step: _Step) -> None:
    """Step 5: the ONNX file(s), checked against the trained model."""
    export = api("export")
    with step("export", "ONNX fp32" + (" and int8 (static, calibrated on training images)" if cfg.int8 else "")
              + " with a parity check against the trained model"):
        # 64 calibration images: enough for these small crops, and ONNX Runtime's calibrator holds
        # every activation of every calibration image in memory (200 images at 224 px: ~12 GB)
        exported = export(str(res.run), int8=cfg.int8, repeats=20, calib_images=64)
        files = exported.get("files", {})
        res.onnx = Path(files.get("onnx_int8") or files["onnx_fp32"])


def _predict(cfg: DemoConfig, res: DemoResult, step: _Step) -> None:
    """Step 6: a few test images (one per person) predicted with the exported file."""
    with step("predict", f"{cfg.predict_n} test images with the {'int8 ' if cfg.int8 else ''}ONNX file "
                         "(onnxruntime, numpy and Pillow only)"):
        from .data.manifest import read_manifest

        man = read_manifest(res.manifest)
        test = man.df[man.df["split"] == "test"]
        predict = api("predict")
        for _, r in test.drop_duplicates("subject").head(cfg.predict_n).iterrows():
            bbox = [r[c] for c in ("x0", "y0", "x1", "y1")]
            kw = {"bbox": bbox} if all(v == v for v in bbox) else {}  # NaN -> whole image
            p = predict(str(res.onnx), str(r["path"]), **kw)[0]
            p["true_class"] = r["class_name"]
            res.predictions.append(p)
            say(f"      {Path(r['path']).name:<24} true {r['class_name']!s:<6} predicted "
                f"{p.get('class')!s:<6} (confidence {p.get('confidence', float('nan')):.2f})")


def _compare(res: DemoResult, step: _Step) -> None:
    """Step 7: the comparison table."""
    compare = api("compare")
    with step("compare", "the comparison table (model, mode, weights, figures with CIs, size, latency, time)"):
        res.comparison = res.out / "comparison.md"
        compare(str(res.run), out=str(res.comparison))


def _write_summary(cfg: DemoConfig, res: DemoResult, synthetic: bool) -> None:
    """``demo.json``: the options, where everything went, the timings and the predictions."""
    atomic_write_json(res.out / "demo.json", {
        "config": config_to_dict(cfg), "synthetic_data": synthetic,
        **{k: (str(v) if isinstance(v, Path) else v) for k, v in vars(res).items()
           if k not in ("predictions", "evaluation")},
        "predictions": [{k: v for k, v in p.items() if k in ("path", "class", "true_class", "confidence")}
                        for p in res.predictions],
    })


def _print_summary(res: DemoResult, synthetic: bool) -> None:
    lines = ["", "skinage demo finished in %.0f s%s." % (res.timings.get("total", 0),
                                                        " on SYNTHETIC data" if synthetic else "")]
    if res.evaluation:
        lines += _headline(res.evaluation)
    lines += [
        f"  report:            {res.report or '(not written)'}",
        f"  model file:        {res.onnx or '(not exported)'}",
        f"  comparison table:  {res.comparison or '(not written)'}",
        f"  run folder:        {res.run}",
        f"  manifest:          {res.manifest}",
    ]
    for k, v in res.skipped.items():
        lines.append(f"  skipped {k}: {v}")
    if synthetic:
        lines.append("  (figures on synthetic data show that the pipeline works, nothing about real skin)")
    print("\n".join(lines), flush=True)


def _num(v: float) -> str:
    s = f"{v:.2f}"
    return s[1:] if s.startswith("-") and float(s) == 0 else s


def _headline(ev: dict) -> list[str]:
    """Test figures of the model and of the baselines, image and person level, from evaluate's metrics."""
    def fmt(m):
        parts = []
        for key in ("accuracy", "f1_macro", "qwk", "mae"):
            v = m.get(key)
            if isinstance(v, (int, float)) and v == v:
                ci = (m.get("ci") or {}).get(key)
                parts.append(f"{key} {_num(v)}" + (f" [{_num(ci[0])}, {_num(ci[1])}]" if ci else ""))
        return ", ".join(parts)

    out = []
    for level, title in (("image", "per image"), ("person", "per person (views fused)")):
        block = ev.get(level) or {}
        if not block:
            continue
        n = ev.get("n_images") if level == "image" else ev.get("n_persons")
        out.append(f"  test, {title} (n={n}):")
        for name, m in block.items():
            out.append(f"    {name:<11} {fmt(m)}")
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = ("examples:  skinage demo                      # synthetic data, about 2-4 minutes on 2 cores\n"
                     "           skinage demo --data faces/        # your class folders\n"
                     "           skinage demo --data aihub/ --label annotations.forehead_wrinkle "
                     f"--remap \"{FOREHEAD_REMAP}\"")
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    add_config_arguments(parser, DemoConfig)


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(DemoConfig, args)
    res = _demo(cfg)
    return 0 if res.report is not None and res.onnx is not None else 1


callable_module(__name__, "demo")  # skinage.demo(...) runs the demo
