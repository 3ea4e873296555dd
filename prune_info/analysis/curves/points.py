"""Where curves are computed and in which order units go: constants, ablation points
(``k``), orderings (criteria, random, whole-network)."""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from typing import TypeVar

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from prune_info.criteria.ranking import RANK_ORDERS
from prune_info.errors import PruneInfoError

T = TypeVar("T")

#: Most random orderings one call draws (:func:`random_orders`).
MAX_RANDOM = 100_000
#: What an ablated unit's output is replaced by.
ABLATE_TO = ("zero", "mean")
#: Which end of a ranking is ablated first: ``low`` = least important first.
#: (Random orders are asked for separately, as a number of repeats.)
ORDERS = tuple(order for order in RANK_ORDERS if order != "random")
#: How layer-wise curves are computed (see :func:`layerwise_curves`); all give the same counts.
METHODS = ("auto", "prefix", "batched")
#: Default memory budget of one chunk of masked activations, in MiB.
DEFAULT_MEMORY_MB = 256
#: Default number of test samples pushed through the network at once.
DEFAULT_BATCH_SIZE = 8192
#: Row counts below this make CPU BLAS pick other kernels (see the module docstring).
_MIN_ROWS = 16
#: Working set of the prefix-sum path for one block of samples (cache-sized was fastest).
_PREFIX_CHUNK_BYTES = 16 << 20
#: Consecutive k whose activations the prefix-sum path computes in one batched product.
_K_BLOCK = 8
#: Size of the batched path's chunks of masked activations.
_BATCHED_CHUNK_BYTES = 16 << 20
#: Points of a curve computed by default for scopes wider than :data:`SPARSE_ABOVE` units
#: (``prune-info ablate``; see :func:`default_at_k`).
DEFAULT_STEPS = 33
#: Convolutional scopes of at most this many channels get every ``k`` by default.
SPARSE_ABOVE = 64
#: Linear scopes of at most this many units get every ``k`` by default (the prefix path makes
#: an MLP layer's full curve cheap; a transformer's 4x-wide token MLP is not).
LINEAR_SPARSE_ABOVE = 256


# --------------------------------------------------------------------------------------------
# Layers, ablation points, orderings


def check_order(order: Tensor, n_units: int, what: str = "order") -> Tensor:
    """Validate orderings: int64 ``[n]`` or ``[R, n]``, each row a permutation of ``0..n-1``.

    Returns the orderings as a 2-D int64 tensor ``[R, n]`` on the CPU.
    """
    order = torch.as_tensor(order)
    if order.dtype.is_floating_point or order.dtype == torch.bool:
        raise PruneInfoError(f"{what} must hold integer unit indices, got {order.dtype}")
    order = order.to("cpu", torch.int64)
    if order.dim() == 1:
        order = order[None]
    if order.dim() != 2 or order.shape[1] != n_units:
        raise PruneInfoError(
            f"{what} must list all {n_units} units (shape [{n_units}] or [R, {n_units}]), got "
            f"shape {list(order.shape)}"
        )
    expected = torch.arange(n_units)
    if order.numel() and not torch.equal(order.sort(dim=1).values,
                                         expected.expand_as(order)):
        raise PruneInfoError(
            f"every row of {what} must be a permutation of 0..{n_units - 1} (each unit once)"
        )
    return order


def check_random(repeats: int) -> None:
    """Refuse a number of random orderings below 0 or above :data:`MAX_RANDOM`."""
    if repeats < 0:
        raise PruneInfoError(f"`random` must be 0 or more, got {repeats}")
    if repeats > MAX_RANDOM:
        raise PruneInfoError(
            f"`random`={repeats} random orderings is more than {MAX_RANDOM:,}, the most "
            "computed (each is a whole curve; the papers use 20)")


def random_orders(n_units: int, repeats: int, seed: int = 0) -> Tensor:
    """``repeats`` random orderings of ``n_units`` units, int64 ``[repeats, n_units]``, seeded.

    Examples
    --------
    >>> random_orders(4, 2, seed=0).shape
    torch.Size([2, 4])
    """
    check_random(repeats)
    generator = torch.Generator().manual_seed(int(seed))
    if repeats == 0:
        return torch.empty(0, n_units, dtype=torch.int64)
    return torch.stack([torch.randperm(n_units, generator=generator) for _ in range(repeats)])


def _check_max_k(max_k: int | None, n_units: int, scope: str) -> int:
    if max_k is None:
        return n_units
    if max_k < 0:
        raise PruneInfoError(f"k must be 0 or more, got {max_k}")
    if max_k > n_units:
        raise PruneInfoError(
            f"k = {max_k} is beyond the {n_units} units of {scope}; choose k <= {n_units}"
        )
    return int(max_k)


