"""Importance criteria: one score per unit, higher = more important (keep).

A criterion is a function of a :class:`ScoringContext` (model, prunable layers, labelled data,
number of classes, options) that returns ``{layer name: float64 tensor [n_units]}``. Criteria live
in one registry, :data:`~prune_info.criteria.registry.CRITERIA`, and declare what they need (data,
labels, gradients) so that
callers can check before running them.

Built-in criteria
-----------------
``entropy``, ``mi``, ``kl``
    The information measures of Amjad, Liu & Geiger (eqs. 3-5) of each unit's quantised output on
    a labelled data set: entropy ``H(T)``, mutual information ``I(T; Y)`` and KL selectivity
    ``max_y D(P_{T|Y=y} || P_T)``, in bits. All three share **one** streaming pass over the data:
    the count tables of :mod:`prune_info.measures.discrete` are filled batch by batch and cached in
    the context (:meth:`ScoringContext.information`), so memory is
    ``O(units x bins x classes)`` whatever the number of samples.
``random``
    Uniform random scores, seeded by ``options.seed`` and the layer name: the baseline of the
    paper's random ablation.
``magnitude``, ``magnitude-l1``
    L2 / L1 norm of a unit's incoming weights (a Linear row, or a Conv2d filter over
    ``in_channels x kh x kw``); bias and BatchNorm scale are not included.

Quantisers
----------
``bins=2`` (default) is the paper's 1-bit quantiser: bin 1 means the unit's output exceeds a
threshold, 0 for ReLU-like and tanh units and 0.5 for sigmoid units (see
:func:`prune_info.measures.discrete.default_threshold`). Read before the activation
(``pre_activation=True``), the threshold is 0 for every supported activation: ``sigma(z)`` exceeds
the post-activation threshold exactly when ``z > 0``, so pre- and post-activation readings of a
dense unit fall in the same bins. ``bins=K > 2`` uses ``K`` per-unit bins with uniform or quantile
edges (:func:`~prune_info.measures.discrete.bin_edges`) estimated on the **first batch** of the
data (``options.batch_size`` samples, or all when fewer): edges must be fixed before counting
can stream, and the data sets of prune-info are shuffled, so the first batch is a random sample.
Values beyond that sample's range fall in the outer bins.

Modules
-------
``registry`` (the one registry), ``options`` (:class:`ScoreOptions`), ``context`` (validation and
the shared pass), ``information`` (entropy, mi, kl), ``gaussian`` (gcmi-model, gcmi-mixture,
synergy), ``baselines`` (random, magnitude, magnitude-l1, taylor), ``ranking`` and ``report``.

Adding a criterion
------------------
Register a function with :func:`register_criterion`, from any module::

    @register_criterion("my-score", description="...", needs_data=True, needs_labels=False)
    def my_score(ctx: ScoringContext) -> dict[str, torch.Tensor]:
        return {layer.name: ... for layer in ctx.layers}

A separate package makes its criteria known without an import by naming that module in the
entry-point group ``prune_info.criteria`` (see :mod:`prune_info.criteria.registry`).

Examples
--------
>>> from prune_info.data import load_dataset
>>> from prune_info.training import TrainConfig, train_model
>>> data = load_dataset("digits")
>>> ckpt = train_model(data, "64-16-10", config=TrainConfig(epochs=2), progress=False)
>>> scores = compute_scores(ckpt.model, data.val, ["entropy", "mi", "kl"])
>>> sorted(scores), sorted(scores["mi"]), scores["mi"]["fc1"].shape
(['entropy', 'kl', 'mi'], ['fc1'], torch.Size([16]))
"""

# Importing the modules that define criteria registers them.
from prune_info.criteria import baselines, discrete, gaussian  # noqa: F401
from prune_info.criteria.context import (
    ScoringContext,
    compute_scores,
    make_context,
    unit_information,
)
from prune_info.criteria.information import LayerInformation, layer_threshold
from prune_info.criteria.options import BINNINGS, ScoreOptions
from prune_info.criteria.ranking import RANK_ORDERS, rank_units
from prune_info.criteria.registry import (
    CRITERIA,
    Criterion,
    available_criteria,
    get_criterion,
    parse_criteria,
    register_criterion,
)
from prune_info.criteria.report import ScoreReport, score_report, summarise

__all__ = [
    "BINNINGS", "CRITERIA", "Criterion", "LayerInformation", "RANK_ORDERS", "ScoreOptions",
    "ScoreReport", "ScoringContext", "available_criteria", "compute_scores", "get_criterion",
    "layer_threshold", "make_context", "parse_criteria", "rank_units", "register_criterion",
    "score_report", "summarise", "unit_information",
]
