"""Accuracy, size and latency of models, in PyTorch eager and in onnxruntime.

:func:`benchmark_models` takes prune-info checkpoints (dense or pruned) and ONNX files written by
``prune-info export`` and measures, for each: test accuracy, parameters, multiply-accumulates
(MACs) of one sample, file size, and latency at several batch sizes.

Latency is measured as :mod:`prune_info.deploy.timing` describes.

Each model's figures are also given relative to the first model: ``mac_ratio`` (first model's
MACs / this model's) and, per latency entry, ``speedup`` (first model's median / this median).

Examples
--------
>>> rows = benchmark_models(["dense.pt", "pruned.pt"], batches=[1, 256])  # doctest: +SKIP
>>> [(r.name, r.parameters, r.mac_ratio) for r in rows]                   # doctest: +SKIP
[('dense.pt', 89610, 1.0), ('pruned.pt', 42310, 2.118)]
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from prune_info._torch import (
    resolve_device,
    time_interleaved,
    timing_input,
    torch_threads,
    torch_timer,
)
from prune_info.checkpoint import Checkpoint, clone_model, load_checkpoint
from prune_info.data import (
    Dataset,
    MappedSplit,
    Samples,
    Split,
    load_dataset_like,
    match_classes,
    recorded_classes,
)
from prune_info.deploy.onnx import convert_checkpoint, count_macs, model_input_shape
from prune_info.deploy.onnx_runtime import (
    OnnxModel,
    load_onnx,
    looks_like_onnx,
    ort_session,
    run_onnx,
)
from prune_info.deploy.timing import latency_stats, onnx_cuda_available, onnx_timer
from prune_info.errors import PruneInfoError
from prune_info.io import atomic_write
from prune_info.nn import accuracy, count_parameters

#: ``format`` key of the JSON document.
BENCH_FORMAT = "prune-info-bench"
DEFAULT_BATCHES = (1, 32, 256, 4096)
DEFAULT_REPEAT = 20
DEFAULT_WARMUP = 3
RUNTIMES = ("torch", "onnxruntime")
#: Columns of :func:`flat_rows` (and of the CSV file), in order.
CSV_COLUMNS = (
    "model", "path", "format", "arch", "dataset", "pruning_steps", "test_acc", "parameters",
    "macs", "file_bytes", "onnx_bytes", "mac_ratio", "runtime", "device", "threads", "batch",
    "repeat", "median_ms", "p90_ms", "min_ms", "samples_per_s", "speedup",
)


# --------------------------------------------------------------------------------------------
# Results


def _field_dict(obj) -> dict:
    return {f.name: getattr(obj, f.name) for f in fields(obj)}


@dataclass(frozen=True)
class LatencyEntry:
    """Latency of one model on one (runtime, device, batch size).

    Attributes
    ----------
    runtime : {"torch", "onnxruntime"}
    device : {"cpu", "cuda"}
    threads : int
        Intra-op threads of the runtime.
    batch : int
    median_ms, p90_ms, min_ms : float
        Median, 90th percentile and minimum of the per-call times, in milliseconds.
    repeat : int
        Timed calls.
    samples_per_s : float
        Throughput at the median (``inf`` for a zero median).
    speedup : float, optional
        The first model's median on the same (runtime, device, batch) over this one's; ``None``
        when the first model has no such entry.
    """

    runtime: str
    device: str
    threads: int
    batch: int
    median_ms: float
    p90_ms: float
    min_ms: float
    repeat: int
    samples_per_s: float
    speedup: float | None = None

    @classmethod
    def from_dict(cls, entry: dict) -> LatencyEntry:
        """Read one entry of a result's ``latency`` list (as :meth:`to_dict` writes it)."""
        values: dict[str, Any] = {f.name: entry.get(f.name) for f in fields(cls)}
        return cls(**values)

    def to_dict(self) -> dict:
        """The entry as it appears in the JSON document's ``latency`` lists."""
        return _field_dict(self)


