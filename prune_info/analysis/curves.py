"""Cumulative ablation curves, computed in batches, and the statistics that compare them.

Section V of Amjad, Liu & Geiger ranks the units of a layer (or of the whole network) by an
information measure computed on the validation set, then ablates the ``k`` lowest- (or highest-)
ranked units and measures the accuracy on the test set, for every ``k`` from 0 to ``n``. An
ablated unit's output is replaced by zero (the paper's default) or by its mean on the training set.

A curve is the number of correctly classified test samples after ablating the first ``k`` units of
an *ordering* (a permutation of the layer's units, first to ablate first), ``k = 0 .. n``.

How the curves are computed
---------------------------
A curve is not ``n + 1`` passes of the whole network. For a :class:`torch.nn.Sequential` model
(every model prune-info builds), the network is cut at the point where the units are read (the
activation module after the layer); the part before the cut runs once per batch of test samples.
Then, for layer-wise curves (:func:`layerwise_curves`), one of two paths:

* ``prefix`` (MLP layers, and any layer followed by a Linear layer): ablating unit ``j`` removes
  ``W[:, j] (h_j - a_j)`` from the next layer's input, so the inputs for ``k = 0..n`` are one
  running sum over the ordering. The rest of the network runs on those, all ``k`` at once. Every
  prediction is checked against a bound on the rounding difference to the naive masked product
  (the classic ``n u / (1 - n u)`` bound, carried through the remaining layers); the few whose
  top-two logit margin is within the bound (well under 1 % on FashionMNIST) are recomputed
  exactly.
* ``batched`` (everything else, e.g. convolutional layers): the masks of *all* ``k`` and *all*
  orderings are stacked into one boolean matrix; identical masks are computed once; chunks of
  masks are applied to the cached layer output at once (``[masks, samples, units]``) and the rest
  of the network runs on each chunk folded into the batch dimension, chunks sized to a memory
  budget. The rest of the network sees exactly the values a masked forward pass sees.

Either way every count equals the naive loop's (mask ``k`` units with a forward hook, run the
whole network) *exactly*, not just approximately: :func:`naive_curves` is that loop, kept as the
reference for tests and benchmarks. (Row results of CPU matrix products do not depend on how many
rows are computed together once there are more than a dozen; below that BLAS switches kernels, so
small recomputations are padded.)

Points of a curve
-----------------
Every ``k`` is cheap on an MLP layer (the prefix path), but on a convolutional layer each
distinct ``(ordering, k)`` is one pass of the rest of the network over the test set: a 512-channel
ResNet layer with 3 orderings is 1,500 of them. ``at_k`` (in every curve function) computes the
curves at some ``k`` only, e.g. ``spaced_ks(n, 33)``; the batched path then builds masks for those
``k`` only, the prefix path still runs its one running sum and keeps those columns. The counts at
those ``k`` are exactly the full curve's. :class:`CurveSet` records the ``k`` of such scopes in
``at_k`` (absent for full curves, so their JSON is unchanged), and :meth:`CurveSet.counts_at` reads
a curve at the computed ``k`` nearest to a given one. ``prune-info ablate`` computes
:data:`DEFAULT_STEPS` points on convolutional scopes wider than :data:`SPARSE_ABOVE` channels and
on linear ones wider than :data:`LINEAR_SPARSE_ABOVE` units (:func:`default_at_k`), and every ``k``
elsewhere, so the papers' 100-unit MLP layers keep their full curves; the library computes every
``k`` unless asked.

Whole-network curves (:func:`network_curves`) rank the units of several layers together; the
network is cut at every one of those layers and each chunk of masks is applied layer after layer
(the ``batched`` path).

Models that are not :class:`~torch.nn.Sequential`, whose ablation points are nested inside
sub-modules, or that call one module at two places, fall back to the naive loop (correct, slower),
which masks the units where :func:`prune_info.capture.unit_hooks` finds them: the one call of the
activation module that consumes the layer's output (see :mod:`prune_info.capture`).

Statistics
----------
:func:`mean_gap` compares an information ordering with random ablation over seeds: the mean gap
``MG@k`` in percentage points (positive: the information ordering keeps more accuracy than random)
and the two-sided Wilcoxon signed-rank p-value of the paired differences. :func:`ks_gap` compares
the random curves of two scenarios (two layers, two regularisers) with the two-sample
Kolmogorov-Smirnov test. Both are reported as the paper does: ``MG@80 = 15.2, p = 3.6e-9``.

Examples
--------
>>> from prune_info.data import load_dataset
>>> from prune_info.training import TrainConfig, train_model
>>> data = load_dataset("digits")
>>> ckpt = train_model(data, "64-32-10", config=TrainConfig(epochs=3), progress=False)
>>> order = torch.arange(32)                                   # ablate fc1:0, fc1:1, ... in turn
>>> counts = layerwise_curve(ckpt.model, "fc1", order, data.test)
>>> counts.shape, int(counts[-1]) <= int(counts[0])
(torch.Size([33]), True)
"""

from __future__ import annotations

import contextlib
import functools
import math
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from prune_info._torch import shared_threads
from prune_info.analysis.graph_cut import cut_at
from prune_info.capture import unit_hooks, units_last
from prune_info.criteria.ranking import RANK_ORDERS, rank_units
from prune_info.data import Samples, Split, as_split
from prune_info.errors import PruneInfoError
from prune_info.nn import LayerInfo, count_correct, first_sample, resolve_layers

__all__ = [
    "ABLATE_TO", "CurveSet", "DEFAULT_STEPS", "LINEAR_SPARSE_ABOVE", "METHODS", "ORDERS",
    "SPARSE_ABOVE", "ablated_correct", "check_at_k",
    "check_order", "compute_curves", "default_at_k", "group_curves", "layerwise_curve",
    "layerwise_curves",
    "naive_curves", "nearest_k", "network_curves", "network_orders", "random_orders",
    "spaced_ks", "unit_means",
]

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


# --------------------------------------------------------------------------------------------
# Means on the training set (for ablation to the mean)


@torch.no_grad()
def unit_means(
    model: nn.Module,
    split: Samples,
    layers: Sequence[str] | str | None = None,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    device: torch.device | str = "cpu",
) -> dict[str, Tensor]:
    """Mean output of every unit on ``split`` (the training set), for ablation to the mean.

    Parameters
    ----------
    model : nn.Module
    split : Split
        The training set.
    layers : list of str, optional
        Prunable layers (all when None).
    batch_size : int
    device : str or torch.device

    Returns
    -------
    dict of str to Tensor
        ``{layer: float32 tensor}`` of shape ``[units]`` for Linear layers and
        ``[channels, H, W]`` for Conv2d layers: a channel is replaced by its mean *map*, every
        position by its own mean, so the ablated channel looks like an average input. Token
        units (a Linear layer on ``[batch, tokens, dim]``) get ``[units, tokens]``: one mean per
        token.
    """
    if len(split) == 0:
        raise PruneInfoError("cannot compute unit means on an empty split")
    infos = resolve_layers(model, layers, order="model", example=first_sample(model, split))
    sums: dict[str, Tensor] = {}

    def accumulate(info: LayerInfo, value: Tensor) -> None:
        if units_last(info, value):  # token units: [batch, tokens, units] -> [units, tokens]
            value = value.movedim(-1, 1)
        total = value.double().sum(0)
        sums[info.name] = sums[info.name] + total if info.name in sums else total

    with _eval_mode(model), unit_hooks(model, infos, accumulate):
        model.to(device)
        for xb, _ in split.batches(batch_size):
            model(xb.to(device))
    return {name: (total / len(split)).float().cpu() for name, total in sums.items()}


