"""Experiment tracking: a finished run's parameters, metrics and artefacts, logged to MLflow.

A command that tracks (``--track mlflow[:URI]``) builds its tracker *before* any work, so a store
that cannot be written is refused at once, then logs one :class:`TrackedRun` when it has
finished: the run directory stays the record of the results, the tracker a searchable copy.

* :func:`study_run`: a study's configuration as parameters; per scenario the test accuracy (mean,
  std, and each seed's as the metric's history, step = seed); per mode, scope and ordering the
  mean accuracy, the mean gap MG@k against random ablation and its Wilcoxon p-value at every
  ``k``; the Kolmogorov-Smirnov comparisons; ``config.json``, ``results.json``, ``table.txt``
  and the figures as artefacts.
* :func:`pipeline_run`: a ``run`` directory's options as parameters; every number of its stage
  summaries (accuracies, parameters and MACs before / after, O-information extremes, ...) and
  every latency of ``bench.json`` as metrics; the JSON documents, figures and ``report.html`` as
  artefacts (not the model files).

Metric names are ``/``-separated paths, e.g. ``relu-l2/layerwise/fc1/mi:low/mg_k80``.

MLflow is an optional extra (``pip install 'prune-info[mlflow]'``), imported when a tracker is
made, never by ``import prune_info``.

Examples
--------
>>> parse_track("mlflow:http://127.0.0.1:5000")
('mlflow', 'http://127.0.0.1:5000')
>>> metric_key("relu-l2", "layerwise", "fc1", "mi:low", "mg@80")
'relu-l2/layerwise/fc1/mi:low/mg_80'
"""

from __future__ import annotations

import json
import math
import os
import re
import socket
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlparse

from prune_info._version import __version__
from prune_info.errors import PruneInfoError
from prune_info.experiments.study_results import StudyResult
from prune_info.io import check_writable_dir

__all__ = ["TRACKERS", "MlflowTracker", "TrackedRun", "Tracker", "make_tracker", "metric_key",
           "parse_track", "pipeline_run", "study_run"]

#: Tracking back ends accepted by :func:`make_tracker` (and ``--track``).
TRACKERS = ("mlflow",)
#: Seconds to wait for a tracking server to answer before giving up.
CONNECT_TIMEOUT = 5.0
_INSTALL = "pip install 'prune-info[mlflow]'"
_BAD_CHARACTER = re.compile(r"[^\w./\- :]")
#: Artefacts of a ``run`` directory worth keeping with the run (the models are left out).
_PIPELINE_ARTEFACTS = ("*.json", "*.png", "report.html")


@dataclass
class TrackedRun:
    """What a tracker logs for one finished run."""

    experiment: str
    name: str
    params: dict[str, str] = field(default_factory=dict)
    #: ``{name: value}``, or ``{name: [(step, value), ...]}`` for a metric's history.
    metrics: dict[str, float | list[tuple[int, float]]] = field(default_factory=dict)
    artifacts: list[Path] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)


class Tracker(Protocol):
    """Logs finished runs somewhere searchable."""

    name: str
    uri: str

    def log(self, run: TrackedRun) -> str:
        """Log ``run``; returns its id in the tracker."""
        ...


def parse_track(spec: str) -> tuple[str, str | None]:
    """``"mlflow"`` -> ``("mlflow", None)``; ``"mlflow:URI"`` -> ``("mlflow", "URI")``."""
    kind, sep, uri = spec.partition(":")
    if kind not in TRACKERS:
        raise PruneInfoError(f"unknown `track` {spec!r}; give mlflow or mlflow:URI (a directory, "
                             "file:, http:// or https:// tracking URI)")
    if sep and not uri:
        raise PruneInfoError("`track`=mlflow: names no URI; give mlflow alone (./mlruns) or "
                             "mlflow:URI")
    if uri:
        _check_store_uri(uri)
    return kind, uri or None


#: Tracking URI schemes prune-info logs to: a file store, a tracking server, MLflow's database
#: stores (which need the full ``mlflow`` package). A path has no scheme (or a drive letter).
STORE_SCHEMES = ("file", "http", "https", "sqlite", "postgresql", "mysql", "mssql")

#: Bare names MLflow reads as a remote workspace, not as a directory.
_WORKSPACE_NAMES = ("databricks", "databricks-uc", "uc")


def _check_store_uri(uri: str) -> None:
    """Refuse a tracking URI prune-info does not support, rather than guess at it.

    ``databricks`` (or ``databricks-uc``, ``uc``) is MLflow's name of a Databricks workspace;
    taken as a path it would quietly log into a local directory of that name.
    """
    scheme = urlparse(uri).scheme
    base = scheme.split("+")[0]  # postgresql+psycopg2://
    if uri in _WORKSPACE_NAMES or (scheme and len(scheme) > 1 and base not in STORE_SCHEMES):
        raise PruneInfoError(
            f"`track`=mlflow:{uri} names a tracking store prune-info does not support "
            f"(supported: a directory, {', '.join(s + ':' for s in STORE_SCHEMES)}); for a "
            f"local directory of that name write mlflow:./{uri}")


