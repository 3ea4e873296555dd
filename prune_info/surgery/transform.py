"""Removing (:func:`apply_plan`) or masking (:func:`mask_plan`) a plan's units, group by group,
each step checked and put back when it fails."""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import nn

from prune_info._torch import torch_threads
from prune_info.errors import PruneInfoError
from prune_info.nn import (
    WEIGHT_TYPES,
    LayerInfo,
    attention_heads,
    find_read_points,
    prunable_layers,
)
from prune_info.surgery.check import AblationCheck
from prune_info.surgery.graph import LayerPruneError, TracedGraph, error_line
from prune_info.surgery.plan import PrunePlan


def _check_layers(prunable: Mapping[str, LayerInfo], plan: PrunePlan) -> None:
    """The plan names prunable layers of the model, at their present widths."""
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


def _coupled_in_group(graph: TracedGraph, layer: str, group,
                      plan: PrunePlan) -> dict[str, list[int]]:
    """Layers pruned together with ``layer``; planned ones must lose the same units (a
    coupling the plan's groups did not see, as through a reshape that maps channels
    differently for different indices, is the step's failure: left out where allowed)."""
    coupled = graph.coupled(layer, group)
    for other, idxs in coupled.items():
        if plan.remove.get(other) and list(plan.remove[other]) != idxs:
            raise LayerPruneError(
                layer, f"layers {layer} and {other} are coupled (their outputs are added or "
                       f"joined), so they must lose the same units; prune one and leave the "
                       f"other out with `ignore`={other}")
    return coupled


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
        that normalises over the kept units (see :class:`AblationCheck`).
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
def _zero_group(graph: TracedGraph, group) -> None:
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
    if plan.is_empty():
        _check_layers({layer.name: layer for layer in prunable_layers(model)}, plan)
        return model
    find_read_points(model, example_input)  # the layers, discovered once for the whole step
    layers = {layer.name: layer for layer in prunable_layers(model)}
    _check_layers(layers, plan)
    # torch-pruning traces autograd's graph: leave no_grad / inference_mode for the whole step
    with torch_threads(1), torch.inference_mode(False), torch.enable_grad():
        return _transform_layers(model, plan, layers, example_input.clone(), verify, remove,
                                 report, left_out)


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
                # its own state copied, its submodules kept as the same objects: a copy of
                # them put back would orphan the originals, which other snapshots restore
                self.modules.append((target, {
                    key: dict(value) if key == "_modules" else copy.deepcopy(value)
                    for key, value in target.__dict__.items()}))
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


def _transform_layers(model: nn.Module, plan: PrunePlan, layers: Mapping[str, LayerInfo],
                      example_input: torch.Tensor, verify: bool, remove: bool,
                      report: dict | None = None,
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
    with torch.no_grad():
        reference_shape = model(example_input).shape
    checker = AblationCheck(model, example_input, layers, remove) if verify else None
    graph = TracedGraph(model, example_input)
    heads = {name for name, layer in layers.items() if layer.kind == "heads"}
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
            f"torch-pruning failed on layer {layer} ({error_line(exc)}); leave it out "
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
        return f"the pruned model no longer runs: {error_line(exc)}"
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
