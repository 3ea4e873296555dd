"""Physical removal of units through torch-pruning, how many to remove, and pruning history.

A *plan* names, for each hidden layer, the units (neurons or channels) to remove, by their index
in the model the plan is applied to. :func:`apply_plan` removes exactly those units with
torch-pruning's ``DependencyGraph``, so that everything coupled to a layer's outputs shrinks with
it: the next layer's inputs, a BatchNorm after the layer, and for a CNN the block of
``H × W`` inputs of the first fully-connected layer that one channel becomes after flattening.
A 784-100-100-10 MLP pruned by half becomes a real 784-50-50-10 MLP with smaller weight
matrices; :func:`mask_plan` instead keeps every shape and zeroes the units.

What "removing a unit" means
----------------------------
Removing unit ``j`` of a layer deletes row ``j`` of its weight and bias, channel ``j`` of a
BatchNorm right after it, and the inputs of the next layer that read unit ``j``. The pruned model
therefore computes exactly what the unpruned model computes when unit ``j``'s *post-activation*
output (the value the next layer reads, after BatchNorm and the activation) is zero. For a ReLU
layer without BatchNorm this is the same as zeroing the layer's pre-activation output; with
BatchNorm, or with sigmoid / tanh, it is not (``sigmoid(0) = 0.5``, and BatchNorm shifts a zero
input by its bias and running mean), and the post-activation output is the right reference.

Allocation
----------
* :func:`plan_layerwise`: the lowest-ranked fraction (or all but a number) of each layer.
* :func:`plan_global`: one ranking across layers, never emptying a layer. The information
  measures of Amjad et al. change their distribution from layer to layer (Sec. VI), so such a
  ranking is ill-advised with them; :data:`GLOBAL_RANKING_WARNING` says so.
* :func:`plan_max_drop`: per-layer counts read off each layer's information-ordered ablation
  curve, then backed off until the joint accuracy drop stays within a budget.

torch-pruning traps avoided here
--------------------------------
* ``BasePruner(global_pruning=True)`` silently skips a layer whose threshold would remove all
  of its channels (``DependencyGraph.check_pruning_group`` fails and the group is not yielded);
  here the plan is explicit and a layer that would lose every unit is an error.
* ``iterative_steps > 1`` renumbers the channels after the first step, so a fixed score vector
  then points at the wrong units; here every layer is pruned once, with indices that refer to
  the numbering of the model the plan was made for. Pruning one layer's outputs only renumbers
  the *inputs* of the layers it feeds, never another layer's outputs, so layers can be pruned
  one after the other in any order with their original indices (tests check this).
* Tracing relies on autograd: the graph is built under ``torch.enable_grad()`` with every
  parameter temporarily requiring gradients, and in eval mode, so that tracing does not update
  BatchNorm running statistics.

Pruning history
---------------
Each pruning step appends one plain-data entry to ``Checkpoint.pruning_history`` (see
:func:`history_entry`); :func:`replay_history` repeats the removals on a freshly built model, which
is how a pruned ``--model package.module:factory`` checkpoint is rebuilt before its weights load.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import itertools
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Sequence

import torch
from torch import nn

from prune_info.errors import PruneInfoError
from prune_info.io import cpu_state_dict
from prune_info.models import count_parameters, prunable_layers

if TYPE_CHECKING:
    from prune_info.checkpoint import Checkpoint
    from prune_info.data import Dataset, Split

#: Printed (on stderr by the CLI) whenever units are ranked across layers.
GLOBAL_RANKING_WARNING = (
    "warning: --global ranks units of different layers against each other, but the "
    "distribution of information measures changes from layer to layer (deeper layers score "
    "higher), so comparing neurons of different layers is ill-advised (Amjad, Liu & Geiger, "
    "Sec. VI); prefer --layerwise or --max-drop"
)

ALLOCATIONS = ("layerwise", "global", "max-drop")
ORDERS = ("low", "high", "random")

_WEIGHT_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


# --------------------------------------------------------------------------------------------
# Plans


@dataclass(frozen=True)
class PrunePlan:
    """The units to remove from each layer, by index in the model the plan is applied to.

    Attributes
    ----------
    remove : dict
        ``{layer: sorted tuple of unit indices}``; a layer may map to an empty tuple.
    widths : dict
        ``{layer: number of units}`` of the model the plan was made for.

    Examples
    --------
    >>> plan = PrunePlan({"fc1": (1, 3)}, {"fc1": 4})
    >>> plan.widths_after(), plan.kept("fc1")
    ({'fc1': 2}, [0, 2])
    """

    remove: dict[str, tuple[int, ...]]
    widths: dict[str, int]

    def __post_init__(self) -> None:
        missing = set(self.remove) - set(self.widths)
        if missing:
            raise PruneInfoError(f"plan names layers without a width: {sorted(missing)}")
        for layer, idxs in self.remove.items():
            n = self.widths[layer]
            if len(set(idxs)) != len(idxs):
                raise PruneInfoError(f"plan removes a unit of {layer} twice")
            if any(not 0 <= i < n for i in idxs):
                raise PruneInfoError(f"plan removes units of {layer} outside 0..{n - 1}")
            if n > 0 and len(idxs) >= n:
                raise PruneInfoError(
                    f"layer {layer} would lose every one of its {n} units, which disconnects the "
                    "network; keep at least one (lower --amount or raise --keep / --min-units)"
                )

    @classmethod
    def from_indices(cls, remove: Mapping[str, Sequence[int]], widths: Mapping[str, int]
                     ) -> "PrunePlan":
        """Build a plan from any integer sequences (tensors, lists), sorting them."""
        clean = {layer: tuple(sorted(int(i) for i in idxs)) for layer, idxs in remove.items()}
        return cls(clean, {layer: int(widths[layer]) for layer in clean})

    def n_removed(self) -> dict[str, int]:
        return {layer: len(idxs) for layer, idxs in self.remove.items()}

    def widths_after(self) -> dict[str, int]:
        return {layer: self.widths[layer] - len(idxs) for layer, idxs in self.remove.items()}

    def kept(self, layer: str) -> list[int]:
        """Indices of the units of ``layer`` that survive, in order."""
        gone = set(self.remove[layer])
        return [i for i in range(self.widths[layer]) if i not in gone]

    def is_empty(self) -> bool:
        return not any(self.remove.values())


def removal_count(n_units: int, amount: float) -> int:
    """Units removed from a layer of ``n_units`` by a fraction ``amount`` in [0, 1).

    Rounds down, so a fraction below 1 never empties a layer: ``removal_count(100, 0.5) == 50``,
    ``removal_count(6, 0.9) == 5``.
    """
    return int(math.floor(amount * n_units + 1e-9))


def check_amount(amount: float, what: str = "--amount") -> float:
    amount = float(amount)
    if not 0.0 <= amount < 1.0:
        raise PruneInfoError(
            f"{what} {amount:g} is outside [0, 1): it is the fraction of units to remove, e.g. 0.5"
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
        raise PruneInfoError("give exactly one of --amount and --keep")
    values = amounts if amounts is not None else keep
    what = "--amount" if amounts is not None else "--keep"
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
            counts[layer] = removal_count(n, check_amount(value))
        else:
            k = int(value)
            if k < 1:
                raise PruneInfoError(
                    f"--keep {k} for {layer}: keep at least 1 unit, or the layer is disconnected"
                )
            if k > n:
                raise PruneInfoError(
                    f"--keep {k} for {layer} is more than its {n} units; give at most {n}"
                )
            counts[layer] = n - k
    return counts


def _rank(scores: torch.Tensor, order: str, seed: int) -> torch.Tensor:
    from prune_info.criteria import rank_units

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
        :func:`prune_info.criteria.compute_scores`).
    amounts, keep
        See :func:`removal_counts`; exactly one is given.
    order : {"low", "high", "random"}
        ``low`` removes the lowest scores first (the usual pruning), ``high`` the highest (for
        experiments), ``random`` ignores the scores (a seeded baseline).
    seed : int
        Drives ``order="random"``; ties in scores go to the lower unit index
        (:func:`prune_info.criteria.rank_units`).

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
    remove = {}
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
            f"--min-units {min_units}: every layer must keep at least 1 unit, or it is "
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
    allowed_pos = allowed.nonzero().flatten()[:budget]
    chosen = ranking[allowed_pos]
    cut = int(allowed_pos[-1]) + 1 if budget and len(allowed_pos) == budget else len(ranking)
    blocked = owner_r[:cut][~allowed[:cut]].unique().tolist() if budget else []
    remove = {layer: local[chosen[owner[chosen] == i]] for i, layer in enumerate(layers)}
    plan = PrunePlan.from_indices(remove, dict(zip(layers, sizes.tolist())))
    return plan, [layers[i] for i in sorted(blocked)]


# --------------------------------------------------------------------------------------------
# Removal and masking through the dependency graph


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Run the tiny forward passes of tracing and checking on one intra-op thread.

    They process at most 8 samples; waking a second thread costs more than the work, and on a
    loaded machine an OpenMP barrier waiting for a descheduled thread turns a 0.05 ms matmul into
    tens of milliseconds.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def example_input(model: nn.Module, input_shape: Sequence[int]) -> torch.Tensor:
    """A batch of two zero inputs of ``input_shape`` on the model's device, for tracing."""
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    return torch.zeros(2, *[int(s) for s in input_shape], device=device)