@dataclass(frozen=True)
class BenchRow:
    """One CSV row of a benchmark: a model on one (runtime, device, batch size).

    The fields are :data:`CSV_COLUMNS`, in order; timing fields are ``None`` for a model
    without latency entries.

    Attributes
    ----------
    model : str
        The model's name (:attr:`BenchResult.name`).
    path, format, arch, dataset, pruning_steps, test_acc, parameters, macs
        As in :class:`BenchResult`.
    file_bytes, onnx_bytes, mac_ratio
        As in :class:`BenchResult`.
    runtime, device, threads, batch, repeat, median_ms, p90_ms, min_ms, samples_per_s, speedup
        As in :class:`LatencyEntry`.
    """

    model: str
    path: str | None = None
    format: str | None = None
    arch: str | None = None
    dataset: str | None = None
    pruning_steps: int | None = None
    test_acc: float | None = None
    parameters: int | None = None
    macs: int | None = None
    file_bytes: int | None = None
    onnx_bytes: int | None = None
    mac_ratio: float | None = None
    runtime: str | None = None
    device: str | None = None
    threads: int | None = None
    batch: int | None = None
    repeat: int | None = None
    median_ms: float | None = None
    p90_ms: float | None = None
    min_ms: float | None = None
    samples_per_s: float | None = None
    speedup: float | None = None

    def to_dict(self) -> dict:
        """The row as :func:`flat_rows` gives it (keys :data:`CSV_COLUMNS`, in order)."""
        return _field_dict(self)


@dataclass(frozen=True)
class BenchResult:
    """What :func:`benchmark_models` measured of one model.

    Attributes
    ----------
    name : str
        Label in tables and plots (the file name, made unique).
    path : str or None
    format : {"checkpoint", "onnx"}
    arch : str or None
        Architecture spec (``"64-32-24-10"``), if known.
    dataset : str
        Name of the test data.
    pruning_steps : int
    file_bytes : int or None
        Size of the file given.
    test_acc : float
        Accuracy on the test split, measured.
    recorded_test_acc : float or None
        The test accuracy the model records.
    parameters : int
    macs : int or None
        Multiply-accumulates of one sample.
    onnx_bytes : int or None
        Size of the ONNX form (converted in memory for a checkpoint).
    latency : tuple of LatencyEntry
    mac_ratio : float, optional
        The first model's MACs over this one's.
    """

    name: str
    path: str | None
    format: str
    arch: str | None
    dataset: str
    pruning_steps: int
    file_bytes: int | None
    test_acc: float | None
    recorded_test_acc: float | None
    parameters: int | None
    macs: int | None
    onnx_bytes: int | None
    latency: tuple[LatencyEntry, ...] = ()
    mac_ratio: float | None = None

    @classmethod
    def from_dict(cls, row: dict) -> BenchResult:
        """Read one model of the JSON document's ``models`` list (as :meth:`to_dict` writes)."""
        values: dict[str, Any] = {f.name: row.get(f.name) for f in fields(cls)}
        values["latency"] = tuple(e if isinstance(e, LatencyEntry) else LatencyEntry.from_dict(e)
                                  for e in row.get("latency") or ())
        return cls(**values)

    def to_dict(self) -> dict:
        """The model's entry of the JSON document (``latency`` as a list of dicts)."""
        out = _field_dict(self)
        out["latency"] = [entry.to_dict() for entry in self.latency]
        return out

    def rows(self) -> list[BenchRow]:
        """One :class:`BenchRow` per latency entry (one with empty timing if there is none)."""
        base: dict[str, Any] = {
            "model": self.name, "path": self.path, "format": self.format,
            "arch": self.arch, "dataset": self.dataset,
            "pruning_steps": self.pruning_steps, "test_acc": self.test_acc,
            "parameters": self.parameters, "macs": self.macs,
            "file_bytes": self.file_bytes, "onnx_bytes": self.onnx_bytes,
            "mac_ratio": self.mac_ratio}
        return [BenchRow(**base, **entry.to_dict()) for entry in self.latency] or [
            BenchRow(**base)]


