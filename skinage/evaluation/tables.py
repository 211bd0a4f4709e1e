"""The console tables of ``skinage evaluate``: headline figures with intervals, gains, persons, views, classes.

>>> _fmt_ci(0.8123, [0.75, 0.86])
'0.812 [0.750, 0.860]'
>>> _fmt_ci(-0.0001)
'0.000'
"""

from __future__ import annotations

import math

__all__ = ["format_tables", "headline_keys"]

_SHORT = {"accuracy": "accuracy", "balanced_accuracy": "bal.acc", "f1_macro": "macro-F1", "f1_weighted": "wtd-F1",
          "precision_macro": "macro-P", "recall_macro": "macro-R", "qwk": "QWK", "mae": "MAE",
          "within_one": "within-1"}


def _z(v: float, nd: int) -> float:
    return 0.0 if abs(v) < 0.5 * 10 ** -nd else v  # no "-0.000"


def _fmt_ci(v, ci=None, nd=3) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    s = f"{_z(v, nd):.{nd}f}"
    if ci and all(c is not None and not math.isnan(c) for c in ci):
        s += f" [{_z(ci[0], nd):.{nd}f}, {_z(ci[1], nd):.{nd}f}]"
    return s


def _table(rows: list[list[str]]) -> str:
    w = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w[i]) if i == 0 else c.rjust(w[i]) for i, c in enumerate(r)) for r in rows]
    lines.insert(1, "  ".join("-" * x for x in w))
    return "\n".join(lines)


def headline_keys(ordinal: bool) -> list[str]:
    """The figures printed in the console tables (metrics.json and report.html hold them all)."""
    keys = ["accuracy", "balanced_accuracy", "f1_macro"]
    return keys + (["qwk", "mae", "within_one"] if ordinal else [])


def format_tables(m: dict) -> str:
    """The readable tables printed by ``skinage evaluate``."""
    keys = headline_keys(m.get("ordinal", True))
    parts = []
    b = m["bootstrap"]
    parts.append(f"{m['n_images']} images of {m['n_persons']} persons; split '{m.get('split')}' of {m.get('data')}")
    unit = "persons" if b["unit"] == "person" else "images"
    parts.append(f"\nImage level (95 % CI: {b['resamples']} bootstrap resamples over {unit})")
    rows = [["system"] + [_SHORT[k] for k in keys]]
    for name, mm in m["image"].items():
        rows.append([name] + [_fmt_ci(mm.get(k), mm["ci"].get(k)) for k in keys])
    parts.append(_table(rows))
    for name, why in (m.get("baselines_skipped") or {}).items():
        parts.append(f"  ({name} baseline skipped: {why})")
    for name, s in m.get("systems", {}).items():
        if name != "model":
            parts.append(f"  {name}: {s}")
    if m.get("metadata_excluded"):
        parts.append(f"  (metadata baseline leaves out {', '.join(m['metadata_excluded'])}: the label is made from it)")
    for note in m.get("notes") or []:
        parts.append(f"  note: {note}")
    if m.get("gain_over_baselines"):
        gk = list(next(iter(m["gain_over_baselines"].values())).keys())
        rows = [["model minus"] + [_SHORT[k] for k in gk]]
        for name, d in m["gain_over_baselines"].items():
            rows.append([name] + [f"{d[k]['difference']:+.3f} [{d[k]['ci'][0]:+.3f}, {d[k]['ci'][1]:+.3f}]" for k in gk])
        parts.append("\nGain of the model over each baseline (paired bootstrap, 95 % CI)")
        parts.append(_table(rows))
    if m.get("person"):
        parts.append(f"\nPerson level ({m['n_persons']} persons, each person's views averaged; CI over persons)")
        rows = [["system"] + [_SHORT[k] for k in keys]]
        for name, mm in m["person"].items():
            rows.append([name] + [_fmt_ci(mm.get(k), mm["ci"].get(k)) for k in keys])
        parts.append(_table(rows))
        dis = m["person"].get("model", next(iter(m["person"].values()))).get("label_disagreements", 0)
        if dis:
            parts.append(f"  {dis} person(s) whose images disagree in label (the majority label was used)")
    if m.get("by_view") and "model" in m["by_view"]:
        parts.append("\nBy view (model, image level)")
        vk = keys
        rows = [["view", "n"] + [_SHORT[k] for k in vk]]
        for r in m["by_view"]["model"]:
            rows.append([r["view"], str(r["n"])] + [_fmt_ci(r.get(k)) for k in vk])
        parts.append(_table(rows))
    if m.get("per_class"):
        parts.append("\nPer class (model, image level)")
        rows = [["class", "precision", "recall", "F1", "support", "predicted"]]
        for r in m["per_class"]:
            rows.append([r["class"], f"{r['precision']:.3f}", f"{r['recall']:.3f}", f"{r['f1']:.3f}",
                         str(r["support"]), str(r["predicted"])])
        parts.append(_table(rows))
    if "ece" in m:
        parts.append(f"\nExpected calibration error (10 bins): {m['ece']:.3f}")
    if m.get("n_set_aside"):
        parts.append(f"{m['n_set_aside']} image(s) set aside (unreadable or unlabelled), listed in metrics.json")
    return "\n".join(parts)
