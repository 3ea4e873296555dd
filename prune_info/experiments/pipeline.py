"""One resumable pipeline: train -> score -> ablate -> oinfo -> prune -> retrain -> export -> bench
-> report, every stage's artefacts kept in one output directory.

Resumption and invalidation
---------------------------
``OUT/run.json`` (written atomically after every stage) records the run's *identity*, the options
of the last invocation and, per finished stage, a *fingerprint* and the artefacts it wrote. A
stage's fingerprint hashes the options that affect it and the fingerprints of the stages it reads
from, so a changed option invalidates exactly the stages downstream of it (``amount`` reruns
prune, retrain, export, bench and report; ``random`` reruns ablate and report). A stage reruns
when its fingerprint changed, when one of its artefacts is missing or no longer holds what the
stage wrote (the manifest keeps each artefact's sha256: a file damaged, truncated or replaced
since is rewritten, with a note), or when a stage it reads from reran in this invocation. A stage
that fails is dropped from the manifest (it reruns next time); the stages finished before it
stay valid.

What counts as a *different run*: the identity is the dataset (``data``) and the model source
(``arch`` with ``act`` / ``reg``, or the sha256 of the ``model`` file). Running into a
directory whose ``run.json`` holds another identity is refused, as is a non-empty directory
without ``run.json`` and a path that is a file: results of different networks are never mixed.
Every other option (``epochs``, ``seed``, ``criterion``, ``amount``, ...) is a *changed
option* of the same run and only reruns the stages it affects.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from prune_info.analysis.ablate import AblationConfig, ablate_checkpoint
from prune_info.analysis.oinfo import oinfo_checkpoint
from prune_info.analysis.score import ScoreDocument, score_checkpoint
from prune_info.checkpoint import data_for, load_checkpoint, save_checkpoint
from prune_info.criteria.options import ScoreOptions
from prune_info.criteria.registry import get_criterion
from prune_info.data import load_dataset, parse_data_spec
from prune_info.deploy.bench import benchmark_models
from prune_info.deploy.bench_report import BenchReport
from prune_info.deploy.onnx import export_onnx
from prune_info.errors import PruneInfoError, malformed
from prune_info.io import RunDirectory, file_sha256, write_json
from prune_info.nn import count_parameters
from prune_info.pruning.config import PruneConfig
from prune_info.pruning.retrain import RetrainConfig, retrain_checkpoint
from prune_info.pruning.workflow import prune_checkpoint
from prune_info.training.loop import TrainConfig, check_model_takes, train_model
from prune_info.viz.ablation import plot_curves
from prune_info.viz.bench import plot_bench
from prune_info.viz.figures import violin_plot
from prune_info.viz.html import write_report
from prune_info.viz.oinfo import plot_oinfo
from prune_info.zoo import build_factory_model, parse_arch

__all__ = [
    "MANIFEST", "RUN_FORMAT", "RunOptions", "STAGES", "Stage", "check_out_dir", "run_directory",
    "run_pipeline",
]

MANIFEST = "run.json"
RUN_FORMAT = "prune-info-run"


@dataclass
class RunOptions:
    """Everything ``prune-info run`` was asked to do (defaults sized for the digits demo)."""

    data: str = "digits"
    data_dir: str | None = None
    workers: int = 0
    normalize: str | None = None
    arch: str | None = "64-100-100-10"
    model: str | None = None
    factory: str | None = None
    factory_kwargs: dict = field(default_factory=dict)
    input_shape: tuple[int, ...] | None = None
    act: str = "relu"
    reg: str = "l2"
    epochs: int = 10
    seed: int = 0
    criterion: str = "mi"
    amount: float | None = 0.5
    target: str | None = None
    allocation: str = "uniform"
    latency_batch: int = 1
    ignore: tuple[str, ...] = ()
    random: int = 10
    max_exhaustive: int = 3
    max_size: int = 10
    retrain_epochs: int = 3
    bench_repeat: int = 20
    bench_batches: tuple[int, ...] = (1, 256)
    #: Let the ``model`` checkpoint build itself with a factory outside the known zoos.
    trust_factory: bool = False
    progress: bool = True

    def identity(self) -> dict:
        """What makes two runs the *same* run (see the module docstring)."""
        if self.model is not None:
            return {"data": self.data, "model_sha256": file_sha256(self.model)}
        if self.factory is not None:
            return {"data": self.data, "factory": self.factory,
                    # as the manifest's JSON holds them (tuples become lists)
                    "factory_kwargs": json.loads(json.dumps(self.factory_kwargs)),
                    "input_shape": list(self.input_shape) if self.input_shape else None}
        return {"data": self.data, "arch": self.arch, "act": self.act, "reg": self.reg}

    def validate(self) -> None:
        """Check every option before the first stage runs (nothing is trained or written)."""
        parse_data_spec(self.data)
        if sum(x is not None for x in (self.arch, self.model, self.factory)) != 1:
            raise PruneInfoError("give exactly one of `arch`, `model` (a checkpoint) and "
                                 "`factory`")
        if self.input_shape is not None and self.model is not None:
            raise PruneInfoError("`input_shape` is for a model to train; the checkpoint `model` "
                                 "records the shape it was trained on")
        if self.model is not None and not Path(self.model).is_file():
            raise PruneInfoError(f"`model`={self.model} does not exist")
        TrainConfig(epochs=self.epochs, seed=self.seed).validate()
        get_criterion(self.criterion)
        self.prune_config().validate()
        for name, value, least in (("random", self.random, 0),
                                   ("max_exhaustive", self.max_exhaustive, 2),
                                   ("max_size", self.max_size, 2),
                                   ("retrain_epochs", self.retrain_epochs, 1),
                                   ("bench_repeat", self.bench_repeat, 1)):
            if value < least:
                raise PruneInfoError(f"`{name}` must be at least {least}, got {value}"
                                     + (" (a multiplet holds 2+ units)" if least == 2 else ""))
        if self.max_exhaustive > self.max_size:
            raise PruneInfoError(
                f"`max_exhaustive`={self.max_exhaustive} exceeds `max_size`={self.max_size}; "
                "the exhaustive search covers sizes up to `max_exhaustive` of at most "
                "`max_size`: lower `max_exhaustive` or raise `max_size`")
        if not self.bench_batches or any(b < 1 for b in self.bench_batches):
            raise PruneInfoError(f"`bench_batches` must be at least 1, got "
                                 f"{list(self.bench_batches)}")

    def prune_config(self) -> PruneConfig:
        """The prune stage's settings: ``amount`` of every layer, or a ``target``."""
        if self.target is None:
            return PruneConfig(criterion=self.criterion, amount=self.amount, seed=self.seed,
                               ignore=self.ignore)
        return PruneConfig(criterion=self.criterion, target=self.target,
                           allocation=self.allocation, latency_batch=self.latency_batch,
                           seed=self.seed, ignore=self.ignore)

    def prune_options(self) -> dict:
        """What the prune stage depends on (a run without a target keeps its old keys)."""
        how = ({"amount": self.amount} if self.target is None
               else {"target": self.target, "allocation": self.allocation,
                     "latency_batch": self.latency_batch})
        return {"criterion": self.criterion, **how,
                **({"ignore": list(self.ignore)} if self.ignore else {})}

    def cli_args(self) -> list[str]:
        """The ``prune-info run`` arguments reproducing these options."""
        args = ["--data", self.data]
        if self.data_dir:
            args += ["--data-dir", self.data_dir]
        if self.normalize:
            args += ["--normalize", self.normalize]
        if self.workers:
            args += ["--workers", str(self.workers)]
        if self.model is not None:
            args += ["--model", self.model]
            if self.trust_factory:
                args += ["--trust-factory"]
        elif self.factory is not None:
            args += ["--model", self.factory, "--epochs", str(self.epochs)]
            if self.factory_kwargs:
                args += ["--model-kwargs",
                         ",".join(f"{k}={v!r}" for k, v in self.factory_kwargs.items())]
            if self.input_shape:
                args += ["--input-shape", ",".join(map(str, self.input_shape))]
        else:
            args += ["--arch", str(self.arch), "--act", self.act, "--reg", self.reg,
                     "--epochs", str(self.epochs)]
        how = (["--amount", f"{self.amount:g}"] if self.target is None
               else ["--target", self.target, "--allocation", self.allocation,
                     "--latency-batch", str(self.latency_batch)])
        args += ["--seed", str(self.seed), "--criterion", self.criterion, *how,
                 *[a for pattern in self.ignore for a in ("--ignore", pattern)],
                 "--random", str(self.random),
                 "--max-exhaustive", str(self.max_exhaustive), "--max-size", str(self.max_size),
                 "--retrain-epochs", str(self.retrain_epochs),
                 "--bench-repeat", str(self.bench_repeat),
                 "--bench-batch", ",".join(map(str, self.bench_batches))]
        return args


