"""Figure of O-information by multiplet size (Clauw et al., Fig. 1 style)."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from prune_info.analysis.oinfo import _ERR, _series
from prune_info.errors import PruneInfoError
from prune_info.io import atomic_write
from prune_info.viz.figures import check_image_path, new_figure

__all__ = ['plot_oinfo']


def plot_oinfo(
    results: Mapping,
    path: str | os.PathLike,
    *,
    title: str | None = None,
) -> Path:
    """Per-layer bar plots of the best synergy and redundancy against the multiplet size.

    As Fig. 1 of Clauw et al.: one panel per layer (shared y axis), at every size ``k`` a blue
    bar for the minimum ``Omega`` (the most synergistic multiplet; negative when
    synergy-dominated) and a red bar for the maximum ``Omega`` (the most redundant one). With
    averaged results (:func:`average_over_seeds`) the bars show means with ±1 standard deviation.
    Written atomically; the format follows the suffix of ``path``.

    Parameters
    ----------
    results : dict
        ``{layer: MultipletSearch}`` (:func:`layer_oinfo`), ``{layer: search.to_dict()}`` or
        :func:`average_over_seeds` output.
    path : path
        Image file (``.png``, ``.pdf``, ``.svg``, ...).
    title : str, optional
        Figure title.

    Returns
    -------
    Path
    """
    if not results:
        raise PruneInfoError("nothing to plot: no layer in the results")
    fmt = check_image_path(path)
    n = len(results)
    fig = new_figure(figsize=(max(4.0, 3.6 * n), 3.6))
    axes = fig.subplots(1, n, sharey=True,
                             squeeze=False)
    for ax, (layer, res) in zip(axes[0], results.items()):
        sizes, syn, red = _series(res)
        x = np.asarray(sizes, dtype=float)
        syn_err = red_err = None
        if isinstance(res, Mapping) and "synergy_std" in res:
            syn_err, red_err = res["synergy_std"], res["redundancy_std"]
        ax.bar(x - 0.2, syn, width=0.4, color="tab:blue", yerr=syn_err, capsize=2,
               error_kw=_ERR, label="synergy (min Ω)")
        ax.bar(x + 0.2, red, width=0.4, color="tab:red", yerr=red_err, capsize=2,
               error_kw=_ERR, label="redundancy (max Ω)")
        ax.axhline(0.0, color="black", linewidth=0.8)
        n_units = getattr(res, "n_units", None) or (
            res.get("n_units") if isinstance(res, Mapping) else None)
        ax.set_title(f"{layer}" + (f" ({n_units} units)" if n_units else ""))
        ax.set_xlabel("multiplet size k (units, + label)")
        step = max(1, math.ceil(len(sizes) / 10))
        ax.set_xticks(sizes[::step])
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel("O-information Ω [bits]")
    axes[0][0].legend(loc="best", fontsize="small")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    target = Path(path)
    with atomic_write(target) as tmp:
        fig.savefig(tmp, format=fmt, dpi=120, bbox_inches="tight")
    return target