def _as_result(result: BenchResult | dict) -> BenchResult:
    return result if isinstance(result, BenchResult) else BenchResult.from_dict(result)


# --------------------------------------------------------------------------------------------
# Models to measure


@dataclass
class BenchModel:
    """One model to measure: a checkpoint or an ONNX file, with what is known about it.

    Attributes
    ----------
    name : str
        Label in tables and plots (the file name).
    path : str or None
    kind : {"checkpoint", "onnx"}
    ckpt : Checkpoint or None
        The PyTorch model, for checkpoints.
    onnx : OnnxModel or None
        The file's model, for ONNX inputs.
    dataset : dict
        Dataset record (name, input_shape, normalisation, split_seed, ...).
    input_shape : tuple of int or None
    file_bytes : int or None
        Size of the file given.
    """

    name: str
    path: str | None
    kind: str
    ckpt: Checkpoint | None = None
    onnx: OnnxModel | None = None
    dataset: dict = field(default_factory=dict)
    input_shape: tuple[int, ...] | None = None
    file_bytes: int | None = None

    @property
    def spec(self) -> str | None:
        if self.ckpt is not None:
            return self.ckpt.spec
        return self.onnx.metadata.get("spec") if self.onnx else None

    @property
    def pruning_steps(self) -> int:
        if self.ckpt is not None:
            return len(self.ckpt.pruning_history)
        return int(self.onnx.metadata.get("pruning_steps", 0)) if self.onnx else 0


def _neither(path: Path) -> PruneInfoError:
    return PruneInfoError(
        f"{path} is neither a prune-info checkpoint nor an ONNX model; give .pt files written "
        "by prune-info and .onnx files written by prune-info export"
    )


def open_bench_model(source: str | os.PathLike | Checkpoint, trust_pickle: bool = False,
                     trust_factory: bool = False) -> BenchModel:
    """A checkpoint file, an ONNX file, or a loaded :class:`Checkpoint`, ready to measure.

    The kind of a file is told by its ``.onnx`` suffix or its content (a ``torch.save`` archive
    or a protobuf ``ModelProto``), not by the ``.pt`` suffix.
    """
    if isinstance(source, Checkpoint):
        src = source.source
        size = os.path.getsize(src) if src and os.path.isfile(src) else None
        return BenchModel(Path(src).name if src else "model", src, "checkpoint", ckpt=source,
                          dataset=dict(source.dataset), input_shape=model_input_shape(source),
                          file_bytes=size)
    path = Path(source)
    if not path.exists():
        raise PruneInfoError(f"{path}: no such file; check the path")
    if path.is_dir():
        raise PruneInfoError(f"{path} is a directory; give a .pt or .onnx file")
    if looks_like_onnx(path):
        model = load_onnx(path)
        meta = model.metadata
        shape = tuple(meta["input_shape"]) if meta.get("input_shape") else model.input_shape
        return BenchModel(path.name, str(path), "onnx", onnx=model,
                          dataset=dict(meta.get("dataset") or {}), input_shape=shape,
                          file_bytes=model.file_bytes)
    with open(path, "rb") as fh:
        head = fh.read(2)
    if head[:2] != b"PK" and head[:1] != b"\x80":
        raise _neither(path)
    ckpt = load_checkpoint(path, trust_pickle=trust_pickle, trust_factory=trust_factory)
    return BenchModel(path.name, str(path), "checkpoint", ckpt=ckpt, dataset=dict(ckpt.dataset),
                      input_shape=model_input_shape(ckpt), file_bytes=path.stat().st_size)


def _unique_names(models: list[BenchModel]) -> None:
    """Label equal file names by their paths, so tables and plots stay unambiguous."""
    names = [m.name for m in models]
    for m in models:
        if names.count(m.name) > 1:
            m.name = m.path or m.name
    seen: dict[str, int] = {}
    for m in models:
        seen[m.name] = seen.get(m.name, 0) + 1
        if seen[m.name] > 1:
            m.name = f"{m.name}#{seen[m.name]}"


