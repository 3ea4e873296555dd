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

What becomes of the units a sub-network leaves out (``rest``):

* ``"removed"`` (the default): they are cut out of the network (physically by
  :func:`~prune_info.pruning.workflow.prune_checkpoint`, or, in :func:`retrain_subnetworks`,
  by zeroing and freezing their outgoing weights, which is the same network);
* ``"frozen"`` (the paper's wording, Sec. 4.2: "re-training the network with initial weights
  based on these neurons. The remaining neurons are frozen during training"): the whole network
  is rewound to its initial weights, the selected units' incoming weights and biases (and the
  classifier) are trained, every other unit stays in the network with its initial weights,
  bit-identical (:class:`prune_info.training.freeze.FrozenEntries`).

:func:`retrain_subnetworks` trains many such sub-networks of one dense MLP at once as one
stacked model (:mod:`prune_info.training.batched`), each with its own masks.

Results are saved after every seed, so an interrupted comparison resumes where it stopped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from prune_info.analysis.stats import adjust_p, mean_gap
from prune_info.checkpoint import Checkpoint
from prune_info.criteria.context import compute_scores
from prune_info.criteria.options import ScoreOptions
from prune_info.criteria.ranking import rank_units
from prune_info.criteria.registry import get_criterion
from prune_info.data import Dataset, in_memory
from prune_info.errors import PruneInfoError
from prune_info.experiments.executor import Executor, LocalExecutor, Task
from prune_info.io import RunDirectory
from prune_info.nn import accuracy, count_parameters, total_macs
from prune_info.pruning.config import PruneConfig
from prune_info.pruning.retrain import RetrainConfig, retrain_checkpoint
from prune_info.pruning.workflow import prune_checkpoint
from prune_info.reports import Report
from prune_info.training.batched import StackedMLP, batchable, train_stacked
from prune_info.training.freeze import unit_masks
from prune_info.training.loop import TrainConfig, fit, train_model
from prune_info.zoo import build_model

RESULTS_FORMAT = "prune-info-comparison"
#: The training settings a comparison's record always holds (see :meth:`CompareConfig.to_dict`).
COMPARE_TRAINING = ("epochs", "optimizer", "lr")
#: What happens to the units a sub-network leaves out (see the module docstring).
REST = ("removed", "frozen")


@dataclass(frozen=True)
class CompareConfig:
    """A comparison: what to train, which criteria, how much to keep, how to retrain.

    ``train`` trains each dense network (its seed is each network's own); the sub-networks are
    retrained ``retrain_epochs`` epochs with the same settings.
    """

    spec: str
    criteria: tuple[str, ...]
    seeds: tuple[int, ...]
    keep: tuple[int, ...] = ()
    amounts: tuple[float, ...] = ()
    act: str = "relu"
    reg: str = "none"
    train: TrainConfig = TrainConfig(epochs=10)
    retrain_epochs: int = 10
    rewind: str | None = "init"
    rest: str = "removed"

    def validate(self) -> None:
        if self.rest not in REST:
            raise PruneInfoError(f"unknown `rest` {self.rest!r}; choose one of {', '.join(REST)}")
        if self.rest == "frozen" and (self.rewind != "init" or not self.keep):
            raise PruneInfoError("`rest`='frozen' retrains the kept units from their initial "
                                 "weights: it needs `rewind`='init' and units to keep (`keep`)")
        if bool(self.keep) == bool(self.amounts):
            raise PruneInfoError("give the units to keep (`keep`) or the fractions to remove "
                                 "(`amounts`), not both and not neither")
        if not self.criteria:
            raise PruneInfoError("name at least one criterion")
        if not self.seeds:
            raise PruneInfoError("`seeds` must be at least 1")
        self.train.validate()
        if self.retrain_epochs < 1:
            raise PruneInfoError("`retrain_epochs` must be at least 1")
        if self.train.seed != 0:
            raise PruneInfoError("each network trains with its own seed (`seeds`): leave "
                                 "`train`'s seed at 0")
        for value in self.amounts:  # each becomes a prune of every seed: refuse before training
            PruneConfig(criterion="random", amount=value).validate()

    @property
    def selections(self) -> list[tuple[str, float]]:
        if self.keep:
            return [("keep", k) for k in self.keep]
        return [("amount", a) for a in self.amounts]

    def to_dict(self) -> dict:
        """The configuration as results.json records it: flat, the training settings as
        top-level keys (``epochs``, ``optimizer``, ``lr``, and any other that is not the
        default)."""
        out: dict[str, Any] = {}
        for name in (f.name for f in fields(self)):
            value = getattr(self, name)
            if name == "train":
                out.update(value.settings(COMPARE_TRAINING))
            else:
                out[name] = list(value) if isinstance(value, tuple) else value
        if out["rest"] == "removed":  # the identity of comparisons made before `rest` existed
            out.pop("rest")
        return out

    @classmethod
    def from_dict(cls, doc: dict) -> CompareConfig:
        """The configuration :meth:`to_dict` recorded."""
        train_fields = {f.name for f in fields(TrainConfig)}
        plain: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v
                                 for k, v in doc.items()}
        train = TrainConfig(**{k: v for k, v in plain.items() if k in train_fields})
        return cls(**{k: v for k, v in plain.items() if k not in train_fields}, train=train)


