"""`skinage predict`: class, level and probabilities for images, folders or a manifest.

MODEL is a run folder, a checkpoint (``.safetensors`` / ``.json``) or an exported
``.onnx`` file. With an ``.onnx`` file nothing but onnxruntime, NumPy and Pillow
is imported (no torch): this is the path a server or a phone-side test harness
uses. Images are cropped and resized exactly as in training: the model's
:class:`skinage.preprocess.Preprocess` (stored in the checkpoint and in the
ONNX metadata) cuts them.

INPUT may be

* image files (``--bbox x0,y0,x1,y1`` crops them first, in pixels of the
  EXIF-rotated image),
* folders (searched recursively for image files),
* manifests (``.csv`` / ``.parquet`` written by ``skinage ingest``; their bboxes,
  subjects and true labels are used; ``--split test`` keeps one split).

Each image gets one row: class, level (the class index; the order of the
classes), confidence (the probability of that class) and one probability per class.
The class is the most probable one, or for an ordinal (CORAL / CORN) head its rank:
the number of k with P(y > k) > 0.5, the rule training chose its best epoch by
(:mod:`skinage.models.decode`). An image that cannot be
read is not dropped: its row has ``status=error`` and the reason. With
``--group-by subject`` the views of one person are fused (mean of the
probabilities) into one prediction per person.

A model trained on found crops (its ``Preprocess`` region is ``face`` or ``forehead``) finds the
face itself in every image that comes without a box (files and folders, manifest rows without one;
``--bbox`` and a manifest's boxes win): a photo the finder refuses gets its status (``no_face``,
``several_faces``, ``face_too_small``) and sentence instead of a class; the row shows the box found
(``bbox``) and the finder's ``finder`` status, ``faces`` and ``face_score``. Every model refuses a
crop too dark to grade (status ``too_dark``: :mod:`skinage.runtime.quality`). Each image's work is
:func:`skinage.runtime.photo.prepare`; :func:`predict_image` does one image, given as a path or as
bytes, and returns the same row (what a web server answers for an upload).

The exported ONNX graph takes ``pixels``: uint8 RGB, shape (N, H, W, 3) (what
``load_crop`` returns, stacked), and returns ``probs``: float32 (N, K).

>>> rows = predict("runs/demo/exp/export/model.onnx", "face.jpg")  # doctest: +SKIP
>>> rows[0]["class"], rows[0]["probs"]  # doctest: +SKIP
('30-40', [0.1, 0.7, 0.15, 0.05])
"""

from __future__ import annotations

import argparse
import csv
import io
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from ..config import ConfigError, Threaded, add_config_arguments, build_config, config_from_args
from ..models.decode import predict_labels
from ..utils import atomic_write_json, atomic_write_text, say
from .photo import ERROR, Prepared, make_row, predict_image, prepare
from .predictor import load_predictor

__all__ = ["PredictConfig", "predict", "predict_image", "collect_inputs", "predict_items", "group_rows", "to_csv",
           "to_json", "add_arguments", "run", "IMAGE_EXTENSIONS"]

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm"}
MANIFEST_EXTENSIONS = {".csv", ".parquet", ".pq"}


@dataclass
class PredictConfig(Threaded):
    """Options of ``skinage predict`` / :func:`skinage.predict`."""

    model: str = field(default="", metadata={"positional": True,
        "help": "a run folder, a checkpoint (.safetensors/.json) or an exported .onnx file"})
    inputs: tuple = field(default=(), metadata={"positional": True, "nargs": "+", "type": "strs",
        "help": "image files, folders (searched recursively) or manifests (.csv/.parquet)"})
    out: Path | None = field(default=None, metadata={
        "help": "write the predictions to this .csv or .json file (default: CSV on stdout)"})
    bbox: tuple | None = field(default=None, metadata={"type": "floats",
        "help": "x0,y0,x1,y1 crop box in pixels for the image files given directly"})
    group_by: str | None = field(default=None, metadata={"choices": ("subject",),
        "help": "fuse the images of one subject (mean probabilities) into one prediction"})
    subject_pattern: str | None = field(default=None, metadata={
        "help": "regular expression whose first group is the subject id in a file name, for images "
                "outside a manifest, e.g. '^(\\d+)_' for 012_03.jpg (default: each file is its own subject)"})
    split: str | None = field(default=None, metadata={
        "help": "with a manifest input, predict only this split (train/val/test)"})
    batch_size: int = field(default=16, metadata={"help": "images per forward pass"})
    which: str = field(default="best", metadata={"choices": ("best", "last"),
        "help": "which checkpoint of a run folder to use"})