# --------------------------------------------------------------------------------------------
# Data


def _restandardise(split: Samples, have: dict, want: dict) -> Samples:
    """Re-express a standardised split in another stored normalisation (same raw pixels), batch
    by batch as it is read."""
    def vec(norm: dict, key: str) -> torch.Tensor:
        return torch.tensor(norm[key], dtype=torch.float32)[None, :, None, None]

    def again(x: torch.Tensor) -> torch.Tensor:
        raw = x * vec(have, "std") + vec(have, "mean")  # = pixels * scale
        raw = raw * (float(want["scale"]) / float(have["scale"]))
        return (raw - vec(want, "mean")) / vec(want, "std")

    if isinstance(split, Split):  # in memory already: as before
        return Split(again(split.x).contiguous(), split.y)
    return MappedSplit(split, again, tuple(split.sample_shape), "the test split")


def _same_normalisation(a: dict, b: dict) -> bool:
    try:
        return (np.allclose(a["mean"], b["mean"], rtol=1e-5, atol=1e-6)
                and np.allclose(a["std"], b["std"], rtol=1e-5, atol=1e-6)
                and math.isclose(float(a["scale"]), float(b["scale"]), rel_tol=1e-9))
    except (KeyError, TypeError, ValueError):
        return True  # nothing comparable recorded: take the data as they are


def eval_split_for(model: BenchModel, data: Dataset) -> Samples:
    """The test split, normalised as the model's training data were (from its record)."""
    if model.input_shape is not None and tuple(model.input_shape) != tuple(data.input_shape):
        raise PruneInfoError(
            f"{model.name} takes inputs of shape {list(model.input_shape)} but {data.name} has "
            f"{list(data.input_shape)}; pass the model's dataset as `data`"
        )
    data = match_classes(data, recorded_classes(model.dataset), model.name)
    stored = model.dataset.get("normalisation")
    if (stored and data.normalisation and model.dataset.get("name") == data.name
            and not _same_normalisation(stored, data.normalisation)):
        return _restandardise(data.test, data.normalisation, stored)
    return data.test


class _DataCache:
    """Each model's test data, loaded once per (source, split seed, input shape)."""

    def __init__(self, data: Dataset | str | None, data_dir: str | os.PathLike | None,
                 workers: int, normalize: Any):
        self.data, self.data_dir = data, data_dir
        self.workers, self.normalize = workers, normalize
        self.loaded: dict[tuple[str, int, tuple[int, ...]], Dataset] = {}

    def for_model(self, model: BenchModel) -> Dataset:
        if isinstance(self.data, Dataset):
            return self.data
        described = model.dataset
        name = self.data or described.get("name")
        if not name:
            raise PruneInfoError(f"{model.name} records no dataset; pass `data`")
        key = (name, int(described.get("split_seed", 0) or 0),
               tuple(described.get("input_shape") or ()))
        if key not in self.loaded:  # a model without a record: the source as it is
            self.loaded[key] = load_dataset_like(described, self.data_dir, name=self.data,
                                                 workers=self.workers,
                                                 normalize=self.normalize)
        return self.loaded[key]


def onnx_accuracy(session, split: Samples, batch_size: int = 4096,
                  fixed_batch: int | None = None) -> float:
    """Fraction of a split an onnxruntime session classifies correctly.

    ``fixed_batch``: the batch size a graph without a dynamic batch axis takes; the split is fed
    in batches of exactly that size (the last one padded, its padding ignored).
    """
    if len(split) == 0:
        raise PruneInfoError("cannot compute accuracy on an empty split")
    size = fixed_batch or batch_size
    correct = 0
    for x, y in split.batches(size):
        n = len(x)
        if fixed_batch is not None and n < size:
            x = torch.cat([x, x[:1].expand(size - n, *x.shape[1:])])
        logits = run_onnx(session, x)[:n]
        correct += int((logits.argmax(1) == y.numpy()).sum())
    return correct / len(split)


