"""``card.json``: the model card the page shows and a reader can check.

What it holds: the task and its classes, the class rule, the training data (the manifest's source, its
ingest options, rows per split), the test figures with their 95 % intervals beside the trivial baselines on
the same rows (from ``skinage evaluate``'s ``metrics.json``), the :class:`~skinage.preprocess.Preprocess`,
the refusal rules with their thresholds (the finder's constants, the ``too_dark`` rule), which model file
was chosen and on what evidence (:mod:`skinage.app.choose`), the files and their sizes.

>>> figures({"accuracy": 0.5, "ci": {"accuracy": [0.4, 0.6]}}, [{"key": "accuracy"}])
{'accuracy': {'value': 0.5, 'ci': [0.4, 0.6]}}
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any, Optional

from .. import __version__
from ..find import constants as finder_constants
from ..preprocess import Preprocess
from ..runtime.quality import LUMA_WEIGHTS, MIN_LUMA

__all__ = ["METRICS", "figures", "test_section", "training_section", "refusals", "build_card"]

#: The test figures shown: key in metrics.json, label, whether a share (shown in %), ordered classes only.
METRICS = (
    {"key": "accuracy", "label": "accuracy", "pct": True, "ordered": False},
    {"key": "f1_macro", "label": "macro-F1", "pct": False, "ordered": False},
    {"key": "qwk", "label": "QWK", "pct": False, "ordered": True},
    {"key": "mae", "label": "MAE (levels)", "pct": False, "ordered": True},
    {"key": "within_one", "label": "within one level", "pct": True, "ordered": True},
)


def figures(block: dict, metrics) -> dict:
    """``{metric: {value, ci}}`` of one system's block of metrics.json (``metric`` and ``ci.metric``)."""
    ci = block.get("ci") or {}
    return {m["key"]: {"value": block[m["key"]], "ci": ci.get(m["key"])} for m in metrics if m["key"] in block}


def test_section(metrics_json: Optional[dict], evaluated_now: bool = False) -> dict:
    """The test figures of ``skinage evaluate`` (image level): the model and each trivial baseline."""
    ev = (metrics_json or {}).get("evaluation")
    if not ev:
        return {"evaluated": False, "systems": [], "metrics": [],
                "note": "The run was not evaluated (`skinage evaluate RUN`), so the page shows no test figures."}
    ordered = bool(ev.get("ordinal")) or "qwk" in ev.get("image", {}).get("model", {})
    metrics = [m for m in METRICS if ordered or not m["ordered"]]
    image = ev.get("image", {})
    labels = ev.get("systems", {})
    systems = [{"name": name, "label": "this model" if name == "model" else f"baseline: {name}",
                "description": labels.get(name, ""), "figures": figures(block, metrics)}
               for name, block in image.items() if isinstance(block, dict)]
    boot = ev.get("bootstrap", {})
    note = (f"{ev.get('n_images')} test images of {ev.get('n_persons')} persons (split '{ev.get('split')}' of "
            f"{Path(str(ev.get('data'))).name}); 95 % intervals from {boot.get('resamples')} bootstrap resamples over "
            f"{boot.get('unit', 'image')}s. The baselines are scored on the same rows: a model is only useful "
            f"where it beats them.")
    return {"evaluated": True, "evaluated_by_app": evaluated_now, "split": ev.get("split"),
            "n_images": ev.get("n_images"), "n_persons": ev.get("n_persons"), "bootstrap": boot,
            "decision_rule": ev.get("decision_rule"), "metrics": metrics, "systems": systems,
            "skipped_baselines": ev.get("baselines_skipped", {}), "note": note}


def training_section(manifest: Optional[Path], metrics_json: dict, args: dict) -> dict:
    """What the model learnt from: the manifest (source, ingest options, rows per split) and the run's settings."""
    out: dict[str, Any] = {"model": metrics_json.get("model") or args.get("model"), "mode": metrics_json.get("mode"),
                           "weights_from": metrics_json.get("weights_from"), "best_epoch": metrics_json.get("best_epoch"),
                           "epochs_run": metrics_json.get("epochs_run"), "train_rows": metrics_json.get("train_rows")}
    desc = f"{out['model']} ({out['mode']} mode, starting from {out['weights_from']})"
    if manifest is not None and Path(manifest).is_file():
        from ..data.manifest import read_manifest

        man = read_manifest(manifest)
        df, meta = man.df, man.meta
        splits = df["split"].astype(str).value_counts().to_dict() if "split" in df.columns else {}
        train = df[df["split"].astype(str) == "train"] if "split" in df.columns else df
        counts = train["label"].value_counts().reindex(range(len(man.classes)), fill_value=0).tolist()
        opts = meta.get("options", {}) or {}
        out.update(manifest=Path(manifest).name, source=str(meta.get("source", "")), format=meta.get("format"),
                   region=meta.get("region"), rows=int(len(df)), splits={k: int(v) for k, v in splits.items()},
                   train_class_counts=dict(zip(man.classes, map(int, counts))),
                   label_mapping={k: opts[k] for k in ("label", "remap", "bins") if opts.get(k)},
                   notes=list(meta.get("notes", [])))
        source = Path(str(meta.get("source", ""))).name or "?"
        desc += (f", trained on {splits.get('train', len(df))} images of '{source}' ({meta.get('format', 'table')}"
                 + (f", {out['region']} boxes from the finder" if out.get("region") in ("face", "forehead") else "")
                 + f"); {splits.get('val', 0)} validation and {splits.get('test', 0)} test images held out")
        if out["label_mapping"]:
            desc += "; labels: " + ", ".join(f"{k} {v}" for k, v in out["label_mapping"].items())
    out["description"] = desc + "."
    return out