_example_input = example_input  # the name prune_info.retrain imports


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _out_fn(tp, module: nn.Module):
    if isinstance(module, nn.Linear):
        return tp.prune_linear_out_channels
    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        return tp.prune_conv_out_channels
    raise PruneInfoError(
        f"cannot prune a {type(module).__name__}: only Linear and Conv layers are prunable"
    )


class _Graph:
    """A traced torch-pruning dependency graph of a model (eval mode, autograd on)."""

    def __init__(self, model: nn.Module, example_input: torch.Tensor):
        import torch_pruning as tp

        self.tp = tp
        self.model = model
        self.names = {m: n for n, m in model.named_modules()}
        flags = {p: p.requires_grad for p in model.parameters()}
        was_training = model.training
        model.eval()
        try:
            for p in flags:
                p.requires_grad_(True)
            with torch.enable_grad():
                self.dg = tp.DependencyGraph().build_dependency(
                    model, example_inputs=example_input, verbose=False
                )
        except PruneInfoError:
            raise
        except Exception as exc:  # noqa: BLE001  (any tracing failure is the model's shape)
            raise PruneInfoError(
                f"torch-pruning cannot trace the model ({_first_line(exc)}); check that its "
                "forward runs on the dataset's input shape and returns a tensor"
            ) from exc
        finally:
            for p, flag in flags.items():
                p.requires_grad_(flag)
            model.train(was_training)

    def group(self, layer: str, idxs: Sequence[int]):
        module = self.model.get_submodule(layer)
        if module not in self.dg.module2node:
            raise PruneInfoError(
                f"layer {layer} does not appear in the traced forward pass, so torch-pruning "
                f"cannot tell what reads its outputs; leave it out with --ignore {layer}"
            )
        return self.dg.get_pruning_group(module, _out_fn(self.tp, module), list(idxs))

    def coupled(self, layer: str, group) -> dict[str, list[int]]:
        """Other weight layers whose *outputs* this group prunes too (residual adds, concats)."""
        root = self.model.get_submodule(layer)
        out: dict[str, list[int]] = {}
        for dep, idxs in group:
            target = dep.target.module
            if (target is not root and isinstance(target, _WEIGHT_TYPES)
                    and self.dg.is_out_channel_pruning_fn(dep.handler)):
                out[self.names.get(target, "?")] = sorted(int(i) for i in idxs)
        return out

    def is_in_channel(self, handler) -> bool:
        return self.dg.is_in_channel_pruning_fn(handler)

    def is_out_channel(self, handler) -> bool:
        return self.dg.is_out_channel_pruning_fn(handler)


