"""The in-browser page (issue 23): ``skinage app`` writes it as a static site, ``skinage serve`` serves it.

* :mod:`skinage.app.app` -- the ``app`` command: a trained run -> a site (``skinage app RUN --out SITE``).
* :mod:`skinage.app.serve` -- the ``serve`` command: the site on 127.0.0.1 and ``POST /api/predict``
  (:mod:`skinage.app.handler`: its HTTP side).
* :mod:`skinage.app.choose` -- which model file the page ships (fp32 / fp16-storage / int8), measured.
* :mod:`skinage.app.card` -- ``card.json``, the model card the page shows.
* :mod:`skinage.app.site` -- the site's files and layout; :mod:`skinage.app.browser` -- chromium and a
  static server for measuring in a browser.
* ``skinage/app/web/*.mjs`` -- the page's ES modules (no bundler): ``resample.mjs`` (Pillow's resize,
  bit-exact), ``boxes.mjs`` (``load_crop``'s box arithmetic and crop), ``exif.mjs`` (EXIF orientation),
  ``find/*.mjs`` (the face finder, a port of :mod:`skinage.find`), ``classify.mjs`` (Preprocess, class rule,
  too_dark), ``onnxmeta.mjs`` (the ONNX file's metadata), ``pipeline.mjs`` (one photo), ``view.mjs`` and
  ``app.mjs`` (the page); ``web/site/`` the root files (``index.html``, CSS, service worker).
* :mod:`skinage.app.runtime_files` -- onnxruntime-web's three runtime files, installed by
  ``make setup`` from the npm registry into the cache with their checksums checked.

``skinage.app`` is this package and, called, the ``app`` command's function (``skinage.app(run, out=...)``).
"""

from pathlib import Path

from ..commands import callable_module

#: The folder of the page's JavaScript modules.
WEB_DIR = Path(__file__).resolve().parent / "web"

__all__ = ["WEB_DIR"]

callable_module(__name__, "app")
