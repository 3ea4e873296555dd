"""Layer-wise synergy and redundancy of a trained network (Clauw, Marinazzo & Stramaglia, Sec. 4.1).

For each hidden layer, the units are read on a labelled split (pre-activations by default, as in
the paper), and for every multiplet size ``k`` the most synergistic (min ``Omega``) and the most
redundant (max ``Omega``) multiplet of ``k`` units **plus the label** are searched with
:func:`prune_info.measures.multiplets.search_multiplets` (exhaustive to 6 units for layers of at
most 40 units and to 4 above, then greedy growth, plus a beam of 8 for wide layers).
:func:`average_over_seeds` averages the best ``Omega`` over networks trained with different seeds
and :func:`plot_oinfo` draws the paper's Fig. 1: per layer, bars of min ``Omega`` (synergy) and
max ``Omega`` (redundancy) against the multiplet size.

Bad input
---------
- fewer samples than variables (``n_samples <= n_units + 1``), a label with a single class, a
  layer of fewer than 2 units, an empty split: :class:`~prune_info.errors.PruneInfoError` naming
  the layer and the fix;
- ``max_size`` (or ``max_exhaustive``) larger than a layer: **clipped** to the layer's width,
  with one :class:`MultipletSizeClipped` warning per layer (so that ``max_size=20`` works on a
  network whose layers have different widths);
- constant, duplicated or linearly dependent units: the estimator regularises the covariance
  (see :class:`~prune_info.measures.gaussian.SingularCovarianceWarning`); the many warnings of one
  layer are collapsed into **one** ``SingularCovarianceWarning`` naming the layer and the
  duplicated / constant units found. Every value stays finite.

Examples
--------
>>> from prune_info.data import load_dataset
>>> from prune_info.training import TrainConfig, train_model
>>> data = load_dataset("digits")
>>> ckpt = train_model(data, "64-10-10", config=TrainConfig(epochs=2), progress=False)
>>> res = layer_oinfo(ckpt, data.val, max_size=5)
>>> sorted(res), sorted(res["fc1"].sizes), res["fc1"].sizes[2].synergy_method
(['fc1'], [2, 3, 4, 5], 'exhaustive')
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from torch import nn

from prune_info.checkpoint import Checkpoint
from prune_info.criteria.gaussian import layer_outputs_float64
from prune_info.data import Dataset, Samples, as_samples, bounded, note
from prune_info.errors import PruneInfoError
from prune_info.io import to_plain
from prune_info.measures.gaussian import SingularCovarianceWarning
from prune_info.measures.multiplets import MultipletSearch, search_multiplets
from prune_info.nn import LayerInfo, first_sample, resolve_layers
from prune_info.reports import Report

__all__ = [
    "MultipletSizeClipped", "OINFO_FORMAT", "OinfoDocument", "average_over_seeds", "dominance",
    "layer_oinfo", "oinfo_checkpoint", "results_to_dict",
]

#: ``format`` key of the JSON documents written by ``prune-info oinfo``.
OINFO_FORMAT = "prune-info-oinfo"


class MultipletSizeClipped(UserWarning):
    """``max_size`` or ``max_exhaustive`` exceeded a layer's width and was lowered to it."""


def _model_of(ckpt_or_model) -> nn.Module:
    model = getattr(ckpt_or_model, "model", ckpt_or_model)
    if not isinstance(model, nn.Module):
        raise PruneInfoError(
            f"expected a Checkpoint or an nn.Module, got {type(ckpt_or_model).__name__}"
        )
    return model


def _check_labels(y: np.ndarray) -> None:
    classes = np.unique(y)
    if classes.size < 2:
        raise PruneInfoError(
            f"the labels hold a single class ({classes[0]}) in {len(y)} samples: the "
            "O-information with the label is undefined; fix: use samples of at least two classes"
        )


def _clip(name: str, what: str, value: int | None, width: int) -> int | None:
    if value is None or isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        return value  # validated by search_multiplets
    if value > width:
        warnings.warn(
            f"{name}: {what} {value} exceeds the layer's {width} units; searched up to {width}",
            MultipletSizeClipped, stacklevel=3,
        )
        return width
    return int(value)


def _degenerate_units(acts: np.ndarray) -> str:
    """Words naming the constant and duplicated units of ``acts`` (may be empty)."""
    parts = []
    constant = np.flatnonzero(np.ptp(acts, axis=0) == 0)
    if constant.size:
        parts.append("constant unit" + ("s " if constant.size > 1 else " ")
                     + ", ".join(map(str, constant[:8])) + (" ..." if constant.size > 8 else ""))
    _, first, inverse = np.unique(acts.T, axis=0, return_index=True, return_inverse=True)
    inverse = np.asarray(inverse).reshape(-1)
    dup = [(int(j), int(first[inverse[j]])) for j in range(acts.shape[1])
           if first[inverse[j]] != j and j not in constant]
    if dup:
        parts.append("duplicated unit" + ("s " if len(dup) > 1 else " ")
                     + ", ".join(f"{j} (= {i})" for j, i in dup[:8])
                     + (" ..." if len(dup) > 8 else ""))
    return "; ".join(parts)