def _check_layers(model: nn.Module, plan: PrunePlan) -> None:
    prunable = {layer.name: layer for layer in prunable_layers(model)}
    for layer, idxs in plan.remove.items():
        if layer not in prunable:
            raise PruneInfoError(
                f"{layer} is not a prunable layer of this model; prunable: "
                f"{', '.join(prunable) or 'none'}"
            )
        if prunable[layer].n_units != plan.widths[layer]:
            raise PruneInfoError(
                f"the plan was made for {plan.widths[layer]} units in {layer} but the model has "
                f"{prunable[layer].n_units}"
            )


def _coupled_in_group(graph: _Graph, layer: str, group, plan: PrunePlan) -> dict[str, list[int]]:
    """Layers pruned together with ``layer``; planned ones must lose the same units."""
    coupled = graph.coupled(layer, group)
    for other, idxs in coupled.items():
        if plan.remove.get(other) and list(plan.remove[other]) != idxs:
            raise PruneInfoError(
                f"layers {layer} and {other} are coupled (their outputs are added or joined), "
                f"so they must lose the same units; prune one and leave the other out with "
                f"--ignore {other}"
            )
    return coupled


class _AblationCheck:
    """Checks, layer after layer, that a pruned model equals the original with units ablated.

    The reference is a copy of the original model in which the removed units' post-activation
    outputs are zero: hooked at the activation module when there is one; otherwise at the
    BatchNorm or the layer itself, where either 0 (right for ReLU, tanh, GELU) or a large
    negative value (right for ReLU and sigmoid) makes the activation output zero. This catches
    the cases where torch-pruning runs but removes the wrong inputs downstream (e.g. after a
    ``torch.roll`` or a permutation it does not model).
    """

    FILLS = (0.0, -1e4)

    def __init__(self, model: nn.Module, example_input: torch.Tensor):
        self.ref = copy.deepcopy(model).eval()
        gen = torch.Generator().manual_seed(0)
        shape = (8, *example_input.shape[1:])
        self.x = torch.randn(shape, generator=gen).to(example_input.device)
        self.info = {layer.name: layer for layer in prunable_layers(self.ref)}
        self.fill: dict[str, tuple[torch.Tensor, float]] = {}
        self.hooked: set[str] = set()

    def _point(self, layer: str) -> tuple[str, bool]:
        info = self.info.get(layer)
        if info is not None and info.act_module is not None:
            return info.act_module, True
        if info is not None and info.norm_module is not None:
            return info.norm_module, False
        return layer, False

    def _hook(self, layer: str) -> None:
        if layer in self.hooked:
            return
        point, _ = self._point(layer)

        def hook(module, inputs, output):
            idxs, value = self.fill[layer]
            return output.index_fill(1, idxs.to(output.device), value)

        self.ref.get_submodule(point).register_forward_hook(hook)
        self.hooked.add(layer)

    @torch.no_grad()
    def check(self, model: nn.Module, removed: Mapping[str, Sequence[int]], root: str) -> None:
        pending = {k: v for k, v in removed.items() if k not in self.fill}
        for layer in pending:
            self._hook(layer)
        was_training = model.training
        model.eval()
        try:
            got = model(self.x)
        finally:
            model.train(was_training)
        options = [self.FILLS[:1] if self._point(layer)[1] else self.FILLS for layer in pending]
        worst = float("inf")
        for values in itertools.product(*options):
            for layer, value in zip(pending, values):
                self.fill[layer] = (torch.as_tensor(list(pending[layer]), dtype=torch.long),
                                    value)
            want = self.ref(self.x)
            diff = float((got - want).abs().max())
            if diff <= 1e-4 * max(1.0, float(want.abs().max())):
                return
            worst = min(worst, diff)
        raise PruneInfoError(
            f"torch-pruning removed the wrong inputs downstream of layer {root}: the pruned "
            f"model differs from the original with those units ablated by {worst:.3g}; leave "
            f"it out with --ignore {root}"
        )


def apply_plan(model: nn.Module, plan: PrunePlan, example_input: torch.Tensor, *,
               verify: bool = True) -> nn.Module:
    """Remove the planned units from ``model`` for real (in place) and return it.

    Every layer is pruned through a torch-pruning dependency group, so the layers reading its
    outputs lose the matching inputs and a BatchNorm after it loses the matching channels. After
    each layer the model is run; if it fails, if its output shape changes, or (``verify``) if it
    no longer equals the original model with the removed units ablated, torch-pruning did not
    follow the layer's outputs correctly and the error names the layer.

    Parameters
    ----------
    model : nn.Module
        The model to shrink; modified in place (pass a copy to keep the original).
    plan : PrunePlan
        Indices refer to the numbering of ``model`` as it is now.
    example_input : torch.Tensor
        A batch of inputs of the right shape (zeros are fine) for tracing.
    verify : bool
        Compare with the ablated original after each layer (costs a copy of the model and a few
        forward passes of 8 random inputs).

    Returns
    -------
    nn.Module
        ``model``, now smaller.

    Examples
    --------
    >>> from prune_info.models import build_model, parse_arch
    >>> model = build_model(parse_arch("64-100-100-10", (1, 8, 8), 10))
    >>> plan = PrunePlan.from_indices({"fc1": range(50), "fc2": range(0, 100, 2)},
    ...                               {"fc1": 100, "fc2": 100})
    >>> apply_plan(model, plan, torch.zeros(2, 1, 8, 8)).fc2.weight.shape
    torch.Size([50, 50])
    """
    return _transform(model, plan, example_input, verify, remove=True)


