"""The phone-photo augmentations (jpeg, blur, light, box): values worked out by hand, context crops, training."""

from __future__ import annotations

import io
import math

import numpy as np
import pandas as pd
import pytest
from PIL import Image

torch = pytest.importorskip("torch")

from skinage.data.crops import CropStore, context_crop, context_size  # noqa: E402
from skinage.preprocess import Preprocess  # noqa: E402
from skinage.training import phone_augment as pa  # noqa: E402
from skinage.training.augment import BatchAugment, build_augment, needs_context, parse_augment  # noqa: E402


def test_the_steps_are_augment_choices():
    assert parse_augment("flip,jpeg,blur,light,box") == ("flip", "jpeg", "blur", "light", "box")
    assert needs_context("flip,box") and not needs_context("flip,jpeg")


def test_gaussian_kernel_by_hand():
    k = pa.gaussian_kernels(torch.tensor([1.0, 0.0, 2.0]), 2)
    w = [math.exp(-2.0), math.exp(-0.5), 1.0, math.exp(-0.5), math.exp(-2.0)]
    assert k[0].tolist() == pytest.approx([v / sum(w) for v in w])
    assert k[1].tolist() == [0.0, 0.0, 1.0, 0.0, 0.0]
    w2 = [math.exp(-0.5 * (t / 2) ** 2) for t in (-2, -1, 0, 1, 2)]
    assert k[2].tolist() == pytest.approx([v / sum(w2) for v in w2])


def test_blur_keeps_flat_images_and_spreads_a_point():
    flat = torch.full((2, 3, 9, 9), 0.4)
    assert torch.allclose(pa.blur(flat, torch.Generator().manual_seed(0), max_sigma=1.5), flat, atol=1e-6)
    point = torch.zeros(1, 3, 9, 9)
    point[0, :, 4, 4] = 1.0
    g = torch.Generator().manual_seed(1)
    sigma = float(torch.rand(1, generator=torch.Generator().manual_seed(1), dtype=torch.float64)) * 1.5
    out = pa.blur(point, g, max_sigma=1.5)
    k = pa.gaussian_kernels(torch.tensor([sigma]), 5)[0]  # the same draw, the kernel the blur used
    k = k[5 - 4:5 + 5]  # radius ceil(3 * 1.5) = 5, the 9 taps around the point
    assert out[0, 0].double().numpy() == pytest.approx(np.outer(k, k), abs=1e-6)
    assert float(out.sum()) == pytest.approx(3.0, abs=1e-5)  # nothing lost (the point is far from the edges)


def test_light_by_hand():
    x = torch.tensor([0.2, 0.5, 0.8]).view(1, 3, 1, 1).repeat(1, 1, 2, 2)
    t = math.log(1.1)  # red x 1.1, blue / 1.1, then all divided by the luma of those gains
    norm = 0.299 * 1.1 + 0.587 + 0.114 / 1.1
    y = [0.2 * 1.1 / norm, 0.5 / norm, 0.8 / 1.1 / norm]
    m = 0.299 * y[0] + 0.587 * y[1] + 0.114 * y[2]
    expected = [min(1.0, 1.3 * (m + 0.8 * (v - m))) for v in y]  # contrast 0.8 around m, brightness 1.3
    out = pa.apply_light(x, torch.tensor([1.3]), torch.tensor([0.8]), torch.tensor([t]))
    assert out[0, :, 0, 0].tolist() == pytest.approx(expected, abs=1e-6)
    grey = torch.full((1, 3, 2, 2), 0.5)  # a grey keeps its luma whatever the temperature
    out = pa.apply_light(grey, torch.tensor([1.0]), torch.tensor([1.0]), torch.tensor([0.15]))[0, :, 0, 0]
    assert float(0.299 * out[0] + 0.587 * out[1] + 0.114 * out[2]) == pytest.approx(0.5, abs=1e-6)
    assert out[0] > 0.5 > out[2]  # warmer: more red, less blue


