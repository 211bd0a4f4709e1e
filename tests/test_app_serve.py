"""`skinage serve`: the site's files and their types, nothing outside the site, POST /api/predict = skinage predict."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest
from PIL import Image

from conftest import ROOT, shared_data

from skinage.app.handler import MAX_BYTES
from skinage.app.serve import ServeConfig, start
from skinage.runtime.predict import predict

pytest.importorskip("onnxruntime")

FILES = {  # site file -> the type it must be served with (the page's pieces)
    "index.html": "text/html",
    "js/app.mjs": "text/javascript",
    "js/find/finder.mjs": "text/javascript",
    "sw.js": "text/javascript",
    "ort/ort-wasm-simd-threaded.wasm": "application/wasm",
    "model.onnx": "application/octet-stream",
    "card.json": "application/json",
    "app.css": "text/css",
    "icon.png": "image/png",
    "icon.svg": "image/svg+xml",
    "manifest.webmanifest": "application/manifest+json",
}


def _face_copy(src: Path, dst: Path) -> Path:
    """The same network, its metadata saying it reads the found face (so predict runs the finder first)."""
    import onnx

    m = onnx.load(src)
    for prop in m.metadata_props:
        meta = json.loads(prop.value) if prop.key in ("skinage", "preprocessing") else None
        if prop.key == "skinage":
            meta["preprocessing"]["region"] = "face"
        elif prop.key == "preprocessing":
            meta["region"] = "face"
        if meta is not None:
            prop.value = json.dumps(meta)
    onnx.save(m, dst)
    return dst


def _site(root: Path, model: Path, finder: bool = False) -> Path:
    root.mkdir(parents=True)
    for name in FILES:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(f"{name} {uuid.uuid4()}\n".encode())
    Image.new("RGB", (4, 4), (200, 10, 10)).save(root / "icon.png")
    shutil.copyfile(model, root / "model.onnx")
    if finder:  # the site's own copies of the finder, as `skinage app` writes them
        (root / "models").mkdir()
        for f in (ROOT / "assets" / "finder").glob("*.onnx"):
            shutil.copyfile(f, root / "models" / f.name)
    return root


@pytest.fixture(scope="module")
def sites(tmp_path_factory):
    pytest.importorskip("torch")
    from export_helpers import make_tiny_run
    from skinage.export.formats import export_onnx
    from skinage.models.checkpoint import load_checkpoint

    base = tmp_path_factory.mktemp("serve")
    tiny = make_tiny_run(base / "tiny")
    plain = export_onnx(*load_checkpoint(tiny["run"]), base / "plain.onnx")
    face = _face_copy(plain, base / "face.onnx")
    outside = base / "secret.txt"
    outside.write_text("SECRET outside the site\n")
    site = _site(base / "plain", plain)
    os.symlink(outside, site / "link-out.txt")
    os.symlink(base, site / "dir-out")
    os.symlink(site / "card.json", site / "link-in.json")
    return {"plain": site, "face": _site(base / "face", face, finder=True), "outside": outside, "base": base,
            "images": tiny["rows"]}


@pytest.fixture(scope="module")
def plain_server(sites):
    server = start(sites["plain"], port=0, log=False)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def face_server(sites):
    server = start(sites["face"], port=0, log=False)
    yield server
    server.stop()


def request(server, method, path, body=None, headers=None):
    """(status, headers, body bytes) of one request on a fresh connection (paths sent exactly as given)."""
    conn = http.client.HTTPConnection(*server.server_address[:2], timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def multipart(files: list[tuple[str, str, bytes, str]], fields=()) -> tuple[bytes, str]:
    """A multipart/form-data body: files (field, file name, bytes, type) and plain fields; (body, Content-Type)."""
    b = uuid.uuid4().hex
    out = b""
    for name, value in fields:
        out += f'--{b}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
    for field, fname, data, ctype in files:
        out += (f'--{b}\r\nContent-Disposition: form-data; name="{field}"; filename="{fname}"\r\n'
                f"Content-Type: {ctype}\r\n\r\n").encode() + data + b"\r\n"
    return out + f"--{b}--\r\n".encode(), f"multipart/form-data; boundary={b}"


def post_json(server, body, ctype="image/jpeg", query=""):
    status, headers, data = request(server, "POST", "/api/predict" + query, body, {"Content-Type": ctype})
    assert headers["content-type"].startswith("application/json")
    assert b"Traceback" not in data
    return status, json.loads(data)


# ------------------------------------------------------------------------------------------ files


def test_site_files_are_served_with_their_types(sites, plain_server):
    assert ServeConfig().host == "127.0.0.1" and plain_server.server_address[0] == "127.0.0.1"
    for name, ctype in FILES.items():
        status, headers, body = request(plain_server, "GET", "/" + name)
        assert status == 200, name
        assert headers["content-type"].split(";")[0] == ctype, name
        assert body == (sites["plain"] / name).read_bytes()
        assert headers["x-content-type-options"] == "nosniff" and "cross-origin-opener-policy" not in headers
    status, headers, body = request(plain_server, "GET", "/")
    assert status == 200 and body == (sites["plain"] / "index.html").read_bytes()
    status, headers, body = request(plain_server, "HEAD", "/ort/ort-wasm-simd-threaded.wasm")
    assert status == 200 and body == b"" and headers["content-type"] == "application/wasm"
    assert int(headers["content-length"]) == (sites["plain"] / "ort/ort-wasm-simd-threaded.wasm").stat().st_size
    assert request(plain_server, "GET", "/js")[0] == 404  # a folder without index.html: no listing
    assert request(plain_server, "GET", "/nothing.js")[0] == 404
    assert request(plain_server, "GET", "/link-in.json")[2] == (sites["plain"] / "card.json").read_bytes()


@pytest.mark.parametrize("path", [
    "/../secret.txt", "/js/../../secret.txt", "/%2e%2e/secret.txt", "/%2E%2E%2Fsecret.txt", "/js/..%2f..%2fsecret.txt",
    "/..%5csecret.txt", "/%252e%252e/secret.txt", "/link-out.txt", "/dir-out/secret.txt", "/js%00/app.mjs",
    "/%ff%fe", "//etc/passwd", "/" + "../" * 12 + "etc/passwd",
])
def test_no_file_outside_the_site_is_served(sites, plain_server, path):
    status, _, body = request(plain_server, "GET", path)
    assert status == 404
    assert b"SECRET" not in body and b"root:" not in body


def test_isolated_sends_coop_and_coep(sites):
    server = start(sites["plain"], port=0, log=False, isolated=True)
    try:
        for path in ("/", "/ort/ort-wasm-simd-threaded.wasm", "/js/app.mjs"):
            _, headers, _ = request(server, "GET", path)
            assert headers["cross-origin-opener-policy"] == "same-origin"
            assert headers["cross-origin-embedder-policy"] == "require-corp"
    finally:
        server.stop()


# ------------------------------------------------------------------------------------------ the API


def _cli_json(site: Path, photo: Path, tmp_path: Path, monkeypatch) -> dict:
    """`skinage predict SITE/model.onnx NAME --out x.json` run beside the photo (so its path is its name)."""
    monkeypatch.chdir(photo.parent)
    predict(str(site / "model.onnx"), photo.name, out=tmp_path / "cli.json")
    return json.loads((tmp_path / "cli.json").read_text())


@pytest.mark.parametrize("which", ["plain", "face"])
def test_raw_body_and_multipart_answer_skinage_predicts_json(sites, plain_server, face_server, which, tmp_path,
                                                             monkeypatch):
    server = {"plain": plain_server, "face": face_server}[which]
    photo = tmp_path / "005_03.jpg"
    shutil.copyfile(shared_data("london-5view") / "images" / "005_03.jpg", photo)
    expected = _cli_json(sites[which], photo, tmp_path, monkeypatch)
    assert expected["n_ok"] == 1 and expected["model"] == str(sites[which] / "model.onnx")
    if which == "face":
        assert expected["predictions"][0]["finder"] == "ok" and expected["predictions"][0]["bbox"] is not None
    data = photo.read_bytes()
    assert post_json(server, data, query="?name=005_03.jpg") == (200, expected)
    assert post_json(server, data, "application/octet-stream", "?name=005_03.jpg") == (200, expected)
    body, ctype = multipart([("image", "005_03.jpg", data, "image/jpeg")], fields=[("note", "hello")])
    assert post_json(server, body, ctype) == (200, expected)
    status, doc = post_json(server, data)  # no name: the row says <upload>, the rest is the same
    row, want = doc["predictions"][0], expected["predictions"][0]
    assert (row["path"], row["input"], row["subject"]) == ("<upload>", "<upload>", "<upload>")
    assert {k: v for k, v in row.items() if k not in ("path", "input", "subject")} == \
        {k: v for k, v in want.items() if k not in ("path", "input", "subject")}


def test_a_photo_without_a_face_gets_the_finders_status(sites, face_server, tmp_path, monkeypatch):
    photo = tmp_path / "sky.jpg"
    Image.new("RGB", (320, 240), (90, 140, 200)).save(photo)
    expected = _cli_json(sites["face"], photo, tmp_path, monkeypatch)
    status, doc = post_json(face_server, photo.read_bytes(), query="?name=sky.jpg")
    assert (status, doc) == (200, expected)
    row = doc["predictions"][0]
    assert (row["status"], row["finder"], row["faces"], row["class"]) == ("no_face", "no_face", 0, None)
    assert doc["n_failed"] == 1 and row["error"]


def _raw_http(server, head: bytes, chunks=(), read=True) -> tuple[int, dict]:
    """Send a hand-made request (headers, then body pieces); the status and JSON of the answer."""
    with socket.create_connection(server.server_address[:2], timeout=30) as s:
        s.sendall(head)
        try:
            for c in chunks:
                s.sendall(c)
        except (BrokenPipeError, ConnectionResetError):  # the server stopped reading: its answer is there
            pass
        f = s.makefile("rb")
        status = int(f.readline().split()[1])
        headers = {}
        for line in iter(f.readline, b"\r\n"):
            k, _, v = line.decode().partition(":")
            headers[k.strip().lower()] = v.strip()
        body = f.read(int(headers["content-length"]))
    return status, json.loads(body)


def test_uploads_above_20_mb_are_refused_before_or_while_reading(plain_server):
    head = (f"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
            f"Content-Length: {MAX_BYTES + 1}\r\n\r\n").encode()
    assert _raw_http(plain_server, head)[0] == 413  # from the header alone: no body sent
    expect = head.replace(b"\r\n\r\n", b"\r\nExpect: 100-continue\r\n\r\n")
    status, doc = _raw_http(plain_server, expect)
    assert status == 413 and doc["error"] == "too_large" and "20,000,000" in doc["message"]
    chunked = b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nTransfer-Encoding: chunked\r\n\r\n"
    mb = b"%x\r\n" % (1 << 20) + b"\0" * (1 << 20) + b"\r\n"
    assert _raw_http(plain_server, chunked, [mb] * 20 + [b"0\r\n\r\n"])[0] == 413  # 20 MiB > 20 MB
    status, doc = _raw_http(plain_server, chunked, [mb] * 3 + [b"0\r\n\r\n"])  # 3 MiB chunked: read, not an image
    assert status == 422 and doc["error"] == "unreadable_image"
    status, doc = post_json(plain_server, b"\0" * MAX_BYTES)  # exactly the limit is read
    assert status == 422 and "non-image" in doc["message"]


def test_non_images_get_415_or_422_with_the_reason(plain_server, sites):
    for ctype in ("text/plain", "application/json", "application/x-www-form-urlencoded"):
        status, doc = post_json(plain_server, b'{"a": 1}', ctype)
        assert status == 415 and doc["error"] == "unsupported_media_type" and ctype in doc["message"]
    body, ctype = multipart([("image", "cv.pdf", b"%PDF-1.4", "application/pdf")])
    assert post_json(plain_server, body, ctype)[0] == 415
    status, doc = post_json(plain_server, b"GIF89a but not really")
    assert status == 422 and doc["message"].startswith("corrupt")
    jpeg = (shared_data("london-5view") / "images" / "011_03.jpg").read_bytes()
    status, doc = post_json(plain_server, jpeg[:5000])
    assert status == 422 and "truncated" in doc["message"]
    status, doc = post_json(plain_server, b"")
    assert status == 422 and doc["error"] == "empty"


def test_malformed_requests_are_json_errors(plain_server):
    body, ctype = multipart([], fields=[("note", "no file")])
    assert post_json(plain_server, body, ctype)[1]["error"] == "no_file"
    png = (Path(__file__).parent / "test_app_serve.py").read_bytes()[:10]
    body, ctype = multipart([("a", "1.jpg", png, "image/jpeg"), ("b", "2.jpg", png, "image/jpeg")])
    assert post_json(plain_server, body, ctype)[1]["error"] == "several_files"
    assert post_json(plain_server, b"x", "multipart/form-data")[0] == 400  # no boundary
    head = b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n\r\n"
    assert _raw_http(plain_server, head)[0] == 411
    status, headers, _ = request(plain_server, "GET", "/api/predict")
    assert status == 405 and headers["allow"] == "POST"
    status, headers, _ = request(plain_server, "POST", "/index.html", b"x", {"Content-Type": "image/jpeg"})
    assert status == 405 and headers["allow"] == "GET, HEAD"
    assert request(plain_server, "POST", "/nope", b"x", {"Content-Type": "image/jpeg"})[0] == 404
    status, headers, data = request(plain_server, "DELETE", "/index.html")
    assert status == 501 and headers["content-type"].startswith("application/json")


def test_an_internal_error_is_a_generic_500_logged_on_stderr(plain_server, monkeypatch, capsys):
    def broken(data, name=None):
        raise RuntimeError("a detail the client must not see")

    monkeypatch.setattr(plain_server.service, "predict", broken)
    status, doc = post_json(plain_server, b"\xff\xd8 anything")
    assert status == 500 and doc == {"error": "internal", "message": "internal error (see the server's log)",
                                     "status": 500}
    err = capsys.readouterr().err
    assert "Traceback" in err and "a detail the client must not see" in err


# ------------------------------------------------------------------------------------------ the command


def _snapshot(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): (p.lstat().st_size, p.lstat().st_mtime_ns)
            for p in sorted(folder.rglob("*"))}


def test_the_command_prints_its_url_writes_nothing_and_stops_on_ctrl_c(sites, tmp_path):
    """A real `skinage serve` process: answering writes nothing to TMPDIR, its working folder or the site, and an
    audit hook reports every file the process opens for writing once serving (there must be none).

    (onnxruntime's import leaves a 51-byte id file ``.ses`` in TMPDIR when none is there: before serving, once.)"""
    tmp, cwd = tmp_path / "tmp", tmp_path / "cwd"
    tmp.mkdir(), cwd.mkdir()
    before = _snapshot(sites["face"])
    code = (
        "import os, sys\n"
        "WRITE = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC\n"
        "armed = []\n"
        "def hook(event, args):\n"
        "    if armed and event == 'open' and (args[1] and any(c in args[1] for c in 'wax+')\n"
        "                                      or not args[1] and args[2] & WRITE):\n"
        "        print('WROTE', args[0], file=sys.stderr, flush=True)\n"
        "sys.addaudithook(hook)\n"
        "import skinage.app.serve as s\n"
        "orig = s.SiteServer.serve_forever\n"
        "def armed_serve(self, *a, **k):\n"
        "    armed.append(1)\n"
        "    return orig(self, *a, **k)\n"
        "s.SiteServer.serve_forever = armed_serve\n"
        "from skinage.cli import main\n"
        f"sys.exit(main(['serve', {str(sites['face'])!r}, '--port', '0']))\n"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT), TMPDIR=str(tmp))
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("skinage serve: http://127.0.0.1:"), line + proc.stderr.read()
        url = line.split()[2]
        started = sorted(tmp.iterdir())
        host, port = url.removeprefix("http://").strip("/").split(":")

        class Addr:
            server_address = (host, int(port))

        photo = (shared_data("london-5view") / "images" / "004_03.jpg").read_bytes()
        body, ctype = multipart([("image", "004_03.jpg", photo, "image/jpeg")])
        assert post_json(Addr, body, ctype)[1]["predictions"][0]["status"] == "ok"
        assert post_json(Addr, photo)[0] == 200
        assert post_json(Addr, b"not an image")[0] == 422
        assert request(Addr, "GET", "/js/app.mjs")[0] == 200
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "skinage serve: stopped" in err and "Traceback" not in err and "WROTE" not in err
    assert '"POST /api/predict HTTP/1.1" 200' in err  # the request log
    assert sorted(tmp.iterdir()) == started and {p.name for p in started} <= {".ses"} and list(cwd.iterdir()) == []
    assert _snapshot(sites["face"]) == before


