"""``skinage serve SITE``: serve a site written by ``skinage app``, and answer ``POST /api/predict``.

* The site's files with the types a page running onnxruntime-web needs (``.wasm`` ``application/wasm``,
  ``.mjs`` ``text/javascript``, ...), nothing outside the folder (:mod:`skinage.app.handler`).
* ``POST /api/predict``: one photo (raw body or a multipart form, at most 20 MB) -> the JSON
  ``skinage predict SITE/model.onnx PHOTO --out x.json`` writes for it, computed by the torch-free runtime
  (:func:`skinage.runtime.photo.predict_image` on the bytes, held in memory; nothing is written to disk).
  ``SITE/model.onnx`` is loaded once at start, and so is the face finder when the model reads a found
  region (the site's own ``models/`` copies when present, else the installed ones).
* Listens on 127.0.0.1 unless ``--host`` says otherwise; ``--isolated`` adds the COOP/COEP headers that make
  the page cross-origin isolated, so onnxruntime-web may use 2 wasm threads. Ctrl-C (or SIGTERM) stops it.

Built on the standard library's ``ThreadingHTTPServer`` (one thread a connection; predictions run at most
``workers`` at a time): a local, single-user server needs no framework, and the package gains no dependency.

    skinage serve site/                       # http://127.0.0.1:8000/
    curl -F image=@face.jpg http://127.0.0.1:8000/api/predict
    curl --data-binary @face.jpg -H 'Content-Type: image/jpeg' 'http://127.0.0.1:8000/api/predict?name=face.jpg'

>>> from skinage.config import build_config
>>> cfg = build_config(ServeConfig, {"site": "site", "port": "0"})
>>> cfg.host, cfg.port, cfg.isolated
('127.0.0.1', 0, False)
"""

from __future__ import annotations

import argparse
import errno
import signal
import socket
import sys
import threading
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path

from ..config import ConfigError, Threaded, add_config_arguments, build_config, config_from_args
from .handler import API_PATH, MAX_BYTES, SiteHandler

__all__ = ["ServeConfig", "PredictService", "SiteServer", "serve", "start", "add_arguments", "run", "API_PATH",
           "MAX_BYTES"]

#: The file of a site that /api/predict runs (written by ``skinage app``).
MODEL_FILE = "model.onnx"
#: Where ``skinage app`` puts the finder's two ONNX files inside a site.
FINDER_DIR = "models"
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass
class ServeConfig(Threaded):
    """Options of ``skinage serve`` / :func:`skinage.serve` (``threads``: onnxruntime threads per model)."""

    site: Path | None = field(default=None, metadata={"positional": True,
        "help": "the site folder written by `skinage app RUN --out SITE` (it holds index.html and model.onnx)"})
    host: str = field(default="127.0.0.1", metadata={
        "help": "address to listen on (0.0.0.0: every interface, reachable from the network)"})
    port: int = field(default=8000, metadata={"help": "port to listen on (0: any free port)"})
    isolated: bool = field(default=False, metadata={
        "help": "send Cross-Origin-Opener-Policy / Cross-Origin-Embedder-Policy, so the page is cross-origin "
                "isolated and onnxruntime-web may use 2 wasm threads"})
    workers: int = field(default=2, metadata={"help": "predictions computed at the same time (others wait)"})
    log: bool = field(default=True, metadata={"help": "one line per request on stderr"})


class PredictService:
    """The site's model and (when it reads a found region) the face finder, loaded once; one photo -> JSON.

    >>> service = PredictService("site")                      # doctest: +SKIP
    >>> service.predict(open("face.jpg", "rb").read(), "face.jpg")["predictions"][0]["class"]  # doctest: +SKIP
    '30-49'
    """

    def __init__(self, site, threads: int = 0, workers: int = 2):
        from ..runtime.predictor import OnnxPredictor

        self.site = Path(site)
        self.model = self.site / MODEL_FILE
        if not self.model.is_file():
            raise ConfigError(f"{self.site} has no {MODEL_FILE}: give a site written by `skinage app RUN --out SITE`")
        self.predictor = OnnxPredictor(self.model, threads)
        self.finder = self._finder(threads) if self.predictor.pre.finds else None
        self._gate = threading.BoundedSemaphore(max(1, int(workers)))

    def _finder(self, threads: int):
        from ..find.assets import MODEL_FILES
        from ..find.find import get_finder

        own = self.site / FINDER_DIR
        if all((own / name).is_file() for name in MODEL_FILES.values()):
            return get_finder(own, threads)
        return get_finder(None, threads)

    def predict(self, data: bytes, name: str | None = None) -> dict:
        """The document ``skinage predict SITE/model.onnx PHOTO --out x.json`` writes, for the bytes of one photo."""
        from ..runtime.photo import predict_image
        from ..runtime.predict import to_json

        with self._gate:
            row = predict_image(self.predictor, bytes(data), name=name, finder=self.finder)
        return to_json([row], self.predictor, self.model)


