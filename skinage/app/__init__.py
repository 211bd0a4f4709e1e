"""The in-browser page (issue 23): its static files and what it needs to run offline.

* ``skinage/app/web/*.mjs`` -- the page's ES modules (no bundler): ``resample.mjs`` (Pillow's
  resize, bit-exact), ``boxes.mjs`` (``load_crop``'s box arithmetic and crop), ``exif.mjs``
  (EXIF orientation).
* :mod:`skinage.app.runtime_files` -- onnxruntime-web's three runtime files, installed by
  ``make setup`` from the npm registry into the cache with their checksums checked.
"""

from pathlib import Path

#: The folder of the page's JavaScript modules.
WEB_DIR = Path(__file__).resolve().parent / "web"

__all__ = ["WEB_DIR"]
