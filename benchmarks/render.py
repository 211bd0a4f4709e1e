#!/usr/bin/env python
"""The benchmark results as Markdown: the JSON files of ``benchmarks/results/`` (written by
``benchmarks/run_all.py``) -> ``docs/results/benchmarks.md`` (every table) and the results table of the README.

Nothing here runs a model; ``run_all.py`` calls :func:`write_results` after each section, and

    python benchmarks/render.py            # re-render from the JSON files
    python benchmarks/render.py --check    # exit 1 when the Markdown is not what the JSON files give
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # suite.py beside this file
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # the skinage beside it

from suite import (DOCS_RESULTS, RESULTS, ROOT, SECTIONS, TARGETS, entry_size, forehead_specs,  # noqa: E402
                   utk_specs)

TABLES = DOCS_RESULTS / "benchmarks.md"
README = ROOT / "README.md"
README_START = "<!-- results:start (written by benchmarks/render.py from benchmarks/results/*.json) -->"
README_END = "<!-- results:end -->"
#: the start marker matches with any text after "results:start"
_START_PREFIX = "<!-- results:start"


def load_sections(results: Path = RESULTS) -> dict[str, dict]:
    """The JSON result of each section present in ``results``."""
    out = {}
    for name in SECTIONS:
        p = results / f"{name}.json"
        if p.exists():
            try:
                out[name] = json.loads(p.read_text())
            except ValueError:
                pass
    return out


# ----------------------------------------------------------------------------- cells
def num(v, nd=3):
    if v is None or (isinstance(v, float) and v != v):
        return "–"
    s = f"{v:.{nd}f}"
    return s[1:] if s.startswith("-") and float(s) == 0 else s  # no "-0.000"


def num_ci(m: dict | None, key: str, nd=3) -> str:
    """``value [low, high]`` of ``m[key]`` and its 95 % interval."""
    if not m or m.get(key) is None:
        return "–"
    ci = (m.get("ci") or {}).get(key)
    s = num(m[key], nd)
    if ci and ci[0] is not None:
        s += f" [{num(ci[0], nd)}, {num(ci[1], nd)}]"
    return s


def _size(e: dict, fmt: str) -> str:
    b = (e.get("size_bytes") or {}).get(fmt)
    return "–" if not b else f"{b / 1e6:.2f}"


def _lat(e: dict, fmt: str) -> str:
    v = (e.get("latency_ms") or {}).get(fmt)
    return "–" if v is None else f"{v:.1f}"


def _beats(m: dict | None, b: dict | None, key: str) -> bool | None:
    """True when the model's CI lies entirely above the baseline's (MAE: below)."""
    if not m or not b:
        return None
    cm, cb = (m.get("ci") or {}).get(key), (b.get("ci") or {}).get(key)
    if not cm or not cb:
        return None
    return cm[1] < cb[0] if key == "mae" else cm[0] > cb[1]


def _head(e: dict) -> str:
    o = e.get("options") or {}
    h = "x".join(str(v) for v in (o.get("hidden") or [])) or "linear"
    if o.get("ordinal"):
        h += f" {o['ordinal']}"
    return h


def _weights(e: dict) -> str:
    w = str(e.get("weights_from") or "–")
    return "imagenet" if w.startswith("imagenet") else w


# ----------------------------------------------------------------------------- docs/results/benchmarks.md
def model_table(entries: list[dict]) -> list[str]:
    """One row per run. "int8 agrees": top-1 agreement of the int8 file with the fp32 ONNX file on the
    validation images (export's parity check)."""
    # "val QWK" is what chooses the best model and the teacher; the test columns are only reported
    lines = ["| run | model | mode | px | head | weights | val QWK | test n | test acc [95% CI] | macro-F1 | QWK [95% CI] | "
             "MAE | train s | int8 MB | int8 ms | int8 agrees | > baselines |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    marked = False
    for e in entries:
        t = e.get("test") or {}
        beats = []
        for bname, b in (e.get("baselines") or {}).items():
            ok = [_beats(t, b, k) for k in ("accuracy", "qwk")]
            if all(x is True for x in ok):
                beats.append(True)
            elif any(x is False for x in ok):
                beats.append(False)
        verdict = "–" if not beats else ("yes" if all(beats) else "**no**")
        mode = e["mode"] + (f" ({e['label']})" if e.get("label") else "")
        # an ordinal head scored (before the rank rule reached evaluate) by its most probable class
        old_rule = bool((e.get("options") or {}).get("ordinal")) and not e.get("class_rule")
        marked |= old_rule
        lines.append(
            f"| {e['name']}{' †' if old_rule else ''} | {e['model']} | {mode} | {entry_size(e) or '–'} | {_head(e)} | "
            f"{_weights(e)} | {num((e.get('val') or {}).get('qwk'))} | {t.get('n') or '–'} | {num_ci(t, 'accuracy')} | "
            f"{num(t.get('f1_macro'))} | {num_ci(t, 'qwk')} | {num(t.get('mae'))} | {num(e.get('train_time_s'), 0)} | "
            f"{_size(e, 'onnx int8')} | {_lat(e, 'onnx int8')} | "
            f"{'–' if e.get('int8_agreement') is None else '%.1f %%' % (100 * e['int8_agreement'])} | {verdict} |")
    if marked:
        lines += ["", "† an ordinal head scored before 2026-12-02: its test figures and int8 agreement read each "
                      "image's class as the most probable one, not as its rank (the number of k with P(y > k) > 0.5), "
                      "the rule training chose its best epoch by and that evaluate, export and predict use now. Its run "
                      "folder was not on the machine where the other runs were scored again (`--rescore`)."]
    return lines


def baseline_table(entries: list[dict]) -> list[str]:
    seen = set()
    lines = ["| task | baseline | test acc [95% CI] | macro-F1 | QWK [95% CI] | MAE |", "|---|---|---|---|---|---|"]
    for e in entries:
        for name, b in (e.get("baselines") or {}).items():
            if (e["task"], name) in seen:
                continue
            seen.add((e["task"], name))
            lines.append(f"| {e['task']} | {name} | {num_ci(b, 'accuracy')} | {num(b.get('f1_macro'))} | "
                         f"{num_ci(b, 'qwk')} | {num(b.get('mae'))} |")
    return lines if len(lines) > 2 else []


def targets_block(entries: list[dict]) -> list[str]:
    u4 = [e for e in entries if e["task"] == "utk4" and e.get("test")]
    if not u4:
        return []
    out = ["", "**Targets of issue 6 (utkface-age test split, 4 levels):**", ""]
    with_val = [e for e in u4 if (e.get("val") or {}).get("qwk") is not None]
    chosen = max(with_val, key=lambda e: e["val"]["qwk"]) if with_val else max(u4, key=lambda e: e["test"]["qwk"] or 0)
    how = "chosen by validation QWK" if with_val else "no validation figures recorded: best test QWK"
    t = chosen["test"]
    dq, da = t["qwk"] - TARGETS["qwk"], t["accuracy"] - TARGETS["accuracy"]
    out.append(f"- best model ({chosen['name']}, {how}): QWK {t['qwk']:.3f} (target >= {TARGETS['qwk']}: "
               f"{'met' if dq >= 0 else f'missed by {-dq:.3f}'}), accuracy {t['accuracy']:.3f} (target >= "
               f"{TARGETS['accuracy']}: {'met' if da >= 0 else f'missed by {-da:.3f}'})")
    stu = [e for e in u4 if e["mode"] == "distill"]
    for s in stu:
        # the teacher's own entry, not one that re-scores its weights with test-time augmentation
        teacher = next((e for e in entries if e.get("run") == s.get("teacher") and not e.get("tta")), None)
        if teacher and teacher.get("test") and teacher["test"].get("n") != s["test"].get("n"):
            out.append(f"- student {s['name']} vs teacher {teacher['name']}: not compared (the teacher's run was redone "
                       f"since, on another split: {teacher['test'].get('n')} vs {s['test'].get('n')} test images)")
        elif teacher and teacher.get("test") and (teacher.get("date") or "") > (s.get("date") or ""):
            # dates are "YYYY-MM-DD HH:MM UTC": in that form text order is time order
            out.append(f"- student {s['name']} vs teacher {teacher['name']}: not compared (the teacher's run was redone "
                       f"on {teacher.get('date')}, after this student learnt from its earlier weights)")
        elif teacher and teacher.get("test"):
            gap = teacher["test"]["qwk"] - s["test"]["qwk"]
            ts, ss = (teacher.get("size_bytes") or {}).get("onnx int8"), (s.get("size_bytes") or {}).get("onnx int8")
            ratio = ts / ss if ts and ss else None
            vq = [(e.get("val") or {}).get("qwk") for e in (teacher, s)]
            vgap = f"; on validation {vq[0] - vq[1]:.3f}" if None not in vq else ""
            out.append(f"- student {s['name']} vs teacher {teacher['name']}: QWK gap {gap:.3f} (target <= "
                       f"{TARGETS['student_qwk_gap']}: {'met' if gap <= TARGETS['student_qwk_gap'] else 'missed'}"
                       f"{vgap}); "
                       f"int8 size ratio {('%.2fx' % ratio) if ratio else '–'} (target >= 2x)")
    if not stu:
        out.append("- squeezenet1_1 student: not run in this suite run (full suite only)")
    bad = []
    for e in u4:
        for bname, b in (e.get("baselines") or {}).items():
            for k in ("accuracy", "qwk"):
                if _beats(e["test"], b, k) is False:
                    bad.append(f"{e['name']} vs {bname} ({k})")
    out.append("- every model above every baseline with non-overlapping 95% CIs (accuracy and QWK): "
               + ("yes" if not bad else "no: " + ", ".join(bad)))
    return out


def render_markdown(sections: dict[str, dict]) -> str:
    L = ["# skinage benchmark results", "",
         "Written by `benchmarks/render.py` from the JSON results in `benchmarks/results/` (which "
         "`benchmarks/run_all.py` writes); do not edit by hand. Each section records its own date, command and "
         "machine. What the figures mean and the notes on each run: [README.md](README.md).", ""]
    machines = {json.dumps({k: v for k, v in s.get("machine", {}).items() if k != "git_commit"}, sort_keys=True)
                for s in sections.values()}
    for mj in sorted(machines):  # a set: sorted, so that the file does not change from one call to the next
        m = json.loads(mj)
        L.append(f"Machine: {m.get('cpu')}, {m.get('cores')} cores, flags {' '.join(m.get('cpu_flags', []))}; "
                 f"torch {m.get('torch')}, onnxruntime {m.get('onnxruntime')}, Python {m.get('python')}.")
    L.append("")
    for name in SECTIONS:
        s = sections.get(name)
        if not s:
            continue
        L += [f"## {name}", "", f"{s['date']}; `{s['command']}`; commit {s.get('machine', {}).get('git_commit')}"
              + (" (partial)" if s.get("partial") else "")
              + ("; quick suite" if s.get("quick") else ""), ""]
        if name == "aihub":
            L += [f"{s['n_rows']} rows, {s['n_people']} people, classes {s['classes']} with counts "
                  f"{s['class_counts']}; split by person {s['split_counts']}.", "",
                  "| protocol | baseline | acc [95% CI] | macro-F1 | QWK [95% CI] | MAE | n |",
                  "|---|---|---|---|---|---|---|"]
            for e in s["entries"]:
                t = e["test"]
                L.append(f"| {e['protocol']} | {e['baseline']} | {num_ci(t, 'accuracy')} | {num(t.get('f1_macro'))} | "
                         f"{num_ci(t, 'qwk')} | {num(t.get('mae'))} | {t.get('n')} |")
            L.append("")
            continue
        if name == "speed":
            for script, r in s.get("benchmarks", {}).items():
                L.append(f"- `{script}`: {r.get('status')}" + (f" ({r.get('seconds')} s)" if r.get("seconds") else ""))
                for fn, j in (r.get("results") or {}).items():
                    if not isinstance(j, dict):
                        continue
                    when = j.get("date") or j.get("finished") or j.get("started") or "?"
                    L.append(f"  - `{fn}` ({when}" + (f"; `{j['command']}`" if j.get("command") else "") + ")")
                    targets = j.get("targets")
                    if isinstance(targets, dict):
                        for k, v in targets.items():
                            if isinstance(v, dict):
                                met = v.get("met")
                                L.append(f"    - {k}: {v.get('value')} (target {v.get('target')}: "
                                         f"{'met' if met else 'missed' if met is False else '?'})")
                    elif "headline_speedup" in j:
                        L.append(f"    - speed-up {j['headline_speedup']}x (target {j.get('target_speedup')}x: "
                                 f"{'met' if j.get('meets_target') else 'missed'})")
                    elif j.get("summary"):
                        L.append(f"    - {json.dumps(j['summary'])[:400]}")
                    else:
                        for k, v in j.items():
                            if isinstance(v, dict) and "target" in v:
                                val = next((v[x] for x in ("speedup", "ratio", "value") if x in v), None)
                                L.append(f"    - {k}: {val} (target {v['target']})")
            L.append("")
            continue
        entries = s.get("entries", [])
        cmds = sorted({e["command"] for e in entries if e.get("command")} - {s["command"]})
        if cmds:
            L += ["Some runs come from other calls: " + "; ".join(f"`{c}`" for c in cmds) + ".", ""]
        if entries:
            L += model_table(entries) + [""]
            bt = baseline_table(entries)
            if bt:
                L += ["Baselines on the same test rows:", ""] + bt + [""]
            pl = [e for e in entries if e.get("person_level")]
            if pl:
                L += ["Image level vs person level (a person's views fused):", "",
                      "| model | image acc | image QWK | person acc | person QWK | people |", "|---|---|---|---|---|---|"]
                for e in pl:
                    t, p = e.get("test") or {}, e["person_level"]
                    L.append(f"| {e['name']} | {num_ci(t, 'accuracy')} | {num_ci(t, 'qwk')} | {num_ci(p, 'accuracy')} | "
                             f"{num_ci(p, 'qwk')} | {p.get('n', '–')} |")
                L.append("")
            if name == "utk":
                L += targets_block(entries) + [""]
            if name == "forehead" and s.get("forehead_band"):
                b = s["forehead_band"]
                L += [f"Forehead band: x {b['x0']}-{b['x1']}, y {b['y0']}-{b['y1']} of the aligned 200x200 image.", ""]
        planned = {"utk": utk_specs(False), "forehead": forehead_specs(False)}.get(name, [])
        missing = [sp.name for sp in planned if sp.name not in {e["name"] for e in entries}]
        if missing:
            L.append("Runs of the full suite missing from these results (not run yet): " + ", ".join(missing) + ".")
            L.append("")
        for run, err in (s.get("errors") or {}).items():
            L.append(f"- {run}: failed: {err}")
        L.append("")
    return "\n".join(L).rstrip() + "\n"


# ----------------------------------------------------------------------------- the README's table
#: the README's name of each task
TASKS = {
    "utk4": "utkface-age, 4 age levels",
    "utk7": "utkface-age, 7 decades",
    "utk4_forehead": "utkface-age forehead band, 4 levels",
    "london": "london-5view, 3 age bins",
}


def _day(*dates) -> str:
    """The first date given, as YYYY-MM-DD ('–' when none is recorded)."""
    return next((d[:10] for d in dates if d), "–")


def _when(e: dict, section: dict) -> str:
    """When an entry's test figures were computed: scored again, trained, or (for entries that record no date)
    the section's date when the section's call ran every run (no ``--runs``)."""
    whole = "--runs" not in (section.get("command") or "")
    return _day((e.get("rescored") or {}).get("date"), e.get("date"), section.get("date") if whole else None)


def _best_per_backbone(entries: list[dict]) -> list[dict]:
    """For each task and backbone, the run with the best validation QWK (the test split chooses nothing)."""
    best: dict[tuple, dict] = {}
    for e in entries:
        q = (e.get("val") or {}).get("qwk")
        if q is None or not e.get("test"):
            continue
        key = (e["task"], e["model"])
        if key not in best or q > best[key]["val"]["qwk"]:
            best[key] = e
    return list(best.values())


def summary_table(sections: dict[str, dict]) -> str:
    """The README's table: per task, the best run of each backbone by validation QWK (image level, and person
    level where persons have several views) and the baselines on the same test rows; the label-only baselines
    of the AI-Hub forehead grades."""
    rows = ["| data | model | mode | test n | accuracy [95% CI] | QWK [95% CI] | MAE | int8 MB | int8 ms | date |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for name in ("utk", "forehead", "london"):
        s = sections.get(name) or {}
        chosen = _best_per_backbone(s.get("entries", []))
        for task in dict.fromkeys(e["task"] for e in chosen):
            data = TASKS.get(task, task)
            of_task = [e for e in chosen if e["task"] == task]
            for e in of_task:
                t, mode = e["test"], e["mode"] + (f" ({e['label']})" if e.get("label") else "")
                rows.append(f"| {data} | {e['model']} | {mode} | {t.get('n')} | {num_ci(t, 'accuracy', 2)} | "
                            f"{num_ci(t, 'qwk', 2)} | {num(t.get('mae'), 2)} | {_size(e, 'onnx int8')} | "
                            f"{_lat(e, 'onnx int8')} | {_when(e, s)} |")
                p = e.get("person_level")
                if p:
                    rows.append(f"| {data} | {e['model']}, per person | {mode}, views fused | {p.get('n')} people | "
                                f"{num_ci(p, 'accuracy', 2)} | {num_ci(p, 'qwk', 2)} | {num(p.get('mae'), 2)} | | | "
                                f"{_when(e, s)} |")
            seen = set()
            for e in of_task:  # the baselines of each distinct test split of the task
                n = e["test"].get("n")
                for bname, b in (e.get("baselines") or {}).items():
                    if (n, bname) not in seen:
                        seen.add((n, bname))
                        rows.append(f"| {data} | baseline: {bname} | – | {n} | {num_ci(b, 'accuracy', 2)} | "
                                    f"{num_ci(b, 'qwk', 2)} | {num(b.get('mae'), 2)} | | | {_when(e, s)} |")
    s = sections.get("aihub") or {}
    for e in s.get("entries", []):
        t = e["test"]
        rows.append(f"| AI-Hub forehead grades, 4 levels (labels only) | baseline: {e['baseline']} | "
                    f"{e['protocol']} | {t.get('n')} | {num_ci(t, 'accuracy', 2)} | {num_ci(t, 'qwk', 2)} | "
                    f"{num(t.get('mae'), 2)} | | | {_day(s.get('date'))} |")
    return "\n".join(rows)


# ----------------------------------------------------------------------------- writing
def readme_with_table(readme_text: str, table: str) -> str:
    """``readme_text`` with ``table`` between the results markers (appended with them when absent)."""
    block = f"{README_START}\n{table.rstrip()}\n{README_END}"
    if _START_PREFIX in readme_text and README_END in readme_text:
        head, rest = readme_text.split(_START_PREFIX, 1)
        return head + block + rest.split(README_END, 1)[1]
    return readme_text.rstrip() + "\n\n" + block + "\n"


def rendered(results: Path = RESULTS, readme: Path = README) -> dict[Path, str]:
    """What the Markdown files should hold, from the JSON results: {path: text}."""
    sections = load_sections(results)
    out = {TABLES: render_markdown(sections)}
    if readme.is_file():
        out[readme] = readme_with_table(readme.read_text(encoding="utf-8"), summary_table(sections))
    return out


def write_results(results: Path = RESULTS, readme: Path = README) -> Path:
    """Write ``docs/results/benchmarks.md`` and the README's table from the JSON results; returns the first."""
    from skinage.utils import atomic_write_text

    for path, text in rendered(results, readme).items():
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, text)
    return TABLES


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true",
                    help="write nothing; exit 1 and name the files whose text is not what the JSON results give")
    a = ap.parse_args(argv)
    if a.check:
        stale = [p for p, text in rendered().items() if not p.is_file() or p.read_text(encoding="utf-8") != text]
        for p in stale:
            print(f"{p.relative_to(ROOT)}: not what benchmarks/results/*.json give; run python benchmarks/render.py")
        return 1 if stale else 0
    for p in rendered():
        print(p.relative_to(ROOT))
    write_results()
    return 0


if __name__ == "__main__":
    sys.exit(main())