@dataclass(frozen=True)
class Comparison(Report):
    """Every (seed, criterion, selection) row measured so far: the ``results.json`` of a
    comparison directory (a row is one retrained sub-network: its seed, criterion, selection,
    architecture, size, and its test accuracy against the dense model's)."""

    FORMAT = RESULTS_FORMAT

    config: CompareConfig
    dataset: str
    rows: list[dict] = field(default_factory=list)

    def done_seeds(self) -> set[int]:
        return {row["seed"] for row in self.rows}

    def to_dict(self) -> dict:
        return {"config": self.config.to_dict(), "dataset": self.dataset, "rows": self.rows}

    @classmethod
    def from_fields(cls, doc: dict) -> Comparison:
        return cls(CompareConfig.from_dict(doc["config"]), doc["dataset"], list(doc["rows"]))

    def table(self) -> str:
        return summarise(self).table()


@dataclass(frozen=True)
class ComparisonEntry:
    """One criterion at one selection, over the seeds: test accuracy and the drop against the
    dense model (mean and population std, the drop in percentage points), and against the
    baseline (``gap_pp``: mean paired difference, criterion minus baseline; its Wilcoxon
    ``p_value`` and Benjamini-Hochberg ``p_adjusted`` over the table; ``note`` when no p-value
    could be given)."""

    criterion: str
    selection: str
    value: float
    arch: str
    parameters: int
    macs: int
    n_seeds: int
    test_acc_mean: float
    test_acc_std: float
    drop_pp_mean: float
    drop_pp_std: float
    gap_pp: float | None = None
    p_value: float | None = None
    note: str | None = None
    p_adjusted: float | None = None

    @property
    def label(self) -> str:
        """The selection as the table shows it: ``k=5`` or ``0.5``."""
        return f"{self.value:g}" if self.selection == "amount" else f"k={self.value}"


@dataclass(frozen=True)
class ComparisonTable(Report):
    """The summary of a comparison (``prune-info subnetworks``): one entry per criterion and
    selection; ``out`` is the directory it was written to."""

    FORMAT = "prune-info-subnetworks"

    entries: tuple[ComparisonEntry, ...]
    out: str | None = None

    def to_dict(self) -> dict:
        return {"table": [asdict(e) for e in self.entries], "out": self.out}

    @classmethod
    def from_fields(cls, doc: dict) -> ComparisonTable:
        return cls(tuple(ComparisonEntry(**e) for e in doc["table"]), doc["out"])

    def notes(self) -> list[str]:
        """The distinct notes of the entries, sorted."""
        return sorted({e.note for e in self.entries if e.note})

    def table(self) -> str:
        lines = [f"{'criterion':<13} {'sel.':>6} {'arch':<18} {'test acc':>15} {'drop (pp)':>13} "
                 f"{'vs random':>10} {'p':>8} {'q (BH)':>8}"]
        for e in self.entries:
            gap = "-" if e.gap_pp is None else f"{e.gap_pp:+.2f}"
            p = "-" if e.p_value is None else f"{e.p_value:.2g}"
            q = "-" if e.p_adjusted is None else f"{e.p_adjusted:.2g}"
            lines.append(
                f"{e.criterion:<13} {e.label:>6} {e.arch:<18} "
                f"{100 * e.test_acc_mean:6.2f} ± {100 * e.test_acc_std:5.2f} "
                f"{e.drop_pp_mean:6.2f} ± {e.drop_pp_std:4.2f} {gap:>10} {p:>8} {q:>8}"
            )
        return "\n".join(lines)