def _fill_for(info: LayerInfo, ablate_to: str, means) -> Tensor | None:
    """The replacement value of an ablated unit of ``info``: None (zero) or a mean tensor."""
    if ablate_to not in ABLATE_TO:
        raise PruneInfoError(f"unknown ablation target {ablate_to!r}; choose zero or mean")
    if ablate_to == "zero":
        return None
    if means is None:
        raise PruneInfoError(
            "ablation to the mean needs the units' training-set means; compute them with "
            "prune_info.analysis.curves.unit_means(model, data.train)"
        )
    value = means.get(info.name) if isinstance(means, Mapping) else means
    if value is None:
        raise PruneInfoError(f"the means given for ablation to the mean lack layer {info.name}")
    value = torch.as_tensor(value, dtype=torch.float32)
    if value.dim() == 0 or value.shape[0] != info.n_units:
        raise PruneInfoError(
            f"means of {info.name} must start with its {info.n_units} units, got shape "
            f"{list(value.shape)}"
        )
    return value


# --------------------------------------------------------------------------------------------
# Hooks and model state


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def _apply_mask(h: Tensor, ablated: Tensor, fill: Tensor | None, last: bool = False) -> Tensor:
    """Replace ablated units of ``h`` by zero or by ``fill``.

    ``h``: ``[rows, batch, units, *spatial]``, or with ``last`` (token units, see
    :func:`prune_info.capture.units_last`) ``[rows, batch, *tokens, units]``; ``ablated``: bool
    ``[rows, units]``; ``fill``: None or ``[units, *spatial]`` / ``[units, *tokens]`` (or
    ``[units]``). The batched path and the naive reference both go through this function, so
    both see bit-identical values.
    """
    extra = h.dim() - 3
    if last:
        mask = ablated.view(ablated.shape[0], 1, *([1] * extra), ablated.shape[1])
    else:
        mask = ablated.view(ablated.shape[0], 1, ablated.shape[1], *([1] * extra))
    if fill is None:
        return torch.where(mask, torch.zeros((), dtype=h.dtype, device=h.device), h)
    fill = fill.to(h.device, h.dtype)
    if last:
        fill = fill.movedim(0, -1)  # [*tokens, units], broadcast over rows and batch
    else:
        fill = fill.view(fill.shape[0], *([1] * (extra - (fill.dim() - 1))), *fill.shape[1:])
    return torch.where(mask, fill, h)


# --------------------------------------------------------------------------------------------
# The engine: correct counts for many ablation masks


def _on_free_cores(fn: Callable[..., T]) -> Callable[..., T]:
    """Run an engine function on the CPU cores free when it starts (``shared_threads``): its
    many medium-sized operations collapse when they wait for cores other processes hold."""
    @functools.wraps(fn)
    def wrapper(*args: Any, device: torch.device | str = "cpu", **kwargs: Any) -> T:
        with shared_threads(device):
            return fn(*args, device=device, **kwargs)
    return wrapper