def test_a_taken_port_is_a_clear_error(sites, plain_server):
    from skinage.config import ConfigError

    with pytest.raises(ConfigError, match="in use"):
        start(sites["plain"], port=plain_server.server_address[1], log=False)
    with pytest.raises(ConfigError, match="no model.onnx"):
        empty = sites["base"] / "empty-site"
        empty.mkdir(exist_ok=True)
        (empty / "index.html").write_text("x")
        start(empty, port=0)


def test_concurrent_uploads_get_the_same_answers(sites, face_server):
    """Several clients at once (more than --workers): every answer is the one a lone request gets."""
    london = shared_data("london-5view") / "images"
    photos = [(london / n).read_bytes() for n in ("004_03.jpg", "005_03.jpg", "010_01.jpg")]
    alone = [post_json(face_server, p) for p in photos]
    got = [None] * 9

    def one(i):
        got[i] = post_json(face_server, photos[i % 3])

    threads = [threading.Thread(target=one, args=(i,)) for i in range(9)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert got == [alone[i % 3] for i in range(9)]
    assert [d["predictions"][0]["status"] for _, d in alone] == ["ok", "ok", "no_face"]  # 010_01: a profile


# ------------------------------------------------------------------------------------------ a site of `skinage app`


@pytest.fixture(scope="module")
def app_site(tmp_path_factory):
    """A site written by `skinage app` (a tiny run of the whole image; no browser measurement, no evaluation)."""
    pytest.importorskip("torch")
    from export_helpers import make_tiny_run
    from skinage.app.runtime_files import RuntimeFilesMissing, runtime_files
    from skinage.cli import main

    try:
        runtime_files()
    except RuntimeFilesMissing as e:
        pytest.skip(str(e))
    root = tmp_path_factory.mktemp("serve-app")
    tiny = make_tiny_run(root, steps=20)
    site = root / "site"
    assert main(["app", str(tiny["run"]), "--out", str(site), "--measure", "0", "--no-evaluate"]) == 0
    server = start(site, port=0, log=False)
    yield site, server
    server.stop()


TYPES = {".html": "text/html", ".mjs": "text/javascript", ".js": "text/javascript", ".wasm": "application/wasm",
         ".onnx": "application/octet-stream", ".json": "application/json", ".css": "text/css", ".svg": "image/svg+xml",
         ".webmanifest": "application/manifest+json"}


def test_every_file_of_a_skinage_app_site_is_served_with_its_type(app_site, tmp_path, monkeypatch):
    site, server = app_site
    files = [p for p in sorted(site.rglob("*")) if p.is_file()]
    assert {p.suffix for p in files} <= set(TYPES)
    for p in files:
        rel = p.relative_to(site).as_posix()
        status, headers, body = request(server, "GET", "/" + rel)
        assert status == 200 and headers["content-type"].split(";")[0] == TYPES[p.suffix], rel
        assert body == p.read_bytes(), rel
    photo = tmp_path / "004_03.jpg"
    shutil.copyfile(shared_data("london-5view") / "images" / "004_03.jpg", photo)
    assert post_json(server, photo.read_bytes(), query="?name=004_03.jpg") == \
        (200, _cli_json(site, photo, tmp_path, monkeypatch))


@pytest.mark.parametrize("isolated", [False, True])
def test_the_page_runs_when_served_by_skinage_serve(app_site, offline_context, browser, isolated):
    """In chromium: the page loads from skinage serve (wasm compiled from application/wasm), grades a photo like
    Python, and with --isolated is cross-origin isolated (so it may use more than one wasm thread)."""
    site, plain = app_site
    server = start(site, port=0, log=False, isolated=True) if isolated else plain
    try:
        context, log = offline_context
        page = context.new_page()
        page.goto(server.url + "index.html")
        page.wait_for_selector("body[data-ready='true']", state="attached", timeout=60_000)
        assert page.evaluate("() => self.crossOriginIsolated") is isolated
        photo = shared_data("london-5view") / "images" / "004_03.jpg"
        page.set_input_files("#photo", str(photo))
        page.wait_for_selector("#result[data-n='1']", state="attached", timeout=60_000)
        d = page.evaluate("() => Object.assign({}, document.getElementById('result').dataset)")
        want = predict(str(site / "model.onnx"), photo)[0]
        assert (d["status"], d["class"]) == (want["status"], want["class"])
        assert not log.foreign
    finally:
        if isolated:
            server.stop()
