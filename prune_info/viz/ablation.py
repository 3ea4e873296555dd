"""Figures of cumulative ablation curves, drawn like Figs. 2-5 of Amjad, Liu & Geiger.

Accuracy (%) against the number of ablated units, one panel per layer (or one for the whole
network). Each criterion has one colour: solid when its lowest-ranked units are ablated first,
dashed when its highest-ranked units go first; random ablation is a grey mean line with a +- std
band. A band around a criterion's line shows its std over seeds (studies). Curves computed at some
``k`` only (``at_k``, see :mod:`prune_info.analysis.curves`) are drawn against those ``k``, with a
dot at each computed point. Files are written atomically; the format follows the suffix.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from prune_info.errors import PruneInfoError
from prune_info.io import atomic_write
from prune_info.viz.figures import check_image_path, new_figure

__all__ = ['plot_ablation']


def plot_curves(curves: dict, path: Path, title: str | None = None) -> Path:
    """Accuracy against units ablated: one panel per scope, criterion orders and random band.

    ``curves`` is :meth:`prune_info.analysis.curves.CurveSet.to_dict`; a scope listed in its
    ``at_k`` is drawn against those ``k``.
    """
    scopes = list(curves["counts"])
    at_k = curves.get("at_k", {})
    n = len(scopes)
    fig = new_figure(figsize=(max(4.0, 4.2 * n), 3.6))
    axes = fig.subplots(1, n, sharey=True, squeeze=False)
    total = float(curves["n_samples"])
    colours = {"low": "tab:blue", "high": "tab:red"}
    for ax, scope in zip(axes[0], scopes):
        for label, rows in curves["counts"][scope].items():
            acc = np.asarray(rows, dtype=float) / total
            k = _k_values(at_k.get(scope), acc.shape[1])
            marker = "." if scope in at_k else None
            if label == "random":
                mean, std = acc.mean(0), acc.std(0)
                ax.plot(k, mean, color="grey", marker=marker,
                        label=f"random (mean ± sd, {acc.shape[0]})")
                ax.fill_between(k, mean - std, mean + std, color="grey", alpha=0.3)
            else:
                order = label.rsplit(":", 1)[-1]
                ax.plot(k, acc[0], color=colours.get(order), marker=marker, label=label)
        ax.set_title(f"{scope} ({curves['units'][scope]} units)")
        ax.set_xlabel("units ablated")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("test accuracy")
    axes[0][0].legend(loc="best", fontsize="small")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    with atomic_write(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    return path


def _k_values(ks: Sequence[int] | None, width: int) -> np.ndarray:
    """The ``k`` of each point: the computed ones, or ``0..width - 1``."""
    if ks is None:
        return np.arange(width)
    values = np.asarray(list(ks), dtype=float)
    if values.shape[0] != width:
        raise PruneInfoError(f"{values.shape[0]} k values for curves of {width} points")
    return values


_COLOURS = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown",
            "tab:pink", "tab:olive", "tab:cyan"]
_STYLES = {"low": "-", "high": "--"}


def plot_ablation(
    panels: Mapping[str, Mapping[str, tuple[np.ndarray, np.ndarray | None]]],
    path: str | os.PathLike,
    *,
    title: str | None = None,
    xlabel: str = "units ablated",
    ks: Mapping[str, Sequence[int] | None] | None = None,
) -> None:
    """Draw cumulative ablation curves, one panel per scope, and write the figure to ``path``.

    Parameters
    ----------
    panels : dict
        ``{panel title: {label: (mean, std)}}`` with accuracies as fractions over ``k = 0..K``.
        Labels are ``"<criterion>:low"``, ``"<criterion>:high"`` or ``"random"``; ``std`` may be
        None (no band).
    path : path
        Output file; ``.png``, ``.pdf``, ``.svg``, ...
    title : str, optional
        Figure title.
    xlabel : str
    ks : dict, optional
        ``{panel title: k values}`` for panels computed at some ``k`` only (the length of their
        curves); the others are drawn at ``k = 0..K``.
    """
    fmt = check_image_path(path)
    n = max(1, len(panels))
    figure = new_figure(figsize=(4.6 * n, 3.8))
    axes = figure.subplots(1, n, squeeze=False, sharey=True)
    criteria: list[str] = []
    for labels in panels.values():
        for label in labels:
            name = label.split(":")[0]
            if label != "random" and name not in criteria:
                criteria.append(name)
    colour = {c: _COLOURS[i % len(_COLOURS)] for i, c in enumerate(criteria)}
    points = ks or {}
    for ax, (panel, labels) in zip(axes[0], panels.items()):
        sparse = points.get(panel) is not None
        marker = "." if sparse else None
        for label, (mean, std) in labels.items():
            mean = 100 * np.asarray(mean, dtype=float)
            k = _k_values(points.get(panel), mean.shape[0])
            if label == "random":
                ax.plot(k, mean, color="0.35", lw=1.4, marker=marker, label="random")
                if std is not None:
                    s = 100 * np.asarray(std, dtype=float)
                    ax.fill_between(k, mean - s, mean + s, color="0.6", alpha=0.35, lw=0)
                continue
            name, _, order = label.partition(":")
            ax.plot(k, mean, color=colour[name], ls=_STYLES.get(order, ":"), lw=1.4,
                    marker=marker, label=f"{name} ({order} first)" if order else name)
            if std is not None and np.any(np.asarray(std) > 0):
                s = 100 * np.asarray(std, dtype=float)
                ax.fill_between(k, mean - s, mean + s, color=colour[name], alpha=0.12,
                                lw=0)
        ax.set_title(panel, fontsize=10)
        ax.set_xlabel(xlabel)
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("test accuracy [%]")
    handles, names = axes[0][0].get_legend_handles_labels()
    if handles:
        axes[0][-1].legend(handles, names, fontsize=8, loc="lower left")
    if title:
        figure.suptitle(title, fontsize=11)
    figure.tight_layout()
    with atomic_write(path) as tmp:
        figure.savefig(tmp, format=fmt, dpi=120, bbox_inches="tight")