# --------------------------------------------------------------------------------------------
# inputs

@dataclass
class _Item:
    input: str
    path: str
    bbox: tuple | None = None
    subject: str = ""
    view: str = ""
    true_label: int | None = None
    error: str | None = None


def _subject_of(path: Path, pattern: re.Pattern | None) -> str:
    if pattern is not None:
        m = pattern.search(path.name)
        if m:
            return m.group(1) if m.groups() else m.group(0)
    return path.stem


def _manifest_items(path: Path, split: str | None) -> tuple[list[_Item], list[str] | None]:
    from ..data.manifest import read_manifest, row_bbox

    man = read_manifest(path)
    df, classes = man.df, list(man.classes)
    if "path" not in df.columns:
        raise ConfigError(f"{path} is not a manifest: it has no 'path' column (make one with `skinage ingest`)")
    if split is not None:
        if "split" not in df.columns:
            raise ConfigError(f"--split {split}: the manifest {path} has no 'split' column")
        df = df[df["split"].astype(str) == split]
    items = []
    for row in df.itertuples(index=False):
        r = row._asdict()
        bbox = row_bbox(r)
        label = r.get("label")
        try:
            label = None if label is None or (isinstance(label, float) and np.isnan(label)) else int(label)
        except (TypeError, ValueError):
            label = None
        if label is not None and label < 0:  # -1: unknown label
            label = None
        items.append(_Item(input=str(path), path=str(r["path"]), bbox=bbox,
                           subject=str(r.get("subject", "") or Path(str(r["path"])).stem),
                           view=str(r.get("view", "") if r.get("view", "") == r.get("view", "") else ""),
                           true_label=label))
    return items, classes


def collect_inputs(inputs: Iterable[str], bbox=None, subject_pattern: str | None = None,
                   split: str | None = None) -> tuple[list[_Item], list[str] | None]:
    """Expand files, folders and manifests into a list of images (missing paths become error rows)."""
    pattern = re.compile(subject_pattern) if subject_pattern else None
    items: list[_Item] = []
    manifest_classes = None
    if bbox is not None and len(tuple(bbox)) != 4:
        raise ConfigError(f"--bbox needs 4 numbers x0,y0,x1,y1, got {bbox!r}")
    for inp in inputs:
        p = Path(inp)
        if p.is_dir():
            if bbox is not None:
                raise ConfigError("--bbox applies to single image files, not to folders (give a manifest with bboxes)")
            files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS)
            if not files:
                say(f"skinage predict: warning: no image files in folder {p}")
            items.extend(_Item(input=str(p), path=str(f), subject=_subject_of(f, pattern)) for f in files)
        elif p.suffix.lower() in MANIFEST_EXTENSIONS and p.is_file():
            if bbox is not None:
                raise ConfigError("--bbox applies to single image files; a manifest carries its own bboxes")
            its, classes = _manifest_items(p, split)
            manifest_classes = manifest_classes or classes
            items.extend(its)
        elif p.is_file():
            items.append(_Item(input=str(p), path=str(p), subject=_subject_of(p, pattern),
                               bbox=tuple(float(v) for v in bbox) if bbox is not None else None))
        else:
            items.append(_Item(input=str(p), path=str(p), subject=_subject_of(p, pattern),
                               error="file not found"))
    return items, manifest_classes


# --------------------------------------------------------------------------------------------
# prediction

