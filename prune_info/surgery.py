"""Plans and their removal: the one place that drives torch-pruning's ``DependencyGraph``.

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

Attention heads
---------------
The heads of an attention module (:func:`prune_info.nn.attention_heads`, kind ``heads``) are not
removed through torch-pruning, whose graph does not follow the reshape of the queries, keys and
values into heads: removing head ``h`` deletes its ``head_dim`` rows of each of them (in a fused
``qkv`` or in ``q_proj``, ``k_proj``, ``v_proj``) and its columns of the output projection, and
lowers the module's head count (and timm's ``attn_dim``), so the pruned module runs, exports and
reloads. Its other outputs are untouched, so this equals the original with the head's output
(the input of the output projection) zeroed, which the verification checks; masking zeroes the
same rows and columns.

Pruning history
---------------
Each pruning step appends one plain-data entry to ``Checkpoint.pruning_history`` (see
:func:`history_entry`); :func:`replay_history` repeats the removals on a freshly built model, which
is how a pruned checkpoint with a ``factory`` (``package.module:function``) is rebuilt before its
weights load.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import nn

from prune_info._torch import memory_ceiling, out_of_memory, torch_threads
from prune_info.capture import unit_hooks, units_last
from prune_info.errors import PruneInfoError
from prune_info.nn import (
    WEIGHT_TYPES,
    LayerInfo,
    attention_heads,
    example_input,
    find_read_points,
    prunable_layers,
)

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
                    "network; keep at least one (lower `amount` or raise `keep` / `min_units`)"
                )

    @classmethod
    def from_indices(cls, remove: Mapping[str, Sequence[int] | torch.Tensor],
                     widths: Mapping[str, int]) -> PrunePlan:
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


# --------------------------------------------------------------------------------------------
# Removal and masking through the dependency graph


class LayerPruneError(PruneInfoError):
    """torch-pruning could not remove the units of one layer correctly (its group is named).

    Attributes
    ----------
    layer : str
        The layer whose removal failed, fell out of shape, or did not equal the ablated
        original; :func:`prune_info.pruning.workflow.prune_checkpoint` leaves its group out.
    """

    def __init__(self, layer: str, message: str):
        super().__init__(message)
        self.layer = layer


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


#: What torch-pruning was mapping when its tracing failed, by the function that failed.
_TRACED_OPERATIONS = {
    "update_reshape_index_mapping": "a reshape or view of the channels (a channel shuffle?)",
    "update_concat_index_mapping": "a concatenation", "update_split_index_mapping": "a split",
    "update_slice_index_mapping": "a slice of the channels",
    "update_flatten_index_mapping": "a flatten", "update_unbind_index_mapping": "an unbind",
    "update_expand_index_mapping": "an expand",
}


def _traced_operation(exc: BaseException) -> str:
    """`` at OPERATION`` for the operation torch-pruning failed to map, from the traceback."""
    import traceback

    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if "torch_pruning" in frame.filename:
            what = _TRACED_OPERATIONS.get(frame.name, f"{frame.name}()")
            return f" at {what}"
    return ""


def _out_fn(tp, module: nn.Module):
    if isinstance(module, nn.Linear):
        return tp.prune_linear_out_channels
    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        return tp.prune_conv_out_channels
    raise PruneInfoError(
        f"cannot prune a {type(module).__name__}: only Linear and Conv layers are prunable"
    )


def _detach_caches(model: nn.Module) -> None:
    """Detach the tensors a model cached during tracing (LeViT's attention biases, a Swin or
    EVA position table): traced with autograd on, they carry a graph, which cannot be copied
    (``copy.deepcopy`` of the model would fail) and would keep the trace alive."""
    def detached(value: Any) -> Any:
        if isinstance(value, torch.Tensor) and value.grad_fn is not None:
            return value.detach()
        if isinstance(value, dict) and any(isinstance(v, torch.Tensor) and v.grad_fn is not None
                                           for v in value.values()):
            return type(value)((k, detached(v)) for k, v in value.items())
        return value

    for module in model.modules():
        for key, value in list(vars(module).items()):
            if key in ("_parameters", "_buffers", "_modules"):
                continue
            new = detached(value)
            if new is not value:
                object.__setattr__(module, key, new)


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
        ran_out = False
        try:
            for p in flags:
                p.requires_grad_(True)
            # the graph of some models (Swin, MaxViT) grows past the machine's memory: fail
            # with a message rather than be killed by the system
            with torch.enable_grad(), memory_ceiling():
                self.dg = tp.DependencyGraph().build_dependency(
                    model, example_inputs=example_input, verbose=False
                )
        except PruneInfoError:
            raise
        except Exception as exc:  # noqa: BLE001  (any tracing failure is the model's shape)
            ran_out = out_of_memory(exc) is not None
            if not ran_out:
                raise PruneInfoError(
                    f"torch-pruning cannot trace the model{_traced_operation(exc)} "
                    f"({_first_line(exc)}); prune-info prunes through torch-pruning's dependency "
                    "graph, so this model cannot be pruned (check that its forward runs on the "
                    "input shape and returns a tensor)"
                ) from exc
        finally:
            for p, flag in flags.items():
                p.requires_grad_(flag)
            model.train(was_training)
            _detach_caches(model)
        if ran_out:  # raised here, not in the handler, so no memory error is chained to it
            raise PruneInfoError(
                "torch-pruning ran out of memory tracing the model's dependency graph (on an "
                f"input of shape {list(example_input.shape[1:])}); prune-info prunes through "
                "that graph, so this model cannot be pruned on this machine (a smaller input, "
                "or more memory)")

    def group(self, layer: str, idxs: Sequence[int]):
        module = self.model.get_submodule(layer)
        if module not in self.dg.module2node:
            raise PruneInfoError(
                f"layer {layer} does not appear in the traced forward pass, so torch-pruning "
                f"cannot tell what reads its outputs; leave it out with `ignore`={layer}"
            )
        return self.dg.get_pruning_group(module, _out_fn(self.tp, module), list(idxs))

    def coupled(self, layer: str, group) -> dict[str, list[int]]:
        """Other weight layers whose *outputs* this group prunes too (residual adds, concats)."""
        root = self.model.get_submodule(layer)
        out: dict[str, list[int]] = {}
        for dep, idxs in group:
            target = dep.target.module
            if (target is not root and isinstance(target, WEIGHT_TYPES)
                    and self.dg.is_out_channel_pruning_fn(dep.handler)):
                out[self.names.get(target, "?")] = sorted(int(i) for i in idxs)
        return out

    def channel_groups(self, group) -> int:
        """Blocks a grouped convolution reading or writing the group's channels splits them into
        (1: no grouped convolution; a depthwise one keeps its channels independent)."""
        found = 1
        for dep, _ in group:
            target = dep.target.module
            groups = getattr(target, "groups", 1)
            if not isinstance(target, (nn.Conv1d, nn.Conv2d, nn.Conv3d)) or groups <= 1:
                continue
            out = self.dg.is_out_channel_pruning_fn(dep.handler)
            if groups != (target.out_channels if out else target.in_channels):
                found = max(found, int(groups))
        return found

    def norms(self, group) -> dict[str, list[int]]:
        """The LayerNorms this group prunes, with the indices each loses (their units are
        renormalised over the survivors, wherever the norm sits: after a permutation, on a
        residual stream)."""
        out: dict[str, list[int]] = {}
        for dep, idxs in group:
            target = dep.target.module
            if isinstance(target, nn.LayerNorm) and self.dg.is_out_channel_pruning_fn(
                    dep.handler):
                out[self.names.get(target, "?")] = sorted(int(i) for i in idxs)
        return out

    def is_in_channel(self, handler) -> bool:
        return self.dg.is_in_channel_pruning_fn(handler)

    def is_out_channel(self, handler) -> bool:
        return self.dg.is_out_channel_pruning_fn(handler)


@dataclass(frozen=True)
class UnitGroup:
    """Prunable layers whose outputs lose a channel together: one torch-pruning dependency group.

    Residual additions (ResNet), depthwise convolutions (MobileNet) and concatenations tie the
    outputs of several layers: channel ``i`` of one cannot go without channel ``i`` of the
    others. Such layers form one group, whose *group channels* are the units that criteria score
    and plans remove. A layer tied to no other is a group of one.

    A grouped convolution (``groups`` = G, not depthwise) among the layers that read or write
    the group's channels splits them into G blocks that must stay equal: its units are then the
    *positions* within a block, each removed in every block at once (as torch-pruning's pruners
    do), and a group channel's score is the mean over the blocks (:meth:`fold`).

    Attributes
    ----------
    root : str
        The first member in the model's order; group channels are named ``root:index``.
    members : tuple of str
        Every member, in model order, the root first.
    n_units : int
        Channels of each member.
    channel_groups : int
        G of the grouped convolution that ties the channels into blocks (1: none).
    note : str or None
        Why the group cannot be pruned faithfully (members coupled with different widths, as
        through a concatenation); such a group is left out, with this note.
    """

    root: str
    members: tuple[str, ...]
    n_units: int
    channel_groups: int = 1
    note: str | None = None

    @property
    def units(self) -> int:
        """Units a plan chooses from: channels, or positions within a block of channels."""
        return self.n_units // self.channel_groups

    def fold(self, scores: torch.Tensor) -> torch.Tensor:
        """Channel scores ``[n_units]`` as unit scores ``[units]`` (the mean over the blocks)."""
        if self.channel_groups == 1:
            return scores
        return scores.reshape(self.channel_groups, self.units).mean(0)

    def channels(self, units: Sequence[int]) -> list[int]:
        """The channels that removing ``units`` removes (every block's, for grouped ones).

        Examples
        --------
        >>> UnitGroup("conv", ("conv",), 8, channel_groups=2).channels([1, 3])
        [1, 3, 5, 7]
        """
        return sorted(b * self.units + int(u) for b in range(self.channel_groups) for u in units)


def unit_groups(model: nn.Module, example_input: torch.Tensor,
                layers: Sequence[str] | None = None) -> list[UnitGroup]:
    """The coupled groups of the prunable layers of ``model`` (all of them, or ``layers``).

    Read off torch-pruning's dependency graph, traced once on ``example_input``; the groups come
    in the model order of their roots. Layers outside ``layers`` that are coupled to one inside
    still join its group (they must lose the same channels).

    Examples
    --------
    >>> import torchvision
    >>> model = torchvision.models.resnet18(num_classes=10)
    >>> groups = unit_groups(model, torch.zeros(1, 3, 32, 32))
    >>> [(g.root, len(g.members)) for g in groups][:3]
    [('conv1', 3), ('layer1.0.conv1', 1), ('layer1.1.conv1', 1)]
    """
    find_read_points(model, example_input)
    found = prunable_layers(model)
    order = {layer.name: i for i, layer in enumerate(found)}
    width = {layer.name: layer.n_units for layer in found}
    kind = {layer.name: layer.kind for layer in found}
    wanted = list(order) if layers is None else [name for name in layers if name in order]
    parent = {name: name for name in order}

    def find(name: str) -> str:
        while parent[name] != name:
            parent[name] = parent[parent[name]]
            name = parent[name]
        return name

    blocks: dict[str, int] = {}
    with torch_threads(1), torch.inference_mode(False), torch.enable_grad():
        graph = _Graph(model, example_input.clone())
        for name in wanted:
            if kind[name] == "heads":  # outside torch-pruning's graph: a group of its own
                continue
            group = graph.group(name, [0])
            blocks[name] = graph.channel_groups(group)
            for other in graph.coupled(name, group):
                if other in parent:
                    a, b = sorted((find(name), find(other)), key=order.__getitem__)
                    parent[b] = a
    members: dict[str, list[str]] = {}
    for name in order:
        members.setdefault(find(name), []).append(name)
    groups = []
    for root, names in members.items():
        if not any(name in wanted for name in names):
            continue
        widths = {width[name] for name in names}
        if len(widths) != 1:
            note = (f"coupled with different widths ({', '.join(f'{n}: {width[n]}' for n in names)}"
                    "), as through a concatenation or split whose channels are not one-to-one; "
                    "prune-info removes group channels of equal-width layers only")
            groups.append(UnitGroup(root, tuple(names), width[root], note=note))
            continue
        g = max(blocks.get(name, 1) for name in names)
        if width[root] % g:
            groups.append(UnitGroup(root, tuple(names), width[root], note=(
                f"its {width[root]} channels do not split into the {g} blocks of a grouped "
                "convolution")))
            continue
        groups.append(UnitGroup(root, tuple(names), width[root], channel_groups=g))
    return sorted(groups, key=lambda g: order[g.root])


@dataclass(frozen=True)
class ChannelFlow:
    """Which group's channels each layer writes and reads: how its cost scales with a plan.

    Attributes
    ----------
    writes : dict
        ``{layer: group root}``: the group whose units are the layer's output channels.
    reads : dict
        ``{layer: group root}``: the group whose units feed the layer's input channels.
    depthwise : frozenset of str
        Convolutions whose inputs and outputs are the same channels (their cost scales once).
    """

    writes: dict[str, str]
    reads: dict[str, str]
    depthwise: frozenset[str]


def channel_flow(model: nn.Module, example_input: torch.Tensor,
                 groups: Sequence[UnitGroup]) -> ChannelFlow:
    """Follow each group's channels through torch-pruning's graph to every layer they reach.

    A layer's multiply-accumulates scale with the share of its output channels kept (the group
    it belongs to) times the share of its input channels kept (the group feeding it): what
    :class:`prune_info.pruning.budget.CostModel` needs to price a plan without pruning. The
    heads of an attention module scale its ``qkv`` outputs, its ``proj`` inputs and the
    attention products (under the module's name).

    Examples
    --------
    >>> from prune_info.zoo import build_model, parse_arch
    >>> model = build_model(parse_arch("64-16-8-10", (1, 8, 8), 10))
    >>> x = torch.zeros(2, 1, 8, 8)
    >>> flow = channel_flow(model, x, unit_groups(model, x))
    >>> flow.writes["fc2"], flow.reads["fc2"], flow.reads["out"]
    ('fc2', 'fc1', 'fc2')
    """
    writes: dict[str, str] = {}
    reads: dict[str, str] = {}
    depthwise: set[str] = set()
    with torch_threads(1), torch.inference_mode(False), torch.enable_grad():
        graph = _Graph(model, example_input.clone())
        for g in groups:
            if g.note:
                continue
            module = model.get_submodule(g.root)
            heads = attention_heads(module)
            if heads is not None and not isinstance(module, WEIGHT_TYPES):
                writes[g.root] = reads[f"{g.root}.{heads.output}"] = g.root
                writes.update({f"{g.root}.{name}": g.root for name in heads.inputs})
                continue
            for member in g.members:
                writes[member] = g.root
            for dep, _ in graph.group(g.root, [0]):
                target = dep.target.module
                if not isinstance(target, WEIGHT_TYPES):
                    continue
                name = graph.names.get(target)
                if name is None:
                    continue
                if graph.is_in_channel(dep.handler):
                    reads[name] = g.root
                groups_ = getattr(target, "groups", 1)
                if groups_ > 1 and groups_ == getattr(target, "in_channels", 0):
                    depthwise.add(name)
    return ChannelFlow(writes, reads, frozenset(depthwise))


def _check_layers(model: nn.Module, plan: PrunePlan) -> None:
    prunable = {layer.name: layer for layer in prunable_layers(model)}
    for layer in plan.remove:
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
                f"`ignore`={other}"
            )
    return coupled


class _AblationCheck:
    """Checks, layer after layer, that a pruned model equals the original with units ablated.

    The reference is a copy of the original model in which the removed units' post-activation
    outputs are zero, masked where :func:`prune_info.capture.unit_hooks` reads them: at the call
    of the activation module that consumes the layer's output when there is one (not at other
    calls of a shared module, such as the ReLU after a residual addition); otherwise at the
    BatchNorm or the layer itself, where either 0 (right for ReLU, tanh, GELU) or a large
    negative value (right for ReLU and sigmoid) makes the activation output zero. This catches
    the cases where torch-pruning runs but removes the wrong inputs downstream (e.g. after a
    ``torch.roll`` or a permutation it does not model).

    A LayerNorm over a layer's units renormalises the units that survive, so removing units is
    *not* zeroing them. There the reference normalises over the kept units only (what the
    pruned model computes), and the difference to plain zeroing is measured and reported in
    :attr:`renormalised` instead of raising a false alarm.
    """

    FILLS = (0.0, -1e4)

    def __init__(self, model: nn.Module, example_input: torch.Tensor, remove: bool = True):
        self.ref = copy.deepcopy(model).eval()
        self.remove = remove
        gen = torch.Generator().manual_seed(0)
        shape = (8, *example_input.shape[1:])
        self.x = torch.randn(shape, generator=gen).to(example_input.device)
        self.info = {layer.name: layer for layer in prunable_layers(self.ref)}
        self.fill: dict[str, tuple[torch.Tensor, float]] = {}
        self.layers: dict[str, LayerInfo] = {}
        #: ``{layer: max |pruned - plainly zeroed|}`` for layers followed by a LayerNorm.
        self.renormalised: dict[str, float] = {}
        self._renormalised_norms: set[str] = set()
        self._norm_hooks: dict[str, list[tuple[str, Any]]] = {}
        self._kept_only = True  # LayerNorm references normalise over the kept units

    def _renormalise(self, norm_name: str, removed: Sequence[int], layer: str) -> None:
        """Make the reference's LayerNorm ``norm_name`` normalise over the kept units only
        (removal), or over all units with the masked ones at zero (masking: the masked model's
        LayerNorm still counts them). ``removed`` are the indices torch-pruning removes from
        the norm (its dependency group says which norms lose the units, wherever they sit:
        after a permutation, in a residual stream); ``layer`` is reported as renormalised."""
        norm = self.ref.get_submodule(norm_name)
        if not isinstance(norm, nn.LayerNorm) or len(norm.normalized_shape) != 1 \
                or norm_name in self._renormalised_norms:
            return
        self._renormalised_norms.add(norm_name)
        width = int(norm.normalized_shape[0])
        gone = set(int(i) for i in removed)
        keep = torch.tensor([i for i in range(width) if i not in gone], dtype=torch.long)
        gone_index = torch.tensor(sorted(gone), dtype=torch.long)

        def kept_only(module: nn.LayerNorm, args: tuple, out: torch.Tensor) -> torch.Tensor | None:
            if not self._kept_only:
                return None
            # a LayerNorm2d (ConvNeXt) normalises channels-first maps over axis 1
            axis = 1 if _channels_first(module, args[0], width) else -1
            x = args[0].movedim(axis, -1)
            if not self.remove:  # masked units enter the statistics as zeros
                x = x.index_fill(-1, gone_index.to(out.device), 0.0)
                return torch.nn.functional.layer_norm(
                    x, module.normalized_shape, module.weight, module.bias, module.eps
                ).movedim(-1, axis)
            k = keep.to(out.device)
            weight = None if module.weight is None else module.weight[k]
            bias = None if module.bias is None else module.bias[k]
            y = torch.zeros_like(x)
            y[..., k] = torch.nn.functional.layer_norm(x[..., k], (len(k),), weight, bias,
                                                       module.eps)
            return y.movedim(-1, axis)

        self._norm_hooks.setdefault(layer, []).append(
            (norm_name, norm.register_forward_hook(kept_only)))
        self.renormalised[layer] = float("nan")  # measured in check()

    def forget(self, layers: Sequence[str], root: str) -> None:
        """Drop what :meth:`check` set up for a step that was put back (its layers' masks, the
        renormalisation of its norms)."""
        for layer in layers:
            self.fill.pop(layer, None)
            self.layers.pop(layer, None)
        for norm_name, handle in self._norm_hooks.pop(root, []):
            handle.remove()
            self._renormalised_norms.discard(norm_name)
        self.renormalised.pop(root, None)

    def _layer(self, layer: str) -> LayerInfo:
        """The layer's read point; a layer that is not prunable is masked at its own output
        (a Linear one on its last axis, as its units are)."""
        info = self.info.get(layer)
        if info is not None:
            return info
        module = self.ref.get_submodule(layer)
        return LayerInfo(layer, "linear" if isinstance(module, nn.Linear) else "other", 0, None,
                         None, None)

    def _mask(self, info: LayerInfo, output: torch.Tensor) -> torch.Tensor:
        idxs, value = self.fill[info.name]
        axis = -1 if units_last(info, output) else 1  # token units: the last axis
        return output.index_fill(axis, idxs.to(output.device), value)

    def reset(self) -> None:
        """Forget every mask and renormalisation (the reference is the original again)."""
        for root in list(self._norm_hooks):
            self.forget([], root)
        self.fill.clear()
        self.layers.clear()

    @torch.no_grad()
    def jointly(self, model: nn.Module, removed: Mapping[str, Sequence[int]],
                norms: Mapping[str, Mapping[str, Sequence[int]]]) -> bool:
        """Whether ``model`` equals the reference with every unit of ``removed`` ablated at
        once, each masked with 0 where it is read (``norms``: per step's root, the LayerNorms it
        prunes). One comparison for a whole prune; on False the state is reset, and the steps
        are checked one by one (:meth:`check`), which also tries other fill values."""
        for layer in removed:
            self.layers.setdefault(layer, self._layer(layer))
        for root, by_norm in norms.items():
            for norm_name, idxs in by_norm.items():
                self._renormalise(norm_name, idxs, root)
        got = self._run(model)
        for layer, idxs in removed.items():
            self.fill[layer] = (torch.as_tensor(list(idxs), dtype=torch.long), 0.0)
        with unit_hooks(self.ref, list(self.layers.values()), self._mask):
            want = self.ref(self.x)
        if _close(got, want):
            self._measure_renormalisation(got, removed)
            return True
        self.reset()
        return False

    def _run(self, model: nn.Module) -> torch.Tensor:
        was_training = model.training
        model.eval()
        try:
            return model(self.x)
        finally:
            model.train(was_training)

    @torch.no_grad()
    def check(self, model: nn.Module, removed: Mapping[str, Sequence[int]], root: str,
              norms: Mapping[str, Sequence[int]] | None = None) -> None:
        """Compare ``model`` (pruned so far) with the reference with ``removed`` ablated;
        ``norms``: the LayerNorms this step's group prunes, with the indices they lose."""
        pending = {k: v for k, v in removed.items() if k not in self.fill}
        for layer in pending:
            self.layers.setdefault(layer, self._layer(layer))
        for norm_name, idxs in (norms or {}).items():
            self._renormalise(norm_name, idxs, root)
        got = self._run(model)
        # A layer with an activation module is masked after it (0); one without is masked at
        # its output, where 0 or a large negative value zeroes what follows. The members of a
        # group share that, so two assignments are tried, not every combination (2**members
        # forward passes on a ViT's residual stream).
        free = any(self.layers[layer].act_module is None for layer in pending)
        choices = self.FILLS if free else self.FILLS[:1]
        worst = float("inf")
        with unit_hooks(self.ref, list(self.layers.values()), self._mask):
            for fill in choices:
                values = [0.0 if self.layers[layer].act_module is not None else fill
                          for layer in pending]
                for layer, value in zip(pending, values):
                    self.fill[layer] = (torch.as_tensor(list(pending[layer]), dtype=torch.long),
                                        value)
                want = self.ref(self.x)
                if _close(got, want):
                    self._measure_renormalisation(got, pending)
                    return
                worst = min(worst, float((got - want).abs().max()))
        raise LayerPruneError(
            root,
            f"torch-pruning removed the wrong inputs downstream of layer {root}: the pruned "
            f"model differs from the original with those units ablated by {worst:.3g}; leave "
            f"it out with `ignore`={root}"
        )

    def _measure_renormalisation(self, got: torch.Tensor, pending: Mapping) -> None:
        """How far the pruned model is from plain zeroing where a LayerNorm renormalises."""
        todo = [root for root, value in self.renormalised.items() if value != value]  # NaN
        if not todo:
            return
        self._kept_only = False
        try:
            with unit_hooks(self.ref, list(self.layers.values()), self._mask):
                plain = float((got - self.ref(self.x)).abs().max())
        finally:
            self._kept_only = True
        for root in todo:
            self.renormalised[root] = plain