def refusals(min_luma: float = MIN_LUMA) -> dict:
    """The refusal rules (status -> rule sentence and thresholds): the finder's constants, the too_dark rule."""
    c = finder_constants
    again = (f" (when nothing is found, the photo is searched again inside a grey border of {c.FALLBACK_BORDER:g} of its "
             f"long side)" if c.FALLBACK_BORDER else "")
    return {
        "unreadable": {"rule": "the browser cannot decode the file as an image (Python: Pillow cannot)", "thresholds": {}},
        "no_face": {"rule": f"no detection scoring >= {c.MIN_DETECTION_SCORE} that FaceMesh confirms (presence >= "
                            f"{c.MIN_PRESENCE}), or only faces in profile (eye keypoints closer than {c.MIN_EYE_SPAN} of "
                            f"the box's long side){again}",
                    "thresholds": {"MIN_DETECTION_SCORE": c.MIN_DETECTION_SCORE, "MIN_PRESENCE": c.MIN_PRESENCE,
                                   "MIN_EYE_SPAN": c.MIN_EYE_SPAN, "FALLBACK_BORDER": c.FALLBACK_BORDER}},
        "several_faces": {"rule": f"a second face whose box area is >= {c.COMPARABLE_AREA:.0%} of the largest's "
                                  f"(smaller ones are bystanders, ignored)",
                          "thresholds": {"COMPARABLE_AREA": c.COMPARABLE_AREA}},
        "face_too_small": {"rule": f"the face box is narrower than {c.MIN_FACE_SIZE} px in the full-resolution photo",
                           "thresholds": {"MIN_FACE_SIZE": c.MIN_FACE_SIZE}},
        "too_dark": {"rule": f"the crop the model reads has a mean Rec.601 luma ({' R + '.join(map(str, LUMA_WEIGHTS))} B, "
                             f"0..255) below {min_luma:g}",
                     "min_luma": min_luma, "thresholds": {"MIN_LUMA": min_luma}},
    }


def _constants() -> dict:
    c = finder_constants
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(c).items() if k.isupper()}


def build_card(meta: dict, metrics_json: Optional[dict], manifest: Optional[Path], args: dict, choice: dict,
               files: dict, title: Optional[str] = None, label: Optional[str] = None,
               evaluated_now: bool = False) -> dict:
    """The card of a site: ``meta`` the chosen ONNX file's metadata, ``choice`` what :mod:`skinage.app.choose` said."""
    pre = Preprocess.from_meta(meta)
    classes = list(meta["classes"])
    label = label or "Grade"
    region = {"face": "the face the finder finds", "forehead": "the forehead the finder finds"}.get(
        pre.region, "the whole photo")
    task = (f"{label}: one of {len(classes)} classes ({', '.join(classes)}) from a photo, read from {region} "
            f"by a {meta.get('model')} classifier")
    return {
        "schema": 1,
        "title": title or f"skinage: {label.lower()} from a photo",
        "built": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "skinage_version": __version__,
        "task": {"label": label, "description": task + "."},
        "classes": classes,
        "ordinal": meta.get("ordinal"),
        "class_rule": meta.get("output", {}).get("class_rule"),
        "preprocess": {**pre.to_meta(), "description": pre.describe()},
        "training": training_section(manifest, metrics_json or {}, args),
        "test": test_section(metrics_json, evaluated_now),
        "refusals": refusals(),
        "finder": {"models": "MediaPipe BlazeFace short-range + FaceMesh (Apache-2.0), as ONNX",
                   "constants": _constants()},
        "model_file": choice,
        "files": files,
        "runtime": {"package": "onnxruntime-web", "backend": "wasm",
                    "threads": "1, or up to 4 when the site is served cross-origin isolated (COOP/COEP)"},
        "caveat": ("A model is only as good as its test figures above, on data like its training data; an age group "
                   "is not a skin-aging grade, and the page is not a medical device."),
    }
