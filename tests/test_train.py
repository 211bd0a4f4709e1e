"""skinage train: each mode learns bright vs dark, run-folder artifacts, exact resume."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from conftest import make_image

torch = pytest.importorskip("torch")

from skinage.config import ConfigError  # noqa: E402
from skinage.data.manifest import Manifest, read_manifest, write_manifest  # noqa: E402
from skinage.preprocess import Preprocess  # noqa: E402
from skinage.training.train import TrainingInterrupted, train  # noqa: E402

# one thread: on a shared 2-core machine two OpenMP threads can be many times slower than one
FAST = dict(progress=False, threads=1, warmup=0.0)


def _manifest(root, n_per_class=30, ordinal=False, size=(40, 40)):
    """Bright vs dark images, one person each; splits train 60 %, val 20 %, test 20 % per class."""
    rows = []
    for label, (cls, v) in enumerate((("dark", 45), ("bright", 210))):
        for i in range(n_per_class):
            p = make_image(root / cls / f"p{i}.png", value=v, seed=1000 * label + i, size=size, noise=30)
            split = "train" if i % 5 < 3 else ("val" if i % 5 == 3 else "test")
            rows.append({"path": str(p), "label": label, "subject": f"{cls}{i}", "view": "F", "split": split})
    path = root / "m.csv"
    write_manifest(Manifest(pd.DataFrame(rows), ["dark", "bright"], {"ordinal": ordinal}), path)
    return path


@pytest.fixture(scope="module")
def bd_manifest(tmp_path_factory):
    return _manifest(tmp_path_factory.mktemp("bd"), n_per_class=100)


@pytest.fixture(scope="module")
def feature_run(bd_manifest, tmp_path_factory):
    project = tmp_path_factory.mktemp("runs")
    return train(data=bd_manifest, model="mobilenet_v2", mode="feature", size=64, epochs=15, batch_size=8,
                 lr=1e-2, aug_views=1, project=project, name="feat", **FAST)


def test_feature_mode_learns_and_writes_run_folder(feature_run, bd_manifest):
    run = feature_run.run_dir
    m = feature_run.metrics
    assert m["test"]["accuracy"] > 0.9 and m["val"]["accuracy"] > 0.9
    for f in ("args.yaml", "results.csv", "metrics.json", "predictions.csv", "weights/best.safetensors",
              "weights/best.json", "weights/last.safetensors", "weights/last.json", "weights/last_state.pt"):
        assert (run / f).is_file(), f
    res = pd.read_csv(run / "results.csv")
    assert list(res["epoch"]) == list(range(1, len(res) + 1))
    assert {"train_loss", "val_loss", "val_acc", "val_macro_f1", "lr", "img_s", "time_s"} <= set(res.columns)
    assert json.loads((run / "metrics.json").read_text())["test"]["n"] == 40
    # predictions.csv agrees with the test split and its own probabilities
    pred = pd.read_csv(run / "predictions.csv")
    test = read_manifest(bd_manifest).split("test")
    assert sorted(pred["path"]) == sorted(test["path"])
    assert list(pred.columns[:5]) == ["path", "subject", "view", "label", "pred"]
    probs = pred[["p_0", "p_1"]].to_numpy()
    assert np.allclose(probs.sum(1), 1, atol=1e-4)
    assert (probs.argmax(1) == pred["pred"]).all()
    assert np.isclose((pred["pred"] == pred["label"]).mean(), feature_run.metrics["test"]["accuracy"])
    meta = json.loads((run / "weights/best.json").read_text())
    assert meta["classes"] == ["dark", "bright"] and meta["mode"] == "feature"
    assert meta["weights_from"].startswith("imagenet:") and meta["preprocessing"]["size"] == 64
    assert "torch" in meta["versions"]


def test_checkpoint_of_run_predicts_like_training(feature_run, bd_manifest):
    """The saved best checkpoint, run end to end on images, reproduces predictions.csv."""
    from skinage.data.images import load_crop
    from skinage.models.checkpoint import load_checkpoint

    model, meta = load_checkpoint(feature_run.run_dir)
    pred = pd.read_csv(feature_run.run_dir / "predictions.csv")
    x = torch.stack([torch.from_numpy(load_crop(p, None, 64).copy()).permute(2, 0, 1).float() / 255 for p in pred["path"]])
    probs = model.predict_proba(x).numpy()
    assert np.allclose(probs, pred[["p_0", "p_1"]].to_numpy(), atol=1e-3)


def test_feature_cache_reused_when_only_head_changes(feature_run, bd_manifest, tmp_path):
    res = train(data=bd_manifest, model="mobilenet_v2", mode="feature", size=64, epochs=2, batch_size=8,
                aug_views=1, hidden=(16,), dropout=(0.1,), batchnorm=True, project=tmp_path, **FAST)
    assert res.metrics["features_computed"] == 0
    assert res.metrics["features_reused"] == 120 * 2 + 80


def test_finetune_mode_learns(bd_manifest, tmp_path):
    # Two epochs, not one: SqueezeNet from scratch after one epoch ended with val loss up to 0.33 over 12 seeds
    # (near the decision boundary, so another CPU's rounding can tip it); after two, at most 0.04.
    res = train(data=bd_manifest, model="squeezenet1_1", mode="finetune", pretrained=False, size=32, epochs=2,
                batch_size=4, lr=1e-3, precision="fp32", project=tmp_path, **FAST)
    assert res.metrics["val"]["accuracy"] > 0.9
    assert res.metrics["test"]["accuracy"] > 0.9


def test_finetune_with_flip_tta_scores_and_saves_it(bd_manifest, tmp_path):
    from skinage.data.images import load_crop
    from skinage.models.checkpoint import load_checkpoint

    res = train(data=bd_manifest, model="squeezenet1_1", mode="finetune", pretrained=False, size=32, epochs=1,
                batch_size=4, lr=1e-3, precision="fp32", project=tmp_path, tta="flip", **FAST)
    meta = json.loads((res.run_dir / "weights" / "best.json").read_text())
    assert meta["tta"] == "flip"
    # the test predictions are the mean of each image's and its mirror's outputs (computed here by hand)
    model, _ = load_checkpoint(res.run_dir, tta="none")
    pred = pd.read_csv(res.run_dir / "predictions.csv")
    x = torch.from_numpy(np.stack([load_crop(p, None, 32) for p in pred["path"]])).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        want = model.probs_from_outputs((model(x) + model(x.flip(-1))) / 2).numpy()
    assert np.allclose(pred[["p_0", "p_1"]].to_numpy(), want, atol=1e-4)
    with pytest.raises(ConfigError, match="skinage evaluate RUN --tta flip"):
        train(data=bd_manifest, model="mobilenet_v2", mode="feature", tta="flip", project=tmp_path)


def test_init_from_run_copies_weights(feature_run, bd_manifest, tmp_path):
    """--init: fine-tuning starts from the feature run's weights (epoch-0 predictions equal)."""
    from safetensors.torch import load_file

    res = train(data=bd_manifest, model="mobilenet_v2", mode="finetune", init=feature_run.run_dir, size=64, epochs=1,
                batch_size=8, lr=1e-9, unfreeze=0, augment="none", project=tmp_path, **FAST)
    assert res.metrics["weights_from"].startswith("run:")
    a = load_file(str(feature_run.run_dir / "weights" / "best.safetensors"))
    b = load_file(str(res.run_dir / "weights" / "last.safetensors"))
    assert torch.allclose(a["head.out.weight"], b["head.out.weight"], atol=1e-6)
    assert torch.equal(a["backbone.0.0.0.weight"], b["backbone.0.0.0.weight"])


