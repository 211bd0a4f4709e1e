"""``skinage find PATH... --out FILE.csv [--region face|forehead] [--crops DIR]``.

One CSV row per image (``path,status,reason,faces,score,face_x0..face_y1,forehead_x0..forehead_y1``,
pixels of the upright full-resolution image, empty unless ``ok``), a progress bar, and with
``--crops DIR`` the chosen region of each ``ok`` image under its relative file name. Exit 0 when
the batch ran (whatever the statuses), 2 on bad arguments (a missing path, no ``--out``, a bad
``--region``).
"""

from __future__ import annotations

import argparse

from ..config import ConfigError, add_config_arguments, config_from_args
from ..utils import say
from .batch import run_batch
from .constants import COMPARABLE_AREA, MIN_FACE_SIZE
from .options import FindConfig

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, FindConfig)
    parser.epilog = (f"Statuses: ok, no_face, several_faces (a second face of at least {COMPARABLE_AREA:.0%} of "
                     f"the largest's area), face_too_small (under {MIN_FACE_SIZE} px wide), unreadable. Boxes are "
                     "x0,y0,x1,y1 in pixels of the EXIF-rotated full-resolution image. See docs/finder.md.")


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(FindConfig, args)
    if cfg.out is None:
        raise ConfigError("--out FILE.csv is required (where to write one row per image)")
    result = run_batch(cfg)
    if not result.rows:
        say(f"find: no image files found in {', '.join(map(str, cfg.paths))}")
    counts = ", ".join(f"{k} {v}" for k, v in result.counts.items() if v)
    crops = f"; {result.crops} crop(s) in {cfg.crops}" if cfg.crops is not None else ""
    say(f"find: {len(result.rows)} image(s): {counts or 'none'} -> {result.out}{crops}")
    return 0
