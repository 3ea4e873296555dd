"""Turning scores into an order of removal (:func:`rank_units`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from prune_info.errors import PruneInfoError

__all__ = ['GROUP_REDUCTIONS', 'RANK_ORDERS', 'TIE_SHARE', 'rank_units', 'reduce_group',
           'tie_warnings', 'tied_share']
#: Accepted values of ``order`` in :func:`rank_units`.
RANK_ORDERS = ("low", "high", "random")


def rank_units(scores: torch.Tensor, order: str = "low", seed: int = 0) -> torch.Tensor:
    """Unit indices in the order in which to ablate or remove them (first = first to go).

    Parameters
    ----------
    scores : Tensor [n_units]
        Scores of one layer (or of several layers concatenated).
    order : {"low", "high", "random"}
        ``low``: ascending score (least important first, the usual pruning order); ``high``:
        descending score; ``random``: a permutation seeded by ``seed``, ignoring the scores.
    seed : int
        Seed of the ``random`` order only.

    Returns
    -------
    Tensor of int64 [n_units]

    Notes
    -----
    Ties are broken deterministically by a stable sort: among equal scores the lower unit index
    comes first, in both ``low`` and ``high`` order.

    Examples
    --------
    >>> rank_units(torch.tensor([0.5, 0.0, 0.5, 0.2]))
    tensor([1, 3, 0, 2])
    >>> rank_units(torch.tensor([0.5, 0.0, 0.5, 0.2]), "high")
    tensor([0, 2, 3, 1])
    """
    scores = torch.as_tensor(scores)
    if scores.ndim != 1:
        raise PruneInfoError(f"scores must be 1-D (one per unit), got shape {list(scores.shape)}")
    if order not in RANK_ORDERS:
        raise PruneInfoError(f"unknown order {order!r}; fix: use one of {', '.join(RANK_ORDERS)}")
    if order == "random":
        generator = torch.Generator().manual_seed(int(seed))
        return torch.randperm(scores.shape[0], generator=generator)
    if scores.is_floating_point() and not torch.isfinite(scores).all():
        raise PruneInfoError("scores contain NaN/Inf; fix: recompute them on finite outputs")
    return torch.sort(scores.cpu(), descending=(order == "high"), stable=True).indices


#: A ranking is called a tie-break when more than this share of a layer's units tie.
TIE_SHARE = 0.5

#: Criteria that never rank by their values (nothing to warn about).
_UNRANKED = ("random",)


def tied_share(scores: torch.Tensor) -> float:
    """The share of units in the largest group of exactly equal scores (1 / n when none tie).

    Small groups of equal values are common and harmless (two 1-bit units on for the same
    number of samples have the same entropy); a large group (a layer of always-on channels, all
    at MI 0) makes the ranking of its members an index order.

    >>> tied_share(torch.tensor([0.0, 0.0, 0.0, 0.3, 0.3, 0.5]))
    0.5
    """
    values = torch.as_tensor(scores).flatten()
    if values.numel() == 0:
        return 0.0
    _, counts = torch.unique(values, return_counts=True)
    return float(counts.max()) / values.numel()


def tie_warnings(scores: Mapping[str, Mapping[str, torch.Tensor]]) -> list[str]:
    """One warning per criterion whose ranking is mostly a tie-break in some layers, naming
    them and the fix.

    ``scores`` is ``{criterion: {layer: scores}}``; ties are broken by unit index
    (:func:`rank_units`), so such a ranking says little about the tied units.
    """
    out = []
    for criterion, layers in scores.items():
        if criterion in _UNRANKED:
            continue
        tied = []
        for layer, values in layers.items():
            share = tied_share(values)
            if share > TIE_SHARE and len(values) > 1:
                common = float(torch.mode(torch.as_tensor(values).flatten().cpu()).values)
                tied.append((layer, share, common))
        if not tied:
            continue
        shown = ", ".join(f"{layer} {round(100 * share)} % at {common:.4g}"
                          for layer, share, common in tied[:3])
        more = f" and {len(tied) - 3} more" if len(tied) > 3 else ""
        if criterion == "entropy" and any(abs(c - 1.0) < 1e-6 for _, _, c in tied):
            fix = ("a median split gives every channel one bit by design: rank channels by mi "
                   "or kl")
        else:
            fix = "quantise finer, e.g. `bins`=4 `binning`=quantile, or rank by another criterion"
        out.append(f"warning: most units tie under {criterion} in {len(tied)} layer"
                   f"{'s' * (len(tied) > 1)} ({shown}{more}), so the {criterion} ranking there "
                   f"is the tie-break order (lowest index first); {fix}")
    return out


#: How the scores of a group's members combine into one score per group channel.
GROUP_REDUCTIONS = ("mean", "max", "first")


def reduce_group(scores: Mapping[str, torch.Tensor], members: Sequence[str],
                 how: str = "mean") -> torch.Tensor:
    """One score per group channel from its members' scores (``first``: the root's).

    The members' channels are the same units (they are removed together), so a group channel is
    scored where the group produces it: at every member's output after its norm and activation,
    combined by ``how``. For ``synergy`` this makes the O-information search run over the group's
    channels as each member produces them, and the members' greedy orders combine like any
    other score: ``mean`` is a Borda count of the orders, ``first`` the root's search alone.

    Examples
    --------
    >>> scores = {"a": torch.tensor([1.0, 4.0]), "b": torch.tensor([3.0, 0.0])}
    >>> reduce_group(scores, ["a", "b"]).tolist(), reduce_group(scores, ["a", "b"], "max").tolist()
    ([2.0, 2.0], [3.0, 4.0])
    """
    stack = torch.stack([scores[m].double() for m in members])
    if how == "first":
        return stack[0]
    return stack.amax(0) if how == "max" else stack.mean(0)
