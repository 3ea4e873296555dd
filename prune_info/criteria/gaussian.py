"""Gaussian-copula and O-information criteria: ``gcmi-model``, ``gcmi-mixture``, ``synergy``.

They register when :mod:`prune_info.criteria` is imported, so
``compute_scores(model, split, "gcmi-model")`` and ``prune-info score --criteria synergy`` need no
extra import. (``taylor``, documented here for its shared reading rules, lives in
:mod:`prune_info.criteria.baselines`.)

``gcmi-model``, ``gcmi-mixture``
    Gaussian-copula mutual information ``I(X_j; Y)`` between each unit and the class label, in
    bits, in the ANOVA ("model") and the Gaussian-mixture form of Ince et al. (2017):
    :func:`prune_info.measures.gaussian.gcmi_model_cd` and
    :func:`~prune_info.measures.gaussian.gcmi_mixture_cd`, vectorised over the units of a layer.
    These are the two MI baselines of Clauw, Marinazzo & Stramaglia (Fig. 2).
``synergy``
    The order in which the greedy synergy search of
    :func:`prune_info.measures.multiplets.search_multiplets` adds units: the unit added first
    scores ``n_units``, the next ``n_units - 1``, and so on
    (:meth:`~prune_info.measures.multiplets.MultipletSearch.synergy_scores`). Keeping the top
    ``k`` units by this score keeps **exactly** the greedy synergistic multiplet of size ``k`` for
    every ``k >= K`` (``K`` the largest exhaustive size: 6 for layers of at most 40 units, 4
    above), and for ``k = K`` that is the exhaustive optimum. For ``k < K`` the top ``k`` are the
    units of the best ``K``-multiplet whose removal costs most synergy - a subset of it, not
    necessarily the best ``k``-multiplet. The beam search is switched off (it never changes the
    greedy order), so a 100-unit layer costs one exhaustive pass to size 4 and one greedy growth.
``taylor``
    First-order Taylor importance of Molchanov et al. (2017, *Pruning convolutional neural
    networks for resource efficient inference*): for every sample ``n`` the product of the unit's
    output ``a`` and the gradient of the cross-entropy loss with respect to it, summed over the
    spatial positions of a channel, in absolute value, then averaged over the samples:
    ``(1/N) sum_n |sum_p a_{n,p} dL_n/da_{n,p}|``. It is computed directly with forward hooks and
    one backward pass per batch (the model in eval mode, weights untouched).
    ``torch_pruning.importance.TaylorImportance`` is not used: it scores the *weights* of a
    dependency-graph group (``|w * dL/dw|``) and needs a traced graph and gradients accumulated in
    the parameters, which does not fit the per-layer, data-driven interface of the registry.

Where units are read
--------------------
The Gaussian criteria (``gcmi-model``, ``gcmi-mixture``, ``synergy``) **always read
pre-activations** (the input of the activation function, after BatchNorm if any), as Clauw et
al. do: ReLU outputs hold many exact zeros that the copula has to tie-break at random. They
ignore :attr:`~prune_info.criteria.options.ScoreOptions.pre_activation`,
which selects the reading of the discrete criteria; for a Gaussian score of the post-activations
call :func:`gaussian_scores` with ``post_activation=True``. ``taylor`` follows
``ScoreOptions.pre_activation`` (default: post-activation, as Molchanov et al.); for a ReLU unit
both readings give the same product, since ``z * dL/dz = relu(z) * dL/drelu(z)``.
Ties of the copula normalisation are broken at random under ``ScoreOptions.seed``.

Examples
--------
>>> from prune_info.criteria import compute_scores
>>> from prune_info.data import load_dataset
>>> from prune_info.training import TrainConfig, train_model
>>> data = load_dataset("digits")
>>> ckpt = train_model(data, "64-12-10", config=TrainConfig(epochs=2), progress=False)
>>> scores = compute_scores(ckpt.model, data.val, ["gcmi-model", "synergy"])
>>> scores["gcmi-model"]["fc1"].shape, sorted(scores["synergy"]["fc1"].tolist())[-1]
(torch.Size([12]), 12.0)
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from prune_info.capture import CaptureOptions, unit_outputs_and_labels
from prune_info.criteria.context import ScoringContext, make_context
from prune_info.criteria.registry import register_criterion
from prune_info.data import Samples
from prune_info.errors import PruneInfoError
from prune_info.measures.gaussian import gcmi_mixture_cd, gcmi_model_cd
from prune_info.measures.multiplets import MultipletSearch, search_multiplets
from prune_info.nn import LayerInfo

__all__ = ['GAUSSIAN_CRITERIA', 'gaussian_scores', 'layer_outputs_float64', 'synergy_searches']

#: Criteria of this module that read copula-normalised unit outputs.
GAUSSIAN_CRITERIA = ("gcmi-model", "gcmi-mixture", "synergy")


def layer_outputs_float64(
    model: nn.Module,
    layers: list[LayerInfo],
    split: Samples,
    *,
    post_activation: bool = False,
    channel_reduce: str = "mean",
    batch_size: int = 4096,
    device: str = "cpu",
    token_reduce: str = "mean",
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """All unit outputs of ``layers`` on ``split`` as float64 numpy arrays ``[n_samples, units]``,
    and the labels, read in one pass (a streamed split keeps the outputs only).

    Parameters
    ----------
    model : nn.Module
        The network, on ``device``.
    layers : list of LayerInfo
        Layers to read.
    split : Split or StreamSplit
        Labelled samples.
    post_activation : bool, default False
        Read after the activation function instead of before it.
    channel_reduce, batch_size, device, token_reduce
        As in :class:`prune_info.capture.CaptureOptions`.

    Returns
    -------
    outputs : dict of str to ndarray
    labels : ndarray of int
    """
    options = CaptureOptions(pre_activation=not post_activation, channel_reduce=channel_reduce,
                             batch_size=batch_size, device=device, token_reduce=token_reduce)
    outputs, labels = unit_outputs_and_labels(model, layers, split, options)
    return ({name: value.detach().to("cpu", torch.float64).numpy()
             for name, value in outputs.items()}, labels.numpy())


def _context_outputs(ctx: ScoringContext) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Pre-activations of the context's layers and the labels, captured once per context."""
    if "gaussian_outputs" not in ctx.cache:
        assert ctx.split is not None  # needs_data criteria: ScoringContext.scores checked it
        opts = ctx.options
        ctx.cache["gaussian_outputs"] = layer_outputs_float64(
            ctx.model, ctx.layers, ctx.split, post_activation=False,
            channel_reduce=opts.channel_reduce, batch_size=opts.batch_size, device=opts.device,
            token_reduce=opts.token_reduce)
    return ctx.cache["gaussian_outputs"]


