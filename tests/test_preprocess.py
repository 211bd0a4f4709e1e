"""skinage.preprocess: the one Preprocess, built from the registry, stored and read back, cutting crops."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from skinage.data.images import ImageError, load_crop
from skinage.preprocess import Preprocess


def test_for_model_takes_the_registry_and_the_overrides():
    eff = Preprocess.for_model("efficientnet_lite0")
    assert (eff.size, eff.interpolation, eff.mean, eff.std) == (224, "bicubic", (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    small = Preprocess.for_model("mobilenet_v2", size=96, margin=0.2, square=True, region="face")
    assert (small.size, small.margin, small.square, small.region, small.interpolation) == (96, 0.2, True, "face", "bilinear")
    assert small.finds and not eff.finds
    with pytest.raises(ValueError, match="did you mean 'mobilenet_v2'"):
        Preprocess.for_model("mobilenet_v3")


def test_from_meta_round_trip_and_files_written_before_it_existed():
    pre = Preprocess.for_model("efficientnet_lite0", size=160, margin=0.1)
    assert Preprocess.from_meta({"model": "efficientnet_lite0", "preprocessing": pre.to_meta()}) == pre
    assert Preprocess.from_meta(pre.to_meta()) == pre  # the block alone
    # a checkpoint of 2026-11: 'input_size', no region; the rest from the registry of its model
    old = Preprocess.from_meta({"model": "efficientnet_lite0", "preprocessing": {"input_size": 160, "margin": 0.1}})
    assert old == pre
    with pytest.raises(ValueError, match="no input size"):
        Preprocess.from_meta({"preprocessing": {"margin": 0.1}})


@pytest.mark.parametrize("bad,match", [({"size": 0}, "positive"), ({"region": "chin"}, "crop region"),
                                       ({"interpolation": "cubic"}, "interpolation"), ({"margin": -0.1}, "margin")])
def test_refuses_bad_values_with_a_reason(bad, match):
    with pytest.raises(ValueError, match=match):
        Preprocess(**{"size": 32, **bad})


def test_load_cuts_what_load_crop_cuts_and_region_none_ignores_boxes(tmp_path):
    rng = np.random.default_rng(0)
    p = tmp_path / "photo.png"
    Image.fromarray(rng.integers(0, 256, (60, 90, 3), dtype=np.uint8)).save(p)
    box = (10.0, 5.0, 50.0, 35.0)
    pre = Preprocess(size=24, margin=0.25, square=True, interpolation="bicubic")
    expected = load_crop(p, box, 24, margin=0.25, square=True, resample="bicubic")
    assert np.array_equal(pre.load(p, box), expected)
    assert np.array_equal(pre.load(p.read_bytes(), box), expected)  # an upload in memory: the same pixels
    whole = pre.replace(region="none", margin=0.0, square=False)
    assert np.array_equal(whole.load(p, box), load_crop(p, None, 24, resample="bicubic"))
    # the crop box: 25 % of 40 x 30 on each side -> 60 x 45, squared to 60 x 60 around (30, 20), shifted inside
    assert pre.crop_box(box, (90, 60)) == (0.0, 0.0, 60.0, 60.0)
    with pytest.raises(ImageError) as e:
        pre.load(b"not an image")
    assert e.value.reason == "non-image" and "<upload>" in str(e.value)
