"""Ablating one checkpoint: rank its units, cut them away cumulatively, read the accuracy.

:func:`ablate_checkpoint` is the one place this job is done — ``prune-info ablate``, the
``ablate`` stage of ``prune-info run`` and every seed of a ``study`` call it — and returns an
:class:`AblationReport`, whose document is the ``prune-info-ablation`` JSON of ``ablate --out``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from prune_info.analysis.curves import (
    ORDERS,
    CurveSet,
    check_at_k,
    compute_curves,
    default_at_k,
    nearest_k,
    spaced_ks,
    unit_means,
)
from prune_info.checkpoint import Checkpoint
from prune_info.criteria.context import compute_scores
from prune_info.criteria.options import ScoreOptions
from prune_info.criteria.ranking import tie_warnings
from prune_info.data import Dataset, bounded, note
from prune_info.errors import PruneInfoError
from prune_info.nn import resolve_layers
from prune_info.reports import Report

__all__ = ["MODES", "AblationConfig", "AblationReport", "ablate_checkpoint"]

MODES = ("layerwise", "network")


@dataclass(frozen=True)
class AblationConfig:
    """What to ablate and how.

    Attributes
    ----------
    criteria : tuple of str
        Criteria ranking the units, scored on the validation split (empty: random only).
    orders : tuple of str
        ``low`` (lowest-ranked first) and / or ``high``.
    random : int
        Seeded random orderings, the band the criteria are compared with.
    modes : tuple of str
        ``layerwise`` (within each layer) and / or ``network`` (all layers ranked together).
    layers : tuple of str, optional
        The layers to ablate (default: every prunable layer).
    ablate_to : {"zero", "mean"}
        An ablated unit's output becomes 0, or its mean over the training split.
    steps : int, optional
        Compute each curve at this many evenly spaced ``k`` (0 to the scope's units).
    at_k : tuple of int, optional
        Compute each curve at these ``k`` (sorted, at least two), on every scope.
    every_k : bool
        With neither ``steps`` nor ``at_k``: every ``k`` on every scope, however wide; by
        default (False) wide scopes get evenly spaced points
        (:func:`~prune_info.analysis.curves.default_at_k`).
    at : tuple of int
        ``k`` at which the report gives each criterion's gap to random ablation.
    max_samples : int, optional
        Test samples kept in memory (default: all of an in-memory split, the first 10,000 of
        a streamed one).
    bins, seed, device
        Quantisation bins of the information criteria, seed of every random choice, where to
        compute.
    """

    criteria: tuple[str, ...] = ("entropy", "mi", "kl")
    orders: tuple[str, ...] = ("low", "high")
    random: int = 20
    modes: tuple[str, ...] = ("layerwise",)
    layers: tuple[str, ...] | None = None
    ablate_to: str = "zero"
    steps: int | None = None
    at_k: tuple[int, ...] | None = None
    every_k: bool = False
    at: tuple[int, ...] = ()
    max_samples: int | None = None
    bins: int = 2
    seed: int = 0
    device: str = "cpu"

    def validate(self) -> None:
        """Refuse a configuration with nothing to do or contradicting itself."""
        bad = [m for m in self.modes if m not in MODES] or [o for o in self.orders
                                                            if o not in ORDERS]
        if bad or not self.modes:
            raise PruneInfoError(f"unknown mode or order {bad[0] if bad else None!r}; `modes` "
                                 f"are {', '.join(MODES)}, `orders` {', '.join(ORDERS)}")
        if not self.criteria and self.random == 0:
            raise PruneInfoError("nothing to ablate: give `criteria` or `random`=R")
        if self.at and self.random == 0:
            raise PruneInfoError("`at` compares with random ablation, but `random` is 0; pass "
                                 "`random`=R")
        if self.steps is not None and self.at_k is not None:
            raise PruneInfoError("`steps` and `at_k` both choose the points; give one of them")

    def scope_points(self, n: int, scope: str, kind: str) -> list[int] | None:
        """The ``k`` computed on one scope of ``n`` units (None: every ``k``)."""
        if self.at_k is not None:
            return check_at_k(list(self.at_k), n, scope, what="`at_k`")
        if self.steps is not None:
            return check_at_k(spaced_ks(n, self.steps, scope, what="`steps`"), n, scope)
        return None if self.every_k else default_at_k(n, kind)


def mean_accuracy(curves: CurveSet, scope: str, label: str) -> torch.Tensor:
    """The accuracy at each computed ``k`` of one curve, averaged over its orderings."""
    return (curves.counts[scope][label].double() / curves.n_samples).mean(0)


@dataclass(frozen=True)
class AblationReport(Report):
    """The curves of one checkpoint, by mode, with what they were computed on.

    ``curves`` maps a mode to its :class:`~prune_info.analysis.curves.CurveSet`; the
    document's ``gaps`` are the rows of :meth:`gap_rows` at ``at``. In memory only: the
    ``scores`` the units were ranked by, and ``warnings`` naming criteria tied on most of a
    layer (their ranking there is the tie-break order).
    """

    FORMAT = "prune-info-ablation"

    model: str | None
    arch: str
    dataset: str
    seed: int
    curves: dict[str, CurveSet]
    at: tuple[int, ...] = ()
    max_samples: int | None = None
    scores: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict,
                                                       metadata={"json": False})
    warnings: tuple[str, ...] = field(default=(), metadata={"json": False})

    def gap_rows(self, curves: CurveSet, scope: str) -> list[dict]:
        """Each criterion's gap to the random mean at every ``k`` of :attr:`at` (the
        nearest computed ``k`` on a sparse curve, said so)."""
        by_label = curves.counts[scope]
        if "random" not in by_label:
            return []
        ks = curves.ks(scope)
        rnd = mean_accuracy(curves, scope, "random")
        rows = []
        for label in by_label:
            if label == "random":
                continue
            mean = mean_accuracy(curves, scope, label)
            for wanted in self.at:
                i = nearest_k(ks, wanted)
                k = ks[i]
                gap = 100.0 * float(mean[i] - rnd[i])
                near = "" if k == wanted else f", the computed k nearest {wanted}"
                row: dict[str, Any] = {
                    "label": label, "k": k, "gap": gap,
                    "text": f"gap@{k} = {gap:.1f} points (one model: no p-value; use "
                            f"prune-info study{near})"}
                if k != wanted:
                    row["requested_k"] = wanted
                rows.append(row)
        return rows

    def to_dict(self) -> dict:
        doc: dict[str, Any] = {"model": self.model, "arch": self.arch, "dataset": self.dataset,
                               "split": "test", "seed": self.seed, "modes": {}}
        for mode, curves in self.curves.items():
            scopes = {}
            for scope, by_label in curves.counts.items():
                entry: dict[str, Any] = {"units": curves.units[scope], "counts": {},
                                         "accuracy": {}}
                if scope in curves.at_k:
                    entry["at_k"] = curves.ks(scope)
                for label, counts in by_label.items():
                    acc = counts.double() / curves.n_samples
                    entry["counts"][label] = counts.tolist()
                    entry["accuracy"][label] = {"mean": mean_accuracy(curves, scope,
                                                                      label).tolist(),
                                                "std": acc.std(0).tolist() if acc.shape[0] > 1
                                                else None}
                entry["gaps"] = self.gap_rows(curves, scope)
                scopes[scope] = entry
            doc["modes"][mode] = {"ablate_to": curves.ablate_to,
                                  "n_samples": curves.n_samples, "scopes": scopes}
        if self.max_samples is not None:
            doc["max_samples"] = self.max_samples
        return doc

    @classmethod
    def from_fields(cls, doc: dict) -> AblationReport:
        curves = {}
        at: set[int] = set()
        for mode, block in doc["modes"].items():
            scopes = block["scopes"]
            curves[mode] = CurveSet.from_dict({
                "mode": mode, "ablate_to": block["ablate_to"], "n_samples": block["n_samples"],
                "units": {scope: entry["units"] for scope, entry in scopes.items()},
                "counts": {scope: entry["counts"] for scope, entry in scopes.items()},
                "at_k": {scope: entry["at_k"] for scope, entry in scopes.items()
                         if "at_k" in entry}})
            at |= {int(g.get("requested_k", g["k"])) for entry in scopes.values()
                   for g in entry.get("gaps", [])}
        return cls(model=doc.get("model"), arch=str(doc["arch"]), dataset=str(doc["dataset"]),
                   seed=int(doc["seed"]), curves=curves, at=tuple(sorted(at)),
                   max_samples=doc.get("max_samples"))

    def table(self) -> str:
        first = (f" (first {self.max_samples} samples)" if self.max_samples is not None
                 else "")
        lines = [f"{self.arch} on {self.dataset} test set{first}: accuracy [%] after ablating "
                 "k units"]
        for mode, curves in self.curves.items():
            for scope, by_label in curves.counts.items():
                n = curves.units[scope]
                computed = curves.ks(scope)
                gaps = self.gap_rows(curves, scope)
                wanted = {0, n // 4, n // 2, (3 * n) // 4, n} | {g["k"] for g in gaps}
                columns = sorted({nearest_k(computed, k) for k in wanted})
                name = scope if mode == "layerwise" else "whole network"
                points = f", {len(computed)} points" if scope in curves.at_k else ""
                lines.append(f"{name} ({n} units, ablation to {curves.ablate_to}{points})")
                width = max(len(label) for label in by_label)
                lines.append("  " + "k".ljust(width)
                             + "".join(f"{computed[i]:>8}" for i in columns))
                for label in by_label:
                    mean = mean_accuracy(curves, scope, label)
                    lines.append(f"  {label:<{width}}"
                                 + "".join(f"{100 * float(mean[i]):8.1f}" for i in columns))
                lines.extend(f"  {gap['label']}: {gap['text']}" for gap in gaps)
        return "\n".join(lines)


def ablate_checkpoint(ckpt: Checkpoint, data: Dataset, config: AblationConfig, *,
                      scores: Mapping[str, Mapping[str, torch.Tensor]] | None = None,
                      progress: bool = False) -> AblationReport:
    """Cumulative-ablation curves of one checkpoint on ``data``'s test split.

    Units are ranked on the validation split by ``config.criteria`` (or by ``scores`` already
    computed, ``{criterion: {layer: scores}}``), then ablated ``k`` at a time in each order,
    next to ``config.random`` random orders, in each mode.

    Raises
    ------
    PruneInfoError
        A configuration that contradicts itself (:meth:`AblationConfig.validate`), a ``k`` of
        ``at`` or ``points`` beyond a scope's units, an unknown layer.
    """
    config.validate()
    model = ckpt.model.to(config.device).eval()
    infos = resolve_layers(model, list(config.layers) if config.layers else None)
    names = [info.name for info in infos]
    kinds = {info.name: info.kind for info in infos}
    sizes: dict[str, int] = {}
    if "layerwise" in config.modes:
        sizes.update({info.name: info.n_units for info in infos})
    if "network" in config.modes:
        sizes["network"] = sum(info.n_units for info in infos)
        kinds["network"] = "linear" if all(k == "linear" for k in kinds.values()) else "conv"
    for k in config.at:
        for scope, n in sizes.items():
            if k > n:
                raise PruneInfoError(f"`at`={k} is beyond the {n} units of {scope}; choose "
                                     f"k <= {n}")
    points = {scope: config.scope_points(n, scope, kinds[scope]) for scope, n in sizes.items()}
    test = bounded(data.test, config.max_samples, "the ablation curves", note)
    warnings: list[str] = []
    if scores is None:
        scores = {}
        if config.criteria:
            scores = compute_scores(model, data.val, list(config.criteria),
                                    n_classes=data.n_classes, layers=names,
                                    options=ScoreOptions(bins=config.bins, seed=config.seed,
                                                         device=config.device))
            warnings = tie_warnings(scores)
    means = (unit_means(model, data.train, names, device=config.device)
             if config.ablate_to == "mean" else None)
    curves = {}
    for mode in config.modes:
        mode_points = {scope: ks for scope, ks in points.items()
                       if (scope == "network") == (mode == "network")}
        curves[mode] = compute_curves(model, test, scores, orders=config.orders,
                                      random=config.random, seed=config.seed, mode=mode,
                                      layers=names, ablate_to=config.ablate_to, means=means,
                                      device=config.device, progress=progress,
                                      at_k=mode_points)
    return AblationReport(
        model=ckpt.source, arch=ckpt.spec, dataset=data.name, seed=config.seed, curves=curves,
        at=tuple(config.at), max_samples=len(test) if len(test) < len(data.test) else None,
        scores={c: dict(s) for c, s in scores.items()}, warnings=tuple(warnings))
