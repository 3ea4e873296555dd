"""Labelled samples, in memory (:class:`Split`) or streamed from a source (:class:`StreamSplit`).

Both answer the same few questions, so that every consumer can take either:

* ``len(split)``: how many samples;
* ``split.batches(batch_size)``: ``(x, y)`` batches in a fixed order, the whole split;
* ``split.epoch(batch_size, generator)``: the same samples shuffled (training);
* ``split.head(n)``: the first ``n`` samples as an in-memory :class:`Split` (the bounded sample
  of an engine that needs every input at once, such as the ablation curves);
* ``split.targets()``: every label, without the inputs (cheap where the source knows them).

A :class:`Split` holds two tensors; a :class:`StreamSplit` reads a ``torch.utils.data.Dataset``
through a ``DataLoader``, batch by batch, so that memory does not grow with the data.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from prune_info.errors import PruneInfoError

__all__ = ["STREAM_SAMPLE", "LoaderSplit", "Samples", "Split", "StreamSplit", "bounded",
           "in_memory", "permutation"]


def permutation(n: int, seed: int) -> torch.Tensor:
    """The seeded permutation of ``range(n)`` every split of prune-info is cut from."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randperm(n, generator=generator)


@dataclass(frozen=True)
class Split:
    """Inputs ``x`` (float32, ``[N, C, H, W]``) and integer labels ``y`` (int64, ``[N]``)."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return int(self.y.shape[0])

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])

    def batches(self, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for start in range(0, len(self), batch_size):
            yield self.x[start : start + batch_size], self.y[start : start + batch_size]

    def epoch(self, batch_size: int, generator: torch.Generator
              ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        perm = torch.randperm(len(self), generator=generator).to(self.x.device)
        xs, ys = self.x[perm], self.y[perm]  # one gather per epoch; batches are views
        for start in range(0, len(self), batch_size):
            yield xs[start : start + batch_size], ys[start : start + batch_size]

    def head(self, n: int) -> Split:
        return self if n >= len(self) else Split(self.x[:n], self.y[:n])

    def targets(self) -> torch.Tensor:
        return self.y

    def map_labels(self, mapping: torch.Tensor) -> Split:
        """The same samples with label ``i`` replaced by ``mapping[i]``."""
        return Split(self.x, mapping[self.y])


class StreamSplit:
    """Samples read batch by batch from a ``torch.utils.data.Dataset`` of ``(x, y)`` pairs.

    Parameters
    ----------
    source : torch.utils.data.Dataset
        Map-style: ``source[i]`` is ``(x, y)`` with ``x`` a float tensor of the model's input
        shape (already preprocessed) and ``y`` an integer label.
    indices : sequence of int, optional
        The samples of the source that make this split, in order (default: all of them).
    workers : int
        ``DataLoader`` worker processes (0: read in this process).
    targets : Tensor, optional
        The labels of ``indices``, when the source knows them without reading the inputs (an
        image folder's file list, an array of labels); else :meth:`targets` reads them.
    label_map : Tensor, optional
        Label ``i`` of the source becomes ``label_map[i]`` (classes put in a model's order).
    name : str
        How messages name the split (``"imagefolder:photos/ (val)"``).
    """

    def __init__(self, source: Any, indices: Sequence[int] | None = None, *, workers: int = 0,
                 targets: torch.Tensor | None = None, label_map: torch.Tensor | None = None,
                 name: str = "the data") -> None:
        self.source = source
        self.indices = list(range(len(source))) if indices is None else [int(i) for i in indices]
        self.workers = int(workers)
        self._targets = targets
        self.label_map = label_map
        self.name = name

    def __len__(self) -> int:
        return len(self.indices)

    def __repr__(self) -> str:
        return f"StreamSplit({self.name}, {len(self)} samples)"

    @property
    def sample_shape(self) -> tuple[int, ...]:
        x, _ = self.source[self.indices[0]]
        return tuple(torch.as_tensor(x).shape)

    def _loader(self, batch_size: int, sampler: Iterable[int]) -> Iterator[tuple[torch.Tensor,
                                                                                   torch.Tensor]]:
        from torch.utils.data import DataLoader

        loader = DataLoader(self.source, batch_size=batch_size, sampler=list(sampler),
                            num_workers=self.workers,
                            persistent_workers=False, collate_fn=_collate)
        for x, y in loader:
            yield x, (y if self.label_map is None else self.label_map[y])

    def batches(self, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self._loader(batch_size, self.indices)

    def epoch(self, batch_size: int, generator: torch.Generator
              ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = torch.randperm(len(self), generator=generator).tolist()
        return self._loader(batch_size, [self.indices[i] for i in order])

    def head(self, n: int) -> Split:
        xs, ys, taken = [], [], 0
        for x, y in self._loader(min(max(n, 1), 256), self.indices[:n]):
            xs.append(x)
            ys.append(y)
            taken += len(y)
        if not xs:
            raise PruneInfoError(f"{self.name} holds no sample; give labelled samples")
        return Split(torch.cat(xs), torch.cat(ys))

    def targets(self) -> torch.Tensor:
        if self._targets is None:
            self._targets = torch.cat([y for _, y in _raw(self)])
        y = self._targets
        return y if self.label_map is None else self.label_map[y]

    def map_labels(self, mapping: torch.Tensor) -> StreamSplit:
        composed = mapping if self.label_map is None else mapping[self.label_map]
        return StreamSplit(self.source, self.indices, workers=self.workers,
                           targets=self._targets, label_map=composed, name=self.name)


def _raw(split: StreamSplit) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The split's batches with its source's labels (no label map)."""
    keep, split.label_map = split.label_map, None
    try:
        yield from split.batches(256)
    finally:
        split.label_map = keep


def _collate(items: list) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack ``(x, y)`` pairs; inputs of different shapes are named, not a stack error."""
    xs = [torch.as_tensor(x) for x, _ in items]
    shapes = {tuple(x.shape) for x in xs}
    if len(shapes) > 1:
        shown = ", ".join("x".join(map(str, s)) for s in sorted(shapes)[:3])
        raise PruneInfoError(f"the samples have different shapes ({shown}); pass "
                             "`input_shape`=C,H,W to resize them all to one")
    return (torch.stack(xs).float(),
            torch.as_tensor([int(y) for _, y in items], dtype=torch.long))


#: What every consumer of labelled samples takes.
Samples = Split | StreamSplit


class _LoaderSource:
    """A user's ``DataLoader`` (or any iterable of ``(x, y)`` batches) as a streamed split:
    read in its own order and batching, as often as needed."""

    def __init__(self, loader: Iterable, what: str) -> None:
        self.loader = loader
        self.what = what

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for batch in self.loader:
            if not isinstance(batch, (tuple, list)) or len(batch) < 2:
                raise PruneInfoError(
                    f"{self.what} yields {type(batch).__name__} batches; fix: give batches of "
                    "(x, y)")
            yield torch.as_tensor(batch[0]), torch.as_tensor(batch[1])


class LoaderSplit(StreamSplit):
    """A user's ``DataLoader`` of ``(x, y)`` batches, read as it batches (its own order)."""

    def __init__(self, loader: Iterable, what: str = "the data") -> None:
        self.loader = _LoaderSource(loader, what)
        size = getattr(getattr(loader, "dataset", None), "__len__", None)
        n = size() if callable(size) else sum(len(y) for _, y in self.loader)
        super().__init__([], list(range(n)), name=what)

    @property
    def sample_shape(self) -> tuple[int, ...]:
        x, _ = next(iter(self.loader))
        return tuple(x.shape[1:])

    def _loader(self, batch_size: int, sampler: Iterable[int]) -> Iterator[tuple[torch.Tensor,
                                                                                   torch.Tensor]]:
        wanted = len(list(sampler))
        seen = 0
        for x, y in self.loader:
            if seen >= wanted:
                break
            x, y = x[: wanted - seen], y[: wanted - seen]
            seen += len(y)
            yield x.float(), (y.long() if self.label_map is None else self.label_map[y.long()])

    def epoch(self, batch_size: int, generator: torch.Generator
              ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self._loader(batch_size, self.indices)  # the loader shuffles, if it does


def in_memory(split: Split | StreamSplit) -> Split:
    """The whole split as tensors (a streamed one is read into memory: for engines that train
    or measure on every sample at once, such as many seeds trained as one batched model)."""
    return split if isinstance(split, Split) else split.head(len(split))


#: Samples a streamed split gives an engine that needs them all in memory (ablation curves,
#: ``max_drop``, many seeds trained at once) when ``max_samples`` does not say.
STREAM_SAMPLE = 10_000


def bounded(split: Split | StreamSplit, max_samples: int | None = None, what: str = "this",
            note: Callable[[str], None] | None = None) -> Split:
    """The first ``max_samples`` samples in memory, for an engine that needs them all at once.

    An in-memory :class:`Split` is cut only when ``max_samples`` asks; a streamed one is read up
    to ``max_samples``, or :data:`STREAM_SAMPLE` when None, so memory stays bounded whatever the
    size of the source. ``note`` hears how many were kept, when that is fewer than the split
    holds (the first samples of a seeded split: a deterministic random subset).
    """
    if max_samples is not None and (isinstance(max_samples, bool) or not isinstance(
            max_samples, int) or max_samples < 1):
        raise PruneInfoError(f"`max_samples` must be at least 1, got {max_samples!r}")
    if max_samples is None:
        max_samples = len(split) if isinstance(split, Split) else STREAM_SAMPLE
    n = min(max_samples, len(split))
    if n < len(split) and note is not None:
        note(f"{what} uses the first {n:,} of the {len(split):,} samples (`max_samples`)")
    return split.head(n)
