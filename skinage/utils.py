"""Small shared helpers: atomic file writes, cache locations, logging to the console."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator

__all__ = ["atomic_write", "atomic_write_text", "atomic_write_json", "cache_dir", "say", "sha256_file"]


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", **kw: Any) -> Iterator[Any]:
    """Open a temporary file beside ``path``; rename it over ``path`` only on success.

    A crash half-way leaves the old file (or none), never a truncated one.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.txt"
    >>> with atomic_write(p, "w") as f:
    ...     _ = f.write("hello")
    >>> p.read_text()
    'hello'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        with open(tmp, mode, **kw) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_write(path, "w", encoding="utf-8") as f:
        f.write(text)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n")


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes, read a MiB at a time (checksums of weights, model and runtime files)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def cache_dir() -> Path:
    """Where skinage keeps decoded crops, cached features and converted weights.

    ``$SKINAGE_CACHE`` if set, else ``~/.cache/skinage``.
    """
    root = os.environ.get("SKINAGE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "skinage")
    p = Path(root)
    p.mkdir(parents=True, exist_ok=True)
    return p


_quiet = [False]


def say(msg: str) -> None:
    """Print a progress line to stderr (stdout stays clean for tables and results); nothing inside :func:`quiet`."""
    if not _quiet[0]:
        print(msg, file=sys.stderr, flush=True)


@contextlib.contextmanager
def quiet(on: bool = True) -> Iterator[None]:
    """Silence :func:`say` in the block when ``on`` (the other ranks of a distributed run print nothing).

    >>> with quiet():
    ...     say("not shown")
    """
    before = _quiet[0]
    _quiet[0] = bool(on) or before
    try:
        yield
    finally:
        _quiet[0] = before
