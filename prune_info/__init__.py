"""prune-info: understand and prune neural networks with information theory.

``import prune_info as pi`` gives the whole job as functions; every ``prune-info`` command is a
thin layer over them. The subpackages hold the rest (:mod:`prune_info.criteria`,
:mod:`prune_info.analysis`, :mod:`prune_info.pruning`, :mod:`prune_info.deploy`,
:mod:`prune_info.experiments`, :mod:`prune_info.viz`).

Example: train, score, prune by mutual information, check against the masked model
------------------------------------------------------------------------------------
>>> import torch
>>> import prune_info as pi
>>> data = pi.load_dataset("digits")
>>> ckpt = pi.train_model(data, "64-32-32-10", config=pi.TrainConfig(epochs=3), progress=False)
>>> mi = pi.score(ckpt.model, data.val, "mi")                 # {layer: bits per unit}
>>> sorted(mi), mi["fc1"].shape
(['fc1', 'fc2'], torch.Size([32]))
>>> plan = pi.plan_layerwise(mi, amounts=0.5)                # the lowest-MI half of each layer
>>> plan.n_removed()
{'fc1': 16, 'fc2': 16}
>>> example = pi.example_input(ckpt.model, data.input_shape)
>>> masked = pi.mask_plan(pi.clone_model(ckpt.model), plan, example)
>>> pruned = pi.apply_plan(pi.clone_model(ckpt.model), plan, example)
>>> pi.count_parameters(pruned) < pi.count_parameters(ckpt.model) / 2
True
>>> x = data.test.x[:64]
>>> torch.allclose(pruned.eval()(x), masked.eval()(x), atol=1e-5)
True
>>> pi.accuracy(pruned, data.test) == pi.accuracy(masked, data.test)
True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from prune_info._version import __version__
from prune_info.analysis import compute_curves, ks_gap, layer_oinfo, mean_gap
from prune_info.checkpoint import Checkpoint, clone_model, load_checkpoint, save_checkpoint
from prune_info.criteria import (
    ScoreOptions,
    available_criteria,
    compute_scores,
    rank_units,
    register_criterion,
)
from prune_info.data import Dataset, Split, as_split, load_dataset
from prune_info.deploy import benchmark_models, export_onnx
from prune_info.errors import PruneInfoError
from prune_info.experiments import RunOptions, StudyConfig, run_pipeline, run_study
from prune_info.nn import (
    LayerInfo,
    accuracy,
    count_parameters,
    example_input,
    prunable_layers,
    total_macs,
)
from prune_info.pruning import (
    PruneConfig,
    RetrainConfig,
    plan_global,
    plan_layerwise,
    plan_max_drop,
    prune_checkpoint,
    retrain_checkpoint,
)
from prune_info.surgery import PrunePlan, apply_plan, mask_plan
from prune_info.training import TrainConfig, train_model, train_seeds
from prune_info.zoo import build_model, parse_arch


def score(
    model: torch.nn.Module | Checkpoint,
    data: Any,
    criterion: str = "mi",
    *,
    layers: Sequence[str] | None = None,
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
    layers : list of str, optional
        Layer names; default every prunable layer.
    options : ScoreOptions, optional
        Quantiser, reading point, device, seed.
    """
    if isinstance(model, Checkpoint):
        model = model.model
    if not isinstance(model, torch.nn.Module):
        raise PruneInfoError(
            f"`model` must be an nn.Module or a Checkpoint, got {type(model).__name__}"
        )
    if not isinstance(criterion, str):
        raise PruneInfoError(
            f"`criterion` names one criterion, got {type(criterion).__name__}; for several, use "
            "prune_info.criteria.compute_scores"
        )
    split = None if data is None else as_split(data, "the validation set")
    scores = compute_scores(model, split, [criterion], layers=layers,
                            options=options or ScoreOptions())
    return scores[criterion]


__all__ = [
    "Checkpoint", "Dataset", "LayerInfo", "PruneConfig", "PruneInfoError", "PrunePlan",
    "RetrainConfig", "RunOptions", "ScoreOptions", "Split", "StudyConfig", "TrainConfig",
    "__version__", "accuracy", "apply_plan", "as_split", "available_criteria",
    "benchmark_models", "build_model", "clone_model", "compute_curves", "compute_scores",
    "count_parameters", "example_input", "export_onnx", "ks_gap", "layer_oinfo",
    "load_checkpoint", "load_dataset", "mask_plan", "mean_gap", "parse_arch", "plan_global",
    "plan_layerwise", "plan_max_drop", "prunable_layers", "prune_checkpoint", "rank_units",
    "register_criterion", "retrain_checkpoint", "run_pipeline", "run_study", "save_checkpoint",
    "score", "total_macs", "train_model", "train_seeds",
]