def _prune_config(kind: str, value, n_layers: int, criterion: str, seed: int) -> PruneConfig:
    if kind == "keep":
        return PruneConfig(criterion=criterion, keep=(int(value),) * n_layers, seed=seed)
    return PruneConfig(criterion=criterion, amount=float(value), seed=seed)


def _seed_rows(data: Dataset, config: CompareConfig, seed: int, progress: bool) -> list[dict]:
    train = replace(config.train, seed=seed)
    dense = train_model(data, config.spec, config.act, config.reg, train, progress=progress)
    dense_acc = dense.metrics["test_acc"]
    shape = tuple(data.input_shape)
    rows = []
    if config.rest == "frozen":
        return _frozen_rows(data, config, dense, seed, progress)
    for criterion in config.criteria:
        for kind, value in config.selections:
            prune_config = _prune_config(kind, value, len(dense.layers), criterion, seed)
            pruned = prune_checkpoint(dense, data, prune_config).checkpoint
            retrained, report = retrain_checkpoint(
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
                "pruned_test_acc": report.run.before["test_acc"],
                "test_acc": report.run.after["test_acc"],
                "drop_pp": 100.0 * (dense_acc - report.run.after["test_acc"]),
            })
    return rows


def _frozen_rows(data: Dataset, config: CompareConfig, dense: Checkpoint, seed: int,
                 progress: bool) -> list[dict]:
    """The rows of one seed for ``rest="frozen"``: every cell retrained in one stack."""
    shape = tuple(data.input_shape)
    cells, labels = [], []
    options = ScoreOptions(seed=seed)
    for criterion in config.criteria:
        scores = compute_scores(dense.model, data.val, [criterion], n_classes=data.n_classes,
                                options=options)[criterion]
        for _, value in config.selections:
            units = {layer: top_units(s, int(value)) for layer, s in scores.items()}
            cells.append(SubnetCell(units, "frozen"))
            labels.append((criterion, value))
    train = replace(config.train, epochs=config.retrain_epochs, seed=seed)
    outcomes = retrain_subnetworks(dense, data, cells, train, progress=progress)
    dense_acc = dense.metrics["test_acc"]
    params = count_parameters(dense.model)
    macs = total_macs(dense.model, shape)
    return [{
        "seed": seed, "criterion": criterion, "selection": "keep", "value": value,
        "arch": dense.spec, "parameters": params, "macs": macs,
        "dense_test_acc": dense_acc, "dense_parameters": params, "dense_macs": macs,
        "pruned_test_acc": None, "test_acc": out["test_acc"],
        "drop_pp": 100.0 * (dense_acc - out["test_acc"]),
    } for (criterion, value), out in zip(labels, outcomes)]


def top_units(scores: torch.Tensor, k: int) -> tuple[int, ...]:
    """The ``k`` highest-scoring units (ties: the lower index), sorted by index."""
    if not 1 <= k <= scores.shape[0]:
        raise PruneInfoError(f"cannot keep {k} of {scores.shape[0]} units; choose 1 <= k <= "
                             f"{scores.shape[0]}")
    return tuple(sorted(int(u) for u in rank_units(scores, "high")[:k]))


@dataclass(frozen=True)
class SubnetCell:
    """One sub-network to retrain: the units it keeps per hidden layer and what the rest do.

    ``units`` maps every hidden layer (``fc1``, ``fc2``, ...) to the indices it keeps; a layer
    not listed keeps all its units. ``rest`` is one of :data:`REST`.
    """

    units: Mapping[str, Sequence[int]]
    rest: str = "frozen"


