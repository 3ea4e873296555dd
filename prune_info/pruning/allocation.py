"""How many units, and which, each layer loses: a :class:`~prune_info.surgery.PrunePlan`.

Allocations
-----------
* :func:`plan_layerwise`: the lowest-ranked fraction (or all but a number) of each layer.
* :func:`plan_global`: one ranking across layers, never emptying a layer. The information
  measures of Amjad et al. change their distribution from layer to layer (Sec. VI), so such a
  ranking is ill-advised with them; :data:`GLOBAL_RANKING_WARNING` says so.
* :func:`plan_max_drop`: per-layer counts read off each layer's information-ordered ablation
  curve, then backed off until the joint accuracy drop stays within a budget.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import torch
from torch import nn

from prune_info.errors import PruneInfoError

if TYPE_CHECKING:
    from prune_info.data import Split
from prune_info.analysis.curves import ablated_correct, group_curves, spaced_ks
from prune_info.criteria.ranking import RANK_ORDERS, rank_units
from prune_info.nn import resolve_layers
from prune_info.surgery import PrunePlan

#: Printed (on stderr by the CLI) whenever units are ranked across layers.
GLOBAL_RANKING_WARNING = (
    "warning: --global ranks units of different layers against each other, but the "
    "distribution of information measures changes from layer to layer (deeper layers score "
    "higher), so comparing neurons of different layers is ill-advised (Amjad, Liu & Geiger, "
    "Sec. VI); prefer --layerwise or --max-drop"
)

ALLOCATIONS = ("layerwise", "global", "max-drop", "uniform", "curves")
#: Allocations that only meet a `target` (:mod:`prune_info.pruning.budget`).
TARGET_ALLOCATIONS = ("uniform", "curves")
#: Which units go first: the lowest-ranked, the highest-ranked, or random ones.
ORDERS = RANK_ORDERS


def removal_count(n_units: int, amount: float) -> int:
    """Units removed from a layer of ``n_units`` by a fraction ``amount`` in [0, 1).

    Rounds down, so a fraction below 1 never empties a layer: ``removal_count(100, 0.5) == 50``,
    ``removal_count(6, 0.9) == 5``.
    """
    return int(math.floor(amount * n_units + 1e-9))


def check_amount(amount: float, what: str = "`amount`") -> float:
    amount = float(amount)
    if not 0.0 <= amount < 1.0:
        raise PruneInfoError(
            f"{what}={amount:g} is outside [0, 1): it is the fraction of units to remove, e.g. 0.5"
        )
    return amount


def removal_counts(
    widths: Mapping[str, int],
    amounts: float | Sequence[float] | Mapping[str, float] | None = None,
    keep: Sequence[int] | Mapping[str, int] | None = None,
) -> dict[str, int]:
    """How many units to remove from each layer, given fractions or numbers of units to keep.

    Parameters
    ----------
    widths : dict
        ``{layer: n_units}``, in layer order.
    amounts : float, sequence or dict, optional
        Fraction of each layer to remove, in [0, 1): one value for every layer, one per layer in
        order, or a dict.
    keep : sequence or dict, optional
        Units to keep per layer (at least 1, at most the layer's width).

    Returns
    -------
    dict
        ``{layer: units to remove}``.
    """
    layers = list(widths)
    if (amounts is None) == (keep is None):
        raise PruneInfoError("give exactly one of `amounts` and `keep`")
    values = amounts if amounts is not None else keep
    assert values is not None  # exactly one of amounts and keep, checked above
    what = "`amounts`" if amounts is not None else "`keep`"
    if isinstance(values, Mapping):
        unknown = set(values) - set(layers)
        if unknown:
            raise PruneInfoError(
                f"{what} names unknown layers {sorted(unknown)}; prunable: {', '.join(layers)}"
            )
        per_layer = {layer: values[layer] for layer in layers if layer in values}
    else:
        seq = [values] if isinstance(values, (int, float)) else list(values)
        if len(seq) == 1 and amounts is not None:
            seq = seq * len(layers)
        if len(seq) != len(layers):
            raise PruneInfoError(
                f"{what} gives {len(seq)} values for {len(layers)} prunable layers "
                f"({', '.join(layers)}); give one value per layer"
                + (" or a single fraction for all" if amounts is not None else "")
            )
        per_layer = dict(zip(layers, seq))
    counts = {}
    for layer, value in per_layer.items():
        n = int(widths[layer])
        if amounts is not None:
            counts[layer] = removal_count(n, check_amount(value, what))
        else:
            k = int(value)
            if k < 1:
                raise PruneInfoError(
                    f"`keep`={k} for {layer}: keep at least 1 unit, or the layer is disconnected"
                )
            if k > n:
                raise PruneInfoError(
                    f"`keep`={k} for {layer} is more than its {n} units; give at most {n}"
                )
            counts[layer] = n - k
    return counts


def _rank(scores: torch.Tensor, order: str, seed: int) -> torch.Tensor:
    return rank_units(scores, order=order, seed=seed)


def plan_layerwise(
    scores: Mapping[str, torch.Tensor],
    *,
    amounts: float | Sequence[float] | Mapping[str, float] | None = None,
    keep: Sequence[int] | Mapping[str, int] | None = None,
    order: str = "low",
    seed: int = 0,
) -> PrunePlan:
    """Remove the lowest-ranked fraction (or all but ``keep``) of each layer separately.

    Parameters
    ----------
    scores : dict
        ``{layer: float tensor [n_units]}``, higher = more important (from
        :func:`prune_info.criteria.context.compute_scores`).
    amounts, keep
        See :func:`removal_counts`; exactly one is given.
    order : {"low", "high", "random"}
        ``low`` removes the lowest scores first (the usual pruning), ``high`` the highest (for
        experiments), ``random`` ignores the scores (a seeded baseline).
    seed : int
        Drives ``order="random"``; ties in scores go to the lower unit index
        (:func:`prune_info.criteria.ranking.rank_units`).

    Returns
    -------
    PrunePlan

    Examples
    --------
    >>> plan = plan_layerwise({"fc1": torch.tensor([0.3, 0.1, 0.9, 0.5])}, amounts=0.5)
    >>> plan.remove
    {'fc1': (0, 1)}
    """
    widths = {layer: int(s.numel()) for layer, s in scores.items()}
    counts = removal_counts(widths, amounts=amounts, keep=keep)
    remove: dict[str, Sequence[int] | torch.Tensor] = {}
    for layer, k in counts.items():
        remove[layer] = _rank(scores[layer], order, seed)[:k] if k else []
    return PrunePlan.from_indices(remove, widths)


def plan_global(
    scores: Mapping[str, torch.Tensor],
    amount: float,
    *,
    min_units: int = 1,
    order: str = "low",
    seed: int = 0,
) -> tuple[PrunePlan, list[str]]:
    """Rank the units of all layers together and remove the lowest-ranked fraction of them all.

    A layer never drops below ``min_units`` units: once it is down to that, its remaining units
    are passed over and the next units in the ranking are removed instead.

    Parameters
    ----------
    scores : dict
        ``{layer: float tensor [n_units]}``.
    amount : float
        Fraction in [0, 1) of all units (summed over layers) to remove.
    min_units : int
        Units every layer keeps (at least 1).
    order, seed
        As in :func:`plan_layerwise`.

    Returns
    -------
    plan : PrunePlan
    at_minimum : list of str
        Layers that were held at ``min_units`` although the ranking asked for more removals.

    Examples
    --------
    >>> s = {"fc1": torch.tensor([0.1, 0.2]), "fc2": torch.tensor([0.9, 0.8, 0.05])}
    >>> plan, floor = plan_global(s, 0.6)
    >>> plan.remove, floor
    ({'fc1': (0,), 'fc2': (1, 2)}, ['fc1'])
    """
    amount = check_amount(amount)
    if min_units < 1:
        raise PruneInfoError(
            f"`min_units`={min_units}: every layer must keep at least 1 unit, or it is "
            "disconnected"
        )
    layers = list(scores)
    if not layers:
        raise PruneInfoError("no layers to prune")
    sizes = torch.tensor([int(scores[layer].numel()) for layer in layers])
    flat = torch.cat([scores[layer].reshape(-1).double() for layer in layers])
    owner = torch.repeat_interleave(torch.arange(len(layers)), sizes)
    local = torch.cat([torch.arange(int(n)) for n in sizes])
    ranking = _rank(flat, order, seed)
    owner_r = owner[ranking]
    # position of each ranked unit among the units of its own layer ranked before it
    onehot = torch.nn.functional.one_hot(owner_r, len(layers))
    within = (onehot.cumsum(0) * onehot).sum(1) - 1
    cap = (sizes - min_units).clamp_min(0)
    allowed = within < cap[owner_r]
    budget = removal_count(int(sizes.sum()), amount)
    if budget and not bool((cap > 0).any()):
        raise PruneInfoError(
            f"`min_units`={min_units} keeps every unit of every layer (the widest has "
            f"{int(sizes.max())}), so `amount`={amount:g} would remove nothing; lower "
            "`min_units` below the layer widths"
        )
    allowed_pos = allowed.nonzero().flatten()[:budget]
    chosen = ranking[allowed_pos]
    cut = int(allowed_pos[-1]) + 1 if budget and len(allowed_pos) == budget else len(ranking)
    blocked = owner_r[:cut][~allowed[:cut]].unique().tolist() if budget else []
    remove = {layer: local[chosen[owner[chosen] == i]] for i, layer in enumerate(layers)}
    plan = PrunePlan.from_indices(remove, dict(zip(layers, sizes.tolist())))
    return plan, [layers[i] for i in sorted(blocked)]


# --------------------------------------------------------------------------------------------
# Automatic allocation from the data


#: Points of the ablation curve of a coupled group or a non-linear layer (a convolution, heads)
#: read by :func:`plan_max_drop`: each is a pass of the network over the validation set, where
#: a Linear layer's full curve is cheap (the prefix-sum path).
COSTLY_CURVE_STEPS = 17


def _masked_correct(model: nn.Module, plan: PrunePlan, split: Split, device: str,
                    groups: Mapping[str, Sequence[str]]) -> int:
    """Correct samples with the plan's units ablated in every member of their group."""
    return ablated_correct(model, split, {m: plan.remove[root] for root in plan.remove
                                          for m in groups.get(root, (root,))}, device=device)


def group_drops(
    model: nn.Module,
    split: Split,
    scores: Mapping[str, torch.Tensor],
    *,
    order: str = "low",
    seed: int = 0,
    min_units: int = 1,
    groups: Mapping[str, Sequence[str]] | None = None,
    device: str = "cpu",
) -> dict[str, tuple[list[int], list[float]]]:
    """Each layer's (or coupled group's) cumulative-ablation curve as accuracy drops.

    ``{layer: (ks, drop in percentage points after ablating the first k by the ranking)}``, with
    every ``k`` for a Linear layer (the prefix-sum path is cheap) and
    :data:`COSTLY_CURVE_STEPS` evenly spaced ``k`` for a group or a convolution (a network pass
    per point); ``k`` stops where ``min_units`` would be crossed.
    """
    model.eval()
    n = len(split)
    groups = groups or {}
    kinds = {info.name: info.kind for info in resolve_layers(model, list(scores))}
    out = {}
    for layer, values in scores.items():
        members = tuple(groups.get(layer, (layer,)))
        width = int(values.numel())
        cap = max(0, width - min_units)
        costly = len(members) > 1 or kinds[layer] != "linear"
        at_k = (spaced_ks(cap, COSTLY_CURVE_STEPS)
                if costly and cap + 1 > COSTLY_CURVE_STEPS else None)
        curve = group_curves(model, members, _rank(values, order, seed), split,
                             ablate_to="zero", at_k=at_k, device=device)[0].to(torch.long)
        ks = at_k if at_k is not None else list(range(width + 1))
        drops = (100.0 * (curve[0] - curve).double() / n).tolist()
        out[layer] = ([int(k) for k in ks], [float(d) for d in drops])
    return out


def plan_max_drop(
    model: nn.Module,
    split: Split,
    scores: Mapping[str, torch.Tensor],
    max_drop: float,
    *,
    order: str = "low",
    seed: int = 0,
    min_units: int = 1,
    backoff_steps: int = 20,
    groups: Mapping[str, Sequence[str]] | None = None,
    device: str = "cpu",
) -> tuple[PrunePlan, dict]:
    """Per-layer counts within an accuracy budget, read off information-ordered ablation curves.

    For each layer, units are ablated cumulatively in the order of their ranking (lowest score
    first for ``order="low"``) and the accuracy on ``split`` is recorded after each (see
    :func:`prune_info.analysis.curves.layerwise_curve`); the layer gets the largest ``k`` whose
    drop,
    ablating that layer alone, is at most ``max_drop`` percentage points. The layers' removals are
    then combined and the joint drop is measured on ``split`` with the units removed; while it
    exceeds the budget, every layer's ``k`` is scaled down by ``1 - t / backoff_steps``
    (t = 1, 2, ...), which ends at removing nothing.

    A key of ``scores`` may stand for a group of coupled layers (``groups``: the root's name ->
    its members), which lose the same channels: its curve ablates every member together
    (:func:`prune_info.analysis.curves.group_curves`). Each point of such a curve, and of a
    convolutional layer's, is a pass of the network, so it is read at :data:`COSTLY_CURVE_STEPS`
    evenly spaced ``k`` (every ``k`` when narrower) and gets the largest of those within the
    budget; a Linear layer's curve is read at every ``k``.

    Parameters
    ----------
    model : nn.Module
    split : Split
        Validation data.
    scores : dict
        ``{layer: float tensor [n_units]}``, higher = more important.
    max_drop : float
        Allowed accuracy drop in percentage points (``1.0`` = one point), at least 0.
    order, seed
        As in :func:`plan_layerwise`.
    min_units : int
        Units every layer keeps.
    backoff_steps : int
        Granularity of the joint back-off.
    groups : dict, optional
        ``{root: member layers}`` for the keys of ``scores`` that are coupled groups; the plan
        returned is on the roots.
    device : str

    Returns
    -------
    plan : PrunePlan
    report : dict
        ``budget_pp``, ``base_correct``, ``n``, per-layer ``alone`` (``k`` and its drop alone;
        for a group also its ``members``; for a group or a sparse curve the ``at_k`` read),
        ``rounds`` (``[{"scale", "counts", "drop_pp"}]``), ``counts`` (chosen), ``joint_drop_pp``.
    """
    if not 0.0 <= max_drop < 100.0:
        raise PruneInfoError(
            f"`max_drop`={max_drop:g} must be in [0, 100) percentage points of accuracy"
        )
    if min_units < 1:
        raise PruneInfoError("`min_units` must be at least 1")
    if len(split) == 0:
        raise PruneInfoError("`max_drop` needs a non-empty validation set")
    model.eval()
    n = len(split)
    layers = list(scores)
    widths = {layer: int(scores[layer].numel()) for layer in layers}
    rankings = {layer: _rank(scores[layer], order, seed) for layer in layers}
    groups = {root: tuple(groups[root]) for root in layers if groups and root in groups}
    curves = group_drops(model, split, scores, order=order, seed=seed, min_units=min_units,
                         groups=groups, device=device)
    alone: dict[str, dict] = {}
    for layer in layers:
        members = groups.get(layer, (layer,))
        cap = max(0, widths[layer] - min_units)
        ks, drops = curves[layer]
        ok = [i for i, k in enumerate(ks) if k <= cap and drops[i] <= max_drop + 1e-9]
        best = max(ok) if ok else 0
        alone[layer] = {"k": int(ks[best]), "drop_pp": float(drops[best])}
        if len(members) > 1:
            alone[layer]["members"] = list(members)
        if len(members) > 1 or len(ks) != widths[layer] + 1:
            alone[layer]["at_k"] = list(ks)
    base = _masked_correct(model, PrunePlan({}, {}), split, device, groups)
    rounds = []
    chosen = {layer: alone[layer]["k"] for layer in layers}
    for t in range(backoff_steps + 1):
        scale = 1.0 - t / backoff_steps
        counts = {layer: int(math.floor(alone[layer]["k"] * scale + 1e-9)) for layer in layers}
        plan = PrunePlan.from_indices(
            {layer: rankings[layer][: counts[layer]] for layer in layers}, widths
        )
        correct = (base if plan.is_empty()
                   else _masked_correct(model, plan, split, device, groups))
        drop = 100.0 * (base - correct) / n
        rounds.append({"scale": scale, "counts": counts, "drop_pp": drop})
        chosen = counts
        if drop <= max_drop + 1e-9:
            break
    report = {
        "budget_pp": float(max_drop),
        "n": n,
        "base_correct": int(base),
        "alone": alone,
        "rounds": rounds,
        "counts": chosen,
        "joint_drop_pp": rounds[-1]["drop_pp"],
    }
    return plan, report
