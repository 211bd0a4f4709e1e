"""The HTTP side of ``skinage serve``: the site's files, and ``POST /api/predict``.

:class:`SiteHandler` (one per request, standard library ``http.server``) answers

* ``GET`` / ``HEAD`` of a file inside the site folder, with a pinned type (:data:`MIME_TYPES`: ``.wasm``
  ``application/wasm``, ``.mjs`` ``text/javascript``, ...). A path that leaves the folder (``..``, also
  percent-encoded; a symbolic link pointing out; a NUL byte) is a 404, as is a folder without
  ``index.html`` (no listings).
* ``POST /api/predict``: one image as the raw body (``Content-Type: image/*`` or
  ``application/octet-stream``; ``?name=`` names it) or as the one file of a ``multipart/form-data``
  form. The answer is the JSON ``skinage predict --out x.json`` writes for that image (status 200, refusals
  such as ``no_face`` or ``too_dark`` included). Limits, as JSON ``{"error", "message", "status"}``:
  413 above :data:`MAX_BYTES` (from ``Content-Length`` before reading, also on ``Expect: 100-continue``;
  while reading a chunked body), 415 for a body that is not declared an image, 422 for bytes that are
  not a readable image, 400 for a malformed request, 411 without a length, 500 for anything unexpected
  (logged on stderr with its traceback; the client gets a generic message). The body is held in memory
  only: nothing is written to disk.

>>> media_type("multipart/form-data; boundary=x"), media_type(None)
('multipart/form-data', '')
>>> content_type("ort/ort-wasm-simd-threaded.wasm"), content_type("js/app.mjs")
('application/wasm', 'text/javascript; charset=utf-8')
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import mimetypes
import os
import shutil
import socket
import sys
import time
import traceback
from email.utils import formatdate, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

__all__ = ["SiteHandler", "MIME_TYPES", "MAX_BYTES", "API_PATH", "RequestError", "content_type", "media_type",
           "resolve", "read_body", "image_from_form"]

#: The one endpoint that is not a file.
API_PATH = "/api/predict"
#: The largest request body ``POST /api/predict`` takes (20 MB; a 12 MP phone JPEG is 3-8 MB).
MAX_BYTES = 20_000_000

#: Pinned here rather than read from /etc/mime.types, which a machine may lack or get wrong.
MIME_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".htm": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".map": "application/json",
    ".webmanifest": "application/manifest+json",
    ".txt": "text/plain; charset=utf-8",
    ".md": "text/markdown; charset=utf-8",
    ".wasm": "application/wasm",
    ".onnx": "application/octet-stream",
    ".bin": "application/octet-stream",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".ico": "image/x-icon",
}

#: Declared types a raw body may have (besides none at all).
_RAW_TYPES = ("application/octet-stream",)
_READ = 1 << 16


class RequestError(Exception):
    """A request answered with an HTTP error: ``status``, a short ``code`` and a sentence for the client."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def media_type(header) -> str:
    """The media type of a Content-Type header, lower case, without parameters ('' when absent)."""
    return (header or "").split(";", 1)[0].strip().lower()


def content_type(path) -> str:
    """The Content-Type a site file is served with."""
    suffix = Path(path).suffix.lower()
    return MIME_TYPES.get(suffix) or mimetypes.guess_type(f"x{suffix}")[0] or "application/octet-stream"


def _inside(root: Path, path: Path):
    """``path`` resolved (symbolic links followed) when it is inside ``root``, else None."""
    try:
        real = path.resolve(strict=True)
    except (OSError, RuntimeError):  # missing, a symlink loop, a name too long
        return None
    return real if real == root or root in real.parents else None


def resolve(root: Path, url_path: str):
    """The file of the site folder ``root`` (resolved) that a URL path names; ``None`` when there is none inside it.

    ``"dir"`` when the path names a folder holding ``index.html`` but lacks its final slash (to redirect).
    """
    try:
        path = unquote(url_path, errors="strict")
    except UnicodeDecodeError:
        return None
    if "\x00" in path or "\\" in path:
        return None
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        return None
    real = _inside(root, root.joinpath(*parts))
    if real is not None and real.is_dir():
        index = _inside(root, real / "index.html")
        if index is None or not index.is_file():
            return None
        return index if path.endswith("/") or not parts else "dir"
    return real if real is not None and real.is_file() else None


