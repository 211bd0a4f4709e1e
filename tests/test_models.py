"""Models: registry, heads (plain and ordinal), SkinageModel, checkpoints, pretrained weights."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from skinage.models import weights
from skinage.models.checkpoint import load_checkpoint, save_checkpoint
from skinage.models.heads import Head, make_loss, outputs_to_probs
from skinage.models.model import SkinageModel
from skinage.models.registry import get_config, list_models


@pytest.mark.parametrize("name", list_models())
def test_every_registry_model_forward_backward_small_input(name):
    torch.manual_seed(0)
    m = SkinageModel(name, num_classes=4, hidden=(8,), dropout=0.1, pretrained=False)
    x = torch.rand(2, 3, 64, 64)
    out = m(x)
    assert out.shape == (2, 4)
    assert m.features(x).shape == (2, get_config(name).feature_dim)
    loss = torch.nn.functional.cross_entropy(out, torch.tensor([0, 3]))
    loss.backward()
    grads = [p.grad for p in m.backbone.parameters() if p.grad is not None]
    assert grads and any(float(g.abs().sum()) > 0 for g in grads), "no gradient reached the backbone"


def test_unknown_model_suggests_the_closest_name():
    with pytest.raises(ValueError, match="did you mean 'mobilenet_v2'"):
        get_config("mobilenetv2")


def test_normalisation_is_inside_the_model():
    m = SkinageModel("mobilenet_v2", 2, pretrained=False).eval()
    x = torch.full((1, 3, 8, 8), 0.485)
    # channel 0 equals the ImageNet mean -> normalises to 0
    assert torch.allclose(m.normalize(x)[0, 0], torch.zeros(8, 8), atol=1e-6)


def test_head_dropout_count_is_checked():
    with pytest.raises(ValueError, match="dropout has 3 values"):
        Head(8, 3, hidden=(4, 4), dropout=(0.1, 0.2, 0.3))


def test_ordinal_probabilities_by_hand():
    # CORN: conditional P(y>0)=0.8, P(y>1|y>0)=0.5 -> cumulative 0.8, 0.4 -> classes .2 .4 .4
    logits = torch.logit(torch.tensor([[0.8, 0.5]]))
    assert torch.allclose(outputs_to_probs(logits, "corn"), torch.tensor([[0.2, 0.4, 0.4]]), atol=1e-5)
    # CORAL: P(y>0)=0.9, P(y>1)=0.3 -> classes .1 .6 .3
    logits = torch.logit(torch.tensor([[0.9, 0.3]]))
    assert torch.allclose(outputs_to_probs(logits, "coral"), torch.tensor([[0.1, 0.6, 0.3]]), atol=1e-5)


@pytest.mark.parametrize("ordinal", [None, "corn", "coral"])
def test_each_head_learns_an_ordered_toy_task(ordinal):
    torch.manual_seed(0)
    x = torch.linspace(-2, 2, 120).unsqueeze(1)
    y = torch.bucketize(x[:, 0], torch.tensor([-1.0, 0.0, 1.0]))  # 4 ordered levels
    head = Head(1, 4, hidden=(16,), ordinal=ordinal)
    loss_fn = make_loss(4, ordinal)
    opt = torch.optim.Adam(head.parameters(), lr=0.05)
    for _ in range(300):
        opt.zero_grad()
        loss_fn(head(x), y).backward()
        opt.step()
    head.eval()
    acc = (head.probs(head(x)).argmax(1) == y).float().mean().item()
    assert acc > 0.9


def test_checkpoint_round_trip_gives_identical_outputs(tmp_path):
    torch.manual_seed(0)
    m = SkinageModel("mobilenet_v2", 3, hidden=(16,), dropout=0.2, batchnorm=True, ordinal="corn", pretrained=False).eval()
    meta = {"classes": ["a", "b", "c"], "mode": "finetune", "preprocessing": {"input_size": 64}}
    save_checkpoint(m, meta, tmp_path / "weights" / "best")
    m2, meta2 = load_checkpoint(tmp_path)  # a run folder resolves to weights/best
    x = torch.rand(2, 3, 64, 64)
    assert torch.equal(m(x), m2(x))
    assert meta2["classes"] == ["a", "b", "c"]
    assert meta2["preprocessing"]["size"] == 64
    assert meta2["preprocessing"]["mean"] == pytest.approx([0.485, 0.456, 0.406])
    assert meta2["head"]["ordinal"] == "corn" and meta2["model"] == "mobilenet_v2"
    assert "torch" in meta2["versions"]
    # the JSON is plain, readable metadata
    assert json.loads((tmp_path / "weights" / "best.json").read_text())["mode"] == "finetune"


def test_checkpoint_with_wrong_class_count_is_refused(tmp_path):
    m = SkinageModel("squeezenet1_1", 3, pretrained=False)
    with pytest.raises(ValueError, match="2 class names for a 3-class model"):
        save_checkpoint(m, {"classes": ["a", "b"]}, tmp_path / "x")


def test_missing_checkpoint_error_says_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="skinage train"):
        load_checkpoint(tmp_path)


def test_efficientnet_key_conversion_by_hand():
    assert weights.convert_efficientnet_key("_conv_stem.weight") == "conv_stem.weight"
    assert weights.convert_efficientnet_key("_bn1.running_mean") == "bn2.running_mean"
    # stage sizes 1,2,2,3,3,4,1: stage 5 holds blocks 11..14, stage 6 block 15
    assert weights.convert_efficientnet_key("_blocks.14._project_conv.weight") == "blocks.5.3.conv_pwl.weight"
    assert weights.convert_efficientnet_key("_blocks.15._bn2.bias") == "blocks.6.0.bn3.bias"


def _chelsea(size: int, interpolation) -> torch.Tensor:
    skimage = pytest.importorskip("skimage")
    from PIL import Image

    img = Image.fromarray(skimage.data.chelsea())  # a real photo of a cat
    w, h = img.size
    s = min(w, h)
    img = img.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s)).resize((size, size), interpolation)
    return torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1).float().div(255).unsqueeze(0)


CAT_CLASSES = set(range(281, 286))  # ImageNet: tabby, tiger cat, Persian, Siamese, Egyptian cat


def test_mobilenet_v2_imagenet_weights_really_load():
    if not weights.available("mobilenet_v2"):
        pytest.skip("MobileNetV2 ImageNet weights not installed: run `make setup`")
    import torchvision
    from PIL import Image

    tv = torchvision.models.mobilenet_v2(weights="IMAGENET1K_V1").eval()
    m = SkinageModel("mobilenet_v2", 2, pretrained=True).eval()
    assert m.weights_from.startswith("imagenet:")
    x = _chelsea(224, Image.BILINEAR)
    with torch.no_grad():
        feats = m.features(x)
        logits = tv.classifier(feats)
    assert int(logits.argmax()) in CAT_CLASSES


def test_efficientnet_lite0_imagenet_weights_really_load():
    if not weights.available("efficientnet_lite0"):
        pytest.skip("EfficientNet-Lite0 ImageNet weights not installed: run `make setup`")
    import timm
    from PIL import Image
    from safetensors.torch import load_file

    full = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    full.load_state_dict(load_file(str(weights.efficientnet_lite0_path())), strict=True)
    full.eval()
    m = SkinageModel("efficientnet_lite0", 2, pretrained=True).eval()
    x = _chelsea(224, Image.BICUBIC)
    with torch.no_grad():
        feats = m.features(x)
        logits = full.classifier(feats)
    assert int(logits.argmax()) in CAT_CLASSES
    probs = logits.softmax(1)[0]
    assert float(probs[sorted(CAT_CLASSES)].sum()) > 0.5


def test_models_command_lists_every_model(capsys):
    from skinage.cli import main

    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in list_models():
        assert name in out
    assert "MMACs" in out


# ---------------------------------------------------------------- test-time augmentation (flip)
def test_flip_tta_is_the_mean_of_the_image_and_its_mirror(tmp_path):
    import torch

    from skinage.models.checkpoint import load_checkpoint, save_checkpoint
    from skinage.models.model import SkinageModel

    torch.manual_seed(0)
    m = SkinageModel("squeezenet1_1", 3, hidden=(8,), pretrained=False).eval()
    x = torch.rand(3, 3, 48, 48)
    with torch.no_grad():
        plain, mirror = m(x), m(x.flip(-1))
        m.tta = "flip"
        tta = m(x)
        out, emb = m.outputs_and_features(x)
    # worked out by hand: the mean of the two plain forwards, one row per image
    assert tta.shape == (3, 3)
    assert torch.allclose(tta, (plain + mirror) / 2, atol=1e-5)
    assert torch.allclose(out, tta, atol=1e-6) and torch.allclose(emb, m.features(x), atol=1e-6)
    assert not torch.allclose(plain, mirror, atol=1e-3)  # the mirror really changes the outputs
    # training forwards never use it: the backbone sees the 3 images, not 3 + 3 mirrors
    seen = []
    h = m.backbone.register_forward_hook(lambda _m, inp, _o: seen.append(inp[0].shape[0]))
    m.train()
    m(x)
    m.eval()
    with torch.no_grad():
        m(x)
    h.remove()
    assert seen == [3, 6]
    # the checkpoint keeps it; load_checkpoint can override it
    save_checkpoint(m, {"classes": ["a", "b", "c"]}, tmp_path / "best")
    m2, meta = load_checkpoint(tmp_path / "best.safetensors")
    assert m2.tta == "flip" and meta["tta"] == "flip"
    with torch.no_grad():
        assert torch.allclose(m2(x), tta, atol=1e-5)
    m3, meta3 = load_checkpoint(tmp_path / "best.safetensors", tta="none")
    assert m3.tta is None and meta3["tta"] is None
    with torch.no_grad():
        assert torch.allclose(m3(x), plain, atol=1e-5)
    with pytest.raises(ValueError, match="flip"):
        SkinageModel("squeezenet1_1", 3, pretrained=False, tta="rot90")


def test_decision_margin_is_the_mass_that_flips_the_class():
    """Moving slightly more than the margin from the winner flips the class; slightly less does not."""
    import numpy as np

    from skinage.models.decode import decision_margin, predict_labels

    # hand-worked: argmax [0.6, 0.25, 0.15] -> (0.6 - 0.25) / 2 = 0.175; rank [0.1, 0.45, 0.3, 0.15]:
    # P(y>k) = 0.9, 0.45, 0.15 -> nearest to 0.5 is 0.45, margin 0.05
    assert decision_margin(np.array([[0.6, 0.25, 0.15]]), None)[0] == pytest.approx(0.175)
    p = np.array([[0.1, 0.45, 0.3, 0.15]])
    assert decision_margin(p, "corn")[0] == pytest.approx(0.05)
    assert predict_labels(p, "corn")[0] == 1
    # moving 0.06 of mass from class 1 to class 2 lifts P(y>1) to 0.51: rank 2; moving 0.04 does not
    assert predict_labels(p + [[0, -0.06, 0.06, 0]], "corn")[0] == 2
    assert predict_labels(p + [[0, -0.04, 0.04, 0]], "corn")[0] == 1
    q = np.array([[0.6, 0.25, 0.15]])
    assert predict_labels(q + [[-0.18, 0.18, 0]], None)[0] == 1 and predict_labels(q + [[-0.17, 0.17, 0]], None)[0] == 0


def test_near_ties_of_an_ordinal_head():
    """Worked by hand for a rank-decoded head: P(y>k) of each row, the flipped rows, their margins."""
    import numpy as np

    from skinage.models.decode import near_ties

    # rows: P(y>0), P(y>1) = (0.9, 0.53) rank 2; (0.8, 0.2) rank 1; (0.51, 0.1) rank 1; (0.3, 0.1) rank 0
    ref = np.array([[0.1, 0.37, 0.53], [0.2, 0.6, 0.2], [0.49, 0.41, 0.1], [0.7, 0.2, 0.1]])
    # other flips row 0 (P(y>1) 0.53 -> 0.47: margin 0.03) and row 2 (P(y>0) 0.51 -> 0.48: margin 0.01)
    other = np.array([[0.1, 0.43, 0.47], [0.2, 0.6, 0.2], [0.52, 0.38, 0.1], [0.7, 0.2, 0.1]])
    worst, share = near_ties(ref, other, "corn")
    assert worst == pytest.approx(0.03)
    assert share == pytest.approx(0.5)  # margins 0.03, 0.3, 0.01, 0.2: two of four are <= 0.03
    assert near_ties(ref, ref, "corn") == (None, None)
