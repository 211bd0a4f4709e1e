"""The browser-test helpers themselves: the CI rule, the static server, the request guard."""

from __future__ import annotations

import urllib.request

import pytest

from browser_helpers import browser_missing, chromium_executable, serve_dir


def test_missing_browser_skips_locally_and_fails_in_ci(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no chromium"):
        browser_missing("no chromium")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        browser_missing("no chromium")


def test_chromium_is_the_real_binary_not_debians_wrapper():
    exe = chromium_executable()
    if exe is None:
        browser_missing("no chromium on PATH")
    with open(exe, "rb") as f:
        assert f.read(2) != b"#!", f"{exe} is a shell script"


def test_server_types_headers_and_address(tmp_path):
    (tmp_path / "a.wasm").write_bytes(b"\0asm")
    (tmp_path / "b.mjs").write_text("export {};")
    with serve_dir(tmp_path) as base:
        assert base.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(base + "a.wasm") as r:
            assert r.headers["Content-Type"] == "application/wasm"
            assert r.headers["Cross-Origin-Embedder-Policy"] is None
        with urllib.request.urlopen(base + "b.mjs") as r:
            assert r.headers["Content-Type"] == "text/javascript"
    with serve_dir(tmp_path, isolated=True) as base, urllib.request.urlopen(base + "b.mjs") as r:
        assert r.headers["Cross-Origin-Opener-Policy"] == "same-origin"
        assert r.headers["Cross-Origin-Embedder-Policy"] == "require-corp"


def test_guard_records_requests_and_aborts_other_hosts(tmp_path, offline_context):
    (tmp_path / "index.html").write_text(
        "<!doctype html><script>"
        "window.outcome = fetch('http://example.com/x').then(() => 'fetched', () => 'aborted');"
        "</script>"
    )
    context, log = offline_context
    page = context.new_page()
    with serve_dir(tmp_path) as base:
        page.goto(base + "index.html")
        assert page.evaluate("window.outcome") == "aborted"
    assert log.blocked == ["http://example.com/x"]
    assert log.foreign == ["http://example.com/x"]
    assert log.requests[0] == base + "index.html"
