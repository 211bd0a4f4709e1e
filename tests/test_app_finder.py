"""The page's finder (skinage/app/web/find/*.mjs) and classifier arithmetic against Python's, in node.

Every stage gets Python's own inputs (the same decoded photo, the same raw model outputs from
onnxruntime), so the JavaScript must give the *same numbers*: the letterbox pixels and the detector's
float32 input, the anchors, the decoded and merged detections, the turned 192-px FaceMesh input (float32,
bit for bit), the landmarks mapped back, the face and forehead boxes, the statuses; the class rule and the
luma of too_dark; the ONNX metadata reader. The page end to end (its own model runs in onnxruntime-web) is
tested against Python in chromium by tests/test_app_page.py.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import shared_data
from test_app_pixels import require_node

pytest.importorskip("onnxruntime")

DRIVER = Path(__file__).resolve().parent / "js" / "finder_cases.mjs"


def run_cases(tmp: Path, cases: list) -> list:
    node = require_node()
    path = tmp / "cases.json"
    path.write_text(json.dumps(cases))
    r = subprocess.run([node, str(DRIVER), str(path), str(tmp / "out.json")], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads((tmp / "out.json").read_text())
    errors = [o["error"] for o in out if "error" in o]
    assert not errors, errors[0]
    return out


def test_constants_are_pythons(tmp_path):
    """constants.mjs holds every constant of skinage/find/constants.py (and the statuses) under the same name and value."""
    from skinage.find import constants, result

    js = run_cases(tmp_path, [{"op": "constants"}])[0]["constants"]
    py = {k: v for k, v in vars(constants).items() if k.isupper()}
    py.update({k: v for k, v in vars(result).items() if k.isupper() and isinstance(v, (str, tuple))})
    for k, v in py.items():
        assert k in js, f"constants.mjs lacks {k}"
        assert js[k] == (list(v) if isinstance(v, tuple) else v), k


def _photos() -> list:
    """(name, upright uint8 RGB array): a london front view, a UTKFace crop, a non-square and a turned photo."""
    london = shared_data("london-5view") / "images"
    utk = sorted((shared_data("utkface-age") / "40").glob("*.jpg"))[3]
    front = np.asarray(Image.open(london / "004_03.jpg").convert("RGB"))
    turned = np.asarray(Image.fromarray(front).rotate(25, resample=Image.Resampling.BILINEAR, expand=True))
    return [("london", front), ("utk", np.asarray(Image.open(utk).convert("RGB"))),
            ("wide", front[100:460, :, :].copy()), ("turned", turned)]


@pytest.mark.realdata
def test_finder_port_gives_pythons_numbers(tmp_path):
    from skinage.find.constants import DETECTOR_SIZE, LANDMARK_SIZE
    from skinage.find.detector import decode as py_decode
    from skinage.find.detector import to_image, weighted_nms
    from skinage.find.find import get_finder
    from skinage.find.imaging import detector_tensor, landmark_tensor, letterbox
    from skinage.find.landmarks import Roi
    from skinage.find.regions import eye_axis, forehead_box, square_box

    finder = get_finder(threads=1)
    cases, expect = [], []
    for name, arr in _photos():
        H, W = arr.shape[:2]
        img = tmp_path / f"{name}.rgb"
        img.write_bytes(arr.tobytes())
        base = {"image": str(img), "width": W, "height": H}
        pil = Image.fromarray(arr)
        square, lb = letterbox(pil, DETECTOR_SIZE)
        cases.append({"op": "letterbox", **base, "size": DETECTOR_SIZE, "out": str(tmp_path / f"{name}.lb")})
        expect.append(("letterbox", name, square, lb, detector_tensor(square)))
        regressors, logits, _ = finder.detector.run(pil)
        (tmp_path / f"{name}.reg").write_bytes(np.ascontiguousarray(regressors, dtype=np.float32).tobytes())
        (tmp_path / f"{name}.log").write_bytes(np.ascontiguousarray(logits, dtype=np.float32).tobytes())
        dets = [to_image(b, k, s, lb) for b, k, s in weighted_nms(*py_decode(regressors, logits, finder.detector.anchors))]
        assert dets, name
        cases.append({"op": "detect", **base, "regressors": str(tmp_path / f"{name}.reg"),
                      "logits": str(tmp_path / f"{name}.log")})
        expect.append(("detect", name, dets))
        det = dets[0]
        roi = Roi.from_detection(det.box, det.keypoints)
        cases.append({"op": "warp", **base, "roi": [roi.cx, roi.cy, roi.side, roi.cos, roi.sin], "n": LANDMARK_SIZE,
                      "out": str(tmp_path / f"{name}.warp")})
        expect.append(("warp", name, landmark_tensor(roi.crop(arr))))
        points, _ = finder.landmarker.run(roi.crop(arr))
        (tmp_path / f"{name}.pts").write_bytes(points.astype(np.float64).tobytes())
        cases.append({"op": "landmarks", "box": list(det.box), "keypoints": det.keypoints.reshape(-1).tolist(),
                      "points": str(tmp_path / f"{name}.pts")})
        lm = roi.to_image(points)
        expect.append(("landmarks", name, roi, lm))
        (tmp_path / f"{name}.lm").write_bytes(lm.tobytes())
        cases.append({"op": "regions", "landmarks": str(tmp_path / f"{name}.lm"), "size": [W, H], "box": list(det.box)})
        expect.append(("regions", name, forehead_box(lm, (W, H)), square_box(det.box, (W, H)), eye_axis(lm)))
    out = run_cases(tmp_path, cases)
    checked = 0
    for case, got, exp in zip(cases, out, expect):
        kind, name = exp[:2]
        if kind == "letterbox":
            square, lb, tensor = exp[2:]
            assert got["lb"] == {"width": lb.width, "height": lb.height, "left": lb.left, "top": lb.top}, name
            assert np.array_equal(np.frombuffer(Path(case["out"]).read_bytes(), np.uint8).reshape(square.shape), square), name
            js_t = np.frombuffer(Path(case["out"] + ".tensor").read_bytes(), np.float32)
            assert np.array_equal(js_t, tensor.reshape(-1)), name
        elif kind == "detect":
            dets = exp[2]
            assert len(got["detections"]) == len(dets), name
            for g, d in zip(got["detections"], dets):
                # the same arithmetic; only exp() of the scores may differ in the last bit between V8 and NumPy
                np.testing.assert_allclose(g["box"], d.box, rtol=1e-12, atol=1e-9, err_msg=name)
                np.testing.assert_allclose(np.reshape(g["keypoints"], (6, 2)), d.keypoints, rtol=1e-12, atol=1e-9)
                assert g["score"] == pytest.approx(d.score, rel=1e-14) and g["eyeSpan"] == pytest.approx(d.eye_span, rel=1e-12)
        elif kind == "warp":
            js_t = np.frombuffer(Path(case["out"]).read_bytes(), np.float32)
            assert np.array_equal(js_t, exp[2].reshape(-1)), f"{name}: FaceMesh input differs"
        elif kind == "landmarks":
            roi, lm = exp[2:]
            assert got["roi"] == [roi.cx, roi.cy, roi.side, roi.cos, roi.sin], name
            assert np.array_equal(np.reshape(got["points"], (-1, 3)), lm), name
        else:
            forehead, face, axis = exp[2:]
            assert got["forehead"] == list(forehead) and got["face"] == list(face), name
            assert got["axis"] == list(axis), name
        checked += 1
    assert checked == len(cases) == 4 * 5


def test_statuses_border_reduction_and_sums(tmp_path):
    from skinage.find.detector import weighted_nms  # noqa: F401  (the sums below are its np.sum)
    from skinage.find.finder import reduction_factor, status_of
    from skinage.find.result import Face

    def face(w, h=None, score=0.9, x=0.0):
        h = h or w
        return Face(box=(x, 0.0, x + w, h), forehead=(0, 0, 1, 1), landmarks=np.zeros((468, 3)), score=score,
                    keypoints=np.zeros((6, 2)), detection=(x, 0.0, x + w, h))

    groups = [([], 0), ([], 2), ([face(100)], 0), ([face(100), face(70)], 0), ([face(100), face(60)], 1),
              ([face(39)], 0), ([face(100), face(90), face(95)], 0), ([face(40.4)], 0)]
    cases = [{"op": "status", "profiles": p, "faces": [{"box": f.box, "detection": f.detection, "score": f.score}
                                                         for f in fs]} for fs, p in groups]
    sizes = [(4000, 3000), (1920, 1080), (600, 600), (6000, 6000), (1500, 1499)]
    cases.append({"op": "reduction", "sizes": sizes})
    rng = np.random.default_rng(0)
    arrays = [rng.random(n) * 10 ** rng.uniform(-3, 3, n) for n in (1, 5, 8, 9, 17, 130, 300)]
    cases.append({"op": "npsum", "arrays": [a.tolist() for a in arrays]})
    out = run_cases(tmp_path, cases)
    for (fs, p), got in zip(groups, out):
        assert got["status"] == list(status_of(fs, (1000, 1000), p))
    assert out[len(groups)]["factors"] == [reduction_factor(w, h) for w, h in sizes]
    assert out[-1]["sums"] == [float(np.sum(a)) for a in arrays]  # bit for bit, NumPy's pairwise order


@pytest.mark.realdata
def test_fallback_border_like_python(tmp_path):
    """The grey border of the finder's second pass (skinage.find.finder.add_border)."""
    import skinage.find.finder as finder_mod

    arr = np.asarray(Image.open(sorted((shared_data("utkface-age") / "20").glob("*.jpg"))[0]).convert("RGB"))
    (tmp_path / "a.rgb").write_bytes(arr.tobytes())
    out = run_cases(tmp_path, [{"op": "border", "image": str(tmp_path / "a.rgb"), "width": arr.shape[1],
                                "height": arr.shape[0], "out": str(tmp_path / "b.rgb")}])[0]
    framed, pad = finder_mod.add_border(Image.fromarray(arr))
    assert out["pad"] == pad and (out["height"], out["width"]) == framed.shape[:2]
    assert np.array_equal(np.frombuffer((tmp_path / "b.rgb").read_bytes(), np.uint8).reshape(framed.shape), framed)