@torch.no_grad()
def _zero_group(graph: _Graph, group) -> None:
    for dep, dep_idxs in group:
        target = dep.target.module
        if not isinstance(target, nn.Module) or not dep_idxs:
            continue
        index = torch.as_tensor(sorted(int(i) for i in dep_idxs), dtype=torch.long)
        if graph.is_out_channel(dep.handler):
            _zero_outputs(target, index)
        elif graph.is_in_channel(dep.handler) and isinstance(target, _WEIGHT_TYPES):
            if getattr(target, "groups", 1) != 1:
                raise PruneInfoError(
                    f"--mask does not support grouped convolutions ({graph.names[target]})"
                )
            target.weight.index_fill_(1, index.to(target.weight.device), 0.0)


def _transform(model: nn.Module, plan: PrunePlan, example_input: torch.Tensor, verify: bool,
               remove: bool) -> nn.Module:
    _check_layers(model, plan)
    if plan.is_empty():
        return model
    # torch-pruning traces autograd's graph: leave no_grad / inference_mode for the whole step
    with _one_thread(), torch.inference_mode(False), torch.enable_grad():
        return _transform_layers(model, plan, example_input.clone(), verify, remove)


def _transform_layers(model: nn.Module, plan: PrunePlan, example_input: torch.Tensor,
                      verify: bool, remove: bool) -> nn.Module:
    was_training = model.training
    model.eval()
    with torch.no_grad():
        reference_shape = model(example_input).shape
    checker = _AblationCheck(model, example_input) if verify else None
    graph = _Graph(model, example_input)
    done: dict[str, list[int]] = {}
    try:
        for layer, idxs in plan.remove.items():
            if not idxs or layer in done:
                continue
            group = graph.group(layer, idxs)
            coupled = _coupled_in_group(graph, layer, group, plan)
            try:
                group.prune() if remove else _zero_group(graph, group)
            except PruneInfoError:
                raise
            except Exception as exc:  # noqa: BLE001
                raise PruneInfoError(
                    f"torch-pruning failed on layer {layer} ({_first_line(exc)}); leave it out "
                    f"with --ignore {layer}"
                ) from exc
            done[layer] = list(idxs)
            done.update(coupled)
            if remove:
                _verify_layer(model, layer, plan, example_input, reference_shape)
            if checker is not None:
                checker.check(model, done, layer)
    finally:
        model.train(was_training)
    return model


def _verify_layer(model: nn.Module, layer: str, plan: PrunePlan, example_input: torch.Tensor,
                  reference_shape: torch.Size) -> None:
    module = model.get_submodule(layer)
    width = module.out_features if isinstance(module, nn.Linear) else module.out_channels
    expected = plan.widths[layer] - len(plan.remove[layer])
    problem = None
    if width != expected:
        problem = f"it has {width} units, expected {expected}"
    else:
        try:
            with torch.no_grad():
                shape = model(example_input).shape
            if shape != reference_shape:
                problem = (f"the output shape changed from {tuple(reference_shape)} to "
                           f"{tuple(shape)}")
        except Exception as exc:  # noqa: BLE001
            problem = f"the pruned model no longer runs: {_first_line(exc)}"
    if problem:
        raise PruneInfoError(
            f"torch-pruning could not follow where the outputs of layer {layer} go ({problem}); "
            f"leave it out with --ignore {layer}"
        )


def mask_plan(model: nn.Module, plan: PrunePlan, example_input: torch.Tensor, *,
              verify: bool = True) -> nn.Module:
    """Zero the planned units of ``model`` (in place), keeping every shape.

    The masked model computes exactly what the pruned model of :func:`apply_plan` computes: the
    units' incoming weights, biases and BatchNorm scale and shift are zeroed, and so are the
    weights with which the next layers read them (for a CNN, the ``H × W`` inputs of the first
    fully-connected layer fed by a channel). There is no speed-up; retraining must re-apply the
    mask (``mask_plan`` again, e.g. after every optimiser step) to keep the units at zero.

    Parameters
    ----------
    model : nn.Module
        Modified in place.
    plan : PrunePlan
    example_input : torch.Tensor
        A batch of inputs of the right shape, for tracing which layers read the units.
    verify : bool
        Compare with the original model with the units ablated, as in :func:`apply_plan`.

    Returns
    -------
    nn.Module
        ``model``.
    """
    return _transform(model, plan, example_input, verify, remove=False)


def _zero_outputs(module: nn.Module, index: torch.Tensor) -> None:
    if isinstance(module, _WEIGHT_TYPES) or isinstance(module, nn.modules.batchnorm._BatchNorm):
        for name in ("weight", "bias"):
            param = getattr(module, name, None)
            if param is not None:
                param.index_fill_(0, index.to(param.device), 0.0)


# --------------------------------------------------------------------------------------------
# History