def read_body(headers, rfile, limit: int = MAX_BYTES) -> bytes:
    """The request body (``Content-Length`` or chunked), at most ``limit`` bytes, else a 413 ``RequestError``."""
    encoding = (headers.get("Transfer-Encoding") or "").lower()
    if encoding:
        if encoding.replace(" ", "").split(",")[-1] != "chunked":
            raise RequestError(501, "transfer_encoding", f"Transfer-Encoding {encoding!r} is not supported")
        return _read_chunked(rfile, limit)
    length = headers.get("Content-Length")
    if length is None:
        raise RequestError(411, "length_required", "send the image with a Content-Length (or chunked)")
    try:
        n = int(length)
    except ValueError:
        n = -1
    if n < 0:
        raise RequestError(400, "bad_length", f"Content-Length {length!r} is not a byte count")
    if n > limit:
        raise too_large(n, limit)
    data = rfile.read(n)
    if len(data) != n:
        raise RequestError(400, "short_body", f"the body ended after {len(data)} of {n} bytes")
    return data


def too_large(n, limit: int = MAX_BYTES) -> RequestError:
    what = f"{n:,} bytes" if isinstance(n, int) else n
    return RequestError(413, "too_large", f"the request is {what}; at most {limit:,} bytes (one photo) are taken")


def _read_chunked(rfile, limit: int) -> bytes:
    body = bytearray()
    while True:
        line = rfile.readline(1026)
        if not line.endswith(b"\n"):
            raise RequestError(400, "bad_chunk", "a chunk-size line is malformed or too long")
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise RequestError(400, "bad_chunk", f"bad chunk size {line[:40]!r}") from None
        if size < 0:
            raise RequestError(400, "bad_chunk", "negative chunk size")
        if size == 0:
            break
        if len(body) + size > limit:
            raise too_large(f"more than {limit:,} bytes (chunked)", limit)
        chunk = rfile.read(size)
        if len(chunk) != size or rfile.read(2) not in (b"\r\n", b"\n"):
            raise RequestError(400, "bad_chunk", "a chunk ended early")
        body += chunk
    for _ in range(100):  # trailer fields, up to the blank line
        line = rfile.readline(8192)
        if line in (b"\r\n", b"\n", b""):
            break
    return bytes(body)


def image_from_form(body: bytes, header: str) -> tuple[bytes, str | None, str]:
    """The one file of a ``multipart/form-data`` body: (bytes, file name or None, declared media type)."""
    if "boundary=" not in header:
        raise RequestError(400, "bad_form", "multipart/form-data without a boundary")
    parser = email.parser.BytesParser(policy=email.policy.HTTP)
    try:
        msg = parser.parsebytes(b"Content-Type: " + header.encode("latin-1") + b"\r\n\r\n" + body)
        parts = list(msg.iter_parts()) if msg.is_multipart() else []
    except Exception as e:  # the email package raises many types on broken input
        raise RequestError(400, "bad_form", f"the form cannot be parsed: {type(e).__name__}") from None
    files = [p for p in parts if p.get_filename() is not None]
    if not files:
        files = [p for p in parts if p.get_param("name", header="content-disposition") in ("image", "file", "photo")]
    if len(files) != 1:
        raise RequestError(400, "no_file" if not files else "several_files",
                           "send one image as the one file of the form (e.g. curl -F image=@face.jpg)"
                           if not files else f"the form holds {len(files)} files: one image per request")
    part = files[0]
    data = part.get_payload(decode=True) or b""
    declared = media_type(part.get("Content-Type")) if part.get("Content-Type") else ""
    return data, part.get_filename(), declared


def _check_declared(declared: str) -> None:
    if declared and not declared.startswith("image/") and declared not in _RAW_TYPES:
        raise RequestError(415, "unsupported_media_type",
                           f"the upload is declared {declared!r}, not an image: send image/* (e.g. image/jpeg) "
                           f"or application/octet-stream (curl --data-binary @face.jpg -H 'Content-Type: image/jpeg'), "
                           f"or a multipart/form-data form with the image as its file (curl -F image=@face.jpg)")


