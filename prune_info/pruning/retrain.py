"""Retraining after pruning: fine-tuning, lottery-ticket rewinding, training a chosen sub-network.

Three starting points (``rewind``):

* ``None`` — fine-tune from the pruned model's current weights;
* ``"init"`` — reset the surviving units' weights to their values at initialisation (stored in the
  checkpoint by ``prune-info train`` and sliced by every pruning step), then train again: the
  lottery-ticket way (Frankle & Carbin);
* ``K`` — reset to the weights after K optimiser steps, when training saved them
  (``TrainConfig.save_rewind_steps``).

``freeze_others`` is the variant of Clauw et al. (Sec. 4.2): only the weights of the units kept by
the last pruning step are trained (their incoming weights, biases and BatchNorm parameters); every
other weight of the network keeps its value, bit for bit. With a rewind, only the trained units
are reset.

Units zeroed by a masking pruning step (``mask=True``) stay zero during retraining: their entries
are held.
Optimiser settings default to the ones the checkpoint was trained with; the epoch with the best
validation accuracy is kept.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from torch import nn

from prune_info._torch import timing_input
from prune_info.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from prune_info.data import Dataset
from prune_info.errors import PruneInfoError
from prune_info.io import RunDirectory, file_sha256
from prune_info.nn import accuracy, count_parameters, example_input, prunable_layers, total_macs
from prune_info.pruning.budget import Target, measure_latencies, parse_target
from prune_info.pruning.retrain_report import RetrainReport, RetrainRun, Round, RoundsReport
from prune_info.pruning.workflow import prune_checkpoint
from prune_info.surgery import mask_plan, plan_from_entry
from prune_info.training.loop import TrainConfig, fit


@dataclass(frozen=True)
class RetrainConfig:
    """What to retrain and how; ``None`` optimiser fields fall back to the checkpoint's own."""

    epochs: int = 10
    rewind: str | int | None = None
    freeze_others: bool = False
    optimizer: str | None = None
    lr: float | None = None
    batch_size: int | None = None
    seed: int = 0
    device: str = "cpu"
    allow_nonfinite: bool = False

    def train_config(self, ckpt: Checkpoint) -> TrainConfig:
        if self.epochs < 1:
            raise PruneInfoError(f"`epochs` must be at least 1, got {self.epochs}")
        base = ckpt.train_config or {}
        return TrainConfig(
            epochs=self.epochs,
            batch_size=self.batch_size or base.get("batch_size", 32),
            optimizer=self.optimizer or base.get("optimizer", "rmsprop"),
            lr=self.lr or base.get("lr", 1e-3),
            momentum=base.get("momentum", 0.01),
            weight_decay=base.get("weight_decay"),
            seed=self.seed,
        )


class HeldEntries:
    """Parameter entries kept at fixed values during training (frozen or masked).

    ``restore()`` writes the held values back; called after every optimiser step it undoes any
    change from gradients, weight decay or momentum, so held entries stay bit-identical.
    """

    def __init__(self) -> None:
        self._held: list[tuple[nn.Parameter, torch.Tensor, torch.Tensor]] = []

    def hold(self, param: nn.Parameter, mask: torch.Tensor, values: torch.Tensor) -> None:
        if bool(mask.any()):
            self._held.append((param, mask, values.detach().clone()))

    def count(self) -> int:
        return sum(int(mask.sum()) for _, mask, _ in self._held)

    def fully_held(self) -> set[int]:
        return {id(p) for p, mask, _ in self._held if bool(mask.all())}

    @torch.no_grad()
    def restore(self) -> None:
        for param, mask, values in self._held:
            param.copy_(torch.where(mask, values, param))


def _masked_entries(ckpt: Checkpoint, model: nn.Module) -> dict[str, torch.Tensor]:
    """Boolean masks of the entries zeroed by ``mask=True`` pruning steps (parameter name -> mask).

    Found by masking a copy of the model whose weights are all ones: whatever turns to zero is
    an entry the mask owns.
    """
    steps = [entry for entry in ckpt.pruning_history if entry.get("mode") == "mask"]
    if not steps:
        return {}
    ones = copy.deepcopy(model)
    with torch.no_grad():
        for p in ones.parameters():
            p.fill_(1.0)
    example = example_input(ones, steps[-1]["input_shape"])
    for entry in steps:
        mask_plan(ones, plan_from_entry(entry), example, verify=False)
    return {name: p == 0 for name, p in ones.named_parameters()}


