"""Analysis: cumulative-ablation curves (:mod:`.curves`), statistics over seeds (:mod:`.stats`)
and O-information per layer (:mod:`.oinfo`); the verbs on one checkpoint, each returning one
report: :func:`score_checkpoint` (:mod:`.score`), :func:`ablate_checkpoint` (:mod:`.ablate`),
:func:`oinfo_checkpoint`."""

from prune_info.analysis.ablate import AblationConfig, AblationReport, ablate_checkpoint
from prune_info.analysis.curves import (
    CurveSet,
    compute_curves,
    layerwise_curves,
    naive_curves,
    network_curves,
    random_orders,
)
from prune_info.analysis.oinfo import OinfoDocument, dominance, layer_oinfo, oinfo_checkpoint
from prune_info.analysis.score import ScoreDocument, score_checkpoint
from prune_info.analysis.stats import GapTest, ks_gap, mean_gap

__all__ = ["AblationConfig", "AblationReport", "CurveSet", "GapTest", "OinfoDocument",
           "ScoreDocument", "ablate_checkpoint", "compute_curves", "dominance", "ks_gap",
           "layer_oinfo", "layerwise_curves", "mean_gap", "naive_curves", "network_curves",
           "oinfo_checkpoint", "random_orders", "score_checkpoint"]
