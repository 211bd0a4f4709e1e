"""The table of ``skinage`` commands, read by the command line, the Python API and the demo.

Where a command's code lives, one rule for every command: command ``X`` is the module
``skinage/<stage>/X.py`` of the pipeline stage that does its work; that module holds ``XConfig`` (the
options: at once the command's flags and the API function's keywords), the API function ``X(...)``,
``add_arguments(parser)`` and ``run(args) -> int``. ``demo``, which runs every stage, is
``skinage/demo.py``.

Adding a command is one row here plus its module; ``skinage --help``, ``skinage.X(...)`` and the
demo pick it up. Nothing heavy is imported until a command is used, so ``import skinage`` and
``skinage predict model.onnx ...`` stay free of torch.

A third-party package a command needs that is not installed raises :class:`MissingDependency`, whose
message names the package, the extra that carries it and the command that installs it.

>>> COMMANDS["train"].module, COMMANDS["train"].api
('skinage.training.train', 'train')
>>> print(missing_dependency(ModuleNotFoundError("No module named 'sklearn'", name="sklearn.metrics"), "evaluate"))
skinage evaluate needs the Python package 'scikit-learn' (module sklearn), which is not installed: install it with `pip install scikit-learn`...
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Callable

__all__ = ["Command", "COMMANDS", "API", "PACKAGE_NAMED", "CommandModule", "callable_module", "MissingDependency",
           "missing_dependency", "load", "api"]


@dataclass(frozen=True)
class Command:
    """One ``skinage`` command.

    name:   the command (``skinage <name>``).
    module: the module that holds it (see the rule in the module docstring).
    help:   one line, shown by ``skinage --help`` and at the top of ``skinage <name> --help``.
    api:    the API function in ``module`` (its name is the command's).
    """

    name: str
    module: str
    help: str
    api: str


def _table(*rows: Command) -> dict[str, Command]:
    return {c.name: c for c in rows}


COMMANDS: dict[str, Command] = _table(
    Command("ingest", "skinage.data.ingest",
            "read a dataset (class folders, AI-Hub JSON tree, label table) into a manifest with person-grouped splits",
            "ingest"),
    Command("models", "skinage.models.models",
            "list the available backbones with parameters, MACs and pretrained weights",
            "models"),
    Command("train", "skinage.training.train",
            "train a model from a manifest into a run folder (feature / finetune / distill)", "train"),
    Command("tune", "skinage.training.tune", "search head hyper-parameters with Optuna on cached features", "tune"),
    Command("evaluate", "skinage.evaluation.evaluate",
            "honest metrics with baselines, confidence intervals, person fusion and a report", "evaluate"),
    Command("compare", "skinage.evaluation.compare", "a comparison table of several runs", "compare"),
    Command("export", "skinage.export.export", "export a run to ONNX (fp32 / int8) with parity checks", "export"),
    Command("predict", "skinage.runtime.predict",
            "predict images, folders or a manifest with a run, checkpoint or .onnx file", "predict"),
    Command("serve", "skinage.app.serve",
            "serve a site written by `skinage app` on 127.0.0.1, with POST /api/predict (skinage predict's JSON)",
            "serve"),
    Command("find", "skinage.find.find",
            "find the face and the forehead in photos: statuses, boxes and crops (BlazeFace + FaceMesh)", "find"),
    Command("app", "skinage.app.app",
            "write a static site that grades a photo in the browser, nothing uploaded (finder + model + card)", "app"),
    Command("demo", "skinage.demo",
            "run the whole job end to end on a synthetic default dataset (or --data DIR)", "demo"),
)

def _package_names() -> set[str]:
    """The modules and subpackages of skinage (found on disk, none imported)."""
    return {m.name for m in pkgutil.iter_modules([str(Path(__file__).resolve().parent)])}


#: the functions of the Python API, ``skinage.<name>(...)``: every command. A command named like a module
#: of skinage (``models``, ``export``, ``find``, ``demo``) is that module, made callable by
#: :func:`callable_module`: once imported, Python sets ``skinage.<name>`` to the module, so the module
#: itself calls the command's function.
API: dict[str, Command] = dict(COMMANDS)
PACKAGE_NAMED = frozenset(n for n in COMMANDS if n in _package_names())


class CommandModule(ModuleType):
    """A module that is also its command's API function: ``skinage.export(run, int8=True)``."""

    def __call__(self, *args, **kwargs):
        return api(self.__command__)(*args, **kwargs)


def callable_module(module_name: str, command: str) -> None:
    """Make module ``module_name`` callable as command ``command``'s API function (call at its end)."""
    module = sys.modules[module_name]
    module.__class__ = CommandModule
    module.__command__ = command


class MissingDependency(ModuleNotFoundError):
    """A third-party package skinage needs is not installed; the message says what to install."""


# import name -> distribution name, where they differ
_DISTRIBUTIONS = {
    "PIL": "pillow", "sklearn": "scikit-learn", "skimage": "scikit-image", "yaml": "pyyaml",
    "coral_pytorch": "coral-pytorch", "cv2": "opencv-python-headless",
}

#: the extras `make setup` installs (the Makefile's `pip install -e ".[dev]"`)
_MAKE_SETUP_EXTRAS = ("dev",)


def _extra(distribution: str) -> str | None:
    """The extra of skinage that lists ``distribution`` ('' for a core dependency, None when not listed)."""
    from importlib import metadata

    try:
        requires = metadata.requires("skinage") or []
    except metadata.PackageNotFoundError:  # a source tree on PYTHONPATH that was never installed
        return None
    want = distribution.lower().replace("_", "-")
    for req in requires:
        spec, _, marker = req.partition(";")
        name = spec.strip()
        for sep in "<>=!~[ (":
            name = name.split(sep, 1)[0]
        if name.lower().replace("_", "-") == want:
            if "extra" in marker:
                return marker.split("extra", 1)[1].strip(" =\"'")
            return ""
    return None


def missing_dependency(error: ImportError, command: str | None = None) -> MissingDependency | None:
    """``error`` as a :class:`MissingDependency` when it is a third-party package that is not installed.

    None for anything else: a module of skinage itself, a name missing from a module (``from x import y``),
    a module of the standard library: those are errors in the code, to be seen with their traceback.
    """
    if isinstance(error, MissingDependency):
        return error
    if not isinstance(error, ModuleNotFoundError) or not error.name:
        return None
    top = error.name.split(".", 1)[0]
    if top == "skinage" or top in sys.stdlib_module_names:
        return None
    dist = _DISTRIBUTIONS.get(top, top.replace("_", "-"))
    extra = _extra(dist)
    if extra:
        fix = f"install skinage's {extra} extra: `pip install -e '.[{extra}]'` in the skinage folder"
        if extra in _MAKE_SETUP_EXTRAS:
            fix += ", or run `make setup`"
    elif extra == "":
        fix = f"install it with `pip install {dist}`, or run `make setup`, which installs every dependency of skinage"
    else:  # not among skinage's declared requirements (or skinage itself not installed)
        fix = f"install it with `pip install {dist}`"
    who = f"skinage {command} needs the Python package" if command else "the Python package"
    msg = f"{who} '{dist}' (module {top}), which is not installed: {fix}"
    out = MissingDependency(msg, name=error.name)
    out.__cause__ = error
    return out


def load(name: str) -> ModuleType:
    """The module of command ``name``; a missing third-party package raises :class:`MissingDependency`."""
    command = COMMANDS[name]
    try:
        return importlib.import_module(command.module)
    except ImportError as e:
        missing = missing_dependency(e, name)
        if missing is None:
            raise
        raise missing from e


def api(name: str) -> Callable:
    """The API function of command ``name`` (e.g. ``api("train")`` is :func:`skinage.training.train.train`)."""
    return getattr(load(name), COMMANDS[name].api)
