"""What a user hands the library, made into the data seam's types: samples in any usual form
become a :class:`~prune_info.data.splits.Split` (:func:`as_split`) or stay streamed
(:func:`as_samples`), and a whole set of splits a :class:`~prune_info.data.dataset.Dataset`
(:func:`as_dataset`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch

from prune_info.data.dataset import Dataset
from prune_info.data.splits import LoaderSplit, Split, StreamSplit
from prune_info.errors import PruneInfoError

__all__ = ["as_dataset", "as_samples", "as_split"]


def as_split(data: Any, what: str = "the data") -> Split:
    """The labelled samples of ``data`` as an in-memory :class:`Split`, checked.

    Accepts what users have: a :class:`Split`; a :class:`~prune_info.data.Dataset` (its
    validation split, the paper's D); a pair ``(x, y)`` of tensors or arrays; a
    :class:`StreamSplit` or an iterable of ``(x, y)`` batches such as a
    ``torch.utils.data.DataLoader`` (read whole into memory: use :func:`as_samples` to stream).

    ``what`` names the data in messages ("the validation set").

    Raises
    ------
    PruneInfoError
        If ``data`` is none of these, is empty, or its labels are not one integer per sample.

    Examples
    --------
    >>> split = as_split((torch.zeros(4, 3), torch.tensor([0, 1, 1, 0])))
    >>> len(split), split.x.dtype, split.y.dtype
    (4, torch.float32, torch.int64)
    >>> as_split("digits")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    prune_info.errors.PruneInfoError: the data must be a Split, a Dataset, ..., got str
    """
    samples = as_samples(data, what)
    if isinstance(samples, StreamSplit):
        samples = samples.head(len(samples))
    return samples


def as_samples(data: Any, what: str = "the data") -> Split | StreamSplit:
    """Like :func:`as_split`, but a streamed source stays streamed (read in batches)."""
    if isinstance(data, Dataset):
        data = data.val
    if isinstance(data, StreamSplit):
        if len(data) == 0:
            raise PruneInfoError(f"{what} is empty (0 samples); fix: give labelled samples")
        return data
    if isinstance(data, Split):
        x, y = data.x, data.y
    elif isinstance(data, (tuple, list)) and len(data) == 2:
        x, y = data
    elif isinstance(data, Iterable) and not isinstance(data, (str, bytes, dict, torch.Tensor)):
        stream = LoaderSplit(data, what)
        if len(stream) == 0:
            raise PruneInfoError(f"{what} yields no batch (0 samples); fix: give labelled samples")
        first_y = next(iter(stream.loader))[1]
        _check_labels(first_y, first_y, what)
        return stream
    else:
        raise PruneInfoError(
            f"{what} must be a Split, a Dataset, a pair (x, y) or a DataLoader of (x, y) "
            f"batches, got {type(data).__name__}"
        )
    try:
        x, y = torch.as_tensor(x), torch.as_tensor(y)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise PruneInfoError(
            f"{what} does not hold tensors ({exc}); fix: give tensors x, y") from exc
    _check_labels(x, y, what)
    if not x.is_floating_point():
        x = x.float()
    if isinstance(data, Split) and x is data.x and y.dtype == torch.int64:
        return data
    return Split(x, y.long())


def _check_labels(x: torch.Tensor, y: torch.Tensor, what: str) -> None:
    if y.ndim != 1 or len(x) != len(y):
        raise PruneInfoError(
            f"{what} has {len(x)} inputs but labels of shape {list(y.shape)}; fix: give one "
            "integer label per sample"
        )
    if len(y) == 0:
        raise PruneInfoError(f"{what} is empty (0 samples); fix: give labelled samples")
    if y.is_floating_point() or y.dtype == torch.bool or y.is_complex():
        raise PruneInfoError(f"labels must be integers, got {y.dtype}; fix: pass y.long()")


SPLIT_NAMES = ("train", "val", "test")


def as_dataset(data: Any, what: str = "`data`", n_classes: int | None = None) -> Dataset:
    """A :class:`Dataset` from what a researcher has, for the library's one-call verbs.

    ``data`` is a :class:`Dataset` (returned as it is); a mapping of splits under ``train``,
    ``val`` (or ``validation``) and ``test``, each anything :func:`as_samples` takes (a
    ``DataLoader`` of ``(x, y)`` batches, a pair of tensors, a :class:`Split`), a split left out
    standing in for another (val for test and the other way round; train for a missing
    val and test); or one set of samples, used as every split (scores, accuracies and any
    fine-tuning then all read the same samples: pass a mapping to keep them apart).

    ``n_classes`` defaults to the largest label seen + 1 (which reads every label once).
    """
    if isinstance(data, Dataset):
        return data
    if isinstance(data, Mapping):
        names = {"validation": "val", "valid": "val"}
        given = {names.get(str(k), str(k)): v for k, v in data.items()}
        unknown = sorted(set(given) - set(SPLIT_NAMES))
        if unknown or not given:
            raise PruneInfoError(f"{what} is a mapping with keys {sorted(map(str, data))}; use "
                                 "train, val and test (any of them)")
        parts = {k: as_samples(v, f"{what}[{k!r}]") for k, v in given.items()}
    else:
        one = as_samples(data, what)
        parts = dict.fromkeys(SPLIT_NAMES, one)
    val = next(parts[k] for k in ("val", "test", "train") if k in parts)
    test, train = parts.get("test", val), parts.get("train", val)
    if n_classes is None:
        labels = [s.y if isinstance(s, Split) else s.targets() for s in {id(s): s for s in
                  (train, val, test)}.values()]
        n_classes = int(max(int(y.max()) for y in labels if len(y))) + 1
    return Dataset("user data", train, val, test, n_classes, source={"kind": "library"})
