"""What retraining did: one retraining (:class:`RetrainRun`), the ``prune-info-retrain``
document of one or more of them (:class:`RetrainReport`), and the rounds of iterative pruning
(:class:`Round`, the ``prune-info-prune-retrain`` document :class:`RoundsReport`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from prune_info.reports import Report

__all__ = ["RetrainReport", "RetrainRun", "Round", "RoundsReport"]


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:6.2f} %"


@dataclass(frozen=True)
class RetrainRun:
    """One retraining of one checkpoint.

    ``before`` and ``after`` hold ``val_acc`` and ``test_acc`` of the model before retraining
    and of the kept epoch; ``dense`` the same of the model before its first pruning step, when
    the pruning history records it. ``rewind`` is ``"none"`` (fine-tuning), ``"init"`` or a step
    number as text. ``history`` holds one entry per epoch (loss and accuracies).
    """

    rewind: str
    freeze_others: bool
    epochs: int
    best_epoch: int
    before: dict[str, float]
    after: dict[str, float]
    dense: dict[str, float] | None
    trained_entries: int
    held_entries: int
    history: list[dict[str, Any]]

    @property
    def label(self) -> str:
        return "fine-tune" if self.rewind == "none" else f"rewind {self.rewind}"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def record(self) -> dict[str, Any]:
        """The run without its per-epoch history: what the retrained checkpoint's metrics and
        a pipeline's retrain stage keep."""
        return {k: v for k, v in self.to_dict().items() if k != "history"}


@dataclass(frozen=True)
class RetrainReport(Report):
    """The retrainings of one pruned checkpoint (``prune-info retrain``; with
    ``--compare-finetune`` a rewind and a fine-tuning), ``output`` the checkpoint written.

    ``runs[0]`` is the retraining whose model was kept: :attr:`run`.
    """

    FORMAT = "prune-info-retrain"

    runs: tuple[RetrainRun, ...]
    output: str | None = None

    @property
    def run(self) -> RetrainRun:
        return self.runs[0]

    def to_dict(self) -> dict[str, Any]:
        return {"runs": [run.to_dict() for run in self.runs], "output": self.output}

    @classmethod
    def from_fields(cls, doc: dict) -> RetrainReport:
        return cls(runs=tuple(RetrainRun(**run) for run in doc["runs"]), output=doc["output"])

    def table(self) -> str:
        run = self.run
        lines = [f"{'start':<12} {'val acc':>9} {'test acc':>9}"]
        if run.dense:
            lines.append(f"{'dense':<12} {_pct(run.dense['val_acc']):>9} "
                         f"{_pct(run.dense['test_acc']):>9}")
        lines.append(f"{'pruned':<12} {_pct(run.before['val_acc']):>9} "
                     f"{_pct(run.before['test_acc']):>9}")
        lines += [f"{r.label:<12} {_pct(r.after['val_acc']):>9} {_pct(r.after['test_acc']):>9}"
                  f"   best epoch {r.best_epoch}" for r in self.runs]
        if run.freeze_others:
            lines.append(f"trained {run.trained_entries:,} weights, froze {run.held_entries:,}")
        return "\n".join(lines)


@dataclass(frozen=True)
class Round:
    """One round of iterative pruning: the model after it (round 0: the starting model).

    ``test_acc_pruned`` is the test accuracy after the round's prune, before retraining (None
    for round 0, and for a round already within its share of a target); under a target,
    ``target`` is the round's own and ``target_met`` whether its prune met it (None when the
    round did not prune). ``checkpoint`` is where the round's model was saved, if it was.
    """

    round: int
    arch: str
    parameters: int
    macs: int
    test_acc_pruned: float | None
    val_acc: float
    test_acc: float
    target: str | None = None
    target_met: bool | None = None
    checkpoint: str | None = None

    def to_dict(self, targeted: bool) -> dict[str, Any]:
        """The round's JSON object; ``target``/``target_met`` only when the rounds had a
        target, ``checkpoint`` only when the round was saved."""
        doc = dataclasses.asdict(self)
        if not targeted:
            del doc["target"], doc["target_met"]
        if self.checkpoint is None:
            del doc["checkpoint"]
        return doc


@dataclass(frozen=True)
class RoundsReport(Report):
    """Iterative pruning (``prune-info prune-retrain``): how each round pruned and what every
    round's retrained model measures."""

    FORMAT = "prune-info-prune-retrain"

    criterion: str
    amount_per_round: float | None
    target: str | None
    allocation: str
    rounds: tuple[Round, ...]

    def to_dict(self) -> dict[str, Any]:
        doc = super().to_dict()
        doc["rounds"] = [r.to_dict(self.target is not None) for r in self.rounds]
        return doc

    @classmethod
    def from_fields(cls, doc: dict) -> RoundsReport:
        return cls(criterion=doc["criterion"], amount_per_round=doc["amount_per_round"],
                   target=doc["target"], allocation=doc["allocation"],
                   rounds=tuple(Round(**r) for r in doc["rounds"]))

    def missed(self) -> list[Round]:
        """The rounds whose prune missed its target."""
        return [r for r in self.rounds if r.target_met is False]

    def table(self) -> str:
        lines = [f"{'round':>5}  {'arch':<18} {'params':>9} {'MACs':>9} {'pruned':>9} "
                 f"{'retrained':>9}"]
        lines += [f"{r.round:>5}  {r.arch:<18} {r.parameters:>9,} {r.macs:>9,} "
                  f"{_pct(r.test_acc_pruned):>9} {_pct(r.test_acc):>9}" for r in self.rounds]
        return "\n".join(lines)