@pytest.mark.parametrize("mixup", [0.0, 0.4])
def test_distill_mode_learns(feature_run, bd_manifest, tmp_path, mixup):
    """The student (32 px) learns from the 64 px teacher, also when the teacher labels mixed images."""
    # Two epochs: after one, the mixup student's val loss ranged up to 0.32 over 12 seeds and a CI machine's
    # rounding tipped it to chance (0.5); after two it was at most 0.014 on every seed.
    res = train(data=bd_manifest, model="squeezenet1_1", mode="distill", teacher=feature_run.run_dir, size=32,
                epochs=2, batch_size=2, lr=1e-3, precision="fp32", mixup=mixup, project=tmp_path, **FAST)
    assert res.metrics["teacher"]["model"] == "mobilenet_v2"
    assert res.metrics["test"]["accuracy"] > 0.9


def test_distill_embedding_target_is_the_centred_teacher_embedding():
    """The embedding term matches the teacher's embedding minus its mean over the training crops."""
    import torch.nn.functional as F

    from skinage.models.model import SkinageModel
    from skinage.training.distill import Distiller

    torch.manual_seed(0)
    teacher = SkinageModel("squeezenet1_1", 2, pretrained=False).eval()
    student = SkinageModel("squeezenet1_1", 2, pretrained=False)
    meta = {"preprocessing": {"input_size": 32}}
    x = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8)
    xf = x.float() / 255
    with torch.no_grad():
        f_t = teacher.features(xf)
    for center in (True, False):
        d = Distiller(teacher, meta, student, embed_weight=1.0, channels_last=False, embed_center=center)
        c = d.fit_center(x)
        if center:
            assert torch.allclose(c, f_t.mean(0), atol=1e-5)  # the mean, worked out here
        else:
            assert c is None and d.center is None
        s = torch.randn(6, student.feature_dim)
        d.loss(xf, s, torch.zeros(6, 2), torch.tensor(0.0), student)
        target = f_t - f_t.mean(0) if center else f_t
        with torch.no_grad():
            want = float((1 - F.cosine_similarity(d.proj(s), target, dim=1)).mean())
        assert d.last["embed"] == pytest.approx(want, abs=1e-5)
        # the centre is part of the resumable state
        if center:
            d2 = Distiller(teacher, meta, student, embed_weight=1.0, channels_last=False)
            d2.load_state(d.state())
            assert torch.equal(d2.center, d.center)
            assert torch.equal(d2.proj.weight, d.proj.weight)


