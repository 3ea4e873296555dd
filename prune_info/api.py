"""Library calls that take what a researcher has: an ``nn.Module`` or a :class:`Checkpoint`, and
data in any form the data seam reads (a ``DataLoader`` of ``(x, y)`` batches, tensors, a
mapping of splits: see :func:`prune_info.data.as_dataset`).

Re-exported by ``prune_info``: ``pi.score``, ``pi.oinfo``, ``pi.ablate``, ``pi.prune``,
``pi.retrain`` and ``pi.bench`` (with ``pi.accuracy`` and ``pi.export_onnx``, which take a module
as they are), each returning its report.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import fields, replace
from typing import Any

import torch

from prune_info.analysis.ablate import AblationConfig, AblationReport, ablate_checkpoint
from prune_info.analysis.oinfo import OinfoDocument, oinfo_checkpoint
from prune_info.checkpoint import Checkpoint, as_checkpoint
from prune_info.criteria import ScoreOptions, compute_scores
from prune_info.data import Dataset, as_dataset, as_split
from prune_info.deploy.bench import benchmark_models
from prune_info.deploy.bench_report import BenchReport
from prune_info.errors import PruneInfoError
from prune_info.pruning import (
    PruneConfig,
    PruneResult,
    RetrainConfig,
    RetrainReport,
    prune_checkpoint,
)
from prune_info.pruning import retrain_checkpoint as _retrain_checkpoint

__all__ = ["ablate", "bench", "oinfo", "prune", "retrain", "score"]


def _config(cls: type, config: Any, settings: dict[str, Any]) -> Any:
    """``config`` (or the defaults) with ``settings`` (its field names) applied."""
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(settings) - names)
    if unknown:
        raise PruneInfoError(f"unknown setting {', '.join(f'`{u}`' for u in unknown)} of "
                             f"{cls.__name__}; use {', '.join(sorted(names))}")
    if config is not None and not isinstance(config, cls):
        raise PruneInfoError(f"`config` must be a {cls.__name__}, got {type(config).__name__}")
    base: Any = config or cls()
    return replace(base, **settings)


def prune(model: torch.nn.Module | Checkpoint, data: Any = None,
          config: PruneConfig | None = None, **settings: Any) -> PruneResult:
    """Prune ``model`` on ``data`` in one call: ``pi.prune(model, loader, criterion="mi",
    amount=0.5)`` or ``target="macs=x2"``.

    ``settings`` are :class:`~prune_info.pruning.PruneConfig` fields, applied over ``config``.
    ``data`` is anything :func:`~prune_info.data.as_dataset` reads (scores and ``max-drop``
    read its validation split; ``None`` for the data-free criteria). The model is not changed:
    ``result.checkpoint.model`` is the smaller copy, ``result.summary`` the report.
    """
    ckpt = as_checkpoint(model)
    dataset = None if data is None else as_dataset(data)
    return prune_checkpoint(ckpt, dataset, _config(PruneConfig, config, settings))


def retrain(model: torch.nn.Module | Checkpoint, data: Any,
            config: RetrainConfig | None = None, progress: bool = False,
            **settings: Any) -> tuple[Checkpoint, RetrainReport]:
    """Fine-tune ``model`` (a pruned one keeps its masked entries at zero) on ``data``'s train
    split; returns the new checkpoint and the report of
    :func:`~prune_info.pruning.retrain_checkpoint`. ``settings`` are
    :class:`~prune_info.pruning.RetrainConfig` fields (``epochs=3``, ``lr=0.01``)."""
    return _retrain_checkpoint(as_checkpoint(model), as_dataset(data),
                               _config(RetrainConfig, config, settings), progress=progress)


def score(
    model: torch.nn.Module | Checkpoint,
    data: Any,
    criterion: str | Sequence[str] = "mi",
    *,
    layers: Sequence[str] | str | None = None,
    options: ScoreOptions | None = None,
) -> dict[str, torch.Tensor]:
    """Score every unit of ``model`` by one criterion: ``{layer: float64 tensor [n_units]}``.

    Higher means more important (keep). For several criteria in one pass over the data, use
    :func:`prune_info.criteria.compute_scores`.

    Parameters
    ----------
    model : nn.Module or Checkpoint
    data : Split, Dataset, (x, y) or a DataLoader of (x, y) batches
        Labelled samples (a Dataset gives its validation split, the paper's D). Criteria that
        need no data (``random``, ``magnitude``) accept ``None``.
    criterion : str, default "mi"
        A registered criterion (:func:`available_criteria`).
    layers : list of str, or str, optional
        Layer names (a list, or one string separated by commas); default every prunable layer.
    options : ScoreOptions, optional
        Quantiser, reading point, device, seed.
    """
    model = as_checkpoint(model).model
    if not isinstance(criterion, str):
        raise PruneInfoError(
            f"`criterion` names one criterion, got {type(criterion).__name__}; for several, use "
            "prune_info.criteria.compute_scores"
        )
    split = None if data is None else as_split(data, "the validation set")
    scores = compute_scores(model, split, [criterion], layers=layers,
                            options=options or ScoreOptions())
    return scores[criterion]


def ablate(model: torch.nn.Module | Checkpoint, data: Any, config: AblationConfig | None = None,
           progress: bool = False, **settings: Any) -> AblationReport:
    """Cumulative-ablation curves of ``model`` in one call: ``pi.ablate(model, loaders,
    criteria=("mi",), random=10)``.

    ``settings`` are :class:`~prune_info.analysis.ablate.AblationConfig` fields. Units are
    ranked on ``data``'s validation split and ablated on its test split (one loader serves as
    both: :func:`~prune_info.data.as_dataset`). The report's ``table()`` is what ``prune-info
    ablate`` prints, ``write(path)`` its ``--out`` JSON.
    """
    return ablate_checkpoint(as_checkpoint(model), as_dataset(data),
                             _config(AblationConfig, config, settings), progress=progress)


def oinfo(model: torch.nn.Module | Checkpoint, data: Any, *, split: str = "val",
          max_samples: int | None = None, **search: Any) -> OinfoDocument:
    """Synergistic and redundant groups of units, layer by layer, in one call:
    ``pi.oinfo(model, loader, max_size=4)`` (the O-information search of Clauw et al.).

    ``search`` are :func:`~prune_info.analysis.oinfo.layer_oinfo`'s keyword arguments
    (``layers``, ``max_exhaustive``, ``max_size``, ``beam_width``, ``post_activation``,
    ``seed``, ...). The document's ``table()`` is what ``prune-info oinfo`` prints, ``write(path)``
    its ``--out`` JSON.
    """
    return oinfo_checkpoint(as_checkpoint(model), as_dataset(data), split=split,
                            max_samples=max_samples, **search)


def bench(models: Iterable[torch.nn.Module | Checkpoint | str | os.PathLike], data: Any = None,
          **settings: Any) -> BenchReport:
    """Accuracy, size and latency of each model in one call: ``pi.bench([model, small],
    loader)``.

    ``models`` are modules, checkpoints, or checkpoint and ONNX files; ``data`` anything
    :func:`~prune_info.data.as_dataset` reads (its test split is measured), a data source name,
    or ``None`` for each file's recorded data. ``settings`` are
    :func:`~prune_info.deploy.benchmark_models`' keyword arguments (``batches``, ``threads``,
    ``repeat``, ``runtimes``, ``device``, ...), recorded in the report as plain values. The
    report's ``table()`` is what ``prune-info bench`` prints, ``write(path)`` its ``--json``.
    """
    items = [m if isinstance(m, (str, os.PathLike, Checkpoint)) else as_checkpoint(m)
             for m in models]
    dataset = data if data is None or isinstance(data, (str, Dataset)) else as_dataset(data)
    results = benchmark_models(items, dataset, **settings)
    return BenchReport.of(results, **{k: str(v) if isinstance(v, torch.device) else v
                                      for k, v in settings.items()})
