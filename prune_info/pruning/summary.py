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
from prune_info.reports import Report
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
class PruneSummary(Report):
    """What :func:`prune_checkpoint` did, as shown by ``prune-info prune``.

    :meth:`to_dict` gives the JSON document of ``prune-info prune --json`` (less its
    ``format``, ``input`` and ``output`` keys), nesting the flat fields below as
    ``parameters``, ``macs`` and ``accuracy``; :meth:`table` the text the command prints.

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

    FORMAT = "prune-info-prune"

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

    @classmethod
    def from_fields(cls, doc: dict) -> PruneSummary:
        """The summary of a document :meth:`to_dict` made (``input``/``output`` ignored)."""
        accuracy = doc["accuracy"]
        return cls(
            criterion=doc["criterion"], allocation=doc["allocation"], order=doc["order"],
            mode=doc["mode"], arch_before=doc["arch_before"], arch_after=doc["arch_after"],
            layers=tuple(LayerPruneSummary(**layer) for layer in doc["layers"]),
            removed={layer: list(idxs) for layer, idxs in doc["removed"].items()},
            params_before=doc["parameters"]["before"], params_after=doc["parameters"]["after"],
            macs_before=doc["macs"]["before"], macs_after=doc["macs"]["after"],
            val_acc_before=accuracy["val"]["before"], val_acc_after=accuracy["val"]["after"],
            test_acc_before=accuracy["test"]["before"],
            test_acc_after=accuracy["test"]["after"],
            warnings=tuple(doc["warnings"]),
            layers_at_min_units=tuple(doc["layers_at_min_units"]),
            max_drop=doc.get("max_drop"), target=doc.get("target"),
            groups=tuple(tuple(members) for members in doc.get("groups", [])))

    def table(self) -> str:
        """Widths, parameters and MACs per layer and for the model, accuracies, coupled groups,
        and under a target or ``max-drop`` what was asked and reached."""
        verb = "masked" if self.mode == "mask" else "removed"
        lines = [f"{self.criterion}, {self.allocation} ({self.order} first), units {verb}: "
                 f"{self.arch_before} -> {self.arch_after}"]
        rows = [("layer", "units", "params", "MACs")]
        for r in self.layers:
            rows.append((r.name + (" (ignored)" if r.ignored else ""),
                         f"{r.units_before} -> {r.units_after}",
                         f"{r.params_before:,} -> {r.params_after:,}",
                         f"{r.macs_before:,} -> {r.macs_after:,}"))
        rows.append(("model", "", f"{self.params_before:,} -> {self.params_after:,}",
                     f"{self.macs_before:,} -> {self.macs_after:,}"))
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        lines += ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip()
                  for row in rows]
        for label, before, after in (
                ("validation accuracy", self.val_acc_before, self.val_acc_after),
                ("test accuracy", self.test_acc_before, self.test_acc_after)):
            lines.append(f"{label:<20} {_pct(before)} -> {_pct(after)}")
        lines += [f"coupled, pruned together: {' + '.join(members)}" for members in self.groups]
        left_out = [r.name for r in self.layers if r.ignored]
        if left_out:
            lines.append(f"left as they are: {len(left_out)} of {len(self.layers)} layers "
                         "(ignored, or left out: see the notes above)")
        if self.target is not None:
            lines.append(_target_line(self.target))
        if self.max_drop is not None:
            md = self.max_drop
            counts = ", ".join(f"{k} {v}" for k, v in md["counts"].items())
            lines.append(f"max-drop {md['budget_pp']:g} pp: removed {counts}; joint drop "
                         f"{md['joint_drop_pp']:.2f} pp after {len(md['rounds']) - 1} back-off "
                         "rounds")
        return "\n".join(lines)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f} %"


def _target_line(t: dict) -> str:
    """The target line: asked, predicted, achieved."""
    verdict = "met" if t["met"] else "NOT met"
    if t["kind"] in ("macs", "params"):
        what = "MACs" if t["kind"] == "macs" else "parameters"
        return (f"target {t['target']} ({t['allocation']}): {100 * t['achieved_share']:.2f} % "
                f"of the {what} kept, {1 / t['achieved_share']:.2f}x fewer (asked "
                f"{100 * t['limit'] / t['dense']:.2f} %): {verdict}")
    return (f"target {t['target']} ({t['allocation']}): {t['achieved']:.3g} ms against "
            f"{t['dense_measured']:.3g} ms dense, {1 / t['achieved_share']:.2f}x faster "
            f"(asked {t['limit_measured']:.3g} ms; batch {t['batch']}, {t['device']}, "
            f"{t['threads']} threads): {verdict}")


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
