"""Browser tests: the system's chromium driven by Playwright, a static server, a request guard.

* :func:`chromium_executable`, :func:`serve_dir` -- from :mod:`skinage.app.browser` (``skinage app``
  measures its model files in the same browser): the browser binary (Debian's real binary behind its
  shell wrapper), and a static HTTP server for a folder on 127.0.0.1 (random port), with the MIME
  types a page with onnxruntime-web needs and, optionally, the COOP/COEP headers that make it
  cross-origin isolated (several wasm threads).
* :func:`browser_missing` -- skip with the reason, or **fail** under ``CI=true`` (issue 21 point 9:
  CI must run the browser tests, not skip them).
* ``browser`` fixture (session) -- headless chromium launched through Playwright's
  ``executable_path`` with the offline flags (no ``playwright install``: it downloads browsers).
* ``offline_context`` fixture -- a new context whose requests are all recorded and whose requests
  to any host but 127.0.0.1 are aborted (:func:`guard_requests`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import pytest

from skinage.app.browser import MIME_TYPES, OFFLINE_FLAGS, chromium_executable, serve_dir  # noqa: F401  (used by tests)

INSTALL_HINT = "install it with `make setup` as root, or `apt-get install -y chromium`"


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def browser_missing(reason: str):
    """Skip the test with ``reason``; under ``CI=true`` fail it instead (CI must run it)."""
    if in_ci():
        pytest.fail(f"{reason} -- CI=true, so this browser test fails instead of skipping", pytrace=False)
    pytest.skip(reason)


def require_chromium() -> str:
    exe = chromium_executable()
    if exe is None:
        browser_missing(f"no chromium on PATH ({INSTALL_HINT})")
    return exe


def require_playwright():
    """Playwright's sync API, or skip / fail (CI) naming the dev extra."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        browser_missing("the Python package playwright is not installed (pip install -e '.[dev]', or make setup)")
    return sync_playwright


@pytest.fixture(scope="session")
def browser():
    """Headless system chromium through Playwright (as root, Playwright adds --no-sandbox itself)."""
    exe = require_chromium()
    sync_playwright = require_playwright()
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, headless=True, args=OFFLINE_FLAGS)
        try:
            yield b
        finally:
            b.close()


# --------------------------------------------------------------------------- requests


@dataclass
class RequestLog:
    """Every request a context made (workers included), and those aborted for leaving 127.0.0.1."""

    allowed_hosts: tuple = ("127.0.0.1",)
    requests: list = field(default_factory=list)
    blocked: list = field(default_factory=list)

    def is_allowed(self, url: str) -> bool:
        parts = urlsplit(url)
        if parts.scheme in ("data", "blob"):  # made inside the page, not fetched
            return True
        return parts.scheme in ("http", "https", "ws", "wss") and parts.hostname in self.allowed_hosts

    @property
    def foreign(self) -> list:
        """Requests to anywhere but the allowed hosts (should be empty)."""
        return [u for u in self.requests if not self.is_allowed(u)]


def guard_requests(context, allowed_hosts=("127.0.0.1",)) -> RequestLog:
    """Record every request of ``context`` and abort those to any host not in ``allowed_hosts``."""
    log = RequestLog(tuple(allowed_hosts))
    context.on("request", lambda request: log.requests.append(request.url))

    def _route(route):
        url = route.request.url
        if log.is_allowed(url):
            route.continue_()
        else:
            log.blocked.append(url)
            route.abort()

    context.route("**/*", _route)
    return log


@pytest.fixture
def offline_context(browser):
    """(context, RequestLog): a fresh browser context that can reach 127.0.0.1 only."""
    context = browser.new_context()
    log = guard_requests(context)
    try:
        yield context, log
    finally:
        context.close()