@dataclass
class Stage:
    """One step: the options that affect it, the stages it reads, the files it writes."""

    name: str
    options: Callable[[RunOptions], dict]
    deps: tuple[str, ...]
    artefacts: tuple[str, ...]
    fn: Callable[[Context], dict]
    description: str = ""


@dataclass
class Context:
    """What a stage function gets: the options, the output directory, the dataset (lazy)."""

    options: RunOptions
    out: Path
    _data: object = None
    summaries: dict = field(default_factory=dict)

    @property
    def data(self):
        if self._data is None:
            o = self.options
            if o.model is not None:  # the data as the model was trained on them (input shape)
                self._data = data_for(self.load_model(), o.data, o.data_dir, workers=o.workers,
                                      normalize=o.normalize, trust_factory=o.trust_factory)
            else:
                self._data = load_dataset(o.data, o.data_dir, seed=o.seed,
                                          input_shape=o.input_shape, normalize=o.normalize,
                                          workers=o.workers)
        return self._data

    def path(self, name: str) -> Path:
        return self.out / name

    def load_model(self):
        """The ``model`` checkpoint the run starts from."""
        return load_checkpoint(self.options.model, trust_factory=self.options.trust_factory)

    def load(self, name: str):
        """A checkpoint of the run directory; its factory must be the one this run names."""
        o = self.options
        return load_checkpoint(self.path(name), factory=o.factory,
                               trust_factory=o.trust_factory and o.model is not None)


