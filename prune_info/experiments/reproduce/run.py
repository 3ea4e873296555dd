"""The driver of ``prune-info reproduce``: its run directory, the networks, every finding's
report, and ``findings.json`` / ``.txt`` / ``.html``."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from prune_info.analysis.stats import (
    adjust_p,
)
from prune_info.checkpoint import Checkpoint, save_checkpoint
from prune_info.data import load_dataset
from prune_info.errors import PruneInfoError
from prune_info.experiments.executor import Executor, LocalExecutor, Task, gpus_for
from prune_info.experiments.reproduce.first_paper import finding_a1, finding_a2, finding_a3
from prune_info.experiments.reproduce.protocols import (
    AMJAD,
    AMJAD_FILE,
    C2_CRITERIA,
    C2_REST,
    CLAUW,
    CLAUW_FILE,
    FINDINGS,
    NEEDS,
    PAPER_SEEDS,
    SEARCH,
    VGG11_BN_EIGHTH,
    NetProtocol,
    ReproduceOptions,
    conv_protocol,
    paper_nets,
    protocol_table,
)
from prune_info.experiments.reproduce.second_paper import (
    C1_FORMAT,
    C2_FORMAT,
    c1_panels,
    c1_seed_task,
    c2_panels,
    c2_seed_task,
    c2_summary,
    conv_net_task,
    read_stored,
    run_tasks,
)
from prune_info.experiments.reproduce.table import format_findings
from prune_info.experiments.reproduce.verdicts import ALPHA, RULE, VERDICTS, verdict
from prune_info.experiments.study import (
    StudyPaths,
    run_study,
    scenario_name,
)
from prune_info.io import RunDirectory, atomic_write, read_json, write_json
from prune_info.viz.html import write_findings_page

_CLAIMS = {
    "A1": (AMJAD, "Fig. 1", "Entropy, MI and KL selectivity grow from hidden layer 1 to 2"),
    "A2": (AMJAD, "Figs. 3, 4", "Layer-wise: low-first ablation beats random, high-first loses "
                                 "to it (MG@80); fc1 is hurt more than fc2"),
    "A3": (AMJAD, "Fig. 2", "Simpson's paradox: whole-network low-information-first ablation "
                             "does worse than random with Dropout, layer-wise it does better"),
    "C1": (CLAUW, "Fig. 1", "The first layer is redundancy-dominated, the last synergy-"
                             "dominated"),
    "C2": (CLAUW, "Fig. 2", "The synergistic sub-network, retrained from its initial weights "
                             "with the rest frozen, loses the least accuracy; GC-MI ≈ random"),
    "C2-removed": (CLAUW, "Fig. 2 (variant)", "As C2, with the other units cut out instead "
                                               "of frozen"),
    "C1-conv": (CLAUW, "Fig. 1 (beyond the paper)",
                "The first convolutional layer is redundancy-dominated, the last synergy-"
                "dominated (VGG-11-bn layout, channels averaged over their feature maps)"),
}

FINDINGS_FORMAT = "prune-info-findings"
CONFIG_FORMAT = "prune-info-reproduce-config"


def _differences(finding: str, options: ReproduceOptions,
                 nets: dict[str, NetProtocol]) -> list[str]:
    out = []
    data = options.dataset
    first = finding.startswith("A")
    if data != "mnist" and (first or finding.startswith("C")):
        out.append(f"run on {data}; the paper's figures cited are on "
                   + ("MNIST and FashionMNIST (Fig. 3: MNIST, Fig. 4: FashionMNIST)"
                      if first else "MNIST"))
    if options.scale == "toy":
        out.append("toy scale: digits-sized layers, few seeds and epochs; not a test of the "
                   "paper")
    if first:
        net = nets["relu"]
        if net.seeds != PAPER_SEEDS["A"]:
            out.append(f"{net.seeds} networks per setting (the paper: 50)")
        out.append(f"{net.train.epochs} epoch(s) for every setting (the paper: 8 to 30, chosen per "
                   "setting, not listed)")
        out.append(f"{net.random} random orderings per network and layer (the paper does not "
                   "state its number)")
    elif finding == "C1-conv":
        conv = conv_protocol(options)
        shape = ("FashionMNIST resized to " + "x".join(map(str, conv.input_shape[1:]))
                 if conv.input_shape else "the images as they are")
        layout = ("VGG-11-bn's layout at 1/8 of its channels" if conv.spec == VGG11_BN_EIGHTH
                  else "a small CNN of stages like VGG's")
        out.append(f"beyond the paper (its Sec. 5 names VGG on CIFAR-10): {conv.spec}, "
                   f"{layout}, BatchNorm after every layer, on {shape}; {conv.seeds} networks "
                   f"of {conv.train.epochs} epoch(s) with the second paper's SGD (0.01, batch 32), "
                   "trained on 80 % of the training set, keeping the epoch of best validation "
                   "accuracy; each channel is one variable, its pre-activation averaged over "
                   f"the feature map; exhaustive search to {conv.max_exhaustive} channels, then "
                   "greedy; the convolutional layers only")
    else:
        net = nets["c" if "wide" not in finding else "c-wide"]
        if net.seeds != PAPER_SEEDS["C"]:
            out.append(f"{net.seeds} networks (the paper: 20)")
        if net.train.epochs != 50:
            out.append(f"{net.train.epochs} epoch(s) (the paper: 50)")
        out.append("trained on 80 % of the training set, keeping the epoch of best validation "
                   "accuracy (the paper: all 60,000 images, 50 epochs)")
        if "wide" in finding:
            limit = SEARCH[(options.scale, "c-wide")]["max_exhaustive"]
            search = ("exhaustive search to 4 units then greedy with a beam of 8 (the search's "
                      "defaults above 40 units; to 6 is out of reach for 100 units)"
                      if limit is None else f"exhaustive search to {limit} units then greedy")
            out.append("beyond the paper: hidden layers of "
                       f"{'-'.join(str(w) for w in net.hidden)} units (its Sec. 5 names 100-unit "
                       f"layers on FashionMNIST); {search}")
        if finding.startswith("C2"):
            out.append("sub-network sizes k (units kept per layer) are our choice; the paper's "
                       "figure gives no values in its text. Retraining uses the dense "
                       "optimiser (SGD 0.01, batch 32) for its own number of epochs (the paper "
                       "states none); rest frozen = initial "
                       "weights kept, the classifier layer trains; selection on the test set "
                       "as the paper does")
    return out


def _finding(fid: str, panels: list[dict], options: ReproduceOptions, nets: dict,
             command: str, **extra: Any) -> dict:
    base = fid if fid == "C1-conv" else fid.replace("-wide", "")
    paper, figure, claim = _CLAIMS[base]
    if fid.endswith("-wide") or "-wide-" in fid:
        claim = claim + " (784-100-100-10, beyond the paper)"
    for panel, q in zip(panels, adjust_p([p["ours"]["p_value"] for p in panels])):
        panel["ours"]["p_adjusted"] = q
    return {"id": fid, "paper": paper,
            "paper_file": AMJAD_FILE if fid.startswith("A") else CLAUW_FILE,
            "figure": figure, "claim": claim, "command": command,
            "differences": _differences(fid, options, nets),
            "panels": panels, "verdict": verdict([p["status"] for p in panels]), **extra}


def _command(options: ReproduceOptions, finding: str, out: str) -> str:
    parts = ["prune-info reproduce", finding, "--out", out]
    if options.scale != "paper":
        parts += ["--scale", options.scale]
    if options.data is not None:
        parts += ["--data", options.data]
    if options.seeds is not None:
        parts += ["--seeds", str(options.seeds)]
    if options.epochs is not None:
        parts += ["--epochs", str(options.epochs)]
    return " ".join(parts)


def _run_directory(out_dir: Path) -> RunDirectory:
    """The run directory of ``reproduce``: ``reproduce.json`` records its protocol."""
    return RunDirectory(out_dir, "reproduce.json", CONFIG_FORMAT, what="a reproduce run",
                        other="a reproduce run of another protocol")


@dataclass
class _Timer:
    """Wall seconds per stage in ``path``, summed over every run into the directory."""

    path: Path
    seconds: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.path.exists():
            stored = read_json(self.path, None, "delete it (it holds wall times only)")
            self.seconds = {k: float(v) for k, v in stored.items()
                            if isinstance(v, (int, float)) and not isinstance(v, bool)}

    def add(self, stage: str, seconds: float) -> None:
        self.seconds[stage] = round(self.seconds.get(stage, 0.0) + seconds, 3)
        with atomic_write(self.path) as tmp:
            tmp.write_text(json.dumps(self.seconds, indent=2) + "\n")


def run_reproduce(
    options: ReproduceOptions,
    out_dir: str | os.PathLike,
    *,
    executor: Executor | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> dict:
    """Run (or resume) the findings of ``options`` into ``out_dir``; return the findings report.

    Every option is validated and the data are loaded before anything is written.

    Parameters
    ----------
    options : ReproduceOptions
    out_dir : path
        The run directory (created; or resumed when it holds the same protocol).
    executor : Executor, optional
        Where the units of work run (default: this process): the studies' training batches
        (:func:`~prune_info.experiments.study.run_study`) and the per-seed C1 / C2 tasks.
    progress : bool
        Progress bars on stderr.
    log : callable, optional
        Called with one line per stage (the CLI prints them on stderr).

    Returns
    -------
    dict
        The findings report, also written to ``out_dir/findings.json`` (with
        ``findings.txt`` and ``findings.html``).
    """
    options.validate()
    executor = executor or LocalExecutor()
    say = log or (lambda line: None)
    wanted = options.expanded()
    try:
        data = load_dataset(options.dataset, options.data_dir)
    except PruneInfoError as exc:
        raise PruneInfoError(f"{', '.join(wanted)} need the dataset {options.dataset}: {exc}"
                             ) from None
    root = Path(out_dir)
    run_dir = _run_directory(root)
    run_dir.check(options.identity())  # before any work
    nets = paper_nets(options)
    configs = {name: net.study_config(data, options.dataset) for name, net in nets.items()}
    for config in configs.values():
        config.validate()
    with run_dir.owned(options.identity()):
        timer = _Timer(root / "timings.json")
        families = [n for n in nets if any(n in NEEDS[f] for f in wanted)]
        studies = {}
        for name in families:
            start = time.perf_counter()
            say(f"networks {name}: {configs[name].arch}, "
                f"{'/'.join(a + '-' + r for a in nets[name].acts for r in nets[name].regs)}, "
                f"{nets[name].seeds} seeds x {nets[name].train.epochs} epochs")
            study_root = root / f"{'study' if name[0] != 'c' else 'nets'}-{name}"
            run_study(configs[name], study_root, data_dir=options.data_dir,
                      device=options.device, progress=progress, executor=executor)
            studies[name] = (study_root, configs[name])
            timer.add(f"networks {name}", time.perf_counter() - start)
        findings = []
        for fid in wanted:
            if fid.startswith("A"):
                start = time.perf_counter()
                make = {"A1": finding_a1, "A2": finding_a2, "A3": finding_a3}[fid]
                findings.append(_finding(fid, make(studies), options, nets,
                                         _command(options, fid, str(root))))
                timer.add(f"report {fid}", time.perf_counter() - start)
        for family, c1_id, c2_id in (("c", "C1", "C2"), ("c-wide", "C1-wide", "C2-wide")):
            if c1_id not in wanted and c2_id not in wanted:
                continue
            findings += _second_paper(family, c1_id, c2_id, wanted, studies[family], options,
                                      nets, root, executor, timer, say)
        if "C1-conv" in wanted:
            findings.append(_conv_finding(options, nets, root, executor, timer, say))
            families.append("c-conv")
        findings, protocols = _with_earlier(root, findings, {
            n: protocol_table(options)[n] for n in families})
        report = {
            "scale": options.scale, "data": options.dataset, "rule": RULE,
            "alpha": ALPHA, "verdicts": list(VERDICTS),
            "note": (f"All findings ran on {options.dataset}. MNIST is not available on the "
                     "machine this was written on; `--data mnist --data-dir DIR` runs the same "
                     "protocol on MNIST."),
            "protocols": protocols,
            "left_out": ["C2 on the convolutional layers (C2-conv): 16 sub-networks of each "
                         "network, each a CNN training of its own, about 3 hours for 6 "
                         "networks on 2 cores"],
            "findings": findings,
        }
        write_json(report, root / "findings.json", FINDINGS_FORMAT)
        with atomic_write(root / "findings.txt") as tmp:
            tmp.write_text(format_findings(report) + "\n")
        write_findings_page(report, root / "findings.html")
        return report


def _with_earlier(root: Path, findings: list[dict],
                  protocols: dict[str, dict]) -> tuple[list[dict], dict[str, dict]]:
    """This run's findings and protocols, with those of earlier runs into ``root`` that this
    run did not recompute (the directory's protocol is the same, see :func:`_run_directory`), in
    the order of :data:`FINDINGS`."""
    path = root / "findings.json"
    if not path.exists():
        return findings, protocols
    earlier = read_json(path, FINDINGS_FORMAT, "delete it; the next run writes it again")
    ids = {f["id"] for f in findings}
    kept = [f for f in earlier.get("findings") or []
            if isinstance(f, dict) and _group(f.get("id")) >= 0 and f["id"] not in ids]
    merged = sorted(findings + kept, key=lambda f: _group(f["id"]))
    stored = earlier.get("protocols")
    return merged, {**(stored if isinstance(stored, dict) else {}), **protocols}


def _group(fid: object) -> int:
    """Position in :data:`FINDINGS` of the finding a report id belongs to (``C2-removed-wide``
    to ``C2-wide``), -1 for none."""
    name = str(fid).replace("-removed", "")
    return FINDINGS.index(name) if name in FINDINGS else -1


def _c1_searches(c1_id: str, models: dict[int, str], max_exhaustive: int | None,
                 options: ReproduceOptions, c1_dir: Path, executor: Executor, timer: _Timer,
                 say: Callable[[str], None], *, conv_only: bool = False,
                 input_shape: Sequence[int] | None = None) -> list[dict]:
    """The C1 search of every network (``seed -> model path``), run where missing."""
    start = time.perf_counter()
    say(f"{c1_id}: O-information search of {len(models)} networks")
    run_tasks(executor, [
        (Task(f"{c1_id}/seed-{s}", c1_seed_task,
              (path, options.dataset, options.data_dir, max_exhaustive, s, options.device),
              {"conv_only": conv_only, "input_shape": input_shape},
              num_gpus=gpus_for(options.device)),
         c1_dir / f"seed-{s:04d}.json", C1_FORMAT) for s, path in models.items()])
    found = {s: read_stored(c1_dir / f"seed-{s:04d}.json", C1_FORMAT) for s in models}
    timer.add(c1_id, time.perf_counter() - start)
    missing = [s for s, d in found.items() if d is None]
    if missing:
        raise PruneInfoError(f"the O-information search of seed {missing[0]} was not stored in "
                             f"{c1_dir}; run the command again")
    return [d for d in found.values() if d is not None]


def _second_paper(family: str, c1_id: str, c2_id: str, wanted: list[str], study: tuple,
                  options: ReproduceOptions, nets: dict, root: Path, executor: Executor,
                  timer: _Timer, say: Callable[[str], None]) -> list[dict]:
    study_root, config = study
    paths = StudyPaths(study_root)
    suffix = family[1:]  # "" or "-wide"
    search = SEARCH[(options.scale, family)]
    seeds = list(config.seeds)
    models = {s: str(paths.model(scenario_name("relu", "none"), s)) for s in seeds}
    c2_dir = root / f"c2{suffix}"
    c1 = _c1_searches(c1_id, models, search["max_exhaustive"], options, root / f"c1{suffix}",
                      executor, timer, say)
    out = []
    if c1_id in wanted:
        panels, by_size = c1_panels(c1, family)
        out.append(_finding(c1_id, panels, options, nets, _command(options, c1_id, str(root)),
                            by_size=by_size))
    if c2_id not in wanted:
        return out
    net = nets[family]
    train = replace(net.train, epochs=options.epochs or search["retrain_epochs"])
    start = time.perf_counter()
    say(f"{c2_id}: retraining {len(C2_CRITERIA) * len(search['sizes']) * len(C2_REST)} "
        f"sub-networks of each of {len(seeds)} networks ({train.epochs} epochs)")
    run_tasks(executor, [
        (Task(f"{c2_id}/seed-{s}", c2_seed_task,
              (models[s], options.dataset, options.data_dir, c1[i],
               list(search["sizes"]), train, s, options.device),
              num_gpus=gpus_for(options.device)),
         c2_dir / f"seed-{s:04d}.json", C2_FORMAT) for i, s in enumerate(seeds)])
    c2 = [read_stored(c2_dir / f"seed-{s:04d}.json", C2_FORMAT) for s in seeds]
    c2_done = [d for d in c2 if d is not None]
    timer.add(c2_id, time.perf_counter() - start)
    sizes = list(search["sizes"])
    summary = c2_summary(c2_done, sizes)
    out.append(_finding(c2_id, c2_panels(c2_done, "frozen", sizes, family), options, nets,
                        _command(options, c2_id, str(root)), drops=summary))
    out.append(_finding(f"{c2_id.replace('-wide', '')}-removed{suffix}",
                        c2_panels(c2_done, "removed", sizes, family), options, nets,
                        _command(options, c2_id, str(root)), drops=summary))
    return out


def _conv_finding(options: ReproduceOptions, nets: dict, root: Path, executor: Executor,
                  timer: _Timer, say: Callable[[str], None]) -> dict:
    """``C1-conv``: the convolutional family trained where missing, searched, reported."""
    net = conv_protocol(options)
    seeds = list(range(net.seeds))
    models = {s: root / "nets-c-conv" / f"seed-{s:04d}" / "model.pt" for s in seeds}
    where = {f"C1-conv/net-{s}": (s, path) for s, path in models.items() if not path.exists()}
    todo = [Task(key, conv_net_task, (options.dataset, options.data_dir, net, s, options.device),
                 num_gpus=gpus_for(options.device)) for key, (s, _) in where.items()]
    start = time.perf_counter()
    say(f"networks c-conv: {net.spec}, relu with BatchNorm, {net.seeds} seeds x {net.train.epochs} "
        f"epochs ({len(todo)} to train)")

    def store(task: Task, ckpt: Checkpoint) -> None:
        path = where[task.key][1]
        path.parent.mkdir(parents=True, exist_ok=True)
        save_checkpoint(ckpt, path)

    if todo:
        executor.run(todo, store)
    timer.add("networks c-conv", time.perf_counter() - start)
    c1 = _c1_searches("C1-conv", {s: str(p) for s, p in models.items()}, net.max_exhaustive,
                      options, root / "c1-conv", executor, timer, say,
                      conv_only=True, input_shape=net.input_shape)
    panels, by_size = c1_panels(c1, "c-conv")
    return _finding("C1-conv", panels, options, nets, _command(options, "C1-conv", str(root)),
                    by_size=by_size)
