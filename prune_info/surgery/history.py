"""The pruning history of a checkpoint: one plain-data entry per step, and its replay on a
freshly built model."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import nn

from prune_info.errors import PruneInfoError
from prune_info.nn import (
    example_input,
    prunable_layers,
)
from prune_info.surgery.plan import PrunePlan
from prune_info.surgery.transform import apply_plan


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
