"""The typed config machinery shared by the CLI and the Python API."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from skinage.config import ConfigError, add_config_arguments, build_config, config_from_args, config_to_dict


@dataclass
class Cfg:
    data: Path = field(default=None, metadata={"help": "manifest"})
    epochs: int = field(default=10, metadata={"help": "passes"})
    lr: float = field(default=1e-3, metadata={"help": "learning rate"})
    hidden: tuple[int, ...] = field(default=(256,), metadata={"help": "hidden sizes"})
    balance: bool = field(default=False, metadata={"help": "balanced sampler"})
    mode: str = field(default="feature", metadata={"help": "mode", "choices": ("feature", "finetune", "distill")})


def test_values_are_converted_to_field_types():
    c = build_config(Cfg, {"data": "m.csv", "epochs": "3", "lr": "0.01", "hidden": "64,32", "balance": "yes"})
    assert c == Cfg(data=Path("m.csv"), epochs=3, lr=0.01, hidden=(64, 32), balance=True)


def test_unknown_key_gets_a_suggestion():
    with pytest.raises(ConfigError, match="did you mean 'hidden'"):
        build_config(Cfg, hiden=(3,))


def test_choices_are_checked_with_suggestion():
    with pytest.raises(ConfigError, match="did you mean 'finetune'"):
        build_config(Cfg, mode="fintune")


def test_bad_value_says_which_option():
    with pytest.raises(ConfigError, match="option 'epochs'"):
        build_config(Cfg, epochs="many")


def test_cli_flags_and_api_keywords_give_the_same_config():
    p = argparse.ArgumentParser()
    add_config_arguments(p, Cfg)
    args = p.parse_args(["--epochs", "5", "--hidden", "8,4", "--balance", "--mode", "finetune"])
    from_cli = config_from_args(Cfg, args)
    from_api = build_config(Cfg, epochs=5, hidden=[8, 4], balance=True, mode="finetune")
    assert from_cli == from_api
    assert config_to_dict(from_cli)["hidden"] == [8, 4]


def test_flags_not_given_keep_defaults():
    p = argparse.ArgumentParser()
    add_config_arguments(p, Cfg)
    assert config_from_args(Cfg, p.parse_args([])) == Cfg()