def test_teacher_sees_its_own_input_size(feature_run):
    """A 32 px student batch reaches the teacher at the teacher's 64 px (its checkpoint's size)."""
    from skinage.models.checkpoint import load_checkpoint
    from skinage.models.model import SkinageModel
    from skinage.training.distill import Distiller

    teacher, meta = load_checkpoint(feature_run.run_dir)
    assert meta["preprocessing"]["size"] == 64
    seen = []
    teacher.features = lambda x, f=teacher.features: (seen.append(tuple(x.shape)), f(x))[1]
    student = SkinageModel("squeezenet1_1", 2, pretrained=False)
    d = Distiller(teacher, meta, student, precision="fp32", channels_last=False)
    f, logp = d.teacher_targets(torch.rand(3, 3, 32, 32))
    assert seen == [(3, 3, 64, 64)]
    assert logp.shape == (3, 2) and torch.allclose(logp.exp().sum(1), torch.ones(3), atol=1e-5)


def _weights(run):
    from safetensors.torch import load_file

    return load_file(str(run / "weights" / "last.safetensors"))


@pytest.mark.parametrize("mode", ["finetune", "feature"])
def test_resume_equals_uninterrupted(bd_manifest, tmp_path, mode):
    kw = dict(data=bd_manifest, mode=mode, size=32, epochs=3, batch_size=8, precision="fp32", patience=0,
              ordinal="corn", **FAST)
    if mode == "finetune":
        kw.update(model="squeezenet1_1", pretrained=False, lr=3e-3, mixup=0.4, ema=0.9)
    else:
        kw.update(model="mobilenet_v2", aug_views=1, hidden=(8,), dropout=(0.3,), lr=1e-2)
    full = train(project=tmp_path, name="full", **kw)
    with pytest.raises(TrainingInterrupted):
        train(project=tmp_path, name="cut", interrupt_at=1.5, **kw)
    cut = tmp_path / "cut"
    assert len(pd.read_csv(cut / "results.csv")) == 1  # killed in the middle of epoch 2
    resumed = train(resume=cut, progress=False, threads=1)
    assert resumed.run_dir == cut
    a, b = _weights(full.run_dir), _weights(cut)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert resumed.metrics["test"] == full.metrics["test"]
    ra, rb = pd.read_csv(full.run_dir / "results.csv"), pd.read_csv(cut / "results.csv")
    cols = ["epoch", "train_loss", "val_loss", "val_acc", "lr"]
    pd.testing.assert_frame_equal(ra[cols], rb[cols])


def test_bad_options_are_refused(bd_manifest, tmp_path):
    with pytest.raises(ConfigError, match="did you mean 'epochs'"):
        train(data=bd_manifest, model="mobilenet_v2", mode="feature", epoch=3)
    with pytest.raises(ConfigError, match="--teacher"):
        train(data=bd_manifest, model="squeezenet1_1", mode="distill", project=tmp_path)
    with pytest.raises(ConfigError, match="unknown augmentation 'flipp'"):
        train(data=bd_manifest, model="squeezenet1_1", mode="finetune", augment="flipp", project=tmp_path)