def history_entry(
    plan: PrunePlan,
    *,
    mode: str,
    allocation: str,
    criterion: str,
    order: str,
    input_shape: Sequence[int],
    requested: dict | None = None,
    extra: dict | None = None,
) -> dict:
    """One plain-data record of a pruning step (loads with ``weights_only=True``).

    Keys: ``mode`` (``remove`` or ``mask``), ``allocation``, ``criterion``, ``order``,
    ``requested`` (the user's amount / keep / max_drop / min_units), ``amounts`` (fraction removed
    per layer), ``removed`` (``{layer: [indices]}`` in the numbering of the model *before* this
    step), ``widths_before``, ``widths_after``, ``input_shape`` and a one-line ``summary``;
    ``extra`` adds more (:func:`prune_checkpoint` adds ``score_options``, validation and test
    accuracy before and after, and the ``max_drop`` budget, counts and joint drop).
    """
    widths_after = plan.widths_after() if mode == "remove" else dict(plan.widths)
    entry = {
        "mode": mode,
        "allocation": allocation,
        "criterion": criterion,
        "order": order,
        "requested": dict(requested or {}),
        "amounts": {layer: (len(idxs) / plan.widths[layer] if plan.widths[layer] else 0.0)
                    for layer, idxs in plan.remove.items()},
        "removed": {layer: [int(i) for i in idxs] for layer, idxs in plan.remove.items()},
        "widths_before": {layer: int(n) for layer, n in plan.widths.items()},
        "widths_after": {layer: int(n) for layer, n in widths_after.items()},
        "input_shape": [int(s) for s in input_shape],
    }
    before = "-".join(str(n) for n in plan.widths.values())
    after = "-".join(str(n) for n in plan.widths_after().values())
    verb = "masked" if mode == "mask" else "pruned"
    entry["summary"] = f"{criterion} {allocation} ({order} first): {verb} {before} -> {after}"
    entry.update(extra or {})
    return entry


def plan_from_entry(entry: Mapping[str, Any]) -> PrunePlan:
    """The plan recorded in a history entry (see :func:`history_entry`)."""
    try:
        return PrunePlan.from_indices(entry["removed"], entry["widths_before"])
    except (KeyError, TypeError) as exc:
        raise PruneInfoError(
            "a pruning history entry lacks its removed units or widths; re-create the checkpoint"
        ) from exc


def replay_history(model: nn.Module, history: Sequence[Mapping[str, Any]]) -> nn.Module:
    """Repeat recorded removals on a freshly built model (in place) so a pruned state_dict fits.

    Masking steps change no shapes and are skipped: their zeros live in the stored weights.

    Parameters
    ----------
    model : nn.Module
        A freshly built model of the architecture the history started from.
    history : list of dict
        ``Checkpoint.pruning_history``.

    Returns
    -------
    nn.Module
        ``model``, with the shapes of the pruned model.
    """
    for step, entry in enumerate(history, start=1):
        if entry.get("mode", "remove") != "remove":
            continue
        plan = plan_from_entry(entry)
        widths = {layer.name: layer.n_units for layer in prunable_layers(model)}
        wrong = {k: (n, widths.get(k)) for k, n in plan.widths.items() if widths.get(k) != n}
        if wrong:
            layer, (want, have) = next(iter(wrong.items()))
            raise PruneInfoError(
                f"pruning step {step} expects {want} units in {layer} but the rebuilt model has "
                f"{have}; the --model factory no longer builds the architecture that was pruned"
            )
        apply_plan(model, plan, _example_input(model, entry["input_shape"]))
    return model


# --------------------------------------------------------------------------------------------
# Cost