def _trained_units(ckpt: Checkpoint, model: nn.Module) -> dict[str, torch.Tensor]:
    """Per parameter, the entries that belong to the units kept by the last pruning step."""
    if not ckpt.pruning_history:
        raise PruneInfoError(
            "`freeze_others` trains the units a pruning step kept, but this model has no pruning "
            "history; prune it first with prune-info prune"
        )
    last = ckpt.pruning_history[-1]
    masked = last.get("mode") == "mask"
    trainable: dict[str, torch.Tensor] = {}
    modules = dict(model.named_modules())

    layers = {layer.name: layer for layer in prunable_layers(model)}
    for name in last["removed"]:
        layer = layers.get(name)
        if layer is None:
            raise PruneInfoError(f"the pruning history names layer {name}, which the model lacks")
        keep = torch.ones(layer.n_units, dtype=torch.bool)
        if masked:
            keep[torch.tensor(last["removed"][name], dtype=torch.long)] = False
        for module_name in (name, layer.norm_module):
            if module_name is None:
                continue
            for pname, p in modules[module_name].named_parameters(recurse=False):
                rows = keep.view(-1, *([1] * (p.dim() - 1))).expand_as(p)
                trainable[f"{module_name}.{pname}"] = rows.clone()
    return trainable


def _rewind_state(ckpt: Checkpoint, rewind: str | int) -> dict:
    if rewind == "init":
        if ckpt.init_state_dict is None:
            raise PruneInfoError(
                "this checkpoint stores no initial weights, so it cannot be rewound; train the "
                "model with prune-info train (which keeps them) and prune that checkpoint"
            )
        return ckpt.init_state_dict
    step = int(rewind)
    if step not in ckpt.rewind_state_dicts:
        saved = ", ".join(map(str, sorted(ckpt.rewind_state_dicts))) or "none"
        raise PruneInfoError(
            f"`rewind`={step}: the weights after step {step} were not saved (saved steps: "
            f"{saved}); train with `save_rewind_steps` including {step}"
        )
    return ckpt.rewind_state_dicts[step]


def _check_fits(model: nn.Module, state: dict, rewind) -> None:
    current = model.state_dict()
    wrong = [k for k, v in current.items() if k not in state or state[k].shape != v.shape]
    if wrong:
        raise PruneInfoError(
            f"the stored weights for `rewind`={rewind} do not fit the model ({wrong[0]}): it was "
            "pruned without a recorded history; prune the original checkpoint with prune-info "
            "prune instead"
        )


def retrain_checkpoint(
    ckpt: Checkpoint, data: Dataset, config: RetrainConfig, progress: bool = True
) -> tuple[Checkpoint, RetrainReport]:
    """Retrain a (pruned) checkpoint; returns the new checkpoint and the report of this one
    retraining (:attr:`RetrainReport.run <prune_info.pruning.retrain_report.RetrainReport.run>`).

    The input checkpoint is left untouched. The run holds validation and test accuracy
    before and after, the dense model's accuracy when the pruning history records it, and the
    number of trained and held parameter entries.
    """
    train_config = config.train_config(ckpt)
    model = copy.deepcopy(ckpt.model).cpu()
    params = dict(model.named_parameters())
    held = HeldEntries()
    masked = _masked_entries(ckpt, model)
    trainable = _trained_units(ckpt, model) if config.freeze_others else None
    for name, p in params.items():
        hold = masked.get(name, torch.zeros_like(p, dtype=torch.bool))
        if trainable is not None:
            hold = hold | ~trainable.get(name, torch.zeros_like(p, dtype=torch.bool))
        held.hold(p, hold, p)  # masked entries are already zero in a masked model
    if config.rewind is not None:
        state = _rewind_state(ckpt, config.rewind)
        _check_fits(model, state, config.rewind)
        model.load_state_dict(state)
    held.restore()

    before = {"val_acc": accuracy(ckpt.model, data.val),
              "test_acc": accuracy(ckpt.model, data.test)}
    frozen = held.fully_held()
    optimised = [p for p in model.parameters() if id(p) not in frozen]
    for p in model.parameters():
        p.requires_grad_(id(p) not in frozen)
    reg = (ckpt.arch or {}).get("reg", "none")
    result = fit(model, data, train_config, reg=reg, device=config.device, progress=progress,
                 params=optimised, after_step=held.restore,
                 allow_nonfinite=config.allow_nonfinite)
    for p in model.parameters():
        p.requires_grad_(True)
    model.cpu().eval()
    after = {"val_acc": result.best_val_acc, "test_acc": accuracy(model, data.test)}
    n_held = held.count()
    run = RetrainRun(
        rewind="none" if config.rewind is None else str(config.rewind),
        freeze_others=config.freeze_others,
        epochs=config.epochs,
        best_epoch=result.best_epoch,
        before=before,
        after=after,
        dense=_dense_accuracy(ckpt),
        trained_entries=sum(p.numel() for p in model.parameters()) - n_held,
        held_entries=n_held,
        history=result.history,
    )
    metrics = {**ckpt.metrics, **after, "retrain": run.record()}
    return ckpt.replace(model=model, metrics=metrics, source=None), RetrainReport((run,))


