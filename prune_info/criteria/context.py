"""The scoring context: what a criterion may use, validated once, with shared passes cached.

:func:`make_context` checks a model, its layers and labelled data; :func:`compute_scores` runs
criteria on it. The entropy, MI and KL criteria share one streaming pass over the data
(:meth:`ScoringContext.information`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from prune_info.capture import resolve_device
from prune_info.criteria.information import LayerInformation, stream_information
from prune_info.criteria.labels import check_every_class, check_labels
from prune_info.criteria.options import ScoreOptions
from prune_info.criteria.registry import get_criterion, parse_criteria
from prune_info.data import Samples, StreamSplit, as_samples
from prune_info.errors import PruneInfoError
from prune_info.nn import LayerInfo, classifier_width, first_sample, resolve_layers

__all__ = ['ScoringContext', 'compute_scores', 'make_context']


# --------------------------------------------------------------------------------------------
# Scoring context


@dataclass
class ScoringContext:
    """What a criterion may use, with the shared streaming pass cached.

    Build it with :func:`make_context`, which validates everything.

    Attributes
    ----------
    model : nn.Module
    layers : list of LayerInfo
        The layers to score.
    split : Split, StreamSplit or None
        Labelled data (the paper's validation set D), in memory or read in batches; None for
        criteria that need no data.
    n_classes : int
    options : ScoreOptions
    cache : dict
        Free space for criteria to share intermediate results within one context.
    """

    model: nn.Module
    layers: list[LayerInfo]
    split: Samples | None
    n_classes: int
    options: ScoreOptions = field(default_factory=ScoreOptions)
    cache: dict = field(default_factory=dict)

    @property
    def device(self) -> torch.device:
        return resolve_device(self.options.device)

    def information(self) -> dict[str, LayerInformation]:
        """Per-unit discrete measures of every layer, computed once in one streaming pass.

        Returns
        -------
        dict of str to LayerInformation
            Keyed by layer name, in the order of :attr:`layers`.
        """
        if "information" not in self.cache:
            self._check_data("entropy/mi/kl")
            assert self.split is not None  # _check_data raised otherwise
            self.cache["information"] = stream_information(self.model, self.layers, self.split,
                                                           self.n_classes, self.options)
        return self.cache["information"]

    def scores(self, criteria: str | Sequence[str]) -> dict[str, dict[str, torch.Tensor]]:
        """Run criteria on this context: ``{criterion: {layer: float64 tensor [n_units]}}``."""
        out = {}
        for name in parse_criteria(criteria):
            crit = get_criterion(name)
            if crit.needs_data:
                self._check_data(name)
            out[name] = _checked_scores(name, crit.fn(self), self.layers)
        return out

    def _check_data(self, criterion: str) -> None:
        if self.cache.get("data_checked"):
            return
        if self.split is None:
            raise PruneInfoError(
                f"criterion {criterion} needs labelled data but none was given; fix: pass the "
                "validation split as `split`"
            )
        _validate_split(self.split, self.n_classes)
        self.cache["data_checked"] = True


def _checked_scores(name: str, result: object, layers: list[LayerInfo]) -> dict[str, torch.Tensor]:
    """A criterion's output as float64 CPU tensors of the right shapes, all finite."""
    if not isinstance(result, dict):
        raise PruneInfoError(f"criterion {name} returned {type(result).__name__}, not a dict")
    out = {}
    for layer in layers:
        if layer.name not in result:
            raise PruneInfoError(f"criterion {name} gave no scores for layer {layer.name}")
        values = torch.as_tensor(result[layer.name]).detach().to("cpu", torch.float64)
        if values.shape != (layer.n_units,):
            raise PruneInfoError(
                f"criterion {name} gave scores of shape {list(values.shape)} for {layer.name}, "
                f"which has {layer.n_units} units"
            )
        if not torch.isfinite(values).all():
            raise PruneInfoError(f"criterion {name} gave NaN/Inf scores for layer {layer.name}")
        out[layer.name] = values
    return out


# --------------------------------------------------------------------------------------------
# Validation


def _validate_split(split: Samples, n_classes: int) -> None:
    """Labels within the model's classes, every class present, checked up front when the labels
    are known without reading the inputs (a streamed source without them is checked batch by
    batch as it is read). The structure is checked by :func:`~prune_info.data.as_samples` in
    :func:`make_context`."""
    if isinstance(split, StreamSplit) and split._targets is None:
        return
    y = split.targets()
    check_labels(y, n_classes)
    check_every_class(torch.bincount(y.cpu(), minlength=n_classes), len(y))


def make_context(
    model: nn.Module,
    split: Samples | None,
    *,
    n_classes: int | None = None,
    layers: Sequence[LayerInfo | str] | None = None,
    options: ScoreOptions = ScoreOptions(),
) -> ScoringContext:
    """A validated :class:`ScoringContext`.

    ``n_classes`` defaults to the width of the model's classifier (its last Linear layer), else
    to the largest label + 1; ``layers`` (LayerInfo objects or layer names) to all prunable
    layers. The data are checked by the first criterion that needs them; ``split`` may be None
    when no criterion does.

    Raises
    ------
    PruneInfoError
        If the model has no prunable layer, a layer is unknown, or ``n_classes`` < 2.
    """
    if not isinstance(options, ScoreOptions):
        raise PruneInfoError(f"options must be a ScoreOptions, got {type(options).__name__}")
    if split is not None:
        split = as_samples(split, "the validation set")
    layers = resolve_layers(model, layers, example=first_sample(model, split))
    if not layers:
        raise PruneInfoError(
            "the model has no prunable layer (no hidden Linear or Conv2d layer before the "
            "classifier); fix: give a model with at least one hidden layer"
        )
    if n_classes is None:
        n_classes = classifier_width(model)
        if n_classes is None and split is not None and len(split):
            n_classes = int(split.targets().max()) + 1
    if n_classes is None or n_classes < 2:
        raise PruneInfoError(
            f"need at least 2 classes, got {n_classes}; fix: pass n_classes (the number of "
            "classes of the data)"
        )
    return ScoringContext(model=model, layers=layers, split=split, n_classes=int(n_classes),
                          options=options)


# --------------------------------------------------------------------------------------------
# Public entry points


def compute_scores(
    model: nn.Module,
    split: Samples | None,
    criteria: str | Sequence[str],
    *,
    n_classes: int | None = None,
    layers: Sequence[LayerInfo | str] | None = None,
    options: ScoreOptions = ScoreOptions(),
) -> dict[str, dict[str, torch.Tensor]]:
    """Score every unit of every prunable layer by each criterion.

    Parameters
    ----------
    model : nn.Module
        The trained network, on ``options.device``.
    split : Split or None
        Labelled data, normally the validation split (the paper's D); None is accepted when
        no criterion needs data (``random``, ``magnitude``).
    criteria : sequence of str, or a comma-separated str
        Registered criterion names (:func:`available_criteria`).
    n_classes : int, optional
        Number of classes; default the model's classifier width.
    layers : list of LayerInfo or of layer names, optional
        Layers to score; default :func:`prune_info.nn.prunable_layers`.
    options : ScoreOptions

    Returns
    -------
    dict
        ``{criterion: {layer name: float64 tensor [n_units]}}`` on the CPU; higher = more
        important. ``entropy``, ``mi`` and ``kl`` come from one shared pass over the data.

    Raises
    ------
    PruneInfoError
        Unknown criterion, no prunable layer, data that do not fit the model, an empty split, a
        class absent from it, NaN/Inf unit outputs.
    """
    names = parse_criteria(criteria)
    ctx = make_context(model, split, n_classes=n_classes, layers=layers, options=options)
    return ctx.scores(names)


def unit_information(
    model: nn.Module,
    split: Samples,
    n_classes: int | None = None,
    layers: Sequence[LayerInfo | str] | None = None,
    options: ScoreOptions = ScoreOptions(),
) -> dict[str, LayerInformation]:
    """The full per-unit measure table (entropy, MI, KL, its class, spectrum, activity flags).

    Same validation and single streaming pass as :func:`compute_scores`.
    """
    return make_context(model, split, n_classes=n_classes, layers=layers,
                        options=options).information()


# --------------------------------------------------------------------------------------------
# Built-in criteria
