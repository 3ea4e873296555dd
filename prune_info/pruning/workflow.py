"""The prune workflow of a checkpoint: score, allocate, remove, verify, record.

:func:`prune_checkpoint` is what ``prune-info prune`` runs: it scores the units with a criterion
(:mod:`prune_info.criteria`), turns the scores into a plan (:mod:`prune_info.pruning.allocation`),
removes the planned units (:mod:`prune_info.surgery`), measures accuracy before and after, and
returns a new self-describing checkpoint whose pruning history records the step.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import fnmatch
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import torch
from torch import nn

from prune_info._torch import timing_input
from prune_info.criteria.context import make_context
from prune_info.criteria.options import FDR_Q, ScoreOptions
from prune_info.criteria.ranking import (
    rank_units,
    reduce_group,
    tie_warnings,
)
from prune_info.criteria.registry import get_criterion
from prune_info.data import bounded, note
from prune_info.errors import PruneInfoError
from prune_info.io import cpu_state_dict
from prune_info.nn import (
    HEAD_LAYOUTS,
    count_correct,
    count_parameters,
    example_input,
    find_read_points,
    layer_costs,
)
from prune_info.pruning.allocation import (
    GLOBAL_RANKING_WARNING,
    group_drops,
    plan_global,
    plan_layerwise,
    plan_max_drop,
    removal_counts,
)
from prune_info.pruning.budget import (
    CostModel,
    Target,
    measure_latencies,
    parse_target,
    search_counts,
)
from prune_info.pruning.config import PruneConfig
from prune_info.pruning.summary import (
    PruneResult,
    summarise_prune,
)
from prune_info.surgery import (
    PrunePlan,
    UnitGroup,
    apply_plan,
    channel_flow,
    history_entry,
    mask_plan,
    unit_groups,
)

if TYPE_CHECKING:
    from prune_info.checkpoint import Checkpoint
    from prune_info.data import Dataset

# --------------------------------------------------------------------------------------------
# Whole checkpoints


def _input_shape(ckpt: Checkpoint, data: Dataset | None) -> tuple[int, ...]:
    if data is not None:
        return tuple(data.input_shape)
    shape = ckpt.dataset.get("input_shape") or (ckpt.arch or {}).get("input_shape")
    if not shape:
        raise PruneInfoError(
            "the input shape of the model is unknown (the checkpoint records no dataset); "
            "pass `data`"
        )
    return tuple(int(s) for s in shape)


def _accuracies(model: nn.Module, data: Dataset | None, device: str) -> dict:
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
    """Apply the same plan to another set of weights of the same model (initial, rewind).

    Not verified: the trained weights were, and the surgery is the same.
    """
    other = copy.deepcopy(model)
    other.load_state_dict(state)
    (mask_plan if mask else apply_plan)(other, plan, example, verify=False)
    return cpu_state_dict(other.state_dict())


#: Convolutional layers at least this wide keep a multiple of 8 channels unless ``round_to``
#: says otherwise.
AUTO_ROUND_MIN_WIDTH = 64


def _on_members(plan: PrunePlan, by_root: Mapping[str, UnitGroup]) -> PrunePlan:
    """A plan on the groups' roots (their units) as the channels every member loses."""
    return PrunePlan.from_indices(
        {m: by_root[root].channels(idxs) for root, idxs in plan.remove.items()
         for m in by_root[root].members},
        {m: by_root[root].n_units for root in plan.remove for m in by_root[root].members})


def _round_step(layer: str, n: int, config: PruneConfig, kinds: Mapping[str, str],
                groups: Mapping[str, UnitGroup]) -> int:
    """The step, in units, of the widths ``layer``'s group may keep (see ``round_to``). A unit
    of a grouped convolution's group is one channel per block, so its step is ``round_to`` over
    what the blocks share."""
    blocks = groups[layer].channel_groups if layer in groups else 1
    step = config.round_to
    if step is None and config.keep is not None:
        step = 1  # an explicit count is kept as asked
    if step is None:
        step = 8 if kinds.get(layer) == "conv" and n * blocks >= AUTO_ROUND_MIN_WIDTH else 1
    return step // math.gcd(step, blocks)


