"""The SYNTHETIC AI-Hub-layout forehead generator (skinage.data.synth)."""

from __future__ import annotations

import hashlib
import json
import re

import numpy as np
import pytest
from PIL import Image

from skinage.data.synth import ANGLES, SYNTHETIC_DIRNAME, make_synthetic_aihub, wrinkle_energy


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    return make_synthetic_aihub(tmp_path_factory.mktemp("synth"), n_people=21, seed=3, image_size=(128, 96))


def _labels(root):
    return {p.name: json.loads(p.read_text(encoding="utf-8")) for p in sorted(root.rglob("*.json"))}


def test_layout_and_names(synth_root):
    assert synth_root.name == SYNTHETIC_DIRNAME and "synthetic" in synth_root.name
    assert "SYNTHETIC" in (synth_root / "README_SYNTHETIC.md").read_text()
    labels = _labels(synth_root)
    assert len(labels) == 21 * 5
    pat = re.compile(r"^(\d{4})_(\d{2})_(F|L15|L30|R15|R30)_01\.json$")
    per_person: dict[str, set] = {}
    for name, d in labels.items():
        m = pat.match(name)
        assert m, name
        pid, dev, angle = m.groups()
        # the image sits beside, named <id>_<device>_<angle>.jpg, and info.filename says so
        assert d["info"]["filename"] == f"{pid}_{dev}_{angle}.jpg"
        img = next(synth_root.rglob(d["info"]["filename"]))
        with Image.open(img) as im:
            assert im.size == (128, 96) and im.mode == "RGB"
        per_person.setdefault(pid, set()).add(angle)
    assert all(v == set(ANGLES) for v in per_person.values())


def test_json_keys_and_values(synth_root):
    for name, d in _labels(synth_root).items():
        assert set(d) >= {"info", "images", "annotations"}
        info, images, ann = d["info"], d["images"], d["annotations"]
        assert info["synthetic"] is True and "SYNTHETIC" in info["description"]
        assert info["id"] == name[:4] and info["angle"] == name.split("_")[2]
        assert info["gender"] in ("F", "M") and 18 <= info["age"] <= 69
        assert images["facepart"] == 1
        assert (images["width"], images["height"]) == (128, 96)
        x0, y0, x1, y1 = images["bbox"]
        assert 0 <= x0 < x1 <= 128 and 0 <= y0 < y1 <= 96
        # the box is a real part of the picture, not all of it: cropping matters
        area = (x1 - x0) * (y1 - y0) / (128 * 96)
        assert 0.1 < area < 0.5
        assert ann["forehead_wrinkle"] in range(7)


def test_grades_people_and_age(synth_root):
    labels = _labels(synth_root).values()
    person_grade = {}
    for d in labels:
        pid, g = d["info"]["id"], d["annotations"]["forehead_wrinkle"]
        assert person_grade.setdefault(pid, g) == g  # one grade per person at every angle
    grades = np.array(list(person_grade.values()))
    assert set(grades) == set(range(7))
    # grade 1 is the most common, as in the real table
    assert np.bincount(grades).argmax() == 1
    ages = {d["info"]["id"]: d["info"]["age"] for d in labels}
    a = np.array([ages[p] for p in person_grade])
    r = np.corrcoef(a, grades)[0, 1]
    assert 0.3 < r < 0.98  # informative, yet imperfect


def test_deterministic(tmp_path):
    def digest(root):
        h = hashlib.sha256()
        for p in sorted(root.rglob("*")):
            if p.is_file():
                h.update(p.name.encode() + p.read_bytes())
        return h.hexdigest()

    a = make_synthetic_aihub(tmp_path / "a", n_people=3, seed=11, image_size=(64, 48))
    b = make_synthetic_aihub(tmp_path / "b", n_people=3, seed=11, image_size=(64, 48))
    c = make_synthetic_aihub(tmp_path / "c", n_people=3, seed=12, image_size=(64, 48))
    assert digest(a) == digest(b)
    assert digest(a) != digest(c)


def test_higher_grades_carry_more_wrinkle_energy(tmp_path):
    root = make_synthetic_aihub(tmp_path, n_people=28, seed=0, image_size=(192, 144), angles=("F",))
    by_grade: dict[int, list] = {}
    for d in _labels(root).values():
        with Image.open(root / "images" / d["info"]["filename"]) as im:
            e = wrinkle_energy(im, d["images"]["bbox"])
        by_grade.setdefault(d["annotations"]["forehead_wrinkle"], []).append(e)
    means = {g: float(np.mean(v)) for g, v in by_grade.items()}
    # low grades (0-1) vs high grades (5-6): clearly apart
    low = np.mean(by_grade.get(0, []) + by_grade.get(1, []))
    high = np.mean(by_grade.get(5, []) + by_grade.get(6, []))
    assert high > 1.4 * low, means
    # and the energy rises with the grade overall (rank correlation over images)
    gs = np.array([g for g, v in by_grade.items() for _ in v])
    es = np.array([e for v in by_grade.values() for e in v])
    rank = lambda x: np.argsort(np.argsort(x))
    assert np.corrcoef(rank(gs), rank(es))[0, 1] > 0.5, means


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="angle"):
        make_synthetic_aihub(tmp_path, n_people=2, angles=("F", "UP"))
    with pytest.raises(ValueError, match="image_size"):
        make_synthetic_aihub(tmp_path, n_people=2, image_size=(8, 8))
