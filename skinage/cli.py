"""The ``skinage`` command: one sub-command per row of :data:`skinage.commands.COMMANDS`.

Each command's module provides ``add_arguments(parser)`` and ``run(args) -> int``; this file only wires
them. Only the chosen command's module is imported, so ``skinage predict model.onnx ...`` stays free of torch.

>>> main(["--version"])  # doctest: +SKIP
"""

from __future__ import annotations

import sys
from typing import Sequence

from . import __version__
from . import commands
from .commands import COMMANDS, missing_dependency
from .config import ConfigError, DidYouMeanParser

__all__ = ["COMMANDS", "build_parser", "main"]


def build_parser(load: Sequence[str] | None = None) -> DidYouMeanParser:
    """The full parser; only the sub-commands in ``load`` (all when None) import their module.

    A command whose module needs a third-party package that is not installed raises
    :class:`skinage.commands.MissingDependency` (the message says what to install).
    """
    parser = DidYouMeanParser(
        prog="skinage",
        description="Train, evaluate and ship lightweight image classifiers for facial skin-aging "
        "grades and age groups. Honest by default: splits by person, baselines beside every result.",
    )
    parser.add_argument("--version", action="version", version=f"skinage {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=DidYouMeanParser)
    for name, command in COMMANDS.items():
        p = sub.add_parser(name, help=command.help, description=command.help)
        if load is None or name in load:
            commands.load(name).add_arguments(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    chosen = next((a for a in argv if not a.startswith("-")), None)
    try:
        parser = build_parser(load=[chosen] if chosen in COMMANDS else [])
        args, extra = parser.parse_known_args(argv)
        if extra:  # let the sub-command's parser complain, so the suggestion names its own flags
            cmd = getattr(args, "command", None)
            sub = parser._subparsers._group_actions[0].choices.get(cmd) if cmd else None
            (sub or parser).error("unrecognized arguments: " + " ".join(extra))
        if not getattr(args, "command", None):
            parser.print_help()
            return 2
        return int(commands.load(args.command).run(args) or 0)
    except ImportError as e:
        missing = missing_dependency(e, chosen)
        if missing is None:  # an error in the code, not in the installation: show its traceback
            raise
        print(f"skinage {chosen}: error: {missing}", file=sys.stderr)
        return 2
    except (ConfigError, FileNotFoundError) as e:
        print(f"skinage {chosen}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\nskinage {chosen}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
