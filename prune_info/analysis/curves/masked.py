"""The masked engine: correct counts of the rest of the network for many ablation masks at
once (the ``batched`` path), its hooks and model state, and the units' training means (for
ablation to the mean)."""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from prune_info._torch import shared_threads
from prune_info.analysis.curves.points import (
    _BATCHED_CHUNK_BYTES,
    _MIN_ROWS,
    ABLATE_TO,
    DEFAULT_BATCH_SIZE,
    DEFAULT_MEMORY_MB,
    T,
    _bar,
)
from prune_info.analysis.graph_cut import cut_at
from prune_info.capture import unit_hooks, units_last
from prune_info.data import Samples, Split
from prune_info.errors import PruneInfoError
from prune_info.nn import LayerInfo, count_correct, first_sample, resolve_layers

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


