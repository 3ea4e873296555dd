"""How unit outputs are read and quantised for the information criteria (:class:`ScoreOptions`)."""

from __future__ import annotations

from dataclasses import dataclass

from prune_info.capture import CaptureOptions
from prune_info.errors import PruneInfoError
from prune_info.measures.discrete import BIAS_CORRECTIONS

__all__ = ['BINNINGS', 'BIAS_CORRECTIONS', 'CHANNEL_QUANTISERS', 'FDR_Q', 'SHUFFLES',
           'ScoreOptions']

#: Accepted values of :attr:`ScoreOptions.binning`.
BINNINGS = ("uniform", "quantile")
#: Accepted values of :attr:`ScoreOptions.channel_quantiser`.
CHANNEL_QUANTISERS = ("threshold", "median")
#: Label permutations of the ``shuffle`` bias correction when ``null`` does not say.
SHUFFLES = 20
#: The false discovery rate at which units are called "above chance" (Benjamini-Hochberg).
FDR_Q = 0.05


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
    bias_correction : {"none", "miller-madow", "shuffle"}, default "none"
        Correction of the plug-in entropy, MI and KL selectivity for their upward bias with
        few samples per bin (:func:`prune_info.measures.discrete.miller_madow`; ``shuffle``
        subtracts each unit's mean over label permutations). The papers' estimator is the
        plug-in one, and the reproductions keep it.
    channel_quantiser : {"median", "threshold"}, default "median"
        The 2-bin quantiser of a convolutional channel (its spatial mean): a split at each
        channel's median (edges from the first batch), or the "is it active?" threshold of the
        paper's fully-connected units. After a ReLU a channel's mean is almost always above 0:
        under the threshold 70-88 % of the channels of ResNet-18's ``conv1``, ``layer1.*.conv1``
        and ``layer2.0.conv1`` had MI exactly 0 (a tie, ranked by index); split at the median,
        none tied, at equal one-shot accuracy after pruning (benchmarks/RESULTS.md). The paper
        defines no channel quantiser (its Sec. VII leaves convolutional layers open).
    null : int, default 0
        Label permutations of the null: each unit's MI and KL selectivity get a permutation
        p-value, and Benjamini-Hochberg q-values over the layer (no forward pass: the count
        tables are recounted from the stored bins).
    """

    bins: int = 2
    binning: str = "uniform"
    pre_activation: bool = False
    channel_reduce: str = "mean"
    seed: int = 0
    device: str = "cpu"
    batch_size: int = 4096
    token_reduce: str = "mean"
    bias_correction: str = "none"
    channel_quantiser: str = "median"
    null: int = 0

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
        if self.bias_correction not in BIAS_CORRECTIONS:
            raise PruneInfoError(
                f"unknown `bias_correction` {self.bias_correction!r}; use one of "
                f"{', '.join(BIAS_CORRECTIONS)}")
        if self.channel_quantiser not in CHANNEL_QUANTISERS:
            raise PruneInfoError(
                f"unknown `channel_quantiser` {self.channel_quantiser!r}; use one of "
                f"{', '.join(CHANNEL_QUANTISERS)}")
        if isinstance(self.null, bool) or not isinstance(self.null, int) or self.null < 0:
            raise PruneInfoError(f"`null` counts label permutations: an integer of at least 0, "
                                 f"got {self.null!r}")
        _ = self.capture  # CaptureOptions validates channel_reduce, token_reduce, batch_size

    @property
    def capture(self) -> CaptureOptions:
        """The matching :class:`~prune_info.capture.CaptureOptions`."""
        return CaptureOptions(pre_activation=self.pre_activation,
                              channel_reduce=self.channel_reduce,
                              batch_size=self.batch_size, device=self.device,
                              token_reduce=self.token_reduce)

    @property
    def permutations(self) -> int:
        """Label permutations to count: ``null``, or :data:`SHUFFLES` for the ``shuffle``
        correction."""
        if self.null:
            return self.null
        return SHUFFLES if self.bias_correction == "shuffle" else 0

    @property
    def quantiser(self) -> str:
        """A short human description, e.g. ``1-bit threshold`` or ``8 quantile bins``."""
        return self.describe(channels=True)

    def describe(self, channels: bool) -> str:
        """:attr:`quantiser`, naming the channel quantiser only when ``channels`` are scored."""
        if self.bins > 2:
            text = f"{self.bins} {self.binning} bins"
        elif channels and self.channel_quantiser == "median":
            text = "1-bit threshold (channels: median split)"
        else:
            text = "1-bit threshold"
        if self.bias_correction != "none":
            text += f", {self.bias_correction} corrected"
        return text