def _validate(batches: Sequence[int], repeat: int, warmup: int, threads: int | None,
              runtimes: Sequence[str]) -> list[int]:
    batches = [int(b) for b in batches]
    if not batches or any(b < 1 for b in batches):
        raise PruneInfoError(f"batch sizes must be at least 1, got {batches}")
    if repeat < 1:
        raise PruneInfoError(f"`repeat` must be at least 1, got {repeat}")
    if warmup < 0:
        raise PruneInfoError(f"`warmup` must be 0 or more, got {warmup}")
    if threads is not None and threads < 1:
        raise PruneInfoError(f"`threads` must be at least 1, got {threads}")
    unknown = set(runtimes) - set(RUNTIMES)
    if unknown or not runtimes:
        raise PruneInfoError(f"runtimes must be among {', '.join(RUNTIMES)}, got {list(runtimes)}")
    return batches


def benchmark_models(
    models: Iterable[str | os.PathLike | Checkpoint],
    data: Dataset | str | None = None,
    batches: Sequence[int] = DEFAULT_BATCHES,
    device: str | torch.device = "cpu",
    threads: int | None = None,
    repeat: int = DEFAULT_REPEAT,
    *,
    warmup: int = DEFAULT_WARMUP,
    data_dir: str | os.PathLike | None = None,
    opset: int | None = None,
    exporter: str = "auto",
    runtimes: Sequence[str] = RUNTIMES,
    trust_pickle: bool = False,
    trust_factory: bool = False,
    progress: bool = False,
    workers: int = 0,
    normalize: Any = None,
) -> list[BenchResult]:
    """Measure accuracy, size and latency of each model.

    Parameters
    ----------
    models : iterable of path or Checkpoint
        Checkpoint files, ONNX files (from ``prune-info export``), or loaded checkpoints.
    data : Dataset or str, optional
        Test data for every model: a :class:`Dataset` as it is, or a data source (a built-in
        name, ``imagefolder:DIR``, ``npz:FILE``, ``pkg.mod:fn``) loaded for each model at its
        recorded input shape and split seed; default each model's recorded dataset (for ONNX
        files, from their metadata). Read from ``data_dir``.
    batches : sequence of int
        Batch sizes timed.
    device : {"cpu", "cuda", "auto"} or torch.device
        Where PyTorch runs (and onnxruntime's CUDA provider, when present, with ``cuda``).
    threads : int, optional
        Intra-op threads of both runtimes; default PyTorch's current setting.
    repeat, warmup : int
        Timed and untimed calls per (model, runtime, device, batch).
    data_dir : path, optional
        Where the datasets are (see :func:`prune_info.data.load_dataset`).
    opset : int, optional
        Opset of the in-memory ONNX conversion of checkpoints.
    exporter : {"auto", "torchscript", "dynamo"}
    runtimes : sequence of {"torch", "onnxruntime"}
    trust_pickle : bool
        Allow checkpoint files holding a pickled ``nn.Module``.
    trust_factory : bool
        Allow checkpoints that build their model with a factory outside the known zoos.
    progress : bool
        Show a progress bar on stderr (only on a terminal).
    workers, normalize
        How a data source is read (see :func:`prune_info.data.load_dataset`).

    Returns
    -------
    list of BenchResult
        One per model, in order: ``name``, ``path``, ``format``, ``arch``, ``dataset``,
        ``pruning_steps``, ``test_acc``, ``recorded_test_acc``, ``parameters``, ``macs``,
        ``file_bytes``, ``onnx_bytes``, ``mac_ratio`` and ``latency``, a tuple of
        :class:`LatencyEntry` (``runtime``, ``device``, ``threads``, ``batch``, ``median_ms``,
        ``p90_ms``, ``min_ms``, ``repeat``, ``samples_per_s``, ``speedup``).
        :meth:`BenchResult.to_dict` gives the model's entry of the JSON document.
    """
    batches = _validate(batches, repeat, warmup, threads, runtimes)
    dev = resolve_device(device)
    loaded = [open_bench_model(m, trust_pickle, trust_factory) for m in models]
    if not loaded:
        raise PruneInfoError("give at least one model to benchmark")
    _unique_names(loaded)
    for model in loaded:
        if model.onnx is not None and "onnxruntime" in runtimes:
            model.onnx.check_batches(batches)
    n_threads = int(threads) if threads is not None else torch.get_num_threads()
    targets = []  # (runtime, device) pairs timed
    if "torch" in runtimes:
        targets.append(("torch", dev.type))
    if "onnxruntime" in runtimes:
        targets.append(("onnxruntime", "cpu"))
        if dev.type == "cuda" and onnx_cuda_available():
            targets.append(("onnxruntime", "cuda"))
    cache = _DataCache(data, data_dir, workers, normalize)
    bar = tqdm(total=len(loaded) + len(targets) * len(batches), desc="bench",
               disable=None if progress else True, leave=False)
    with torch_threads(n_threads):
        prepared = []
        for model in loaded:
            prepared.append(_prepare(model, cache.for_model(model), dev, n_threads, opset,
                                     exporter, runtimes, targets))
            bar.update()
        for runtime, where in targets:
            for batch in batches:
                _time_target(prepared, runtime, where, batch, dev, n_threads, repeat, warmup)
                bar.update()
    bar.close()
    return add_relative([BenchResult.from_dict(p.row) for p in prepared])