def _check_width(layer: str, n_samples: int, n_units: int) -> None:
    if n_samples <= n_units + 1:
        raise PruneInfoError(
            f"{layer}: {n_samples} samples for {n_units} units + label: the Gaussian-copula "
            "estimator needs more samples than variables; fix: score on a larger split or on "
            "fewer layers"
        )


def _gcmi(outputs: dict[str, np.ndarray], labels: np.ndarray, form: str, seed: int
          ) -> dict[str, torch.Tensor]:
    fn = gcmi_model_cd if form == "model" else gcmi_mixture_cd
    out = {}
    for name, acts in outputs.items():  # a loop over layers, vectorised over units
        try:
            out[name] = torch.from_numpy(fn(acts, labels, seed=seed))
        except PruneInfoError as exc:
            raise PruneInfoError(f"{name}: {exc}") from None
    return out


def synergy_searches(outputs: dict[str, np.ndarray], labels: np.ndarray, seed: int = 0
                     ) -> dict[str, MultipletSearch]:
    """The greedy synergy search behind the ``synergy`` criterion, one per layer.

    Exhaustive to the default size of :func:`~prune_info.measures.multiplets.search_multiplets`
    (6 up to 40 units, 4 above), then greedy growth to the whole layer; no beam search.

    Parameters
    ----------
    outputs : dict of str to ndarray
        ``{layer: [n_samples, n_units]}`` unit outputs.
    labels : ndarray of shape (n_samples,)
        Class labels.
    seed : int, default 0
        Seed of the copula's random tie breaking.

    Returns
    -------
    dict of str to MultipletSearch
    """
    out = {}
    for name, acts in outputs.items():
        if acts.shape[1] < 2:
            raise PruneInfoError(
                f"{name}: a synergy ranking needs at least 2 units, the layer has "
                f"{acts.shape[1]}; fix: leave this layer out (`layers`)"
            )
        _check_width(name, acts.shape[0], acts.shape[1])
        try:
            out[name] = search_multiplets(acts, labels, beam_width=0, seed=seed, layer=name)
        except PruneInfoError as exc:
            raise PruneInfoError(f"{name}: {exc}") from None
    return out


