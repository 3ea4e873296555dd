"""The self-contained HTML report of a ``prune-info run`` directory.

One page, no network: figures are embedded as ``data:image/png;base64`` URIs, the style sheet is
inline, tables are plain HTML, and each section shows the ``prune-info`` command that reproduces
it. Everything is read from the run directory (``run.json`` and the stages' artefacts).
"""

from __future__ import annotations

import base64
import html
import json
import shlex
import time
from dataclasses import asdict
from pathlib import Path

from prune_info.analysis.stats import format_p
from prune_info.io import atomic_write

__all__ = ['FINDINGS_SECTION', 'SECTIONS', 'findings_section', 'render_report',
           'write_findings_page', 'write_report']

#: Section headings, in page order (the tests look for each one).
SECTIONS = (
    "Score distributions",
    "Ablation curves",
    "Synergy and redundancy",
    "Pruning and retraining",
    "Accuracy, size and latency",
    "Reproduce",
)

#: Heading of the findings section (``prune-info reproduce``).
FINDINGS_SECTION = "Do the papers reproduce?"

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;
max-width:1100px;color:#222;line-height:1.4;padding:0 1em}
h1{border-bottom:2px solid #345;padding-bottom:.2em}h2{color:#345;margin-top:1.8em}
img{max-width:100%;border:1px solid #ddd;background:#fff}
table{border-collapse:collapse;margin:.6em 0;font-size:.92em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#eef2f6}td:first-child,th:first-child{text-align:left}
pre{background:#f6f8fa;border:1px solid #ddd;padding:.6em;overflow-x:auto;white-space:pre-wrap}
.muted{color:#666;font-size:.9em}
"""


def _esc(value) -> str:
    return html.escape(str(value))


def _img(path: Path, alt: str) -> str:
    if not path.is_file():
        return f'<p class="muted">missing figure {_esc(path.name)}</p>'
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{_esc(alt)}" src="data:image/png;base64,{data}">'


def _table(header: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{_esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_esc(c)}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cmd(*commands: str) -> str:
    text = "\n".join(commands)
    return f'<p class="muted">Reproduce this section:</p><pre><code>{_esc(text)}</code></pre>'


def _pct(value) -> str:
    return "-" if value is None else f"{100 * float(value):.2f} %"


def _achieved(target: dict | None) -> str:
    """What a prune to a target reached, in words."""
    if not target:
        return "-"
    share = target.get("achieved_share")
    verdict = "met" if target.get("met") else "not met"
    if share is None:
        return verdict
    what = "faster" if target.get("kind") in ("latency", "speedup") else "fewer"
    return f"{1 / share:.2f}x {what} ({verdict})"


def _fmt(value, spec: str = ".4f") -> str:
    return "-" if value is None else format(float(value), spec)


def _read(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def render_report(out: str | Path, options=None) -> str:
    """The HTML text of the report of run directory ``out``."""
    out = Path(out)
    manifest = _read(out / "run.json")
    opts = manifest.get("options", {})
    if options is not None:
        opts = asdict(options)
    stages = manifest.get("stages", {})
    q = lambda name: shlex.quote(str(out / name))  # noqa: E731
    run_cmd = manifest.get("command", "prune-info run ...")
    seed = opts.get("seed", 0)
    criterion = opts.get("criterion", "mi")
    parts = []
    train = stages.get("train", {}).get("summary", {})
    title = f"prune-info report: {train.get('arch', opts.get('arch'))} on {opts.get('data')}"
    parts.append(f"<h1>{_esc(title)}</h1>")
    parts.append(f'<p class="muted">Generated {_esc(time.strftime("%Y-%m-%d %H:%M"))} from '
                 f"{_esc(out)}. Dense model: {_esc(train.get('parameters'))} parameters, "
                 f"validation accuracy {_pct(train.get('val_acc'))}, test accuracy "
                 f"{_pct(train.get('test_acc'))}.</p>")

    # -- scores
    scores = _read(out / "scores.json")
    rows = []
    for layer in scores.get("layers", []):
        for c, stats in layer["summary"]["measures"].items():
            rows.append([layer["name"], layer["n_units"], c, _fmt(stats["min"]),
                         _fmt(stats["median"]), _fmt(stats["mean"]), _fmt(stats["max"])])
    parts += [f"<h2>{SECTIONS[0]}</h2>",
              "<p>Per-unit entropy, mutual information with the class and KL selectivity "
              "(bits) on the validation set, one violin per layer.</p>",
              _img(out / "scores.png", "score distributions"),
              _table(["layer", "units", "measure", "min", "median", "mean", "max"], rows),
              _cmd(f"prune-info score {q('model.pt')} --criteria "
                   f"{','.join(scores.get('criteria', ['entropy', 'mi', 'kl']))} "
                   f"--seed {seed} --out {q('scores.json')} --plot {q('scores.png')}")]

    # -- ablation
    half = stages.get("ablate", {}).get("summary", {}).get("accuracy_at_half", {})
    rows = [[scope, label, _pct(acc)] for scope, by in half.items() for label, acc in by.items()]
    ablate_cmd = (f"prune-info ablate {q('model.pt')} --criteria {criterion} --random "
                  f"{opts.get('random')} --seed {seed} --out {q('curves.json')} "
                  f"--plot {q('curves.png')}")
    parts += [f"<h2>{SECTIONS[1]}</h2>",
              f"<p>Test accuracy as units are ablated (set to zero) one by one, layer by layer, "
              f"in order of {_esc(criterion)} (low first and high first) against "
              f"{_esc(opts.get('random'))} random orders.</p>",
              _img(out / "curves.png", "ablation curves"),
              _table(["layer", "order", "accuracy with half the units ablated"], rows),
              _cmd(ablate_cmd)]

    # -- O-information
    oinfo = _read(out / "oinfo.json")
    rows = []
    for layer in oinfo.get("layers", []):
        name = layer.get("layer", layer.get("name", "?"))
        sizes = layer.get("sizes", [])
        if sizes and isinstance(sizes[0], dict):
            best_syn = min(sizes, key=lambda r: r["synergy_omega"])
            best_red = max(sizes, key=lambda r: r["redundancy_omega"])
            rows.append([name, len(sizes), _fmt(best_syn["synergy_omega"]), best_syn["size"],
                         _fmt(best_red["redundancy_omega"]), best_red["size"]])
    parts += [f"<h2>{SECTIONS[2]}</h2>",
              "<p>O-information Ω (bits) of the most synergistic (min Ω, blue) and most "
              "redundant (max Ω, red) multiplet of k units plus the label, per layer "
              f"(exhaustive search up to {_esc(opts.get('max_exhaustive'))} units, greedy up "
              f"to {_esc(opts.get('max_size'))}).</p>",
              _img(out / "oinfo.png", "synergy and redundancy"),
              _table(["layer", "sizes searched", "min Ω", "at k", "max Ω", "at k"], rows),
              _cmd(f"prune-info oinfo {q('model.pt')} --max-exhaustive "
                   f"{opts.get('max_exhaustive')} --max-size {opts.get('max_size')} --seed "
                   f"{seed} --out {q('oinfo.json')} --plot {q('oinfo.png')}")]

    # -- prune / retrain / export
    retrain = stages.get("retrain", {}).get("summary", {})
    export = stages.get("export", {}).get("summary", {})
    prune = stages.get("prune", {}).get("summary", {})
    how = (["amount removed per layer", opts.get("amount")] if opts.get("target") is None else
           ["target", f"{opts.get('target')} ({opts.get('allocation')} allocation): "
                      + _achieved(prune.get("target"))])
    rows = [["criterion", criterion], how,
            ["pruned architecture", prune.get("arch_after", prune.get("arch", "-"))],
            ["retraining epochs", opts.get("retrain_epochs")]]
    for label, key in (("dense", "dense"), ("pruned, before retraining", "before"),
                       ("pruned and retrained", "after")):
        acc = retrain.get(key) or {}
        rows.append([f"{label}: val / test accuracy",
                     f"{_pct(acc.get('val_acc'))} / {_pct(acc.get('test_acc'))}"])
    rows += [["ONNX file bytes", export.get("file_bytes")],
             ["ONNX max |diff| vs PyTorch", _fmt(export.get("max_abs_diff"), ".2e")]]
    parts += [f"<h2>{SECTIONS[3]}</h2>",
              _table(["", "value"], rows),
              _cmd(f"prune-info prune {q('model.pt')} --criterion {criterion} "
                   + (f"--amount {opts.get('amount')}" if opts.get("target") is None else
                      f"--target {q(opts['target'])} --allocation {opts.get('allocation')}")
                   + f" --seed {seed} -o {q('pruned.pt')}",
                   f"prune-info retrain {q('pruned.pt')} --epochs {opts.get('retrain_epochs')}"
                   f" --seed {seed} -o {q('retrained.pt')}",
                   f"prune-info export {q('retrained.pt')} -o {q('retrained.onnx')}")]

    # -- bench
    bench = _read(out / "bench.json")
    rows = []
    header = ["model", "format", "test accuracy", "parameters", "MACs", "file bytes"]
    lat_keys: list[tuple] = []
    for model in bench.get("models", []):
        for lat in model.get("latency", []):
            lat_key = (lat["runtime"], lat["batch"])
            if lat_key not in lat_keys:
                lat_keys.append(lat_key)
    header += [f"{rt} batch {b} median ms" for rt, b in lat_keys]
    for model in bench.get("models", []):
        lat = {(x["runtime"], x["batch"]): x["median_ms"] for x in model.get("latency", [])}
        rows.append([model.get("name"), model.get("format"), _pct(model.get("test_acc")),
                     model.get("parameters", "-"), model.get("macs", "-"),
                     model.get("file_bytes", "-")]
                    + [_fmt(lat.get(k), ".3f") if lat.get(k) is not None else "-"
                       for k in lat_keys])
    settings = bench.get("settings", {})
    parts += [f"<h2>{SECTIONS[4]}</h2>",
              f"<p>CPU, {_esc(settings.get('threads'))} thread, "
              f"{_esc(settings.get('repeat'))} timed calls per cell (median).</p>",
              _table(header, rows),
              _img(out / "bench.png", "accuracy size latency"),
              _cmd(f"prune-info bench {q('model.pt')} {q('pruned.pt')} {q('retrained.pt')} "
                   f"{q('retrained.onnx')} --batch "
                   f"{','.join(map(str, opts.get('bench_batches', [1, 256])))} --threads 1 "
                   f"--repeat {opts.get('bench_repeat')} --json --plot {q('bench.png')}")]

    # -- findings of ``prune-info reproduce``, when the directory holds them
    findings = _read(out / "findings.json")
    if findings.get("findings"):
        parts.append(findings_section(findings))

    # -- reproduce
    rows = [[name, entry.get("seconds"), ", ".join(entry.get("artefacts", [])),
             entry.get("fingerprint")] for name, entry in stages.items()]
    parts += [f"<h2>{SECTIONS[5]}</h2>",
              "<p>The whole run (stages whose options did not change are reused):</p>",
              f"<pre><code>{_esc(run_cmd)}</code></pre>",
              _table(["stage", "seconds", "artefacts", "fingerprint"], rows)]

    body = "\n".join(parts)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{_esc(title)}</title><style>{_CSS}</style></head>\n"
            f"<body>\n{body}\n</body></html>\n")


def write_report(out: str | Path, path: str | Path, options=None) -> Path:
    """Write :func:`render_report` of ``out`` to ``path`` atomically."""
    text = render_report(out, options)
    with atomic_write(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def findings_section(report: dict) -> str:
    """The HTML section of a ``prune-info reproduce`` findings report (``findings.json``).

    One table per finding: every panel with the paper's number (or words), ours (mean ± std
    over seeds, n, the test and its p-value) and its status, then the finding's verdict, the
    command that reproduces it and how its protocol differs from the paper's.
    """
    parts = [f"<h2>{_esc(FINDINGS_SECTION)}</h2>",
             f"<p>Run on {_esc(report.get('data'))} at {_esc(report.get('scale'))} scale. "
             f"{_esc(report.get('note', ''))}</p>",
             f"<p class=\"muted\">Rule: {_esc(report.get('rule', ''))}</p>"]
    summary = [[f["id"], f"{f['paper']}, {f['figure']}", f["claim"], f["verdict"]]
               for f in report.get("findings", [])]
    parts.append(_table(["finding", "paper", "claim", "verdict"], summary))
    for finding in report.get("findings", []):
        rows = []
        for panel in finding["panels"]:
            paper, ours = panel["paper"], panel["ours"]
            paper_text = paper["text"] if paper.get("value") is None else (
                f"{paper['value']:+g}" + (f", p = {format_p(paper['p_value'])}"
                                          if paper.get("p_value") is not None else ""))
            unit = " pp" if ours["unit"] == "pp" else " bits"
            rows.append([panel["name"], panel["expect"], paper_text, paper.get("cite", ""),
                         f"{ours['mean']:+.3g} ± {ours['std']:.2g}{unit}", ours["n"],
                         f"{ours['test']}, p = {format_p(ours['p_value'])}", panel["status"]])
        parts.append(f"<h3>{_esc(finding['id'])}: {_esc(finding['claim'])} "
                     f"({_esc(finding['paper'])}, {_esc(finding['figure'])}) "
                     f"&mdash; {_esc(finding['verdict'])}</h3>")
        parts.append(_table(["panel", "paper's direction", "paper", "where", "ours", "n",
                             "test", "status"], rows))
        if finding.get("differences"):
            parts.append("<p class=\"muted\">Differs from the paper: "
                         + "; ".join(_esc(d) for d in finding["differences"]) + ".</p>")
        parts.append(_cmd(finding["command"]))
    for item in report.get("left_out", []):
        parts.append(f"<p class=\"muted\">Left out: {_esc(item)}</p>")
    return "\n".join(parts)


def write_findings_page(report: dict, path: str | Path) -> Path:
    """A self-contained HTML page holding :func:`findings_section`, written atomically."""
    title = f"prune-info: {FINDINGS_SECTION}"
    text = ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{_esc(title)}</title><style>{_CSS}</style></head>\n"
            f"<body>\n<h1>{_esc(title)}</h1>\n{findings_section(report)}\n</body></html>\n")
    with atomic_write(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)