# --------------------------------------------------------------------------------------------
# Stage functions: read earlier artefacts from disk, write their own atomically, return a summary


def _stage_train(ctx: Context) -> dict:
    o = ctx.options
    if o.model is not None:
        ckpt = ctx.load_model()
        if ckpt.arch is None and ckpt.factory is None:
            raise PruneInfoError(f"`model`={o.model} records no architecture; save it with "
                                 "prune-info train or give a prune-info checkpoint")
    elif o.factory is not None:
        config = TrainConfig.for_factory_models(epochs=o.epochs, seed=o.seed)
        ckpt = train_model(ctx.data, config=config, progress=o.progress, factory=o.factory,
                           factory_kwargs=o.factory_kwargs)
    else:
        if o.arch is None:
            raise PruneInfoError("no model to train: give `arch` or `model`")
        config = TrainConfig(epochs=o.epochs, seed=o.seed)
        config.validate()
        ckpt = train_model(ctx.data, o.arch, o.act, o.reg, config, progress=o.progress)
    save_checkpoint(ckpt, ctx.path("model.pt"))
    m = ckpt.metrics
    return {"arch": ckpt.spec, "parameters": count_parameters(ckpt.model),
            "val_acc": m.get("val_acc"), "test_acc": m.get("test_acc"),
            "best_epoch": m.get("best_epoch")}


def _score_criteria(o: RunOptions) -> list[str]:
    names = ["entropy", "mi", "kl"]
    return names if o.criterion in names else names + [o.criterion]


def _stage_score(ctx: Context) -> dict:
    ckpt = ctx.load("model.pt")
    document = score_checkpoint(ckpt, ctx.data, _score_criteria(ctx.options),
                                options=ScoreOptions(seed=ctx.options.seed))
    violin_plot(document.score_tensors(), ctx.path("scores.png"),
                title=f"{ckpt.spec} on {ctx.data.name} (val), {document.quantiser}")
    document.write(ctx.path("scores.json"))
    return {"layers": {layer["name"]: layer["summary"] for layer in document.layers}}


