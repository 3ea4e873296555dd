"""Analysis: cumulative-ablation curves (:mod:`.curves`), statistics over seeds (:mod:`.stats`)
and O-information per layer (:mod:`.oinfo`)."""

from prune_info.analysis.curves import (
    CurveSet,
    compute_curves,
    layerwise_curves,
    naive_curves,
    network_curves,
    random_orders,
)
from prune_info.analysis.oinfo import dominance, layer_oinfo
from prune_info.analysis.stats import GapTest, ks_gap, mean_gap

__all__ = ["CurveSet", "GapTest", "compute_curves", "dominance", "ks_gap", "layer_oinfo",
           "layerwise_curves", "mean_gap", "naive_curves", "network_curves", "random_orders"]
