"""prune-info: understand and prune neural networks with information theory.

``import prune_info as pi`` gives the whole job as functions; every ``prune-info`` command is a
thin layer over them. The subpackages hold the rest (:mod:`prune_info.criteria`,
:mod:`prune_info.analysis`, :mod:`prune_info.pruning`, :mod:`prune_info.deploy`,
:mod:`prune_info.experiments`, :mod:`prune_info.viz`). The names below are re-exported lazily:
``import prune_info`` imports nothing heavy (not even torch) until a name is used.

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

import importlib
import inspect
from typing import TYPE_CHECKING, Any

from prune_info._validate import checked
from prune_info._version import __version__
from prune_info.errors import PruneInfoError

#: Where each public name lives: ``pi.NAME`` imports its module on first use.
_EXPORTS = {
    "compute_curves": "prune_info.analysis", "ks_gap": "prune_info.analysis",
    "layer_oinfo": "prune_info.analysis", "mean_gap": "prune_info.analysis",
    "ablate": "prune_info.api", "bench": "prune_info.api", "oinfo": "prune_info.api",
    "prune": "prune_info.api", "retrain": "prune_info.api", "score": "prune_info.api",
    "AblationConfig": "prune_info.analysis.ablate",
    "Checkpoint": "prune_info.checkpoint", "clone_model": "prune_info.checkpoint",
    "load_checkpoint": "prune_info.checkpoint", "save_checkpoint": "prune_info.checkpoint",
    "ScoreOptions": "prune_info.criteria", "available_criteria": "prune_info.criteria",
    "compute_scores": "prune_info.criteria", "rank_units": "prune_info.criteria",
    "register_criterion": "prune_info.criteria",
    "Dataset": "prune_info.data", "Split": "prune_info.data", "as_dataset": "prune_info.data",
    "as_split": "prune_info.data",
    "load_dataset": "prune_info.data",
    "benchmark_models": "prune_info.deploy", "export_onnx": "prune_info.deploy",
    "RunOptions": "prune_info.experiments", "StudyConfig": "prune_info.experiments",
    "run_pipeline": "prune_info.experiments", "run_study": "prune_info.experiments",
    "LayerInfo": "prune_info.nn", "accuracy": "prune_info.nn",
    "count_parameters": "prune_info.nn", "example_input": "prune_info.nn",
    "prunable_layers": "prune_info.nn", "total_macs": "prune_info.nn",
    "CriterionImportance": "prune_info.pruning", "PruneConfig": "prune_info.pruning",
    "RetrainConfig": "prune_info.pruning",
    "plan_global": "prune_info.pruning", "plan_layerwise": "prune_info.pruning",
    "plan_max_drop": "prune_info.pruning", "prune_checkpoint": "prune_info.pruning",
    "retrain_checkpoint": "prune_info.pruning",
    "PrunePlan": "prune_info.surgery", "apply_plan": "prune_info.surgery",
    "mask_plan": "prune_info.surgery",
    "TrainConfig": "prune_info.training", "train_model": "prune_info.training",
    "train_seeds": "prune_info.training",
    "build_model": "prune_info.zoo", "parse_arch": "prune_info.zoo",
}

__all__ = ["AblationConfig", "Checkpoint", "CriterionImportance", "Dataset", "LayerInfo",
    "PruneConfig", "PruneInfoError", "PrunePlan", "RetrainConfig", "RunOptions", "ScoreOptions",
    "Split", "StudyConfig", "TrainConfig", "__version__", "ablate", "accuracy", "apply_plan",
    "as_dataset", "as_split", "available_criteria", "bench", "benchmark_models", "build_model",
    "clone_model", "compute_curves", "compute_scores", "count_parameters", "example_input",
    "export_onnx", "ks_gap", "layer_oinfo", "load_checkpoint", "load_dataset", "mask_plan",
    "mean_gap", "oinfo", "parse_arch", "plan_global", "plan_layerwise", "plan_max_drop",
    "prunable_layers", "prune", "prune_checkpoint", "rank_units", "register_criterion", "retrain",
    "retrain_checkpoint", "run_pipeline", "run_study", "save_checkpoint", "score", "total_macs",
    "train_model", "train_seeds"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'prune_info' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    if inspect.isfunction(value):  # wrong argument types: PruneInfoError naming the parameter
        value = checked(value)
    globals()[name] = value  # the next access is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:  # the names as mypy and editors see them
    from prune_info.analysis import compute_curves, ks_gap, layer_oinfo, mean_gap
    from prune_info.analysis.ablate import AblationConfig
    from prune_info.api import ablate, bench, oinfo, prune, retrain, score
    from prune_info.checkpoint import Checkpoint, clone_model, load_checkpoint, save_checkpoint
    from prune_info.criteria import (
        ScoreOptions,
        available_criteria,
        compute_scores,
        rank_units,
        register_criterion,
    )
    from prune_info.data import Dataset, Split, as_dataset, as_split, load_dataset
    from prune_info.deploy import benchmark_models, export_onnx
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
        CriterionImportance,
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
