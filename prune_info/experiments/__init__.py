"""Experiments: many-seed ablation studies (:mod:`.study`), the sub-network experiment of Clauw et
al. (:mod:`.subnetworks`) and the resumable train-to-report pipeline (:mod:`.pipeline`)."""

from prune_info.experiments.pipeline import RunOptions, run_pipeline
from prune_info.experiments.study import StudyConfig, run_study
from prune_info.experiments.subnetworks import (
    CompareConfig,
    Comparison,
    ComparisonTable,
    run_comparison,
)

__all__ = ["CompareConfig", "Comparison", "ComparisonTable", "RunOptions", "StudyConfig",
           "run_comparison", "run_pipeline", "run_study"]