def _close(got: torch.Tensor, want: torch.Tensor) -> bool:
    """The check's tolerance: float32 rounding of the same computation in another order."""
    return float((got - want).abs().max()) <= 1e-4 * max(1.0, float(want.abs().max()))


def _channels_first(norm: nn.Module, value: torch.Tensor, n_units: int) -> bool:
    """Whether a LayerNorm takes ``value`` channels-first (``LayerNorm2d`` of ConvNeXt: units on
    axis 1 of ``[B, C, H, W]``) rather than over its last axis."""
    return (value.ndim == 4 and value.shape[1] == n_units
            and (value.shape[-1] != n_units or type(norm).__name__.lower().endswith("2d")))


def apply_plan(model: nn.Module, plan: PrunePlan, example_input: torch.Tensor, *,
               verify: bool = True, report: dict | None = None,
               left_out: dict[str, str] | None = None) -> nn.Module:
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
    report : dict, optional
        Filled with ``renormalised``: ``{layer: max difference to plain zeroing}`` for layers
        followed by a LayerNorm over their units, which the check compares against a reference
        that normalises over the kept units (see :class:`_AblationCheck`).
    left_out : dict, optional
        When given, a group whose removal fails or does not check out is put back as it was,
        recorded here as ``{layer: reason}``, and the rest is pruned; without it, the first
        such group raises :class:`LayerPruneError` (the model is then partly pruned).

    Returns
    -------
    nn.Module
        ``model``, now smaller.

    Examples
    --------
    >>> from prune_info.zoo import build_model, parse_arch
    >>> model = build_model(parse_arch("64-100-100-10", (1, 8, 8), 10))
    >>> plan = PrunePlan.from_indices({"fc1": range(50), "fc2": range(0, 100, 2)},
    ...                               {"fc1": 100, "fc2": 100})
    >>> apply_plan(model, plan, torch.zeros(2, 1, 8, 8)).fc2.weight.shape
    torch.Size([50, 50])
    """
    return _transform(model, plan, example_input, verify, remove=True, report=report,
                      left_out=left_out)


@torch.no_grad()
def _zero_group(graph: _Graph, group) -> None:
    for dep, dep_idxs in group:
        target = dep.target.module
        if not isinstance(target, nn.Module) or not dep_idxs:
            continue
        index = torch.as_tensor(sorted(int(i) for i in dep_idxs), dtype=torch.long)
        if graph.is_out_channel(dep.handler):
            _zero_outputs(target, index)
        elif graph.is_in_channel(dep.handler) and isinstance(target, WEIGHT_TYPES):
            if getattr(target, "groups", 1) != 1:
                raise PruneInfoError(
                    f"masking (`mask`) does not support grouped convolutions "
                    f"({graph.names[target]})"
                )
            target.weight.index_fill_(1, index.to(target.weight.device), 0.0)


def _transform(model: nn.Module, plan: PrunePlan, example_input: torch.Tensor, verify: bool,
               remove: bool, report: dict | None = None,
               left_out: dict[str, str] | None = None) -> nn.Module:
    _check_layers(model, plan)
    if plan.is_empty():
        return model
    # torch-pruning traces autograd's graph: leave no_grad / inference_mode for the whole step
    with torch_threads(1), torch.inference_mode(False), torch.enable_grad():
        return _transform_layers(model, plan, example_input.clone(), verify, remove, report,
                                 left_out)


class _Snapshot:
    """What one pruning step may change, to put back if the step turns out wrong: the modules
    it touches (their weights and attributes such as ``out_channels``) and the parameters it
    prunes that belong to no layer (a ViT's ``pos_embed``)."""

    def __init__(self, targets: Sequence[Any], dg: Any = None):
        self.dg = dg
        self.modules: list[tuple[nn.Module, dict]] = []
        self.params: list[tuple[str, nn.Parameter]] = []
        seen: set[int] = set()
        for target in targets:
            if id(target) in seen:
                continue
            seen.add(id(target))
            if isinstance(target, nn.Module):
                if type(target).__module__.startswith("torch_pruning"):
                    continue  # a stand-in for a functional operation: nothing to prune in it
                self.modules.append((target, copy.deepcopy(target.__dict__)))
            elif isinstance(target, nn.Parameter) and dg is not None \
                    and target in dg._param_to_name:
                # torch-pruning puts a new, narrower Parameter in its owner's place
                self.params.append((dg._param_to_name[target], target))

    @torch.no_grad()
    def restore(self) -> None:
        for module, state in self.modules:
            module.__dict__.clear()
            module.__dict__.update(state)
        for name, old in self.params:
            *path, attr = name.split(".")
            owner = self.dg.model
            for part in path:
                owner = getattr(owner, part)
            new = getattr(owner, attr)
            if new is old:
                continue
            setattr(owner, attr, old)
            # and the graph's bookkeeping of the parameter, as torch-pruning updated it
            self.dg._param_to_name.pop(new, None)
            self.dg._param_to_name[old] = name
            if new in self.dg.module2node:
                node = self.dg.module2node.pop(new)
                node.module = old
                self.dg.module2node[old] = node


@dataclass
class _Applied:
    """One group's removal as carried out: what it pruned, the norms it renormalises, and the
    snapshot that puts it back."""

    layer: str
    pruned: dict[str, list[int]]
    norms: dict[str, list[int]]
    snapshot: _Snapshot


def _transform_layers(model: nn.Module, plan: PrunePlan, example_input: torch.Tensor,
                      verify: bool, remove: bool, report: dict | None = None,
                      left_out: dict[str, str] | None = None) -> nn.Module:
    """Prune (or mask) the planned layers one group at a time, and check the result.

    Every group is removed (a failure of torch-pruning puts that group back at once), then the
    whole model is checked in one comparison: its output shape, and (``verify``) its outputs
    against the original with every removed unit ablated. When that fails, everything is put
    back and the groups are removed and checked one by one, which finds the group at fault and
    tries the other way of masking a unit read before a functional activation.

    With ``left_out`` (a dict), a group whose removal fails, breaks the model or does not equal
    the ablated original is put back as it was and recorded there (``{layer: reason}``), and the
    other groups go on; without, the first such group raises :class:`LayerPruneError`.
    """
    was_training = model.training
    model.eval()
    find_read_points(model, example_input)
    with torch.no_grad():
        reference_shape = model(example_input).shape
    checker = _AblationCheck(model, example_input, remove) if verify else None
    graph = _Graph(model, example_input)
    heads = {layer.name for layer in prunable_layers(model) if layer.kind == "heads"}
    steps = [(layer, list(idxs)) for layer, idxs in plan.remove.items() if idxs]

    def apply(layer: str, idxs: list[int]) -> _Applied:
        if layer in heads:
            attn = model.get_submodule(layer)
            snapshot = _Snapshot([attn, *attn.children()])
            step: Callable[[], Any] = functools.partial(_cut_heads, attn, idxs, remove)
            coupled: dict[str, list[int]] = {}
            norms: dict[str, list[int]] = {}
        else:
            group = graph.group(layer, idxs)
            coupled = _coupled_in_group(graph, layer, group, plan)
            norms = graph.norms(group)
            snapshot = _Snapshot([dep.target.module for dep, _ in group], graph.dg)
            step = group.prune if remove else functools.partial(_zero_group, graph, group)
        try:
            _run_step(step, layer)
            if remove:
                _check_width(model, layer, plan)
        except LayerPruneError:
            snapshot.restore()
            raise
        return _Applied(layer, {layer: idxs, **coupled}, norms, snapshot)

    def run_all(check_each: bool, failed: dict[str, str]) -> list[_Applied]:
        """Every step; the ones that fail go to ``failed`` (raise without ``left_out``)."""
        applied: list[_Applied] = []
        covered: set[str] = set()

        def leave_out(exc: LayerPruneError, layer: str) -> None:
            if left_out is None:
                raise exc
            failed[layer] = str(exc)

        for layer, idxs in steps:
            if layer in covered:
                continue
            try:
                done = apply(layer, idxs)
            except LayerPruneError as exc:
                leave_out(exc, layer)
                covered.add(layer)
                continue
            if check_each:
                try:
                    _check_output(model, layer, example_input, reference_shape)
                    if checker is not None:
                        removed = {k: v for a in (*applied, done) for k, v in a.pruned.items()}
                        checker.check(model, removed, layer, done.norms)
                except LayerPruneError as exc:
                    done.snapshot.restore()
                    if checker is not None:
                        checker.forget(list(done.pruned), layer)
                    leave_out(exc, layer)
                    covered.update(done.pruned)
                    continue
            applied.append(done)
            covered.update(done.pruned)
        return applied

    try:
        failed: dict[str, str] = {}
        applied = run_all(check_each=False, failed=failed)
        removed = {k: v for a in applied for k, v in a.pruned.items()}
        fine = _output_fits(model, example_input, reference_shape) and (
            checker is None or checker.jointly(model, removed, {a.layer: a.norms
                                                               for a in applied}))
        if not fine:  # find the group at fault: put everything back, check one by one
            for done in reversed(applied):
                done.snapshot.restore()
            failed = {}
            run_all(check_each=True, failed=failed)
        if left_out is not None:
            left_out.update(failed)
    finally:
        model.train(was_training)
    if report is not None and checker is not None:
        report["renormalised"] = dict(checker.renormalised)
    return model


def _run_step(step: Callable[[], Any], layer: str) -> None:
    """One group's removal; torch-pruning's own failures name the layer."""
    try:
        step()
    except LayerPruneError:
        raise
    except PruneInfoError as exc:  # this layer cannot be pruned (as its message says)
        raise LayerPruneError(layer, f"{layer} cannot be pruned: {exc}; leave it out with "
                                     f"`ignore`={layer}") from exc
    except Exception as exc:  # noqa: BLE001
        raise LayerPruneError(
            layer,
            f"torch-pruning failed on layer {layer} ({_first_line(exc)}); leave it out "
            f"with `ignore`={layer}"
        ) from exc


@torch.no_grad()
def _cut_heads(attn: nn.Module, idxs: Sequence[int], remove: bool) -> None:
    """Remove (or zero) heads ``idxs`` of an attention module: their rows of the query, key and
    value projections, their columns of the output projection, and their entries of the module's
    own per-feature biases (EVA's ``q_bias``, ``k_bias``, ``v_bias``; see the module
    docstring)."""
    heads = attention_heads(attn)
    if heads is None:
        raise PruneInfoError("the attention module's projections no longer fit its head count "
                             "(an earlier step changed them)")
    gone = set(int(i) for i in idxs)
    chosen = [h for h in range(heads.n_heads) if (h in gone) != remove]  # removed: the kept ones
    inputs = [cast(nn.Linear, attn.get_submodule(name)) for name in heads.inputs]
    output = cast(nn.Linear, attn.get_submodule(heads.output))
    device = output.weight.device
    cols, rows = heads.columns(chosen).to(device), heads.input_rows(chosen).to(device)
    own = [(name, t) for name, t in [*attn.named_parameters(recurse=False),
                                     *attn.named_buffers(recurse=False)]
           if t.ndim == 1 and t.shape[0] == heads.n_heads * heads.head_dim]
    if not remove:
        for linear in inputs:
            linear.weight.index_fill_(0, rows, 0.0)
            if linear.bias is not None:
                linear.bias.index_fill_(0, rows, 0.0)
        output.weight.index_fill_(1, cols, 0.0)
        for _, tensor in own:
            tensor.data.index_fill_(0, cols, 0.0)
        return
    for name, tensor in own:
        narrowed = tensor.detach()[cols].clone()
        setattr(attn, name, nn.Parameter(narrowed, tensor.requires_grad)
                if isinstance(tensor, nn.Parameter) else narrowed)
    for linear in inputs:
        linear.weight = nn.Parameter(linear.weight[rows].clone(), linear.weight.requires_grad)
        if linear.bias is not None:
            linear.bias = nn.Parameter(linear.bias[rows].clone(), linear.bias.requires_grad)
        linear.out_features = len(rows)
    output.weight = nn.Parameter(output.weight[:, cols].clone(), output.weight.requires_grad)
    output.in_features = len(cols)
    setattr(attn, heads.count_attribute, len(chosen))  # a plain int attribute
    if hasattr(attn, "attn_dim"):
        setattr(attn, "attn_dim", len(chosen) * heads.head_dim)  # noqa: B010


def _check_width(model: nn.Module, layer: str, plan: PrunePlan) -> None:
    """The layer has the width the plan leaves it (torch-pruning followed it)."""
    module = model.get_submodule(layer)
    if isinstance(module, (nn.Linear, nn.Conv2d)):
        width = module.out_features if isinstance(module, nn.Linear) else module.out_channels
    else:  # attention heads
        heads = attention_heads(module)
        if heads is None:
            raise LayerPruneError(layer, _unfollowed(layer, "its projections no longer fit its "
                                                            "head count"))
        width = heads.n_heads
    expected = plan.widths[layer] - len(plan.remove[layer])
    if width != expected:
        raise LayerPruneError(layer, _unfollowed(layer, f"it has {width} units, expected "
                                                        f"{expected}"))


def _unfollowed(layer: str, problem: str) -> str:
    return (f"torch-pruning could not follow where the outputs of layer {layer} go ({problem}); "
            f"leave it out with `ignore`={layer}")


def _output_problem(model: nn.Module, example_input: torch.Tensor,
                    reference_shape: torch.Size) -> str | None:
    try:
        with torch.no_grad():
            shape = model(example_input).shape
    except Exception as exc:  # noqa: BLE001
        return f"the pruned model no longer runs: {_first_line(exc)}"
    if shape != reference_shape:
        return f"the output shape changed from {tuple(reference_shape)} to {tuple(shape)}"
    return None


def _output_fits(model: nn.Module, example_input: torch.Tensor,
                 reference_shape: torch.Size) -> bool:
    return _output_problem(model, example_input, reference_shape) is None


def _check_output(model: nn.Module, layer: str, example_input: torch.Tensor,
                  reference_shape: torch.Size) -> None:
    """The model still runs and gives outputs of the original shape, after ``layer``'s step."""
    problem = _output_problem(model, example_input, reference_shape)
    if problem:
        raise LayerPruneError(layer, _unfollowed(layer, problem))


def mask_plan(model: nn.Module, plan: PrunePlan, example_input: torch.Tensor, *,
              verify: bool = True, report: dict | None = None,
              left_out: dict[str, str] | None = None) -> nn.Module:
    """Zero the planned units of ``model`` (in place), keeping every shape.

    The masked model computes exactly what the pruned model of :func:`apply_plan` computes
    (except after a LayerNorm over the units, which still counts the zeroed ones): the
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
    report, left_out : dict, optional
        As in :func:`apply_plan`.

    Returns
    -------
    nn.Module
        ``model``.
    """
    return _transform(model, plan, example_input, verify, remove=False, report=report,
                      left_out=left_out)


def _zero_outputs(module: nn.Module, index: torch.Tensor) -> None:
    if isinstance(module, WEIGHT_TYPES) or isinstance(module, nn.modules.batchnorm._BatchNorm):
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
                f"{have}; the factory (`factory`) no longer builds the architecture that was pruned"
            )
        # the removal was verified when it was made; replaying it rebuilds the same shapes,
        # which the stored weights must then fit
        apply_plan(model, plan, example_input(model, entry["input_shape"]), verify=False)
    return model
