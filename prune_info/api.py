"""Library calls that take what a researcher has: an ``nn.Module`` or a :class:`Checkpoint`, and
data in any form the data seam reads (see :func:`prune_info.data.as_split`).

Re-exported by ``prune_info`` (``pi.score``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from prune_info.checkpoint import Checkpoint
from prune_info.criteria import ScoreOptions, compute_scores
from prune_info.data import as_split
from prune_info.errors import PruneInfoError

__all__ = ["score"]


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