def spaced_ks(n_units: int, steps: int, scope: str | None = None,
              what: str = "steps") -> list[int]:
    """``steps`` evenly spaced ``k`` from 0 to ``n_units`` inclusive, rounded to unique ints.

    ``steps`` must be 2 to ``n_units + 1`` (the spacing is then at least one unit, and rounding
    half up keeps the points distinct).

    Examples
    --------
    >>> spaced_ks(128, 5)
    [0, 32, 64, 96, 128]
    >>> spaced_ks(10, 4)
    [0, 3, 7, 10]
    """
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)):
        raise PruneInfoError(f"{what} must be an integer, got {steps!r}")
    of = f" of {scope}" if scope else ""
    if steps < 2 or steps > n_units + 1:
        raise PruneInfoError(
            f"{what} = {steps}: choose 2 to {n_units + 1} points for the {n_units} units{of}")
    ks = {int(math.floor(i * n_units / (steps - 1) + 0.5)) for i in range(int(steps))}
    return sorted(ks)


def default_at_k(n_units: int, kind: str = "conv") -> list[int] | None:
    """The points computed by default: every ``k`` (None) up to :data:`SPARSE_ABOVE` channels
    (``kind="conv"``) or :data:`LINEAR_SPARSE_ABOVE` units (``kind="linear"``), else
    :data:`DEFAULT_STEPS` evenly spaced ones.

    Examples
    --------
    >>> default_at_k(32) is None, len(default_at_k(512)), default_at_k(100, "linear") is None
    (True, 33, True)
    """
    limit = LINEAR_SPARSE_ABOVE if kind == "linear" else SPARSE_ABOVE
    return spaced_ks(n_units, DEFAULT_STEPS) if n_units > limit else None


def check_at_k(at_k: Sequence[int] | Tensor | None, n_units: int, scope: str = "the layer",
               what: str = "at_k") -> list[int] | None:
    """Validate the points of a curve: ints in ``0..n_units``, sorted, unique, at least 2.

    Returns them as a list, or None (every ``k``) when ``at_k`` is None or lists every ``k``.
    """
    if at_k is None:
        return None
    if isinstance(at_k, Tensor):
        if at_k.dtype.is_floating_point or at_k.dtype == torch.bool:
            raise PruneInfoError(f"{what} must hold integer k values, got {at_k.dtype}")
        values = [int(v) for v in at_k.flatten().tolist()]
    else:
        if isinstance(at_k, (str, bytes)):
            raise PruneInfoError(f"{what} must be a sequence of integers, got {at_k!r}")
        values = []
        for v in at_k:
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise PruneInfoError(f"{what} must hold integer k values, got {v!r}")
            values.append(int(v))
    if len(values) < 2:
        raise PruneInfoError(f"{what} needs at least 2 values of k, got {len(values)}")
    bad = [v for v in values if v < 0 or v > n_units]
    if bad:
        raise PruneInfoError(f"{what}: k = {bad[0]} is outside 0..{n_units} (the units of "
                             f"{scope})")
    if any(b <= a for a, b in zip(values[:-1], values[1:])):
        raise PruneInfoError(f"{what} must be sorted and without repeats, got {values}")
    if values == list(range(n_units + 1)):
        return None
    return values


def nearest_k(ks: Sequence[int], k: int) -> int:
    """Index in ``ks`` (the computed points, sorted) of the one nearest ``k``; ties: the lower.

    Examples
    --------
    >>> nearest_k([0, 4, 8, 12], 6), nearest_k([0, 4, 8, 12], 7), nearest_k(range(9), 5)
    (1, 2, 5)
    """
    values = list(ks)
    if not values:
        raise PruneInfoError("no computed k to choose from")
    return min(range(len(values)), key=lambda i: (abs(values[i] - k), values[i]))


def _points(at_k: Sequence[int] | Tensor | None, max_k: int | None, n_units: int,
            scope: str) -> tuple[Tensor, bool]:
    """The k values to compute (int64) and whether they are sparse (not every k)."""
    if at_k is not None and max_k is not None:
        raise PruneInfoError("give either `max_k` or `at_k`, not both")
    ks = check_at_k(at_k, n_units, scope)
    if ks is None:
        top = _check_max_k(max_k, n_units, scope)
        return torch.arange(top + 1), False
    return torch.tensor(ks, dtype=torch.int64), True


def _bar(total: int, desc: str, progress: bool, unit: str = "pass"):
    """A tqdm bar with an ETA on stderr (a no-op when ``progress`` is false)."""
    return tqdm(total=total, desc=desc, unit=unit, disable=not progress, leave=False,
                file=sys.stderr, dynamic_ncols=True)