def _segments(model: nn.Module, points: Sequence[str]) -> list[nn.Sequential] | None:
    """Cut a Sequential model after each ablation point; None when that is not possible."""
    if not isinstance(model, nn.Sequential):
        return None
    if len({id(m) for m in model.modules()}) != len(list(model.modules(remove_duplicate=False))):
        return None  # a module called at two places: cutting at its name is ambiguous
    names = [name for name, _ in model.named_children()]
    try:
        cuts = [names.index(p) for p in points]
    except ValueError:
        return None  # a point nested in a sub-module
    if cuts != sorted(cuts):
        return None
    bounds = [0, *[c + 1 for c in cuts], len(names)]
    return [model[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


def _tap_mask(x: Tensor, *, rows: Tensor, fill: Tensor | None, info: LayerInfo) -> Tensor:
    """Mask a later layer's units inside the traced part after a cut: ``x`` holds
    ``len(rows)`` masked copies of the batch, one after the other."""
    h = x.view(rows.shape[0], -1, *x.shape[1:])
    return _apply_mask(h, rows, fill, units_last(info, h[0])).reshape(x.shape)


def _rows_per_chunk(model: nn.Module, x1: Tensor, first_point: str, batch: int,
                    memory_mb: float) -> int:
    """How many masks fit in one chunk: budget / (batch x widest activation after the cut)."""
    widest = 1
    after = False
    with _eval_mode(model):
        handles = []
        sizes: list[tuple[str, int]] = []
        for name, module in model.named_modules():
            if name and not list(module.children()):
                handles.append(module.register_forward_hook(
                    lambda mod, inp, out, key=name: sizes.append((key, out[0].numel()))))
        try:
            with torch.no_grad():
                model(x1)
        finally:
            for handle in handles:
                handle.remove()
    for name, numel in sizes:
        if after:
            widest = max(widest, numel)
        if name == first_point:
            after = True
            widest = max(widest, numel)
    per_row = batch * widest * 4 * 3  # the masked input, the layer output, its activation
    # cache-sized chunks measured fastest (16 MiB: 9 s against 35 s at 256 MiB for one layer
    # of the FashionMNIST benchmark); the budget caps them in any case
    return max(1, int(min(memory_mb * 2**20, _BATCHED_CHUNK_BYTES) // per_row))


@_on_free_cores
@torch.no_grad()
def _masked_counts(
    model: nn.Module,
    split: Split,
    infos: Sequence[LayerInfo],
    ablated: Tensor,
    fills: Sequence[Tensor | None],
    *,
    device: torch.device | str = "cpu",
    batch_size: int = DEFAULT_BATCH_SIZE,
    memory_mb: float = DEFAULT_MEMORY_MB,
    progress: bool = False,
    desc: str = "ablate",
    info: dict | None = None,
) -> Tensor:
    """Correct test samples for every row of ``ablated`` (bool ``[M, sum of units]``), int64 [M].

    Columns of ``ablated`` are the units of ``infos`` concatenated in model order. Only the
    distinct rows are computed; ``progress`` shows a bar over their masked forward passes (one
    per distinct row and batch of test samples). The network before the (first) ablation point
    runs once per batch when it can be cut there: a Sequential model at its children, any other
    through :func:`~prune_info.analysis.graph_cut.cut_at` (the later layers masked at its taps);
    else the whole network runs per mask. ``info["cut"]`` says which: ``sequential``,
    ``traced`` or ``none``.
    """
    device = torch.device(device)
    points = [info.output_module for info in infos]
    unique, inverse = torch.unique(ablated, dim=0, return_inverse=True)
    segments = _segments(model, points)
    model.to(device)
    cut = None
    if segments is None:
        with _eval_mode(model):
            cut = cut_at(model, infos)
            if cut is not None and cut.run_before(split.x[:2].to(device)) is None:
                cut = None
    if info is not None:
        info["cut"] = "sequential" if segments is not None else "traced" if cut else "none"
    if segments is None and cut is None:
        counts = _naive_counts(model, split, infos, unique, fills, device=device,
                               batch_size=batch_size, progress=progress, desc=desc)
        return counts[inverse]
    before: Callable[[Tensor], list[Tensor] | None]
    afters: list[nn.Module]
    if cut is not None:
        before, afters = cut.run_before, [cut.after]
    else:
        assert segments is not None
        first = segments[0]
        before, afters = (lambda xb: [first(xb)]), list(segments[1:])
    offsets = np.cumsum([0, *[info.n_units for info in infos]]).tolist()
    counts = torch.zeros(unique.shape[0], dtype=torch.int64)
    with _eval_mode(model):
        batch = min(batch_size, len(split))
        chunk = _rows_per_chunk(model, split.x[:1].to(device), points[0], batch, memory_mb)
        chunk = max(chunk, math.ceil(_MIN_ROWS / max(batch, 1)))
        n_batches = math.ceil(len(split) / batch_size)
        bar = _bar(unique.shape[0] * n_batches, desc, progress)
        for start in range(0, len(split), batch_size):
            xb = split.x[start : start + batch_size].to(device)
            yb = split.y[start : start + batch_size].to(device)
            live = before(xb)
            assert live is not None  # a traced cut was checked on the first samples above
            cached, others = live[0], live[1:]
            for r0 in range(0, unique.shape[0], chunk):
                rows = unique[r0 : r0 + chunk].to(device)
                h = cached.unsqueeze(0).expand(rows.shape[0], *cached.shape)
                # the other values the rest reads (a skip connection's input): once per mask
                extra = [torch.cat([v] * rows.shape[0]) for v in others]
                for j, tap in enumerate(cut.taps if cut is not None else (), start=1):
                    tap.fn = functools.partial(_tap_mask, rows=rows[:, offsets[j] : offsets[j + 1]],
                                               fill=fills[j], info=infos[j])
                for j, after in enumerate(afters):
                    h = _apply_mask(h, rows[:, offsets[j] : offsets[j + 1]], fills[j],
                                    units_last(infos[j], h[0]))
                    out = after(h.reshape(-1, *h.shape[2:]), *(extra if j == 0 else ()))
                    h = out.view(rows.shape[0], -1, *out.shape[1:])
                correct = (h.argmax(-1) == yb).sum(1)
                counts[r0 : r0 + rows.shape[0]] += correct.cpu()
                bar.update(rows.shape[0])
        bar.close()
    return counts[inverse]


@_on_free_cores
@torch.no_grad()
def _naive_counts(
    model: nn.Module,
    split: Split,
    infos: Sequence[LayerInfo],
    ablated: Tensor,
    fills: Sequence[Tensor | None],
    *,
    device: torch.device | str = "cpu",
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool = False,
    desc: str = "ablate",
) -> Tensor:
    """The reference: one full masked forward pass over the test set per row of ``ablated``."""
    device = torch.device(device)
    offsets = np.cumsum([0, *[info.n_units for info in infos]]).tolist()
    position = {info.name: j for j, info in enumerate(infos)}
    current: dict[str, Tensor] = {}

    def mask(info: LayerInfo, value: Tensor) -> Tensor:
        j = position[info.name]
        rows = current["rows"][:, offsets[j] : offsets[j + 1]]
        return _apply_mask(value.unsqueeze(0), rows, fills[j],
                           units_last(info, value)).squeeze(0)

    counts = torch.zeros(ablated.shape[0], dtype=torch.int64)
    model.to(device)
    with unit_hooks(model, infos, mask), _bar(ablated.shape[0], desc, progress) as bar:
        for i in range(ablated.shape[0]):
            current["rows"] = ablated[i : i + 1].to(device)
            counts[i] = count_correct(model, split, batch_size=batch_size, device=device)
            bar.update(1)
    return counts


# --------------------------------------------------------------------------------------------
# The prefix-sum path for layer-wise curves, verified against rounding


#: Modules the prefix-sum path can carry its rounding-error bound through (in eval mode).
_BOUNDED = (nn.Linear, nn.ReLU, nn.Sigmoid, nn.Tanh, nn.LeakyReLU, nn.Dropout, nn.Identity,
            nn.Flatten, nn.BatchNorm1d)
#: Rows recomputed exactly at a time by the prefix-sum path.
_RECHECK_CHUNK = 4096


def _gamma(n: int, u: float) -> float:
    """The classic bound on the relative rounding error of an n-term sum: n u / (1 - n u)."""
    return n * u / (1.0 - n * u)


@dataclass
class _PrefixPlan:
    prefix: nn.Sequential
    suffix: nn.Sequential
    first: nn.Linear
    rest: list[nn.Module]


def _prefix_plan(model: nn.Module, info: LayerInfo,
                 x1: Tensor | None = None) -> _PrefixPlan | None:
    """Where the cut is followed by a Linear layer (MLP layers), the prefix-sum path applies.

    Not to token units: with a sample ``x1``, a cut whose output is not ``[batch, units]`` is
    refused.
    """
    segments = _segments(model, [info.output_module])
    if segments is None or info.kind != "linear":
        return None
    prefix, suffix = segments
    if x1 is not None:
        param = next(model.parameters(), None)
        with _eval_mode(model), torch.no_grad():
            shape = prefix(x1.to(param.device if param is not None else "cpu")).shape
        if len(shape) != 2:
            return None
    modules = list(suffix)
    while modules and isinstance(modules[0], (nn.Dropout, nn.Identity, nn.Flatten)):
        modules.pop(0)
    if not modules or not isinstance(modules[0], nn.Linear):
        return None
    if not all(isinstance(m, _BOUNDED) for m in modules[1:]):
        return None
    for m in modules:
        if isinstance(m, nn.LeakyReLU) and abs(m.negative_slope) > 1:
            return None
        if isinstance(m, nn.BatchNorm1d) and (m.running_var is None or m.running_mean is None):
            return None
    if any(p.dtype != torch.float32 for p in model.parameters()):
        return None
    return _PrefixPlan(prefix, suffix, modules[0], modules[1:])


def _later_masks(model: nn.Module, plan: _PrefixPlan, infos: Sequence[LayerInfo],
                 fills: Sequence[Tensor | None], device: torch.device) -> list[_LaterMask] | None:
    """The masks of a whole-network ordering's layers after the first (``infos[1:]``), placed
    after their output modules in the rest of the network; None when one is not there (the
    batched path then runs)."""
    steps = [m for m in plan.rest if not isinstance(m, (nn.Dropout, nn.Identity, nn.Flatten))]
    out, offset = [], infos[0].n_units
    for info, fill in zip(infos[1:], fills[1:]):
        module = model.get_submodule(info.output_module)
        index = next((i for i, m in enumerate(steps) if m is module), None)
        if info.kind != "linear" or index is None or steps.count(module) != 1:
            return None
        out.append(_LaterMask(index, module, offset, info.n_units,
                              None if fill is None else fill.to(device).reshape(-1)))
        offset += info.n_units
    return out


@dataclass
class _RestStep:
    """One module after the cut's Linear layer: its values, and its effect on a rounding bound.

    Activations are held as ``[k, units, samples]``. The values run on a block of ``k`` at a
    time (:meth:`forward`); the bound runs afterwards for all ``k`` at once (:meth:`bound`), from
    a-priori magnitudes: ``err[k, sample]`` bounds ``max_unit |x_fast - x_naive|`` and
    ``size[k, sample]`` bounds ``max_unit |x|`` of both. Both sides round on their own, so each
    module adds its own rounding twice.
    """

    module: nn.Module
    kind: str  # "relu", "linear", "bn", "squash" (sigmoid, tanh) or "leaky"
    norm: float = 0.0   # largest row sum of |W| (linear), largest |scale| (bn)
    shift: float = 0.0  # largest |bias| (linear), largest |shift| (bn)
    gamma: float = 0.0

    def forward(self, x: Tensor, out: Tensor) -> Tensor:
        """The module on ``x`` (``[k, units, samples]``), into ``out``."""
        if self.kind == "linear":
            linear = cast(nn.Linear, self.module)
            weight = linear.weight.expand(x.shape[0], -1, -1)
            if linear.bias is None:
                return torch.bmm(weight, x, out=out)
            return torch.baddbmm(linear.bias[None, :, None], weight, x, out=out)
        if self.kind == "relu":
            return torch.clamp_min(x, 0, out=out)
        # BatchNorm1d reads [N, C, L] with the units as C: here N is k and L the samples
        return out.copy_(self.module(x))

    def bound(self, err: Tensor, size: Tensor, u: float) -> tuple[Tensor, Tensor]:
        """``(err, size)`` after the module from ``(err, size)`` before it."""
        if self.kind == "relu":
            return err, size  # 1-Lipschitz and exact
        if self.kind == "linear":
            out = self.norm * size + self.shift
            return self.norm * err + self.gamma * out, out * (1 + self.gamma)
        if self.kind == "bn":
            out = (self.norm * size + self.shift) * (1 + 16 * u)
            return self.norm * err + 16 * u * (self.norm * size + out + 1e-30), out
        # sigmoid, tanh, leaky relu (|slope| <= 1): at most 1-Lipschitz, a few ulp of their own
        out = size.clamp_max(1.0) if self.kind == "squash" else size
        return err + 8 * u * out, out


def _rest_steps(modules: Sequence[nn.Module], u: float) -> list[_RestStep]:
    """The steps of ``modules`` (pass-through modules dropped), their constants computed once."""
    steps: list[_RestStep] = []
    for module in modules:
        if isinstance(module, (nn.Dropout, nn.Identity, nn.Flatten)):
            continue
        if isinstance(module, nn.ReLU):
            steps.append(_RestStep(module, "relu"))
        elif isinstance(module, nn.Linear):
            steps.append(_RestStep(
                module, "linear", norm=float(module.weight.detach().abs().sum(1).max()),
                shift=float(module.bias.detach().abs().max()) if module.bias is not None
                else 0.0,
                gamma=2 * _gamma(module.in_features + 2, u)))
        elif isinstance(module, nn.BatchNorm1d):
            assert module.running_var is not None and module.running_mean is not None
            scale = torch.ones_like(module.running_var) if module.weight is None \
                else module.weight.detach()
            scale = scale / torch.sqrt(module.running_var + module.eps)
            shift = -module.running_mean * scale
            if module.bias is not None:
                shift = shift + module.bias.detach()
            steps.append(_RestStep(module, "bn", norm=float(scale.abs().max()),
                                   shift=float(shift.abs().max())))
        else:
            kind = "leaky" if isinstance(module, nn.LeakyReLU) else "squash"
            steps.append(_RestStep(module, kind))
    return steps


def _running_sum_bound(h_abs_t: Tensor, delta_abs_t: Tensor, p0: Tensor, order: Tensor,
                       c: Tensor, fill_abs: Tensor, u: float) -> tuple[Tensor, Tensor]:
    """Bounds ``[K + 1, samples]`` on ``max_j |z_k[j] - naive_k[j]|`` for the running sum of
    :func:`_prefix_sum_counts` (``K = len(order)``), and on ``max_j |z_k[j]|`` of both.

    ``order[k]`` is the unit the ``k``-th update ablates and ``c[k]`` its ``c_i`` below (0 for an
    update that changes nothing: a later layer's unit in a whole-network ordering).

    With ``c_i = max_j |W_ji|`` and ``x_k`` the layer output with the first ``k`` units of
    ``order`` ablated, ``P_k = sum_i c_i |x_k,i| + max |b|`` bounds ``|z_k|`` and every partial
    sum of its product (``p0`` is ``P_0``). A float32 product over ``n`` terms is off by at most
    ``gamma_{n+2} P_k`` whatever the summation order (the naive loop's ``z_k``, and the
    running sum's start ``z_K``); each update of the running sum adds at most
    ``2u c_i |h_i - a_i|`` (rounding of the difference and of the product) and
    ``u |z_i| <= u P_i`` (the addition). A 1 % margin covers the second-order terms and the
    rounding of the bound's own arithmetic (Higham, *Accuracy and Stability of Numerical
    Algorithms*, 2nd ed., Sec. 3.1 and 4.2). ``h_abs_t`` and ``delta_abs_t`` are ``|h|`` and
    ``|h - a|`` transposed, ``[units, samples]``.
    """
    k_max = order.numel()
    gamma = _gamma(h_abs_t.shape[0] + 2, u)
    p = p0.expand(k_max + 1, -1).clone()
    steps = torch.zeros_like(p)
    if k_max:
        c = c[:, None]
        p[1:] += (c * (fill_abs[order, None] - h_abs_t[order])).cumsum(0)
        # the sum of the update terms from k to K: their total less the first k
        terms = c * (2 * u) * delta_abs_t[order] + u * p[:k_max]
        steps[1:] = terms.cumsum(0)
        steps = steps[k_max] - steps
    err = 1.01 * (gamma * (p + p[k_max]) + steps)
    return err, p + err


@dataclass
class _LaterMask:
    """A later layer of a whole-network ordering: its units are masked after ``step`` of the
    rest of the network, where ``position[u]`` (the unit's place in the ordering) ``< k``."""

    step: int
    module: nn.Module     # the layer's output module, where the naive loop masks it
    offset: int           # its first global unit index
    n_units: int
    fill: Tensor | None   # [units] (None: zero)
    position: Tensor | None = None  # set per ordering

    def apply(self, x: Tensor, ks: Tensor) -> None:
        """Mask ``x`` (``[len(ks), units, samples]``) in place for ablation counts ``ks``."""
        assert self.position is not None
        ablated = (self.position[None, :] < ks[:, None]).unsqueeze(2)
        if self.fill is None:
            x.masked_fill_(ablated, 0.0)
        else:
            x.copy_(torch.where(ablated, self.fill[None, :, None], x))


def _outputs_by_k(z_max: Tensor, columns: Tensor, factors: Tensor, steps: list[_RestStep],
                  buffers: list[Tensor], outputs: Tensor,
                  later: Sequence[_LaterMask] = ()) -> None:
    """Fill ``outputs[k]`` (``[classes, samples]``) for ``k = K..0`` by the running sum
    ``z_k = z_{k+1} + columns[k] factors[k]^T`` from ``z_max = z_K``, each ``z_k`` through
    ``steps`` (and the masks of ``later`` layers after theirs).

    The steps run on blocks of ``len(buffers[0])`` consecutive ``k`` at once (``buffers``:
    the block's running sums, then one per step but the last), so the products are batched and
    few.
    """
    k_max = columns.shape[0]
    if not steps:  # the cut feeds the output layer: the running sum is the logits
        outputs[k_max].copy_(z_max)
        for k in range(k_max - 1, -1, -1):
            torch.addr(outputs[k + 1], columns[k], factors[k], out=outputs[k])
        return
    sums, block = buffers[0], buffers[0].shape[0]
    for top in range(k_max, -1, -block):
        low = max(0, top - block + 1)
        z = sums[: top - low + 1]  # z[i] is z_{low + i}; sums[0] still holds z_{top + 1}
        if top == k_max:
            z[-1].copy_(z_max)
        elif len(z) == 1:
            z[0].addr_(columns[top], factors[top])
        else:
            torch.addr(sums[0], columns[top], factors[top], out=z[-1])
        for i in range(top - low - 1, -1, -1):
            torch.addr(z[i + 1], columns[low + i], factors[low + i], out=z[i])
        x = z
        ks = torch.arange(low, top + 1, device=z.device)
        outs = [b[: len(z)] for b in buffers[1:]] + [outputs[low : top + 1]]
        for i, (step, out) in enumerate(zip(steps, outs)):
            x = step.forward(x, out=out)
            for mask in later:
                if mask.step == i:
                    mask.apply(x, ks)


@dataclass
class _Block:
    """A block of samples' layer outputs, prepared for :meth:`_RunningSums.logits`."""

    h: Tensor            # [rows, n]
    delta_t: Tensor      # (h - a) transposed, [n, rows]
    h_abs_t: Tensor      # |h| transposed
    p0: Tensor           # P_0 of :func:`_running_sum_bound`, [rows]
    outputs: Tensor      # [K + 1, classes, rows], overwritten by every ordering
    buffers: list[Tensor]


class _RunningSums:
    """The running-sum evaluation of one layer's curves: the model's constants, computed once.

    Parameters
    ----------
    plan : _PrefixPlan
    fill : Tensor, optional
        The ablated units' value (``None``: zero).
    max_k : int
    device : torch.device
    later : sequence of _LaterMask
        Whole-network orderings: the later layers (their units numbered after the cut layer's).
    """

    def __init__(self, plan: _PrefixPlan, fill: Tensor | None, max_k: int,
                 device: torch.device, later: Sequence[_LaterMask] = ()):
        self.plan, self.max_k, self.device = plan, max_k, device
        self.later = list(later)
        self.u = float(torch.finfo(torch.float32).eps) / 2
        weight = plan.first.weight.detach().to(device)
        n, m = weight.shape[1], weight.shape[0]
        self.weight_t = weight.t().contiguous()
        self.col_max = weight.abs().amax(0)
        bias = plan.first.bias
        self.bias_max = float(bias.detach().abs().max()) if bias is not None else 0.0
        self.fill = torch.zeros(n, device=device) if fill is None \
            else fill.to(device).reshape(n)
        self.steps = _rest_steps(plan.rest, self.u)
        self.widths = [m]  # of z and of every step's output
        for step in self.steps:
            self.widths.append(cast(nn.Linear, step.module).out_features
                               if step.kind == "linear" else self.widths[-1])

    def samples_per_block(self, memory_mb: float, batch_size: int) -> int:
        """Samples whose outputs at every k, and running sums and activations at _K_BLOCK of
        them, stay cache-sized (and within the memory budget)."""
        per_sample = 4 * ((self.max_k + 1) * (self.widths[-1] + 2)
                          + _K_BLOCK * sum(self.widths[:-1]))
        sub = int(min(_PREFIX_CHUNK_BYTES, memory_mb * 2**20) // per_sample)
        return max(1, min(batch_size, sub))

    def block(self, h: Tensor) -> _Block:
        delta_t = (h - self.fill).t().contiguous()
        h_abs_t = h.abs().t().contiguous()
        rows = h.shape[0]
        return _Block(
            h, delta_t, h_abs_t, h_abs_t.t() @ self.col_max + self.bias_max,
            torch.empty(self.max_k + 1, self.widths[-1], rows, device=self.device),
            [torch.empty(_K_BLOCK, w, rows, device=self.device) for w in self.widths[:-1]])

    def logits(self, block: _Block, order: Tensor) -> tuple[Tensor, Tensor]:
        """The outputs ``[K + 1, classes, rows]`` after ablating the first ``k`` units of
        ``order`` (``K`` of them), by the running sum, and a bound ``[K + 1, rows]`` on their
        largest difference from the naive loop's outputs. The outputs are the block's buffer:
        the next call overwrites them."""
        n = block.h.shape[1]
        own = order < n  # whole-network orderings: the positions that ablate this layer's units
        units = torch.where(own, order, 0)
        columns = self.weight_t[units] * own[:, None]  # a later layer's position: no update
        ablated = block.h.clone()
        ablated[:, order[own]] = self.fill[order[own]]
        z_max = _first_layer(self.plan, ablated).t()  # z_K, [m, rows]
        if self.later:
            position = torch.full((n + sum(m.n_units for m in self.later),), self.max_k + 1,
                                  dtype=torch.int64, device=self.device)
            position[order] = torch.arange(order.numel(), device=self.device)
            for mask in self.later:
                mask.position = position[mask.offset : mask.offset + mask.n_units]
        _outputs_by_k(z_max, columns, block.delta_t[units], self.steps, block.buffers,
                      block.outputs, self.later)
        err, size = _running_sum_bound(block.h_abs_t, block.delta_t.abs(), block.p0, units,
                                       self.col_max[units] * own, self.fill.abs(), self.u)
        for i, step in enumerate(self.steps):
            err, size = step.bound(err, size, self.u)
            for mask in self.later:  # masked units hold their fill, exactly, in both
                if mask.step == i and mask.fill is not None:
                    size = size.clamp_min(float(mask.fill.abs().max()))
        return block.outputs, err


@_on_free_cores
@torch.no_grad()
def _prefix_sum_counts(
    plan: _PrefixPlan,
    split: Split,
    orders: Tensor,
    max_k: int,
    fill: Tensor | None,
    *,
    device: torch.device,
    batch_size: int,
    memory_mb: float,
    progress: bool = False,
    desc: str = "ablate",
    later: Sequence[_LaterMask] = (),
) -> tuple[Tensor, int]:
    """Layer-wise counts by running sums of outgoing contributions, verified per prediction.

    The next Linear layer's input after ablating the first ``k`` units of an ordering is
    ``z_k = z_{k+1} + W[:, o_k] (h_{o_k} - a_{o_k})``: a rank-1 update per ``k`` (``m``
    multiply-adds per sample) instead of a product over all ``n`` units, and only the layers
    after that one run per ``k``. The sum runs down from ``z_K`` (all ``K`` units ablated, one
    product), in place on a cache-sized block of samples, so its rounding error is smallest
    where the most units are ablated and the logits' margins are thinnest. The float32 result
    differs from the naive masked product by rounding only, and that difference is bounded
    (:func:`_running_sum_bound`, carried through the rest of the network). A prediction whose
    top-two logit margin exceeds twice the bound has the naive prediction's class; the few
    others are recomputed exactly as the naive loop computes them. The counts are therefore the
    naive loop's, exactly.

    With ``later`` (whole-network orderings), the positions of an ordering that ablate a later
    layer's unit leave the running sum as it is and mask that unit after its module in the rest
    of the network, as the naive loop does.

    Returns the counts ``[R, max_k + 1]`` and the number of predictions recomputed.
    """
    sums = _RunningSums(plan, fill, max_k, device, later)
    sub = sums.samples_per_block(memory_mb, batch_size)
    counts = torch.zeros(orders.shape[0], max_k + 1, dtype=torch.int64)
    rechecked = 0
    orders_dev = orders[:, :max_k].to(device)
    bar = _bar(orders.shape[0] * len(split), desc, progress, unit="curve-sample")
    for start in range(0, len(split), batch_size):
        xb = split.x[start : start + batch_size].to(device)
        yb = split.y[start : start + batch_size].to(device)
        h_all = plan.prefix(xb)
        for s0 in range(0, h_all.shape[0], sub):
            block = sums.block(h_all[s0 : s0 + sub])
            for r, order in enumerate(orders_dev):
                outputs, err = sums.logits(block, order)
                top, pred = outputs.max(1)
                # safe: no other class within twice the bound of the top one
                unsafe = (outputs >= (top - 2 * err).unsqueeze(1)).sum(1) > 1
                if bool(unsafe.any()):
                    ks, samples = unsafe.nonzero(as_tuple=True)
                    pred[ks, samples] = _exact_rows(plan, block.h, samples, ks, order, max_k,
                                                    fill, later)
                    rechecked += int(ks.numel())
                counts[r] += (pred == yb[None, s0 : s0 + pred.shape[1]]).sum(1).cpu()
                bar.update(pred.shape[1])
    bar.close()
    return counts, rechecked


def _first_layer(plan: _PrefixPlan, h: Tensor) -> Tensor:
    """The next Linear layer on the unablated units, computed as the naive forward does."""
    x = h
    for module in plan.suffix:
        x = module(x)
        if module is plan.first:
            return x
    raise AssertionError("the plan's Linear layer is not in its suffix")


def _exact_rows(plan: _PrefixPlan, h: Tensor, samples: Tensor, ks: Tensor, order: Tensor,
                max_k: int, fill: Tensor | None, later: Sequence[_LaterMask] = ()) -> Tensor:
    """Predictions of samples ``samples`` (rows of ``h``) with the first ``ks`` units of
    ``order`` ablated, exactly as the naive loop computes them (``later``: the masks of a
    whole-network ordering's later layers, applied after their modules)."""
    out = torch.empty(samples.numel(), dtype=torch.int64, device=h.device)
    n = h.shape[1]
    # position of each unit in the ordering; units beyond max_k are never ablated
    position = torch.full((n + sum(m.n_units for m in later),), max_k + 1, dtype=torch.int64,
                          device=h.device)
    position[order] = torch.arange(order.numel(), device=h.device)
    at = {id(m.module): m for m in later}
    for a in range(0, samples.numel(), _RECHECK_CHUNK):
        rows, k = samples[a : a + _RECHECK_CHUNK], ks[a : a + _RECHECK_CHUNK]
        if rows.numel() < _MIN_ROWS:  # tiny products take other BLAS kernels: pad with row 0
            pad = _MIN_ROWS - rows.numel()
            rows, k = torch.cat([rows, rows[:1].expand(pad)]), torch.cat([k, k[:1].expand(pad)])
        ablated = position[None, :n] < k[:, None]
        x = _apply_mask(h[rows].unsqueeze(1), ablated, fill).squeeze(1)
        for module in plan.suffix:
            x = module(x)
            mask = at.get(id(module))
            if mask is not None:
                lost = position[None, mask.offset : mask.offset + mask.n_units] < k[:, None]
                x = _apply_mask(x.unsqueeze(1), lost, mask.fill).squeeze(1)
        count = min(_RECHECK_CHUNK, samples.numel() - a)
        out[a : a + count] = x[:count].argmax(1)
    return out


def _prefix_masks(orders: Tensor, ks: Tensor) -> Tensor:
    """Bool ``[R * K, n]`` for the ``K`` values ``ks``: row ``r * K + i`` ablates
    ``orders[r, :ks[i]]``. Only the requested ``k`` are built."""
    n_orders, n = orders.shape
    position = torch.empty_like(orders)
    position.scatter_(1, orders, torch.arange(n).expand(n_orders, n).contiguous())
    return (position[:, None, :] < ks[None, :, None]).reshape(n_orders * ks.numel(), n)


def _check_split(split: Split) -> Split:
    return as_split(split, "the split of ablation curves")


# --------------------------------------------------------------------------------------------
# Public curve functions


def layerwise_curves(
    model: nn.Module,
    layer: str,
    orders: Tensor,
    split: Split,
    *,
    ablate_to: str = "zero",
    means: Tensor | Mapping[str, Tensor] | None = None,
    max_k: int | None = None,
    device: torch.device | str = "cpu",
    batch_size: int = DEFAULT_BATCH_SIZE,
    memory_mb: float = DEFAULT_MEMORY_MB,
    method: str = "auto",
    info: dict | None = None,
    at_k: Sequence[int] | Tensor | None = None,
    progress: bool = False,
) -> Tensor:
    """Cumulative ablation curves of one layer for several orderings at once.

    Parameters
    ----------
    model : nn.Module
        The trained model (put in eval mode for the computation, then restored).
    layer : str
        A prunable layer, e.g. ``"fc1"``.
    orders : Tensor
        int64 ``[R, n]`` (or ``[n]``): each row a permutation of the layer's ``n`` units, first
        to ablate first.
    split : Split
        Samples to count correct predictions on (the test set).
    ablate_to : {"zero", "mean"}
    means : Tensor or dict, optional
        Training-set means (from :func:`unit_means`); needed for ``ablate_to="mean"``.
    max_k : int, optional
        Largest number of ablated units (default ``n``); every ``k`` up to it is computed.
    device : str or torch.device
    batch_size : int
        Test samples per forward pass.
    memory_mb : float
        Budget for one chunk of masked activations.
    method : {"auto", "prefix", "batched"}
        ``batched``: the rest of the network runs on every masked copy of the layer output.
        ``prefix``: prefix sums of the units' outgoing contributions into the next Linear
        layer, with every prediction checked against a rounding-error bound and the doubtful
        ones recomputed exactly (needs a Linear layer after the cut: MLP layers, the fully
        connected layers of a CNN). ``auto``: ``prefix`` where it applies, else ``batched``.
        All give the naive loop's counts exactly.
    info : dict, optional
        Filled with ``method`` (the one used) and ``rechecked`` (predictions recomputed by the
        prefix path); on the batched path also ``cut``: where the network is cut so that only
        the part after the layer runs per mask (``sequential``, ``traced`` by torch.fx, or
        ``none``: the whole network runs per mask).
    at_k : sequence of int, optional
        Compute only these points of the curves: ``k`` values in ``0..n``, sorted, unique, at
        least 2 (e.g. :func:`spaced_ks`); not with ``max_k``. The batched path builds masks for
        these ``k`` only; the prefix path computes every ``k`` up to the largest (one running
        sum) and keeps these. The counts are those of the full curves at these ``k``.
    progress : bool
        A tqdm bar with an ETA over the masked forward passes, on stderr.

    Returns
    -------
    Tensor
        int64 ``[R, max_k + 1]`` (or ``[R, len(at_k)]``): correct samples after ablating the
        first ``k`` units.
    """
    split = _check_split(split)
    (layer_info,) = resolve_layers(model, [layer], example=first_sample(model, split))
    orders = check_order(orders, layer_info.n_units)
    ks, _ = _points(at_k, max_k, layer_info.n_units, layer_info.name)
    max_k = int(ks[-1])
    desc = f"ablate {layer_info.name}"
    fill = _fill_for(layer_info, ablate_to, means)
    if method not in METHODS:
        raise PruneInfoError(f"unknown method {method!r}; choose one of: {', '.join(METHODS)}")
    plan = (_prefix_plan(model, layer_info, split.x[:1]) if method in ("auto", "prefix")
            else None)
    if method == "prefix" and plan is None:
        raise PruneInfoError(
            f"the prefix-sum path needs a Linear layer right after {layer}'s activation in a "
            "Sequential model, on flat outputs (not tokens); use method='batched'")
    if plan is not None:
        device = torch.device(device)
        model.to(device)
        with _eval_mode(model):
            counts, rechecked = _prefix_sum_counts(plan, split, orders, max_k, fill,
                                                   device=device, batch_size=batch_size,
                                                   memory_mb=memory_mb, progress=progress,
                                                   desc=desc)
        if info is not None:
            info.update(method="prefix", rechecked=rechecked)
        return counts if ks.numel() == max_k + 1 else counts[:, ks].contiguous()
    masks = _prefix_masks(orders, ks)
    if info is not None:
        info.update(method="batched", rechecked=0)
    counts = _masked_counts(model, split, [layer_info], masks, [fill], device=device,
                            batch_size=batch_size, memory_mb=memory_mb, progress=progress,
                            desc=desc, info=info)
    return counts.view(orders.shape[0], ks.numel())


def layerwise_curve(
    model: nn.Module,
    layer: str,
    order: Tensor,
    split: Split,
    *,
    ablate_to: str = "zero",
    means: Tensor | Mapping[str, Tensor] | None = None,
    device: torch.device | str = "cpu",
) -> Tensor:
    """Correct samples after ablating the first ``k`` units of ``order`` in ``layer``.

    Parameters
    ----------
    model : nn.Module
    layer : str
        A prunable layer.
    order : Tensor
        int64 ``[n]``, a permutation of the layer's units, first to ablate first.
    split : Split
        The test set.
    ablate_to : {"zero", "mean"}
    means : Tensor or dict, optional
        Training-set means for ``ablate_to="mean"`` (see :func:`unit_means`).
    device : str or torch.device

    Returns
    -------
    Tensor
        int64 ``[n + 1]``; entry ``k`` is the number of correct samples with ``k`` units ablated.
    """
    order = torch.as_tensor(order)
    if order.dim() != 1:
        raise PruneInfoError(f"order must be one permutation (1-D), got shape {list(order.shape)}")
    return layerwise_curves(model, layer, order, split, ablate_to=ablate_to, means=means,
                            device=device)[0]


def group_curves(
    model: nn.Module,
    members: Sequence[str],
    orders: Tensor,
    split: Split,
    *,
    ablate_to: str = "zero",
    means: Mapping[str, Tensor] | None = None,
    device: torch.device | str = "cpu",
    batch_size: int = DEFAULT_BATCH_SIZE,
    memory_mb: float = DEFAULT_MEMORY_MB,
    at_k: Sequence[int] | Tensor | None = None,
    progress: bool = False,
) -> Tensor:
    """Cumulative ablation curves of a group of coupled layers, which lose channels together.

    A group's layers lose the same channels together (a residual stream, a depthwise conv and
    the conv feeding it), so ablating its channel ``j`` ablates unit ``j`` of *every* member at
    its read point: the masked model that removing the channel is equivalent to (the groups are
    :func:`prune_info.surgery.unit_groups`). A one-layer group is :func:`layerwise_curves`, with
    its fast paths.

    Parameters
    ----------
    model : nn.Module
    members : sequence of str
        The group's layers, all with the same number ``n`` of units.
    orders : Tensor
        int64 ``[R, n]``: permutations of the group's channels, first to ablate first.
    split, ablate_to, means, device, batch_size, memory_mb, at_k, progress
        As in :func:`network_curves` (``means`` per member).

    Returns
    -------
    Tensor
        int64 ``[R, n + 1]`` (or ``[R, len(at_k)]``).
    """
    if len(members) == 1:
        return layerwise_curves(model, members[0], orders, split, ablate_to=ablate_to,
                                means=means, device=device, batch_size=batch_size,
                                memory_mb=memory_mb, at_k=at_k, progress=progress)
    infos = resolve_layers(model, list(members), order="model",
                           example=first_sample(model, _check_split(split)))
    widths = {info.n_units for info in infos}
    if len(widths) != 1:
        raise PruneInfoError("the layers of a group must have the same number of units, got "
                             + ", ".join(f"{i.name}: {i.n_units}" for i in infos))
    (n,) = widths
    split = _check_split(split)
    orders = check_order(orders, n)
    ks, _ = _points(at_k, None, n, "the group of " + ", ".join(members))
    fills = [_fill_for(info, ablate_to, means) for info in infos]
    masks = _prefix_masks(orders, ks).repeat(1, len(infos))
    counts = _masked_counts(model, split, infos, masks, fills, device=device,
                            batch_size=batch_size, memory_mb=memory_mb, progress=progress,
                            desc=f"ablate group {members[0]}")
    return counts.view(orders.shape[0], ks.numel())


def ablated_correct(
    model: nn.Module,
    split: Split,
    ablated: Mapping[str, Sequence[int]],
    *,
    device: torch.device | str = "cpu",
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> int:
    """Correct samples of ``split`` with the units ``ablated`` (``{layer: indices}``) zeroed.

    The units are zeroed where they are read (as by every curve here), which is what removing
    them computes; no copy of the model is made and nothing is traced.
    """
    names = [name for name, idxs in ablated.items() if len(idxs)]
    if not names:
        return count_correct(model, _check_split(split), batch_size=batch_size, device=device)
    infos = resolve_layers(model, names, order="model",
                           example=first_sample(model, _check_split(split)))
    row = torch.cat([torch.zeros(info.n_units, dtype=torch.bool).index_fill_(
        0, torch.as_tensor(list(ablated[info.name]), dtype=torch.long), True) for info in infos])
    with _eval_mode(model):
        counts = _masked_counts(model, _check_split(split), infos, row[None],
                                [None] * len(infos), device=device, batch_size=batch_size)
    return int(counts[0])


def network_curves(
    model: nn.Module,
    orders: Tensor,
    split: Split,
    *,
    layers: Sequence[str] | None = None,
    ablate_to: str = "zero",
    means: Mapping[str, Tensor] | None = None,
    max_k: int | None = None,
    device: torch.device | str = "cpu",
    batch_size: int = DEFAULT_BATCH_SIZE,
    memory_mb: float = DEFAULT_MEMORY_MB,
    at_k: Sequence[int] | Tensor | None = None,
    method: str = "auto",
    info: dict | None = None,
    progress: bool = False,
) -> Tensor:
    """Whole-network cumulative ablation: units of several layers ranked together.

    Parameters
    ----------
    model : nn.Module
    orders : Tensor
        int64 ``[R, n_total]``: permutations of the *global* unit indices, where the units of the
        layers are numbered consecutively in model order (``fc1:0 .. fc1:99`` are 0..99,
        ``fc2:0`` is 100, ...). :func:`network_orders` builds them from per-layer scores.
    split : Split
    layers : list of str, optional
        Layers taking part (all prunable layers by default).
    ablate_to, means, max_k, device, batch_size, memory_mb, at_k, progress
        As in :func:`layerwise_curves`; ``means`` is a dict ``{layer: tensor}``; ``at_k``
        counts global units (``0..n_total``), masks are built for those ``k`` only.
    method : {"auto", "prefix", "batched"}
        As in :func:`layerwise_curves`. ``prefix``: the running sums of the first layer's
        units into the next Linear layer, the later layers' units masked where they are in the
        rest of the network (an MLP's layers, in one Sequential); ``auto`` uses it where it
        applies. All give the naive loop's counts exactly.
    info : dict, optional
        Filled with ``method`` and ``rechecked``, as by :func:`layerwise_curves`.

    Returns
    -------
    Tensor
        int64 ``[R, max_k + 1]`` (or ``[R, len(at_k)]``).
    """
    split = _check_split(split)
    infos = resolve_layers(model, layers, order="model", example=first_sample(model, split))
    total = sum(info.n_units for info in infos)
    orders = check_order(orders, total)
    ks, _ = _points(at_k, max_k, total, "the network's " + "+".join(i.name for i in infos))
    fills = [_fill_for(info, ablate_to, means) for info in infos]
    if method not in METHODS:
        raise PruneInfoError(f"unknown method {method!r}; choose one of: {', '.join(METHODS)}")
    device = torch.device(device)
    plan = (_prefix_plan(model, infos[0], split.x[:1]) if method in ("auto", "prefix")
            else None)
    later = _later_masks(model, plan, infos, fills, device) if plan is not None else None
    if method == "prefix" and later is None:
        raise PruneInfoError(
            "the prefix-sum path needs the layers of an MLP in one Sequential model, each "
            "activation followed by a Linear layer; use method='batched'")
    if plan is not None and later is not None:
        model.to(device)
        top = int(ks[-1])
        with _eval_mode(model):
            counts, rechecked = _prefix_sum_counts(
                plan, split, orders, top, fills[0], device=device, batch_size=batch_size,
                memory_mb=memory_mb, progress=progress, desc="ablate network", later=later)
        if info is not None:
            info.update(method="prefix", rechecked=rechecked)
        return counts if ks.numel() == top + 1 else counts[:, ks].contiguous()
    if info is not None:
        info.update(method="batched", rechecked=0)
    masks = _prefix_masks(orders, ks)
    counts = _masked_counts(model, split, infos, masks, fills, device=device,
                            batch_size=batch_size, memory_mb=memory_mb, progress=progress,
                            desc="ablate network", info=info)
    return counts.view(orders.shape[0], ks.numel())


def naive_curves(
    model: nn.Module,
    orders: Tensor,
    split: Split,
    *,
    layers: Sequence[str] | str | None = None,
    ablate_to: str = "zero",
    means: Tensor | Mapping[str, Tensor] | None = None,
    max_k: int | None = None,
    device: torch.device | str = "cpu",
    batch_size: int = DEFAULT_BATCH_SIZE,
    at_k: Sequence[int] | Tensor | None = None,
    progress: bool = False,
) -> Tensor:
    """The reference loop: for every ordering and every ``k``, mask and run the whole network.

    ``layers`` is one layer (layer-wise) or several (whole-network, global unit indices as in
    :func:`network_curves`). ``at_k``: only these ``k`` (as in :func:`layerwise_curves`). Slow
    by design: use it to check the batched functions. Returns int64 ``[R, K]``.
    """
    split = _check_split(split)
    infos = resolve_layers(model, layers, order="model", example=first_sample(model, split))
    total = sum(info.n_units for info in infos)
    orders = check_order(orders, total)
    ks, _ = _points(at_k, max_k, total, "+".join(i.name for i in infos))
    if len(infos) == 1 and not isinstance(means, Mapping) and means is not None:
        means = {infos[0].name: means}
    fills = [_fill_for(info, ablate_to, means) for info in infos]
    masks = _prefix_masks(orders, ks)
    with _eval_mode(model):
        counts = _naive_counts(model, split, infos, masks, fills, device=device,
                               batch_size=batch_size, progress=progress, desc="naive ablation")
    return counts.view(orders.shape[0], ks.numel())


def network_orders(
    scores: Mapping[str, Tensor], layers: Sequence[LayerInfo], order: str = "low", seed: int = 0
) -> Tensor:
    """Rank the units of several layers together: one global ordering (int64 ``[n_total]``).

    ``scores`` holds one score per unit for each layer (higher = more important). The global
    index of unit ``j`` of the ``i``-th layer is ``j`` plus the sizes of the layers before it.
    Ties keep the lower global index first (:func:`prune_info.criteria.ranking.rank_units`).
    """
    missing = [info.name for info in layers if info.name not in scores]
    if missing:
        raise PruneInfoError(f"no scores for layer {missing[0]}")
    joined = torch.cat([torch.as_tensor(scores[info.name]).double().flatten() for info in layers])
    return rank_units(joined, order=order, seed=seed)


# --------------------------------------------------------------------------------------------
# Curves of one model for a set of rankings


@dataclass
class CurveSet:
    """All ablation curves of one model.

    Attributes
    ----------
    mode : {"layerwise", "network"}
    ablate_to : {"zero", "mean"}
    n_samples : int
        Size of the test set the counts are out of.
    units : dict of str to int
        Number of units of each scope (a layer name, or ``"network"``).
    counts : dict of str to dict of str to Tensor
        ``counts[scope][label]`` is int64 ``[R, K]``; labels are ``"<criterion>:<order>"``
        (one row) or ``"random"`` (``R`` rows, one per repeat). Column ``i`` is ``k = i``
        (every ``k``), or ``k = at_k[scope][i]`` for a scope computed at some points only.
    at_k : dict of str to list of int
        The ``k`` values of the scopes computed at some points only (none for full curves; the
        JSON of full curves has no ``at_k``). :meth:`ks` gives every scope's ``k`` values.
    """

    mode: str
    ablate_to: str
    n_samples: int
    units: dict[str, int] = field(default_factory=dict)
    counts: dict[str, dict[str, Tensor]] = field(default_factory=dict)
    at_k: dict[str, list[int]] = field(default_factory=dict)

    def accuracy(self, scope: str, label: str) -> Tensor:
        """Accuracy (fraction) ``[R, K]`` of one curve family."""
        return self.counts[scope][label].double() / self.n_samples

    def ks(self, scope: str) -> list[int]:
        """The ``k`` of each column of the counts of ``scope``."""
        if scope in self.at_k:
            return list(self.at_k[scope])
        first = next(iter(self.counts[scope].values()), None)
        width = int(first.shape[1]) if first is not None else self.units[scope] + 1
        return list(range(width))

    def nearest(self, scope: str, k: int) -> int:
        """The computed ``k`` of ``scope`` nearest to ``k`` (ties: the lower)."""
        ks = self.ks(scope)
        return ks[nearest_k(ks, k)]

    def counts_at(self, scope: str, label: str, k: int) -> Tensor:
        """Correct counts ``[R]`` at the computed ``k`` nearest to ``k`` (see :meth:`nearest`);
        e.g. "accuracy at half the units" is ``counts_at(scope, label, units // 2)``."""
        return self.counts[scope][label][:, nearest_k(self.ks(scope), k)]

    def to_dict(self) -> dict:
        """Plain lists (JSON-ready); ``at_k`` only when some scope has it."""
        out = {
            "mode": self.mode,
            "ablate_to": self.ablate_to,
            "n_samples": self.n_samples,
            "units": dict(self.units),
            "counts": {scope: {label: c.tolist() for label, c in by_label.items()}
                       for scope, by_label in self.counts.items()},
        }
        if self.at_k:
            out["at_k"] = {scope: [int(k) for k in ks] for scope, ks in self.at_k.items()}
        return out

    @classmethod
    def from_dict(cls, data: Mapping) -> CurveSet:
        return cls(
            mode=data["mode"], ablate_to=data["ablate_to"], n_samples=int(data["n_samples"]),
            units={k: int(v) for k, v in data["units"].items()},
            counts={scope: {label: torch.tensor(c, dtype=torch.int64)
                            for label, c in by_label.items()}
                    for scope, by_label in data["counts"].items()},
            at_k={scope: [int(k) for k in ks] for scope, ks in data.get("at_k", {}).items()},
        )


def compute_curves(
    model: nn.Module,
    split: Split,
    scores: Mapping[str, Mapping[str, Tensor]],
    *,
    orders: Sequence[str] = ("low", "high"),
    random: int = 20,
    seed: int = 0,
    mode: str = "layerwise",
    layers: Sequence[str] | None = None,
    ablate_to: str = "zero",
    means: Mapping[str, Tensor] | None = None,
    max_k: int | None = None,
    device: torch.device | str = "cpu",
    memory_mb: float = DEFAULT_MEMORY_MB,
    progress: bool = False,
    at_k: Sequence[int] | Mapping[str, Sequence[int] | None] | None = None,
) -> CurveSet:
    """Every curve of one model: each criterion in each order, plus seeded random orderings.

    Parameters
    ----------
    model : nn.Module
    split : Split
        The test set.
    scores : dict
        ``{criterion: {layer: scores}}`` as returned by
        :func:`prune_info.criteria.context.compute_scores` (computed on the validation set).
    orders : sequence of {"low", "high"}
    random : int
        Random orderings per scope (0 for none).
    seed : int
        Seed of the random orderings (scope ``i`` draws from seed ``1000 * seed + i``, so adding
        a criterion never changes the random curves).
    mode : {"layerwise", "network"}
        One curve family per layer, or one across all the layers.
    layers : list of str, optional
        Layers to ablate (all prunable layers by default).
    ablate_to, means, max_k, device, memory_mb
        See :func:`layerwise_curves`.
    progress : bool
        tqdm bars on stderr: over the layers, and with an ETA over each scope's masked forward
        passes.
    at_k : sequence of int, or dict of str to sequence of int, optional
        Compute the curves at these ``k`` only (see :func:`layerwise_curves`): one list for
        every scope, or ``{scope: list or None}`` (a scope absent or None: every ``k``; scopes
        are layer names, or ``"network"``). :func:`default_at_k` and :func:`spaced_ks` build
        them. Sparse scopes are listed in :attr:`CurveSet.at_k`.

    Returns
    -------
    CurveSet
    """
    if mode not in ("layerwise", "network"):
        raise PruneInfoError(f"unknown ablation mode {mode!r}; choose layerwise or network")
    bad = [o for o in orders if o not in ORDERS]
    if bad:
        raise PruneInfoError(f"unknown order {bad[0]!r}; choose from: {', '.join(ORDERS)}")
    check_random(random)
    if not scores and random == 0:
        raise PruneInfoError("nothing to ablate: give at least one criterion or `random`=R")
    split = _check_split(split)
    infos = resolve_layers(model, layers, order="model", example=first_sample(model, split))
    if ablate_to == "mean" and means is None:
        raise PruneInfoError("ablation to the mean needs unit_means(model, data.train)")
    result = CurveSet(mode=mode, ablate_to=ablate_to, n_samples=len(split))
    generator_seed = int(seed)
    if mode == "layerwise":
        scopes = [(info.name, [info]) for info in infos]
    else:
        scopes = [("network", infos)]
    points: dict[str, list[int] | None] = {}
    for scope, members in scopes:  # all checked before any curve is computed
        wanted = at_k.get(scope) if isinstance(at_k, Mapping) else at_k
        n = sum(info.n_units for info in members)
        points[scope] = check_at_k(wanted, n, scope)
        if points[scope] is not None and max_k is not None:
            raise PruneInfoError("give either `max_k` or `at_k`, not both")
    if isinstance(at_k, Mapping):
        unknown = [scope for scope in at_k if scope not in points]
        if unknown:
            raise PruneInfoError(f"`at_k` names {unknown[0]!r}, which is not a scope of these "
                                 f"curves ({', '.join(points)})")

    bar = tqdm(scopes, desc=f"ablate ({mode})", unit="layer" if mode == "layerwise" else "net",
               disable=not progress, leave=False)
    for index, (scope, members) in enumerate(bar):
        n = sum(info.n_units for info in members)
        labels: list[str] = []
        rows: list[Tensor] = []
        for criterion, by_layer in scores.items():
            for order in orders:
                if mode == "layerwise":
                    if scope not in by_layer:
                        raise PruneInfoError(f"criterion {criterion} has no scores for {scope}")
                    ranking = rank_units(by_layer[scope], order=order, seed=generator_seed)
                else:
                    ranking = network_orders(by_layer, members, order=order, seed=generator_seed)
                labels.append(f"{criterion}:{order}")
                rows.append(torch.as_tensor(ranking, dtype=torch.int64).flatten())
        # each scope gets its own stream: adding a criterion never changes the random curves
        randoms = random_orders(n, random, seed=generator_seed * 1000 + index)
        all_orders = torch.cat([torch.stack(rows), randoms]) if rows else randoms
        if mode == "layerwise":
            curves = layerwise_curves(model, scope, all_orders, split, ablate_to=ablate_to,
                                      means=means, max_k=max_k, device=device,
                                      memory_mb=memory_mb, at_k=points[scope],
                                      progress=progress)
        else:
            curves = network_curves(model, all_orders, split, layers=[i.name for i in members],
                                    ablate_to=ablate_to, means=means, max_k=max_k, device=device,
                                    memory_mb=memory_mb, at_k=points[scope], progress=progress)
        result.units[scope] = n
        if points[scope] is not None:
            result.at_k[scope] = list(points[scope] or ())
        result.counts[scope] = {label: curves[i : i + 1] for i, label in enumerate(labels)}
        if random:
            result.counts[scope]["random"] = curves[len(labels):]
    return result