def test_unreadable_image_is_set_aside(tmp_path):
    path = _manifest(tmp_path / "d", n_per_class=10)
    man = read_manifest(path)
    bad = tmp_path / "d" / "broken.png"
    bad.write_bytes(b"not an image")
    df = pd.concat([man.df, man.df.iloc[[0]].assign(path=str(bad), subject="broken")], ignore_index=True)
    write_manifest(Manifest(df, man.classes, man.meta), path)
    res = train(data=path, model="squeezenet1_1", mode="finetune", pretrained=False, size=32, epochs=1,
                batch_size=4, precision="fp32", project=tmp_path / "runs", **FAST)
    assert res.metrics["set_aside"] == 1
    aside = pd.read_csv(res.run_dir / "set_aside.csv")
    assert aside["path"].tolist() == [str(bad)] and aside["reason"].iloc[0]


def test_cli_train(bd_manifest, tmp_path, capsys):
    from skinage.cli import main

    rc = main(["train", "--data", str(bd_manifest), "--model", "squeezenet1_1", "--mode", "finetune",
               "--no-pretrained", "--size", "32", "--epochs", "1", "--batch-size", "8", "--precision", "fp32",
               "--hidden", "16", "--project", str(tmp_path), "--name", "cli", "--no-progress"])
    assert rc == 0
    assert capsys.readouterr().out.strip().endswith("cli")
    assert (tmp_path / "cli" / "weights" / "best.safetensors").is_file()
    rc = main(["train", "--data", str(bd_manifest), "--model", "squeezenet1_1", "--project", str(tmp_path),
               "--name", "cli", "--epochs", "1", "--mode", "finetune", "--no-pretrained", "--size", "32",
               "--precision", "fp32", "--no-progress"])
    assert rc == 0 and (tmp_path / "cli2").is_dir()  # auto-increment


def test_other_options_run_bf16_coral_balance_step(bd_manifest, tmp_path):
    """bf16 autocast, CORAL head, balanced sampler, hidden layers with batch norm, step schedule, --unfreeze."""
    res = train(data=bd_manifest, model="squeezenet1_1", mode="finetune", pretrained=False, size=32, epochs=2,
                batch_size=8, precision="bf16", ordinal="coral", balance=True, hidden=(16,), batchnorm=True,
                schedule="step", step_size=1, unfreeze=2, project=tmp_path, **FAST)
    assert res.metrics["precision"] == "bf16" and res.metrics["ordinal"] == "coral"
    res_csv = pd.read_csv(res.run_dir / "results.csv")
    assert res_csv["lr"].iloc[1] == pytest.approx(res_csv["lr"].iloc[0] * 0.1)
    pred = pd.read_csv(res.run_dir / "predictions.csv")
    assert np.allclose(pred[["p_0", "p_1"]].sum(axis=1), 1, atol=1e-3)


def test_augmented_views_are_reproducible(bd_manifest, tmp_path):
    """A view recomputed in an empty cache is the same embedding (seeded by image and view)."""
    from skinage.models.model import SkinageModel
    from skinage.training.features import FeatureCache

    df = read_manifest(bd_manifest).split("train").head(3)
    model = SkinageModel("squeezenet1_1", 2, pretrained=False)
    pre = Preprocess.for_model("squeezenet1_1", size=32)
    a = FeatureCache(model, pre, root=tmp_path / "a", progress=False).get(df, views=2)
    b = FeatureCache(model, pre, root=tmp_path / "b", progress=False).get(df, views=2)
    c = FeatureCache(model, pre, root=tmp_path / "a", progress=False)
    again = c.get(df, views=2)
    assert a.shape == (3, 3, 512)
    assert np.array_equal(a, b) and np.array_equal(a, again) and c.stats["reused"] == 9
    assert not np.allclose(a[:, 0], a[:, 1])  # augmented views differ from the plain crop


