"""The tables of ``docs/results/cross_source.md`` from ``benchmarks/results/cross_source.json``.

Only the part between ``<!-- tables:start -->`` and ``<!-- tables:end -->`` is rewritten; the notes
around it are written by hand.
"""

from __future__ import annotations

import statistics
from pathlib import Path

from render import num, num_ci

from skinage.utils import atomic_write_text

START, END = "<!-- tables:start -->", "<!-- tables:end -->"
SETS = (("utk_test", "UTKFace test"), ("london_given", "london front, whole photo"),
        ("london_found", "london front, found face"))
CROPS = {"utk4_given": "given (whole UTKFace image)", "utk4_found": "found face"}


def _label(e: dict) -> str:
    mode = "fine-tune (best recipe)" if e["mode"] == "finetune" else "feature"
    aug = e["options"].get("augment")
    return f"{mode}, {CROPS.get(e['train_data'], e['train_data'])}" + (f", augment {aug}" if aug else "")


def _gap(e: dict, london: str, key: str) -> str:
    g = (e.get("gap") or {}).get(london, {}).get(key)
    return "–" if not g else f"{num(g[0])} [{num(g[1])}, {num(g[2])}]"


def settings_table(entries: list) -> list[str]:
    rows = ["| model | scored on | n | accuracy [95% CI] | QWK [95% CI] | MAE [95% CI] | majority: acc / QWK / MAE "
            "| stratified: acc / MAE |", "|---|---|---|---|---|---|---|---|"]
    for e in entries:
        for key, name in SETS:
            t = e[key]["test"]
            b = e[key].get("baselines") or {}
            maj, strat = b.get("majority") or {}, b.get("stratified") or {}
            rows.append(f"| {_label(e)} | {name} | {t.get('n', '–')} | {num_ci(t, 'accuracy')} | {num_ci(t, 'qwk')} | "
                        f"{num_ci(t, 'mae')} | {num(maj.get('accuracy'))} / {num(maj.get('qwk'))} / "
                        f"{num(maj.get('mae'))} | {num(strat.get('accuracy'))} / {num(strat.get('mae'))} |")
    return rows


def gap_table(entries: list) -> list[str]:
    rows = ["| model | london crops | accuracy gap (UTK - london) | QWK gap (UTK - london) | MAE gap (UTK - london; negative: london worse) |",
            "|---|---|---|---|---|"]
    for e in entries:
        for london in ("london_given", "london_found"):
            rows.append(f"| {_label(e)} | {'whole photo' if london == 'london_given' else 'found face'} | "
                        f"{_gap(e, london, 'accuracy')} | {_gap(e, london, 'qwk')} | {_gap(e, london, 'mae')} |")
    return rows


def _mean_sd(values: list) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "–"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{num(statistics.mean(values))} ± {num(sd)}"


def augment_table(entries: list) -> list[str]:
    groups: dict[str, list] = {}
    for e in entries:
        groups.setdefault(e["options"].get("augment"), []).append(e)
    rows = ["| augment (2 views per training image) | seeds | UTKFace test QWK | london found QWK | QWK gap | "
            "UTKFace test acc | london found acc | acc gap | london found MAE |", "|---|---|---|---|---|---|---|---|---|"]
    for spec, es in groups.items():
        def col(f):
            return _mean_sd([f(e) for e in es])
        rows.append(f"| {spec} | {len(es)} | {col(lambda e: e['utk_test']['test']['qwk'])} | "
                    f"{col(lambda e: e['london_found']['test']['qwk'])} | "
                    f"{col(lambda e: e['gap']['london_found']['qwk'][0])} | "
                    f"{col(lambda e: e['utk_test']['test']['accuracy'])} | "
                    f"{col(lambda e: e['london_found']['test']['accuracy'])} | "
                    f"{col(lambda e: e['gap']['london_found']['accuracy'][0])} | "
                    f"{col(lambda e: e['london_found']['test']['mae'])} |")
    return rows


def render(doc: dict, out: Path) -> None:
    entries = doc.get("entries", [])
    main = [e for e in entries if e.get("group") in ("setting", "finetune_aug")]
    aug = [e for e in entries if e.get("group") == "augment"]
    lines = [START, "", "### Each model on each test set", "", *settings_table(main), "",
             "### The gap between sources (UTKFace test minus london front views; 95 % interval by independent "
             "bootstrap of both sets)", "", *gap_table(main), ""]
    if aug:
        lines += ["### Phone-photo augmentations (feature mode, found face crops; mean ± sd over head seeds)", "",
                  *augment_table(aug), ""]
    lines += ["Runs: " + "; ".join(f"{e['name']} {e['train_time_s']:.0f} s training (load at its end "
                                   f"{e.get('load_at_end_of_training', '?')}), {e['date']}" for e in entries), "", END]
    text = out.read_text(encoding="utf-8") if out.is_file() else f"# Cross-source measurement\n\n{START}\n{END}\n"
    head, _, rest = text.partition(START)
    _, _, tail = rest.partition(END)
    atomic_write_text(out, head + "\n".join(lines) + tail)
