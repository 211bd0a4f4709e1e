"""A real site for the page's browser tests (and scripts/app_agreement.py): a small UTKFace run on found
face crops, built once (minutes at most), and the Python answer for a photo the page is compared with.

The run: 40 photos a decade of ../shared/data/utkface-age (4 age groups, 10-29 / 30-49 / 50-59 / 60-79),
the face box of each from the finder (``skinage ingest --find face``: the manifest's sidecar says
``region: face``, so the model is a face-region model and ``skinage predict`` finds faces itself), MobileNetV2 features at 224 px with an
ordinal CORN head (so the page must apply the rank rule, not the argmax), evaluated and exported (fp32 +
fp16-storage), then ``skinage app``. 224 px keeps Python's reduced-scale JPEG decoding (``draft``) out
of the crops of these photos (a face box under 448 px), so the page sees the very pixels Python reads.
"""

from __future__ import annotations

import os
from pathlib import Path

REMAP = "10,20:10-29 30,40:30-49 50:50-59 60,70:60-79"
DECADES = ("10", "20", "30", "40", "50", "60", "70")
TRAIN_PER_DECADE = 40


def face_manifest(utk: Path, root: Path, per_decade: int = TRAIN_PER_DECADE) -> Path:
    """``skinage ingest --find face`` of the first ``per_decade`` photos of each decade: the finder's face boxes, the
    sidecar's ``region: face``."""
    from skinage.data.ingest import ingest

    src = root / "utk"
    for d in DECADES:
        (src / d).mkdir(parents=True, exist_ok=True)
        for f in sorted((utk / d).glob("*.jpg"))[:per_decade]:
            os.symlink(f, src / d / f.name)
    out = root / "utk-face.csv"
    ingest(src, out=out, remap=REMAP, find="face", quiet=True)
    return out


def build_site(utk: Path, root: Path, measure: int = 16) -> dict:
    """The run and the site: ``{"manifest", "run", "site", "card"}``."""
    from skinage.app.app import app
    from skinage.evaluation.evaluate import evaluate
    from skinage.export.export import export
    from skinage.training.train import train

    manifest = face_manifest(utk, root)
    run = Path(train(data=manifest, model="mobilenet_v2", mode="feature", epochs=20, ordinal="corn",
                     project=root / "runs", name="utk", progress=False).run_dir)
    evaluate(run, n_boot=200, gradcam=0, embedding="none", plots=False, report=False, progress=False)
    export(run, fp16=True, repeats=3)
    card = app(run, out=root / "site", measure=measure, label="Age group")
    return {"manifest": manifest, "run": run, "site": root / "site", "card": card}


class PythonReference:
    """Python's answer for one photo: ``skinage predict``'s row for it on the site's ``model.onnx``
    (:func:`skinage.runtime.photo.predict_image`: the finder's face box, ``Preprocess.load``, onnxruntime, the
    class rule, too_dark), in the page's terms (a file ``skinage predict`` cannot read, status ``error``, is the
    page's ``unreadable``), with the finder's face and forehead boxes (the same finder) beside it."""

    def __init__(self, model: Path):
        from skinage.find.find import get_finder
        from skinage.runtime.predictor import OnnxPredictor

        self.predictor = OnnxPredictor(model, threads=1)
        self.finder = get_finder(threads=1)

    def __call__(self, photo) -> dict:
        from skinage.runtime.photo import predict_image

        row = predict_image(self.predictor, str(photo), finder=self.finder)
        found = self.finder.find(str(photo))
        status = "unreadable" if row["status"] == "error" and row.get("finder") == "unreadable" else row["status"]
        out = {"status": status, "reason": row["error"], "row": row, "luma": row.get("luma"),
               "face": list(found.face.box) if found.face else None,
               "forehead": list(found.face.forehead) if found.face else None}
        if status == "ok":
            out.update({"class": row["class"], "index": row["level"], "probs": row["probs"]})
        return out


def page_photos(utk: Path, london: Path, per_decade: int, london_n: int) -> list[Path]:
    """Photos the run was not trained on: ``per_decade`` UTKFace photos of each decade (from the 101st on) and
    ``london_n`` london-5view front views (and as many three-quarter views)."""
    photos = []
    for d in DECADES:
        photos += sorted((utk / d).glob("*.jpg"))[100:100 + per_decade]
    fronts = sorted((london / "images").glob("*_03.jpg"))
    step = max(1, len(fronts) // max(1, london_n))
    photos += fronts[::step][:london_n]
    photos += sorted((london / "images").glob("*_02.jpg"))[::step][:london_n // 2]
    return photos
