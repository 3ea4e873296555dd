"""Pruning to a budget: a target of MACs, parameters or measured latency, and how many units each
group gives up to meet it.

A :class:`Target` says what to reach: ``macs=0.5`` (keep half the multiply-accumulates) or
``macs=x2`` (two times fewer), ``params=...`` likewise, ``latency=5`` (milliseconds per batch)
or ``speedup=2`` (two times faster than the dense model), latency measured with PyTorch on the
chosen device, batch size and threads.

A :class:`CostModel` prices any per-group counts without pruning: a layer's cost scales with the
share of its output channels kept times the share of its input channels kept
(:func:`prune_info.surgery.channel_flow`), from the MACs and parameters counted once at full
width or, for latency, from each layer's measured forward time. The allocations then search
counts that meet the target:

``uniform``
    One fraction for every group, the largest that meets the target (bisection).
``global``
    One ranking across groups (:func:`~prune_info.pruning.allocation.plan_global`), the largest
    fraction that meets the target.
``curves``
    Per group, the accuracy lost after each number of removals, read off the group's
    cumulative ablation curve on the validation set (ablating the criterion's lowest-ranked
    first); the counts chosen minimise the summed drop over groups within the budget (a
    knapsack whose costs couple neighbouring groups). With few plans (at most
    :data:`EXHAUSTIVE_PLANS`) every plan is tried; otherwise the better of two searches, each
    improved by exchanges between groups while the budget holds: a Lagrangian one (summed drop
    + price x cost minimised by coordinate descent over whole curves, the price bisected) and a
    greedy one (units given up where they cost least accuracy per MAC, parameter or
    millisecond saved). The summed drop is a prediction; the pruned model's accuracy is
    measured and reported.

The counts respect ``round_to`` (each step keeps a multiple of it), so the cost searched is the
cost of the plan carried out; the achieved figures are measured on the pruned model and reported
next to the target.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from prune_info._torch import time_interleaved, torch_timer
from prune_info.errors import PruneInfoError
from prune_info.nn import layer_costs
from prune_info.surgery import ChannelFlow, UnitGroup

__all__ = ["ALLOCATIONS_UNDER_TARGET", "TARGET_KINDS", "CostModel", "Target", "layer_latencies",
           "measure_latencies", "measure_latency", "parse_target", "search_counts"]

#: What a target can bound.
TARGET_KINDS = ("macs", "params", "latency", "speedup")
#: Allocations that can meet a target.
ALLOCATIONS_UNDER_TARGET = ("uniform", "global", "curves")


@dataclass(frozen=True)
class Target:
    """A budget: ``kind`` and the ``kept`` share of the dense cost it allows (for ``latency``,
    the milliseconds themselves in ``value``).

    Examples
    --------
    >>> parse_target("macs=x2").kept, parse_target("params=0.25").kept
    (0.5, 0.25)
    >>> parse_target("speedup=4").kept
    0.25
    >>> parse_target("latency=3.5ms").value
    3.5
    """

    kind: str
    value: float
    text: str

    @property
    def kept(self) -> float | None:
        """The share of the dense cost the target allows (None for ``latency``: absolute)."""
        if self.kind == "latency":
            return None
        return 1.0 / self.value if self.kind == "speedup" else self.value

    def limit(self, dense: float) -> float:
        """The most a plan may cost, given the dense model's cost ``dense``."""
        kept = self.kept
        return self.value if kept is None else dense * kept

    @property
    def measured(self) -> bool:
        return self.kind in ("latency", "speedup")

    @property
    def cost(self) -> str:
        """The cost the target bounds: ``macs``, ``params`` or ``latency``."""
        return "latency" if self.measured else self.kind