def make_tracker(spec: str | None) -> Tracker | None:
    """The tracker ``spec`` names (``mlflow[:URI]``), checked writable; ``None`` for no spec."""
    if spec is None:
        return None
    _, uri = parse_track(spec)
    return MlflowTracker(uri)


def _local_store(uri: str | None) -> Path | None:
    """The directory of a file-store URI (a path, or ``file:``); ``None`` for other schemes."""
    if uri is None:
        return Path.cwd() / "mlruns"
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme == "" or len(parsed.scheme) == 1:  # a path (or a Windows drive letter)
        return Path(uri).resolve()
    return None


def _check_server(uri: str) -> None:
    parsed = urlparse(uri)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname or "", port), timeout=CONNECT_TIMEOUT):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise PruneInfoError(f"no MLflow tracking server answers at `track`=mlflow:{uri} "
                             f"({reason}, waited at most {CONNECT_TIMEOUT:g} s); start it, or "
                             "track to a directory (mlflow:DIR)") from None


class MlflowTracker:
    """Logs runs to MLflow: a local file store (default ``./mlruns``) or a tracking server.

    Parameters
    ----------
    uri : str, optional
        A directory, ``file:`` URI, ``http(s)://`` server, or any URI MLflow takes
        (``sqlite:///...`` needs the full ``mlflow`` package). Default ``./mlruns``.

    Raises
    ------
    PruneInfoError
        MLflow is not installed, or the store cannot be written or reached.
    """

    name = "mlflow"

    def __init__(self, uri: str | None = None) -> None:
        try:
            from mlflow.tracking import MlflowClient
        except ImportError:
            raise PruneInfoError(f"`track`=mlflow needs MLflow, which is not installed: "
                                 f"{_INSTALL}") from None
        store = _local_store(uri)
        shown = f"mlflow:{uri}" if uri is not None else "mlflow (./mlruns)"
        if store is not None:
            try:
                check_writable_dir(store)
            except PruneInfoError as exc:
                raise PruneInfoError(f"cannot track to `track`={shown}: {exc}") from None
            # MLflow 3 keeps its file store for existing users only unless told otherwise; a
            # directory of runs needs no database and is what a laptop or a cluster's shared
            # disk has. MLflow reads the variable whenever it opens the store, so it stays set
            # for the rest of the process (a value the user set is left alone).
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
            self.uri = store.as_uri()
        else:
            if urlparse(uri).scheme in ("http", "https"):
                _check_server(str(uri))
            self.uri = str(uri)
        try:
            self.client = MlflowClient(tracking_uri=self.uri)
            self.client.search_experiments(max_results=1)
        except Exception as exc:  # noqa: BLE001  any failure of the store is the user's to fix
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise PruneInfoError(f"cannot track to `track`={shown}: {first}") from None

    def log(self, run: TrackedRun) -> str:
        """Log ``run`` (creating its experiment when new); returns the MLflow run id."""
        from mlflow.entities import Metric, Param, RunTag

        client = self.client
        try:
            experiment = client.get_experiment_by_name(run.experiment)
            experiment_id = (experiment.experiment_id if experiment is not None
                             else client.create_experiment(run.experiment))
            created = client.create_run(experiment_id, run_name=run.name, tags=run.tags)
        except Exception as exc:  # noqa: BLE001  a store gone or refusing: the user's to fix
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise PruneInfoError(f"logging to MLflow at {self.uri} failed ({first}); the run's "
                                 "own files are complete") from exc
        run_id = created.info.run_id
        try:
            now = int(time.time() * 1000)
            params = [Param(k, v) for k, v in run.params.items()]
            metrics = [Metric(k, v, now, step)
                       for k, value in run.metrics.items()
                       for step, v in (value if isinstance(value, list) else [(0, value)])]
            for chunk in _chunks(params, 100):
                client.log_batch(run_id, params=chunk)
            for chunk in _chunks(metrics, 1000):
                client.log_batch(run_id, metrics=chunk)
            client.log_batch(run_id, tags=[RunTag("prune_info.artifacts",
                                                  str(len(run.artifacts)))])
            for path in run.artifacts:
                client.log_artifact(run_id, str(path))
        except Exception as exc:
            client.set_terminated(run_id, "FAILED")
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise PruneInfoError(f"logging to MLflow at {self.uri} failed ({first}); the run's "
                                 "own files are complete") from exc
        client.set_terminated(run_id, "FINISHED")
        return run_id


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def metric_key(*parts: str) -> str:
    """A metric name from path parts; characters MLflow refuses become ``_``."""
    return "/".join(_BAD_CHARACTER.sub("_", str(p)) for p in parts)