def _search_layer(name: str, acts: np.ndarray, labels: np.ndarray, *, max_exhaustive,
                  max_size, beam_width, seed: int, progress: bool) -> MultipletSearch:
    n, width = acts.shape
    if width < 2:
        raise PruneInfoError(
            f"{name}: a multiplet needs at least 2 units, the layer has {width}; fix: leave it "
            "out (`layers`)"
        )
    if n <= width + 1:
        raise PruneInfoError(
            f"{name}: {n} samples for {width} units + label: the Gaussian-copula estimator "
            "needs more samples than variables; fix: use a larger split (or fewer layers)"
        )
    max_size = _clip(name, "max_size", max_size, width)
    max_exhaustive = _clip(name, "max_exhaustive", max_exhaustive, width)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            res = search_multiplets(acts, labels, max_exhaustive=max_exhaustive,
                                    max_size=max_size, beam_width=beam_width, seed=seed,
                                    layer=name, progress=progress)
        except PruneInfoError as exc:
            raise PruneInfoError(f"{name}: {exc}") from None
    singular = [w for w in caught if issubclass(w.category, SingularCovarianceWarning)]
    for w in caught:  # anything else passes through unchanged
        if not issubclass(w.category, SingularCovarianceWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if singular:
        which = _degenerate_units(acts)
        warnings.warn(
            f"{name}: singular covariance ({which or 'linearly dependent units'}); "
            "regularised with a 1e-10 ridge, values stay finite but multiplets of such units "
            "are not measurements",
            SingularCovarianceWarning, stacklevel=3,
        )
    return res


def layer_oinfo(
    ckpt_or_model: nn.Module | Checkpoint,
    split: Samples,
    layers: Sequence[str | LayerInfo] | str | None = None,
    *,
    max_exhaustive: int | None = None,
    max_size: int | None = None,
    beam_width: int | None = None,
    post_activation: bool = False,
    seed: int = 0,
    batch_size: int = 4096,
    device: str = "cpu",
    progress: bool = False,
) -> dict[str, MultipletSearch]:
    """Most synergistic and most redundant multiplets of every size in each hidden layer.

    Parameters
    ----------
    ckpt_or_model : Checkpoint or nn.Module
        The trained network (on ``device``).
    split : Split
        Labelled samples, e.g. ``data.val`` (Clauw et al. use the test set).
    layers : list of str, or comma-separated str, optional
        Hidden layers to analyse; default all of them.
    max_exhaustive : int, optional
        Largest size searched exhaustively; default 6 for layers of at most 40 units, 4 above.
        Clipped to each layer's width.
    max_size : int, optional
        Largest multiplet size (units, the label comes on top); default the whole layer.
        Clipped to each layer's width with a :class:`MultipletSizeClipped` warning.
    beam_width : int, optional
        Width of the extra beam search; default 0 up to 40 units, 8 above.
    post_activation : bool, default False
        Read the units after the activation function (the paper reads them before).
    seed : int, default 0
        Seed of the copula normalisation's random tie breaking.
    batch_size : int, default 4096
        Samples per forward pass.
    device : str, default "cpu"
        Where the forward passes run.
    progress : bool, default False
        tqdm bar of each exhaustive stage on stderr.

    Returns
    -------
    dict of str to MultipletSearch
        Keyed by layer name, in model order; ``res[layer].sizes[k]`` holds the best multiplets
        of ``k`` units and their ``Omega`` in bits (``> 0`` redundancy-, ``< 0``
        synergy-dominated) with the method that found them.

    Raises
    ------
    PruneInfoError
        Unknown layer, empty split or single-class labels, too few samples for a layer, a layer
        of fewer than 2 units, invalid sizes.

    Warns
    -----
    MultipletSizeClipped
        Once per layer whose width is below ``max_size`` or ``max_exhaustive``.
    SingularCovarianceWarning
        Once per layer with constant, duplicated or linearly dependent units.
    """
    model = _model_of(ckpt_or_model)
    split = as_samples(split, "the split")
    chosen = resolve_layers(model, layers, example=first_sample(model, split))
    for layer in chosen:
        if len(split) <= layer.n_units + 1:
            raise PruneInfoError(
                f"{layer.name}: {len(split)} samples for {layer.n_units} units + label: the "
                "Gaussian-copula estimator needs more samples than variables; fix: use a "
                "larger split (or fewer layers)"
            )
    outputs, labels = layer_outputs_float64(model, chosen, split,
                                            post_activation=post_activation,
                                            batch_size=batch_size, device=device)
    _check_labels(labels)
    return {
        layer.name: _search_layer(layer.name, outputs[layer.name], labels,
                                  max_exhaustive=max_exhaustive, max_size=max_size,
                                  beam_width=beam_width, seed=seed, progress=progress)
        for layer in chosen
    }


# --------------------------------------------------------------------------------------------
# Summaries


def dominance(result: MultipletSearch | Mapping) -> dict:
    """Whether a layer's extremes lean to synergy or redundancy, summed over multiplet sizes.

    ``synergy = sum_k max(0, -min Omega_k)`` and ``redundancy = sum_k max(0, max Omega_k)``
    (bits); ``label`` is ``"redundancy"`` or ``"synergy"`` after the larger. This is a reading
    aid for the bar plots (which extreme is taller), not a statistic of the paper.

    Parameters
    ----------
    result : MultipletSearch, or its ``to_dict()``, or one layer of :func:`average_over_seeds`

    Returns
    -------
    dict
        ``{"synergy": float, "redundancy": float, "label": str}``
    """
    sizes, syn, red = _series(result)
    s = float(np.clip(-np.asarray(syn), 0, None).sum())
    r = float(np.clip(np.asarray(red), 0, None).sum())
    return {"synergy": s, "redundancy": r, "label": "redundancy" if r >= s else "synergy"}


def _series(result) -> tuple[list[int], list[float], list[float]]:
    """(sizes, min Omega, max Omega) of a search, its dict, or an averaged layer."""
    if isinstance(result, MultipletSearch):
        ks = sorted(result.sizes)
        return (ks, [result.sizes[k].synergy_omega for k in ks],
                [result.sizes[k].redundancy_omega for k in ks])
    if isinstance(result, Mapping) and "synergy_mean" in result:
        return list(result["sizes"]), list(result["synergy_mean"]), list(result["redundancy_mean"])
    if isinstance(result, Mapping) and "sizes" in result:
        rows = sorted(result["sizes"], key=lambda r: r["size"])
        return ([r["size"] for r in rows], [r["synergy_omega"] for r in rows],
                [r["redundancy_omega"] for r in rows])
    raise PruneInfoError(
        f"expected a MultipletSearch or its to_dict(), got {type(result).__name__}"
    )


def results_to_dict(results: Mapping[str, MultipletSearch]) -> dict:
    """``{"layers": [...]}``: each layer's :meth:`MultipletSearch.to_dict` plus its dominance."""
    return {"layers": [{**res.to_dict(), "dominance": dominance(res)}
                       for res in results.values()]}


def average_over_seeds(results: Sequence[Mapping]) -> dict:
    """Mean and standard deviation of the best ``Omega`` per layer and size across seeds.

    Parameters
    ----------
    results : list of dict
        One :func:`layer_oinfo` result per seed (``{layer: MultipletSearch}``; the
        ``to_dict()`` form of each search is accepted too, e.g. read back from JSON).

    Returns
    -------
    dict
        ``{layer: {"sizes": [k...], "n_seeds": int, "synergy_mean", "synergy_std",
        "redundancy_mean", "redundancy_std": [float per size]}}`` in bits. The standard
        deviation is the sample one (``ddof = 1``), 0 for a single seed. Sizes are those
        present for every seed (layers of different widths across seeds keep their common
        sizes).

    Raises
    ------
    PruneInfoError
        On an empty list, or when the seeds do not cover the same layers.

    Examples
    --------
    >>> from prune_info.measures.multiplets import MultipletSearch, SizeResult
    >>> def one(v):
    ...     size = SizeResult(2, (0, 1), -v, "exhaustive", (0, 1), v, "exhaustive")
    ...     return {"fc1": MultipletSearch("fc1", 2, 100, 2, 2, 0, {2: size},
    ...                                    np.array([0, 1]), 1, 0.0)}
    >>> avg = average_over_seeds([one(1.0), one(3.0)])
    >>> avg["fc1"]["synergy_mean"], avg["fc1"]["redundancy_std"]
    ([-2.0], [1.4142135623730951])
    """
    results = list(results)
    if not results:
        raise PruneInfoError("no result to average; pass one layer_oinfo result per seed")
    layers = list(results[0])
    for i, res in enumerate(results[1:], start=1):
        if set(res) != set(layers):
            raise PruneInfoError(
                f"seed result {i} covers layers {sorted(res)} but result 0 covers "
                f"{sorted(layers)}; fix: analyse the same layers for every seed"
            )
    out = {}
    for layer in layers:
        series = [_series(res[layer]) for res in results]
        common = sorted(set.intersection(*(set(s[0]) for s in series)))
        if not common:
            raise PruneInfoError(f"{layer}: the seeds share no multiplet size")
        syn = np.array([[dict(zip(s[0], s[1]))[k] for k in common] for s in series])
        red = np.array([[dict(zip(s[0], s[2]))[k] for k in common] for s in series])
        ddof = 1 if len(results) > 1 else 0
        out[layer] = {
            "sizes": common,
            "n_seeds": len(results),
            "synergy_mean": syn.mean(axis=0).tolist(),
            "synergy_std": syn.std(axis=0, ddof=ddof).tolist(),
            "redundancy_mean": red.mean(axis=0).tolist(),
            "redundancy_std": red.std(axis=0, ddof=ddof).tolist(),
        }
    return out


# --------------------------------------------------------------------------------------------
# Figure

_ERR = {"ecolor": "0.35", "elinewidth": 0.8}


#: How each search method is shown in the table.
_METHOD = {"exhaustive": "exh", "greedy": "greedy", "beam": "beam"}


def _units(units: list[int], limit: int = 6) -> str:
    text = ",".join(map(str, units[:limit]))
    return text + (f",... ({len(units)})" if len(units) > limit else "")


@dataclass(frozen=True)
class OinfoDocument(Report):
    """The O-information search of one checkpoint, as written and printed.

    ``layers`` are :func:`results_to_dict`'s (each search and its dominance, plain JSON
    values); ``notes`` the warnings the search gave (sizes clipped to a layer, singular
    covariances). ``results`` are the searches themselves (in memory only; empty for a
    document read back from a file).
    """

    FORMAT = OINFO_FORMAT

    model: str | None
    arch: str
    dataset: str
    split: str
    n_samples: int
    reading: str
    seed: int
    notes: list[str]
    layers: list[dict[str, Any]]
    results: dict[str, MultipletSearch] = field(default_factory=dict, compare=False,
                                                metadata={"json": False})

    def table(self) -> str:
        lines = [f"{self.arch} on {self.dataset} {self.split} ({self.n_samples} samples), "
                 f"{self.reading}; Omega of k units + label in bits (< 0 synergy, > 0 "
                 "redundancy)"]
        rows = [("layer", "k", "min Omega", "found", "synergy units", "max Omega", "found",
                 "redundancy units")]
        footers = {}
        for layer in self.layers:
            for i, r in enumerate(layer["sizes"]):
                rows.append((layer["layer"] if i == 0 else "", str(r["size"]),
                             f"{r['synergy_omega']:+.4f}", _METHOD[r["synergy_method"]],
                             _units(r["synergy_units"]), f"{r['redundancy_omega']:+.4f}",
                             _METHOD[r["redundancy_method"]], _units(r["redundancy_units"])))
            dom = layer["dominance"]
            footers[len(rows) - 1] = (
                f"{layer['layer']}: {layer['n_units']} units, {layer['n_evaluated']:,} "
                f"multiplets in {layer['seconds']:.1f} s; summed over k: synergy "
                f"{dom['synergy']:.3f} bits, redundancy {dom['redundancy']:.3f} bits -> "
                f"{dom['label']}-dominated")
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        right = {1, 2, 5}
        for index, row in enumerate(rows):
            cells = [cell.rjust(w) if i in right else cell.ljust(w)
                     for i, (cell, w) in enumerate(zip(row, widths))]
            lines.append("  ".join(cells).rstrip())
            if index in footers:
                lines.append("  " + footers[index])
        return "\n".join(lines)


def oinfo_checkpoint(ckpt: Checkpoint, data: Dataset, *, split: str = "val",
                     max_samples: int | None = None, **search: Any) -> OinfoDocument:
    """The O-information search (:func:`layer_oinfo`) of ``ckpt`` on one split of ``data``.

    ``search`` are :func:`layer_oinfo`'s keyword arguments (``layers``, ``max_exhaustive``,
    ``max_size``, ``beam_width``, ``post_activation``, ``seed``, ``batch_size``, ``device``,
    ``progress``); its warnings become the document's ``notes``, once each.

    Raises
    ------
    PruneInfoError
        An unknown split, or what the search refuses.
    """
    if split not in ("val", "test", "train"):
        raise PruneInfoError(f"unknown `split` {split!r}; choose from val, test, train")
    samples = getattr(data, split)
    if max_samples is not None:
        samples = bounded(samples, max_samples, "the O-information search", note)
    layers = search.pop("layers", None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = layer_oinfo(ckpt.model, samples, layers, **search)
    return OinfoDocument(
        model=ckpt.source, arch=ckpt.spec, dataset=data.name, split=split,
        n_samples=len(samples),
        reading="post-activation" if search.get("post_activation") else "pre-activation",
        seed=int(search.get("seed", 0)),
        notes=list(dict.fromkeys(str(w.message) for w in caught)),
        layers=to_plain(results_to_dict(results)["layers"]), results=results)