def _dense_accuracy(ckpt: Checkpoint) -> dict | None:
    """Accuracy of the model before its first pruning step, as recorded in the history."""
    if not ckpt.pruning_history:
        return None
    first = ckpt.pruning_history[0]
    if first.get("test_acc_before") is None:
        return None
    return {"val_acc": first.get("val_acc_before"), "test_acc": first.get("test_acc_before")}


#: A prune-retrain directory: its claim (the run's identity), the rounds so far, each model.
CLAIM, ROUNDS = "prune-retrain.json", "rounds.json"


def rounds_directory(out_dir: str | os.PathLike) -> RunDirectory:
    """The run directory of iterative pruning: ``prune-retrain.json`` records its identity."""
    return RunDirectory(out_dir, CLAIM, "prune-info-prune-retrain-config",
                        what="a prune-retrain run",
                        other="a prune-retrain run of another configuration")


def rounds_identity(ckpt: Checkpoint, data: Dataset, prune_config, retrain_config: RetrainConfig,
                    rounds: int) -> dict:
    """What makes two iterative prunes the same run: the model (its file's SHA-256 and
    architecture), the data, the rounds and every setting but the device."""
    model = file_sha256(ckpt.source) if ckpt.source is not None else None
    settings = {f"prune.{k}": v for k, v in asdict(prune_config).items() if k != "device"}
    settings.update({f"retrain.{k}": v for k, v in asdict(retrain_config).items()
                     if k != "device"})
    return {"model_sha256": model, "arch": ckpt.spec, "data": data.name, "rounds": rounds,
            **settings}


def iterative_prune(
    ckpt: Checkpoint,
    data: Dataset,
    prune_config,
    retrain_config: RetrainConfig,
    rounds: int,
    out_dir: str | os.PathLike | None = None,
    *,
    progress: bool = True,
) -> RoundsReport:
    """Prune then retrain, ``rounds`` times; each round removes ``prune_config.amount`` of the
    units that are left (so 5 rounds of 0.2 keep 0.8**5 = 33 % of every layer), or, under a
    ``prune_config.target``, reaches the target over the rounds (:func:`round_target`), scoring
    the retrained model afresh each round.

    With ``out_dir`` (:func:`rounds_directory`), each round's model is saved as ``roundR.pt``
    and the report so far as ``rounds.json`` the moment the round ends; a rerun of the same run
    (:func:`rounds_identity`) continues after the last finished round, with the result of an
    uninterrupted run (the rounds are deterministic); another run's directory, or one of other
    files, is refused.

    Returns the report: one :class:`~prune_info.pruning.retrain_report.Round` per round (round 0
    is the starting model) with widths, parameters, MACs and accuracies, and under a target the
    round's target and whether its prune met it.
    """
    if rounds < 1:
        raise PruneInfoError(f"`rounds` must be at least 1, got {rounds}")
    prune_config.validate()
    if out_dir is None:
        return _rounds(ckpt, data, prune_config, retrain_config, rounds, progress=progress)
    out = Path(out_dir)
    directory = rounds_directory(out)
    identity = rounds_identity(ckpt, data, prune_config, retrain_config, rounds)

    def save(r: int, checkpoint: Checkpoint) -> str:
        path = out / f"round{r}.pt"
        save_checkpoint(checkpoint, path)
        return str(path)

    with directory.owned(identity) as record:
        resume = None
        if record is not None and (out / ROUNDS).is_file():
            so_far = RoundsReport.read(out / ROUNDS)
            last = so_far.rounds[-1]  # saved in this directory, wherever it is now
            model = ckpt if last.checkpoint is None else load_checkpoint(
                out / Path(last.checkpoint).name, factory=ckpt.factory)
            resume = (so_far, model)
        return _rounds(ckpt, data, prune_config, retrain_config, rounds, save=save,
                       on_round=lambda report: report.write(out / ROUNDS), resume=resume,
                       progress=progress)


