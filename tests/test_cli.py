"""The `skinage` command: every sub-command explains itself; typos get a suggestion."""

from __future__ import annotations

import subprocess
import sys

import pytest

from skinage.cli import build_parser, main
from skinage.commands import COMMANDS


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


# --- the table of commands --------------------------------------------------------------------

@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_command_module_follows_the_rule(name):
    """Command X's module holds XConfig, the API function X(...), add_arguments(parser) and run(args)."""
    import importlib
    import inspect

    command = COMMANDS[name]
    module = importlib.import_module(command.module)
    assert command.api == name
    assert inspect.isfunction(getattr(module, command.api)), f"{command.module} has no API function {name}()"
    assert inspect.isclass(getattr(module, name.capitalize() + "Config")), f"{command.module} has no {name.capitalize()}Config"
    assert callable(module.add_arguments) and callable(module.run)
    # the module is skinage/<stage>/<name>.py, and demo is skinage/demo.py
    if name == "demo":
        assert command.module == "skinage.demo"
    else:
        assert command.module.split(".") == ["skinage", command.module.split(".")[1], name]


def test_package_api_is_the_table(monkeypatch):
    import skinage
    from skinage.commands import API, PACKAGE_NAMED, api

    assert set(API) == set(COMMANDS) and set(COMMANDS) <= set(skinage.__all__)
    assert PACKAGE_NAMED == {"models", "export", "demo", "find", "app"}
    for name, command in COMMANDS.items():
        assert api(name).__module__ == command.module
        if name not in PACKAGE_NAMED:
            assert getattr(skinage, name) is api(name)
    # a command named like a module of skinage is that module, callable as the command's function,
    # whether its submodules were imported before or not
    import skinage.export.export  # noqa: F401
    import skinage.models.models  # noqa: F401
    import skinage.app.app  # noqa: F401

    calls = []
    for name in PACKAGE_NAMED - {"find"}:  # find has its own callable package (tested in test_find)
        monkeypatch.setattr(COMMANDS[name].module + "." + COMMANDS[name].api,
                            lambda *a, _n=name, **k: calls.append((_n, a, k)) or _n)
        assert getattr(skinage, name)("x", flag=1) == name
    assert sorted(calls) == sorted((n, ("x",), {"flag": 1}) for n in PACKAGE_NAMED - {"find"})


def test_python_m_skinage_lists_every_command():
    r = subprocess.run([sys.executable, "-m", "skinage", "--help"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    for name, command in COMMANDS.items():
        assert name in r.stdout and command.help[:40] in " ".join(r.stdout.split())


def test_python_m_skinage_runs_a_command():
    r = subprocess.run([sys.executable, "-m", "skinage", "models", "--json"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    import json

    assert {row["model"] for row in json.loads(r.stdout)} >= {"mobilenet_v2", "efficientnet_lite0"}


# --- a missing package says what to install ------------------------------------------------------

def test_missing_package_at_run_time_names_it_and_the_fix(monkeypatch, tmp_path, capsys):
    """optuna absent: `skinage tune` says to install it, instead of a traceback or a silent skip."""
    monkeypatch.setitem(sys.modules, "optuna", None)  # `import optuna` now fails as if it were not installed
    # imported again without optuna (whether it imports optuna at the top or inside a function);
    # afterwards the module and the package's attribute are the ones of before
    import skinage.training

    monkeypatch.delattr(skinage.training, "tune", raising=False)
    monkeypatch.delitem(sys.modules, "skinage.training.tune", raising=False)
    assert main(["tune", "--data", str(tmp_path / "m.csv")]) == 2
    err = capsys.readouterr().err
    assert "skinage tune" in err and "'optuna'" in err
    assert "pip install optuna" in err and "make setup" in err


def _fake_command(monkeypatch, tmp_path, name, source):
    from skinage.commands import Command

    (tmp_path / f"skinage_fake_{name}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(COMMANDS, name, Command(name, f"skinage_fake_{name}", "a command for the tests", name))


def test_missing_package_at_import_names_the_distribution(monkeypatch, tmp_path, capsys):
    _fake_command(monkeypatch, tmp_path, "fakesk", "import sklearn.no_such_submodule_here\n")
    assert main(["fakesk", "--help"]) == 2
    err = capsys.readouterr().err
    assert "'scikit-learn' (module sklearn)" in err and "pip install scikit-learn" in err


def test_missing_extra_names_the_extra():
    from skinage.commands import missing_dependency

    msg = str(missing_dependency(ModuleNotFoundError("No module named 'skimage'", name="skimage"), "evaluate"))
    assert "scikit-image" in msg
    try:
        import importlib.metadata as md

        md.requires("skinage")
    except md.PackageNotFoundError:
        pytest.skip("skinage is not installed (its extras are read from its installed metadata)")
    assert "pip install -e '.[dev]'" in msg and "make setup" in msg


@pytest.mark.parametrize("source", [
    "from skinage.config import no_such_name\n",   # a name missing from a module: a bug in the code
    "import skinage.no_such_module\n",             # a module of skinage missing: a bug too
])
def test_programming_errors_are_not_hidden(monkeypatch, tmp_path, source):
    _fake_command(monkeypatch, tmp_path, "fakebug", source)
    with pytest.raises(ImportError):
        main(["fakebug", "--help"])
    from skinage.commands import api

    with pytest.raises(ImportError) as e:
        api("fakebug")
    assert "pip install" not in str(e.value)