def _param_value(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    text = value if isinstance(value, str) else json.dumps(value)
    return text[:6000]


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _base_tags(command: str, root: Path) -> dict[str, str]:
    return {"prune_info.command": command, "prune_info.out_dir": str(root.resolve()),
            "prune_info.version": __version__}


# --------------------------------------------------------------------------------------------
# What a study and a pipeline run log


def study_run(results: StudyResult, root: str | os.PathLike, *,
              experiment: str = "prune-info-study") -> TrackedRun:
    """The tracked record of a finished study (``results`` as :func:`run_study` returns it)."""
    root = Path(root)
    params = {k: _param_value(v) for k, v in results.config.items() if k != "seeds"}
    params["seeds"] = str(len(results.seeds))
    params["seed_list"] = _param_value(results.seeds)
    params["at"] = _param_value(results.at)
    metrics: dict[str, float | list[tuple[int, float]]] = {}
    for scenario, entry in results.scenarios.items():
        metrics[metric_key(scenario, "test_acc_mean")] = entry.test_acc["mean"]
        metrics[metric_key(scenario, "test_acc_std")] = entry.test_acc["std"]
    for scenario, mode, scope, block in results.scopes():
        for gap in block.gaps:
            base = (scenario, mode, scope, gap["label"])
            k = gap["k"]
            metrics[metric_key(*base, f"mg_k{k}")] = gap["gap"]
            if gap["p_value"] is not None:
                metrics[metric_key(*base, f"p_value_k{k}")] = gap["p_value"]
        for k in results.at:
            if k > block.units:
                continue
            for label, curve in block.curves.items():
                metrics[metric_key(scenario, mode, scope, label, f"acc_k{k}")] = curve["mean"][k]
    for test in results.ks:
        pair = f"{test['a'].replace('/', '.')}_vs_{test['b'].replace('/', '.')}"
        metrics[metric_key("ks", pair, f"gap_k{test['k']}")] = test["gap"]
        if test.get("p_value") is not None:
            metrics[metric_key("ks", pair, f"p_value_k{test['k']}")] = test["p_value"]
    for scenario in results.scenarios:
        history = _seed_accuracies(root, scenario, results.seeds)
        if history:
            metrics[metric_key(scenario, "test_acc")] = history
    artifacts = [root / name for name in ("config.json", "results.json", "table.txt",
                                          *results.figures)]
    return TrackedRun(experiment, root.name, params,
                      {k: v for k, v in metrics.items() if _finite(v)},
                      [p for p in artifacts if p.is_file()], _base_tags("study", root))


def _seed_accuracies(root: Path, scenario: str, seeds: Sequence[int]) -> list[tuple[int, float]]:
    out = []
    for seed in seeds:
        path = root / scenario / f"seed-{seed:04d}" / "curves.json"
        if path.is_file():
            value = _number(json.loads(path.read_text()).get("test_acc"))
            if value is not None:
                out.append((int(seed), value))
    return out


def _finite(value: float | list[tuple[int, float]]) -> bool:
    if isinstance(value, list):
        return bool(value)
    return _number(value) is not None


def _flatten(value: Any, prefix: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], float]]:
    """Every finite number under ``value``, with its path (list items by their ``name``)."""
    number = _number(value)
    if number is not None:
        yield prefix, number
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _flatten(item, (*prefix, str(key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            name = item.get("name", index) if isinstance(item, dict) else index
            yield from _flatten(item, (*prefix, str(name)))


def pipeline_run(manifest: dict, out: str | os.PathLike, *,
                 experiment: str = "prune-info-run") -> TrackedRun:
    """The tracked record of a finished ``run`` (its manifest, as :func:`run_pipeline` returns)."""
    out = Path(out)
    options = {k: v for k, v in manifest.get("options", {}).items() if k != "progress"}
    params = {k: _param_value(v) for k, v in options.items() if v is not None}
    metrics: dict[str, float | list[tuple[int, float]]] = {}
    for stage, entry in manifest.get("stages", {}).items():
        if stage == "bench":
            continue  # from bench.json below, latencies included
        for path, number in _flatten(entry.get("summary", {}), (stage,)):
            metrics[metric_key(*path)] = number
    bench = out / "bench.json"
    if bench.is_file():
        for model in json.loads(bench.read_text()).get("models", []):
            name = model.get("name", "model")
            for key in ("test_acc", "parameters", "macs", "file_bytes"):
                found = _number(model.get(key))
                if found is not None:
                    metrics[metric_key("bench", name, key)] = found
            for entry in model.get("latency", []):
                base = ("bench", name, entry.get("runtime", "?"), f"batch{entry.get('batch')}")
                for key in ("median_ms", "speedup"):
                    found = _number(entry.get(key))
                    if found is not None:
                        metrics[metric_key(*base, key)] = found
    artifacts = sorted({p for pattern in _PIPELINE_ARTEFACTS for p in out.glob(pattern)
                        if p.is_file()})
    tags = _base_tags("run", out)
    if manifest.get("command"):
        tags["prune_info.reproduce"] = str(manifest["command"])[:5000]
    return TrackedRun(experiment, out.name, params, metrics, artifacts, tags)
