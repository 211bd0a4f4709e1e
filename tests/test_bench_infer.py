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
