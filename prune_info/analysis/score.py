"""Scoring one checkpoint: every unit's scores and information, with its coupled groups.

:func:`score_checkpoint` is the one place this job is done — ``prune-info score`` and the
``score`` stage of ``prune-info run`` call it — and returns a :class:`ScoreDocument`, whose
document is the ``prune-info-scores`` JSON of ``score --out`` and whose :meth:`~ScoreDocument.
table` is what ``score`` prints. The computation itself is
:func:`prune_info.criteria.report.score_report` (kept in memory as :attr:`ScoreDocument.report`
for the CSV table and the plots).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from prune_info.checkpoint import Checkpoint
from prune_info.criteria.options import ScoreOptions
from prune_info.criteria.ranking import GROUP_REDUCTIONS, reduce_group
from prune_info.criteria.report import ScoreReport, score_report
from prune_info.data import Dataset, bounded, note
from prune_info.errors import PruneInfoError
from prune_info.io import to_plain
from prune_info.nn import example_input
from prune_info.reports import Report
from prune_info.surgery import unit_groups

__all__ = ["SCORES_FORMAT", "SPLITS", "ScoreDocument", "score_checkpoint"]

SCORES_FORMAT = "prune-info-scores"
#: The splits a checkpoint can be scored on.
SPLITS = ("val", "test", "train")


@dataclass(frozen=True)
class ScoreDocument(Report):
    """Every unit's scores of one checkpoint, as written and printed.

    The fields after ``split`` are those of :meth:`ScoreReport.to_dict
    <prune_info.criteria.report.ScoreReport.to_dict>`, as plain JSON values; ``groups`` holds,
    per coupled group, its members and each criterion's score per group channel (left out of
    the document when there is none). ``report`` is the computation behind it (in memory
    only; None for a document read back from a file).
    """

    FORMAT = SCORES_FORMAT

    model: str | None
    arch: str
    dataset: str
    split: str
    criteria: list[str]
    n_samples: int
    n_classes: int
    quantiser: str
    options: dict[str, Any]
    layers: list[dict[str, Any]]
    warnings: list[str]
    groups: list[dict[str, Any]] = field(default_factory=list)
    report: ScoreReport | None = field(default=None, compare=False, metadata={"json": False})

    def to_dict(self) -> dict:
        doc = super().to_dict()
        if not self.groups:
            del doc["groups"]
        return doc

    def scores(self, criterion: str) -> dict[str, list[float]]:
        """``{layer: score per unit}`` of one criterion."""
        if criterion not in self.criteria:
            raise PruneInfoError(f"the scores hold {', '.join(self.criteria)}, not "
                                 f"{criterion!r}")
        return {layer["name"]: layer["scores"][criterion] for layer in self.layers}

    def score_tensors(self) -> dict[str, dict[str, torch.Tensor]]:
        """``{criterion: {layer: float64 tensor of its units' scores}}`` (NaN where null)."""
        return {c: {layer: torch.tensor([math.nan if v is None else v for v in values],
                                        dtype=torch.float64)
                    for layer, values in self.scores(c).items()} for c in self.criteria}

    def table(self) -> str:
        where = "pre-activation" if self.options.get("pre_activation") else "post-activation"
        lines = [f"{self.arch} on {self.dataset} {self.split} ({self.n_samples} samples, "
                 f"{self.n_classes} classes); {self.quantiser}, {where}; measures in bits"]
        rows = [("layer", "units", "criterion", "min", "median", "mean", "max")]
        notes = {}
        for layer in self.layers:
            s, n = layer["summary"], layer["n_units"]
            for i, (criterion, stats) in enumerate(s["measures"].items()):
                rows.append((layer["name"] if i == 0 else "", str(n) if i == 0 else "",
                             criterion, *(_number(stats[k]) for k in ("min", "median", "mean",
                                                                      "max"))))
            notes[len(rows) - 1] = (f"zero entropy: {s['zero_entropy']} of {n} units "
                                    f"({s['zero_entropy_dead']} dead, "
                                    f"{s['zero_entropy_always_active']} always active)")
            if "above_chance" in s:
                chance = s["above_chance"]
                notes[len(rows) - 1] += (f"; above chance (q <= {chance['q']:g}): MI "
                                         f"{chance['mi']}, KL {chance['kl']} of {n}")
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for index, row in enumerate(rows):
            cells = [cell.ljust(w) if i < 3 else cell.rjust(w)
                     for i, (cell, w) in enumerate(zip(row, widths))]
            lines.append("  ".join(cells).rstrip())
            if index in notes:
                lines.append(" " * (widths[0] + 2) + notes[index])
        lines += [f"coupled, scored together ({group['reduce']} over members): "
                  f"{' + '.join(group['members'])}" for group in self.groups]
        return "\n".join(lines)


def _number(value: float | None) -> str:
    return "nan" if value is None else f"{value:.4f}"  # NaN is written as null


def group_scores(ckpt: Checkpoint, report: ScoreReport, input_shape: Sequence[int],
                 how: str) -> list[dict]:
    """Per coupled group: its members and each criterion's score per group channel.

    A model torch-pruning cannot trace has no groups to report (its layers are scored alone).
    """
    model = ckpt.model
    try:
        groups = unit_groups(model, example_input(model, input_shape))
    except PruneInfoError:
        return []
    out = []
    for group in groups:
        if len(group.members) < 2 or not all(m in report.scores[report.criteria[0]]
                                              for m in group.members):
            continue
        out.append({"root": group.root, "members": list(group.members), "reduce": how,
                    "scores": {c: reduce_group(report.scores[c], group.members, how)
                               for c in report.criteria}})
    return out


def score_checkpoint(ckpt: Checkpoint, data: Dataset, criteria: str | Sequence[str] = (
        "entropy", "mi", "kl"), *, split: str = "val", max_samples: int | None = None,
                     options: ScoreOptions = ScoreOptions(),
                     group_reduce: str = "mean") -> ScoreDocument:
    """Score every unit of ``ckpt``'s model on one split of ``data``.

    Parameters
    ----------
    ckpt : Checkpoint
    data : Dataset
        Its labels in the model's class order (:func:`prune_info.checkpoint.data_for`).
    criteria : str or sequence of str
        Registered criteria (:func:`prune_info.criteria.available_criteria`).
    split : {"val", "test", "train"}
    max_samples : int, optional
        Score on the first ``max_samples`` samples only (said in a note).
    options : ScoreOptions
        Quantisation, reading points, bias correction, null, device.
    group_reduce : {"mean", "max", "first"}
        How the members of a coupled group combine into one score per group channel.

    Raises
    ------
    PruneInfoError
        An unknown split or group reduction, or what scoring refuses.
    """
    if split not in SPLITS:
        raise PruneInfoError(f"unknown `split` {split!r}; choose from {', '.join(SPLITS)}")
    if group_reduce not in GROUP_REDUCTIONS:
        raise PruneInfoError(f"unknown `group_reduce` {group_reduce!r}; choose from "
                             f"{', '.join(GROUP_REDUCTIONS)}")
    samples = getattr(data, split)
    if max_samples is not None:
        samples = bounded(samples, max_samples, "scoring", note)
    model = ckpt.model.to(options.device)
    report = score_report(model, samples, criteria, n_classes=data.n_classes, options=options)
    doc = to_plain(report.to_dict())
    return ScoreDocument(model=ckpt.source, arch=ckpt.spec, dataset=data.name, split=split,
                         **doc, groups=to_plain(group_scores(ckpt, report, data.input_shape,
                                                             group_reduce)),
                         report=report)
