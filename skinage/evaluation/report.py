"""One self-contained ``report.html`` per evaluation (pictures embedded as base64 PNG).

Tables: headline figures with 95 % intervals and the baselines side by side,
the model's gain over each baseline, person level, per view, per class; then
every plot the evaluation wrote. No external CSS, script or font: the file can
be mailed or opened offline.

:func:`render_png` screenshots a report with headless Chromium when it is
installed (Debian package ``chromium``), to check that it is legible.
"""

from __future__ import annotations

import base64
import html
import math
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from ..utils import atomic_write_text

__all__ = ["report_html", "write_report", "find_chromium", "render_png"]

_NAMES = {"accuracy": "Accuracy", "balanced_accuracy": "Balanced acc.", "f1_macro": "Macro-F1",
          "f1_weighted": "Weighted F1", "precision_macro": "Macro precision", "recall_macro": "Macro recall",
          "qwk": "QWK", "mae": "MAE (levels)", "within_one": "Within one level"}
_LOWER_IS_BETTER = {"mae"}

_CSS = """
body{font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;margin:24px auto;max-width:1150px;
color:#222;font-size:15px;line-height:1.4;padding:0 16px}
h1{font-size:24px;margin-bottom:4px}h2{font-size:19px;margin-top:30px;border-bottom:2px solid #ddd;padding-bottom:3px}
.sub{color:#555;margin-top:0}
table{border-collapse:collapse;margin:8px 0 4px 0;font-size:14px}
th,td{border:1px solid #ccc;padding:5px 9px;text-align:right;white-space:nowrap}
th{background:#f1f3f6}td:first-child,th:first-child{text-align:left}
tr.model td{background:#eef6ee;font-weight:600}
.ci{color:#666;font-size:12px;font-weight:normal}
.note{color:#555;font-size:13px;max-width:1000px}
.good{color:#1a7f37}.bad{color:#b42318}
img{max-width:100%;max-height:900px;border:1px solid #ddd;margin:6px 0}
.figs{display:flex;flex-wrap:wrap;gap:14px}.figs figure{margin:0;max-width:100%}
figcaption{font-size:13px;color:#444}
"""


def _esc(x) -> str:
    return html.escape(str(x))


def _num(v, nd=3) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return f"{0.0 if abs(v) < 0.5 * 10 ** -nd else v:.{nd}f}"


def _cell(m: dict, key: str) -> str:
    v = m.get(key)
    ci = (m.get("ci") or {}).get(key)
    s = _num(v)
    if ci and not any(c is None or (isinstance(c, float) and math.isnan(c)) for c in ci):
        s += f'<br><span class="ci">[{_num(ci[0])}, {_num(ci[1])}]</span>'
    return f"<td>{s}</td>"


def _keys(ordinal: bool) -> list[str]:
    keys = ["accuracy", "balanced_accuracy", "f1_macro", "f1_weighted"]
    return keys + (["qwk", "mae", "within_one"] if ordinal else [])


def _systems_table(block: dict, keys: list[str], descriptions: dict) -> str:
    head = "<tr><th>system</th>" + "".join(f"<th>{_NAMES[k]}</th>" for k in keys) + "<th>n</th></tr>"
    rows = []
    for name, m in block.items():
        cls = ' class="model"' if name == "model" else ""
        desc = descriptions.get(name, "")
        label = f"{_esc(name)}" + (f'<br><span class="ci">{_esc(desc)}</span>' if desc and name != "model" else "")
        rows.append(f"<tr{cls}><td>{label}</td>" + "".join(_cell(m, k) for k in keys) + f"<td>{m.get('n', '')}</td></tr>")
    return f"<table>{head}{''.join(rows)}</table>"