def _cell_start(ckpt: Checkpoint, cell: SubnetCell, names: list[str]
                ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Initial state and trainable masks of one cell, in the layout of ``build_model``."""
    if cell.rest not in REST:
        raise PruneInfoError(f"unknown `rest` {cell.rest!r}; choose one of {', '.join(REST)}")
    if ckpt.init_state_dict is None:
        raise PruneInfoError("the checkpoint holds no initial weights; retraining from them "
                             "needs a model trained by prune-info (it stores them)")
    state = {k: v.detach().clone() for k, v in ckpt.init_state_dict.items()}
    assert ckpt.arch is not None  # checked by retrain_subnetworks
    model = build_model(ckpt.arch)
    unknown = sorted(set(cell.units) - set(names[:-1]))
    if unknown:
        raise PruneInfoError(f"`units` names {', '.join(unknown)}, not hidden layers of "
                             f"{ckpt.spec} ({', '.join(names[:-1])})")
    kept = {n: list(cell.units.get(n, range(state[f"{n}.weight"].shape[0])))
            for n in names[:-1]}
    masks = unit_masks(model, kept)
    masks.update({f"{names[-1]}.weight": torch.ones_like(state[f"{names[-1]}.weight"],
                                                          dtype=torch.bool),
                  f"{names[-1]}.bias": torch.ones_like(state[f"{names[-1]}.bias"],
                                                        dtype=torch.bool)})
    if cell.rest == "removed":  # cut out: their outputs reach the next layer through zeros
        for layer, nxt in zip(names[:-1], names[1:]):
            gone = torch.ones(state[f"{layer}.weight"].shape[0], dtype=torch.bool)
            gone[torch.as_tensor(kept[layer], dtype=torch.long)] = False
            state[f"{nxt}.weight"][:, gone] = 0.0
            masks[f"{nxt}.weight"][:, gone] = False
    return state, masks


def retrain_subnetworks(
    ckpt: Checkpoint,
    data: Dataset,
    cells: Sequence[SubnetCell],
    config: TrainConfig,
    *,
    device: torch.device | str = "cpu",
    progress: bool = False,
    batched: bool = True,
) -> list[dict]:
    """Retrain sub-networks of a dense MLP from its initial weights; test accuracy of each.

    Parameters
    ----------
    ckpt : Checkpoint
        The dense MLP (trained by prune-info, so that it stores its initial weights).
    data : Dataset
    cells : sequence of SubnetCell
        The sub-networks: units kept per hidden layer, and ``rest`` ``"frozen"`` (the others
        keep their initial weights, untouched) or ``"removed"`` (the others are cut out).
    config : TrainConfig
        Retraining settings; ``config.seed`` decides shuffling (the same for every cell, so the
        cells are paired).
    device : str or torch.device
    progress : bool
    batched : bool
        Train all cells as one stacked model (default), or one after another.

    Returns
    -------
    list of dict
        Per cell, in order: ``test_acc``, ``val_acc``, ``best_epoch``.

    Examples
    --------
    >>> from prune_info.data import load_dataset
    >>> data = load_dataset("digits")
    >>> dense = train_model(data, "64-12-12-10", config=TrainConfig(epochs=1), progress=False)
    >>> cells = [SubnetCell({"fc1": [0, 1, 2], "fc2": [3, 4, 5]}, rest)
    ...          for rest in ("frozen", "removed")]
    >>> out = retrain_subnetworks(dense, data, cells, TrainConfig(epochs=1))
    >>> [sorted(o) for o in out][0]
    ['best_epoch', 'test_acc', 'val_acc']
    """
    if not cells:
        raise PruneInfoError("`cells` is empty: give at least one sub-network to retrain")
    arch = ckpt.arch
    if arch is None or arch.get("kind") != "mlp" or arch.get("batchnorm"):
        raise PruneInfoError("sub-networks are retrained on prune-info MLPs without BatchNorm; "
                             f"{ckpt.spec or 'this model'} is not one")
    names = [f"fc{i}" for i in range(1, len(arch["hidden"]) + 1)] + ["out"]
    starts = [_cell_start(ckpt, cell, names) for cell in cells]
    seed = int(config.seed)
    if batched and batchable(arch, config) is None:
        stack = StackedMLP(arch, [seed] * len(cells))
        with torch.no_grad():
            for i, name in enumerate(names):
                stack.weights_t[i].copy_(torch.stack([s[f"{name}.weight"].t() for s, _ in starts]))
                stack.biases[i].copy_(torch.stack([s[f"{name}.bias"] for s, _ in starts]))
        trainable = {}
        for i, name in enumerate(names):
            trainable[f"weights_t.{i}"] = torch.stack([m[f"{name}.weight"].t() for _, m in starts])
            trainable[f"biases.{i}"] = torch.stack([m[f"{name}.bias"] for _, m in starts])
        result = train_stacked(stack, data, config, device=device, progress=progress,
                               trainable=trainable)
        test = in_memory(data.test)
        correct = stack.count_correct(test.x.to(device), test.y.to(device))
        return [{"test_acc": float(correct[i]) / len(data.test),
                 "val_acc": float(result.best_val_acc[i]),
                 "best_epoch": int(result.best_epoch[i])} for i in range(len(cells))]
    out = []
    for state, masks in starts:
        model = build_model(arch)
        model.load_state_dict(state)
        res = fit(model, data, config, reg=arch["reg"], device=device, progress=progress,
                  trainable=masks)
        out.append({"test_acc": accuracy(model, data.test, device),
                    "val_acc": float(res.best_val_acc), "best_epoch": int(res.best_epoch)})
    return out


def comparison_directory(out_dir: str | Path) -> RunDirectory:
    """The run directory of a comparison: its ``results.json`` records the configuration (and
    the rows measured so far)."""
    return RunDirectory(out_dir, "results.json", RESULTS_FORMAT, what="a comparison's results",
                        other="a comparison of another configuration",
                        identity_of=_recorded_identity, claims=False)


def _recorded_identity(doc: dict) -> Any:
    """The identity a results.json records (its config and dataset); a config that is not a
    JSON object is returned as it is, for the run directory to refuse."""
    config = doc.get("config")
    return {**config, "dataset": doc.get("dataset")} if isinstance(config, dict) else config


def _identity(config: CompareConfig, dataset: str) -> dict:
    return {**config.to_dict(), "dataset": dataset}


def run_comparison(
    data: Dataset,
    config: CompareConfig,
    out_dir: str | Path | None = None,
    progress: bool = True,
    executor: Executor | None = None,
) -> Comparison:
    """Train, prune, retrain and measure for every seed, criterion and selection.

    Each seed is one :class:`~prune_info.experiments.executor.Task` of ``executor`` (default: in
    this process). With ``out_dir`` (:func:`comparison_directory`), ``results.json`` there is
    rewritten as each seed's rows arrive, in seed order, and a rerun of the same configuration
    skips the seeds already done; another configuration, or a directory of other files, is
    refused.
    """
    config.validate()
    for name in config.criteria:
        get_criterion(name)
    executor = executor or LocalExecutor()
    if out_dir is None:
        return _compare(Comparison(config, data.name), None, data, progress, executor)
    directory = comparison_directory(out_dir)
    with directory.owned(_identity(config, data.name)) as record:
        previous = [] if record is None else Comparison.from_dict(record, directory.record).rows
        return _compare(Comparison(config, data.name, previous), directory.record, data,
                        progress, executor)


def _compare(result: Comparison, path: Path | None, data: Dataset, progress: bool,
             executor: Executor) -> Comparison:
    config = result.config
    done = result.done_seeds()
    order = {seed: i for i, seed in enumerate(config.seeds)}

    def store(task: Task, rows: list[dict]) -> None:
        result.rows.extend(rows)
        result.rows.sort(key=lambda row: order.get(row["seed"], len(order)))
        if path is not None:
            result.write(path)

    show = progress and executor.in_process  # bars of other processes would interleave
    executor.run([Task(f"seed-{seed}", _seed_rows, (data, config, seed, show))
                  for seed in config.seeds if seed not in done], store)
    return result


def summarise(comparison: Comparison, baseline: str = "random") -> ComparisonTable:
    """Mean ± std per criterion and selection, and the Wilcoxon test against ``baseline``.

    ``gap_pp`` is the mean paired difference in test accuracy (criterion minus baseline, in
    percentage points): positive when the criterion's sub-network keeps more accuracy.
    """
    rows = comparison.rows
    entries = []
    for criterion in comparison.config.criteria:
        for kind, value in comparison.config.selections:
            mine = sorted((r for r in rows if r["criterion"] == criterion and r["value"] == value),
                          key=lambda r: r["seed"])
            if not mine:
                continue
            acc = np.array([r["test_acc"] for r in mine])
            drop = np.array([r["drop_pp"] for r in mine])
            entry = ComparisonEntry(
                criterion=criterion, selection=kind, value=value, arch=mine[0]["arch"],
                parameters=mine[0]["parameters"], macs=mine[0]["macs"], n_seeds=len(mine),
                test_acc_mean=float(acc.mean()), test_acc_std=float(acc.std(ddof=0)),
                drop_pp_mean=float(drop.mean()), drop_pp_std=float(drop.std(ddof=0)))
            base = {r["seed"]: r["test_acc"] for r in rows
                    if r["criterion"] == baseline and r["value"] == value}
            paired = [r for r in mine if r["seed"] in base]
            if criterion != baseline and paired:
                test = mean_gap([r["test_acc"] for r in paired],
                                [base[r["seed"]] for r in paired], int(round(float(value))))
                entry = replace(entry, gap_pp=test.gap, p_value=test.p_value, note=test.note)
            entries.append(entry)
    # Benjamini-Hochberg over every comparison of the table
    adjusted = adjust_p([e.p_value for e in entries])
    return ComparisonTable(tuple(replace(e, p_adjusted=q) for e, q in zip(entries, adjusted)))
