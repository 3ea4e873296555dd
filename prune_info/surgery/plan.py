"""A plan: the units each layer loses, by their index in the model it is applied to."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from prune_info.errors import PruneInfoError


@dataclass(frozen=True)
class PrunePlan:
    """The units to remove from each layer, by index in the model the plan is applied to.

    Attributes
    ----------
    remove : dict
        ``{layer: sorted tuple of unit indices}``; a layer may map to an empty tuple.
    widths : dict
        ``{layer: number of units}`` of the model the plan was made for.

    Examples
    --------
    >>> plan = PrunePlan({"fc1": (1, 3)}, {"fc1": 4})
    >>> plan.widths_after(), plan.kept("fc1")
    ({'fc1': 2}, [0, 2])
    """

    remove: dict[str, tuple[int, ...]]
    widths: dict[str, int]

    def __post_init__(self) -> None:
        missing = set(self.remove) - set(self.widths)
        if missing:
            raise PruneInfoError(f"plan names layers without a width: {sorted(missing)}")
        for layer, idxs in self.remove.items():
            n = self.widths[layer]
            if len(set(idxs)) != len(idxs):
                raise PruneInfoError(f"plan removes a unit of {layer} twice")
            if any(not 0 <= i < n for i in idxs):
                raise PruneInfoError(f"plan removes units of {layer} outside 0..{n - 1}")
            if n > 0 and len(idxs) >= n:
                raise PruneInfoError(
                    f"layer {layer} would lose every one of its {n} units, which disconnects the "
                    "network; keep at least one (lower `amount` or raise `keep` / `min_units`)"
                )

    @classmethod
    def from_indices(cls, remove: Mapping[str, Sequence[int] | torch.Tensor],
                     widths: Mapping[str, int]) -> PrunePlan:
        """Build a plan from any integer sequences (tensors, lists), sorting them."""
        clean = {layer: tuple(sorted(int(i) for i in idxs)) for layer, idxs in remove.items()}
        return cls(clean, {layer: int(widths[layer]) for layer in clean})

    def n_removed(self) -> dict[str, int]:
        return {layer: len(idxs) for layer, idxs in self.remove.items()}

    def widths_after(self) -> dict[str, int]:
        return {layer: self.widths[layer] - len(idxs) for layer, idxs in self.remove.items()}

    def kept(self, layer: str) -> list[int]:
        """Indices of the units of ``layer`` that survive, in order."""
        gone = set(self.remove[layer])
        return [i for i in range(self.widths[layer]) if i not in gone]

    def is_empty(self) -> bool:
        return not any(self.remove.values())
