"""onnxruntime-web's runtime files: installed by `make setup` with checksums, and they run a model in chromium."""

from __future__ import annotations

import json
import os
import shutil
import stat
import tarfile

import numpy as np
import pytest

from browser_helpers import browser_missing, serve_dir
from skinage.app import runtime_files as rf


def test_missing_files_name_make_setup(tmp_path, monkeypatch):
    monkeypatch.setenv("SKINAGE_CACHE", str(tmp_path))
    with pytest.raises(rf.RuntimeFilesMissing, match="make setup") as e:
        rf.runtime_files()
    assert "ort.wasm.min.mjs is missing" in str(e.value)
    assert rf.main(["path"]) == 1


def _fake_npm(tmp_path, payload: bytes):
    """An `npm` that 'packs' a tarball with the right file names but other bytes."""
    src = tmp_path / "pkg"
    (src / "package" / "dist").mkdir(parents=True)
    for name in rf.FILES:
        (src / "package" / "dist" / name).write_bytes(payload)
    tgz = tmp_path / "fake.tgz"
    with tarfile.open(tgz, "w:gz") as t:
        t.add(src / "package", arcname="package")
    npm = tmp_path / "npm"
    npm.write_text(f'#!/bin/sh\nwhile [ "$1" != "--pack-destination" ]; do shift; done\ncp {tgz} "$2/onnxruntime-web-{rf.VERSION}.tgz"\n')
    npm.chmod(npm.stat().st_mode | stat.S_IEXEC)
    return str(npm)


def test_a_tarball_with_another_checksum_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("SKINAGE_CACHE", str(tmp_path / "cache"))
    with pytest.raises(RuntimeError, match="refusing to install"):
        rf.install(verbose=False, npm=_fake_npm(tmp_path, b"not the runtime"))
    assert not any((rf.runtime_dir() / n).exists() for n in rf.FILES)


def test_without_npm_setup_only_notes_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SKINAGE_CACHE", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert rf.main(["install", "--quiet", "--if-npm"]) == 0
    assert rf.main(["install", "--quiet"]) == 1
    assert "npm not found" in capsys.readouterr().err


def installed_runtime() -> dict:
    try:
        return rf.runtime_files()
    except rf.RuntimeFilesMissing as e:
        browser_missing(str(e))


def test_installed_files_match_the_pins():
    files = installed_runtime()
    assert sorted(files) == sorted(rf.FILES)
    assert files["ort-wasm-simd-threaded.wasm"].stat().st_size > 10_000_000
    # the entry imports the glue by the name we ship
    assert b"ort-wasm-simd-threaded" in files["ort.wasm.min.mjs"].read_bytes()


# --------------------------------------------------------------------------- in chromium


def _tiny_model(path):
    """Conv -> Relu -> GlobalAveragePool -> Gemm -> Softmax on (1, 3, 16, 16) pixels, fixed weights."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = rng.normal(0, 0.5, (4, 3, 3, 3)).astype(np.float32)
    b = rng.normal(0, 0.1, 4).astype(np.float32)
    fw = rng.normal(0, 1.0, (3, 4)).astype(np.float32)
    fb = rng.normal(0, 0.1, 3).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["pixels", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("GlobalAveragePool", ["r"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Gemm", ["f", "fw", "fb"], ["logits"], transB=1),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=1),
    ]
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [1, 3])],
        [numpy_helper.from_array(a, n) for a, n in ((w, "w"), (b, "b"), (fw, "fw"), (fb, "fb"))])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)


PAGE = """<!doctype html><meta charset="utf-8"><title>ort</title><script type="module" src="./run.mjs"></script>"""
RUN = """
import * as ort from './ort/ort.wasm.min.mjs';
ort.env.wasm.wasmPaths = new URL('./ort/', import.meta.url).href;  // must end with '/'
ort.env.wasm.numThreads = self.crossOriginIsolated ? 2 : 1;
window.runModel = async (pixels) => {
  const session = await ort.InferenceSession.create('./model.onnx', { executionProviders: ['wasm'], graphOptimizationLevel: 'all' });
  const out = await session.run({ pixels: new ort.Tensor('float32', Float32Array.from(pixels), [1, 3, 16, 16]) });
  return { probs: Array.from(out.probs.data), isolated: self.crossOriginIsolated, threads: ort.env.wasm.numThreads };
};
window.ready = true;
"""


@pytest.mark.parametrize("isolated", [False, True], ids=["1-thread", "2-threads-coop-coep"])
def test_onnxruntime_web_runs_a_model_like_python(tmp_path, offline_context, isolated):
    ort_py = pytest.importorskip("onnxruntime")
    files = installed_runtime()
    site = tmp_path / "site"
    (site / "ort").mkdir(parents=True)
    for name, p in files.items():
        shutil.copyfile(p, site / "ort" / name)
    _tiny_model(site / "model.onnx")
    (site / "index.html").write_text(PAGE)
    (site / "run.mjs").write_text(RUN)
    x = np.random.default_rng(1).random((1, 3, 16, 16), dtype=np.float32)
    want = ort_py.InferenceSession(str(site / "model.onnx"), providers=["CPUExecutionProvider"]).run(None, {"pixels": x})[0][0]

    context, log = offline_context
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    with serve_dir(site, isolated=isolated) as base:
        page.goto(base + "index.html")
        page.wait_for_function("window.ready === true", timeout=30_000)
        got = page.evaluate("(x) => window.runModel(x)", x.ravel().tolist())
    assert not errors, errors
    assert got["isolated"] is isolated and got["threads"] == (2 if isolated else 1)
    np.testing.assert_allclose(np.array(got["probs"]), want, atol=1e-5)
    assert not log.blocked and not log.foreign, log.requests
    assert any(u.endswith("/ort/ort-wasm-simd-threaded.wasm") for u in log.requests), log.requests
    print(f"\nort-web {rf.VERSION} ({'2 threads' if isolated else '1 thread'}): probs {np.round(got['probs'], 6)} vs python {np.round(want, 6)}; "
          f"{len(log.requests)} requests, all to 127.0.0.1")
