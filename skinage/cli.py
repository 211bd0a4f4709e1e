"""The ``skinage`` command: one sub-command per pipeline step.

Each sub-command lives in its own module, which provides
``add_arguments(parser)`` and ``run(args) -> int``; this file only wires them.

>>> main(["--version"])  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
import sys
from typing import Sequence

from . import __version__
from .config import ConfigError, DidYouMeanParser

# name -> (module, one-line help)
COMMANDS = {
    "ingest": ("skinage.data.ingest", "read a dataset (class folders, AI-Hub JSON tree, label table) into a manifest with person-grouped splits"),
    "models": ("skinage.models.registry", "list the available backbones with parameters, MACs and pretrained weights"),
    "train": ("skinage.training.train", "train a model from a manifest into a run folder (feature / finetune / distill)"),
    "tune": ("skinage.training.tune", "search head hyper-parameters with Optuna on cached features"),
    "evaluate": ("skinage.evaluation.evaluate", "honest metrics with baselines, confidence intervals, person fusion and a report"),
    "compare": ("skinage.evaluation.compare", "a comparison table of several runs"),
    "export": ("skinage.export.export", "export a run to ONNX (fp32 / int8) with parity checks"),
    "predict": ("skinage.runtime.predict", "predict images, folders or a manifest with a run, checkpoint or .onnx file"),
    "demo": ("skinage.demo", "run the whole job end to end on a synthetic default dataset (or --data DIR)"),
}


def build_parser(load: Sequence[str] | None = None) -> DidYouMeanParser:
    """The full parser; only the sub-commands in ``load`` (all when None) import their module.

    Importing only the chosen command keeps `skinage predict model.onnx` free of torch.
    """
    parser = DidYouMeanParser(
        prog="skinage",
        description="Train, evaluate and ship lightweight image classifiers for facial skin-aging "
        "grades and age groups. Honest by default: splits by person, baselines beside every result.",
    )
    parser.add_argument("--version", action="version", version=f"skinage {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=DidYouMeanParser)
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module)
        if load is not None and name not in load:
            continue
        try:
            importlib.import_module(module).add_arguments(p)
        except (ImportError, AttributeError) as e:  # a command not built yet
            p.set_defaults(_unavailable=str(e))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    chosen = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(load=[chosen] if chosen in COMMANDS else [])
    args, extra = parser.parse_known_args(argv)
    if extra:  # let the sub-command's parser complain, so the suggestion names its own flags
        cmd = getattr(args, "command", None)
        sub = parser._subparsers._group_actions[0].choices.get(cmd) if cmd else None
        (sub or parser).error("unrecognized arguments: " + " ".join(extra))
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    if getattr(args, "_unavailable", None):
        print(f"skinage {args.command}: not available: {args._unavailable}", file=sys.stderr)
        return 2
    try:
        return int(importlib.import_module(args._module).run(args) or 0)
    except ConfigError as e:
        print(f"skinage {args.command}: error: {e}", file=sys.stderr)
        return 2
    except FileNotFoundError as e:
        print(f"skinage {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\nskinage {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
