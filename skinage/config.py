"""Typed configuration shared by the command line and the Python API.

Every command has one dataclass whose fields are at once the CLI flags
(``field_name`` -> ``--field-name``) and the keyword arguments of the Python
function. Unknown keys are refused with a "did you mean" hint.

>>> from dataclasses import dataclass, field
>>> @dataclass
... class Demo:
...     epochs: int = field(default=10, metadata={"help": "passes over the data"})
...     hidden: tuple = field(default=(256,), metadata={"help": "hidden sizes", "type": "ints"})
>>> build_config(Demo, {"epochs": 3, "hidden": "64,32"})
Demo(epochs=3, hidden=(64, 32))
>>> build_config(Demo, {"epoch": 3})
Traceback (most recent call last):
...
skinage.config.ConfigError: unknown option 'epoch' (did you mean 'epochs'?)
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence, TypeVar

T = TypeVar("T")

__all__ = [
    "ConfigError",
    "Seeded",
    "Threaded",
    "Progress",
    "RunFolder",
    "suggest",
    "build_config",
    "add_config_arguments",
    "config_from_args",
    "config_to_dict",
    "DidYouMeanParser",
]


class ConfigError(ValueError):
    """A configuration value or key is wrong; the message says how to fix it."""


def suggest(name: str, choices: Sequence[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices``, or an empty string.

    >>> suggest("epoch", ["epochs", "lr"])
    " (did you mean 'epochs'?)"
    """
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    return f" (did you mean '{close[0]}'?)" if close else ""


# --- options several commands share: declared once, one meaning everywhere ----------------------
# A command's config inherits the ones it uses, e.g. ``class TrainConfig(RunFolder, Threaded, Progress, Seeded)``.


@dataclass
class Seeded:
    seed: int = field(default=0, metadata={"help": "random seed: every random choice of the command follows it, "
                                                   "so the same seed gives the same result"})


@dataclass
class Threaded:
    threads: int = field(default=0, metadata={"help": "CPU threads (0: the library's default, all cores)"})


@dataclass
class Progress:
    progress: bool = field(default=True, metadata={"help": "progress bars on stderr"})


@dataclass
class RunFolder:
    project: Path = field(default=Path("runs"), metadata={"help": "folder holding the run folders"})
    name: str = field(default="", metadata={
        "help": "run folder name (default: the command's name); taken names get a number: train, train2, ..."})
    exist_ok: bool = field(default=False, metadata={"help": "reuse <project>/<name> instead of numbering a new one"})


def _kind(f: dataclasses.Field, cls: type) -> str:
    """The value kind of a field: from metadata['type'] or the annotation."""
    if "type" in f.metadata:
        return f.metadata["type"]
    hints = typing.get_type_hints(cls)
    t = hints.get(f.name, str)
    origin = typing.get_origin(t)
    args = [a for a in typing.get_args(t) if a is not type(None)]
    if origin is typing.Union and len(args) == 1:
        t = args[0]
        origin = typing.get_origin(t)
    if t is bool:
        return "bool"
    if t is int:
        return "int"
    if t is float:
        return "float"
    if t is Path:
        return "path"
    if origin in (list, tuple) or t in (list, tuple):
        inner = typing.get_args(t)
        if inner and inner[0] is int:
            return "ints"
        if inner and inner[0] is float:
            return "floats"
        return "strs"
    return "str"


def _parse_list(value: Any, conv) -> tuple:
    if value is None:
        return None
    if isinstance(value, str):
        parts = [p for p in value.replace(" ", ",").split(",") if p != ""]
        return tuple(conv(p) for p in parts)
    if isinstance(value, (int, float)):
        return (conv(value),)
    return tuple(conv(v) for v in value)


def _coerce(kind: str, name: str, value: Any) -> Any:
    if value is None:
        return None
    try:
        if kind == "bool":
            if isinstance(value, str):
                low = value.strip().lower()
                if low in ("1", "true", "yes", "on"):
                    return True
                if low in ("0", "false", "no", "off"):
                    return False
                raise ValueError(value)
            return bool(value)
        if kind == "int":
            return int(value)
        if kind == "float":
            return float(value)
        if kind == "path":
            return Path(value)
        if kind == "ints":
            return _parse_list(value, int)
        if kind == "floats":
            return _parse_list(value, float)
        if kind == "strs":
            return _parse_list(value, str)
        return value if isinstance(value, str) else str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"option '{name}': cannot read {value!r} as {kind}") from None


