"""The checks labelled data pass before class-conditional measures use them."""

from __future__ import annotations

import torch

from prune_info.errors import PruneInfoError

__all__ = ["check_every_class", "check_labels"]


def check_labels(y: torch.Tensor, n_classes: int, start: int = 0) -> None:
    """Labels within the model's classes ``0..n_classes-1`` (``start``: where this batch starts
    in the data, for the message).

    Examples
    --------
    >>> check_labels(torch.tensor([0, 3]), 3)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    prune_info.errors.PruneInfoError: labels lie in 0..3 but the model has 3 classes (0..2); ...
    """
    if not len(y):
        return
    low, high = int(y.min()), int(y.max())
    if low < 0 or high >= n_classes:
        where = f" (in the batch from sample {start})" if start else ""
        raise PruneInfoError(
            f"labels lie in {low}..{high}{where} but the model has {n_classes} classes (0.."
            f"{n_classes - 1}); fix: score the model on the data set it was trained on"
        )


def check_every_class(per_class: torch.Tensor, n_samples: int) -> None:
    """Every class present (``per_class``: samples per class), or the class-conditional
    distributions of KL selectivity are undefined."""
    absent = (per_class.cpu() == 0).nonzero().flatten().tolist()
    if absent:
        which = f"class {absent[0]} is" if len(absent) == 1 else f"classes {absent} are"
        raise PruneInfoError(
            f"{which} absent from the validation set ({n_samples} samples), so the class-"
            "conditional distributions of KL selectivity are undefined; fix: score on data "
            "that contains every class (a larger or stratified split)"
        )