def parse_target(text: str) -> Target:
    """Read ``macs=F``, ``macs=xN``, ``params=F``, ``params=xN``, ``latency=MS``,
    ``speedup=N``."""
    if not isinstance(text, str):
        raise PruneInfoError(f"`target` must be a string such as macs=x2, got "
                             f"{type(text).__name__}")
    kind, sep, raw = text.strip().partition("=")
    kind = kind.strip().lower()
    if not sep or kind not in TARGET_KINDS:
        raise PruneInfoError(f"`target`={text!r}: give one of macs=F or macs=xN (F the share "
                             "kept, N the reduction), params=F or params=xN, latency=MS, "
                             "speedup=N")
    raw = raw.strip().lower()
    factor = raw.startswith(("x", "×"))
    raw = raw.lstrip("x×").removesuffix("ms").strip()
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not math.isfinite(value) or value <= 0:
        raise PruneInfoError(f"`target`={text!r}: the value must be a positive number")
    if kind in ("macs", "params"):
        kept = 1.0 / value if factor else value
        if factor and value < 1:
            raise PruneInfoError(f"`target`={text!r}: a reduction factor is at least 1 (x2 "
                                 "keeps half)")
        if not 0 < kept < 1:
            raise PruneInfoError(f"`target`={text!r}: the share kept must be in (0, 1), e.g. "
                                 f"{kind}=0.5 or {kind}=x2")
        return Target(kind, kept, text)
    if kind == "speedup" and value <= 1:
        raise PruneInfoError(f"`target`={text!r}: a speed-up above 1 is needed (2 is twice as "
                             "fast)")
    return Target(kind, value, text)


# --------------------------------------------------------------------------------------------
# Pricing a plan


def measure_latency(model: nn.Module, example: torch.Tensor, *, repeat: int = 20,
                    warmup: int = 3) -> float:
    """Median milliseconds of one forward pass of ``example`` (PyTorch eager, eval mode, on
    ``example``'s device), with ``bench``'s timer (:func:`prune_info._torch.torch_timer`)."""
    return measure_latencies([model], example, repeat=repeat, warmup=warmup)[0]


def measure_latencies(models: Sequence[nn.Module], example: torch.Tensor, *, repeat: int = 20,
                      warmup: int = 3) -> list[float]:
    """Median milliseconds of each model's forward pass, timed round-robin so that a slow phase
    of a shared machine slows them alike (:func:`prune_info._torch.time_interleaved`)."""
    modes = [m.training for m in models]
    for m in models:
        m.eval()
    try:
        times = time_interleaved([torch_timer(m, example, example.device) for m in models],
                                 repeat, warmup)
    finally:
        for m, mode in zip(models, modes):
            m.train(mode)
    return [float(np.median(t)) for t in times]