def _rounded_count(n: int, count: int, step: int) -> int:
    """How many of ``n`` units a plan removing ``count`` removes once a multiple of ``step``
    is kept (rounded up, at most all of them)."""
    return n - min(n, -(-(n - count) // step) * step)


def _round_widths(plan: PrunePlan, scores: Mapping[str, torch.Tensor], config: PruneConfig,
                  kinds: Mapping[str, str], groups: Mapping[str, UnitGroup]) -> PrunePlan:
    """Remove fewer units so that each layer keeps a multiple of ``round_to`` channels (the
    best-ranked of the planned units are spared first)."""
    remove: dict[str, list[int]] = {}
    for layer, idxs in plan.remove.items():
        n = plan.widths[layer]
        count = _rounded_count(n, len(idxs), _round_step(layer, n, config, kinds, groups))
        planned = set(idxs)
        ranked = [int(i) for i in rank_units(scores[layer], config.order, config.seed)
                  if int(i) in planned]
        remove[layer] = ranked[:count]
    return PrunePlan.from_indices(remove, plan.widths)


def _per_root(values: Sequence | None, groups: Sequence[UnitGroup], what: str,
              order: Sequence[str]):
    """Per-layer ``values`` (one per layer that is pruned, in the model order ``order`` of the
    prunable layers) as one per group root.

    One value, or one per group, is passed on as it is. Coupled layers lose the same channels,
    so their values must agree.
    """
    pruned = {m for g in groups for m in g.members}
    layers = [name for name in order if name in pruned]
    if values is None or len(values) <= 1 or len(values) == len(groups) \
            or len(layers) == len(groups):
        return values  # nothing to map (no coupled layers: removal_counts checks the length)
    if len(values) != len(layers):
        roots = ", ".join(g.root for g in groups)
        raise PruneInfoError(
            f"`{what}` gives {len(values)} values; give one, one per layer pruned "
            f"({len(layers)}), or one per coupled group ({len(groups)}: {roots})"
        )
    by_layer = dict(zip(layers, values))
    out = {}
    for g in groups:
        given = {by_layer[m] for m in g.members}
        if len(given) > 1:
            raise PruneInfoError(
                f"`{what}` gives different values to {', '.join(g.members)}, which are coupled "
                "and lose the same channels; give them one value"
            )
        out[g.root] = given.pop()
    return out


#: Attributes holding an attention module's head count, and names of its output projection:
#: those of the layouts :func:`prune_info.nn.attention_heads` knows, and torch's
#: ``MultiheadAttention``'s.
_HEAD_COUNTS = {count for _, _, counts in HEAD_LAYOUTS for count in counts}
_OUTPUT_PROJECTIONS = {output for _, output, _ in HEAD_LAYOUTS} | {"out_proj"}


def attention_projections(model: nn.Module, names: Sequence[str]) -> set[str]:
    """Layers of ``names`` that sit directly in an attention module (one with ``num_heads`` or
    ``num_attention_heads``) that :func:`prune_info.nn.attention_heads` does not recognise,
    other than its output projection: their outputs are split into heads, and removing single
    features would break the module. (A recognised module's heads are units themselves, kind
    ``heads``.)"""
    found = set()
    for name in names:
        parent_name, _, leaf = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        if (any(isinstance(getattr(parent, count, None), int) for count in _HEAD_COUNTS)
                and leaf not in _OUTPUT_PROJECTIONS):
            found.add(name)
    return found



def match_layers(patterns: Sequence[str], names: Sequence[str], what: str) -> set[str]:
    """The layer names matched by names or glob patterns (``"layer4.*"``); each must match.

    Raises
    ------
    PruneInfoError
        If a pattern matches no layer; the message lists the nearest names.
    """
    matched: set[str] = set()
    for pattern in patterns:
        hits = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
        if not hits:
            near = difflib.get_close_matches(pattern, names, n=3, cutoff=0.4) or list(names)[:3]
            raise PruneInfoError(
                f"`{what}`={pattern}: not a prunable layer and no glob match; near names: "
                f"{', '.join(near)}"
            )
        matched.update(hits)
    return matched


def _score_options(config: PruneConfig):
    return config.score_options or ScoreOptions(seed=config.seed, device=config.device)


#: With a null, a layer where fewer than this share of the units beat chance is named.
CHANCE_SHARE = 0.5


def _compute_scores(model, data, criterion, layer_names, config: PruneConfig
                    ) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Each layer's scores, and with a null, a warning per layer whose ranking is mostly
    noise (fewer than :data:`CHANCE_SHARE` of its units above chance at q <= ``FDR_Q``)."""
    split = None if data is None else data.val if config.max_samples is None else bounded(
        data.val, config.max_samples, "scoring", note)
    n_classes = data.n_classes if data is not None else None
    options = _score_options(config)
    ctx = make_context(model, split, n_classes=n_classes, layers=layer_names, options=options)
    scores = ctx.scores([criterion])[criterion]
    warnings = []
    if options.null:
        for layer, info in ctx.information().items():
            q = info.mi_q if criterion == "mi" else info.kl_q
            assert q is not None  # a null was counted
            above = int((q <= FDR_Q).sum())
            if above < CHANCE_SHARE * len(q):
                warnings.append(
                    f"{layer}: {above} of {len(q)} units carry more information about the class "
                    f"than chance ({criterion}, q <= {FDR_Q:g} over `null`={options.null} label "
                    f"permutations), so the {criterion} ranking there is mostly noise; rank it "
                    f"by another criterion, or leave it out with `ignore`={layer}")
    return ({layer: scores[layer].detach().cpu().double() for layer in layer_names},
            warnings)


@dataclass
class _Groups:
    """What can be pruned: the dependency groups kept, the layers left out and why."""

    groups: list[UnitGroup]
    ignored: set[str]
    heads: set[str]
    warnings: list[str]

    @property
    def by_root(self) -> dict[str, UnitGroup]:
        return {g.root: g for g in self.groups}

    @property
    def members(self) -> dict[str, tuple[str, ...]]:
        return {g.root: g.members for g in self.groups}


def _prunable_groups(model: nn.Module, example: torch.Tensor, names: list[str],
                     config: PruneConfig) -> _Groups:
    """Phase 1: the dependency groups that can be pruned faithfully (``ignore``, attention
    projections prune-info cannot split, groups the surgery or the allocation cannot follow
    are left out, each with a warning; under ``strict`` they are refused)."""
    find_read_points(model, example)  # layers the forward never calls are not prunable
    ignored = match_layers(config.ignore, names, "ignore")
    heads = attention_projections(model, [n for n in names if n not in ignored])
    ignored |= heads
    all_groups = unit_groups(model, example, [n for n in names if n not in ignored])
    warnings: list[str] = []
    unfaithful = [g for g in all_groups if g.note and not set(g.members) & ignored]
    if config.planner in ("max-drop", "curves"):  # its group curves ablate channels one at a time
        unfaithful += [replace(g, note=f"the {config.planner} allocation does not split a "
                               f"grouped convolution's {g.channel_groups} blocks")
                       for g in all_groups if g.channel_groups > 1 and not g.note]
    for g in unfaithful:
        if config.strict:
            raise PruneInfoError(f"cannot prune {', '.join(g.members)}: {g.note}; leave them "
                                 f"out with `ignore`={g.root} (or drop `strict`)")
        warnings.append(f"left out {', '.join(g.members)} (as with `ignore`={g.root}): {g.note}")
        ignored |= set(g.members)
    groups = [g for g in all_groups if not set(g.members) & ignored]
    # a layer coupled to an ignored one cannot lose channels either
    ignored |= {m for g in all_groups if set(g.members) & ignored for m in g.members}
    if not groups:
        raise PruneInfoError("every prunable layer is ignored or left out; nothing to prune"
                             + (f" ({warnings[0]})" if warnings else ""))
    return _Groups(groups, ignored, heads, warnings)


@dataclass
class _Planned:
    """Phase 3's result: the plan on every member, and the reports of its allocation."""

    plan: PrunePlan
    at_minimum: list[str]
    max_drop_report: dict | None
    target_report: dict | None


def _make_plan(model: nn.Module, work: nn.Module, data: Dataset | None,
               scores: dict[str, torch.Tensor], found: _Groups, config: PruneConfig,
               per_group: dict, input_shape: tuple[int, ...], kinds: dict[str, str]
               ) -> _Planned:
    """Phase 3: the allocation ``config`` asks for, on the groups' roots, rounded to
    ``round_to``, then spread to every member of each group."""
    warnings = found.warnings
    at_minimum: list[str] = []
    max_drop_report = target_report = None
    if config.target is not None:
        if config.planner == "global":
            warnings.append(GLOBAL_RANKING_WARNING)
        plan, target_report = _plan_to_target(model, work, data, scores, found.groups, config,
                                              input_shape, kinds)
    elif config.allocation == "layerwise":
        plan = plan_layerwise(scores, **per_group, order=config.order, seed=config.seed)
    elif config.allocation == "global":
        warnings.append(GLOBAL_RANKING_WARNING)
        amounts = config.amounts()
        assert amounts is not None  # validate(): global allocation takes one `amount`
        plan, at_minimum = plan_global(scores, amounts[0], min_units=config.min_units,
                                       order=config.order, seed=config.seed)
    else:
        # max-drop: data was required above, and validate() requires `max_drop`
        assert data is not None and config.max_drop is not None
        plan, max_drop_report = plan_max_drop(
            work, bounded(data.val, config.max_samples, "`max_drop`", note), scores,
            config.max_drop,
            order=config.order, seed=config.seed, min_units=config.min_units,
            groups=found.members, device=config.device,
        )
    rounded = _round_widths(plan, scores, config, kinds, found.by_root)
    if rounded.is_empty() and not plan.is_empty():
        step = (f"`round_to`={config.round_to}" if config.round_to is not None else
                f"the default `round_to` (8 channels for conv layers of {AUTO_ROUND_MIN_WIDTH} "
                "or more)")
        raise PruneInfoError(
            f"this prune would remove nothing once every layer keeps a multiple of {step}: "
            f"the {sum(plan.n_removed().values())} units planned round away; lower "
            "`round_to` (1 keeps any width) or remove more (`amount`)")
    return _Planned(_on_members(rounded, found.by_root), at_minimum, max_drop_report,
                    target_report)


def _apply(model: nn.Module, plan: PrunePlan, found: _Groups, config: PruneConfig,
           input_shape: tuple[int, ...]) -> tuple[nn.Module, PrunePlan]:
    """Phase 4: the pruned (or masked) copy, each step checked against the masked original;
    a layer the check refuses is left out, with a warning. Returns the model and the plan of
    what was removed."""
    warnings, members = found.warnings, found.members
    transform = mask_plan if config.mask else apply_plan
    report: dict = {}
    left_out: dict[str, str] | None = None if config.strict else {}
    new_model = transform(copy.deepcopy(model).cpu(), plan, example_input(model, input_shape),
                          verify=config.verify, report=report, left_out=left_out)
    root_of = {m: g.root for g in found.groups for m in g.members}
    for layer, reason in (left_out or {}).items():
        root = root_of.get(layer, layer)
        warnings.append(f"left out {', '.join(members.get(root, (layer,)))} (as with "
                        f"`ignore`={root}): " + reason.replace(
                            f"; leave it out with `ignore`={layer}", ""))
        found.ignored |= set(members.get(root, (layer,)))
    kept = {k: v for k, v in plan.remove.items() if k not in found.ignored}
    if left_out and not any(kept.values()):
        raise PruneInfoError(f"no planned layer can be pruned: {'; '.join(warnings)}")
    new_model.eval()
    if not config.verify:
        warnings.append("not verified: the pruned model was not compared with the original "
                        "with those units ablated (`verify` is off)")
    for layer, diff in report.get("renormalised", {}).items():
        if config.mask:
            warnings.append(
                f"note: {layer} is followed by a LayerNorm over its units, whose statistics "
                "still count the masked units (as zeros): the masked model is not the pruned "
                "one, which renormalises over the survivors. Checked against the original with "
                f"those units zeroed before the LayerNorm (equal); against zeroing them after "
                f"it, the outputs differ by up to {diff:.3g}"
            )
            continue
        warnings.append(
            f"note: {layer} is followed by a LayerNorm over its units, which renormalises the "
            "units that survive, so removing units is not zeroing them; checked instead against "
            f"the original normalised over the kept units (equal). Against plain zeroing the "
            f"outputs differ by up to {diff:.3g}"
        )
    return new_model, PrunePlan.from_indices(kept, {k: plan.widths[k] for k in kept})


def prune_checkpoint(
    ckpt: Checkpoint, data: Dataset | None, config: PruneConfig
) -> PruneResult:
    """Rank units by a criterion on the validation set and prune a checkpoint's model.

    The input checkpoint is left untouched; the result holds a new checkpoint whose model,
    initial and rewind weights are pruned (or masked) alike, whose architecture records the new
    widths and whose pruning history gains one entry (:func:`history_entry`).

    The phases: the groups that can be pruned (:func:`_prunable_groups`), their scores, the
    plan (:func:`_make_plan`), the checked surgery (:func:`_apply`), the new checkpoint and
    its summary (:func:`_result`).

    Parameters
    ----------
    ckpt : Checkpoint
        The model; the result can be saved (and rebuilt from the file) when it records an
        architecture (``arch``) or a ``factory``: :func:`~prune_info.checkpoint.check_savable`.
    data : Dataset or None
        Scores and ``max-drop`` use ``data.val``; accuracies before / after use val and test.
        ``None`` is allowed only for criteria that need no data (accuracies are then omitted).
    config : PruneConfig

    Returns
    -------
    PruneResult
    """
    config.validate()
    criterion = get_criterion(config.criterion)
    reads_curves = config.planner in ("max-drop", "curves")
    if data is None and (criterion.needs_data or reads_curves):
        what = (f"`allocation='{config.planner}'`" if reads_curves
                else f"criterion {criterion.name}")
        raise PruneInfoError(
            f"{what} needs data, and the model does not record its dataset; pass `data`"
        )
    input_shape = _input_shape(ckpt, data)
    model = ckpt.model.eval()
    names = [layer.name for layer in ckpt.layers]
    found = _prunable_groups(model, example_input(model, input_shape), names, config)
    # Plans are made on the groups' roots (their units: channels, or positions in the blocks
    # of a grouped convolution), then every member loses the same channels.
    widths = {g.root: g.units for g in found.groups}
    per_group = {"amounts": _per_root(config.amounts(), found.groups, "amounts", names),
                 "keep": _per_root(config.keep, found.groups, "keep", names)}
    if config.planner == "layerwise":
        counts = removal_counts(widths, **per_group)  # fail early
        if not any(counts.values()):
            raise PruneInfoError(
                f"this prune would remove nothing: {_nothing_removed(widths, config)}; "
                "raise `amount`, or lower `keep`")

    # Phase 2, the scores: on config.device, on a copy so the input model stays on the CPU
    work = model if config.device == "cpu" else copy.deepcopy(model).to(config.device)
    member_scores, chance = _compute_scores(work, data, criterion.name,
                                            [m for g in found.groups for m in g.members], config)
    by_root = found.by_root
    scores = {root: by_root[root].fold(reduce_group(member_scores, group, config.group_reduce))
              for root, group in found.members.items()}
    found.warnings += chance + tie_warnings({criterion.name: scores})
    if found.heads:
        found.warnings.append(
            f"left out the attention projections {', '.join(sorted(found.heads))}: their "
            "outputs are split into heads by an attention module prune-info does not recognise "
            "(see prune_info.nn.attention_heads)")
    kinds = {layer.name: layer.kind for layer in ckpt.layers}
    planned = _make_plan(model, work, data, scores, found, config, per_group, input_shape,
                         kinds)
    del work
    new_model, plan = _apply(model, planned.plan, found, config, input_shape)
    return _result(ckpt, data, config, criterion.name, found, planned, new_model, plan,
                   input_shape)


def _result(ckpt: Checkpoint, data: Dataset | None, config: PruneConfig, criterion: str,
            found: _Groups, planned: _Planned, new_model: nn.Module, plan: PrunePlan,
            input_shape: tuple[int, ...]) -> PruneResult:
    """Phase 5: the new checkpoint (weights, initial and rewind states transformed alike, the
    history entry, the accuracies) and its summary."""
    model, warnings = ckpt.model, found.warnings
    example = example_input(model, input_shape)
    init = (None if ckpt.init_state_dict is None
            else _transform_state(model, ckpt.init_state_dict, plan, example, config.mask))
    rewinds = {k: _transform_state(model, state, plan, example, config.mask)
               for k, state in ckpt.rewind_state_dicts.items()}
    new_arch = ckpt.arch if config.mask else _pruned_arch(ckpt.arch, new_model)

    before = _accuracies(model, data, config.device)
    after = _accuracies(new_model, data, config.device)
    target_report = planned.target_report
    if target_report is not None:
        target_report = _achieved(target_report, model, new_model, input_shape)
        if not target_report["met"]:
            warnings.append(_missed(target_report))
    requested_amounts = config.amounts()
    requested = {"amount": list(requested_amounts) if requested_amounts is not None else None,
                 "keep": list(config.keep) if config.keep is not None else None,
                 "max_drop": config.max_drop, "min_units": config.min_units,
                 "ignore": list(config.ignore), "seed": config.seed}
    extra = {"score_options": dataclasses.asdict(_score_options(config)),
             "val_acc_before": before["val"], "val_acc_after": after["val"],
             "test_acc_before": before["test"], "test_acc_after": after["test"]}
    if planned.max_drop_report is not None:
        extra["max_drop"] = {k: planned.max_drop_report[k]
                             for k in ("budget_pp", "counts", "joint_drop_pp")}
    if target_report is not None:
        extra["target"] = target_report
    entry = history_entry(plan, mode="mask" if config.mask else "remove",
                          allocation=config.planner, criterion=criterion, order=config.order,
                          input_shape=input_shape, requested=requested, extra=extra)
    metrics = dict(ckpt.metrics)
    metrics.update({"val_acc": after["val"], "test_acc": after["test"],
                    "before_pruning": {"val_acc": before["val"], "test_acc": before["test"]}})
    new_ckpt = ckpt.replace(
        model=new_model, arch=new_arch, metrics=metrics, init_state_dict=init,
        rewind_state_dicts=rewinds, pruning_history=[*ckpt.pruning_history, entry], source=None,
    )
    summary = summarise_prune(ckpt, new_ckpt, plan, input_shape, before, after, config, entry,
                       warnings=tuple(warnings), at_minimum=tuple(planned.at_minimum),
                       max_drop_report=planned.max_drop_report, target_report=target_report,
                       groups=tuple(g.members for g in found.groups if len(g.members) > 1),
                       ignored=frozenset(found.ignored))
    return PruneResult(new_ckpt, plan, summary)


# --------------------------------------------------------------------------------------------
# Pruning to a target

#: Achieved MACs or parameters meet a target within this share of it (a rounding step, or the
#: parameters of a bias, can go a little over what the plan was priced at).
TARGET_TOLERANCE = 0.02
#: A measured latency meets a target within this share of it (timing noise).
LATENCY_TOLERANCE = 0.05
#: Plans timed against a latency target before the last is kept, met or not.
LATENCY_ATTEMPTS = 3


def _plan_to_target(model: nn.Module, work: nn.Module, data: Dataset | None,
                    scores: Mapping[str, torch.Tensor], groups: Sequence[UnitGroup],
                    config: PruneConfig, input_shape: tuple[int, ...],
                    kinds: Mapping[str, str]) -> tuple[PrunePlan, dict]:
    """Per-group counts that meet ``config.target`` by ``config.planner`` (see
    :mod:`prune_info.pruning.budget`), as a plan on the groups' roots, and what was predicted."""
    target = parse_target(config.target)  # type: ignore[arg-type]
    by_root = {g.root: g for g in groups}
    example = example_input(model, input_shape)
    flow = channel_flow(model, example, groups)
    steps = {root: _round_step(root, g.units, config, kinds, by_root)
             for root, g in by_root.items()}

    def round_counts(root: str, count: int) -> int:
        return _rounded_count(by_root[root].units, count, steps[root])

    def plan_of(counts: Mapping[str, int]) -> PrunePlan:
        return plan_layerwise(scores, keep={root: by_root[root].units - counts.get(root, 0)
                                            for root in scores},
                              order=config.order, seed=config.seed)

    fewest = {root: round_counts(root, max(0, g.units - config.min_units))
              for root, g in by_root.items()}
    if target.measured:
        smallest = apply_plan(copy.deepcopy(model).cpu(), _on_members(plan_of(fewest), by_root),
                              example, verify=False, left_out={})
        timed = timing_input(input_shape, config.latency_batch).to(config.device)
        costs = CostModel.timed(work, smallest.to(config.device), fewest, timed, groups, flow)
    else:
        costs = CostModel.build(model, example, groups, flow, target.kind)
    dense = costs.dense
    limit = target.limit(dense)
    if costs.cost(fewest) > limit:
        raise PruneInfoError(_unmeetable(target, dense, costs.cost(fewest), config))
    global_counts = drops = None
    if config.planner == "global":
        def global_counts(fraction: float) -> dict[str, int]:
            plan, _ = plan_global(scores, min(fraction, 1 - 1e-9), min_units=config.min_units,
                                  order=config.order, seed=config.seed)
            return {root: plan.n_removed().get(root, 0) for root in scores}
    elif config.planner == "curves":
        assert data is not None  # prune_checkpoint requires data for the curves
        drops = group_drops(work, bounded(data.val, config.max_samples, "the curves",
                                          note), scores, order=config.order, seed=config.seed,
                            min_units=config.min_units,
                            groups={g.root: g.members for g in groups}, device=config.device)

    def search(asked: float) -> tuple[dict[str, int], dict]:
        counts, found = search_counts(costs, asked, config.planner, round_counts=round_counts,
                                      min_units=config.min_units, global_counts=global_counts,
                                      drops=drops)
        if not any(counts.values()):
            raise PruneInfoError(f"the model already meets `target`={target.text} ("
                                 f"{_figure(target, dense)}); nothing to prune")
        return counts, found

    counts, found = search(limit)
    report: dict = {"target": target.text, "kind": target.kind, "allocation": config.planner,
                    "limit": limit, "dense": dense}
    if target.measured:
        # The table predicts; the pruned model is timed against the dense one, and while it
        # misses, the table is asked for proportionally less.
        asked = limit
        for attempt in range(1, LATENCY_ATTEMPTS + 1):
            candidate = apply_plan(copy.deepcopy(model).cpu(), _on_members(plan_of(counts),
                                                                           by_root),
                                   example, verify=False, left_out={}).to(config.device)
            dense_ms, pruned_ms = measure_latencies([work, candidate], timed, repeat=30,
                                                    warmup=5)
            wanted = target.limit(dense_ms)
            report.update(dense_measured=dense_ms, limit_measured=wanted, achieved=pruned_ms,
                          attempts=attempt)
            asked *= wanted / pruned_ms
            if pruned_ms <= wanted * (1 + LATENCY_TOLERANCE) or attempt == LATENCY_ATTEMPTS \
                    or costs.cost(fewest) > asked:
                break
            counts, found = search(asked)
        report.update(unit="ms", batch=config.latency_batch, device=config.device,
                      threads=torch.get_num_threads())
    report.update(predicted=found["predicted"], predicted_share=found["predicted"] / dense,
                  counts=counts)
    report.update({k: v for k, v in found.items() if k in ("fraction", "summed_drop_pp")})
    return plan_of(counts), report


def _achieved(report: dict, model: nn.Module, new_model: nn.Module,
              input_shape: tuple[int, ...]) -> dict:
    """``report`` with the cost of the pruned model: exact MACs or parameters, or the latencies
    of the dense and pruned models timed round-robin in one run (by :func:`_plan_to_target`)."""
    kind = report["kind"]
    if kind in ("macs", "params"):
        def total(m: nn.Module) -> float:
            if kind == "params":
                return float(count_parameters(m))
            return float(sum(c["macs"] for c in layer_costs(m, input_shape).values()))
        dense, achieved = total(model), total(new_model)
        met = achieved <= report["limit"] * (1 + TARGET_TOLERANCE)
    else:  # timed against the dense model while the plan was made
        dense, achieved = report["dense_measured"], report["achieved"]
        met = achieved <= report["limit_measured"] * (1 + LATENCY_TOLERANCE)
    return {**report, "achieved": achieved, "achieved_share": achieved / dense, "met": bool(met)}


def _figure(target: Target, dense: float) -> str:
    if target.measured:
        return f"{dense:.3g} ms per pass measured here"
    return f"{dense:,.0f} {_what(target.kind)}"


def _what(kind: str) -> str:
    return {"macs": "MACs", "params": "parameters"}.get(kind, "latency")


def _unmeetable(target: Target, dense: float, fewest: float, config: PruneConfig) -> str:
    """Why ``target`` cannot be met, with the best the model can do."""
    floor = (f"{config.min_units} unit{'s' * (config.min_units > 1)}"
             + (f", a multiple of `round_to`={config.round_to}" if config.round_to else ""))
    if target.measured:
        return (f"`target`={target.text} cannot be met: with every group at its smallest width "
                f"({floor}) a pass is predicted to take {fewest:.3g} ms at best, "
                f"{dense / fewest:.3g}x faster than the dense model's {dense:.3g} ms measured "
                "here; ask for less")
    best = dense / fewest
    return (f"`target`={target.text} cannot be met: with every group at its smallest width "
            f"({floor}) the model keeps {100 * fewest / dense:.3g} % of its "
            f"{_what(target.kind)} at best ({best:.3g}x fewer); ask for at most "
            f"{target.kind}={fewest / dense:.3g} (x{best:.3g})"
            + (", or lower `min_units`" if config.min_units > 1 else ""))


def _missed(report: dict) -> str:
    """The warning of a target not met (a group left out, a bias term, timing noise)."""
    if report["kind"] in ("macs", "params"):
        asked = 100 * report["limit"] / report["dense"]
        return (f"warning: `target`={report['target']} missed: "
                f"{100 * report['achieved_share']:.3g} % of the {_what(report['kind'])} kept "
                f"against {asked:.3g} % asked (predicted {100 * report['predicted_share']:.3g} "
                "%); a group left out keeps its cost")
    return (f"warning: `target`={report['target']} missed: measured {report['achieved']:.3g} ms "
            f"against {report['limit_measured']:.3g} ms (the per-layer table predicted "
            f"{report['predicted']:.3g} ms); timings on a shared machine vary: rerun, or ask for "
            "a little more")


def _nothing_removed(widths: Mapping[str, int], config: PruneConfig) -> str:
    """Why a layer-wise request removes no unit (counts round down; `keep` of every unit)."""
    amounts = config.amounts()
    if amounts is not None:
        shown = ", ".join(f"{a:g}" for a in amounts)
        narrowest = min(widths, key=lambda name: widths[name])
        return (f"`amount`={shown} of {narrowest}'s {widths[narrowest]} units rounds down to 0, "
                "and likewise in every layer")
    return "`keep` asks for every unit of every layer"