def _read_scores(path: Path, criterion: str) -> dict:
    scores = ScoreDocument.read(path).scores(criterion)
    return {layer: torch.tensor(values, dtype=torch.float64) for layer, values in scores.items()}


def _stage_ablate(ctx: Context) -> dict:
    o = ctx.options
    scores = {o.criterion: _read_scores(ctx.path("scores.json"), o.criterion)}
    # wide layers (CNN channels) get evenly spaced points, as `prune-info ablate` does
    report = ablate_checkpoint(ctx.load("model.pt"), ctx.data,
                               AblationConfig(criteria=(o.criterion,), random=o.random,
                                              seed=o.seed),
                               scores=scores, progress=o.progress)
    curves = report.curves["layerwise"]
    document = curves.to_dict()
    plot_curves(document, ctx.path("curves.png"),
                title=f"cumulative ablation by {o.criterion} ({ctx.data.name}, test)")
    write_json(document, ctx.path("curves.json"), "prune-info-curves")
    summary = {}
    for scope, by_label in curves.counts.items():
        half = curves.units[scope] // 2  # the nearest computed point on a sparse curve
        summary[scope] = {label: float(np.mean(curves.counts_at(scope, label, half).tolist()))
                          / curves.n_samples for label in by_label}
    return {"accuracy_at_half": summary}


def _stage_oinfo(ctx: Context) -> dict:
    o = ctx.options
    ckpt = ctx.load("model.pt")
    document = oinfo_checkpoint(ckpt, ctx.data, max_exhaustive=o.max_exhaustive,
                                max_size=o.max_size, seed=o.seed, progress=o.progress)
    plot_oinfo(document.results, ctx.path("oinfo.png"),
               title=f"O-information of {ckpt.spec} on {ctx.data.name} (val)")
    document.write(ctx.path("oinfo.json"))
    return {"layers": {layer["layer"]: layer["dominance"] for layer in document.layers}}


def _stage_prune(ctx: Context) -> dict:
    o = ctx.options
    config = o.prune_config()
    config.validate()
    result = prune_checkpoint(ctx.load("model.pt"), ctx.data, config)
    save_checkpoint(result.checkpoint, ctx.path("pruned.pt"))
    return {k: v for k, v in result.summary.to_dict().items() if k != "removed"}


def _stage_retrain(ctx: Context) -> dict:
    o = ctx.options
    ckpt, report = retrain_checkpoint(ctx.load("pruned.pt"), ctx.data,
                                      RetrainConfig(epochs=o.retrain_epochs, seed=o.seed),
                                      progress=o.progress)
    save_checkpoint(ckpt, ctx.path("retrained.pt"))
    return report.run.record()


def _stage_export(ctx: Context) -> dict:
    report = export_onnx(ctx.load("retrained.pt"), ctx.path("retrained.onnx"),
                         sample=ctx.data.val.head(256).x)
    summary = report.to_dict()
    summary.pop("metadata", None)
    return summary


def _stage_bench(ctx: Context) -> dict:
    o = ctx.options
    models = [*(ctx.load(n) for n in ("model.pt", "pruned.pt", "retrained.pt")),
              str(ctx.path("retrained.onnx"))]
    results = benchmark_models(models, ctx.data, batches=o.bench_batches, threads=1,
                               repeat=o.bench_repeat, warmup=2, progress=o.progress)
    plot_bench(results, ctx.path("bench.png"), title=f"{ctx.data.name}: accuracy, size, latency")
    BenchReport.of(results, batches=list(o.bench_batches), threads=1,
                   repeat=o.bench_repeat).write(ctx.path("bench.json"))
    return {"models": [{"name": r.name, "test_acc": r.test_acc, "parameters": r.parameters}
                       for r in results]}


def _stage_report(ctx: Context) -> dict:
    write_report(ctx.out, ctx.path("report.html"), ctx.options)
    return {"path": str(ctx.path("report.html"))}