def predict_items(predictor, items: list[_Item], batch_size: int = 16, finder=None) -> list[dict]:
    """Run ``predictor`` over ``items`` in batches; every image is one row (:func:`skinage.runtime.photo.prepare`:
    the box given or found, the crop, the refusals), unreadable and refused images included."""
    from ..data.crops import iter_batches

    finds = predictor.pre.finds
    if finds and finder is None and any(it.error is None and it.bbox is None for it in items):
        from ..find.find import get_finder

        finder = get_finder(threads=getattr(predictor, "threads", 0))
    todo = [i for i, it in enumerate(items) if it.error is None]
    preps: dict[int, Prepared] = {i: Prepared(None, status=ERROR, error=it.error) for i, it in enumerate(items)
                                  if it.error is not None}
    probs: dict[int, np.ndarray] = {}
    bar = _progress(len(todo))
    try:
        for chunk, loaded in iter_batches(todo, max(1, batch_size),
                                          lambda i: prepare(predictor.pre, items[i].path, items[i].bbox, finder)):
            preps.update(zip(chunk, loaded))
            ok = [(i, p.crop) for i, p in zip(chunk, loaded) if p.crop is not None]
            if ok:
                out = predictor(np.stack([c for _, c in ok]))
                probs.update((i, np.asarray(q, dtype=np.float64)) for (i, _), q in zip(ok, out))
            bar.update(len(chunk))
    finally:
        bar.close()
    ordinal = getattr(predictor, "ordinal", None)
    return [make_row(preps[i], probs.get(i), predictor.classes, ordinal, finds, input=it.input, path=it.path,
                     subject=it.subject, view=it.view, true_level=it.true_label) for i, it in enumerate(items)]


def _progress(n: int):
    from tqdm.auto import tqdm

    return tqdm(total=n, desc="predict", unit="img", disable=not (n >= 32 and sys.stderr.isatty()), leave=False,
                dynamic_ncols=True)


def group_rows(rows: list[dict], classes: list[str], key: str = "subject", ordinal: str | None = None) -> list[dict]:
    """Fuse rows of one ``key`` value: mean probabilities of the readable images (the class read from them
    by the head's rule, ``ordinal``: see :mod:`skinage.models.decode`).

    >>> rows = [{"subject": "a", "path": "1", "status": "ok", "probs": [0.8, 0.2]},
    ...         {"subject": "a", "path": "2", "status": "ok", "probs": [0.2, 0.6]},
    ...         {"subject": "b", "path": "3", "status": "error", "probs": None, "error": "corrupt"}]
    >>> a, b = group_rows(rows, ["x", "y"])
    >>> a["class"], a["probs"], a["n_images"]
    ('x', [0.5, 0.4], 2)
    >>> b["status"], b["n_failed"], b["error"]
    ('error', 1, 'no usable image (3: corrupt)')
    """
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(str(r.get(key, "")), []).append(r)
    out = []
    for g, members in groups.items():
        ok = [r for r in members if r["status"] == "ok"]
        row: dict[str, Any] = {key: g, "n_images": len(ok), "n_failed": len(members) - len(ok),
                               "paths": [r["path"] for r in members]}
        trues = {r.get("true_level") for r in members if r.get("true_level") is not None}
        if len(trues) == 1:
            t = trues.pop()
            row["true_level"] = t
            row["true_class"] = classes[t] if 0 <= t < len(classes) else ""
        if ok:
            p = np.mean([r["probs"] for r in ok], axis=0)
            k = int(predict_labels(p, ordinal)[0])
            row.update(status="ok", error="", **{"class": classes[k]}, level=k, confidence=float(p[k]),
                       probs=[float(v) for v in p])
        else:
            reasons = "; ".join(f"{Path(r['path']).name}: {r.get('error')}" for r in members)
            row.update(status="error", error=f"no usable image ({reasons})", **{"class": None}, level=None,
                       confidence=None, probs=None)
        out.append(row)
    return out


def _flat(rows: list[dict], classes: list[str]) -> list[dict]:
    flat = []
    for r in rows:
        f = {}
        for k, v in r.items():
            if k == "probs":
                for c, name in enumerate(classes):
                    f[f"p_{name}"] = "" if v is None else round(float(v[c]), 6)
            elif k == "bbox":
                f[k] = "" if v is None else ",".join(f"{x:g}" for x in v)
            elif k == "paths":
                f[k] = ";".join(v)
            elif k == "confidence":
                f[k] = "" if v is None else round(float(v), 6)
            else:
                f[k] = "" if v is None else v
        flat.append(f)
    return flat


def to_csv(rows: list[dict], classes: list[str]) -> str:
    flat = _flat(rows, classes)
    cols: list[str] = []
    for f in flat:
        cols.extend(k for k in f if k not in cols)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    w.writeheader()
    w.writerows(flat)
    return buf.getvalue()


