"""benchmarks/bench_infer.py: a --run that is not a trained run is refused at once."""
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _bench_infer():
    spec = importlib.util.spec_from_file_location("bench_infer", ROOT / "benchmarks" / "bench_infer.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_missing_run_is_refused_before_the_speed_part(tmp_path, capsys, monkeypatch):
    mod = _bench_infer()
    called = []
    monkeypatch.setattr(mod, "speed_part", lambda *a, **k: called.append(a))
    assert mod.main(["--run", str(tmp_path / "no-such-run")]) == 2
    assert called == []  # refused before minutes of timing, not after
    err = capsys.readouterr().err
    assert "no-such-run" in err and "run_all.py --only utk --runs" in err


def test_out_names_the_result_files(tmp_path, monkeypatch):
    """--out NAME writes NAME.json / NAME.md, leaving the committed bench_infer.* alone; a path is refused."""
    import json

    import pytest

    mod = _bench_infer()
    monkeypatch.setattr(mod, "RESULTS", tmp_path)
    monkeypatch.setattr(mod, "speed_part", lambda *a, **k: {})
    monkeypatch.setattr(mod, "check_targets", lambda speed, fid: {})
    monkeypatch.setattr(mod, "render", lambda res: "# bench\n")
    assert mod.main(["--skip-fidelity", "--models", "mobilenet_v2", "--out", "bench_infer_noise"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bench_infer_noise.json", "bench_infer_noise.md"]
    assert json.loads((tmp_path / "bench_infer_noise.json").read_text())["fidelity"] is None
    with pytest.raises(SystemExit):
        mod.main(["--skip-fidelity", "--out", "../elsewhere"])
