"""Figures of a benchmark: accuracy against parameters, latency against batch size.

Figures are drawn on matplotlib's non-interactive Agg canvas through the object-oriented API
(no pyplot, so no global backend is switched) and written atomically, in the format named by the
file's suffix.
"""

from __future__ import annotations

import os
from pathlib import Path

from prune_info.errors import PruneInfoError
from prune_info.io import atomic_write
from prune_info.viz.figures import new_figure

#: File suffixes :func:`plot_bench` writes.
PLOT_FORMATS = ("png", "pdf", "svg")


def plot_format(path: str | os.PathLike) -> str:
    """The figure format named by a path's suffix; raises for anything else."""
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in PLOT_FORMATS:
        raise PruneInfoError(
            f"cannot write a figure to {path}: unknown figure format "
            f"{suffix or '(none)'!r}; end the name with "
            + ", ".join(f".{f}" for f in PLOT_FORMATS)
        )
    return suffix


def plot_bench(results: list, path: str | os.PathLike, title: str | None = None) -> None:
    """Draw accuracy against parameters and median latency against batch size.

    Parameters
    ----------
    results : list of BenchResult or dict
        From :func:`prune_info.deploy.bench.benchmark_models`, or their dicts (the ``models`` of
        a JSON document).
    path : path
        ``.png``, ``.pdf`` or ``.svg``; written atomically.
    title : str, optional
        Figure title.

    Notes
    -----
    Left: one point per model (test accuracy in %, parameters on a log axis), labelled with the
    model's name. Right: one line per (model, runtime, device), median latency in ms against
    batch size, both axes logarithmic, with the 90th percentile as a shaded band.
    """
    fmt = plot_format(path)
    results = [r.to_dict() if hasattr(r, "to_dict") else r for r in results]
    fig = new_figure(figsize=(11, 4.2), layout="constrained")
    ax_acc, ax_lat = fig.subplots(1, 2)
    colours = [f"C{i % 10}" for i in range(len(results))]
    points: dict[tuple[int, float], list[str]] = {}  # models at the same point share a label
    for row, colour in zip(results, colours):
        if row.get("parameters") and row.get("test_acc") is not None:
            xy = (row["parameters"], round(100 * row["test_acc"], 6))
            ax_acc.scatter(*xy, color=colour, zorder=3)
            points.setdefault(xy, []).append(row["name"])
    for xy, names in points.items():
        ax_acc.annotate(", ".join(names), xy, textcoords="offset points", xytext=(5, 4),
                        fontsize=8)
    ax_acc.set_xscale("log")
    ax_acc.set_xlabel("parameters")
    ax_acc.set_ylabel("test accuracy (%)")
    ax_acc.set_title("accuracy against size")
    ax_acc.grid(True, which="both", alpha=0.3)

    styles = {("torch", "cpu"): "-", ("onnxruntime", "cpu"): "--", ("torch", "cuda"): "-.",
              ("onnxruntime", "cuda"): ":"}
    drawn = False
    for row, colour in zip(results, colours):
        groups: dict[tuple[str, str], list[dict]] = {}
        for entry in row.get("latency", []):
            groups.setdefault((entry["runtime"], entry["device"]), []).append(entry)
        for (runtime, device), entries in groups.items():
            entries.sort(key=lambda e: e["batch"])
            xs = [e["batch"] for e in entries]
            ax_lat.plot(xs, [e["median_ms"] for e in entries], marker="o", markersize=3,
                        color=colour, linestyle=styles.get((runtime, device), "-"),
                        label=f"{row['name']} {runtime} {device}")
            ax_lat.fill_between(xs, [e["median_ms"] for e in entries],
                                [e["p90_ms"] for e in entries], color=colour, alpha=0.15)
            drawn = True
    ax_lat.set_xscale("log", base=2)
    batches = sorted({e["batch"] for row in results for e in row.get("latency", [])})
    if batches:
        ax_lat.set_xticks(batches, [str(b) for b in batches])
        ax_lat.minorticks_off()
    ax_lat.set_yscale("log")
    ax_lat.set_xlabel("batch size")
    ax_lat.set_ylabel("latency (ms, median; band to p90)")
    ax_lat.set_title("latency against batch size")
    ax_lat.grid(True, which="both", alpha=0.3)
    if drawn:
        ax_lat.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    with atomic_write(path) as tmp:
        fig.savefig(tmp, format=fmt, dpi=120)