def test_jpeg_is_pillows_round_trip_at_the_drawn_quality():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
    out = pa.jpeg(x, torch.Generator().manual_seed(0), quality=(40, 40))
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=40)
    ref = np.asarray(Image.open(buf).convert("RGB"))
    assert np.array_equal((out[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8), ref)


def test_box_theta_maps_the_plain_crop_into_its_context():
    m = pa.rect_theta(torch.tensor([[-0.5, -0.25, 0.5, 0.75]]), torch.tensor([1.2]), torch.tensor([[0.1, -0.1]]))[0]
    # half-sizes 0.5 / 0.5, centre (0, 0.25); scale 1.2; a shift of 0.1 of the width = 0.1 * 2 * 0.5 in -1..1 units
    assert m.flatten().tolist() == pytest.approx([0.6, 0.0, 0.1, 0.0, 0.6, 0.25 - 0.1, 0.0, 0.0, 1.0])
    thetas = pa.box_theta(torch.tensor([[-0.5, -0.5, 0.5, 0.5]] * 500, dtype=torch.float64),
                          torch.Generator().manual_seed(0))
    scale = thetas[:, 0, 0] / 0.5
    shift = thetas[:, :2, 2] / (2 * 0.5)
    assert 1 / 1.15 - 1e-9 <= float(scale.min()) < 0.9 and 1.1 < float(scale.max()) <= 1.15 + 1e-9
    assert float(shift.abs().max()) <= 0.1 + 1e-9 and float(shift.abs().max()) > 0.09


def test_the_plain_box_of_a_context_crop_is_the_crop_itself():
    """No jitter: output pixel centres fall on the context crop's pixel centres, so the cut is exact."""
    x = torch.randint(0, 256, (2, 3, 6, 6), dtype=torch.uint8)
    rects = torch.tensor([[-2 / 3, -2 / 3, 2 / 3, 2 / 3]] * 2, dtype=torch.float64)
    out = BatchAugment("none", 4)(x, torch.Generator().manual_seed(0), rects)
    assert torch.equal(out, x[:, :, 1:5, 1:5].float() / 255)
    per_image = build_augment("none", 4)  # feature mode's views: the same cut
    assert torch.allclose(per_image(x[0], rects[0]), x[0, :, 1:5, 1:5].float() / 255, atol=1e-6)


def test_context_crops_for_training_and_plain_crops_elsewhere(tmp_path):
    rng = np.random.default_rng(0)
    paths = []
    for i in range(3):
        p = tmp_path / f"{i}.png"
        Image.fromarray(rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)).save(p)
        paths.append(str(p))
    df = pd.DataFrame({"path": paths, "label": [0, 1, 0], "x0": [20.0, 0.0, 30.0], "y0": [10.0, 0.0, 20.0],
                       "x1": [60.0, 40.0, 80.0], "y1": [50.0, 40.0, 60.0]})
    pre = Preprocess(size=16)
    plain = CropStore(df, pre)
    wide = CropStore(df, pre, context=0.25)
    n = context_size(16, 0.25)
    assert plain.rects is None and tuple(wide.x.shape) == (3, 3, n, n) and tuple(wide.rects.shape) == (3, 4)
    for i, p in enumerate(paths):
        box = tuple(df.loc[i, ["x0", "y0", "x1", "y1"]])
        assert np.array_equal(plain.x[i].permute(1, 2, 0).numpy(), pre.load(p, box))
        crop, rect = context_crop(pre, p, box, 0.25)
        assert np.array_equal(wide.x[i].permute(1, 2, 0).numpy(), crop) and wide.rects[i].tolist() == rect.tolist()
    # box 0 has room all round: the plain box is the middle 40 of 60 px; box 1 touches the top-left corner
    assert wide.rects[0].tolist() == pytest.approx([-2 / 3, -2 / 3, 2 / 3, 2 / 3])
    assert wide.rects[1].tolist() == pytest.approx([-1.0, -1.0, 0.6, 0.6])


def test_specs_without_phone_steps_draw_as_before():
    """A phone step appended to a spec leaves the other steps' draws in place: jpeg draws after them."""
    x = torch.rand(4, 3, 16, 16)
    g = torch.Generator().manual_seed(5)
    a = BatchAugment("flip,rotate,crop,noise", 16)(x, g)
    b = BatchAugment("flip,rotate,crop,noise,jpeg", 16)(x, torch.Generator().manual_seed(5))
    assert torch.equal(b, pa.jpeg(a, g))  # the same augmentation, then re-compressed with the next draws
    img = (x[0] * 255).round().to(torch.uint8)
    torch.manual_seed(3)
    c = build_augment("flip,rotate,jitter,crop,noise", 16)(img)
    torch.manual_seed(3)
    d = build_augment("flip,rotate,jitter,crop,noise", 16)(img)
    assert torch.equal(c, d)


@pytest.mark.parametrize("mode", ["finetune", "feature"])
def test_training_with_every_phone_step(bright_dark_folder, tmp_path, mode):
    import skinage

    skinage.ingest(bright_dark_folder, out=tmp_path / "m.csv", quiet=True, subject_regex="^(p\\d+)_")
    opts = {"aug_views": 2} if mode == "feature" else {"batch_size": 8}
    res = skinage.train(data=tmp_path / "m.csv", model="mobilenet_v2", mode=mode, size=32, pretrained=False,
                        epochs=1, augment="flip,jpeg,blur,light,box", project=tmp_path / "runs", progress=False, **opts)
    assert res.metrics["test"]["n"] > 0 and np.isfinite(res.metrics["val"]["loss"])