class SiteServer(ThreadingHTTPServer):
    """The HTTP server: ``root`` (the resolved site folder), ``service``, ``isolated``, ``log``, ``url``."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, cfg: ServeConfig, service: PredictService):
        self.root = Path(cfg.site).resolve()
        self.service, self.isolated, self.log = service, bool(cfg.isolated), bool(cfg.log)
        if ":" in cfg.host:
            self.address_family = socket.AF_INET6
        try:
            super().__init__((cfg.host, int(cfg.port)), SiteHandler)
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise ConfigError(f"port {cfg.port} on {cfg.host} is in use: choose another with --port "
                                  f"(0: any free port)") from None
            raise ConfigError(f"cannot listen on {cfg.host}:{cfg.port}: {e.strerror or e}") from None

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{port}/"

    def stop(self) -> None:
        """Stop serving (from another thread than the one in ``serve_forever``) and close the socket."""
        self.shutdown()
        self.server_close()


def _make(site, options: dict) -> SiteServer:
    cfg = build_config(ServeConfig, options, site=site)
    return _server(cfg)


def _server(cfg: ServeConfig) -> SiteServer:
    if cfg.site is None or not Path(cfg.site).is_dir():
        raise ConfigError(f"no site folder {cfg.site}: write one with `skinage app RUN --out SITE`")
    if not (Path(cfg.site) / "index.html").is_file():
        raise ConfigError(f"{cfg.site} has no index.html: give a site written by `skinage app RUN --out SITE`")
    return SiteServer(cfg, PredictService(cfg.site, cfg.threads, cfg.workers))


def start(site, **options) -> SiteServer:
    """Start serving ``site`` in a background thread; returns the :class:`SiteServer` (``.url``, ``.stop()``).

    The keywords are :class:`ServeConfig`'s (``port`` defaults to 8000; 0 takes any free port).
    """
    server = _make(site, options)
    threading.Thread(target=server.serve_forever, name="skinage-serve", daemon=True).start()
    return server


def _announce(server: SiteServer, cfg: ServeConfig) -> None:
    print(f"skinage serve: {server.url}  (site {cfg.site}; POST {server.url.rstrip('/')}{API_PATH}; "
          f"Ctrl-C stops)", flush=True)
    if cfg.host not in _LOOPBACK:
        print(f"skinage serve: warning: listening on {cfg.host}: other machines can reach this server",
              file=sys.stderr, flush=True)
    if cfg.isolated:
        print("skinage serve: cross-origin isolated (COOP/COEP): the page may use 2 wasm threads", file=sys.stderr,
              flush=True)


def _serve(server: SiteServer, cfg: ServeConfig) -> None:
    """Serve until Ctrl-C or SIGTERM (in the main thread), then close the socket."""
    main = threading.current_thread() is threading.main_thread()
    old = signal.getsignal(signal.SIGTERM) if main else None

    def _stop(signum, frame):
        raise KeyboardInterrupt

    if main:
        signal.signal(signal.SIGTERM, _stop)
    _announce(server, cfg)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        if main:
            signal.signal(signal.SIGTERM, old)
    print("skinage serve: stopped", file=sys.stderr, flush=True)


def serve(site, **options) -> None:
    """Serve ``site`` until Ctrl-C (the Python form of ``skinage serve``; keywords: :class:`ServeConfig`'s).

    Prints the URL. :func:`start` serves in a background thread instead.
    """
    cfg = build_config(ServeConfig, options, site=site)
    _serve(_server(cfg), cfg)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = ("examples:  skinage serve site/\n"
                     "           skinage serve site/ --port 8080 --isolated\n"
                     "           curl -F image=@face.jpg http://127.0.0.1:8000/api/predict\n"
                     f"POST {API_PATH} takes one image (raw body or multipart), at most {MAX_BYTES:,} bytes, and "
                     "answers the JSON `skinage predict SITE/model.onnx PHOTO --out x.json` writes.")
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    add_config_arguments(parser, ServeConfig)


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(ServeConfig, args)
    _serve(_server(cfg), cfg)
    return 0
