"""Figures (matplotlib, Agg backend), each written atomically.

Every plotting function takes plain data (tensors, arrays or lists keyed by name), draws with the
non-interactive Agg backend, and writes its file through :func:`prune_info.io.atomic_write`, so a
failed or interrupted plot never leaves a partial image. The format follows the file suffix
(``.png``, ``.pdf``, ``.svg``, ...).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike

from prune_info.errors import PruneInfoError
from prune_info.io import atomic_write

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ['MEASURE_LABELS', 'check_image_path', 'violin_plot']

#: Axis labels of the measures prune-info plots; other names are shown as they are.
MEASURE_LABELS = {
    "entropy": "entropy H(T) [bits]",
    "mi": "mutual information I(T;Y) [bits]",
    "kl": "KL selectivity [bits]",
    "magnitude": "L2 norm of incoming weights",
    "magnitude-l1": "L1 norm of incoming weights",
    "random": "random score",
}


def new_figure(**kwargs: Any) -> Figure:
    """A matplotlib figure on its own Agg canvas: the one way prune-info makes figures.

    No pyplot state is touched, so the user's backend (a notebook's, say) stays as it is and a
    figure needs no closing. ``kwargs`` go to ``matplotlib.figure.Figure``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(**kwargs)
    FigureCanvasAgg(figure)
    return figure


def check_image_path(path: str | os.PathLike) -> str:
    """The image format of ``path`` from its suffix, checked before any work is done.

    Raises
    ------
    PruneInfoError
        If matplotlib cannot write that format.
    """
    target = Path(path)
    fmt = target.suffix.lstrip(".").lower()
    supported = new_figure().canvas.get_supported_filetypes()
    if fmt not in supported:
        raise PruneInfoError(
            f"cannot write a figure to {target}: unknown image format {fmt or '(no suffix)'!r}; "
            f"fix: end the file name with one of {', '.join('.' + s for s in sorted(supported))}"
        )
    return fmt


def _save(figure, path: str | os.PathLike) -> Path:
    """Write ``figure`` atomically; the format comes from the suffix of ``path``."""
    target = Path(path)
    fmt = check_image_path(target)
    with atomic_write(target) as tmp:
        figure.savefig(tmp, format=fmt, bbox_inches="tight")
    return target


def _density(data: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """Gaussian kernel density (Scott's bandwidth), and a flat profile for constant data.

    matplotlib's own estimate fails on data without spread (a layer whose units all have
    entropy 0, or a layer of one unit); those are drawn as a flat line at their value.
    """
    spread = data.std()
    if data.size < 2 or spread == 0:
        return np.ones_like(coords)
    bandwidth = spread * data.size ** (-1.0 / 5.0)
    z = (coords[:, None] - data[None, :]) / bandwidth
    return np.exp(-0.5 * z * z).sum(axis=1) / (data.size * bandwidth * np.sqrt(2 * np.pi))


def violin_plot(
    values: Mapping[str, Mapping[str, ArrayLike]],
    path: str | os.PathLike,
    *,
    title: str | None = None,
    labels: Mapping[str, str] | None = None,
) -> Path:
    """Per-layer violin plots of per-unit measures, one panel per measure (Fig. 1 of the paper).

    Each violin shows the distribution of one measure over the units of one layer, with lines at
    the minimum, maximum, mean and median, as in Amjad, Liu & Geiger, Fig. 1.

    Parameters
    ----------
    values : mapping
        ``{measure: {layer: per-unit values}}``; values may be tensors, arrays or lists. Layers
        are drawn in the mapping's order.
    path : path
        Image file to write; its suffix gives the format.
    title : str, optional
        Figure title.
    labels : mapping, optional
        Axis label per measure (default :data:`MEASURE_LABELS`, else the name).

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    PruneInfoError
        Nothing to plot, an empty layer, non-finite values, or an unknown image format.

    Examples
    --------
    >>> violin_plot({"mi": {"fc1": [0.1, 0.3, 0.2], "fc2": [0.5, 0.7, 0.9]}},
    ...             "scores.png")
    PosixPath('scores.png')
    """
    if not values or not any(values.values()):
        raise PruneInfoError("nothing to plot; fix: give at least one measure of one layer")
    labels = {**MEASURE_LABELS, **(labels or {})}
    arrays: dict[str, dict[str, np.ndarray]] = {}
    for measure, per_layer in values.items():
        arrays[measure] = {}
        for layer, v in per_layer.items():
            a = np.asarray(v.tolist() if hasattr(v, "tolist") else v, dtype=np.float64).ravel()
            if a.size == 0 or not np.isfinite(a).all():
                raise PruneInfoError(
                    f"cannot plot {measure} of {layer}: "
                    f"{'no values' if a.size == 0 else 'NaN/Inf values'}"
                )
            arrays[measure][layer] = a

    from matplotlib import cbook

    n_panels = len(arrays)
    n_layers = max(len(v) for v in arrays.values())
    figure = new_figure(figsize=(max(3.0, 1.1 * n_layers + 1.5) * n_panels, 3.8))
    axes = figure.subplots(1, n_panels, squeeze=False)
    for ax, (measure, layer_arrays) in zip(axes[0], arrays.items()):
        names = list(layer_arrays)
        stats = cbook.violin_stats([layer_arrays[n] for n in names], _density)
        parts = ax.violin(stats, positions=range(1, len(names) + 1), widths=0.8,
                          showmeans=True, showmedians=True, showextrema=True)
        parts["cmeans"].set_linestyle("--")
        ax.set_xticks(range(1, len(names) + 1), names)
        ax.set_ylabel(labels.get(measure, measure))
        ax.set_xlabel("layer")
        ax.grid(axis="y", alpha=0.3)
    from matplotlib.lines import Line2D

    colour = parts["cmedians"].get_color()[0]
    axes[0][0].legend([Line2D([], [], color=colour), Line2D([], [], color=colour, ls="--")],
                      ["median", "mean"], fontsize="small", loc="best")
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return _save(figure, path)
