"""Plots and Grad-CAM: the maps point where the evidence is; every picture is written and labelled."""

import numpy as np
import pytest
import torch
import torch.nn as nn

from skinage.evaluation import plots


class _Toy(nn.Module):
    """conv (the CAM layer) -> global average pool -> linear; class 1 = brightness, class 0 = its absence."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        nn.init.constant_(self.conv.weight, 0.1)
        self.fc = nn.Linear(4, 2)
        with torch.no_grad():
            self.fc.weight.copy_(torch.tensor([[-1.0] * 4, [1.0] * 4]))
            self.fc.bias.zero_()

    @property
    def cam_layer(self):
        return self.conv

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).mean((2, 3)))

    def probs_from_outputs(self, out):
        return torch.softmax(out, 1)


def test_gradcam_points_at_the_evidence():
    x = torch.zeros(2, 3, 32, 32)
    x[0, :, :12, :12] = 1.0  # bright patch top-left
    x[1, :, 20:, 20:] = 1.0  # bright patch bottom-right
    model = _Toy().eval()
    cams, pred = plots.gradcam(model, x, target=[1, 1])
    assert cams.shape == (2, 32, 32) and cams.min() >= 0 and cams.max() <= 1
    assert cams[0, :12, :12].mean() > 3 * cams[0, 20:, 20:].mean()
    assert cams[1, 20:, 20:].mean() > 3 * cams[1, :12, :12].mean()
    # no hook left behind, no gradient state, mode restored
    assert not model.conv._forward_hooks and model.conv.weight.grad is None and not model.training


@pytest.mark.parametrize("ordinal", [None, "corn", "coral"])
def test_gradcam_on_registry_model(ordinal):
    from skinage.models.model import SkinageModel

    m = SkinageModel("squeezenet1_1", 3, pretrained=False, ordinal=ordinal).eval()
    cams, pred = plots.gradcam(m, torch.rand(2, 3, 48, 48))
    assert cams.shape == (2, 48, 48) and np.isfinite(cams).all() and pred.shape == (2,)


def test_pictures_written(tmp_path):
    import pandas as pd

    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 60)
    assert plots.plot_confusion([[3, 1], [0, 4]], ["a", "b"], tmp_path / "c.png").stat().st_size > 5000
    with pytest.raises(ValueError):
        plots.plot_confusion([[3, 1], [0, 4]], ["a"], tmp_path / "bad.png")
    coords, used = plots.embed_2d(rng.normal(size=(60, 20)) + y[:, None])
    assert coords.shape == (60, 2) and used == "t-SNE"
    assert plots.embed_2d(rng.normal(size=(8, 5)))[1] == "PCA"
    pd.DataFrame({"epoch": [1, 2, 3], "train_loss": [1, 0.7, 0.5], "val_acc": [0.4, 0.5, 0.6]}).to_csv(
        tmp_path / "results.csv", index=False)
    assert plots.plot_training_curves(tmp_path / "results.csv", tmp_path / "t.png").is_file()
    assert plots.plot_training_curves(tmp_path / "missing.csv", tmp_path / "t2.png") is None
    imgs = rng.integers(0, 255, (3, 32, 32, 3), dtype=np.uint8)
    assert plots.plot_gradcam(imgs, np.zeros((3, 32, 32)), ["x", "y", "z"], tmp_path / "g.png").is_file()


def _tick_texts(ax):
    return [t.get_text() for t in ax.get_xticklabels()], [t.get_text() for t in ax.get_yticklabels()]


def test_confusion_axes_carry_class_names():
    """Both panels, counts and row-normalised, tick both axes with the class names (not 0, 1, 2 ...)."""
    classes = ["20s", "30s", "40s", "a very long class name"]
    cm = [[5, 1, 0, 0], [2, 4, 0, 0], [0, 0, 3, 1], [0, 0, 0, 2]]
    fig = plots.confusion_figure(cm, classes, "image level")
    panels = {ax.get_title(): ax for ax in fig.axes if ax.get_title()}
    assert set(panels) == {"counts", "row-normalised (recall)"}
    names = ["20s", "30s", "40s", "a very long c…"]  # long names are shortened to 14 characters
    for ax in panels.values():
        assert _tick_texts(ax) == (names, names)
        assert (ax.get_xlabel(), ax.get_ylabel()) == ("predicted", "true")
    # rows are the true class, columns the predicted one: the cells say so, raw and normalised (row 1: 2/6, 4/6)
    raw = [t.get_text() for t in panels["counts"].texts]
    norm = [t.get_text() for t in panels["row-normalised (recall)"].texts]
    assert raw[4:8] == ["2", "4", "0", "0"] and norm[4:8] == ["0.33", "0.67", "0.00", "0.00"]
    assert norm[8:12] == ["0.00", "0.00", "0.75", "0.25"]
    import matplotlib.pyplot as plt

    plt.close(fig)