def _rounds(
    ckpt: Checkpoint,
    data: Dataset,
    prune_config,
    retrain_config: RetrainConfig,
    rounds: int,
    *,
    save: Callable[[int, Checkpoint], str] | None = None,
    on_round: Callable[[RoundsReport], None] | None = None,
    resume: tuple[RoundsReport, Checkpoint] | None = None,
    progress: bool = True,
) -> RoundsReport:
    """The rounds of :func:`iterative_prune`: ``save(r, checkpoint)`` stores each round's model
    and returns where, ``on_round(report)`` gets the report so far after each round, ``resume``
    is the report and last model of an interrupted run."""
    input_shape = tuple(data.input_shape)

    def measure(r: int, c: Checkpoint, pruned_acc: float | None, **more) -> Round:
        return Round(round=r, arch=c.spec, parameters=count_parameters(c.model),
                     macs=total_macs(c.model, input_shape), test_acc_pruned=pruned_acc,
                     val_acc=accuracy(c.model, data.val), test_acc=accuracy(c.model, data.test),
                     **more)

    def report() -> RoundsReport:
        return RoundsReport(criterion=prune_config.criterion,
                            amount_per_round=prune_config.amount, target=prune_config.target,
                            allocation=prune_config.planner, rounds=tuple(done))

    done, current = ([measure(0, ckpt, None)], ckpt) if resume is None else \
        (list(resume[0].rounds), resume[1])
    for r in range(len(done), rounds + 1):
        config, reached = prune_config, None
        if prune_config.target is not None:
            step = round_target(parse_target(prune_config.target), r, rounds, ckpt.model,
                                current.model, input_shape, prune_config)
            config = replace(prune_config, target=step)
        if config.target is None and prune_config.target is not None:
            pruned, pruned_acc = current, None  # within this round's share already: retrain
        else:
            result = prune_checkpoint(current, data, config)
            pruned, pruned_acc = result.checkpoint, result.checkpoint.metrics.get("test_acc")
            reached = result.summary.target
        current, _ = retrain_checkpoint(pruned, data, retrain_config, progress=progress)
        saved = None if save is None else save(r, current)
        targeted = {} if prune_config.target is None else {
            "target": config.target, "target_met": None if reached is None else reached["met"]}
        done.append(measure(r, current, pruned_acc, checkpoint=saved, **targeted))
        if on_round is not None:
            on_round(report())
    return report()


def round_target(target: Target, r: int, rounds: int, first: nn.Module, current: nn.Module,
                 input_shape: tuple[int, ...], config) -> str | None:
    """The target of round ``r`` of ``rounds`` on the way to ``target``, relative to the
    ``current`` model (``first`` is the model before round 1): the share of the first model's
    cost kept shrinks geometrically, ``share ** (r / rounds)`` (as torch-pruning's iterative
    steps), and the last round asks for ``target`` itself. ``None`` when ``current`` is
    already within the round's share.

    Examples
    --------
    >>> from torch import nn
    >>> a, b = nn.Linear(10, 10), nn.Linear(10, 10)
    >>> round_target(parse_target("params=0.25"), 1, 2, a, b, (10,), None)
    'params=0.5'
    """
    if target.measured:
        timed = timing_input(input_shape, config.latency_batch).to(config.device)
        dense, now = measure_latencies([copy.deepcopy(first).to(config.device),
                                        copy.deepcopy(current).to(config.device)], timed)
    elif target.kind == "macs":
        dense, now = float(total_macs(first, input_shape)), float(total_macs(current, input_shape))
    else:
        dense, now = float(count_parameters(first)), float(count_parameters(current))
    share = target.limit(dense) / dense
    goal = dense * share ** (r / rounds)
    if r == rounds and target.kind == "latency":
        return target.text  # absolute: met as asked
    if goal >= now:
        return None
    if target.measured:
        return f"speedup={now / goal:.6g}"
    return f"{target.kind}={goal / now:.6g}"
