"""A local browser for measuring the page's models: the system's chromium and a static server.

``skinage app`` measures its candidate model files where the page runs them, in headless chromium
(onnxruntime-web, wasm, one thread), when a chromium and the Python package ``playwright`` are
installed; the test suite uses the same two pieces (``tests/browser_helpers.py``).

* :func:`chromium_executable` -- the browser binary (Debian's real binary behind its shell wrapper),
  or None.
* :func:`serve_dir` -- a static HTTP server for a folder on 127.0.0.1 (random port), with the MIME
  types a page with onnxruntime-web needs and, optionally, the COOP/COEP headers that make it
  cross-origin isolated (several wasm threads).
* :func:`playwright_missing` -- why the measurement cannot run here (None when it can).

>>> MIME_TYPES[".wasm"], MIME_TYPES[".mjs"]
('application/wasm', 'text/javascript')
"""

from __future__ import annotations

import contextlib
import functools
import shutil
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

__all__ = ["OFFLINE_FLAGS", "MIME_TYPES", "chromium_executable", "playwright_missing", "serve_dir"]

#: Flags for a machine with no network but the package registries (no background traffic).
OFFLINE_FLAGS = [
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--disable-gpu",
]

#: Debian installs a shell wrapper as /usr/bin/chromium; Playwright must start the real binary.
DEBIAN_REAL_BINARY = Path("/usr/lib/chromium/chromium")

#: Pinned here rather than read from /etc/mime.types, which a machine may lack.
MIME_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".css": "text/css",
    ".json": "application/json",
    ".webmanifest": "application/manifest+json",
    ".svg": "image/svg+xml",
    ".wasm": "application/wasm",
    ".onnx": "application/octet-stream",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".webp": "image/webp",
    ".bin": "application/octet-stream",
}


def chromium_executable() -> str | None:
    """The chromium (or Chrome) binary to launch, or None when none is installed."""
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        p = shutil.which(name)
        if not p:
            continue
        real = Path(p).resolve()
        with open(real, "rb") as f:
            is_script = f.read(2) == b"#!"
        if is_script and DEBIAN_REAL_BINARY.is_file():
            return str(DEBIAN_REAL_BINARY)
        return str(real)
    if DEBIAN_REAL_BINARY.is_file():
        return str(DEBIAN_REAL_BINARY)
    return None


def playwright_missing() -> str | None:
    """Why a headless chromium cannot be driven here (no chromium, no playwright), or None."""
    if chromium_executable() is None:
        return "no chromium is installed (`make setup` as root, or `apt-get install -y chromium`)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the Python package playwright is not installed (pip install -e '.[dev]', or make setup)"
    return None


class _Handler(SimpleHTTPRequestHandler):
    extensions_map = {**SimpleHTTPRequestHandler.extensions_map, **MIME_TYPES}
    isolated = False

    def end_headers(self):
        self.send_header("Cache-Control", "no-store")
        if self.isolated:
            self.send_header("Cross-Origin-Opener-Policy", "same-origin")
            self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        super().end_headers()

    def log_message(self, format, *args):  # quiet
        pass


@contextlib.contextmanager
def serve_dir(folder, isolated: bool = False, host: str = "127.0.0.1") -> Iterator[str]:
    """Serve ``folder`` over HTTP on ``host`` at a free port; yields the base URL (ends with /)."""
    handler = functools.partial(type("Handler", (_Handler,), {"isolated": isolated}), directory=str(folder))
    server = ThreadingHTTPServer((host, 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="static-server", daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
