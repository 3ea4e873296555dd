"""A dataset: labelled samples with named classes, split into train / validation / test.

Every source (the built-in datasets, an image folder, arrays, a user's factory) ends here: a
:class:`Dataset` whose splits are :class:`~prune_info.data.splits.Split` (in memory) or
:class:`~prune_info.data.splits.StreamSplit` (read in batches), whose ``classes`` name the labels
in order, and whose :meth:`Dataset.describe` is what a checkpoint records to find the same data
again. :func:`match_classes` puts a dataset's labels in a model's class order.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from prune_info.data.splits import Split, StreamSplit
from prune_info.errors import PruneInfoError, PruneInfoNote

__all__ = ["Dataset", "MappedSplit", "adapt_inputs", "match_classes"]


class MappedSplit(StreamSplit):
    """A split read through a batch transform (channel repeat and resize, another
    normalisation): only the batch in use is transformed, so a dataset adapted to a larger input
    does not hold the larger copy (FashionMNIST at 3x32x32 would take 860 MB). The values equal
    transforming all at once: every sample is transformed on its own."""

    def __init__(self, raw: Split | StreamSplit, transform: Callable[[torch.Tensor], torch.Tensor],
                 shape: tuple[int, ...], name: str = "the data",
                 label_map: torch.Tensor | None = None) -> None:
        super().__init__([], list(range(len(raw))), label_map=label_map, name=name)
        self.raw, self.transform, self.shape = raw, transform, shape

    def targets(self) -> torch.Tensor:
        return self._labels(self.raw.targets())

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return self.shape

    def _labels(self, y: torch.Tensor) -> torch.Tensor:
        return y if self.label_map is None else self.label_map[y]

    def batches(self, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for x, y in self.raw.batches(batch_size):
            yield self.transform(x), self._labels(y)

    def epoch(self, batch_size: int, generator: torch.Generator
              ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for x, y in self.raw.epoch(batch_size, generator):
            yield self.transform(x), self._labels(y)

    def head(self, n: int) -> Split:
        raw = self.raw.head(n)
        return Split(self.transform(raw.x).contiguous(), self._labels(raw.y))

    def map_labels(self, mapping: torch.Tensor) -> MappedSplit:
        composed = mapping if self.label_map is None else mapping[self.label_map]
        return MappedSplit(self.raw, self.transform, self.shape, self.name, composed)


@dataclass(frozen=True)
class Dataset:
    """A dataset split into train, validation (the paper's D) and test samples.

    Attributes
    ----------
    name : str
        The source, as ``--data`` names it: ``digits``, ``imagefolder:/data/photos``,
        ``npz:/data/arrays.npz``, ``mypkg.data:build``.
    train, val, test : Split or StreamSplit
    n_classes : int
    normalisation : dict
        What was done to the raw values (``scale``, per-channel ``mean`` and ``std``); recorded
        in checkpoints, so the same data can be found and normalised again.
    seed : int
        Seed of the split.
    native_shape : tuple of int, optional
        The source's own sample shape when the inputs were adapted (:func:`adapt_inputs`).
    classes : tuple of str
        Class names in label order (label ``i`` is ``classes[i]``).
    source : dict
        How to open the source again (its kind and options), for :meth:`describe`.
    """

    name: str
    train: Split | StreamSplit
    val: Split | StreamSplit
    test: Split | StreamSplit
    n_classes: int
    normalisation: dict = field(default_factory=dict)
    seed: int = 0
    native_shape: tuple[int, ...] | None = None
    classes: tuple[str, ...] = ()
    source: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.classes:
            object.__setattr__(self, "classes", tuple(str(i) for i in range(self.n_classes)))

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.train.sample_shape)

    @property
    def n_features(self) -> int:
        return int(math.prod(self.input_shape))

    @property
    def in_memory(self) -> bool:
        """Whether every split is held as tensors (the fast path of the built-in datasets)."""
        return all(isinstance(s, Split) for s in (self.train, self.val, self.test))

    def describe(self) -> dict:
        """Metadata stored in checkpoints: enough to find, split and normalise the same data."""
        out = {
            "name": self.name,
            "input_shape": list(self.input_shape),
            "n_classes": self.n_classes,
            "classes": list(self.classes),
            "normalisation": self.normalisation,
            "split_seed": self.seed,
            "sizes": {"train": len(self.train), "val": len(self.val), "test": len(self.test)},
        }
        if self.native_shape is not None:
            out["native_input_shape"] = list(self.native_shape)
        if self.source:
            out["source"] = dict(self.source)
        return out

    def map_labels(self, mapping: torch.Tensor) -> Dataset:
        """The same samples with label ``i`` read as ``mapping[i]`` in every split."""
        return replace(self, train=self.train.map_labels(mapping),
                       val=self.val.map_labels(mapping), test=self.test.map_labels(mapping))


def note(message: str) -> None:
    """Tell the user something they should know but need not act on (shown as ``note:``)."""
    warnings.warn(message, PruneInfoNote, stacklevel=2)


def match_classes(data: Dataset, classes: Sequence[str] | None, what: str = "the model"
                  ) -> Dataset:
    """``data`` with its labels in the class order of a model (``classes``: its outputs' names).

    Same names in the same order: ``data`` as it is. The same names in another order (an image
    folder numbers its classes alphabetically): the labels are renumbered to the model's
    outputs, with a note. Other names, or another number of them: refused, naming both. No
    record (``classes`` None or empty: a model from elsewhere): ``data`` as it is; the caller
    records the data's classes.

    Examples
    --------
    >>> from prune_info.data import load_dataset
    >>> data = load_dataset("digits")
    >>> match_classes(data, [str(i) for i in range(10)]) is data
    True
    >>> match_classes(data, ["cat", "dog"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    prune_info.errors.PruneInfoError: the model's 2 classes (cat, dog) are not the data's 10 ...
    """
    if not classes:
        return data
    model = [str(c) for c in classes]
    have = list(data.classes)
    if model == have:
        return data
    if sorted(model) != sorted(have) or len(set(model)) != len(model):
        raise PruneInfoError(
            f"{what}'s {len(model)} classes ({_shown(model)}) are not the data's "
            f"{len(have)} ({_shown(have)}) of {data.name}; evaluate it on data of its own "
            "classes (`data`)")
    position = {name: i for i, name in enumerate(model)}
    mapping = torch.tensor([position[name] for name in have], dtype=torch.long)
    moved = sum(1 for i, name in enumerate(have) if position[name] != i)
    note(f"{data.name} numbers its classes in another order than {what} ({moved} of "
         f"{len(have)} differ); its labels are renumbered to the model's outputs")
    return replace(data.map_labels(mapping), classes=tuple(model))


def _shown(names: Sequence[str], limit: int = 6) -> str:
    head = ", ".join(names[:limit])
    return head + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


def adapt_inputs(data: Dataset, input_shape: Sequence[int]) -> Dataset:
    """The same samples in the shape a model expects: channels repeated, images resized.

    The one mechanism by which data meet a model built for other inputs: a grey-scale image
    (1 channel) is repeated into ``C`` channels, and ``H x W`` is reached by bilinear resizing
    (no antialiasing; the images of the datasets here are at most 32 x 32). The standardised
    values keep their mean and spread. The checkpoint records the shape, so every command
    reloads the data the same way. The adapted images are made batch by batch as they are read
    (:class:`MappedSplit`), never all at once.

    Raises
    ------
    PruneInfoError
        If ``input_shape`` is not three positive integers, or asks to turn several channels into
        another number of channels.
    """
    try:
        shape = tuple(int(v) for v in input_shape)
    except (TypeError, ValueError):
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise PruneInfoError(
            f"`input_shape`={input_shape!r} must be three positive integers C,H,W, e.g. 3,32,32"
        )
    native = data.input_shape
    if shape == native:
        return data
    if len(native) != 3:
        raise PruneInfoError(
            f"{data.name} holds no images ({native}); `input_shape` cannot adapt it")
    if native[0] != shape[0] and native[0] != 1:
        raise PruneInfoError(
            f"{data.name} has {native[0]} channels; `input_shape` can repeat one channel into "
            f"several but not turn {native[0]} into {shape[0]}"
        )
    if not data.in_memory:
        raise PruneInfoError(f"{data.name} is read from files: give `input_shape` when opening "
                             "it, so every image is resized as it is read")

    def adapt(x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != shape[0]:
            x = x.expand(-1, shape[0], -1, -1)
        if tuple(x.shape[2:]) != shape[1:]:
            x = torch.nn.functional.interpolate(x, size=shape[1:], mode="bilinear",
                                                align_corners=False)
        return x

    def mapped(split: Any) -> MappedSplit:
        return MappedSplit(split, adapt, shape, data.name)

    return replace(data, train=mapped(data.train), val=mapped(data.val),
                   test=mapped(data.test), native_shape=data.native_shape or native)
