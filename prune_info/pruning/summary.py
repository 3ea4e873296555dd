"""What a prune did: the per-layer and whole-model summary (:class:`PruneSummary`) and the
result of :func:`~prune_info.pruning.workflow.prune_checkpoint`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from prune_info.nn import (
    AttentionHeads,
    LayerInfo,
    attention_heads,
    count_parameters,
    layer_costs,
    prunable_layers,
)
from prune_info.pruning.config import PruneConfig
from prune_info.surgery import (
    PrunePlan,
)

if TYPE_CHECKING:
    from prune_info.checkpoint import Checkpoint


@dataclass(frozen=True)
class LayerPruneSummary:
    """What pruning did to one prunable layer (one row of ``prune-info prune``'s table).

    Attributes
    ----------
    name : str
        Layer name, as in :func:`prune_info.nn.prunable_layers`.
    units_before, units_after : int
        Output units (features or channels) before and after; a masked layer keeps its shape,
        so ``units_after`` then counts the units left unmasked.
    removed : int
        Units removed (or masked).
    ignored : bool
        Whether the layer was left untouched (``ignore``).
    params_before, params_after : int
        Parameters of the layer.
    macs_before, macs_after : int
        Multiply-accumulates of the layer for one input.
    """

    name: str
    units_before: int
    units_after: int
    removed: int
    ignored: bool
    params_before: int
    params_after: int
    macs_before: int
    macs_after: int

    def to_dict(self) -> dict:
        """The layer's row of the JSON summary (the field names, in order)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


@dataclass(frozen=True)
class PruneSummary:
    """What :func:`prune_checkpoint` did, as shown by ``prune-info prune``.

    :meth:`to_dict` gives the JSON document of ``prune-info prune --json`` (less its
    ``format``, ``input`` and ``output`` keys), nesting the flat fields below as
    ``parameters``, ``macs`` and ``accuracy``.

    Attributes
    ----------
    criterion, allocation, order : str
        As in :class:`PruneConfig`.
    mode : {"remove", "mask"}
    arch_before, arch_after : str
        Architecture specs (``"64-32-24-10"``) of the input and pruned models.
    layers : tuple of LayerPruneSummary
        One per prunable layer of the input model, in network order.
    removed : dict of str to list of int
        Indices of the removed (or masked) units, per pruned layer.
    params_before, params_after : int
        Parameters of the whole model.
    macs_before, macs_after : int
        Multiply-accumulates of the prunable layers for one input.
    val_acc_before, val_acc_after, test_acc_before, test_acc_after : float or None
        Accuracies, ``None`` without data or for an empty split.
    warnings : tuple of str
        Warnings to show the user (e.g. about global ranking).
    layers_at_min_units : tuple of str
        Layers held at ``min_units`` by the ``global`` allocation.
    max_drop : dict, optional
        The report of :func:`prune_info.pruning.allocation.plan_max_drop` (``max-drop`` only).
    target : dict, optional
        Under a ``target``: what was asked (``target``, ``kind``, ``limit``), the dense cost,
        what the plan was predicted and measured to cost (``predicted``, ``achieved``), the
        shares of the dense cost (``predicted_share``, ``achieved_share``) and ``met``.
    groups : tuple of tuple of str
        The coupled groups pruned together.
    """

    criterion: str
    allocation: str
    order: str
    mode: str
    arch_before: str
    arch_after: str
    layers: tuple[LayerPruneSummary, ...]
    removed: dict[str, list[int]]
    params_before: int
    params_after: int
    macs_before: int
    macs_after: int
    val_acc_before: float | None = None
    val_acc_after: float | None = None
    test_acc_before: float | None = None
    test_acc_after: float | None = None
    warnings: tuple[str, ...] = ()
    layers_at_min_units: tuple[str, ...] = ()
    max_drop: dict | None = None
    target: dict | None = None
    groups: tuple[tuple[str, ...], ...] = ()

    @property
    def macs_ratio(self) -> float | None:
        """MACs before over MACs after (the speed-up bound); ``None`` if nothing is left."""
        return self.macs_before / self.macs_after if self.macs_after else None

    def to_dict(self) -> dict:
        """The summary as the JSON-ready dict of ``prune-info prune --json``.

        Returns
        -------
        dict
            Keys ``criterion``, ``allocation``, ``order``, ``mode``, ``arch_before``,
            ``arch_after``, ``layers``, ``removed``, ``parameters``, ``macs``, ``accuracy``,
            ``warnings``, ``layers_at_min_units`` and, for ``max-drop``, ``max_drop``, under a
            target, ``target``.
        """
        out = {
            "criterion": self.criterion,
            "allocation": self.allocation,
            "order": self.order,
            "mode": self.mode,
            "arch_before": self.arch_before,
            "arch_after": self.arch_after,
            "layers": [layer.to_dict() for layer in self.layers],
            "removed": {layer: list(idxs) for layer, idxs in self.removed.items()},
            "parameters": {"before": self.params_before, "after": self.params_after},
            "macs": {"before": self.macs_before, "after": self.macs_after,
                     "ratio": self.macs_ratio},
            "accuracy": {"val": {"before": self.val_acc_before, "after": self.val_acc_after},
                         "test": {"before": self.test_acc_before, "after": self.test_acc_after}},
            "warnings": list(self.warnings),
            "layers_at_min_units": list(self.layers_at_min_units),
        }
        if self.max_drop is not None:
            out["max_drop"] = self.max_drop
        if self.target is not None:
            out["target"] = self.target
        if self.groups:
            out["groups"] = [list(members) for members in self.groups]
        return out


@dataclass
class PruneResult:
    """A pruned checkpoint, its plan, and the summary shown to the user."""

    checkpoint: Checkpoint
    plan: PrunePlan
    summary: PruneSummary


def summarise_prune(old: Checkpoint, new: Checkpoint, plan: PrunePlan, input_shape, before: dict,
             after: dict, config: PruneConfig, entry: dict, *, warnings: tuple[str, ...] = (),
             at_minimum: tuple[str, ...] = (), max_drop_report: dict | None = None,
             target_report: dict | None = None, groups: tuple[tuple[str, ...], ...] = (),
             ignored: frozenset[str] = frozenset()) -> PruneSummary:
    cost_before = layer_costs(old.model, input_shape)
    cost_after = layer_costs(new.model, input_shape)
    if entry["mode"] == "mask":
        widths_after = plan.widths_after()
    else:
        widths_after = {layer.name: layer.n_units for layer in prunable_layers(new.model)}
    def cost(costs: dict, layer: LayerInfo, key: str) -> int:
        parts = [layer.name]
        if layer.kind == "heads":  # the attention's own MACs and the projections of q, k, v
            heads = cast(AttentionHeads, attention_heads(old.model.get_submodule(layer.name)))
            parts += [f"{layer.name}.{name}" for name in heads.inputs]
        return sum(costs[part][key] for part in parts)

    rows = []
    for layer in prunable_layers(old.model):
        name = layer.name
        rows.append(LayerPruneSummary(
            name=name,
            units_before=layer.n_units,
            units_after=widths_after.get(name, layer.n_units),
            removed=len(plan.remove.get(name, ())),
            ignored=name in ignored,
            params_before=cost(cost_before, layer, "params"),
            params_after=cost(cost_after, layer, "params"),
            macs_before=cost(cost_before, layer, "macs"),
            macs_after=cost(cost_after, layer, "macs"),
        ))
    return PruneSummary(
        criterion=config.criterion,
        allocation=config.planner,
        order=config.order,
        mode=entry["mode"],
        arch_before=old.spec,
        arch_after=new.spec,
        layers=tuple(rows),
        removed={layer: list(idxs) for layer, idxs in plan.remove.items()},
        params_before=count_parameters(old.model),
        params_after=count_parameters(new.model),
        macs_before=sum(c["macs"] for c in cost_before.values()),
        macs_after=sum(c["macs"] for c in cost_after.values()),
        val_acc_before=before["val"],
        val_acc_after=after["val"],
        test_acc_before=before["test"],
        test_acc_after=after["test"],
        warnings=warnings,
        layers_at_min_units=at_minimum,
        max_drop=max_drop_report,
        target=target_report,
        groups=groups,
    )
