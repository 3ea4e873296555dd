"""What a prune is asked to do: :class:`PruneConfig`, checked before any work."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prune_info.criteria.ranking import (
    GROUP_REDUCTIONS,
)
from prune_info.errors import PruneInfoError
from prune_info.pruning.allocation import (
    ALLOCATIONS,
    ORDERS,
    TARGET_ALLOCATIONS,
    check_amount,
)
from prune_info.pruning.budget import (
    ALLOCATIONS_UNDER_TARGET,
    parse_target,
)

if TYPE_CHECKING:
    pass

#: The criteria whose scores a null tests (``ScoreOptions.null``): a per-unit q-value each.
TESTED_CRITERIA = ("mi", "kl")


@dataclass(frozen=True)
class PruneConfig:
    """What ``prune-info prune`` was asked to do.

    Attributes
    ----------
    criterion : str
        Name in :data:`prune_info.criteria.registry.CRITERIA`.
    allocation : {"layerwise", "global", "max-drop", "uniform", "curves"}
        Under a ``target``: ``uniform`` (``layerwise`` reads the same: one fraction for every
        group), ``global`` or ``curves`` (see :mod:`prune_info.pruning.budget`).
    amount : float or tuple of float, optional
        Fraction removed; one value, or one per layer (``layerwise`` only).
    keep : tuple of int, optional
        Units kept per layer (``layerwise`` only).
    max_drop : float, optional
        Accuracy budget in percentage points (``max-drop``).
    target : str, optional
        A budget to meet instead of an amount: ``macs=x2``, ``params=0.5``, ``latency=5`` (ms
        per batch of ``latency_batch``), ``speedup=2`` (:func:`prune_info.pruning.budget.
        parse_target`). Latency is measured in PyTorch on ``device`` with the process's threads.
    latency_batch : int
        The batch size a ``latency`` or ``speedup`` target is measured at.
    min_units : int
        Units every layer keeps under ``global`` and ``max-drop``.
    order : {"low", "high", "random"}
    mask : bool
        Zero the units instead of removing them.
    ignore : tuple of str
        Layer names or glob patterns (``"layer4.*"``) to leave as they are; a layer coupled to
        an ignored one is kept whole too.
    round_to : int, optional
        Each group keeps a multiple of this many channels (rounded up, at most all of them):
        hardware runs such widths faster (as torch-pruning's ``round_to``). Default: 8 for
        convolutional layers of at least :data:`AUTO_ROUND_MIN_WIDTH` channels, 1 otherwise
        (on MobileNetV2, rounding to 8 made the pruned model 5-9 % faster in onnxruntime at a
        few percent more MACs; benchmarks/RESULTS.md).
    verify : bool
        Check every step against the original with the units ablated (see
        :func:`prune_info.surgery.apply_plan`); ``False`` skips it, and the summary says so.
    strict : bool
        Refuse the whole prune when a group cannot be pruned faithfully, instead of leaving it
        out with a note (the default).
    max_samples : int, optional
        Score on (and read ``max_drop``'s curves off) the first this many validation samples
        (a deterministic subset); default every sample for scoring, which streams, and at most
        :data:`prune_info.data.splits.STREAM_SAMPLE` of a streamed source for ``max_drop``.
    group_reduce : {"mean", "max", "first"}
        How the scores of a group's members combine into the score of a group channel
        (``first``: the root's alone).
        Layers left untouched (neither scored nor pruned).
    score_options : prune_info.criteria.options.ScoreOptions, optional
    seed : int
    device : str
    """

    criterion: str = "mi"
    allocation: str = "layerwise"
    amount: float | tuple[float, ...] | None = None
    keep: tuple[int, ...] | None = None
    max_drop: float | None = None
    target: str | None = None
    latency_batch: int = 1
    min_units: int = 1
    order: str = "low"
    mask: bool = False
    ignore: tuple[str, ...] = ()
    group_reduce: str = "mean"
    round_to: int | None = None
    verify: bool = True
    strict: bool = False
    max_samples: int | None = None
    score_options: Any = None
    seed: int = 0
    device: str = "cpu"

    def validate(self) -> None:
        """Check the combination of options; raises :class:`PruneInfoError` naming the fix."""
        if self.allocation not in ALLOCATIONS:
            raise PruneInfoError(
                f"unknown allocation {self.allocation!r}; choose one of: {', '.join(ALLOCATIONS)}"
            )
        if self.order not in ORDERS:
            raise PruneInfoError(
                f"unknown `order` {self.order!r}; choose one of: {', '.join(ORDERS)}"
            )
        if self.group_reduce not in GROUP_REDUCTIONS:
            raise PruneInfoError(
                f"unknown `group_reduce` {self.group_reduce!r}; choose one of: "
                f"{', '.join(GROUP_REDUCTIONS)}"
            )
        if self.round_to is not None and (isinstance(self.round_to, bool)
                                          or not isinstance(self.round_to, int)
                                          or self.round_to < 1):
            raise PruneInfoError(f"`round_to`={self.round_to!r} must be an integer of at least 1")
        if self.max_samples is not None and (isinstance(self.max_samples, bool) or not
                                             isinstance(self.max_samples, int)
                                             or self.max_samples < 1):
            raise PruneInfoError(f"`max_samples` must be at least 1, got {self.max_samples!r}")
        if self.min_units < 1:
            raise PruneInfoError(
                f"`min_units`={self.min_units}: every layer must keep at least 1 unit, or the "
                "network is disconnected"
            )
        null = getattr(self.score_options, "null", 0)
        if null and self.criterion not in TESTED_CRITERIA:
            raise PruneInfoError(
                f"`null`={null} tests the {' and '.join(TESTED_CRITERIA)} scores against label "
                f"permutations; criterion {self.criterion} has no null: leave `null` out")
        given = [name for name, value in (("`amount`", self.amount), ("`keep`", self.keep),
                                          ("`max_drop`", self.max_drop),
                                          ("`target`", self.target)) if value is not None]
        if len(given) != 1:
            raise PruneInfoError(
                "say how much to prune with exactly one of `amount`, `keep`, `max_drop` and "
                "`target`" + (f" (got {', '.join(given)})" if given else "")
            )
        if self.target is not None:
            self._validate_target()
            return
        if self.allocation in TARGET_ALLOCATIONS:
            raise PruneInfoError(f"`allocation='{self.allocation}'` chooses how a `target` is "
                                 "met; give one, e.g. `target`=macs=x2")
        amounts = self.amounts()
        for value in amounts or ():
            check_amount(value)
        if amounts and not any(amounts):
            raise PruneInfoError("`amount`=0 would remove nothing; give a fraction of units to "
                                 "remove above 0, e.g. 0.5")
        if self.allocation == "max-drop":
            if self.max_drop is None:
                raise PruneInfoError(
                    "`allocation='max-drop'` needs `max_drop`, in percentage points")
            if not 0.0 <= self.max_drop < 100.0:
                raise PruneInfoError(
                    f"`max_drop`={self.max_drop:g} must be in [0, 100) percentage points"
                )
        elif self.max_drop is not None:
            raise PruneInfoError(
                "`max_drop` allocates per layer by itself; drop `allocation='global'`"
                if self.allocation == "global" else
                "`max_drop` needs `allocation='max-drop'`"
            )
        if self.allocation == "global":
            if self.keep is not None:
                raise PruneInfoError(
                    "`keep` counts units per layer; it does not go with `allocation='global'`")
            if amounts is not None and len(amounts) != 1:
                raise PruneInfoError(
                    "`allocation='global'` takes one `amount` for the whole network")

    def _validate_target(self) -> None:
        target = parse_target(self.target)  # type: ignore[arg-type]
        if self.allocation not in ("layerwise", *ALLOCATIONS_UNDER_TARGET):
            raise PruneInfoError(
                f"`allocation='{self.allocation}'` does not meet a `target`; choose one of "
                f"{', '.join(ALLOCATIONS_UNDER_TARGET)}")
        if self.mask:
            raise PruneInfoError("a `target` is met by removing units, and masking removes "
                                 "none; drop `mask`")
        if isinstance(self.latency_batch, bool) or not isinstance(self.latency_batch, int) \
                or self.latency_batch < 1:
            raise PruneInfoError(f"`latency_batch` must be at least 1, got "
                                 f"{self.latency_batch!r}")
        del target

    @property
    def planner(self) -> str:
        """The allocation as carried out: ``layerwise`` under a target is ``uniform``."""
        return "uniform" if self.target is not None and self.allocation == "layerwise" \
            else self.allocation

    def amounts(self) -> tuple[float, ...] | None:
        if self.amount is None:
            return None
        if isinstance(self.amount, (int, float)):
            return (float(self.amount),)
        return tuple(float(a) for a in self.amount)