class SiteHandler(BaseHTTPRequestHandler):
    """One request to ``skinage serve`` (``self.server`` is a :class:`skinage.app.serve.SiteServer`)."""

    server_version = "skinage-serve"
    protocol_version = "HTTP/1.1"
    timeout = 60  # seconds a silent client may hold a connection (and its thread)

    # ------------------------------------------------------------------ plumbing

    def log_message(self, format, *args):
        if self.server.log:
            super().log_message(format, *args)

    def _common_headers(self) -> None:
        self.send_header("X-Content-Type-Options", "nosniff")
        if self.server.isolated:
            self.send_header("Cross-Origin-Opener-Policy", "same-origin")
            self.send_header("Cross-Origin-Embedder-Policy", "require-corp")

    def _send_json(self, status: int, doc: dict, headers: dict | None = None) -> None:
        data = (json.dumps(doc, ensure_ascii=False) + "\n").encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self._common_headers()
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _send_error(self, err: RequestError, allow: str | None = None) -> None:
        self._send_json(err.status, {"error": err.code, "message": err.message, "status": err.status},
                        {"Allow": allow} if allow else None)

    def send_error(self, code, message=None, explain=None):
        """http.server's own errors (bad request line, unknown method) as JSON too."""
        self.close_connection = True
        try:
            self._send_json(code, {"error": "http", "message": message or self.responses.get(code, ("",))[0],
                                   "status": code})
        except OSError:
            pass

    def _linger(self) -> None:
        """After refusing a body not read to the end: stop sending, read a little, so the client sees the answer."""
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
            self.connection.settimeout(1.0)
            deadline, total = time.monotonic() + 2.0, 0
            while time.monotonic() < deadline and total < 4 * MAX_BYTES:
                got = self.connection.recv(_READ)
                if not got:
                    break
                total += len(got)
        except OSError:
            pass

    # ------------------------------------------------------------------ files

    def do_GET(self):
        self._file()

    def do_HEAD(self):
        self._file()

    def _file(self) -> None:
        path = urlsplit(self.path).path
        if path == API_PATH:
            return self._send_error(RequestError(405, "method_not_allowed", f"{API_PATH} takes POST"), "POST")
        found = resolve(self.server.root, path)
        if found == "dir":
            self.send_response(301)
            self.send_header("Location", path + "/")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if found is None:
            return self._send_error(RequestError(404, "not_found", "no such file in the site"))
        self._send_file(found)

    def _send_file(self, path: Path) -> None:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            since = self.headers.get("If-Modified-Since")
            if since:
                try:
                    if int(st.st_mtime) <= parsedate_to_datetime(since).timestamp():
                        self.send_response(304)
                        self.end_headers()
                        return
                except (TypeError, ValueError, OverflowError):
                    pass
            self.send_response(200)
            self.send_header("Content-Type", content_type(path))
            self.send_header("Content-Length", str(st.st_size))
            self.send_header("Last-Modified", formatdate(st.st_mtime, usegmt=True))
            self.send_header("Cache-Control", "no-cache")
            self._common_headers()
            self.end_headers()
            if self.command != "HEAD":
                shutil.copyfileobj(f, self.wfile, _READ)

    # ------------------------------------------------------------------ the API

    def handle_expect_100(self):
        """Refuse a too large upload before the client sends it (curl sends ``Expect: 100-continue``)."""
        n = self.headers.get("Content-Length", "")
        if self.command == "POST" and n.isdigit() and int(n) > MAX_BYTES:
            self.close_connection = True
            self._send_error(too_large(int(n)))
            return False
        return super().handle_expect_100()

    def do_POST(self):
        url = urlsplit(self.path)
        try:
            if url.path != API_PATH:
                raise RequestError(405 if resolve(self.server.root, url.path) else 404, "method_not_allowed",
                                   f"only {API_PATH} takes POST")
            body = read_body(self.headers, self.rfile)
        except RequestError as e:
            self.close_connection = True  # the body (if any) was not read to its end
            self._send_error(e, "GET, HEAD" if e.status == 405 else None)
            self._linger()
            return
        except (TimeoutError, socket.timeout):
            self.close_connection = True
            return self._send_error(RequestError(408, "timeout", "the body did not arrive in time"))
        try:
            status, doc = self._predict(body, url.query)
        except RequestError as e:
            status, doc = e.status, {"error": e.code, "message": e.message, "status": e.status}
        except Exception:  # never a stack trace to the client
            print(f"skinage serve: internal error on POST {self.path}:\n{traceback.format_exc()}",
                  file=sys.stderr, flush=True)
            status, doc = 500, {"error": "internal", "message": "internal error (see the server's log)",
                                "status": 500}
        self._send_json(status, doc)

    def _predict(self, body: bytes, query: str) -> tuple[int, dict]:
        declared = media_type(self.headers.get("Content-Type"))
        name = (parse_qs(query).get("name") or [None])[0]
        if declared == "multipart/form-data":
            body, filename, declared = image_from_form(body, self.headers.get("Content-Type", ""))
            name = name or filename
        _check_declared(declared)
        if not body:
            raise RequestError(422, "empty", "the upload is empty: send the bytes of one image file")
        doc = self.server.service.predict(body, name)
        row = doc["predictions"][0]
        if row["status"] == "error":  # the bytes are not an image Pillow reads (or its box cannot be cut)
            return 422, {"error": "unreadable_image", "message": row["error"], "status": 422}
        return 200, doc
