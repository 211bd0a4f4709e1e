"""skinage tune: Optuna on cached features with person-grouped CV; --train-best."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml

pytest.importorskip("optuna")

from test_train import _manifest  # noqa: E402

from skinage.training.tune import tune  # noqa: E402


def test_tune_two_trials_and_train_best(tmp_path):
    data = _manifest(tmp_path / "d", n_per_class=20, ordinal=True)
    res = tune(data=data, model="mobilenet_v2", trials=2, folds=3, epochs=5, aug_views=1, size=48,
               project=tmp_path / "runs", train_best=True, threads=1, progress=False)
    run = res.run_dir
    trials = pd.read_csv(run / "trials.csv")
    assert len(trials) == 2 and {"value", "params_lr", "params_dropout", "params_hidden", "params_batch_size",
                                 "params_weight_decay", "params_aug_views"} <= set(trials.columns)
    best = yaml.safe_load((run / "best.yaml").read_text())
    summary = json.loads((run / "best.json").read_text())
    assert summary["metric"] == "qwk"  # ordered classes
    assert summary["best_score"] == pytest.approx(trials["value"].max())
    assert summary["rows"] == 32  # train + val only: the test split is never used for tuning
    assert best["mode"] == "feature" and best["aug_views"] in (0, 1)
    # --train-best trained exactly that configuration
    args = yaml.safe_load((res.best_run / "args.yaml").read_text())
    for k in ("lr", "batch_size", "hidden", "aug_views", "weight_decay"):
        assert args[k] == best[k], k
    assert (res.best_run / "metrics.json").is_file()


def test_cli_tune(tmp_path, capsys):
    from skinage.cli import main

    data = _manifest(tmp_path / "d", n_per_class=10)
    rc = main(["tune", "--data", str(data), "--model", "mobilenet_v2", "--trials", "2", "--folds", "2", "--epochs", "2",
               "--aug-views", "0", "--size", "32", "--project", str(tmp_path / "r"), "--threads", "1", "--no-progress"])
    assert rc == 0
    out = capsys.readouterr().out.strip()
    assert out.endswith("tune") and json.loads((tmp_path / "r" / "tune" / "best.json").read_text())["metric"] == "macro_f1"
