"""The discrete criteria ``entropy``, ``mi`` and ``kl`` (Amjad, Liu & Geiger, eqs. 3-5),
registered: each reads its measure off the count tables a context fills once
(:func:`prune_info.criteria.information.stream_information`)."""

from __future__ import annotations

import torch

from prune_info.criteria.context import ScoringContext
from prune_info.criteria.registry import register_criterion

__all__: list[str] = []


@register_criterion("entropy", description="entropy H(T) of the quantised output (eq. 3), bits",
                    needs_data=True, needs_labels=False)
def _entropy_criterion(ctx: ScoringContext) -> dict[str, torch.Tensor]:
    return {name: info.entropy for name, info in ctx.information().items()}


@register_criterion("mi", description="mutual information I(T;Y) with the class (eq. 4), bits",
                    needs_data=True, needs_labels=True)
def _mi_criterion(ctx: ScoringContext) -> dict[str, torch.Tensor]:
    return {name: info.mi for name, info in ctx.information().items()}


@register_criterion("kl", description="KL selectivity max_y D(P_T|Y=y || P_T) (eq. 5), bits",
                    needs_data=True, needs_labels=True)
def _kl_criterion(ctx: ScoringContext) -> dict[str, torch.Tensor]:
    return {name: info.kl for name, info in ctx.information().items()}