def _no_options(o: RunOptions) -> dict:
    return {}


STAGES: list[Stage] = [
    Stage("train", lambda o: {**o.identity(), "epochs": o.epochs if o.model is None else None,
                              "seed": o.seed}, (), ("model.pt",), _stage_train,
          "train the model (or copy --model)"),
    Stage("score", lambda o: {"criteria": _score_criteria(o)}, ("train",),
          ("scores.json", "scores.png"), _stage_score, "per-unit entropy, MI, KL"),
    Stage("ablate", lambda o: {"criterion": o.criterion, "random": o.random},
          ("train", "score"), ("curves.json", "curves.png"), _stage_ablate,
          "cumulative ablation curves"),
    Stage("oinfo", lambda o: {"max_exhaustive": o.max_exhaustive, "max_size": o.max_size},
          ("train",), ("oinfo.json", "oinfo.png"), _stage_oinfo, "synergy / redundancy"),
    Stage("prune", RunOptions.prune_options, ("train",),
          ("pruned.pt",), _stage_prune, "remove units"),
    Stage("retrain", lambda o: {"epochs": o.retrain_epochs}, ("prune",), ("retrained.pt",),
          _stage_retrain, "fine-tune the pruned model"),
    Stage("export", _no_options, ("retrain",), ("retrained.onnx",), _stage_export,
          "ONNX export and check"),
    Stage("bench", lambda o: {"repeat": o.bench_repeat, "batches": list(o.bench_batches)},
          ("train", "prune", "retrain", "export"), ("bench.json", "bench.png"), _stage_bench,
          "accuracy, size, latency"),
    Stage("report", _no_options, ("train", "score", "ablate", "oinfo", "prune", "retrain",
                                  "export", "bench"), ("report.html",), _stage_report,
          "HTML report"),
]


# --------------------------------------------------------------------------------------------
# Manifest


def _hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _manifest_identity(path: Path):
    """The identity of the run a manifest records (None: it finished no stage yet)."""
    def identity_of(doc: dict) -> dict | None:
        stages = doc.get("stages", {})
        if not isinstance(doc.get("identity", {}), dict) or not isinstance(stages, dict) \
                or not all(isinstance(entry, dict) for entry in stages.values()):
            raise malformed(path, "its identity and stages are not JSON objects",
                            f"choose another `out`, or delete {path} to rerun every stage")
        return doc.get("identity", {}) if stages else None  # no stage yet: nothing to protect
    return identity_of


def run_directory(out: str | Path) -> RunDirectory:
    """The run directory of a pipeline: its manifest (``run.json``) records the run."""
    record = Path(out) / MANIFEST
    return RunDirectory(out, MANIFEST, RUN_FORMAT, what="a prune-info run's manifest",
                        other="a different run", param="out",
                        identity_of=_manifest_identity(record), claims=False)


def _write_manifest(out: Path, manifest: dict) -> None:
    payload = {k: v for k, v in manifest.items() if k not in ("format", "format_version")}
    write_json(payload, out / MANIFEST, RUN_FORMAT)


def check_out_dir(out: str | Path, options: RunOptions) -> dict | None:
    """Refuse an ``out`` that is a file, a foreign directory or another run's, and a ``model``
    that is not there; nothing is written.

    Returns the existing manifest (or ``None`` for a new or empty directory).
    """
    if options.model is not None and not Path(options.model).is_file():
        raise PruneInfoError(f"`model`={options.model} does not exist")
    return run_directory(out).check(options.identity())


def _artefact_problem(out: Path, stage: Stage, entry: dict) -> str | None:
    """Why the artefacts of a finished stage cannot be reused as they are, or None.

    They must hold exactly what the stage wrote: a file damaged, truncated or replaced since
    (another model, another format) has another sha256. A manifest without digests (an older
    prune-info's) cannot vouch for its files, so the stage reruns too.
    """
    recorded = entry.get("sha256")
    if not isinstance(recorded, dict) or not all(isinstance(recorded.get(a), str)
                                                 for a in stage.artefacts):
        return "no checksums of its files recorded"
    changed = [a for a in stage.artefacts if recorded[a] != file_sha256(out / a)]
    return f"{', '.join(changed)} changed since written" if changed else None