@torch.no_grad()
def layer_latencies(model: nn.Module, example: torch.Tensor, layers: Sequence[str], *,
                    repeat: int = 10, warmup: int = 2) -> tuple[dict[str, float], float]:
    """Median milliseconds each layer's forward takes inside a pass, and the whole pass's."""
    spent: dict[str, list[float]] = {name: [] for name in layers}
    started: dict[str, float] = {}
    handles = []
    sync = (torch.cuda.synchronize if example.device.type == "cuda" else lambda: None)

    def pre(name: str):
        def hook(_m: nn.Module, _a: object) -> None:
            sync()
            started[name] = time.perf_counter()
        return hook

    def post(name: str):
        def hook(_m: nn.Module, _a: object, _o: object) -> None:
            sync()
            spent[name].append((time.perf_counter() - started[name]) * 1000)
        return hook

    for name in layers:
        module = model.get_submodule(name)
        handles.append(module.register_forward_pre_hook(pre(name)))
        handles.append(module.register_forward_hook(post(name)))
    was_training = model.training
    model.eval()
    try:
        total = float(np.median(time_interleaved([torch_timer(model, example, example.device)],
                                                 repeat, warmup)[0]))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    per_layer = {}
    for name, values in spent.items():
        values = values[warmup:] or values
        per_layer[name] = sorted(values)[len(values) // 2] if values else 0.0
    return per_layer, total


@dataclass
class CostModel:
    """The cost of any per-group counts, from the dense model's per-layer costs.

    MACs and parameters scale exactly with the shares of a layer's output and input channels
    kept (less a bias's few parameters). A measured time does not: a layer's forward has a cost
    no width removes (the call, the launch, memory traffic of its input). Latency is therefore
    read off two measured tables, of the dense model and of the model at its smallest widths
    (``floor``), and each layer's time interpolated linearly in its MAC share between them;
    what no hooked layer accounts for (activations, norms, the model's own code) is
    interpolated in the whole model's MAC share (``macs``).

    Attributes
    ----------
    kind : {"macs", "params", "latency"}
    layers : dict
        ``{layer: its cost at full width}``.
    fixed : float
        The cost of what no group changes (other layers, activations, the rest of the pass).
    flow : ChannelFlow
    units : dict
        ``{group root: units}`` of the groups a plan may shrink.
    floor : tuple, optional
        ``(removed, {layer: time}, fixed time)`` at the smallest widths (``latency`` only).
    macs : CostModel, optional
        The MACs of the same plans (``latency`` only).
    """

    kind: str
    layers: dict[str, float]
    fixed: float
    flow: ChannelFlow
    units: dict[str, int]
    floor: tuple[dict[str, int], dict[str, float], float] | None = None
    macs: CostModel | None = None

    @classmethod
    def build(cls, model: nn.Module, example: torch.Tensor, groups: Sequence[UnitGroup],
              flow: ChannelFlow, kind: str) -> CostModel:
        """The MACs or parameters of ``model``'s plans (``example``: one input batch)."""
        units = {g.root: g.units for g in groups if not g.note}
        costs = layer_costs(model, tuple(example.shape[1:]))
        key = "macs" if kind == "macs" else "params"
        layers = {name: float(c[key]) for name, c in costs.items()
                  if name in flow.writes or name in flow.reads}
        rest = float(sum(c[key] for c in costs.values())) - sum(layers.values())
        if kind == "params":  # norms, embeddings: what layer_costs does not count
            rest += float(sum(p.numel() for p in model.parameters())
                          - sum(c["params"] for c in costs.values()))
        return cls(kind, layers, rest, flow, units)

    @classmethod
    def timed(cls, model: nn.Module, smallest: nn.Module, removed: Mapping[str, int],
              example: torch.Tensor, groups: Sequence[UnitGroup], flow: ChannelFlow, *,
              repeat: int = 20) -> CostModel:
        """The latency of ``model``'s plans, from per-layer times of ``model`` and of
        ``smallest``, the model with ``removed`` units of each group removed, on ``example``
        (its batch size and device)."""
        macs = cls.build(model, example, groups, flow, "macs")
        names = sorted(set(flow.writes) | set(flow.reads))
        full, total = layer_latencies(model, example, names, repeat=repeat)
        low, low_total = layer_latencies(smallest, example, names, repeat=repeat)
        rest = max(0.0, total - sum(full.values()))
        low_rest = min(rest, max(0.0, low_total - sum(low.values())))
        floor = (dict(removed), {n: min(low[n], full[n]) for n in names}, low_rest)
        return cls("latency", full, rest, flow, macs.units, floor, macs)

    @property
    def dense(self) -> float:
        return self.fixed + sum(self.layers.values())

    def _share(self, name: str, kept: Mapping[str, float]) -> float:
        scale = kept.get(self.flow.writes.get(name, ""), 1.0)
        if name not in self.flow.depthwise:
            scale *= kept.get(self.flow.reads.get(name, ""), 1.0)
        return scale

    def _kept(self, removed: Mapping[str, int]) -> dict[str, float]:
        return {root: 1.0 - removed.get(root, 0) / n for root, n in self.units.items()}

    def cost(self, removed: Mapping[str, int]) -> float:
        """The cost with ``removed[root]`` units of each group removed."""
        kept = self._kept(removed)
        if self.floor is None or self.macs is None:
            return self.fixed + sum(base * self._share(name, kept)
                                    for name, base in self.layers.items())
        low_removed, low, low_fixed = self.floor
        low_kept = self._kept(low_removed)
        total = _between(self.fixed, low_fixed, self.macs.cost(removed) / self.macs.dense,
                         self.macs.cost(low_removed) / self.macs.dense)
        for name, full in self.layers.items():
            total += _between(full, low[name], self._share(name, kept),
                              self._share(name, low_kept))
        return total


def _between(full: float, low: float, share: float, low_share: float) -> float:
    """A time linear in a MAC share, ``full`` at 1 and ``low`` at ``low_share``."""
    if low_share >= 1.0:
        return full
    return low + (full - low) * (share - low_share) / (1.0 - low_share)


# --------------------------------------------------------------------------------------------
# Searching counts


def _bisect(make: Callable[[float], dict[str, int]], cost: Callable[[dict[str, int]], float],
            limit: float, top: float, steps: int = 40) -> tuple[float, dict[str, int]]:
    """The smallest fraction in [0, top] whose counts ``make(f)`` cost at most ``limit``."""
    lo, hi = 0.0, top
    best = make(top)
    if cost(best) > limit:
        return top, best  # the floor: reported as not met
    for _ in range(steps):
        mid = (lo + hi) / 2
        counts = make(mid)
        if cost(counts) <= limit:
            hi, best = mid, counts
        else:
            lo = mid
    return hi, best


def search_counts(
    model: CostModel,
    limit: float,
    allocation: str,
    *,
    round_counts: Callable[[str, int], int],
    min_units: int = 1,
    global_counts: Callable[[float], dict[str, int]] | None = None,
    drops: Mapping[str, tuple[Sequence[int], Sequence[float]]] | None = None,
) -> tuple[dict[str, int], dict]:
    """Per-group removal counts whose cost is at most ``limit`` (see the module docstring).

    Parameters
    ----------
    model : CostModel
    limit : float
        The most the plan may cost.
    allocation : {"uniform", "global", "curves"}
    round_counts : callable
        ``(root, count) -> count`` after ``round_to`` (the count actually removed).
    min_units : int
        Units every group keeps.
    global_counts : callable, optional
        ``fraction -> counts`` of a global ranking (``global`` only).
    drops : dict, optional
        ``{root: (ks, accuracy drop after removing k)}`` read off the groups' curves, ``ks``
        ascending from 0 (``curves`` only).

    Returns
    -------
    counts : dict
    report : dict
        ``fraction`` (uniform, global), ``predicted`` cost, ``met`` and, for ``curves``, the
        summed drop of the counts chosen.
    """
    caps = {root: max(0, n - min_units) for root, n in model.units.items()}

    def cost(counts: dict[str, int]) -> float:
        return model.cost(counts)

    if allocation == "uniform":
        def uniform(f: float) -> dict[str, int]:
            return {root: round_counts(root, min(caps[root], int(math.floor(f * n + 1e-9))))
                    for root, n in model.units.items()}
        fraction, counts = _bisect(uniform, cost, limit, 1.0)
        return counts, {"fraction": fraction, "predicted": cost(counts),
                        "met": cost(counts) <= limit}
    if allocation == "global":
        if global_counts is None:
            raise PruneInfoError("the global allocation needs the global ranking")

        def ranked(f: float) -> dict[str, int]:
            raw = global_counts(f)
            return {root: round_counts(root, min(caps[root], k)) for root, k in raw.items()}
        fraction, counts = _bisect(ranked, cost, limit, 1.0)
        return counts, {"fraction": fraction, "predicted": cost(counts),
                        "met": cost(counts) <= limit}
    if allocation != "curves":
        raise PruneInfoError(f"unknown allocation {allocation!r} under a target; choose one of "
                             f"{', '.join(ALLOCATIONS_UNDER_TARGET)}")
    if drops is None:
        raise PruneInfoError("the curves allocation needs each group's ablation curve")
    counts, total = _greedy_curves(model, limit, drops, caps, round_counts)
    return counts, {"predicted": cost(counts), "met": cost(counts) <= limit,
                    "summed_drop_pp": total}


def _drop_at(curve: tuple[Sequence[int], Sequence[float]], k: int) -> float:
    """The drop of a curve after ``k`` removals, linear between the points read."""
    ks, drops = curve
    if k <= ks[0]:
        return float(drops[0])
    for (k0, d0), (k1, d1) in zip(zip(ks, drops), zip(ks[1:], drops[1:])):
        if k <= k1:
            return float(d0 + (d1 - d0) * (k - k0) / max(1, k1 - k0))
    return float(drops[-1])


def _greedy_curves(model: CostModel, limit: float,
                   drops: Mapping[str, tuple[Sequence[int], Sequence[float]]],
                   caps: Mapping[str, int], round_counts: Callable[[str, int], int]
                   ) -> tuple[dict[str, int], float]:
    """Counts meeting ``limit`` with a small summed drop (see :func:`search_counts`), and that
    drop."""
    steps = {root: [k for k in sorted({round_counts(root, min(k, caps[root])) for k in ks})]
             or [0] for root, (ks, _) in drops.items()}
    table = {root: envelope([_drop_at(drops[root], k) for k in steps[root]])
             for root in steps}
    space = math.prod(len(v) for v in steps.values())
    if space <= EXHAUSTIVE_PLANS:
        best = _exhaustive(model, limit, steps, table)
    else:
        candidates = [_exchange(model, limit, steps, table, at)
                      for at in (_lagrangian(model, limit, steps, table),
                                 _by_rate(model, limit, steps, table))]
        best = min(candidates, key=lambda at: (model.cost(_counts(steps, at)) > limit,
                                               sum(table[r][i] for r, i in at.items())))
    best = _fill(model, limit, steps, table, best)
    return _counts(steps, best), sum(table[root][i] for root, i in best.items())


def envelope(drops: Sequence[float]) -> list[float]:
    """A curve read as the most accuracy lost by any smaller removal so far: removing more
    units is never taken to help (a dip of a few validation samples is noise, and trusting it
    would prune a group far past what the budget asks).

    >>> envelope([0.0, 0.5, 0.2, 1.0])
    [0.0, 0.5, 0.5, 1.0]
    """
    return list(itertools.accumulate(drops, max))


def _fill(model: CostModel, limit: float, steps: Mapping[str, Sequence[int]],
          table: Mapping[str, Sequence[float]], at: Mapping[str, int]) -> dict[str, int]:
    """Give units back while the budget allows, where that lowers the drop most (then where it
    costs least): a plan uses its whole budget, flat stretches of the curves included."""
    at = dict(at)
    if model.cost(_counts(steps, at)) > limit:
        return at
    while True:
        options = []
        for root, i in at.items():
            if i == 0:
                continue
            cost = model.cost(_counts(steps, {**at, root: i - 1}))
            if cost <= limit:
                options.append((table[root][i - 1] - table[root][i], cost, root))
        if not options:
            return at
        _, _, root = min(options)
        at[root] -= 1


#: Plans (products of every group's steps) up to which ``curves`` searches them all.
EXHAUSTIVE_PLANS = 20_000


def _counts(steps: Mapping[str, Sequence[int]], at: Mapping[str, int]) -> dict[str, int]:
    return {root: steps[root][i] for root, i in at.items()}


def _exhaustive(model: CostModel, limit: float, steps: Mapping[str, Sequence[int]],
                table: Mapping[str, Sequence[float]]) -> dict[str, int]:
    """The plan of least summed drop within ``limit``, every plan tried (few groups)."""
    roots = list(steps)
    best, best_drop = None, math.inf
    for at in itertools.product(*(range(len(steps[r])) for r in roots)):
        drop = sum(table[r][i] for r, i in zip(roots, at))
        if drop < best_drop:
            counts = {r: steps[r][i] for r, i in zip(roots, at)}
            if model.cost(counts) <= limit:
                best, best_drop = counts, drop
    return best if best is not None else {r: steps[r][-1] for r in roots}


def _by_rate(model: CostModel, limit: float, steps: Mapping[str, Sequence[int]],
             table: Mapping[str, Sequence[float]]) -> dict[str, int]:
    """Greedy: give up, one step at a time, where the drop per cost saved is least."""
    at = {root: 0 for root in steps}
    current = model.cost(_counts(steps, at))
    while current > limit:
        best, best_rate = None, math.inf
        for root in steps:
            i = at[root]
            if i + 1 >= len(steps[root]):
                continue
            saved = current - model.cost(_counts(steps, {**at, root: i + 1}))
            if saved <= 0:
                continue
            rate = max(0.0, table[root][i + 1] - table[root][i]) / saved
            if rate < best_rate:
                best, best_rate = root, rate
        if best is None:
            break  # nothing left to give up: the target is below the floor
        at[best] += 1
        current = model.cost(_counts(steps, at))
    return at


def _lagrangian(model: CostModel, limit: float, steps: Mapping[str, Sequence[int]],
                table: Mapping[str, Sequence[float]], sweeps: int = 3) -> dict[str, int]:
    """Minimise summed drop + ``price`` x cost by coordinate descent (each group tries every
    step with the others fixed, so curves that rise and fall are searched whole), with the
    least ``price`` whose plan meets ``limit`` found by bisection in log space."""
    def solve(price: float) -> dict[str, int]:
        at = {root: 0 for root in steps}
        for _ in range(sweeps):
            moved = False
            for root in steps:
                values = [table[root][i] + price * model.cost(_counts(steps, {**at, root: i}))
                          for i in range(len(steps[root]))]
                best = min(range(len(values)), key=values.__getitem__)
                moved |= best != at[root]
                at[root] = best
            if not moved:
                break
        return at

    scale = max(1e-12, max(max(v) - min(v) for v in table.values()) / max(model.dense, 1e-12))
    lo, hi = -12.0, 12.0  # log10 of price / scale
    best = solve(scale * 10 ** hi)
    if model.cost(_counts(steps, best)) > limit:
        return best
    for _ in range(30):
        mid = (lo + hi) / 2
        at = solve(scale * 10 ** mid)
        if model.cost(_counts(steps, at)) <= limit:
            hi, best = mid, at
        else:
            lo = mid
    return best


def _exchange(model: CostModel, limit: float, steps: Mapping[str, Sequence[int]],
              table: Mapping[str, Sequence[float]], at: dict[str, int]) -> dict[str, int]:
    """Improve a plan within ``limit``: move one group to any of its steps and another by one
    step either way while the summed drop falls and the budget holds."""
    at = dict(at)
    if model.cost(_counts(steps, at)) > limit:
        return at
    improved = True
    while improved:
        improved = False
        for root in steps:  # one group alone, to any step that keeps the budget
            for i in range(len(steps[root])):
                if table[root][i] < table[root][at[root]] - 1e-12 and \
                        model.cost(_counts(steps, {**at, root: i})) <= limit:
                    at[root], improved = i, True
        for back in steps:
            for more in steps:
                if more == back:
                    continue
                for i in range(at[back]):  # give some back ...
                    for j in range(at[more] + 1, len(steps[more])):  # ... take more here
                        gain = (table[back][at[back]] - table[back][i]
                                + table[more][at[more]] - table[more][j])
                        if gain > 1e-12 and model.cost(
                                _counts(steps, {**at, back: i, more: j})) <= limit:
                            at[back], at[more], improved = i, j, True
                            break
                    else:
                        continue
                    break
    return at