def to_json(rows: list[dict], predictor, model, group_by: str | None = None) -> dict:
    """The document ``skinage predict --out x.json`` writes: the model, its classes and preprocessing, the counts,
    and the rows under ``predictions`` (e.g. ``to_json([predict_image(p, upload)], p, "model.onnx")``)."""
    return {"model": str(model), "name": predictor.name, "classes": list(predictor.classes),
            "preprocessing": predictor.pre.to_meta(), "group_by": group_by,
            "n_ok": sum(r["status"] == "ok" for r in rows), "n_failed": sum(r["status"] != "ok" for r in rows),
            "predictions": rows}


def predict(model, *inputs, **options) -> list[dict]:
    """Predict images, folders or manifests; the Python form of ``skinage predict``.

    Parameters
    ----------
    model : str or path
        Run folder, checkpoint (``.safetensors``/``.json``) or ``.onnx`` file.
    *inputs : str or path
        Image files, folders, manifests.
    **options
        The flags of ``skinage predict`` (see :class:`PredictConfig`): ``out``, ``bbox``,
        ``group_by``, ``subject_pattern``, ``split``, ``batch_size``, ``threads``, ``which``.

    Returns
    -------
    list of dict
        One dict per image (or per subject with ``group_by="subject"``): ``path``, ``subject``,
        ``bbox`` (the box cut; found by a face/forehead model), ``luma``, ``status`` ("ok", "error", or a
        refusal: "no_face", "several_faces", "face_too_small", "too_dark"), ``error`` (the reason), ``class``,
        ``level``, ``confidence``, ``probs`` (one per class, in the model's class order).
    """
    if len(inputs) == 1 and isinstance(inputs[0], (list, tuple)):
        inputs = tuple(inputs[0])
    cfg = build_config(PredictConfig, options, model=str(model), inputs=tuple(str(i) for i in inputs))
    return _run(cfg)[0]


def _run(cfg: PredictConfig) -> tuple[list[dict], list[str], Any]:
    if not cfg.inputs:
        raise ConfigError("no INPUT given: name image files, folders or a manifest")
    predictor = load_predictor(cfg.model, cfg.which, cfg.threads)
    items, man_classes = collect_inputs(cfg.inputs, cfg.bbox, cfg.subject_pattern, cfg.split)
    if not items:
        raise ConfigError(f"no images found in {', '.join(cfg.inputs)}")
    classes = predictor.classes
    if man_classes and list(man_classes) != classes:
        say(f"skinage predict: warning: the manifest's classes {man_classes} differ from the model's {classes}; "
            f"true_level/true_class refer to the manifest's order")
    rows = predict_items(predictor, items, cfg.batch_size)
    if cfg.group_by:
        rows = group_rows(rows, classes, cfg.group_by, getattr(predictor, "ordinal", None))
    if cfg.out is not None:
        out = Path(cfg.out)
        if out.suffix.lower() == ".json":
            atomic_write_json(out, to_json(rows, predictor, cfg.model, cfg.group_by))
        elif out.suffix.lower() == ".csv":
            atomic_write_text(out, to_csv(rows, classes))
        else:
            raise ConfigError(f"--out {out}: use a .csv or .json file name")
    return rows, classes, predictor


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = ("examples:  skinage predict runs/utk/exp face.jpg --bbox 10,20,150,200\n"
                     "           skinage predict runs/utk/exp/export/model.int8.onnx photos/ --out preds.csv\n"
                     "           skinage predict model.onnx london.csv --group-by subject --out people.json")
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    add_config_arguments(parser, PredictConfig)


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(PredictConfig, args)
    rows, classes, _ = _run(cfg)
    n_bad = sum(r["status"] != "ok" for r in rows)
    what = "subjects" if cfg.group_by else "images"
    if cfg.out is None:
        sys.stdout.write(to_csv(rows, classes))
    else:
        say(f"skinage predict: wrote {len(rows)} {what} to {cfg.out}")
    for r in rows:
        if r["status"] != "ok":
            say(f"skinage predict: could not predict {r.get('path', r.get('subject'))}: {r['error']}")
    say(f"skinage predict: {len(rows) - n_bad} {what} predicted, {n_bad} failed")
    return 0 if len(rows) > n_bad else 1
