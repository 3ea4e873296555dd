"""Figure of the sub-network experiment: accuracy after retraining by criterion and size."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from prune_info.io import atomic_write
from prune_info.viz.figures import new_figure

if TYPE_CHECKING:  # viz sits below experiments: the table's type only
    from prune_info.experiments.subnetworks import ComparisonTable


def plot_comparison(table: ComparisonTable, path: str | Path, title: str = "") -> None:
    """Accuracy drop against selection size per criterion, mean ± std (Clauw et al., Fig. 2)."""
    entries = table.entries

    fig = new_figure(figsize=(6.5, 4))
    ax = fig.subplots()
    criteria = list(dict.fromkeys(e.criterion for e in entries))
    for i, criterion in enumerate(criteria):
        mine = [e for e in entries if e.criterion == criterion]
        x = np.array([float(e.value) for e in mine])
        y = np.array([e.drop_pp_mean for e in mine])
        err = np.array([e.drop_pp_std for e in mine])
        style = "--" if criterion == "random" else "-"
        ax.errorbar(x + (i - len(criteria) / 2) * 0.04 * (x.max() - x.min() + 1e-9) / 4, y,
                    yerr=err, fmt=style + "o", capsize=3, markersize=4, label=criterion)
    kind = entries[0].selection if entries else "keep"
    ax.set_xlabel("units kept per layer" if kind == "keep" else "fraction of units removed")
    ax.set_ylabel("test accuracy drop vs dense (pp)")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_title(title)
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    suffix = Path(path).suffix.lstrip(".") or "png"
    with atomic_write(path) as tmp:
        fig.savefig(tmp, format=suffix, dpi=120)