def test_class_rule_luma_and_metadata(tmp_path):
    from skinage.models.decode import predict_labels
    from skinage.runtime.quality import mean_luma

    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.ones(4) * 0.7, size=200).astype(np.float32)
    probs[0] = [0.3, 0.3, 0.4, 0.0]  # rank 1, argmax 2
    probs[1] = [0.25, 0.25, 0.25, 0.25]  # ties: argmax takes the first
    crop = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    (tmp_path / "crop.rgb").write_bytes(crop.tobytes())
    cases = [{"op": "classes", "probs": probs.tolist(), "ordinal": o} for o in (None, "corn", "coral")]
    cases.append({"op": "luma", "image": str(tmp_path / "crop.rgb")})
    out = run_cases(tmp_path, cases)
    for case, got in zip(cases[:3], out[:3]):
        assert got["indices"] == predict_labels(probs, case["ordinal"]).tolist(), case["ordinal"]
    assert out[0]["indices"][0] == 2 and out[1]["indices"][0] == 1
    assert out[3]["luma"] == pytest.approx(mean_luma(crop), rel=1e-12)


def test_onnx_metadata_read_in_javascript(tmp_path):
    pytest.importorskip("torch")
    from export_helpers import make_tiny_run
    from skinage.export.export import export
    from skinage.export.fp16 import write_fp16
    from skinage.runtime.onnx_io import read_onnx_metadata

    tiny = make_tiny_run(tmp_path / "tiny", ordinal="corn", steps=5)
    files = export(tiny["run"], repeats=1, check_images=4)["files"]
    fp16 = write_fp16(files["onnx_fp32"], tmp_path / "m16.onnx")
    out = run_cases(tmp_path, [{"op": "meta", "model": files["onnx_fp32"]}, {"op": "meta", "model": str(fp16)}])
    assert out[0]["meta"] == read_onnx_metadata(files["onnx_fp32"])
    assert out[1]["meta"] == read_onnx_metadata(fp16) and out[1]["meta"]["precision"] == "fp16-storage"
    assert out[0]["meta"]["ordinal"] == "corn" and "rank" in out[0]["meta"]["output"]["class_rule"]
