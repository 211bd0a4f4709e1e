"""onnxruntime-web's runtime files for the in-browser page, installed offline-first by ``make setup``.

The page runs its models with onnxruntime-web's wasm backend, which needs three files beside the
page (never a CDN: the site must work offline and fetch nothing from another origin):

* ``ort.wasm.min.mjs`` -- the ES module entry (wasm and cpu only);
* ``ort-wasm-simd-threaded.mjs`` -- the glue it imports (also the worker script with threads);
* ``ort-wasm-simd-threaded.wasm`` -- the runtime.

``python -m skinage.app.runtime_files install`` (run by ``make setup``) fetches the pinned npm
package with ``npm pack`` from the npm registry, checks the tarball's sha256 and npm integrity
against the values below, extracts the three files from its ``dist/`` and checks each one's
sha256, into ``skinage.utils.cache_dir()/ort-web/<version>/`` (``$SKINAGE_CACHE`` honoured). It
does nothing when they are there already. ``python -m skinage.app.runtime_files path`` prints
the folder. Code that builds a site asks :func:`runtime_files` where the files are; when they
are missing it raises :class:`RuntimeFilesMissing`, whose message names ``make setup``.

>>> sorted(FILES)
['ort-wasm-simd-threaded.mjs', 'ort-wasm-simd-threaded.wasm', 'ort.wasm.min.mjs']
>>> runtime_dir().name == VERSION
True
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from ..utils import cache_dir, say, sha256_file

PACKAGE = "onnxruntime-web"
VERSION = "1.31.1"
#: sha256 and npm ``integrity`` (sha512) of ``onnxruntime-web-1.31.1.tgz`` as the registry serves it.
TARBALL_SHA256 = "bdccdb9fbb9ab537247c0c734e9b1d2b1b338b4f2a09faa58f0dc1cfa27c312c"
TARBALL_INTEGRITY = "sha512-5GeH+bWQ+HxM10z7erGlsWqryrwMbSvm/1tkIsKTT48g0fI19VXVVC435t4t7VsPdSQeS7NmuZPXrQ73k82URw=="
#: The files a site ships, from the package's ``dist/``, with their sha256.
FILES = {
    "ort.wasm.min.mjs": "c21d9c326d453a4a61398270c804d5979e118540597cb0c07f7b3d64e6098234",
    "ort-wasm-simd-threaded.mjs": "30ed0b5cd1182ede931fea448afb567d4dc705ec957af09f108a2be5f770dac3",
    "ort-wasm-simd-threaded.wasm": "4b884c203b0fa48d057be3332c65513ff85aa3c5bddd6946acc0fab7ecda001d",
}
#: The package's licence (its package.json says MIT; the tarball carries no licence file).
LICENSE = "MIT"

SETUP_HINT = (
    "run `make setup` (or `python -m skinage.app.runtime_files install`, which needs Node.js's npm) "
    f"once to install {PACKAGE} {VERSION} from the npm registry"
)

__all__ = ["PACKAGE", "VERSION", "FILES", "RuntimeFilesMissing", "runtime_dir", "runtime_files", "install", "main"]


class RuntimeFilesMissing(FileNotFoundError):
    """onnxruntime-web's files are not installed (or are damaged); the message names the set-up command."""


def runtime_dir(version: str = VERSION) -> Path:
    """Where the files of ``version`` live: ``cache_dir()/ort-web/<version>``."""
    return cache_dir() / "ort-web" / version


def _problems(folder: Path) -> list[str]:
    out = []
    for name, sha in FILES.items():
        f = folder / name
        if not f.is_file():
            out.append(f"{name} is missing")
        elif sha256_file(f) != sha:
            out.append(f"{name} has the wrong sha256")
    return out


def runtime_files() -> dict[str, Path]:
    """The three runtime files, by name, checked against their pinned sha256.

    Raises
    ------
    RuntimeFilesMissing
        when a file is absent or damaged (the message says which, and how to install them).
    """
    folder = runtime_dir()
    problems = _problems(folder)
    if problems:
        raise RuntimeFilesMissing(f"{PACKAGE} {VERSION} in {folder}: {'; '.join(problems)}; {SETUP_HINT}")
    return {name: folder / name for name in FILES}