def _img(path: Path, caption: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return (f'<figure><img alt="{_esc(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{_esc(caption)}</figcaption></figure>")


_FIGS = [
    ("confusion", "Confusion matrix, image level: counts and row-normalised (recall per true class)"),
    ("person_confusion", "Confusion matrix, person level (each person's views averaged)"),
    ("training_curves", "Training curves from results.csv"),
    ("embeddings", "The model's embeddings in 2-D, coloured by true class; wrong predictions ringed in red"),
    ("reliability", "Reliability diagram: accuracy against confidence, with the expected calibration error"),
    ("gradcam_right", "Grad-CAM: where the model looked for confident right answers"),
    ("gradcam_wrong", "Grad-CAM: the worst wrong answers"),
]


def report_html(m: dict, out_dir: str | os.PathLike, title: str = "skinage evaluation") -> str:
    """The HTML text of a report for the evaluation dict ``m`` (the ``evaluation`` of metrics.json).

    Pictures are read from ``out_dir`` (paths in ``m['files']``) and embedded.
    """
    out_dir = Path(out_dir)
    ordinal = bool(m.get("ordinal", True))
    keys = _keys(ordinal)
    b = m.get("bootstrap", {})
    unit = "persons" if b.get("unit") == "person" else "images"
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{_esc(title)}</title>"
             f"<style>{_CSS}</style></head><body>", f"<h1>{_esc(title)}</h1>"]
    model = m.get("model") or {}
    sub = []
    if model:
        sub.append(f"model <b>{_esc(model.get('name'))}</b>, mode {_esc(model.get('mode'))}, "
                   f"starting weights {_esc(model.get('weights_from'))}, epoch {_esc(model.get('epoch'))}"
                   + (f", test-time augmentation <b>{_esc(model.get('tta'))}</b>" if model.get("tta") else ""))
    sub.append(f"data {_esc(m.get('data'))}, split <b>{_esc(m.get('split'))}</b>: {m.get('n_images')} images of "
               f"{m.get('n_persons')} persons; classes {', '.join(map(_esc, m.get('classes', [])))}"
               f" ({'ordered levels' if ordinal else 'unordered'})")
    counts = m.get("class_counts")
    if counts:
        sub.append("images per class: " + ", ".join(f"{_esc(c)} {n}" for c, n in zip(m["classes"], counts)))
    if m.get("n_set_aside"):
        sub.append(f"<span class='bad'>{m['n_set_aside']} image(s) set aside</span> (unreadable or unlabelled; "
                   "listed in metrics.json)")
    parts.append("<p class='sub'>" + "<br>".join(sub) + "</p>")

    parts.append("<h2>Image level, with the baselines</h2>")
    parts.append(_systems_table(m["image"], keys, m.get("systems", {})))
    parts.append(f"<p class='note'>Below each figure: its 95 % confidence interval from {b.get('resamples')} "
                 f"bootstrap resamples over {unit} (all images of a drawn person are taken together). "
                 + ("Baselines are fitted on the training split and scored on the same rows as the model."
                    if "model" in m["image"] else
                    "Baselines only (no model): fitted on the training split, scored on the split above.")
                 + ("" if not ordinal else " QWK: quadratic weighted kappa (1 = perfect, 0 = chance); "
                    "MAE: mean error in levels (lower is better).") + "</p>")
    for note in m.get("notes") or []:
        parts.append(f"<p class='note'><b>Note:</b> {_esc(note)}.</p>")
    if m.get("metadata_excluded"):
        parts.append(f"<p class='note'>The metadata baseline leaves out {_esc(', '.join(m['metadata_excluded']))}: "
                     "the label is made from it, so a baseline on it would only read the answer back.</p>")
    for name, why in (m.get("baselines_skipped") or {}).items():
        parts.append(f"<p class='note'>{_esc(name)} baseline skipped: {_esc(why)}</p>")
    gains = m.get("gain_over_baselines") or {}
    if gains:
        gk = list(next(iter(gains.values())).keys())
        head = "<tr><th>model minus</th>" + "".join(f"<th>{_NAMES[k]}</th>" for k in gk) + "</tr>"
        rows = []
        for name, d in gains.items():
            cells = []
            for k in gk:
                diff, (lo, hi) = d[k]["difference"], d[k]["ci"]
                better = (lo > 0 and k not in _LOWER_IS_BETTER) or (hi < 0 and k in _LOWER_IS_BETTER)
                worse = (hi < 0 and k not in _LOWER_IS_BETTER) or (lo > 0 and k in _LOWER_IS_BETTER)
                cls = "good" if better else ("bad" if worse else "")
                cells.append(f"<td class='{cls}'>{diff:+.3f}<br><span class='ci'>[{lo:+.3f}, {hi:+.3f}]</span></td>")
            rows.append(f"<tr><td>{_esc(name)}</td>{''.join(cells)}</tr>")
        parts.append("<h2>Gain of the model over each baseline</h2>")
        parts.append(f"<table>{head}{''.join(rows)}</table>")
        parts.append("<p class='note'>Paired bootstrap: model and baseline scored on the same resamples. "
                     "Green: the whole interval is on the better side (a real improvement); red: the model is "
                     "worse; black: not distinguishable from the baseline.</p>")
    if m.get("person"):
        parts.append("<h2>Person level</h2>")
        parts.append(_systems_table(m["person"], keys, m.get("systems", {})))
        dis = (m["person"].get("model") or {}).get("label_disagreements", 0)
        parts.append(f"<p class='note'>{m.get('n_persons')} persons; each person's image probabilities averaged "
                     f"into one prediction; interval over persons."
                     + (f" {dis} person(s) have images that disagree in label (the majority label is used)." if dis else "")
                     + "</p>")
    if m.get("by_view") and m["by_view"].get("model"):
        rows_src = m["by_view"]["model"]
        head = "<tr><th>view</th><th>n</th>" + "".join(f"<th>{_NAMES[k]}</th>" for k in keys) + "</tr>"
        rows = "".join(f"<tr><td>{_esc(r['view'])}</td><td>{r['n']}</td>"
                       + "".join(f"<td>{_num(r.get(k))}</td>" for k in keys) + "</tr>" for r in rows_src)
        parts.append("<h2>By view (model, image level)</h2>")
        parts.append(f"<table>{head}{rows}</table>")
    if m.get("per_class"):
        head = "<tr><th>class</th><th>precision</th><th>recall</th><th>F1</th><th>support</th><th>predicted</th></tr>"
        rows = "".join(f"<tr><td>{_esc(r['class'])}</td><td>{_num(r['precision'])}</td><td>{_num(r['recall'])}</td>"
                       f"<td>{_num(r['f1'])}</td><td>{r['support']}</td><td>{r['predicted']}</td></tr>"
                       for r in m["per_class"])
        parts.append("<h2>Per class (model, image level)</h2>")
        parts.append(f"<table>{head}{rows}</table>")
        if "ece" in m:
            parts.append(f"<p class='note'>Expected calibration error (10 bins): <b>{m['ece']:.3f}</b></p>")
    files = m.get("files") or {}
    figs = [(k, c) for k, c in _FIGS if k in files and (out_dir / files[k]).is_file()]
    if figs:
        parts.append("<h2>Pictures</h2><div class='figs'>")
        parts += [_img(out_dir / files[k], c) for k, c in figs]
        parts.append("</div>")
    parts.append("<p class='note'>Written by skinage evaluate. Figures and files: metrics.json beside this report.</p>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(m: dict, out_dir: str | os.PathLike, title: str = "skinage evaluation") -> Path:
    """Write ``out_dir/report.html`` atomically and return its path."""
    path = Path(out_dir) / "report.html"
    atomic_write_text(path, report_html(m, out_dir, title))
    return path


def find_chromium() -> str | None:
    """The headless browser to screenshot reports with, or None."""
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        p = shutil.which(name)
        if p:
            return p
    return None


def render_png(html_path: str | os.PathLike, png_path: str | os.PathLike, width: int = 1200, height: int = 3000,
               timeout: float = 120.0) -> Path:
    """Screenshot an HTML file with headless Chromium (offline flags, throw-away profile).

    Raises ``RuntimeError`` when Chromium is absent or fails.
    """
    exe = find_chromium()
    if exe is None:
        raise RuntimeError("Chromium is not installed (Debian: apt-get install -y chromium)")
    png_path = Path(png_path).resolve()
    with tempfile.TemporaryDirectory() as profile:
        cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--hide-scrollbars", f"--user-data-dir={profile}", f"--screenshot={png_path}",
               f"--window-size={width},{height}", Path(html_path).resolve().as_uri()]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if not png_path.is_file():
        raise RuntimeError(f"chromium wrote no screenshot (exit {r.returncode}): {r.stderr[-500:]}")
    return png_path
