"""Multi-seed ablation studies: train S networks per scenario, score, ablate, compare.

A study reproduces the experimental protocol of Amjad, Liu & Geiger (Sec. V): for every scenario
(activation x regulariser) it trains S networks that differ only in their seed, computes the
information measures of every unit on the validation set, draws every cumulative ablation curve on
the test set (each criterion ablated low-first and high-first, and random orderings), and reports

* mean +- std curves over seeds (random: each seed's mean over its random repeats first),
* at chosen numbers of ablated units ``k``, the mean gap ``MG@k`` between each information
  ordering and random ablation with the Wilcoxon signed-rank p-value over seeds,
* the two-sample Kolmogorov-Smirnov comparison of random curves between layers of a scenario and
  between scenarios,

as JSON (all curves of all seeds, and the statistics), a table and figures.

Resuming
--------
The study directory holds ``config.json`` (the configuration that fixes the results) and, per
scenario and seed, ``<act>-<reg>/seed-NNNN/model.pt`` and ``.../curves.json``, each written
atomically the moment it is complete. Seeds are trained as one batched model
(:mod:`prune_info.training.batched`), so "a finished seed" means a finished *batch* of seeds;
while a batch
trains, its whole state is saved after every epoch (``train-state-*.pt``), so an interruption
(Ctrl-C, crash, ``kill -9``) costs at most the epoch in progress. Running the same command again
skips every finished seed and continues the interrupted batch from its last epoch, with the
same results as an uninterrupted run.

A directory whose ``config.json`` differs from the requested configuration is refused. The list of
seeds is not part of the configuration: asking for more seeds later adds them, asking for fewer
reports on those only.

Executors
---------
The work is cut into tasks (:mod:`prune_info.experiments.executor`): one training task per batch
of seeds of a scenario (``seed_batch`` seeds, or all missing ones; the batches are fixed by the
configuration and by the batch an interrupted run left, never by the executor), returning the
trained models, then one curve task per seed, returning its record. All training tasks run
before the curve tasks. The driver, holding the directory's lock, stores each result as it
arrives, so a study can start with the local executor and finish on Ray (or the reverse), with
the same numbers. Tasks write nothing themselves, except the per-epoch training state: tasks
keep it only where they see the study directory (the local executor; a Ray cluster whose nodes
are all this machine). On a cluster of several machines a training task interrupted mid-batch
starts its batch again from the first epoch; finished batches and seeds are never redone.

Examples
--------
>>> config = StudyConfig(data="digits", arch="64-32-24-10", seeds=(0, 1, 2),
...                      train=TrainConfig(epochs=1), random=4)
>>> results = run_study(config, "study-digits", progress=False)      # doctest: +SKIP
>>> fc1 = results.scenarios["relu-l2"].modes["layerwise"]["fc1"]    # doctest: +SKIP
>>> fc1.gaps[0]["text"]                                             # doctest: +SKIP
'MG@19 = 3.1, p = n/a'
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from prune_info.analysis.ablate import AblationConfig, ablate_checkpoint
from prune_info.analysis.curves import ABLATE_TO, ORDERS
from prune_info.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from prune_info.criteria.registry import parse_criteria
from prune_info.data import Dataset, in_memory, load_dataset, parse_data_spec
from prune_info.errors import PruneInfoError
from prune_info.experiments.executor import (
    Executor,
    LocalExecutor,
    ProgressBar,
    Task,
    gpus_for,
)
from prune_info.experiments.study_results import StudyResult, summarise
from prune_info.io import RunDirectory, atomic_write, read_json, write_json
from prune_info.training.batched import batchable, train_seeds
from prune_info.training.loop import TrainConfig
from prune_info.viz.ablation import plot_ablation
from prune_info.zoo import ACTIVATIONS, REGULARISERS, parse_arch

__all__ = [
    "MODES", "StudyConfig", "StudyPaths", "StudyResult", "default_at", "run_study", "summarise",
]

CONFIG_FORMAT = "prune-info-study-config"
SEED_FORMAT = "prune-info-study-seed"
#: The training settings a study chooses (its identity holds them as top-level keys), and those
#: it fixes itself.
STUDY_TRAINING = ("epochs", "batch_size", "optimizer", "lr", "momentum", "weight_decay")
STUDY_FIXED_TRAINING = ("seed", "save_rewind_steps", "schedule", "augment")
#: Ablation modes: one curve family per layer, or one across all layers.
MODES = ("layerwise", "network")


@dataclass(frozen=True)
class StudyConfig:
    """Everything that determines a study's numbers.

    Parameters
    ----------
    data : str
        Dataset name (:data:`prune_info.data.DATASETS`).
    arch : str
        Architecture spec, e.g. ``784-100-100-10``.
    acts, regs : tuple of str
        The scenario grid: every activation with every regulariser.
    seeds : tuple of int
        Seeds of the networks (initialisation, shuffling, dropout, random orderings).
    train : TrainConfig
        How every network trains: epochs, batch size, optimiser, learning rate, momentum, weight
        decay (:class:`prune_info.training.loop.TrainConfig`; its ``seed`` is each network's own
        and is not set here; the batched trainer runs a constant schedule without
        augmentation, so those stay at their defaults).
    split_seed : int
        Seed of the train / validation split, the same for every network.
    criteria : tuple of str
        Registered criteria ranking the units (computed on the validation set).
    orders : tuple of {"low", "high"}
    random : int
        Random orderings per seed and scope.
    modes : tuple of {"layerwise", "network"}
    ablate_to : {"zero", "mean"}
    bins : int
        Quantisation bins of the information measures (2 = the paper's 1-bit quantiser).
    batchnorm : bool or None
        BatchNorm after each hidden layer (None: only for ``bn-dropout``).
    """

    data: str = "fashion-mnist"
    arch: str = "784-100-100-10"
    acts: tuple[str, ...] = ("relu",)
    regs: tuple[str, ...] = ("l2",)
    seeds: tuple[int, ...] = tuple(range(50))
    train: TrainConfig = TrainConfig()
    split_seed: int = 0
    criteria: tuple[str, ...] = ("entropy", "mi", "kl")
    orders: tuple[str, ...] = ("low", "high")
    random: int = 20
    modes: tuple[str, ...] = ("layerwise",)
    ablate_to: str = "zero"
    bins: int = 2
    batchnorm: bool | None = None

    def validate(self) -> None:
        """Check every field; raises :class:`PruneInfoError` naming the first problem."""
        parse_data_spec(self.data)
        for act in self.acts:
            if act not in ACTIVATIONS:
                raise PruneInfoError(f"unknown activation {act!r}; choose from: "
                                     f"{', '.join(ACTIVATIONS)}")
        for reg in self.regs:
            if reg not in REGULARISERS:
                raise PruneInfoError(f"unknown regularisation {reg!r}; choose from: "
                                     f"{', '.join(REGULARISERS)}")
        for name, values in (("`acts`", self.acts), ("`regs`", self.regs),
                             ("`orders`", self.orders), ("`criteria`", self.criteria),
                             ("`seeds`", self.seeds)):
            if len(set(values)) != len(values):
                raise PruneInfoError(f"{name} repeats a value: {', '.join(map(str, values))}")
        if not self.acts or not self.regs:
            raise PruneInfoError("a study needs at least one activation (`acts`) and one "
                                 "regularisation (`regs`)")
        if not self.seeds:
            raise PruneInfoError("a study needs at least one seed (`seeds`)")
        if any(s < 0 for s in self.seeds):
            raise PruneInfoError("seeds must be 0 or more")
        self.train.validate()
        fixed = [f"`{k}`" for k in STUDY_FIXED_TRAINING
                 if getattr(self.train, k) != getattr(TrainConfig(), k)]
        if fixed:
            raise PruneInfoError(f"a study sets {', '.join(fixed)} of `train` itself (each "
                                 "network's seed; a constant schedule, no augmentation, no "
                                 "rewind steps): leave them at their defaults")
        parse_criteria(list(self.criteria)) if self.criteria else None
        bad = [o for o in self.orders if o not in ORDERS]
        if bad or not self.orders:
            raise PruneInfoError(f"`orders` takes low and/or high, got {','.join(self.orders)}")
        if self.random < 0:
            raise PruneInfoError(f"`random` must be 0 or more, got {self.random}")
        if not self.criteria and self.random == 0:
            raise PruneInfoError("nothing to ablate: give `criteria` or `random`=R")
        if not self.modes or any(m not in MODES for m in self.modes):
            raise PruneInfoError(f"modes must be layerwise and/or network, got {self.modes}")
        if self.ablate_to not in ABLATE_TO:
            raise PruneInfoError(f"`ablate_to` takes zero or mean, got {self.ablate_to!r}")
        if self.bins < 2:
            raise PruneInfoError(f"`bins` must be at least 2, got {self.bins}")

    def identity(self) -> dict:
        """The fields a study directory must agree on (all but the seeds), the training
        settings among them as top-level keys (the layout of every study's config.json)."""
        out: dict[str, Any] = {}
        for name, value in asdict(self).items():
            if name == "train":
                out.update(self.train.settings(STUDY_TRAINING))
            elif name != "seeds":
                out[name] = value
        return json.loads(json.dumps(out))  # tuples -> lists, as read back from JSON

    def scenarios(self) -> list[tuple[str, str]]:
        """``(act, reg)`` pairs in grid order."""
        return [(act, reg) for act in self.acts for reg in self.regs]


def scenario_name(act: str, reg: str) -> str:
    return f"{act}-{reg}"


def default_at(units: Sequence[int]) -> list[int]:
    """The paper's point of comparison: 80 % of the smallest layer (80 for 100 units)."""
    return [max(1, int(round(0.8 * min(units))))]


# --------------------------------------------------------------------------------------------
# The directory


@dataclass(frozen=True)
class StudyPaths:
    """Where a study keeps its files."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.json"

    def scenario(self, name: str) -> Path:
        return self.root / name

    def seed_dir(self, scenario: str, seed: int) -> Path:
        return self.root / scenario / f"seed-{seed:04d}"

    def model(self, scenario: str, seed: int) -> Path:
        return self.seed_dir(scenario, seed) / "model.pt"

    def curves(self, scenario: str, seed: int) -> Path:
        return self.seed_dir(scenario, seed) / "curves.json"

    def train_state(self, scenario: str, seeds: Sequence[int], identity: dict) -> Path:
        key = json.dumps({"seeds": list(seeds), "config": identity}, sort_keys=True)
        digest = hashlib.sha256(key.encode()).hexdigest()[:12]
        return self.root / scenario / f"train-state-{digest}.pt"


def study_directory(root: str | os.PathLike) -> RunDirectory:
    """The run directory of a study: ``config.json`` records its configuration."""
    return RunDirectory(root, StudyPaths(Path(root)).config.name, CONFIG_FORMAT,
                        what="a study configuration")


# --------------------------------------------------------------------------------------------
# Running


def _emit(on_event, kind: str, **details) -> None:
    if on_event is not None:
        on_event(kind, details)


def _seed_record(config: StudyConfig, ckpt, data: Dataset, device, seed: int) -> dict:
    """Scores on the validation set and every curve on the test set, for one trained seed."""
    report = ablate_checkpoint(
        ckpt, replace(data, test=in_memory(data.test)),
        AblationConfig(criteria=tuple(config.criteria), orders=tuple(config.orders),
                       random=config.random, modes=tuple(config.modes),
                       ablate_to=config.ablate_to, every_k=True, bins=config.bins, seed=seed,
                       device=str(device)))
    scores = report.scores
    curves = {mode: curve_set.to_dict() for mode, curve_set in report.curves.items()}
    return {
        "seed": seed,
        "test_acc": ckpt.metrics.get("test_acc"),
        "val_acc": ckpt.metrics.get("val_acc"),
        "best_epoch": ckpt.metrics.get("best_epoch"),
        "trained": ckpt.metrics.get("trained", "single"),
        "scores": {c: {layer: v.tolist() for layer, v in by_layer.items()}
                   for c, by_layer in scores.items()},
        "curves": curves,
    }


def _read_json(path: Path, kind: str, required: Sequence[str] = ()) -> dict:
    return read_json(path, kind, "delete it and run the study again to recompute it", required)


def record_keys(config: StudyConfig) -> list[str]:
    """The keys of a seed's record (``curves.json``) that the summaries read."""
    return ["seed", "test_acc", *(f"curves.{mode}.counts" for mode in config.modes)]


def _pending_chunks(paths: StudyPaths, name: str, identity: dict,
                    missing: list[int]) -> list[list[int]]:
    """Seed batches whose training an earlier run started; stale ones are removed."""
    chunks = []
    for sidecar in sorted(paths.scenario(name).glob("train-state-*.json")):
        try:
            described = json.loads(sidecar.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            described = {}
        if not isinstance(described, dict):
            described = {}  # unreadable: removed below, and the batch trains again
        seeds = described.get("seeds") or []
        if described.get("config") == identity and set(seeds) & set(missing):
            chunks.append([int(s) for s in seeds])
        else:  # another configuration's, or every seed of it is stored already
            sidecar.with_suffix(".pt").unlink(missing_ok=True)
            sidecar.unlink()
    return chunks


def train_chunk(config: StudyConfig, data: Dataset, act: str, reg: str, seeds: list[int], *,
                device: torch.device | str = "cpu", batched: bool = True,
                state_path: Path | None = None, progress: bool = False,
                on_epoch: Callable[[int], None] | None = None,
                portable: bool = False) -> list[Checkpoint]:
    """The training task of a study: the models of one batch of seeds of one scenario.

    ``state_path`` keeps the batch's training state after every epoch (resumable); ``portable``
    moves the models to the CPU so that a driver without this task's GPU can store them.
    """
    ckpts = train_seeds(
        data, config.arch, seeds, act, reg, config.train, batchnorm=config.batchnorm,
        device=device, progress=progress, batched=batched, state_path=state_path,
        on_epoch=on_epoch)
    if portable:
        for ckpt in ckpts:
            _to_cpu(ckpt)
    return ckpts


def _to_cpu(ckpt: Checkpoint) -> None:
    ckpt.model.cpu()
    if ckpt.init_state_dict is not None:
        ckpt.init_state_dict = {k: v.cpu() for k, v in ckpt.init_state_dict.items()}
    ckpt.rewind_state_dicts = {step: {k: v.cpu() for k, v in state.items()}
                               for step, state in ckpt.rewind_state_dicts.items()}


@dataclass(frozen=True)
class _Batch:
    """A training task's place in the directory: its scenario and resumable state files."""

    scenario: str
    state: Path | None
    sidecar: Path | None


def _training_tasks(config: StudyConfig, paths: StudyPaths, data: Dataset, act: str, reg: str,
                    seeds: list[int], *, executor: Executor, device, batched: bool,
                    seed_batch: int | None, progress: bool,
                    on_event) -> list[tuple[Task, _Batch]]:
    """One task per batch of the seeds that have no checkpoint yet.

    The batches are fixed by ``seed_batch`` and by the batches an earlier run left unfinished,
    never by the executor. A batch in flight is described by ``train-state-<hash>.json`` (its
    seeds) beside its per-epoch state ``train-state-<hash>.pt``, where the executor's tasks see
    the run directory; both go only after every model of the batch is stored, so an
    interruption anywhere resumes that very batch.
    """
    name = scenario_name(act, reg)
    paths.scenario(name).mkdir(exist_ok=True)
    identity = config.identity()
    missing = [s for s in seeds if not paths.model(name, s).exists()]
    chunks = _pending_chunks(paths, name, identity, missing)
    if not missing:
        return []
    arch = parse_arch(config.arch, data.input_shape, data.n_classes, act, reg, config.batchnorm)
    stack_ok = batched and batchable(arch, config.train) is None
    if not stack_ok:
        chunks = []
    covered = {s for chunk in chunks for s in chunk}
    rest = [s for s in missing if s not in covered]
    size = (seed_batch or len(rest) or 1) if stack_ok else 1
    chunks += [rest[i : i + size] for i in range(0, len(rest), size)]
    tasks = []
    for chunk in chunks:
        keep_state = stack_ok and executor.shared_filesystem
        state = paths.train_state(name, chunk, identity) if keep_state else None
        sidecar = state.with_suffix(".json") if state is not None else None
        if sidecar is not None and not sidecar.exists():
            write_json({"seeds": chunk, "config": identity}, sidecar, "prune-info-train-batch")
        _emit(on_event, "train", scenario=name, seeds=chunk,
              resumed=bool(state is not None and state.exists()))
        kwargs: dict[str, Any] = {"device": device, "batched": stack_ok, "state_path": state,
                                  "portable": not executor.in_process}
        if executor.in_process:  # callbacks and bars work in this process only

            def on_epoch(epoch: int, c: list[int] = chunk) -> None:
                _emit(on_event, "epoch", scenario=name, seeds=c, epoch=epoch)

            kwargs.update(progress=progress, on_epoch=on_epoch)
        task = Task(f"train/{name}/seeds-{chunk[0]}-{chunk[-1]}", train_chunk,
                    (config, data, act, reg, chunk), kwargs, num_gpus=gpus_for(device))
        tasks.append((task, _Batch(name, state, sidecar)))
    return tasks


def _store_models(config: StudyConfig, paths: StudyPaths, batch: _Batch,
                  ckpts: list[Checkpoint], on_event) -> None:
    """In the driver: store each model of a finished batch, then drop the batch's state."""
    for ckpt in ckpts:
        assert ckpt.seed is not None  # train_seeds records each model's seed
        if paths.model(batch.scenario, ckpt.seed).exists():
            continue  # stored by the interrupted run already
        ckpt.dataset = {**ckpt.dataset, "split_seed": config.split_seed}
        paths.seed_dir(batch.scenario, ckpt.seed).mkdir(parents=True, exist_ok=True)
        save_checkpoint(ckpt, paths.model(batch.scenario, ckpt.seed))
        _emit(on_event, "trained", scenario=batch.scenario, seed=ckpt.seed)
    if batch.state is not None and batch.sidecar is not None:  # set together
        batch.state.unlink(missing_ok=True)
        batch.sidecar.unlink(missing_ok=True)


def run_study(
    config: StudyConfig,
    out_dir: str | os.PathLike,
    *,
    at: Sequence[int] | None = None,
    wilcoxon: str = "approx",
    data_dir: str | os.PathLike | None = None,
    device: torch.device | str = "cpu",
    batched: bool = True,
    seed_batch: int | None = None,
    progress: bool = True,
    on_event: Callable[[str, dict], None] | None = None,
    executor: Executor | None = None,
) -> StudyResult:
    """Run (or resume) a study and return its results
    (:func:`~prune_info.experiments.study_results.summarise`).

    Parameters
    ----------
    config : StudyConfig
    out_dir : path
        The study directory (created; or resumed when it holds the same configuration).
    at : list of int, optional
        Numbers of ablated units at which to compare (default :func:`default_at`).
    wilcoxon : {"approx", "exact", "auto"}
        Method of the Wilcoxon signed-rank test (see :func:`prune_info.analysis.stats.mean_gap`).
    data_dir : path, optional
    device : str or torch.device
    batched : bool
        Train the seeds of a scenario as one batched model (MLPs without BatchNorm).
    seed_batch : int, optional
        Seeds per batched model (default: all missing seeds of a scenario at once).
    progress : bool
        Progress bars on stderr.
    on_event : callable, optional
        ``on_event(kind, details)`` for ``train``, ``epoch``, ``trained``, ``curves`` and
        ``skipped`` events (to report progress, or to interrupt a run in tests). ``epoch`` events
        come from an in-process executor only.
    executor : Executor, optional
        Where the training tasks (one per batch of seeds of a scenario) and the curve tasks (one
        per seed) run (default: :class:`~prune_info.experiments.executor.LocalExecutor`). This
        process stores every result in ``out_dir`` as it arrives; the numbers do not depend on
        the executor.

    Returns
    -------
    StudyResult
        The results, also written to ``out_dir/results.json`` with the table
        (``table.txt``) and one figure per scenario and mode (``fig-<scenario>-<mode>.png``).
    """
    config.validate()
    if seed_batch is not None and seed_batch < 1:
        raise PruneInfoError(f"`seed_batch` must be at least 1, got {seed_batch}")
    data = load_dataset(config.data, data_dir, seed=config.split_seed)
    layer_units = _layer_units(config, data)
    at = _check_at(config, layer_units, at)
    paths = StudyPaths(Path(out_dir))
    with study_directory(paths.root).owned(config.identity()):
        return _run_locked(config, paths, data, at, wilcoxon, device, batched, seed_batch,
                           progress, on_event, executor or LocalExecutor())


def _run_locked(config: StudyConfig, paths: StudyPaths, data: Dataset, at: list[int],
                wilcoxon: str, device: torch.device | str, batched: bool,
                seed_batch: int | None, progress: bool,
                on_event: Callable[[str, dict], None] | None, executor: Executor) -> StudyResult:
    seeds = list(config.seeds)
    batches: dict[str, _Batch] = {}
    training = []
    for act, reg in config.scenarios():
        for task, batch in _training_tasks(
                config, paths, data, act, reg, seeds, executor=executor, device=device,
                batched=batched, seed_batch=seed_batch, progress=progress, on_event=on_event):
            batches[task.key] = batch
            training.append(task)
    with ProgressBar("train", enabled=progress and bool(training)) as bar:
        executor.run(training,
                     lambda task, ckpts: _store_models(config, paths, batches[task.key], ckpts,
                                                       on_event), bar)
    curves = []
    for act, reg in config.scenarios():
        name = scenario_name(act, reg)
        for seed in seeds:
            if paths.curves(name, seed).exists():
                _emit(on_event, "skipped", scenario=name, seed=seed)
                continue
            ckpt = load_checkpoint(paths.model(name, seed))
            curves.append(Task(f"curves/{name}/seed-{seed:04d}", _seed_record,
                               (config, ckpt, data, device, seed), num_gpus=gpus_for(device)))
    where = {task.key: task.args[4] for task in curves}

    def store_record(task: Task, record: dict) -> None:
        name = task.key.split("/")[1]
        write_json(record, paths.curves(name, where[task.key]), SEED_FORMAT)
        _emit(on_event, "curves", scenario=name, seed=where[task.key])

    with ProgressBar("curves", enabled=progress and bool(curves)) as bar:
        executor.run(curves, store_record, bar)
    records = {
        scenario_name(act, reg): [
            _read_json(paths.curves(scenario_name(act, reg), s), SEED_FORMAT,
                       record_keys(config)) for s in seeds]
        for act, reg in config.scenarios()
    }
    results = summarise(config, records, at=at, wilcoxon=wilcoxon)
    results.write(paths.root / "results.json")
    with atomic_write(paths.root / "table.txt") as tmp:
        tmp.write_text(results.table() + "\n")
    results = replace(results, figures=_draw_figures(results, paths.root))
    results.write(paths.root / "results.json")
    return results


def _layer_units(config: StudyConfig, data: Dataset) -> dict[str, int]:
    arch = parse_arch(config.arch, data.input_shape, data.n_classes, config.acts[0],
                      config.regs[0], config.batchnorm)
    units = {f"conv{i}": w for i, w in enumerate(arch.get("conv", []), start=1)}
    units.update({f"fc{i}": w for i, w in enumerate(arch["hidden"], start=1)})
    if not units:
        raise PruneInfoError(f"`arch`={config.arch} has no hidden layer to ablate")
    return units


def _check_at(config: StudyConfig, layer_units: dict[str, int],
              at: Sequence[int] | None) -> list[int]:
    if at is None or len(at) == 0:
        return default_at(list(layer_units.values())) if config.random > 0 else []
    if config.random == 0:
        raise PruneInfoError("`at` asks for mean gaps against random ablation, but `random` is "
                             "0; pass `random`=R (the paper's statistics use R >= 1)")
    scopes = {}
    if "layerwise" in config.modes:
        scopes.update(layer_units)
    if "network" in config.modes:
        scopes["the whole network"] = sum(layer_units.values())
    for k in at:
        if k < 0:
            raise PruneInfoError(f"`at`={k}: k must be 0 or more")
        for scope, n in scopes.items():
            if k > n:
                raise PruneInfoError(f"`at`={k} is beyond the {n} units of {scope}; choose "
                                     f"k <= {n}")
    return sorted(set(int(k) for k in at))


# --------------------------------------------------------------------------------------------
# Figures


def _draw_figures(results: StudyResult, root: Path) -> list[str]:
    written = []
    for scenario, entry in results.scenarios.items():
        for mode, scopes in entry.modes.items():
            panels = {
                f"{scope} ({block.units} units)": {
                    label: (np.asarray(c["mean"]), np.asarray(c["std"]))
                    for label, c in block.curves.items()}
                for scope, block in scopes.items()}
            path = root / f"fig-{scenario}-{mode}.png"
            title = (f"{results.config['arch']} {scenario}, {mode}, "
                     f"{len(results.seeds)} seeds (mean ± std)")
            plot_ablation(panels, path, title=title)
            written.append(path.name)
    return written


def seeds_from_count(count: int, first: int = 0) -> tuple[int, ...]:
    """``count`` seeds: ``first .. first + count - 1``."""
    if count < 1:
        raise PruneInfoError(f"`count` (of seeds) must be at least 1, got {count}")
    return tuple(range(first, first + count))
