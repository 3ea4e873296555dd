"""The results of a study: statistics over seeds from the per-seed records, as a typed report.

:func:`summarise` turns every scenario's seed records into a :class:`StudyResult` (the study
directory's ``results.json``): per scenario its test accuracy and, per ablation mode and scope
(a layer, or the whole network), a :class:`ScopeResult` of mean ± std curves and the mean gaps
of each ordering against random ablation (Wilcoxon over seeds; Amjad et al., Sec. V); the
Kolmogorov-Smirnov comparisons of random curves between layers and scenarios; every seed's
curves. Each family of tests carries Benjamini-Hochberg q-values (``p_adjusted``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from itertools import combinations
from typing import TYPE_CHECKING, Any

import numpy as np

from prune_info.analysis.stats import MIN_WILCOXON_SEEDS, adjust_p, ks_gap, mean_gap
from prune_info.reports import Report

if TYPE_CHECKING:
    from prune_info.experiments.study import StudyConfig

__all__ = ["ScenarioResult", "ScopeResult", "StudyResult", "summarise"]

RESULTS_FORMAT = "prune-info-study"


@dataclass(frozen=True)
class ScopeResult:
    """One scope (a layer, or the whole network) of one mode of one scenario.

    ``curves`` maps each ordering (``mi:low``, ``random``, ...) to its accuracy after ablating
    k = 0 .. ``units`` units, ``{"mean": [...], "std": [...]}`` over seeds (random: each seed's
    mean over its repeats first). ``gaps`` holds, per ordering and compared ``k``, the mean gap
    against random (``label``, ``k``, ``gap`` in points, ``p_value``, ``text``, ``p_adjusted``).
    """

    units: int
    curves: dict[str, dict[str, list[float]]]
    gaps: list[dict[str, Any]]


@dataclass(frozen=True)
class ScenarioResult:
    """One scenario (activation x regulariser): test accuracy (``mean``, ``std`` over seeds)
    and ``modes[mode][scope]``."""

    test_acc: dict[str, float]
    modes: dict[str, dict[str, ScopeResult]]


@dataclass(frozen=True)
class StudyResult(Report):
    """A study's results (``results.json``): ``config`` (its identity and seeds), the compared
    ``at``, ``scenarios``, ``ks`` (random curves compared: ``a``, ``b``, ``k``, ``gap``,
    ``p_value``, ``text``, ``p_adjusted``), ``per_seed`` (every curve of every seed, counts of
    correct test samples: ``per_seed[scenario][seed][mode][scope][label]``), ``notes`` and the
    ``figures`` drawn (file names in the study directory)."""

    FORMAT = RESULTS_FORMAT

    config: dict[str, Any]
    seeds: list[int]
    at: list[int]
    scenarios: dict[str, ScenarioResult]
    ks: list[dict[str, Any]]
    per_seed: dict[str, Any]
    notes: list[str]
    figures: list[str] = field(default_factory=list)

    def scopes(self) -> Iterator[tuple[str, str, str, ScopeResult]]:
        """``(scenario, mode, scope, result)`` of every scope, in order."""
        for scenario, entry in self.scenarios.items():
            for mode, scopes in entry.modes.items():
                for scope, block in scopes.items():
                    yield scenario, mode, scope, block

    def to_dict(self) -> dict[str, Any]:
        """The document; ``figures`` only once they are drawn."""
        doc = asdict(self)
        if not self.figures:
            del doc["figures"]
        return doc

    @classmethod
    def from_fields(cls, doc: dict) -> StudyResult:
        scenarios = {
            name: ScenarioResult(entry["test_acc"], {
                mode: {scope: ScopeResult(**block) for scope, block in scopes.items()}
                for mode, scopes in entry["modes"].items()})
            for name, entry in doc["scenarios"].items()}
        return cls(config=doc["config"], seeds=doc["seeds"], at=doc["at"], scenarios=scenarios,
                   ks=doc["ks"], per_seed=doc["per_seed"], notes=doc["notes"],
                   figures=doc.get("figures", []))

    def table(self) -> str:
        """Per scenario, mode and scope the compared k (random, then each ordering with its
        gap), then the KS tests and the notes."""
        lines = []
        for scenario, entry in self.scenarios.items():
            acc = entry.test_acc
            lines.append(f"{scenario}: {len(self.seeds)} seeds, test accuracy "
                         f"{_pct(acc['mean'], acc['std'])} %")
            for mode, scopes in entry.modes.items():
                for scope, block in scopes.items():
                    lines.append(f"  {mode} {scope} ({block.units} units)")
                    by_k: dict[int, list[dict]] = {}
                    for gap in block.gaps:
                        by_k.setdefault(gap["k"], []).append(gap)
                    for k, gaps in by_k.items():
                        rnd = block.curves["random"]
                        lines.append(f"    k = {k}: random "
                                     f"{_pct(rnd['mean'][k], rnd['std'][k])} %")
                        width = max(len(g["label"]) for g in gaps)
                        for gap in gaps:
                            curve = block.curves[gap["label"]]
                            lines.append(
                                f"      {gap['label']:<{width}}  "
                                f"{_pct(curve['mean'][k], curve['std'][k])} %  {gap['text']}")
        if self.ks:
            lines.append("random ablation compared (two-sample Kolmogorov-Smirnov):")
            lines += [f"  {test['a']} vs {test['b']}: {test['text']}" for test in self.ks]
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines)


def _pct(mean: float, std: float) -> str:
    return f"{100 * mean:5.1f} ± {100 * std:4.1f}"


def _stack(records: list[dict], mode: str, scope: str, label: str) -> np.ndarray:
    """Accuracy ``[S, K + 1]`` of one curve family (random: each seed's mean over repeats)."""
    rows = []
    for record in records:
        curves = record["curves"][mode]
        counts = np.asarray(curves["counts"][scope][label], dtype=np.float64)
        rows.append(counts.mean(0) / curves["n_samples"])
    return np.stack(rows)


def _mean_std(values: np.ndarray) -> dict[str, list[float]]:
    std = values.std(0, ddof=1) if values.shape[0] > 1 else np.zeros(values.shape[1:])
    return {"mean": values.mean(0).tolist(), "std": std.tolist()}


def summarise(config: StudyConfig, records: dict[str, list[dict]], *, at: Sequence[int],
              wilcoxon: str = "approx") -> StudyResult:
    """Mean ± std curves and statistics from the per-seed records of every scenario.

    Parameters
    ----------
    config : StudyConfig
    records : dict
        ``{scenario: [seed record, ...]}`` as written to ``curves.json``.
    at : list of int
        Numbers of ablated units to compare at.
    wilcoxon : {"approx", "exact", "auto"}
    """
    notes: list[str] = []
    n_seeds = len(config.seeds)
    if at and n_seeds < MIN_WILCOXON_SEEDS:
        notes.append(f"{n_seeds} seeds: Wilcoxon p-values need at least {MIN_WILCOXON_SEEDS} "
                     "seeds to be meaningful and are not reported")
    scenarios: dict[str, ScenarioResult] = {}
    per_seed: dict[str, Any] = {}
    randoms: dict[tuple[str, str, str], np.ndarray] = {}
    for scenario, recs in records.items():
        test_acc = np.asarray([r["test_acc"] for r in recs], dtype=np.float64)
        modes: dict[str, dict[str, ScopeResult]] = {}
        for mode in config.modes:
            first = recs[0]["curves"][mode]
            modes[mode] = {}
            for scope, units in first["units"].items():
                labels = list(first["counts"][scope])
                accs = {label: _stack(recs, mode, scope, label) for label in labels}
                gaps = []
                if "random" in accs:
                    randoms[(scenario, mode, scope)] = accs["random"]
                    for label in labels:
                        if label == "random":
                            continue
                        for k in at:
                            if k > units:
                                continue
                            test = mean_gap(accs[label][:, k], accs["random"][:, k], k,
                                            method=wilcoxon)
                            gaps.append({"label": label, **test.to_dict(),
                                         "text": test.format()})
                modes[mode][scope] = ScopeResult(
                    units, {label: _mean_std(a) for label, a in accs.items()}, gaps)
        scenarios[scenario] = ScenarioResult(
            {"mean": float(test_acc.mean()),
             "std": float(test_acc.std(ddof=1)) if len(recs) > 1 else 0.0}, modes)
        per_seed[scenario] = {
            str(r["seed"]): {mode: r["curves"][mode]["counts"] for mode in config.modes}
            for r in recs}
    result = StudyResult(config={**config.identity(), "seeds": list(config.seeds)},
                         seeds=list(config.seeds), at=list(at), scenarios=scenarios,
                         ks=_ks_comparisons(randoms, at), per_seed=per_seed, notes=notes)
    _adjust_family([gap for *_, block in result.scopes() for gap in block.gaps])
    _adjust_family(result.ks)
    return result


def _adjust_family(tests: list[dict]) -> None:
    """Add ``p_adjusted`` (Benjamini-Hochberg over ``tests``, one family) to each test."""
    for test, q in zip(tests, adjust_p([t.get("p_value") for t in tests])):
        test["p_adjusted"] = q


def _ks_comparisons(randoms: dict[tuple[str, str, str], np.ndarray], at: Sequence[int]) -> list:
    """Random curves compared: between layers of a scenario, and between scenarios."""
    keys = list(randoms)
    pairs = []
    for a, b in combinations(keys, 2):
        same_scenario = a[0] == b[0] and a[1] == b[1]
        same_scope = a[1] == b[1] and a[2] == b[2]
        if same_scenario or same_scope:
            pairs.append((a, b))
    out = []
    for a, b in pairs:
        for k in at:
            if k >= randoms[a].shape[1] or k >= randoms[b].shape[1]:
                continue
            test = ks_gap(randoms[a][:, k], randoms[b][:, k], k)
            out.append({"a": "/".join(a), "b": "/".join(b), **test.to_dict(),
                        "text": test.format()})
    return out
