"""Training with some weights frozen entry by entry: gradient masks plus an exact restore.

Retraining a sub-network "with the remaining neurons frozen" (Clauw, Marinazzo & Stramaglia,
Sec. 4.2) updates the incoming weights and biases of the selected units and leaves every other
unit's exactly as they were. Freezing whole parameters (``requires_grad=False``) cannot say that:
a unit is one row of a weight matrix. :class:`FrozenEntries` takes one boolean mask per
parameter (``True`` = trainable) and

* multiplies each gradient by its mask after ``backward()`` (:meth:`mask_grads`), so the
  optimiser never sees a gradient for a frozen entry and its running statistics there stay 0;
* copies the frozen values back after each optimiser step (:meth:`restore`), so that weight
  decay, momentum or any other term the optimiser adds on its own cannot move them either.
  Frozen entries are therefore **bit-identical** after training, whatever the optimiser.

:func:`unit_masks` builds the masks of an MLP (:func:`prune_info.zoo.build_model`) from the units
to train in each hidden layer: their rows of ``fcL.weight`` and entries of ``fcL.bias``; the
classifier (``out``) always trains.

Examples
--------
>>> import torch
>>> p = torch.nn.Parameter(torch.ones(2, 3))
>>> freeze = FrozenEntries({"w": p}, {"w": torch.tensor([[True] * 3, [False] * 3])})
>>> p.grad = torch.full((2, 3), 0.5)
>>> freeze.mask_grads()
>>> p.grad.tolist()
[[0.5, 0.5, 0.5], [0.0, 0.0, 0.0]]
>>> with torch.no_grad():
...     _ = p.sub_(1.0)          # an optimiser that also moves the frozen row
>>> freeze.restore()
>>> p.tolist()
[[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from prune_info.errors import PruneInfoError

__all__ = ["FrozenEntries", "unit_masks"]


class FrozenEntries:
    """Masks of trainable entries for some parameters; the frozen entries never change.

    Parameters
    ----------
    params : mapping of str to Tensor
        Parameters by name (e.g. ``dict(model.named_parameters())``).
    trainable : mapping of str to bool Tensor
        For some of those names, a mask of the parameter's shape: ``True`` trains, ``False`` is
        frozen at the value the parameter holds now. Parameters without a mask train fully.
    """

    def __init__(self, params: Mapping[str, Tensor], trainable: Mapping[str, Tensor]):
        self._entries: list[tuple[Tensor, Tensor, Tensor]] = []
        for name, mask in trainable.items():
            if name not in params:
                raise PruneInfoError(f"`trainable` names {name!r}, which is not a parameter; "
                                     f"choose from: {', '.join(params)}")
            param = params[name]
            mask = torch.as_tensor(mask)
            if mask.dtype != torch.bool or tuple(mask.shape) != tuple(param.shape):
                raise PruneInfoError(
                    f"`trainable`[{name!r}] must be a bool mask of shape {list(param.shape)}, "
                    f"got {mask.dtype} {list(mask.shape)}")
            mask = mask.to(param.device)
            self._entries.append((param, mask, param.detach().clone()))

    def mask_grads(self) -> None:
        """Zero the gradient of every frozen entry (call after ``backward()``)."""
        for param, mask, _ in self._entries:
            if param.grad is not None:
                param.grad.mul_(mask)

    @torch.no_grad()
    def restore(self) -> None:
        """Put the frozen entries back to their values (call after the optimiser step)."""
        for param, mask, frozen in self._entries:
            param.copy_(torch.where(mask, param, frozen))

    def to(self, device: torch.device | str) -> FrozenEntries:
        """Move masks and frozen values to ``device`` (where the parameters now live)."""
        self._entries = [(p, m.to(device), f.to(device)) for p, m, f in self._entries]
        return self


def unit_masks(model: torch.nn.Module, units: Mapping[str, Sequence[int]]) -> dict[str, Tensor]:
    """Trainable masks of an MLP that trains only ``units[layer]`` of each named layer.

    Parameters
    ----------
    model : nn.Module
        With Linear submodules named by ``units`` (``fc1``, ``fc2``, ...).
    units : mapping of str to list of int
        Indices of the units (output rows) to train in each listed layer; layers not listed
        train fully.

    Returns
    -------
    dict of str to bool Tensor
        ``{"fc1.weight": [out, in], "fc1.bias": [out], ...}`` for :class:`FrozenEntries`.
    """
    masks = {}
    for layer, chosen in units.items():
        try:
            module = model.get_submodule(layer)
        except AttributeError:
            raise PruneInfoError(f"`units` names layer {layer!r}, which the model does not "
                                 "have") from None
        weight = getattr(module, "weight", None)
        if not isinstance(weight, Tensor) or weight.dim() != 2:
            raise PruneInfoError(f"{layer} is not a Linear layer; units are frozen by rows of "
                                 "a Linear weight")
        n_out = weight.shape[0]
        rows = torch.zeros(n_out, dtype=torch.bool)
        index = torch.as_tensor(list(chosen), dtype=torch.long)
        if index.numel() and (int(index.min()) < 0 or int(index.max()) >= n_out):
            raise PruneInfoError(f"`units`[{layer!r}] holds an index outside 0..{n_out - 1}")
        rows[index] = True
        masks[f"{layer}.weight"] = rows[:, None].expand_as(weight).clone()
        if getattr(module, "bias", None) is not None:
            masks[f"{layer}.bias"] = rows.clone()
    return masks