def _status(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_pipeline(out: str | Path, options: RunOptions, *, command: str | None = None,
                 stages: list[Stage] | None = None) -> dict:
    """Run (or resume) every stage into ``out``; returns the final manifest.

    Raises
    ------
    PruneInfoError
        ``out`` refused (nothing written), or ``stage <name> failed: ...``.
    """
    stages = STAGES if stages is None else stages
    out = Path(out)
    options.validate()
    check_out_dir(out, options)
    ctx = Context(options, out)
    if options.arch is not None:  # the spec against the data, before training starts
        data = ctx.data
        parse_arch(options.arch, data.input_shape, data.n_classes, options.act, options.reg)
    elif options.factory is not None:  # the model against the data, likewise
        check_model_takes(build_factory_model(options.factory, options.factory_kwargs),
                          ctx.data)
    # failing before it wrote anything leaves no trace (and nothing to refuse a rerun)
    with run_directory(out).owned(options.identity()) as old:
        return _run_locked(ctx, command, stages, old or {})


def _save_failed(out: Path, manifest: dict) -> None:
    """After a failed stage: record the stages still valid (no manifest if there are none)."""
    if manifest["stages"] or (out / MANIFEST).exists():
        _write_manifest(out, manifest)


def _run_locked(ctx: Context, command: str | None, stages: list[Stage], old: dict) -> dict:
    out, options = ctx.out, ctx.options
    old_stages = old.get("stages", {})
    manifest: dict[str, Any] = {
        "identity": options.identity(),
        "options": {**asdict(options), "bench_batches": list(options.bench_batches)},
        "command": command or "prune-info run " + shlex.join(
            options.cli_args() + ["--out", str(out)]),
        "stages": dict(old_stages)}
    fingerprints: dict[str, str] = {}
    rerun: set[str] = set()
    for index, stage in enumerate(stages, 1):
        fp = _hash({"stage": stage.name, "options": stage.options(options),
                    "deps": [fingerprints[d] for d in stage.deps]})
        fingerprints[stage.name] = fp
        entry = old_stages.get(stage.name)
        missing = [a for a in stage.artefacts if not (out / a).is_file()]
        reasons = []
        if entry is None:
            reasons.append("not run yet")
        elif entry.get("fingerprint") != fp:
            reasons.append("options changed")
        if missing and entry is not None:
            reasons.append(f"missing {', '.join(missing)}")
        elif entry is not None and (problem := _artefact_problem(out, stage, entry)):
            reasons.append(problem)
        upstream = [d for d in stage.deps if d in rerun]
        if upstream and entry is not None:
            reasons.append(f"{', '.join(upstream)} reran")
        head = f"stage {index}/{len(stages)}: {stage.name}"
        if not reasons:
            _status(f"{head} ... reused")
            continue
        _status(f"{head} ({stage.description}; {', '.join(reasons)}) ...")
        manifest["stages"].pop(stage.name, None)
        start = time.perf_counter()
        try:
            summary = stage.fn(ctx)
        except PruneInfoError as exc:
            _save_failed(out, manifest)
            raise PruneInfoError(f"stage {stage.name} failed: {exc}") from exc
        except Exception as exc:  # noqa: BLE001  a bug or a library error: still name the stage
            _save_failed(out, manifest)
            raise PruneInfoError(
                f"stage {stage.name} failed: {type(exc).__name__}: {exc} (the traceback "
                "is its __cause__; earlier stages' artefacts are kept)"
            ) from exc
        seconds = round(time.perf_counter() - start, 2)
        rerun.add(stage.name)
        manifest["stages"][stage.name] = {
            "fingerprint": fp, "artefacts": list(stage.artefacts),
            "sha256": {a: file_sha256(out / a) for a in stage.artefacts}, "seconds": seconds,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S"), "summary": summary or {},
        }
        _write_manifest(out, manifest)
        _status(f"{head} done in {seconds:.1f} s")
    manifest["reran"] = [s.name for s in stages if s.name in rerun]
    return manifest