@dataclass
class _Prepared:
    """A model ready to time: its result row so far and its runnable forms."""

    row: dict
    shape: tuple[int, ...]
    torch_model: nn.Module | None = None
    sessions: dict = field(default_factory=dict)  # ort device -> InferenceSession


def _prepare(model: BenchModel, data: Dataset, dev: torch.device, threads: int,
             opset: int | None, exporter: str, runtimes: Sequence[str],
             targets: list[tuple[str, str]]) -> _Prepared:
    """Accuracy, size and cost of one model, and its PyTorch model and onnxruntime sessions."""
    split = eval_split_for(model, data)
    shape = tuple(model.input_shape or data.input_shape)
    row: dict[str, Any] = {
        "name": model.name, "path": model.path, "format": model.kind, "arch": model.spec,
        "dataset": data.name, "pruning_steps": model.pruning_steps, "file_bytes": model.file_bytes,
    }
    prepared = _Prepared(row, shape)
    if model.ckpt is not None:
        torch_model = clone_model(model.ckpt.model).to(dev).eval()
        row["test_acc"] = accuracy(torch_model, split, dev)
        row["recorded_test_acc"] = model.ckpt.metrics.get("test_acc")
        row["parameters"] = count_parameters(torch_model)
        row["macs"] = count_macs(torch_model, shape)
        onnx_data = None
        if "onnxruntime" in runtimes:
            onnx_data, _ = convert_checkpoint(model.ckpt, data.val.head(256).x, opset,
                                              exporter)
        row["onnx_bytes"] = len(onnx_data) if onnx_data is not None else None
        prepared.torch_model = torch_model if "torch" in runtimes else None
    else:
        assert model.onnx is not None  # a BenchModel without a checkpoint holds an ONNX model
        meta = model.onnx.metadata
        onnx_data = model.onnx.data
        session = ort_session(onnx_data, threads=threads, what=model.name)
        row["test_acc"] = onnx_accuracy(session, split, fixed_batch=model.onnx.fixed_batch)
        row["recorded_test_acc"] = (meta.get("metrics") or {}).get("test_acc")
        row["parameters"] = int(meta.get("parameters", model.onnx.parameters))
        row["macs"] = meta.get("macs")
        row["onnx_bytes"] = model.onnx.file_bytes
    if onnx_data is not None:
        for runtime, where in targets:
            if runtime != "onnxruntime":
                continue
            providers = (["CUDAExecutionProvider", "CPUExecutionProvider"] if where == "cuda"
                         else ["CPUExecutionProvider"])
            prepared.sessions[where] = ort_session(onnx_data, providers, threads, what=model.name)
    row["latency"] = []
    return prepared