def test_batch_augment_colour_is_torchvisions_jitter():
    """The fused colour map equals torchvision's brightness -> contrast -> saturation (hue aside)."""
    from torchvision.transforms.v2 import functional as TF

    from skinage.training.augment import BatchAugment

    torch.manual_seed(0)
    x = torch.rand(6, 3, 16, 16) * 0.5 + 0.25
    out = BatchAugment("jitter", 16)(x, torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    b, c, s, h = (torch.rand(6, generator=g) for _ in range(4))
    b, c, s = 0.8 + 0.4 * b, 0.8 + 0.4 * c, 0.8 + 0.4 * s
    assert float(((2 * h - 1) * 0.02).abs().max()) <= 0.02
    exp = torch.stack([TF.adjust_saturation(TF.adjust_contrast(TF.adjust_brightness(x[i], float(b[i])), float(c[i])),
                                            float(s[i])) for i in range(6)])
    # the remaining difference is the small hue rotation (<= 0.02 turns)
    assert float((out - exp).abs().mean()) < 0.02
    same = BatchAugment("jitter", 16)(x, torch.Generator().manual_seed(3))
    assert torch.equal(out, same)


def test_batch_augment_noise_draws_each_images_strength():
    """noise: per image a standard deviation uniform in [0, noise_std], drawn after the other steps' draws."""
    from skinage.training.augment import BatchAugment

    x = torch.full((64, 3, 32, 32), 0.5)
    out = BatchAugment("noise", 32, noise_std=0.04)(x, torch.Generator().manual_seed(0))
    sd = (out - 0.5).flatten(1).std(1)
    # independently: the same generator's first 64 uniforms are the strengths (3072 pixels per image, so the
    # measured spread is within a few per cent of the drawn one)
    want = 0.04 * torch.rand(64, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(sd, want, rtol=0.06, atol=1e-3)
    assert float(out.min()) >= 0 and float(out.max()) <= 1
    # the geometric and colour draws are unchanged by appending noise; with strength 0 it adds nothing
    img = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    plain = BatchAugment("flip,rotate,jitter,crop", 32)(img, torch.Generator().manual_seed(1))
    zero = BatchAugment("flip,rotate,jitter,crop,noise", 32, noise_std=0.0)(img, torch.Generator().manual_seed(1))
    assert torch.equal(plain, zero)


def test_noise_step_through_train_and_feature_views(bd_manifest, tmp_path):
    """--augment ...,noise trains a finetune run and makes feature-cache views; its strength is part of the cache key."""
    kw = dict(data=bd_manifest, model="squeezenet1_1", pretrained=False, size=32, epochs=1, batch_size=8,
              precision="fp32", project=tmp_path, **FAST)
    res = train(mode="finetune", augment="flip,noise", name="ft", **kw)
    assert res.metrics["epochs_run"] == 1
    import yaml

    args = yaml.safe_load((res.run_dir / "args.yaml").read_text())
    assert args["augment"] == "flip,noise" and args["noise_std"] == 0.03
    from skinage.models.model import SkinageModel
    from skinage.training.features import FeatureCache

    df = read_manifest(bd_manifest).split("train").head(2)
    c = FeatureCache(SkinageModel("squeezenet1_1", 2, pretrained=False), Preprocess.for_model("squeezenet1_1", size=32), root=tmp_path / "cache", progress=False)
    a = c.get(df, views=1, aug_spec="noise", noise_std=0.05)
    b = c.get(df, views=1, aug_spec="noise", noise_std=0.2)
    assert c.stats["reused"] == 2  # only the plain views were shared
    assert not np.allclose(a[:, 1], b[:, 1])


def test_mixup_changes_what_the_model_sees(bd_manifest, tmp_path):
    """--mixup really mixes the batches: same seed, same data, different weights after an epoch."""
    kw = dict(data=bd_manifest, model="squeezenet1_1", mode="finetune", pretrained=False, size=32, epochs=1,
              batch_size=8, lr=1e-3, precision="fp32", project=tmp_path, **FAST)
    a = _weights(train(name="plain", **kw).run_dir)
    b = _weights(train(name="mixup", mixup=0.4, **kw).run_dir)
    assert any(not torch.equal(a[k], b[k]) for k in a)


def test_ema_checkpoint_is_the_moving_average_of_every_step(bd_manifest, tmp_path, monkeypatch):
    """--ema D saves e_1 = w_1, e_t = D e_(t-1) + (1 - D) w_t over the weights w_t after each step, BN buffers too."""
    from torch.optim.swa_utils import AveragedModel

    seen = []
    update = AveragedModel.update_parameters

    def spy(self, model):
        seen.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        return update(self, model)

    monkeypatch.setattr(AveragedModel, "update_parameters", spy)
    d = 0.8
    res = train(data=bd_manifest, model="mobilenet_v2", mode="finetune", pretrained=False, size=32, epochs=1,
                batch_size=16, lr=1e-3, precision="fp32", patience=0, ema=d, project=tmp_path, **FAST)
    assert len(seen) == 120 // 16 + 1  # 120 training images, batches of 16: 8 steps
    want = dict(seen[0])
    for w in seen[1:]:
        want = {k: d * want[k] + (1 - d) * w[k] if w[k].is_floating_point() else w[k] for k in w}
    got = _weights(res.run_dir)
    floats = [k for k in got if got[k].is_floating_point()]
    assert any(k.endswith("running_var") for k in floats)
    for k in floats:
        assert torch.allclose(got[k], want[k], atol=1e-6), k
    assert any(not torch.allclose(got[k], seen[-1][k], atol=1e-4) for k in floats)  # not the raw last weights
    assert res.metrics["ema"] == d
    with pytest.raises(ConfigError, match="--ema is the decay"):
        train(data=bd_manifest, model="squeezenet1_1", mode="finetune", ema=1.0, project=tmp_path)


# ---------------------------------------------------------------------------------------------- the loop's parts


def test_lr_schedule_by_hand():
    """Warm-up, cosine, step and constant factors, worked out by hand."""
    from skinage.training.optim import lr_lambda

    # 3 epochs x 2 steps, 1 epoch warm-up: 1/2, 1, then cosine over 4 steps: t = 0, 1/4, 1/2, 3/4
    f = lr_lambda(3, 2, warmup=1.0)
    c = [0.01 + 0.99 * 0.5 * (1 + np.cos(np.pi * t)) for t in (0, 0.25, 0.5, 0.75)]
    assert [f(s) for s in range(6)] == pytest.approx([0.5, 1.0, *c])
    assert c == pytest.approx([1.0, 0.85502, 0.505, 0.15498], abs=1e-5)
    # one epoch of 4 steps with an epoch of warm-up: warm-up stops one step short (the last step is the peak)
    assert [lr_lambda(1, 4, warmup=1.0)(s) for s in range(4)] == pytest.approx([1 / 3, 2 / 3, 1.0, 1.0])
    # step: x0.1 every 2 epochs of 3 steps; constant after a half-epoch warm-up of round(1.5) = 2 steps
    assert [lr_lambda(6, 3, 0.0, "step", 2)(s) for s in (0, 5, 6, 12, 17)] == pytest.approx([1, 1, 0.1, 0.01, 0.01])
    assert [lr_lambda(4, 3, 0.5, "constant")(s) for s in range(4)] == [0.5, 1.0, 1.0, 1.0]
    with pytest.raises(ValueError, match="schedule must be one of"):
        lr_lambda(1, 1, schedule="linear")


def test_run_applies_the_schedule_per_step(feature_run):
    """results.csv's lr after epoch e is the peak times the cosine at e * (steps per epoch) steps."""
    res = pd.read_csv(feature_run.run_dir / "results.csv")
    # 120 training images x 2 views (aug_views=1) = 240 rows in batches of 8: 30 steps per epoch; 15 epochs, no warm-up
    e = res["epoch"].to_numpy()
    want = 1e-2 * (0.01 + 0.99 * 0.5 * (1 + np.cos(np.pi * np.minimum(1.0, 30 * e / 450))))
    assert np.allclose(res["lr"], want, rtol=1e-5)
    assert json.loads((feature_run.run_dir / "metrics.json").read_text())["train_rows"] == 240


def test_class_weights_by_hand():
    from skinage.training.optim import class_weights

    # n = 6 rows, K = 4: class 0 has 3, class 1 has 2, class 2 has 1, class 3 none -> 6 / (4 n_k)
    w = class_weights(np.array([0, 0, 0, 1, 1, 2]), 4)
    assert w.dtype == torch.float32
    assert w.tolist() == pytest.approx([0.5, 0.75, 1.5, 0.0])


def test_batches_of_an_epoch():
    from skinage.training.batches import epoch_batches, n_batches

    assert [n_batches(n, 4) for n in (1, 4, 5, 6, 8, 9)] == [1, 1, 1, 2, 2, 2]  # 5 and 9: the row of one sits out
    g = torch.Generator().manual_seed(0)
    b = epoch_batches(9, 4, g)
    seen = torch.cat(b).tolist()
    assert [len(x) for x in b] == [4, 4] and len(set(seen)) == 8 and set(seen) <= set(range(9))
    # the same generator state gives the same batches (what makes an epoch repeatable)
    assert [x.tolist() for x in epoch_batches(9, 4, torch.Generator().manual_seed(0))] == [x.tolist() for x in b]
    # balanced: 90 rows of class 0 and 10 of class 1, each drawn with probability 1/2 per class
    y = torch.tensor([0] * 90 + [1] * 10)
    drawn = torch.cat(epoch_batches(100, 10, torch.Generator().manual_seed(1), y, balance=True))
    share = float((y[drawn] == 1).float().mean())
    assert len(drawn) == 100 and 0.35 < share < 0.65


def test_torch_threads_restores_after_an_error():
    from skinage.training.device import torch_threads

    before = torch.get_num_threads()
    with pytest.raises(RuntimeError):
        with torch_threads(1):
            assert torch.get_num_threads() == 1
            raise RuntimeError("boom")
    assert torch.get_num_threads() == before
    with torch_threads(0):  # 0: leave as it is
        assert torch.get_num_threads() == before


def test_nan_ranks_below_every_defined_score():
    """--select: an undefined score (NaN) loses to any defined one; equal or undefined scores go to the lower loss."""
    from skinage.training.selection import epoch_score

    nan = float("nan")
    defined_bad = epoch_score({"qwk": -0.9}, 5.0, "auto", True)
    undefined_good_loss = epoch_score({"qwk": nan}, 0.01, "auto", True)
    assert defined_bad > undefined_good_loss
    assert epoch_score({"qwk": nan}, 0.2, "qwk", True) > epoch_score({"qwk": nan}, 0.3, "qwk", True)
    assert epoch_score({"macro_f1": 0.5}, 0.2, "auto", False) > epoch_score({"macro_f1": 0.5}, 0.3, "auto", False)
    assert epoch_score({"accuracy": 0.5}, nan, "accuracy", False) < epoch_score({"accuracy": 0.5}, 9.0, "accuracy", False)
    assert epoch_score({}, nan, "loss", False) < epoch_score({}, 9.0, "loss", False)


def test_loop_keeps_the_first_epoch_and_then_only_better_ones():
    """The loop's bookkeeping: the first epoch is the best even when undefined; a defined score then takes over."""
    from skinage.training.loop import Standing
    from skinage.training.selection import epoch_score

    s = Standing()
    nan = float("nan")
    assert s.record(0, epoch_score({"qwk": nan}, float("nan"), "auto", True), patience=2, epochs=10)  # nothing to beat
    assert s.record(1, epoch_score({"qwk": nan}, 0.5, "auto", True), 2, 10)  # lower (defined) loss
    assert s.record(2, epoch_score({"qwk": 0.0}, 0.9, "auto", True), 2, 10)  # a defined score
    assert not s.record(3, epoch_score({"qwk": nan}, 0.1, "auto", True), 2, 10)
    assert not s.record(4, epoch_score({"qwk": 0.0}, 0.9, "auto", True), 2, 10)  # a tie is not better
    assert (s.best_epoch, s.bad, s.finished) == (2, 2, True)  # patience 2 reached


def test_undefined_qwk_is_nan_in_the_run_files_and_selection_follows_the_rule(tmp_path):
    """Validation holds one class only: QWK is NaN whenever the predictions do too (honest, as in evaluate), and
    the best epoch is the one the rule picks from results.csv."""
    path = _manifest(tmp_path / "d", n_per_class=20, ordinal=True)
    man = read_manifest(path)
    df = man.df.copy()
    df.loc[(df["split"] == "val") & (df["label"] == 0), "split"] = "test"  # val: bright images only
    write_manifest(Manifest(df, man.classes, man.meta), path)
    res = train(data=path, model="mobilenet_v2", mode="feature", size=32, epochs=4, batch_size=8, lr=1e-2, patience=0,
                project=tmp_path / "runs", **FAST)
    rows = pd.read_csv(res.run_dir / "results.csv")
    assert rows["val_qwk"].isna().any()  # the head learns bright vs dark: all val predicted bright
    assert ((rows["val_qwk"] == 0) | rows["val_qwk"].isna()).all()  # one true class: kappa is 0 or undefined
    key = [(-np.inf if np.isnan(q) else q, -v) for q, v in zip(rows["val_qwk"], rows["val_loss"])]
    assert res.metrics["best_epoch"] == int(np.argmax([k == max(key) for k in key])) + 1
    val = res.metrics["val"]
    assert res.metrics["select"] == "qwk" and val["accuracy"] == 1.0 and np.isnan(val["qwk"])
    assert np.isnan(json.loads((res.run_dir / "metrics.json").read_text())["val"]["qwk"])


def test_select_qwk_needs_ordered_classes(bd_manifest, tmp_path):
    """Unordered classes have no QWK: --select qwk is refused (it silently chose by accuracy before)."""
    with pytest.raises(ConfigError, match="--select qwk needs ordered classes"):
        train(data=bd_manifest, model="mobilenet_v2", mode="feature", select="qwk", project=tmp_path, **FAST)
    assert not any(tmp_path.iterdir())  # refused before a run folder was made


def test_no_readable_validation_image_is_a_clear_error(tmp_path):
    path = _manifest(tmp_path / "d", n_per_class=5)
    man = read_manifest(path)
    df = man.df.copy()
    bad = tmp_path / "d" / "broken.png"
    bad.write_bytes(b"not an image")
    df.loc[df["split"] == "val", "path"] = str(bad)
    write_manifest(Manifest(df, man.classes, man.meta), path)
    with pytest.raises(RuntimeError, match="no readable validation images"):
        train(data=path, model="squeezenet1_1", mode="finetune", pretrained=False, size=32, epochs=1,
              precision="fp32", project=tmp_path / "runs", **FAST)


def test_feature_cache_memory_maps_the_same_embeddings(bd_manifest, tmp_path):
    """get() returns the embeddings memory-mapped from one file: the values of a plain forward pass, the same
    when the set is mapped again (no per-image file read) and when it is rebuilt from the per-image files."""
    from skinage.models.model import SkinageModel
    from skinage.training.features import FeatureCache

    df = read_manifest(bd_manifest).split("train").head(6)
    torch.manual_seed(0)
    model = SkinageModel("squeezenet1_1", 2, pretrained=False).eval()
    pre = Preprocess.for_model("squeezenet1_1", size=32)
    c = FeatureCache(model, pre, root=tmp_path, progress=False, channels_last=False)
    a = c.get(df)
    assert isinstance(a, np.memmap) and a.shape == (6, 1, 512) and c.stats["computed"] == 6
    sets = sorted((c.dir / "sets").glob("*.npy"))
    assert len(sets) == 1 and np.array_equal(np.load(sets[0]), a)
    crops = torch.stack([torch.from_numpy(np.array(pre.load(p, None))).permute(2, 0, 1) for p in df["path"]])
    with torch.inference_mode():
        direct = model.features(crops.float() / 255).numpy()
    assert np.allclose(a[:, 0], direct, atol=1e-5)
    x = torch.from_numpy(a.reshape(-1, a.shape[-1]))  # what the feature task trains on: no copy
    assert x.data_ptr() == a.ctypes.data
    for f in c.dir.glob("??/*.npy"):  # the per-image files: the set alone must serve the same rows again
        f.rename(f.with_suffix(".moved"))
    again = FeatureCache(model, pre, root=tmp_path, progress=False, channels_last=False)
    b = again.get(df)
    assert np.array_equal(a, b) and again.stats == {"computed": 0, "reused": 6, "seconds": 0.0}
    b[0, 0, 0] = 123.0  # copy-on-write: neither the cache's file nor another mapping of it changes
    assert np.array_equal(np.load(sets[0]), a) and a[0, 0, 0] != 123.0
    for f in c.dir.glob("??/*.moved"):
        f.rename(f.with_suffix(".npy"))
    for f in (c.dir / "sets").iterdir():  # no set: rebuilt from the per-image files
        f.unlink()
    rebuilt = FeatureCache(model, pre, root=tmp_path, progress=False, channels_last=False)
    assert np.array_equal(rebuilt.get(df), a) and rebuilt.stats["reused"] == 6


def test_feature_cache_retries_unreadable_rows(bd_manifest, tmp_path):
    """An unreadable image is reported (NaN row) on every call: a set with bad rows is not reused."""
    from skinage.models.model import SkinageModel
    from skinage.training.features import FeatureCache, finite_rows

    df = read_manifest(bd_manifest).split("val").head(4).copy()
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    df.loc[2, "path"] = str(broken)
    c = FeatureCache(SkinageModel("squeezenet1_1", 2, pretrained=False), Preprocess.for_model("squeezenet1_1", size=32),
                     root=tmp_path / "cache", progress=False)
    for _ in range(2):
        errors = []
        arr = c.get(df, on_error=lambda i, reason: errors.append(i))
        assert errors == [2] and finite_rows(arr).tolist() == [True, True, False, True]
    assert c.stats["computed"] == 3 and c.stats["reused"] == 3
