"""A traced network cut at one layer's units: the part before runs once, the part after per mask.

Ablation curves run the network once per ablation mask, but everything up to the (first) ablated
layer is the same for every mask. For a :class:`~torch.nn.Sequential` model the cut is a slice
of its children (``curves.masked._segments``); any other model (a ResNet's blocks, with their skip
connections) is traced with :mod:`torch.fx` and its graph split at the node that holds the
layer's units, as :func:`prune_info.capture.unit_hooks` finds them: the layer's activation call
whose input is the layer's (or its normalisation's) output, or that output when the layer has
no activation. The part before returns the cut value and every other value that the part after
still reads (a skip connection's input); the part after takes them back. With several layers
(whole-network and group curves) the cut is at the first of them, and the part after applies
the others' masks where their units are (:attr:`GraphCut.taps`).

Models that cannot be traced, a layer whose modules are called more than once, attention heads
and values that are not per-sample tensors give no cut (None): the callers then run the whole
network per mask, which gives the same counts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import cast

from torch import Tensor, fx, nn

from prune_info.nn import LayerInfo

__all__ = ["GraphCut", "Tap", "cut_at"]


class Tap(nn.Module):
    """A point of the part after the cut where a later layer's units are: it applies
    :attr:`fn` (set by the caller before each pass: a mask) to the value, or nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.fn: Callable[[Tensor], Tensor] | None = None

    def forward(self, x: Tensor) -> Tensor:
        return x if self.fn is None else self.fn(x)


@dataclass
class GraphCut:
    """``before(x) -> (cut, *others)`` and ``after(cut, *others) -> output``; ``taps[j]`` sits
    on the units of the ``j + 1``-th layer given to :func:`cut_at`."""

    before: fx.GraphModule
    after: fx.GraphModule
    taps: list[Tap] = field(default_factory=list)

    def run_before(self, x: Tensor) -> list[Tensor] | None:
        """The live values for a batch ``x``; None when one is not a tensor of ``len(x)``
        rows (the part after could not be run on many masked copies of the batch)."""
        values = self.before(x)
        values = list(values) if isinstance(values, tuple) else [values]
        if not all(isinstance(v, Tensor) and v.dim() > 0 and v.shape[0] == x.shape[0]
                   for v in values):
            return None
        return values


def _only(nodes: list[fx.Node]) -> fx.Node | None:
    return nodes[0] if len(nodes) == 1 else None


def _cut_node(graph: fx.Graph, info: LayerInfo) -> fx.Node | None:
    if info.kind == "heads":
        return None
    calls = [n for n in graph.nodes if n.op == "call_module"]
    source = _only([n for n in calls if n.target == (info.norm_module or info.name)])
    if source is None:
        return None
    if info.act_module is None:
        return source
    return _only([n for n in source.users if n.op == "call_module"
                  and n.target == info.act_module and n.args and n.args[0] is source])


def cut_at(model: nn.Module, infos: LayerInfo | Sequence[LayerInfo]) -> GraphCut | None:
    """Split ``model`` (in eval mode) at the node holding the units of the first of ``infos``
    (one layer, or several in model order), with a tap on each of the others; None if it cannot
    be (see the module docstring)."""
    infos = [infos] if isinstance(infos, LayerInfo) else list(infos)
    try:
        traced = fx.symbolic_trace(model)
    except Exception:  # noqa: BLE001 - whatever stops the tracer, the fallback is exact
        return None
    nodes = list(traced.graph.nodes)
    points = [_cut_node(traced.graph, info) for info in infos]
    if any(p is None for p in points) or len(set(points)) < len(points):
        return None
    position = {node: i for i, node in enumerate(nodes)}
    cut = cast(fx.Node, points[0])
    if any(position[cast(fx.Node, p)] <= position[cut] for p in points[1:]):
        return None  # the layers are not in the order of the graph
    where = position[cut]
    early, late = nodes[: where + 1], nodes[where + 1 :]
    late_set = set(late)
    # constants (parameters, buffers) are fetched again after the cut instead of passed on
    shared = {n for n in early if n.op == "get_attr"}
    live = [cut] + [n for n in early if n is not cut and n not in shared
                    and any(u in late_set for u in n.users)]
    before = fx.Graph()
    env: dict[fx.Node, fx.Node] = {}
    for node in early:
        env[node] = before.node_copy(node, lambda n: env[n])
    before.output(tuple(env[n] for n in live) if len(live) > 1 else env[cut])
    after = fx.Graph()
    taps = [Tap() for _ in points[1:]]
    tap_at = {cast(fx.Node, p): f"prune_info_tap_{j}" for j, p in enumerate(points[1:])}
    env = {}
    for node in live:
        env[node] = after.placeholder(f"live_{node.name}")
    for node in late:
        if node.op == "placeholder":
            return None  # a second input after the cut: not a plain classifier forward
        for arg in node.all_input_nodes:
            if arg not in env and arg in shared:
                env[arg] = after.node_copy(arg, lambda n: env[n])
            elif arg not in env:
                return None
        env[node] = after.node_copy(node, lambda n: env[n])
        if node in tap_at:  # later users read the masked value
            env[node] = after.call_module(tap_at[node], (env[node],))
    for j, tap in enumerate(taps):  # on the traced copy's root, not on the model
        traced.add_submodule(f"prune_info_tap_{j}", tap)
    return GraphCut(fx.GraphModule(traced, before), fx.GraphModule(traced, after), taps)
