"""The `skinage` command: every sub-command explains itself; typos get a suggestion."""

from __future__ import annotations

import subprocess
import sys

import pytest

from skinage.cli import COMMANDS, build_parser, main


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "ingest" in capsys.readouterr().out


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_command_has_help_and_is_built(command, capsys):
    sub = build_parser()._subparsers._group_actions[0].choices[command]
    assert sub.get_default("_unavailable") is None, f"`skinage {command}` failed to load: {sub.get_default('_unavailable')}"
    with pytest.raises(SystemExit) as e:
        main([command, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "usage: skinage " + command in out


def test_unknown_flag_gets_did_you_mean(capsys):
    with pytest.raises(SystemExit) as e:
        main(["models", "--jsn"])
    assert e.value.code == 2
    assert "did you mean '--json'" in capsys.readouterr().err


def test_console_script_runs():
    r = subprocess.run([sys.executable, "-m", "skinage.cli", "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and "skinage" in r.stdout