def _npm_pack(npm: str, dest: Path) -> Path:
    """``npm pack PACKAGE@VERSION`` into ``dest``; the tarball's path."""
    cmd = [npm, "pack", f"{PACKAGE}@{VERSION}", "--pack-destination", str(dest), "--json", "--ignore-scripts"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise RuntimeError(f"`{' '.join(cmd)}` failed (exit {r.returncode}): {(r.stderr or r.stdout).strip()[-800:]}")
    tarballs = sorted(dest.glob("*.tgz"))
    if len(tarballs) != 1:
        raise RuntimeError(f"`npm pack` left {len(tarballs)} tarballs in {dest}, expected one")
    return tarballs[0]


def _check_tarball(tgz: Path) -> None:
    data = tgz.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    integrity = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
    if sha != TARBALL_SHA256 or integrity != TARBALL_INTEGRITY:
        raise RuntimeError(
            f"{tgz.name}: sha256 {sha} / integrity {integrity} do not match the pinned "
            f"{TARBALL_SHA256} / {TARBALL_INTEGRITY}; refusing to install it"
        )


def install(verbose: bool = True, npm: str | None = None) -> dict[str, Path]:
    """Install the three files if missing or damaged (idempotent; milliseconds when present).

    Raises
    ------
    RuntimeFilesMissing
        when npm is not found (the message says how to get it).
    RuntimeError
        when ``npm pack`` fails or a checksum does not match (nothing is installed then).
    """
    folder = runtime_dir()
    if not _problems(folder):
        if verbose:
            say(f"  {PACKAGE} {VERSION}: runtime files ready in {folder}")
        return {name: folder / name for name in FILES}
    npm = npm or shutil.which("npm")
    if npm is None:
        raise RuntimeFilesMissing(
            f"npm not found: it fetches {PACKAGE} {VERSION} from the npm registry for the in-browser page "
            "(Debian: apt-get install -y npm; or install Node.js), then run `make setup` again"
        )
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder.parent, prefix=f".{VERSION}-") as tmp:
        tmp = Path(tmp)
        if verbose:
            say(f"  fetching {PACKAGE}@{VERSION} from the npm registry (npm pack) ...")
        tgz = _npm_pack(npm, tmp)
        _check_tarball(tgz)
        with tarfile.open(tgz, "r:gz") as tar:
            for name, sha in FILES.items():
                member = tar.getmember(f"package/dist/{name}")
                src = tar.extractfile(member)
                if src is None:
                    raise RuntimeError(f"{tgz.name}: package/dist/{name} is not a regular file")
                part = tmp / name
                with src, open(part, "wb") as out:
                    shutil.copyfileobj(src, out)
                if sha256_file(part) != sha:
                    raise RuntimeError(f"{tgz.name}: dist/{name} has sha256 {sha256_file(part)}, expected {sha}")
        for name in FILES:  # all checked: move them into place
            os.replace(tmp / name, folder / name)
    meta = {"package": PACKAGE, "version": VERSION, "license": LICENSE, "tarball_sha256": TARBALL_SHA256,
            "integrity": TARBALL_INTEGRITY, "files": FILES}
    (folder / "package.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    if verbose:
        say(f"  {PACKAGE} {VERSION}: runtime files installed in {folder}")
    return runtime_files()


USAGE = """usage: python -m skinage.app.runtime_files COMMAND
  install [--quiet] [--if-npm]   install onnxruntime-web's runtime files (--if-npm: only a note, exit 0, when npm is absent)
  path                           print the folder holding them (exit 1 with the reason when they are missing)"""


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    cmd = argv[:1]
    if cmd == ["install"]:
        try:
            install(verbose="--quiet" not in argv)
        except RuntimeFilesMissing as e:
            if "--if-npm" in argv and shutil.which("npm") is None:
                say(f"note: {e}")
                return 0
            say(f"error: {e}")
            return 1
        except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
            say(f"error: {PACKAGE} {VERSION} not installed: {e}")
            return 1
        return 0
    if cmd == ["path"]:
        try:
            runtime_files()
        except RuntimeFilesMissing as e:
            say(f"error: {e}")
            return 1
        print(runtime_dir())
        return 0
    print(USAGE, file=sys.stderr)
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