@torch.no_grad()
def layer_costs(model: nn.Module, input_shape: Sequence[int]) -> dict[str, dict[str, int]]:
    """Parameters and multiply-accumulates (one sample) of every Linear / Conv layer.

    MACs are counted from the shapes seen in one forward pass: a Linear layer costs
    ``in_features × out_features`` per output row, a convolution ``(in / groups) × kernel`` per
    output element. Activations, pooling and BatchNorm (foldable into the previous layer) are not
    counted.

    Returns
    -------
    dict
        ``{layer: {"params": int, "macs": int}}`` in registration order.

    Examples
    --------
    >>> from prune_info.models import build_model, parse_arch
    >>> m = build_model(parse_arch("64-100-100-10", (1, 8, 8), 10))
    >>> layer_costs(m, (1, 8, 8))["fc2"]
    {'params': 10100, 'macs': 10000}
    """
    costs: dict[str, dict[str, int]] = {}
    handles = []

    def hook(name):
        def record(module, inputs, output):
            if isinstance(module, nn.Linear):
                macs = output.numel() * module.in_features
            else:
                kernel = math.prod(module.kernel_size)
                macs = output.numel() * (module.in_channels // module.groups) * kernel
            costs[name]["macs"] += int(macs)  # batch of one
        return record

    for name, module in model.named_modules():
        if isinstance(module, _WEIGHT_TYPES):
            costs[name] = {"params": sum(p.numel() for p in module.parameters(recurse=False)),
                           "macs": 0}
            handles.append(module.register_forward_hook(hook(name)))
    was_training = model.training
    model.eval()
    try:
        with _one_thread():
            model(_example_input(model, input_shape)[:1])
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return costs


def total_macs(model: nn.Module, input_shape: Sequence[int]) -> int:
    """Multiply-accumulates of one forward pass of one sample (see :func:`layer_costs`)."""
    return sum(c["macs"] for c in layer_costs(model, input_shape).values())


# --------------------------------------------------------------------------------------------
# Automatic allocation from the data


def _masked_correct(model: nn.Module, plan: PrunePlan, split: "Split", example: torch.Tensor,
                    device: str) -> int:
    from prune_info.train import count_correct

    masked = mask_plan(copy.deepcopy(model), plan, example)
    return count_correct(masked.to(device), split, device=device)


def plan_max_drop(
    model: nn.Module,
    split: "Split",
    scores: Mapping[str, torch.Tensor],
    max_drop: float,
    *,
    input_shape: Sequence[int],
    order: str = "low",
    seed: int = 0,
    min_units: int = 1,
    backoff_steps: int = 20,
    device: str = "cpu",
) -> tuple[PrunePlan, dict]:
    """Per-layer counts within an accuracy budget, read off information-ordered ablation curves.

    For each layer, units are ablated cumulatively in the order of their ranking (lowest score
    first for ``order="low"``) and the accuracy on ``split`` is recorded after each (see
    :func:`prune_info.ablation.layerwise_curve`); the layer gets the largest ``k`` whose drop,
    ablating that layer alone, is at most ``max_drop`` percentage points. The layers' removals are
    then combined and the joint drop is measured on ``split`` with the units removed; while it
    exceeds the budget, every layer's ``k`` is scaled down by ``1 - t / backoff_steps``
    (t = 1, 2, ...), which ends at removing nothing.

    Parameters
    ----------
    model : nn.Module
    split : Split
        Validation data.
    scores : dict
        ``{layer: float tensor [n_units]}``, higher = more important.
    max_drop : float
        Allowed accuracy drop in percentage points (``1.0`` = one point), at least 0.
    input_shape : sequence of int
        Shape of one input, for tracing.
    order, seed
        As in :func:`plan_layerwise`.
    min_units : int
        Units every layer keeps.
    backoff_steps : int
        Granularity of the joint back-off.
    device : str

    Returns
    -------
    plan : PrunePlan
    report : dict
        ``budget_pp``, ``base_correct``, ``n``, per-layer ``alone`` (``k`` and its drop alone),
        ``rounds`` (``[{"scale", "counts", "drop_pp"}]``), ``counts`` (chosen), ``joint_drop_pp``.
    """
    from prune_info.ablation import layerwise_curve

    if not 0.0 <= max_drop < 100.0:
        raise PruneInfoError(
            f"--max-drop {max_drop:g} must be in [0, 100) percentage points of accuracy"
        )
    if min_units < 1:
        raise PruneInfoError("--min-units must be at least 1")
    if len(split) == 0:
        raise PruneInfoError("--max-drop needs a non-empty validation set")
    model.eval()
    n = len(split)
    layers = list(scores)
    widths = {layer: int(scores[layer].numel()) for layer in layers}
    rankings = {layer: _rank(scores[layer], order, seed) for layer in layers}
    alone: dict[str, dict] = {}
    for layer in layers:
        curve = layerwise_curve(model, layer, rankings[layer], split, ablate_to="zero",
                                device=device).to(torch.long)
        drops = 100.0 * (curve[0] - curve).double() / n
        cap = max(0, widths[layer] - min_units)
        ok = (drops[: cap + 1] <= max_drop + 1e-9).nonzero().flatten()
        k = int(ok.max()) if len(ok) else 0
        alone[layer] = {"k": k, "drop_pp": float(drops[k])}
    example = _example_input(model, input_shape)
    base = _masked_correct(model, PrunePlan({}, {}), split, example, device)
    rounds = []
    chosen = {layer: alone[layer]["k"] for layer in layers}
    for t in range(backoff_steps + 1):
        scale = 1.0 - t / backoff_steps
        counts = {layer: int(math.floor(alone[layer]["k"] * scale + 1e-9)) for layer in layers}
        plan = PrunePlan.from_indices(
            {layer: rankings[layer][: counts[layer]] for layer in layers}, widths
        )
        correct = base if plan.is_empty() else _masked_correct(model, plan, split, example, device)
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


# --------------------------------------------------------------------------------------------
# Whole checkpoints


@dataclass(frozen=True)
class PruneConfig:
    """What ``prune-info prune`` was asked to do.

    Attributes
    ----------
    criterion : str
        Name in :data:`prune_info.criteria.CRITERIA`.
    allocation : {"layerwise", "global", "max-drop"}
    amount : float or tuple of float, optional
        Fraction removed; one value, or one per layer (``layerwise`` only).
    keep : tuple of int, optional
        Units kept per layer (``layerwise`` only).
    max_drop : float, optional
        Accuracy budget in percentage points (``max-drop``).
    min_units : int
        Units every layer keeps under ``global`` and ``max-drop``.
    order : {"low", "high", "random"}
    mask : bool
        Zero the units instead of removing them.
    ignore : tuple of str
        Layers left untouched (neither scored nor pruned).
    score_options : prune_info.criteria.ScoreOptions, optional
    seed : int
    device : str
    """

    criterion: str = "mi"
    allocation: str = "layerwise"
    amount: float | tuple[float, ...] | None = None
    keep: tuple[int, ...] | None = None
    max_drop: float | None = None
    min_units: int = 1
    order: str = "low"
    mask: bool = False
    ignore: tuple[str, ...] = ()
    score_options: Any = None
    seed: int = 0
    device: str = "cpu"

    def validate(self) -> None:
        """Check the combination of options; raises :class:`PruneInfoError` naming the fix."""
        if self.allocation not in ALLOCATIONS:
            raise PruneInfoError(
                f"unknown allocation {self.allocation!r}; choose one of: {', '.join(ALLOCATIONS)}"
            )
        if self.order not in ORDERS:
            raise PruneInfoError(
                f"unknown --order {self.order!r}; choose one of: {', '.join(ORDERS)}"
            )
        if self.min_units < 1:
            raise PruneInfoError(
                f"--min-units {self.min_units}: every layer must keep at least 1 unit, or the "
                "network is disconnected"
            )
        given = [name for name, value in (("--amount", self.amount), ("--keep", self.keep),
                                          ("--max-drop", self.max_drop)) if value is not None]
        if len(given) != 1:
            raise PruneInfoError(
                "say how much to prune with exactly one of --amount, --keep and --max-drop"
                + (f" (got {', '.join(given)})" if given else "")
            )
        amounts = self.amounts()
        for value in amounts or ():
            check_amount(value)
        if self.allocation == "max-drop":
            if self.max_drop is None:
                raise PruneInfoError("the max-drop allocation needs --max-drop PP")
            if not 0.0 <= self.max_drop < 100.0:
                raise PruneInfoError(
                    f"--max-drop {self.max_drop:g} must be in [0, 100) percentage points"
                )
        elif self.max_drop is not None:
            raise PruneInfoError(
                "--max-drop allocates per layer by itself; drop --global"
                if self.allocation == "global" else
                "max_drop needs allocation='max-drop' (the CLI's --max-drop)"
            )
        if self.allocation == "global":
            if self.keep is not None:
                raise PruneInfoError("--keep counts units per layer; it does not go with --global")
            if amounts is not None and len(amounts) != 1:
                raise PruneInfoError("--global takes one --amount for the whole network")

    def amounts(self) -> tuple[float, ...] | None:
        if self.amount is None:
            return None
        if isinstance(self.amount, (int, float)):
            return (float(self.amount),)
        return tuple(float(a) for a in self.amount)


@dataclass
class PruneResult:
    """A pruned checkpoint, its plan, and the summary shown to the user."""

    checkpoint: "Checkpoint"
    plan: PrunePlan
    summary: dict = field(default_factory=dict)


def _input_shape(ckpt: "Checkpoint", data: "Dataset | None") -> tuple[int, ...]:
    if data is not None:
        return tuple(data.input_shape)
    shape = ckpt.dataset.get("input_shape") or (ckpt.arch or {}).get("input_shape")
    if not shape:
        raise PruneInfoError(
            "the input shape of the model is unknown (the checkpoint records no dataset); "
            "pass --data NAME"
        )
    return tuple(int(s) for s in shape)


def _accuracies(model: nn.Module, data: "Dataset | None", device: str) -> dict:
    from prune_info.train import count_correct

    if data is None:
        return {"val": None, "test": None}
    on_device = model if str(device) == "cpu" else copy.deepcopy(model).to(device)
    out = {}
    for split_name in ("val", "test"):
        split = getattr(data, split_name)
        out[split_name] = (count_correct(on_device, split, device=device) / len(split)
                           if len(split) else None)
    return out


def _pruned_arch(arch: dict | None, model: nn.Module) -> dict | None:
    """The architecture dict with the widths of the pruned model (our own MLP / CNN only)."""
    if arch is None:
        return None
    new = copy.deepcopy(arch)
    new["hidden"] = [model.get_submodule(f"fc{i}").out_features
                     for i in range(1, len(arch["hidden"]) + 1)]
    if arch["kind"] == "cnn":
        new["conv"] = [model.get_submodule(f"conv{i}").out_channels
                       for i in range(1, len(arch["conv"]) + 1)]
    return new


def _transform_state(model: nn.Module, state: dict, plan: PrunePlan, example: torch.Tensor,
                     mask: bool) -> dict:
    """Apply the same plan to another set of weights of the same model (initial, rewind)."""
    other = copy.deepcopy(model)
    other.load_state_dict(state)
    (mask_plan if mask else apply_plan)(other, plan, example)
    return cpu_state_dict(other.state_dict())


def _score_options(config: PruneConfig):
    from prune_info.criteria import ScoreOptions

    return config.score_options or ScoreOptions(seed=config.seed, device=config.device)


def _compute_scores(model, data, criterion, layer_names, config: PruneConfig):
    from prune_info.criteria import compute_scores

    split = data.val if data is not None else None
    n_classes = data.n_classes if data is not None else None
    scores = compute_scores(model, split, [criterion], n_classes=n_classes, layers=layer_names,
                            options=_score_options(config))
    return {layer: scores[criterion][layer].detach().cpu().double() for layer in layer_names}


def prune_checkpoint(
    ckpt: "Checkpoint", data: "Dataset | None", config: PruneConfig
) -> PruneResult:
    """Rank units by a criterion on the validation set and prune a checkpoint's model.

    The input checkpoint is left untouched; the result holds a new checkpoint whose model,
    initial and rewind weights are pruned (or masked) alike, whose architecture records the new
    widths and whose pruning history gains one entry (:func:`history_entry`).

    Parameters
    ----------
    ckpt : Checkpoint
        A model with an architecture (``arch``) or a ``factory``, so the result can be saved
        safely and rebuilt.
    data : Dataset or None
        Scores and ``max-drop`` use ``data.val``; accuracies before / after use val and test.
        ``None`` is allowed only for criteria that need no data (accuracies are then omitted).
    config : PruneConfig

    Returns
    -------
    PruneResult
    """
    from prune_info.criteria import get_criterion

    config.validate()
    if ckpt.arch is None and ckpt.factory is None:
        raise PruneInfoError(
            "this model records neither an architecture nor a factory, so a pruned copy could "
            "not be rebuilt from a safe checkpoint; save its state_dict and pass --model "
            "package.module:factory"
        )
    criterion = get_criterion(config.criterion)
    all_layers = ckpt.layers
    names = [layer.name for layer in all_layers]
    unknown = [name for name in config.ignore if name not in names]
    if unknown:
        raise PruneInfoError(
            f"--ignore {unknown[0]}: not a prunable layer; prunable: {', '.join(names)}"
        )
    layers = [layer for layer in all_layers if layer.name not in config.ignore]
    if not layers:
        raise PruneInfoError("every prunable layer is ignored; nothing to prune")
    widths = {layer.name: layer.n_units for layer in layers}
    needs_data = criterion.needs_data or config.allocation == "max-drop"
    if data is None and needs_data:
        what = "--max-drop" if config.allocation == "max-drop" else f"criterion {criterion.name}"
        raise PruneInfoError(
            f"{what} needs data, and the model does not record its dataset; pass --data NAME"
        )
    if config.allocation == "layerwise":
        removal_counts(widths, amounts=config.amounts(), keep=config.keep)  # fail early
    input_shape = _input_shape(ckpt, data)
    model = ckpt.model.eval()
    example = _example_input(model, input_shape)

    # scoring and max-drop run on config.device, on a copy so the input model stays on the CPU
    work = model if config.device == "cpu" else copy.deepcopy(model).to(config.device)
    scores = _compute_scores(work, data, criterion.name, list(widths), config)
    warnings: list[str] = []
    at_minimum: list[str] = []
    max_drop_report = None
    if config.allocation == "layerwise":
        plan = plan_layerwise(scores, amounts=config.amounts(), keep=config.keep,
                              order=config.order, seed=config.seed)
    elif config.allocation == "global":
        warnings.append(GLOBAL_RANKING_WARNING)
        plan, at_minimum = plan_global(scores, config.amounts()[0], min_units=config.min_units,
                                       order=config.order, seed=config.seed)
    else:
        plan, max_drop_report = plan_max_drop(
            work, data.val, scores, config.max_drop, input_shape=input_shape,
            order=config.order, seed=config.seed, min_units=config.min_units,
            device=config.device,
        )
    del work

    mode = "mask" if config.mask else "remove"
    transform = mask_plan if config.mask else apply_plan
    new_model = transform(copy.deepcopy(model).cpu(), plan, _example_input(model, input_shape))
    new_model.eval()
    init = (None if ckpt.init_state_dict is None
            else _transform_state(model, ckpt.init_state_dict, plan, example, config.mask))
    rewinds = {k: _transform_state(model, state, plan, example, config.mask)
               for k, state in ckpt.rewind_state_dicts.items()}
    new_arch = ckpt.arch if config.mask else _pruned_arch(ckpt.arch, new_model)

    before = _accuracies(model, data, config.device)
    after = _accuracies(new_model, data, config.device)
    requested = {"amount": list(config.amounts()) if config.amount is not None else None,
                 "keep": list(config.keep) if config.keep is not None else None,
                 "max_drop": config.max_drop, "min_units": config.min_units,
                 "ignore": list(config.ignore), "seed": config.seed}
    extra = {"score_options": dataclasses.asdict(_score_options(config)),
             "val_acc_before": before["val"], "val_acc_after": after["val"],
             "test_acc_before": before["test"], "test_acc_after": after["test"]}
    if max_drop_report is not None:
        extra["max_drop"] = {k: max_drop_report[k]
                             for k in ("budget_pp", "counts", "joint_drop_pp")}
    entry = history_entry(plan, mode=mode, allocation=config.allocation,
                          criterion=criterion.name, order=config.order,
                          input_shape=input_shape, requested=requested, extra=extra)
    metrics = dict(ckpt.metrics)
    metrics.update({"val_acc": after["val"], "test_acc": after["test"],
                    "before_pruning": {"val_acc": before["val"], "test_acc": before["test"]}})
    new_ckpt = ckpt.replace(
        model=new_model, arch=new_arch, metrics=metrics, init_state_dict=init,
        rewind_state_dicts=rewinds, pruning_history=[*ckpt.pruning_history, entry], source=None,
    )
    summary = _summary(ckpt, new_ckpt, plan, input_shape, before, after, config, entry)
    summary["warnings"] = warnings
    summary["layers_at_min_units"] = at_minimum
    if max_drop_report is not None:
        summary["max_drop"] = max_drop_report
    return PruneResult(new_ckpt, plan, summary)


def _summary(old: "Checkpoint", new: "Checkpoint", plan: PrunePlan, input_shape, before: dict,
             after: dict, config: PruneConfig, entry: dict) -> dict:
    cost_before = layer_costs(old.model, input_shape)
    cost_after = layer_costs(new.model, input_shape)
    if entry["mode"] == "mask":
        widths_after = plan.widths_after()
    else:
        widths_after = {layer.name: layer.n_units for layer in prunable_layers(new.model)}
    rows = []
    for layer in prunable_layers(old.model):
        name = layer.name
        rows.append({
            "name": name,
            "units_before": layer.n_units,
            "units_after": widths_after.get(name, layer.n_units),
            "removed": len(plan.remove.get(name, ())),
            "ignored": name in config.ignore,
            "params_before": cost_before[name]["params"],
            "params_after": cost_after[name]["params"],
            "macs_before": cost_before[name]["macs"],
            "macs_after": cost_after[name]["macs"],
        })
    macs_before = sum(c["macs"] for c in cost_before.values())
    macs_after = sum(c["macs"] for c in cost_after.values())
    return {
        "criterion": config.criterion,
        "allocation": config.allocation,
        "order": config.order,
        "mode": entry["mode"],
        "arch_before": old.spec,
        "arch_after": new.spec,
        "layers": rows,
        "removed": {layer: list(idxs) for layer, idxs in plan.remove.items()},
        "parameters": {"before": count_parameters(old.model),
                       "after": count_parameters(new.model)},
        "macs": {"before": macs_before, "after": macs_after,
                 "ratio": macs_before / macs_after if macs_after else None},
        "accuracy": {"val": {"before": before["val"], "after": after["val"]},
                     "test": {"before": before["test"], "after": after["test"]}},
    }
