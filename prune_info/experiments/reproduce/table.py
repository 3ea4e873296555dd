"""The printed table of the findings (``findings.txt``, and what the CLI prints)."""

from __future__ import annotations

from prune_info.analysis.stats import (
    format_p,
)


def _number(value: float | None, p: float | None, unit: str = "") -> str:
    if value is None:
        return "-" if p is None else f"p = {format_p(p)}"
    text = f"{value:+.3g}{unit}"
    return text if p is None else f"{text} (p = {format_p(p)})"


def format_findings(report: dict) -> str:
    """The findings as a fixed-width table: per panel the paper's number, ours and the status."""
    lines = [f"Findings on {report['data']} ({report['scale']} scale). Rule: {report['rule']}",
             ""]
    for finding in report["findings"]:
        lines.append(f"{finding['id']}  {finding['paper']}, {finding['figure']}: "
                     f"{finding['claim']}  ->  {finding['verdict'].upper()}")
        for panel in finding["panels"]:
            ours = panel["ours"]
            unit = " pp" if ours["unit"] == "pp" else " bits"
            paper = panel["paper"]
            paper_text = (_number(paper["value"], paper["p_value"]) if paper["value"] is not None
                          else paper["text"])
            q = ("" if ours.get("p_adjusted") is None
                 else f", BH q = {format_p(ours['p_adjusted'])}")
            mine = (f"{ours['mean']:+.3g} ± {ours['std']:.2g}{unit} (n = {ours['n']}, "
                    f"{ours['test']} p = {format_p(ours['p_value'])}{q})")
            lines.append(f"    [{panel['expect']}] {panel['name']}")
            lines.append(f"        paper: {paper_text}   ours: {mine}   {panel['status']}")
        for diff in finding["differences"]:
            lines.append(f"    differs: {diff}")
        lines.append("")
    for item in report.get("left_out", []):
        lines.append(f"left out: {item}")
    return "\n".join(lines).rstrip()
