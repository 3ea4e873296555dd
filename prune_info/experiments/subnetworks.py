"""Criteria compared by what survives retraining: prune, retrain, measure, over seeds.

For every seed a dense network is trained; for every criterion and every selection (units kept
per layer, or a fraction removed) it is pruned layer-wise and retrained, and the test accuracy is
recorded. :func:`summarise` gives mean ± std per criterion and selection, the accuracy drop
against the dense model, and the Wilcoxon signed-rank test against random selection, paired by
seed.

Two uses:

* the experiment of Clauw et al. (Sec. 4.2, Fig. 2): keep the ``k`` best units of every layer by
  synergy, GC-MI, MI / KL / entropy, magnitude or at random, rewind the sub-network to its
  initial weights and train it again (lottery-ticket retraining, ``rewind="init"``);
* the headline compression table (``benchmarks/bench_compression.py``): remove 50 / 75 / 90 % of
  the units and fine-tune with the same budget (``rewind=None``).

Results are saved after every seed, so an interrupted comparison resumes where it stopped.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from prune_info.analysis.stats import mean_gap
from prune_info.criteria.registry import get_criterion
from prune_info.data import Dataset
from prune_info.errors import PruneInfoError
from prune_info.io import check_writable_dir, run_lock, write_json
from prune_info.nn import count_parameters, total_macs
from prune_info.pruning.retrain import RetrainConfig, retrain_checkpoint
from prune_info.pruning.workflow import PruneConfig, prune_checkpoint
from prune_info.training.loop import TrainConfig, train_model

RESULTS_FORMAT = "prune-info-comparison"


@dataclass(frozen=True)
class CompareConfig:
    """A comparison: what to train, which criteria, how much to keep, how to retrain."""

    spec: str
    criteria: tuple[str, ...]
    seeds: tuple[int, ...]
    keep: tuple[int, ...] = ()
    amounts: tuple[float, ...] = ()
    act: str = "relu"
    reg: str = "none"
    epochs: int = 10
    optimizer: str = "rmsprop"
    lr: float = 1e-3
    retrain_epochs: int = 10
    rewind: str | None = "init"

    def validate(self) -> None:
        if bool(self.keep) == bool(self.amounts):
            raise PruneInfoError("give the units to keep (`keep`) or the fractions to remove "
                                 "(`amounts`), not both and not neither")
        if not self.criteria:
            raise PruneInfoError("name at least one criterion")
        if not self.seeds:
            raise PruneInfoError("`seeds` must be at least 1")
        if self.epochs < 1 or self.retrain_epochs < 1:
            raise PruneInfoError("`epochs` and `retrain_epochs` must be at least 1")

    @property
    def selections(self) -> list[tuple[str, float]]:
        if self.keep:
            return [("keep", k) for k in self.keep]
        return [("amount", a) for a in self.amounts]

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


@dataclass
class Comparison:
    """Every (seed, criterion, selection) row measured so far."""

    config: CompareConfig
    dataset: str
    rows: list[dict] = field(default_factory=list)

    def done_seeds(self) -> set[int]:
        return {row["seed"] for row in self.rows}


def _prune_config(kind: str, value, n_layers: int, criterion: str, seed: int) -> PruneConfig:
    if kind == "keep":
        return PruneConfig(criterion=criterion, keep=(int(value),) * n_layers, seed=seed)
    return PruneConfig(criterion=criterion, amount=float(value), seed=seed)


def _seed_rows(data: Dataset, config: CompareConfig, seed: int, progress: bool) -> list[dict]:
    train = TrainConfig(epochs=config.epochs, optimizer=config.optimizer, lr=config.lr, seed=seed)
    dense = train_model(data, config.spec, config.act, config.reg, train, progress=progress)
    dense_acc = dense.metrics["test_acc"]
    shape = tuple(data.input_shape)
    rows = []
    for criterion in config.criteria:
        for kind, value in config.selections:
            prune_config = _prune_config(kind, value, len(dense.layers), criterion, seed)
            pruned = prune_checkpoint(dense, data, prune_config).checkpoint
            retrained, summary = retrain_checkpoint(
                pruned, data,
                RetrainConfig(epochs=config.retrain_epochs, rewind=config.rewind, seed=seed),
                progress=progress,
            )
            rows.append({
                "seed": seed, "criterion": criterion, "selection": kind, "value": value,
                "arch": retrained.spec,
                "parameters": count_parameters(retrained.model),
                "macs": total_macs(retrained.model, shape),
                "dense_test_acc": dense_acc,
                "dense_parameters": count_parameters(dense.model),
                "dense_macs": total_macs(dense.model, shape),
                "pruned_test_acc": summary["before"]["test_acc"],
                "test_acc": summary["after"]["test_acc"],
                "drop_pp": 100.0 * (dense_acc - summary["after"]["test_acc"]),
            })
    return rows


def _load_previous(path: Path, config: CompareConfig, dataset: str) -> list[dict]:
    if not path.exists():
        return []
    try:
        saved = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise PruneInfoError(
            f"{path} is unreadable ({exc}); remove it or choose another `out_dir`") from exc
    if saved.get("config") != config.to_dict() or saved.get("dataset") != dataset:
        raise PruneInfoError(
            f"{path.parent} holds a comparison with another configuration; choose another "
            "`out_dir` (results of different runs are never mixed)"
        )
    return list(saved.get("rows", []))


def run_comparison(
    data: Dataset,
    config: CompareConfig,
    out_dir: str | Path | None = None,
    progress: bool = True,
) -> Comparison:
    """Train, prune, retrain and measure for every seed, criterion and selection.

    With ``out_dir``, ``results.json`` there is rewritten after every seed and a rerun of the
    same configuration skips the seeds already done; another configuration is refused.
    """
    config.validate()
    for name in config.criteria:
        get_criterion(name)
    if out_dir is None:
        return _compare(data, config, None, progress)
    check_writable_dir(out_dir)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    with run_lock(out_dir):
        return _compare(data, config, Path(out_dir) / "results.json", progress)


def _compare(data: Dataset, config: CompareConfig, path: Path | None,
             progress: bool) -> Comparison:
    result = Comparison(config, data.name)
    if path is not None:
        result.rows = _load_previous(path, config, data.name)
    for seed in config.seeds:
        if seed in result.done_seeds():
            continue
        result.rows.extend(_seed_rows(data, config, seed, progress))
        if path is not None:
            write_json({"config": config.to_dict(), "dataset": data.name, "rows": result.rows},
                       path, RESULTS_FORMAT)
    return result


def summarise(comparison: Comparison, baseline: str = "random") -> list[dict]:
    """Mean ± std per criterion and selection, and the Wilcoxon test against ``baseline``.

    ``gap_pp`` is the mean paired difference in test accuracy (criterion minus baseline, in
    percentage points): positive when the criterion's sub-network keeps more accuracy.
    """
    rows = comparison.rows
    table = []
    for criterion in comparison.config.criteria:
        for kind, value in comparison.config.selections:
            mine = sorted((r for r in rows if r["criterion"] == criterion and r["value"] == value),
                          key=lambda r: r["seed"])
            if not mine:
                continue
            acc = np.array([r["test_acc"] for r in mine])
            drop = np.array([r["drop_pp"] for r in mine])
            entry = {
                "criterion": criterion, "selection": kind, "value": value,
                "arch": mine[0]["arch"], "parameters": mine[0]["parameters"],
                "macs": mine[0]["macs"], "n_seeds": len(mine),
                "test_acc_mean": float(acc.mean()), "test_acc_std": float(acc.std(ddof=0)),
                "drop_pp_mean": float(drop.mean()), "drop_pp_std": float(drop.std(ddof=0)),
                "gap_pp": None, "p_value": None, "note": None,
            }
            base = {r["seed"]: r["test_acc"] for r in rows
                    if r["criterion"] == baseline and r["value"] == value}
            paired = [r for r in mine if r["seed"] in base]
            if criterion != baseline and paired:
                test = mean_gap([r["test_acc"] for r in paired],
                                [base[r["seed"]] for r in paired], int(round(float(value))))
                entry.update(gap_pp=test.gap, p_value=test.p_value, note=test.note)
            table.append(entry)
    return table


def format_table(table: list[dict]) -> str:
    """The summary as a fixed-width text table."""
    lines = [f"{'criterion':<13} {'sel.':>6} {'arch':<18} {'test acc':>15} {'drop (pp)':>13} "
             f"{'vs random':>10} {'p':>8}"]
    for e in table:
        sel = f"{e['value']:g}" if e["selection"] == "amount" else f"k={e['value']}"
        gap = "-" if e["gap_pp"] is None else f"{e['gap_pp']:+.2f}"
        p = "-" if e["p_value"] is None else f"{e['p_value']:.2g}"
        lines.append(
            f"{e['criterion']:<13} {sel:>6} {e['arch']:<18} "
            f"{100 * e['test_acc_mean']:6.2f} ± {100 * e['test_acc_std']:5.2f} "
            f"{e['drop_pp_mean']:6.2f} ± {e['drop_pp_std']:4.2f} {gap:>10} {p:>8}"
        )
    return "\n".join(lines)
