"""torch-pruning's dependency graph, traced once per model: the groups of layers whose outputs
are tied (:func:`unit_groups`), where each layer's channels flow (:func:`channel_flow`), and the
failures of its tracing, in one line."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from prune_info._torch import memory_ceiling, out_of_memory, torch_threads
from prune_info.errors import PruneInfoError
from prune_info.nn import (
    WEIGHT_TYPES,
    attention_heads,
    find_read_points,
    prunable_layers,
)


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


def error_line(exc: BaseException) -> str:
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


class TracedGraph:
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
                    f"({error_line(exc)}); prune-info prunes through torch-pruning's dependency "
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

    def traces(self, layer: str) -> bool:
        """Whether the layer ran in the traced forward pass (a layer skipped at this input
        size, or called outside ``forward``, did not)."""
        return self.model.get_submodule(layer) in self.dg.module2node

    def group(self, layer: str, idxs: Sequence[int]):
        module = self.model.get_submodule(layer)
        if not self.traces(layer):
            raise LayerPruneError(layer, f"layer {layer} {UNTRACED}; leave it out with "
                                         f"`ignore`={layer}")
        try:
            # a group is small; torch-pruning's index mappings can multiply without end
            # (torchvision's Swin: its shifted windows), which must not take the machine down
            with memory_ceiling(GROUP_MEMORY):
                return self.dg.get_pruning_group(module, _out_fn(self.tp, module), list(idxs))
        except MemoryError:
            pass  # raised here, not in the handler, so no memory error is chained to it
        raise LayerPruneError(layer, f"layer {layer}: {GROUP_OVERFLOW}; leave it out with "
                                     f"`ignore`={layer}")

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


#: Memory one dependency group may take (bytes) before it counts as running away.
GROUP_MEMORY = 2 << 30
#: Why a layer whose dependency group ran away cannot be pruned.
GROUP_OVERFLOW = (f"torch-pruning's dependency group of its outputs grew past "
                  f"{GROUP_MEMORY >> 30} GiB (its index mappings multiply), so what removing "
                  "a unit touches is unknown")

#: Why a layer that did not run in the traced forward pass cannot be pruned.
UNTRACED = ("does not appear in the traced forward pass, so torch-pruning cannot tell what "
            "reads its outputs")


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
    untraced: dict[str, str] = {}  # layer -> why torch-pruning cannot say what it touches
    with torch_threads(1), torch.inference_mode(False), torch.enable_grad():
        graph = TracedGraph(model, example_input.clone())
        for name in wanted:
            if kind[name] == "heads":  # outside torch-pruning's graph: a group of its own
                continue
            if not graph.traces(name):
                untraced[name] = UNTRACED
                continue
            try:
                group = graph.group(name, [0])
            except LayerPruneError:
                untraced[name] = GROUP_OVERFLOW
                continue
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
        why = next((untraced[name] for name in names if name in untraced), None)
        if why is not None:
            groups.append(UnitGroup(root, tuple(names), width[root], note=why))
            continue
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
        graph = TracedGraph(model, example_input.clone())
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
