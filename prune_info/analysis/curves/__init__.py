"""Cumulative ablation curves, computed in batches, and the statistics that compare them.

Section V of Amjad, Liu & Geiger ranks the units of a layer (or of the whole network) by an
information measure computed on the validation set, then ablates the ``k`` lowest- (or highest-)
ranked units and measures the accuracy on the test set, for every ``k`` from 0 to ``n``. An
ablated unit's output is replaced by zero (the paper's default) or by its mean on the training set.

A curve is the number of correctly classified test samples after ablating the first ``k`` units of
an *ordering* (a permutation of the layer's units, first to ablate first), ``k = 0 .. n``.

How the curves are computed
---------------------------
A curve is not ``n + 1`` passes of the whole network. For a :class:`torch.nn.Sequential` model
(every model prune-info builds), the network is cut at the point where the units are read (the
activation module after the layer); the part before the cut runs once per batch of test samples.
Then, for layer-wise curves (:func:`layerwise_curves`), one of two paths (:mod:`.running` and
:mod:`.masked`; the points and orderings are in :mod:`.points`, the public curves here):

* ``prefix`` (MLP layers, and any layer followed by a Linear layer): ablating unit ``j`` removes
  ``W[:, j] (h_j - a_j)`` from the next layer's input, so the inputs for ``k = 0..n`` are one
  running sum over the ordering. The rest of the network runs on those, all ``k`` at once. Every
  prediction is checked against a bound on the rounding difference to the naive masked product
  (the classic ``n u / (1 - n u)`` bound, carried through the remaining layers); the few whose
  top-two logit margin is within the bound (well under 1 % on FashionMNIST) are recomputed
  exactly.
* ``batched`` (everything else, e.g. convolutional layers): the masks of *all* ``k`` and *all*
  orderings are stacked into one boolean matrix; identical masks are computed once; chunks of
  masks are applied to the cached layer output at once (``[masks, samples, units]``) and the rest
  of the network runs on each chunk folded into the batch dimension, chunks sized to a memory
  budget. The rest of the network sees exactly the values a masked forward pass sees.

Either way every count equals the naive loop's (mask ``k`` units with a forward hook, run the
whole network) *exactly*, not just approximately: :func:`naive_curves` is that loop, kept as the
reference for tests and benchmarks. (Row results of CPU matrix products do not depend on how many
rows are computed together once there are more than a dozen; below that BLAS switches kernels, so
small recomputations are padded.)

Points of a curve
-----------------
Every ``k`` is cheap on an MLP layer (the prefix path), but on a convolutional layer each
distinct ``(ordering, k)`` is one pass of the rest of the network over the test set: a 512-channel
ResNet layer with 3 orderings is 1,500 of them. ``at_k`` (in every curve function) computes the
curves at some ``k`` only, e.g. ``spaced_ks(n, 33)``; the batched path then builds masks for those
``k`` only, the prefix path still runs its one running sum and keeps those columns. The counts at
those ``k`` are exactly the full curve's. :class:`CurveSet` records the ``k`` of such scopes in
``at_k`` (absent for full curves, so their JSON is unchanged), and :meth:`CurveSet.counts_at` reads
a curve at the computed ``k`` nearest to a given one. ``prune-info ablate`` computes
:data:`DEFAULT_STEPS` points on convolutional scopes wider than :data:`SPARSE_ABOVE` channels and
on linear ones wider than :data:`LINEAR_SPARSE_ABOVE` units (:func:`default_at_k`), and every ``k``
elsewhere, so the papers' 100-unit MLP layers keep their full curves; the library computes every
``k`` unless asked.

Whole-network curves (:func:`network_curves`) rank the units of several layers together; the
network is cut at every one of those layers and each chunk of masks is applied layer after layer
(the ``batched`` path).

Models that are not :class:`~torch.nn.Sequential`, whose ablation points are nested inside
sub-modules, or that call one module at two places, fall back to the naive loop (correct, slower),
which masks the units where :func:`prune_info.capture.unit_hooks` finds them: the one call of the
activation module that consumes the layer's output (see :mod:`prune_info.capture`).

Statistics
----------
:func:`mean_gap` compares an information ordering with random ablation over seeds: the mean gap
``MG@k`` in percentage points (positive: the information ordering keeps more accuracy than random)
and the two-sided Wilcoxon signed-rank p-value of the paired differences. :func:`ks_gap` compares
the random curves of two scenarios (two layers, two regularisers) with the two-sample
Kolmogorov-Smirnov test. Both are reported as the paper does: ``MG@80 = 15.2, p = 3.6e-9``.

Examples
--------
>>> from prune_info.data import load_dataset
>>> from prune_info.training import TrainConfig, train_model
>>> data = load_dataset("digits")
>>> ckpt = train_model(data, "64-32-10", config=TrainConfig(epochs=3), progress=False)
>>> order = torch.arange(32)                                   # ablate fc1:0, fc1:1, ... in turn
>>> counts = layerwise_curve(ckpt.model, "fc1", order, data.test)
>>> counts.shape, int(counts[-1]) <= int(counts[0])
(torch.Size([33]), True)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from prune_info.analysis.curves.masked import (
    _eval_mode,
    _fill_for,
    _masked_counts,
    _naive_counts,
    unit_means,
)
from prune_info.analysis.curves.points import (
    ABLATE_TO,
    DEFAULT_BATCH_SIZE,
    DEFAULT_MEMORY_MB,
    DEFAULT_STEPS,
    LINEAR_SPARSE_ABOVE,
    METHODS,
    ORDERS,
    SPARSE_ABOVE,
    _points,
    check_at_k,
    check_order,
    check_random,
    default_at_k,
    nearest_k,
    random_orders,
    spaced_ks,
)
from prune_info.analysis.curves.running import (
    _check_split,
    _later_masks,
    _prefix_masks,
    _prefix_plan,
    _prefix_sum_counts,
)
from prune_info.criteria.ranking import rank_units
from prune_info.data import Split
from prune_info.errors import PruneInfoError
from prune_info.nn import LayerInfo, count_correct, first_sample, resolve_layers

__all__ = [
    "ABLATE_TO", "CurveSet", "DEFAULT_STEPS", "LINEAR_SPARSE_ABOVE", "METHODS", "ORDERS",
    "SPARSE_ABOVE", "ablated_correct", "check_at_k",
    "check_order", "compute_curves", "default_at_k", "group_curves", "layerwise_curve",
    "layerwise_curves",
    "naive_curves", "nearest_k", "network_curves", "network_orders", "random_orders",
    "spaced_ks", "unit_means",
]


# --------------------------------------------------------------------------------------------
# Public curve functions


def layerwise_curves(
    model: nn.Module,
    layer: str,
    orders: Tensor,
    split: Split,
    *,
    ablate_to: str = "zero",
    means: Tensor | Mapping[str, Tensor] | None = None,
    max_k: int | None = None,
    device: torch.device | str = "cpu",
    batch_size: int = DEFAULT_BATCH_SIZE,
    memory_mb: float = DEFAULT_MEMORY_MB,
    method: str = "auto",
    info: dict | None = None,
    at_k: Sequence[int] | Tensor | None = None,
    progress: bool = False,
) -> Tensor:
    """Cumulative ablation curves of one layer for several orderings at once.

    Parameters
    ----------
    model : nn.Module
        The trained model (put in eval mode for the computation, then restored).
    layer : str
        A prunable layer, e.g. ``"fc1"``.
    orders : Tensor
        int64 ``[R, n]`` (or ``[n]``): each row a permutation of the layer's ``n`` units, first
        to ablate first.
    split : Split
        Samples to count correct predictions on (the test set).
    ablate_to : {"zero", "mean"}
    means : Tensor or dict, optional
        Training-set means (from :func:`unit_means`); needed for ``ablate_to="mean"``.
    max_k : int, optional
        Largest number of ablated units (default ``n``); every ``k`` up to it is computed.
    device : str or torch.device
    batch_size : int
        Test samples per forward pass.
    memory_mb : float
        Budget for one chunk of masked activations.
    method : {"auto", "prefix", "batched"}
        ``batched``: the rest of the network runs on every masked copy of the layer output.
        ``prefix``: prefix sums of the units' outgoing contributions into the next Linear
        layer, with every prediction checked against a rounding-error bound and the doubtful
        ones recomputed exactly (needs a Linear layer after the cut: MLP layers, the fully
        connected layers of a CNN). ``auto``: ``prefix`` where it applies, else ``batched``.
        All give the naive loop's counts exactly.
    info : dict, optional
        Filled with ``method`` (the one used) and ``rechecked`` (predictions recomputed by the
        prefix path); on the batched path also ``cut``: where the network is cut so that only
        the part after the layer runs per mask (``sequential``, ``traced`` by torch.fx, or
        ``none``: the whole network runs per mask).
    at_k : sequence of int, optional
        Compute only these points of the curves: ``k`` values in ``0..n``, sorted, unique, at
        least 2 (e.g. :func:`spaced_ks`); not with ``max_k``. The batched path builds masks for
        these ``k`` only; the prefix path computes every ``k`` up to the largest (one running
        sum) and keeps these. The counts are those of the full curves at these ``k``.
    progress : bool
        A tqdm bar with an ETA over the masked forward passes, on stderr.

    Returns
    -------
    Tensor
        int64 ``[R, max_k + 1]`` (or ``[R, len(at_k)]``): correct samples after ablating the
        first ``k`` units.
    """
    split = _check_split(split)
    (layer_info,) = resolve_layers(model, [layer], example=first_sample(model, split))
    orders = check_order(orders, layer_info.n_units)
    ks, _ = _points(at_k, max_k, layer_info.n_units, layer_info.name)
    max_k = int(ks[-1])
    desc = f"ablate {layer_info.name}"
    fill = _fill_for(layer_info, ablate_to, means)
    if method not in METHODS:
        raise PruneInfoError(f"unknown method {method!r}; choose one of: {', '.join(METHODS)}")
    plan = (_prefix_plan(model, layer_info, split.x[:1]) if method in ("auto", "prefix")
            else None)
    if method == "prefix" and plan is None:
        raise PruneInfoError(
            f"the prefix-sum path needs a Linear layer right after {layer}'s activation in a "
            "Sequential model, on flat outputs (not tokens); use method='batched'")
    if plan is not None:
        device = torch.device(device)
        model.to(device)
        with _eval_mode(model):
            counts, rechecked = _prefix_sum_counts(plan, split, orders, max_k, fill,
                                                   device=device, batch_size=batch_size,
                                                   memory_mb=memory_mb, progress=progress,
                                                   desc=desc)
        if info is not None:
            info.update(method="prefix", rechecked=rechecked)
        return counts if ks.numel() == max_k + 1 else counts[:, ks].contiguous()
    masks = _prefix_masks(orders, ks)
    if info is not None:
        info.update(method="batched", rechecked=0)
    counts = _masked_counts(model, split, [layer_info], masks, [fill], device=device,
                            batch_size=batch_size, memory_mb=memory_mb, progress=progress,
                            desc=desc, info=info)
    return counts.view(orders.shape[0], ks.numel())


def layerwise_curve(
    model: nn.Module,
    layer: str,
    order: Tensor,
    split: Split,
    *,
    ablate_to: str = "zero",
    means: Tensor | Mapping[str, Tensor] | None = None,
    device: torch.device | str = "cpu",
) -> Tensor:
    """Correct samples after ablating the first ``k`` units of ``order`` in ``layer``.

    Parameters
    ----------
    model : nn.Module
    layer : str
        A prunable layer.
    order : Tensor
        int64 ``[n]``, a permutation of the layer's units, first to ablate first.
    split : Split
        The test set.
    ablate_to : {"zero", "mean"}
    means : Tensor or dict, optional
        Training-set means for ``ablate_to="mean"`` (see :func:`unit_means`).
    device : str or torch.device

    Returns
    -------
    Tensor
        int64 ``[n + 1]``; entry ``k`` is the number of correct samples with ``k`` units ablated.
    """
    order = torch.as_tensor(order)
    if order.dim() != 1:
        raise PruneInfoError(f"order must be one permutation (1-D), got shape {list(order.shape)}")
    return layerwise_curves(model, layer, order, split, ablate_to=ablate_to, means=means,
                            device=device)[0]


def group_curves(
    model: nn.Module,
    members: Sequence[str],
    orders: Tensor,
    split: Split,
    *,
    ablate_to: str = "zero",
    means: Mapping[str, Tensor] | None = None,
    device: torch.device | str = "cpu",
    batch_size: int = DEFAULT_BATCH_SIZE,
    memory_mb: float = DEFAULT_MEMORY_MB,
    at_k: Sequence[int] | Tensor | None = None,
    progress: bool = False,
) -> Tensor:
    """Cumulative ablation curves of a group of coupled layers, which lose channels together.

    A group's layers lose the same channels together (a residual stream, a depthwise conv and
    the conv feeding it), so ablating its channel ``j`` ablates unit ``j`` of *every* member at
    its read point: the masked model that removing the channel is equivalent to (the groups are
    :func:`prune_info.surgery.unit_groups`). A one-layer group is :func:`layerwise_curves`, with
    its fast paths.

    Parameters
    ----------
    model : nn.Module
    members : sequence of str
        The group's layers, all with the same number ``n`` of units.
    orders : Tensor
        int64 ``[R, n]``: permutations of the group's channels, first to ablate first.
    split, ablate_to, means, device, batch_size, memory_mb, at_k, progress
        As in :func:`network_curves` (``means`` per member).

    Returns
    -------
    Tensor
        int64 ``[R, n + 1]`` (or ``[R, len(at_k)]``).
    """
    if len(members) == 1:
        return layerwise_curves(model, members[0], orders, split, ablate_to=ablate_to,
                                means=means, device=device, batch_size=batch_size,
                                memory_mb=memory_mb, at_k=at_k, progress=progress)
    infos = resolve_layers(model, list(members), order="model",
                           example=first_sample(model, _check_split(split)))
    widths = {info.n_units for info in infos}
    if len(widths) != 1:
        raise PruneInfoError("the layers of a group must have the same number of units, got "
                             + ", ".join(f"{i.name}: {i.n_units}" for i in infos))
    (n,) = widths
    split = _check_split(split)
    orders = check_order(orders, n)
    ks, _ = _points(at_k, None, n, "the group of " + ", ".join(members))
    fills = [_fill_for(info, ablate_to, means) for info in infos]
    masks = _prefix_masks(orders, ks).repeat(1, len(infos))
    counts = _masked_counts(model, split, infos, masks, fills, device=device,
                            batch_size=batch_size, memory_mb=memory_mb, progress=progress,
                            desc=f"ablate group {members[0]}")
    return counts.view(orders.shape[0], ks.numel())


def ablated_correct(
    model: nn.Module,
    split: Split,
    ablated: Mapping[str, Sequence[int]],
    *,
    device: torch.device | str = "cpu",
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> int:
    """Correct samples of ``split`` with the units ``ablated`` (``{layer: indices}``) zeroed.

    The units are zeroed where they are read (as by every curve here), which is what removing
    them computes; no copy of the model is made and nothing is traced.
    """
    names = [name for name, idxs in ablated.items() if len(idxs)]
    if not names:
        return count_correct(model, _check_split(split), batch_size=batch_size, device=device)
    infos = resolve_layers(model, names, order="model",
                           example=first_sample(model, _check_split(split)))
    row = torch.cat([torch.zeros(info.n_units, dtype=torch.bool).index_fill_(
        0, torch.as_tensor(list(ablated[info.name]), dtype=torch.long), True) for info in infos])
    with _eval_mode(model):
        counts = _masked_counts(model, _check_split(split), infos, row[None],
                                [None] * len(infos), device=device, batch_size=batch_size)
    return int(counts[0])


def network_curves(
    model: nn.Module,
    orders: Tensor,
    split: Split,
    *,
    layers: Sequence[str] | None = None,
    ablate_to: str = "zero",
    means: Mapping[str, Tensor] | None = None,
    max_k: int | None = None,
    device: torch.device | str = "cpu",
    batch_size: int = DEFAULT_BATCH_SIZE,
    memory_mb: float = DEFAULT_MEMORY_MB,
    at_k: Sequence[int] | Tensor | None = None,
    method: str = "auto",
    info: dict | None = None,
    progress: bool = False,
) -> Tensor:
    """Whole-network cumulative ablation: units of several layers ranked together.

    Parameters
    ----------
    model : nn.Module
    orders : Tensor
        int64 ``[R, n_total]``: permutations of the *global* unit indices, where the units of the
        layers are numbered consecutively in model order (``fc1:0 .. fc1:99`` are 0..99,
        ``fc2:0`` is 100, ...). :func:`network_orders` builds them from per-layer scores.
    split : Split
    layers : list of str, optional
        Layers taking part (all prunable layers by default).
    ablate_to, means, max_k, device, batch_size, memory_mb, at_k, progress
        As in :func:`layerwise_curves`; ``means`` is a dict ``{layer: tensor}``; ``at_k``
        counts global units (``0..n_total``), masks are built for those ``k`` only.
    method : {"auto", "prefix", "batched"}
        As in :func:`layerwise_curves`. ``prefix``: the running sums of the first layer's
        units into the next Linear layer, the later layers' units masked where they are in the
        rest of the network (an MLP's layers, in one Sequential); ``auto`` uses it where it
        applies. All give the naive loop's counts exactly.
    info : dict, optional
        Filled with ``method`` and ``rechecked``, as by :func:`layerwise_curves`.

    Returns
    -------
    Tensor
        int64 ``[R, max_k + 1]`` (or ``[R, len(at_k)]``).
    """
    split = _check_split(split)
    infos = resolve_layers(model, layers, order="model", example=first_sample(model, split))
    total = sum(info.n_units for info in infos)
    orders = check_order(orders, total)
    ks, _ = _points(at_k, max_k, total, "the network's " + "+".join(i.name for i in infos))
    fills = [_fill_for(info, ablate_to, means) for info in infos]
    if method not in METHODS:
        raise PruneInfoError(f"unknown method {method!r}; choose one of: {', '.join(METHODS)}")
    device = torch.device(device)
    plan = (_prefix_plan(model, infos[0], split.x[:1]) if method in ("auto", "prefix")
            else None)
    later = _later_masks(model, plan, infos, fills, device) if plan is not None else None
    if method == "prefix" and later is None:
        raise PruneInfoError(
            "the prefix-sum path needs the layers of an MLP in one Sequential model, each "
            "activation followed by a Linear layer; use method='batched'")
    if plan is not None and later is not None:
        model.to(device)
        top = int(ks[-1])
        with _eval_mode(model):
            counts, rechecked = _prefix_sum_counts(
                plan, split, orders, top, fills[0], device=device, batch_size=batch_size,
                memory_mb=memory_mb, progress=progress, desc="ablate network", later=later)
        if info is not None:
            info.update(method="prefix", rechecked=rechecked)
        return counts if ks.numel() == top + 1 else counts[:, ks].contiguous()
    if info is not None:
        info.update(method="batched", rechecked=0)
    masks = _prefix_masks(orders, ks)
    counts = _masked_counts(model, split, infos, masks, fills, device=device,
                            batch_size=batch_size, memory_mb=memory_mb, progress=progress,
                            desc="ablate network", info=info)
    return counts.view(orders.shape[0], ks.numel())


def naive_curves(
    model: nn.Module,
    orders: Tensor,
    split: Split,
    *,
    layers: Sequence[str] | str | None = None,
    ablate_to: str = "zero",
    means: Tensor | Mapping[str, Tensor] | None = None,
    max_k: int | None = None,
    device: torch.device | str = "cpu",
    batch_size: int = DEFAULT_BATCH_SIZE,
    at_k: Sequence[int] | Tensor | None = None,
    progress: bool = False,
) -> Tensor:
    """The reference loop: for every ordering and every ``k``, mask and run the whole network.

    ``layers`` is one layer (layer-wise) or several (whole-network, global unit indices as in
    :func:`network_curves`). ``at_k``: only these ``k`` (as in :func:`layerwise_curves`). Slow
    by design: use it to check the batched functions. Returns int64 ``[R, K]``.
    """
    split = _check_split(split)
    infos = resolve_layers(model, layers, order="model", example=first_sample(model, split))
    total = sum(info.n_units for info in infos)
    orders = check_order(orders, total)
    ks, _ = _points(at_k, max_k, total, "+".join(i.name for i in infos))
    if len(infos) == 1 and not isinstance(means, Mapping) and means is not None:
        means = {infos[0].name: means}
    fills = [_fill_for(info, ablate_to, means) for info in infos]
    masks = _prefix_masks(orders, ks)
    with _eval_mode(model):
        counts = _naive_counts(model, split, infos, masks, fills, device=device,
                               batch_size=batch_size, progress=progress, desc="naive ablation")
    return counts.view(orders.shape[0], ks.numel())


def network_orders(
    scores: Mapping[str, Tensor], layers: Sequence[LayerInfo], order: str = "low", seed: int = 0
) -> Tensor:
    """Rank the units of several layers together: one global ordering (int64 ``[n_total]``).

    ``scores`` holds one score per unit for each layer (higher = more important). The global
    index of unit ``j`` of the ``i``-th layer is ``j`` plus the sizes of the layers before it.
    Ties keep the lower global index first (:func:`prune_info.criteria.ranking.rank_units`).
    """
    missing = [info.name for info in layers if info.name not in scores]
    if missing:
        raise PruneInfoError(f"no scores for layer {missing[0]}")
    joined = torch.cat([torch.as_tensor(scores[info.name]).double().flatten() for info in layers])
    return rank_units(joined, order=order, seed=seed)


# --------------------------------------------------------------------------------------------
# Curves of one model for a set of rankings


@dataclass
class CurveSet:
    """All ablation curves of one model.

    Attributes
    ----------
    mode : {"layerwise", "network"}
    ablate_to : {"zero", "mean"}
    n_samples : int
        Size of the test set the counts are out of.
    units : dict of str to int
        Number of units of each scope (a layer name, or ``"network"``).
    counts : dict of str to dict of str to Tensor
        ``counts[scope][label]`` is int64 ``[R, K]``; labels are ``"<criterion>:<order>"``
        (one row) or ``"random"`` (``R`` rows, one per repeat). Column ``i`` is ``k = i``
        (every ``k``), or ``k = at_k[scope][i]`` for a scope computed at some points only.
    at_k : dict of str to list of int
        The ``k`` values of the scopes computed at some points only (none for full curves; the
        JSON of full curves has no ``at_k``). :meth:`ks` gives every scope's ``k`` values.
    """

    mode: str
    ablate_to: str
    n_samples: int
    units: dict[str, int] = field(default_factory=dict)
    counts: dict[str, dict[str, Tensor]] = field(default_factory=dict)
    at_k: dict[str, list[int]] = field(default_factory=dict)

    def accuracy(self, scope: str, label: str) -> Tensor:
        """Accuracy (fraction) ``[R, K]`` of one curve family."""
        return self.counts[scope][label].double() / self.n_samples

    def ks(self, scope: str) -> list[int]:
        """The ``k`` of each column of the counts of ``scope``."""
        if scope in self.at_k:
            return list(self.at_k[scope])
        first = next(iter(self.counts[scope].values()), None)
        width = int(first.shape[1]) if first is not None else self.units[scope] + 1
        return list(range(width))

    def nearest(self, scope: str, k: int) -> int:
        """The computed ``k`` of ``scope`` nearest to ``k`` (ties: the lower)."""
        ks = self.ks(scope)
        return ks[nearest_k(ks, k)]

    def counts_at(self, scope: str, label: str, k: int) -> Tensor:
        """Correct counts ``[R]`` at the computed ``k`` nearest to ``k`` (see :meth:`nearest`);
        e.g. "accuracy at half the units" is ``counts_at(scope, label, units // 2)``."""
        return self.counts[scope][label][:, nearest_k(self.ks(scope), k)]

    def to_dict(self) -> dict:
        """Plain lists (JSON-ready); ``at_k`` only when some scope has it."""
        out = {
            "mode": self.mode,
            "ablate_to": self.ablate_to,
            "n_samples": self.n_samples,
            "units": dict(self.units),
            "counts": {scope: {label: c.tolist() for label, c in by_label.items()}
                       for scope, by_label in self.counts.items()},
        }
        if self.at_k:
            out["at_k"] = {scope: [int(k) for k in ks] for scope, ks in self.at_k.items()}
        return out

    @classmethod
    def from_dict(cls, data: Mapping) -> CurveSet:
        return cls(
            mode=data["mode"], ablate_to=data["ablate_to"], n_samples=int(data["n_samples"]),
            units={k: int(v) for k, v in data["units"].items()},
            counts={scope: {label: torch.tensor(c, dtype=torch.int64)
                            for label, c in by_label.items()}
                    for scope, by_label in data["counts"].items()},
            at_k={scope: [int(k) for k in ks] for scope, ks in data.get("at_k", {}).items()},
        )


def compute_curves(
    model: nn.Module,
    split: Split,
    scores: Mapping[str, Mapping[str, Tensor]],
    *,
    orders: Sequence[str] = ("low", "high"),
    random: int = 20,
    seed: int = 0,
    mode: str = "layerwise",
    layers: Sequence[str] | None = None,
    ablate_to: str = "zero",
    means: Mapping[str, Tensor] | None = None,
    max_k: int | None = None,
    device: torch.device | str = "cpu",
    memory_mb: float = DEFAULT_MEMORY_MB,
    progress: bool = False,
    at_k: Sequence[int] | Mapping[str, Sequence[int] | None] | None = None,
) -> CurveSet:
    """Every curve of one model: each criterion in each order, plus seeded random orderings.

    Parameters
    ----------
    model : nn.Module
    split : Split
        The test set.
    scores : dict
        ``{criterion: {layer: scores}}`` as returned by
        :func:`prune_info.criteria.context.compute_scores` (computed on the validation set).
    orders : sequence of {"low", "high"}
    random : int
        Random orderings per scope (0 for none).
    seed : int
        Seed of the random orderings (scope ``i`` draws from seed ``1000 * seed + i``, so adding
        a criterion never changes the random curves).
    mode : {"layerwise", "network"}
        One curve family per layer, or one across all the layers.
    layers : list of str, optional
        Layers to ablate (all prunable layers by default).
    ablate_to, means, max_k, device, memory_mb
        See :func:`layerwise_curves`.
    progress : bool
        tqdm bars on stderr: over the layers, and with an ETA over each scope's masked forward
        passes.
    at_k : sequence of int, or dict of str to sequence of int, optional
        Compute the curves at these ``k`` only (see :func:`layerwise_curves`): one list for
        every scope, or ``{scope: list or None}`` (a scope absent or None: every ``k``; scopes
        are layer names, or ``"network"``). :func:`default_at_k` and :func:`spaced_ks` build
        them. Sparse scopes are listed in :attr:`CurveSet.at_k`.

    Returns
    -------
    CurveSet
    """
    if mode not in ("layerwise", "network"):
        raise PruneInfoError(f"unknown ablation mode {mode!r}; choose layerwise or network")
    bad = [o for o in orders if o not in ORDERS]
    if bad:
        raise PruneInfoError(f"unknown order {bad[0]!r}; choose from: {', '.join(ORDERS)}")
    check_random(random)
    if not scores and random == 0:
        raise PruneInfoError("nothing to ablate: give at least one criterion or `random`=R")
    split = _check_split(split)
    infos = resolve_layers(model, layers, order="model", example=first_sample(model, split))
    if ablate_to == "mean" and means is None:
        raise PruneInfoError("ablation to the mean needs unit_means(model, data.train)")
    result = CurveSet(mode=mode, ablate_to=ablate_to, n_samples=len(split))
    generator_seed = int(seed)
    if mode == "layerwise":
        scopes = [(info.name, [info]) for info in infos]
    else:
        scopes = [("network", infos)]
    points: dict[str, list[int] | None] = {}
    for scope, members in scopes:  # all checked before any curve is computed
        wanted = at_k.get(scope) if isinstance(at_k, Mapping) else at_k
        n = sum(info.n_units for info in members)
        points[scope] = check_at_k(wanted, n, scope)
        if points[scope] is not None and max_k is not None:
            raise PruneInfoError("give either `max_k` or `at_k`, not both")
    if isinstance(at_k, Mapping):
        unknown = [scope for scope in at_k if scope not in points]
        if unknown:
            raise PruneInfoError(f"`at_k` names {unknown[0]!r}, which is not a scope of these "
                                 f"curves ({', '.join(points)})")

    bar = tqdm(scopes, desc=f"ablate ({mode})", unit="layer" if mode == "layerwise" else "net",
               disable=not progress, leave=False)
    for index, (scope, members) in enumerate(bar):
        n = sum(info.n_units for info in members)
        labels: list[str] = []
        rows: list[Tensor] = []
        for criterion, by_layer in scores.items():
            for order in orders:
                if mode == "layerwise":
                    if scope not in by_layer:
                        raise PruneInfoError(f"criterion {criterion} has no scores for {scope}")
                    ranking = rank_units(by_layer[scope], order=order, seed=generator_seed)
                else:
                    ranking = network_orders(by_layer, members, order=order, seed=generator_seed)
                labels.append(f"{criterion}:{order}")
                rows.append(torch.as_tensor(ranking, dtype=torch.int64).flatten())
        # each scope gets its own stream: adding a criterion never changes the random curves
        randoms = random_orders(n, random, seed=generator_seed * 1000 + index)
        all_orders = torch.cat([torch.stack(rows), randoms]) if rows else randoms
        if mode == "layerwise":
            curves = layerwise_curves(model, scope, all_orders, split, ablate_to=ablate_to,
                                      means=means, max_k=max_k, device=device,
                                      memory_mb=memory_mb, at_k=points[scope],
                                      progress=progress)
        else:
            curves = network_curves(model, all_orders, split, layers=[i.name for i in members],
                                    ablate_to=ablate_to, means=means, max_k=max_k, device=device,
                                    memory_mb=memory_mb, at_k=points[scope], progress=progress)
        result.units[scope] = n
        if points[scope] is not None:
            result.at_k[scope] = list(points[scope] or ())
        result.counts[scope] = {label: curves[i : i + 1] for i, label in enumerate(labels)}
        if random:
            result.counts[scope]["random"] = curves[len(labels):]
    return result