def build_config(cls: type[T], values: Mapping[str, Any] | None = None, **kwargs: Any) -> T:
    """Make a config of type ``cls`` from a mapping and/or keywords.

    Values are converted to the field's type (``"64,32"`` -> ``(64, 32)``);
    unknown keys raise :class:`ConfigError` with a suggestion; fields with a
    ``choices`` entry in their metadata are checked.
    """
    merged = dict(values or {})
    merged.update(kwargs)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    out = {}
    for key, value in merged.items():
        name = key.replace("-", "_")
        if name not in fields:
            raise ConfigError(f"unknown option '{key}'{suggest(name, list(fields))}")
        f = fields[name]
        value = _coerce(_kind(f, cls), name, value)
        choices = f.metadata.get("choices")
        if choices is not None and value is not None and value not in choices:
            raise ConfigError(
                f"option '{name}': {value!r} is not one of {', '.join(map(str, choices))}"
                f"{suggest(str(value), [str(c) for c in choices])}"
            )
        out[name] = value
    return cls(**out)


def config_to_dict(cfg: Any) -> dict:
    """A plain, YAML/JSON-friendly dict of a config (paths as strings, tuples as lists)."""
    out = {}
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        if isinstance(v, Path):
            v = str(v)
        elif isinstance(v, tuple):
            v = list(v)
        out[f.name] = v
    return out


class DidYouMeanParser(argparse.ArgumentParser):
    """An ArgumentParser that suggests the closest flag for an unknown one."""

    def error(self, message: str):  # pragma: no cover - exercised through the CLI tests
        if "unrecognized arguments" in message:
            flags = [s for a in self._actions for s in a.option_strings]
            bad = message.split(":", 1)[1].split()
            hints = []
            for b in bad:
                if b.startswith("-"):
                    s = suggest(b.split("=")[0], flags)
                    if s:
                        hints.append(f"{b}{s}")
            if hints:
                message += "; " + "; ".join(hints)
        super().error(message)


def add_config_arguments(parser: argparse.ArgumentParser, cls: type, skip: Sequence[str] = ()) -> None:
    """Add one ``--flag`` per dataclass field (help from ``metadata['help']``).

    Fields marked ``metadata={'positional': True}`` become positional arguments.
    Every flag defaults to ``argparse.SUPPRESS`` so only flags the user gave
    override the dataclass defaults.
    """
    for f in dataclasses.fields(cls):
        if f.name in skip or f.metadata.get("cli") is False:
            continue
        kind = _kind(f, cls)
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None  # type: ignore
        )
        help_text = f.metadata.get("help", "")
        if default not in (None, "", ()) and kind != "bool":
            shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
            help_text += f" (default: {shown})"
        if f.metadata.get("positional"):
            nargs = f.metadata.get("nargs")
            parser.add_argument(f.name, help=help_text, nargs=nargs, **({"default": argparse.SUPPRESS} if nargs in ("?", "*") else {}))
            continue
        flag = "--" + f.name.replace("_", "-")
        aliases = list(f.metadata.get("aliases", ()))
        if kind == "bool":
            parser.add_argument(flag, *aliases, dest=f.name, action=argparse.BooleanOptionalAction,
                                default=argparse.SUPPRESS, help=help_text + f" (default: {'on' if default else 'off'})")
        else:
            kw: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS, "help": help_text}
            if f.metadata.get("choices") is not None:
                kw["choices"] = f.metadata["choices"]
            if f.metadata.get("nargs"):
                kw["nargs"] = f.metadata["nargs"]
            parser.add_argument(flag, *aliases, **kw)


def config_from_args(cls: type[T], args: argparse.Namespace, **extra: Any) -> T:
    """Build ``cls`` from the flags the user gave (others keep their defaults)."""
    names = {f.name for f in dataclasses.fields(cls)}
    values = {k: v for k, v in vars(args).items() if k in names}
    values.update(extra)
    return build_config(cls, values)
