"""How unit outputs are read and quantised for the information criteria (:class:`ScoreOptions`)."""

from __future__ import annotations

from dataclasses import dataclass

from prune_info.capture import CaptureOptions
from prune_info.errors import PruneInfoError

__all__ = ['BINNINGS', 'ScoreOptions']

#: Accepted values of :attr:`ScoreOptions.binning`.
BINNINGS = ("uniform", "quantile")


# --------------------------------------------------------------------------------------------
# Options


@dataclass(frozen=True)
class ScoreOptions:
    """How unit outputs are read and quantised.

    Parameters
    ----------
    bins : int, default 2
        2 is the paper's 1-bit threshold quantiser (threshold from the layer's activation);
        more gives that many per-unit bins with edges from the first batch.
    binning : {"uniform", "quantile"}, default "uniform"
        Edges for ``bins > 2``: equal-width over each unit's range, or equal-count.
    pre_activation : bool, default False
        Read units before the activation function.
    channel_reduce : {"mean", "max"}, default "mean"
        Spatial reduction of a convolutional channel (see :mod:`prune_info.capture`).
    token_reduce : {"mean", "max", "cls"}, default "mean"
        Reduction over the tokens of a token unit (a Linear layer on ``[batch, tokens, dim]``,
        as in a ViT; ``cls``: token 0), see :mod:`prune_info.capture`.
    seed : int, default 0
        Seed of random criteria.
    device : str, default "cpu"
        Where the forward passes run; the model must be there.
    batch_size : int, default 4096
        Samples per forward pass.
    """

    bins: int = 2
    binning: str = "uniform"
    pre_activation: bool = False
    channel_reduce: str = "mean"
    seed: int = 0
    device: str = "cpu"
    batch_size: int = 4096
    token_reduce: str = "mean"

    def __post_init__(self) -> None:
        if isinstance(self.bins, bool) or not isinstance(self.bins, int) or self.bins < 2:
            raise PruneInfoError(
                f"bins (`bins`) must be an integer of at least 2, got {self.bins!r}; fix: use "
                "`bins`=2 for the paper's on/off quantiser, or more for finer bins"
            )
        if self.binning not in BINNINGS:
            raise PruneInfoError(
                f"unknown binning {self.binning!r}; fix: use one of {', '.join(BINNINGS)} "
                "(`binning`)"
            )
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise PruneInfoError(f"seed must be a non-negative integer, got {self.seed!r}")
        _ = self.capture  # CaptureOptions validates channel_reduce, token_reduce, batch_size

    @property
    def capture(self) -> CaptureOptions:
        """The matching :class:`~prune_info.capture.CaptureOptions`."""
        return CaptureOptions(pre_activation=self.pre_activation,
                              channel_reduce=self.channel_reduce,
                              batch_size=self.batch_size, device=self.device,
                              token_reduce=self.token_reduce)

    @property
    def quantiser(self) -> str:
        """A short human description, e.g. ``1-bit threshold`` or ``8 quantile bins``."""
        return "1-bit threshold" if self.bins == 2 else f"{self.bins} {self.binning} bins"
