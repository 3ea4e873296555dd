"""Pruning: how much each layer loses (:mod:`.allocation`; to a budget, :mod:`.budget`), the
prune workflow of a checkpoint (:mod:`.workflow`: asked by a :mod:`.config`, reported by a
:mod:`.summary`), retraining (:mod:`.retrain`, reported by :mod:`.retrain_report`) and the
torch-pruning ``Importance`` adapter (:mod:`.importance`). The removal itself is
:mod:`prune_info.surgery`."""

from prune_info.pruning.allocation import (
    ALLOCATIONS,
    ORDERS,
    plan_global,
    plan_layerwise,
    plan_max_drop,
    removal_counts,
)
from prune_info.pruning.config import PruneConfig
from prune_info.pruning.importance import CriterionImportance
from prune_info.pruning.retrain import RetrainConfig, iterative_prune, retrain_checkpoint
from prune_info.pruning.retrain_report import RetrainReport, RetrainRun, Round, RoundsReport
from prune_info.pruning.summary import LayerPruneSummary, PruneResult, PruneSummary
from prune_info.pruning.workflow import prune_checkpoint

__all__ = ["ALLOCATIONS", "ORDERS", "CriterionImportance", "LayerPruneSummary", "PruneConfig",
           "PruneResult", "PruneSummary", "RetrainConfig", "RetrainReport", "RetrainRun", "Round",
           "RoundsReport",
           "iterative_prune", "plan_global", "plan_layerwise", "plan_max_drop", "prune_checkpoint",
           "removal_counts", "retrain_checkpoint"]