def gaussian_scores(
    model: nn.Module,
    split: Samples,
    criterion: str,
    layers: list[LayerInfo] | None = None,
    *,
    post_activation: bool = False,
    seed: int = 0,
    device: str = "cpu",
    batch_size: int = 4096,
) -> dict[str, torch.Tensor]:
    """Scores of one Gaussian criterion, with the choice of pre- or post-activation reading.

    The registered criteria always read pre-activations; this function exposes the reading.

    Parameters
    ----------
    model : nn.Module
    split : Split
        Labelled data (normally the validation split).
    criterion : {"gcmi-model", "gcmi-mixture", "synergy"}
    layers : list of LayerInfo, optional
        Default: every prunable layer.
    post_activation : bool, default False
        Read the units after the activation function.
    seed, device, batch_size
        Tie-breaking seed, where the forward passes run, samples per pass.

    Returns
    -------
    dict of str to Tensor
        ``{layer: float64 tensor [n_units]}``, higher = more important.
    """
    if criterion not in GAUSSIAN_CRITERIA:
        raise PruneInfoError(
            f"{criterion!r} is not a Gaussian criterion; fix: use one of "
            f"{', '.join(GAUSSIAN_CRITERIA)}"
        )
    ctx = make_context(model, split, layers=layers)
    ctx._check_data(criterion)
    assert ctx.split is not None  # _check_data refused None
    outputs, labels = layer_outputs_float64(model, ctx.layers, ctx.split,
                                            post_activation=post_activation,
                                            batch_size=batch_size, device=device)
    return _score_from_outputs(criterion, outputs, labels, seed)


def _score_from_outputs(criterion: str, outputs: dict[str, np.ndarray], labels: np.ndarray,
                        seed: int) -> dict[str, torch.Tensor]:
    if criterion == "synergy":
        # A unit constant over the samples (a dead unit) carries no information and scores 0,
        # below every ranked unit: the copula's random tie-break would make it noise that the
        # search places anywhere (a dead unit of a digits MLP came 7th of 32).
        searches = synergy_searches(outputs, labels, seed)
        return {name: torch.from_numpy(np.where((outputs[name] == outputs[name][:1]).all(axis=0),
                                                0.0, res.synergy_scores()))
                for name, res in searches.items()}
    for name, acts in outputs.items():
        _check_width(name, acts.shape[0], 1)
    return _gcmi(outputs, labels, criterion.split("-")[1], seed)


def _register(name: str, description: str) -> None:
    """Register the criterion ``name`` of :func:`_score_from_outputs` on a context's outputs."""

    def criterion(ctx: ScoringContext) -> dict[str, torch.Tensor]:
        assert ctx.split is not None  # needs_data=True: ScoringContext.scores checked it
        return _score_from_outputs(name, *_context_outputs(ctx), ctx.options.seed)

    register_criterion(name, description=description, needs_data=True,
                       needs_labels=True)(criterion)


_register("gcmi-model", "Gaussian-copula MI I(X;Y) of the pre-activation, ANOVA form, bits")
_register("gcmi-mixture", "Gaussian-copula MI I(X;Y) of the pre-activation, mixture form, bits")
_register("synergy", "order of the greedy O-information synergy search (first added = highest)")