def _time_target(prepared: list[_Prepared], runtime: str, where: str, batch: int,
                 dev: torch.device, threads: int, repeat: int, warmup: int) -> None:
    """Time every model that runs on (runtime, where) at one batch size, interleaved."""
    timers, owners = [], []
    inputs: dict[tuple[int, ...], torch.Tensor] = {}
    for p in prepared:
        if p.shape not in inputs:
            inputs[p.shape] = timing_input(p.shape, batch)
        x = inputs[p.shape]
        if runtime == "torch" and p.torch_model is not None:
            timers.append(torch_timer(p.torch_model, x.to(dev), dev))
        elif runtime == "onnxruntime" and where in p.sessions:
            timers.append(onnx_timer(p.sessions[where], x.numpy(), where))
        else:
            continue
        owners.append(p)
    if not timers:
        return
    for p, times in zip(owners, time_interleaved(timers, repeat, warmup)):
        p.row["latency"].append({"runtime": runtime, "device": where, "threads": threads,
                                 "batch": batch, **latency_stats(times, batch)})


def add_relative(results: Sequence[BenchResult]) -> list[BenchResult]:
    """The results with ``mac_ratio`` and per-entry ``speedup`` relative to the first model."""
    if not results:
        return []
    ref = results[0]
    ref_latency = {(e.runtime, e.device, e.batch): e.median_ms for e in ref.latency}
    out = []
    for row in results:
        ratio = ref.macs / row.macs if ref.macs and row.macs else None
        latency = []
        for entry in row.latency:
            base = ref_latency.get((entry.runtime, entry.device, entry.batch))
            speedup = base / entry.median_ms if base and entry.median_ms else None
            latency.append(replace(entry, speedup=speedup))
        out.append(replace(row, mac_ratio=ratio, latency=tuple(latency)))
    return out


# --------------------------------------------------------------------------------------------
# Outputs


def flat_rows(results: Sequence[BenchResult | dict]) -> list[dict]:
    """One flat dict per (model, runtime, device, batch), with the columns of
    :data:`CSV_COLUMNS`; a model without latency entries gives one row with empty timing.

    ``results`` are :class:`BenchResult` objects or their dicts (:meth:`BenchResult.to_dict`,
    the ``models`` of a JSON document); each row is :meth:`BenchRow.to_dict`."""
    return [row.to_dict() for r in results for row in _as_result(r).rows()]


def write_csv(results: Sequence[BenchResult | dict], path: str | os.PathLike) -> None:
    """Write :func:`flat_rows` as CSV, atomically."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(CSV_COLUMNS), lineterminator="\n")
    writer.writeheader()
    for row in flat_rows(results):
        writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    with atomic_write(path) as tmp:
        tmp.write_text(buffer.getvalue())


def slower_than_parent(results: Sequence[BenchResult]) -> list[str]:
    """Notes on models that do less work than the first model but run slower than it.

    A pruned model with fewer MACs can still be slower: odd channel counts miss the vectorised
    kernels (measured on MobileNetV2 in onnxruntime, benchmarks/RESULTS.md). One note per model,
    naming its slowest runtime and batch.
    """
    notes = []
    for result in results[1:]:
        fewer_macs = result.mac_ratio is not None and result.mac_ratio > 1.0
        if not (fewer_macs or result.pruning_steps > results[0].pruning_steps):
            continue
        slow = [e for e in result.latency if e.speedup is not None and e.speedup < 1.0]
        if slow:
            worst = min(slow, key=lambda e: e.speedup or 0.0)
            notes.append(
                f"warning: {result.name} is slower than {results[0].name} in {worst.runtime} "
                f"{worst.device} at batch {worst.batch} (x{worst.speedup:.2f}) although it has "
                f"{'fewer MACs' if fewer_macs else 'been pruned'}; widths that are multiples of "
                "8 usually run faster (prune with `round_to`=8)"
            )
    return notes
