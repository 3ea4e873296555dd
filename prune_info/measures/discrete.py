"""Discrete information measures of single units: quantise, count, measure.

This module implements Sections III-IV of Amjad, Liu & Geiger, *Understanding Neural Networks
and Individual Neuron Importance via Information-Ordered Cumulative Ablation*. Each unit's output
``T`` is quantised to a few bins, the joint frequencies of ``(T, Y)`` over a labelled validation
set are counted (eq. 2), and from those counts every unit gets

- its entropy ``H(T)`` (eq. 3),
- its mutual information with the class, ``I(T; Y)`` (eq. 4),
- its specific-information spectrum ``D(P_{T|Y=y} || P_T)`` for every class ``y``,
- its KL selectivity, the largest value of that spectrum (eq. 5).

The pipeline has three steps, all vectorised over units::

    table = CountTable(n_units, n_bins=2, n_classes=n_classes)
    for acts, labels in batches:                    # acts: [n_samples, n_units]
        bin_ids = threshold_quantise(acts, default_threshold("relu"))  # or digitize(acts, edges)
        table.update(bin_ids, labels)
    mutual_information(table)                       # one value per unit, in bits

Information is in bits and computed in float64. Empty cells follow the convention
``0 log 0 = 0``: they contribute nothing and never produce NaN or a warning.
"""

from __future__ import annotations

import math
from numbers import Integral
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from prune_info.errors import PruneInfoError

__all__ = [
    "BIAS_CORRECTIONS",
    "CountTable",
    "KLSelectivity",
    "MillerMadow",
    "bin_edges",
    "default_threshold",
    "digitize",
    "entropy",
    "Measures",
    "kl_selectivity",
    "measures",
    "miller_madow",
    "mutual_information",
    "permuted_counts",
    "specific_information",
    "threshold_quantise",
]

ArrayLike = Tensor | np.ndarray

_LN2 = math.log(2.0)

# Threshold of the paper's 1-bit quantiser, per activation function: the bin says whether the unit
# is "on". Zero separates the two regimes of ReLU-like functions and the sign of tanh; 0.5 is the
# midpoint of the sigmoid's range.
_THRESHOLDS = {
    "relu": 0.0,
    "leaky_relu": 0.0,
    "elu": 0.0,
    "gelu": 0.0,
    "silu": 0.0,
    "tanh": 0.0,
    "identity": 0.0,
    "sigmoid": 0.5,
}

_SCHEMES = ("uniform", "quantile")


# --------------------------------------------------------------------------------------------
# Quantisers
# --------------------------------------------------------------------------------------------


def default_threshold(activation: str) -> float:
    """Threshold of the 1-bit quantiser for an activation function.

    Parameters
    ----------
    activation : str
        Name of the activation function, case-insensitive: one of ``relu``, ``leaky_relu``,
        ``elu``, ``gelu``, ``silu``, ``tanh``, ``identity`` (threshold 0) or ``sigmoid``
        (threshold 0.5).

    Returns
    -------
    float
        The threshold to pass to :func:`threshold_quantise`.

    Raises
    ------
    PruneInfoError
        If the activation is unknown.

    Examples
    --------
    >>> default_threshold("ReLU"), default_threshold("sigmoid")
    (0.0, 0.5)
    """
    key = str(activation).strip().lower()
    if key not in _THRESHOLDS:
        known = ", ".join(sorted(_THRESHOLDS))
        raise PruneInfoError(
            f"unknown activation {activation!r} for the 1-bit quantiser; "
            f"fix: use one of {known}, or pass a threshold to threshold_quantise yourself"
        )
    return _THRESHOLDS[key]


def threshold_quantise(
    acts: ArrayLike, threshold: float | ArrayLike = 0.0, *, name: str | None = None
) -> Tensor:
    """Quantise unit outputs to one bit: bin 1 where the output exceeds the threshold.

    This is the quantiser of the paper: for ReLU units (threshold 0) bin 1 means "active".
    A value equal to the threshold falls in bin 0, as in :func:`digitize` with a single edge.

    Parameters
    ----------
    acts : Tensor or ndarray, shape [n_samples, n_units]
        Unit outputs.
    threshold : float or Tensor of shape [n_units], default 0.0
        One threshold for every unit, or one per unit. See :func:`default_threshold`.
    name : str, optional
        Name of the layer, put at the start of error messages.

    Returns
    -------
    Tensor of int64, shape [n_samples, n_units]
        Bin ids in {0, 1}.

    Examples
    --------
    >>> threshold_quantise(torch.tensor([[-1.0, 0.0], [0.0, 2.0]]))
    tensor([[0, 0],
            [0, 1]])
    """
    acts = _as_activations(acts, name)
    threshold = torch.as_tensor(threshold, dtype=torch.float64, device=acts.device)
    if threshold.ndim > 1 or (threshold.ndim == 1 and threshold.shape[0] != acts.shape[1]):
        raise PruneInfoError(
            f"{_where(name)}threshold must be a number or have shape [{acts.shape[1]}] "
            f"(one per unit), got shape {list(threshold.shape)}; fix: pass a float, "
            "or a 1-D tensor with one threshold per unit"
        )
    if not torch.isfinite(threshold).all():
        raise PruneInfoError(f"{_where(name)}threshold contains NaN/Inf; fix: pass finite values")
    return (acts > threshold).long()


def bin_edges(
    acts: ArrayLike, bins: int, scheme: str = "uniform", *, name: str | None = None
) -> Tensor:
    """Per-unit bin edges estimated from a sample of unit outputs.

    Compute the edges once, on a reference sample (for example the first batch), then quantise
    every batch with :func:`digitize` so that all batches share the same bins.

    Parameters
    ----------
    acts : Tensor or ndarray, shape [n_samples, n_units]
        Reference sample of unit outputs.
    bins : int
        Number of bins, at least 2.
    scheme : {"uniform", "quantile"}, default "uniform"
        ``"uniform"`` splits each unit's range ``[min, max]`` into ``bins`` intervals of equal
        width. ``"quantile"`` puts the edges at the empirical ``k / bins`` quantiles (the
        inverse of the empirical distribution function, numpy's ``method="inverted_cdf"``), so
        each bin receives about ``n_samples / bins`` of the reference sample; tied values can
        leave some bins empty.
    name : str, optional
        Name of the layer, put at the start of error messages.

    Returns
    -------
    Tensor of float64, shape [n_units, bins - 1]
        Non-decreasing edges, one row per unit. A constant unit gets all edges equal to its
        value, so :func:`digitize` puts all its samples in bin 0.

    Examples
    --------
    >>> acts = torch.tensor([[0.0, 5.0], [1.0, 5.0], [2.0, 5.0], [3.0, 5.0]])
    >>> bin_edges(acts, bins=3)
    tensor([[1., 2.],
            [5., 5.]], dtype=torch.float64)
    """
    _check_int("bins", bins, minimum=2, hint="use bins=2 for on/off, more for finer bins")
    if scheme not in _SCHEMES:
        raise PruneInfoError(
            f"unknown binning scheme {scheme!r}; fix: use one of {', '.join(_SCHEMES)}"
        )
    acts = _as_activations(acts, name)
    if acts.shape[0] == 0:
        raise PruneInfoError(
            f"{_where(name)}cannot estimate bin edges from zero samples; "
            "fix: pass a reference sample with at least one row"
        )
    k = torch.arange(1, bins, device=acts.device)  # edge k closes bin k - 1
    if scheme == "uniform":
        low, high = acts.amin(dim=0), acts.amax(dim=0)
        fraction = k.to(torch.float64)[:, None] / bins
        edges = low[None, :] + (high - low)[None, :] * fraction
    else:
        # The k/bins quantile is the ceil(k n / bins)-th smallest value (1-based): exactly
        # ceil(k n / bins) samples lie at or below it, and digitize puts them in bins < k.
        n = acts.shape[0]
        rank = (k * n + bins - 1) // bins - 1
        if bins <= 5:  # a selection per edge is linear in n; a sort is n log n
            edges = torch.stack([acts.kthvalue(int(r) + 1, dim=0).values for r in rank])
        else:
            edges = acts.sort(dim=0).values[rank]
    return edges.T.contiguous()


def digitize(acts: ArrayLike, edges: ArrayLike, *, name: str | None = None) -> Tensor:
    """Quantise unit outputs with per-unit bin edges.

    Bin ``k`` holds the values in ``(edges[k - 1], edges[k]]``: bin 0 everything up to the
    first edge, the last bin everything above the last edge. With a single edge this equals
    :func:`threshold_quantise`.

    Parameters
    ----------
    acts : Tensor or ndarray, shape [n_samples, n_units]
        Unit outputs.
    edges : Tensor or ndarray, shape [n_units, bins - 1]
        Non-decreasing edges per unit, e.g. from :func:`bin_edges`.
    name : str, optional
        Name of the layer, put at the start of error messages.

    Returns
    -------
    Tensor of int64, shape [n_samples, n_units]
        Bin ids in ``0 .. bins - 1``.

    Examples
    --------
    >>> edges = torch.tensor([[0.0, 1.0]])
    >>> digitize(torch.tensor([[-3.0], [0.0], [0.5], [1.0], [7.0]]), edges).T
    tensor([[0, 0, 1, 1, 2]])
    """
    acts = _as_activations(acts, name)
    edges = _as_edges(edges, acts.shape[1], acts.device, name)
    # searchsorted works row by row: row u of the edges sorts row u of the transposed outputs.
    # Its left side counts the edges strictly below each value, which is the bin id.
    return torch.searchsorted(edges, acts.T.contiguous()).T.contiguous()


# --------------------------------------------------------------------------------------------
# Counting
# --------------------------------------------------------------------------------------------


class CountTable:
    """Joint counts of quantised unit outputs and class labels, for all units of a layer.

    ``counts[u, t, y]`` is the number of samples with label ``y`` for which unit ``u`` fell in
    bin ``t``: divided by the number of samples it is the joint distribution of eq. 2 of the
    paper. Counts are integers, so streaming a dataset batch by batch gives exactly the table
    of one big batch. Memory is ``n_units * n_bins * n_classes`` integers.

    Parameters
    ----------
    n_units : int
        Number of units (columns of the bin ids).
    n_bins : int
        Number of quantisation bins, at least 2.
    n_classes : int
        Number of classes, at least 2; labels are ``0 .. n_classes - 1``.
    device : torch.device or str, optional
        Where the counts live; batches are moved there.

    Attributes
    ----------
    counts : Tensor of int64, shape [n_units, n_bins, n_classes]

    Examples
    --------
    Two ReLU units seen on four samples: unit 0 is active exactly for class 0, unit 1 is
    active on half the samples of each class.

    >>> acts = torch.tensor([[0.9, -1.0], [0.7, 2.0], [-0.3, -0.5], [-0.8, 1.5]])
    >>> labels = torch.tensor([0, 0, 1, 1])
    >>> table = CountTable(n_units=2, n_bins=2, n_classes=2)
    >>> table.update(threshold_quantise(acts, default_threshold("relu")), labels)
    CountTable(n_units=2, n_bins=2, n_classes=2, n_samples=4)
    >>> table.counts[0]
    tensor([[0, 2],
            [2, 0]])
    >>> entropy(table)
    tensor([1., 1.], dtype=torch.float64)
    >>> mutual_information(table)
    tensor([1., 0.], dtype=torch.float64)
    >>> kl_selectivity(table)
    KLSelectivity(values=tensor([1., 0.], dtype=torch.float64), classes=tensor([0, 0]))
    """

    def __init__(
        self,
        n_units: int,
        n_bins: int,
        n_classes: int,
        *,
        device: torch.device | str | None = None,
    ) -> None:
        _check_int("n_units", n_units, minimum=1, hint="pass the number of units of the layer")
        _check_int("n_bins", n_bins, minimum=2, hint="a quantiser needs at least two bins")
        _check_int("n_classes", n_classes, minimum=2, hint="pass the number of classes")
        self.counts = torch.zeros((n_units, n_bins, n_classes), dtype=torch.int64, device=device)

    @classmethod
    def from_bins(
        cls,
        bin_ids: ArrayLike,
        labels: ArrayLike,
        n_bins: int,
        n_classes: int,
        *,
        name: str | None = None,
    ) -> CountTable:
        """Count one batch of bin ids: ``CountTable(...).update(bin_ids, labels)`` in one call."""
        bin_ids = torch.as_tensor(bin_ids)
        if bin_ids.ndim != 2:
            raise PruneInfoError(_shape_message("bin_ids", bin_ids, name))
        table = cls(bin_ids.shape[1], n_bins, n_classes, device=bin_ids.device)
        return table.update(bin_ids, labels, name=name)

    @property
    def n_units(self) -> int:
        return self.counts.shape[0]

    @property
    def n_bins(self) -> int:
        return self.counts.shape[1]

    @property
    def n_classes(self) -> int:
        return self.counts.shape[2]

    @property
    def n_samples(self) -> int:
        """Number of samples counted so far (every unit sees every sample)."""
        return int(self.counts[0].sum())

    def update(
        self, bin_ids: ArrayLike, labels: ArrayLike, *, name: str | None = None
    ) -> CountTable:
        """Add one batch to the counts.

        Parameters
        ----------
        bin_ids : Tensor or ndarray of integers, shape [n_samples, n_units]
            Quantised outputs, from :func:`threshold_quantise` or :func:`digitize`.
        labels : Tensor or ndarray of integers, shape [n_samples]
            Class of each sample.
        name : str, optional
            Name of the layer, put at the start of error messages.

        Returns
        -------
        CountTable
            ``self``, so calls can be chained.
        """
        device = self.counts.device
        bin_ids = _as_ids("bin_ids", bin_ids, self.n_bins, device, name)
        labels = _as_ids("labels", labels, self.n_classes, device, name)
        if bin_ids.ndim != 2 or bin_ids.shape[1] != self.n_units:
            raise PruneInfoError(
                f"{_where(name)}bin_ids must have shape [n_samples, {self.n_units}], got "
                f"{list(bin_ids.shape)}; fix: pass one column per unit of this table"
            )
        if labels.ndim != 1 or labels.shape[0] != bin_ids.shape[0]:
            raise PruneInfoError(
                f"{_where(name)}labels must have shape [{bin_ids.shape[0]}] (one per row of "
                f"bin_ids), got {list(labels.shape)}; fix: pass the labels of the same samples"
            )
        # One flat index per (sample, unit) into the cells of counts[unit, bin, label], so a
        # single bincount counts the whole batch for every unit at once.
        units = torch.arange(self.n_units, device=device)
        flat = (units * self.n_bins + bin_ids) * self.n_classes + labels[:, None]
        batch = torch.bincount(flat.reshape(-1), minlength=self.counts.numel())
        self.counts += batch.view_as(self.counts)
        return self

    def __repr__(self) -> str:
        return (
            f"CountTable(n_units={self.n_units}, n_bins={self.n_bins}, "
            f"n_classes={self.n_classes}, n_samples={self.n_samples})"
        )


# --------------------------------------------------------------------------------------------
# Measures
# --------------------------------------------------------------------------------------------


class KLSelectivity(NamedTuple):
    """KL selectivity of every unit and the class that attains it."""

    values: Tensor
    """float64, shape [n_units]: ``max_y D(P_{T|Y=y} || P_T)`` in bits (eq. 5)."""
    classes: Tensor
    """int64, shape [n_units]: the maximising class; ties go to the lowest class index."""


def entropy(counts: CountTable | ArrayLike, *, name: str | None = None) -> Tensor:
    """Entropy ``H(T)`` of every unit's quantised output, in bits (eq. 3).

    Parameters
    ----------
    counts : CountTable, or Tensor of shape [n_units, n_bins, n_classes]
        Joint counts of bins and classes; only the bin marginal matters here.
    name : str, optional
        Name of the layer, put at the start of error messages.

    Returns
    -------
    Tensor of float64, shape [n_units]
        Between 0 (a constant unit, exactly 0) and ``log2(n_bins)``.

    Examples
    --------
    >>> entropy(torch.tensor([[[1, 0], [0, 1]], [[2, 0], [0, 0]]]))
    tensor([1., 0.], dtype=torch.float64)
    """
    joint = _as_counts(counts, name)
    p_t = joint.sum(dim=2) / joint.sum(dim=(1, 2))[:, None]
    # H(T) = -sum_t P(t) log P(t); entr(p) = -p ln p with entr(0) = 0.
    return torch.special.entr(p_t).sum(dim=1) / _LN2


class Measures(NamedTuple):
    """Every measure of :func:`measures`, each ``[n_units]`` (``spectrum``: per class)."""

    entropy: Tensor
    mi: Tensor
    spectrum: Tensor
    kl: Tensor
    kl_class: Tensor


def measures(counts: CountTable | ArrayLike, *, name: str | None = None) -> Measures:
    """Entropy, MI, spectrum and KL selectivity at once, the spectrum computed once (what
    :func:`entropy`, :func:`mutual_information`, :func:`specific_information` and
    :func:`kl_selectivity` give one by one). Every class must have a sample.

    >>> m = measures(torch.tensor([[[2, 0], [0, 2]]]))
    >>> m.entropy.item(), m.mi.item(), m.kl.item(), m.kl_class.item()
    (1.0, 1.0, 1.0, 0)
    """
    joint = _as_counts(counts, name)
    _require_every_class(joint, name)
    total = joint.sum(dim=(1, 2))
    p_t = joint.sum(dim=2) / total[:, None]
    p_y = joint.sum(dim=1) / total[:, None]
    spectrum = _spectrum(joint)
    kl_class = spectrum.argmax(dim=1)
    return Measures(entropy=torch.special.entr(p_t).sum(dim=1) / _LN2,
                    mi=(p_y * spectrum).sum(dim=1), spectrum=spectrum,
                    kl=spectrum.gather(1, kl_class[:, None]).squeeze(1), kl_class=kl_class)


def mutual_information(counts: CountTable | ArrayLike, *, name: str | None = None) -> Tensor:
    """Mutual information ``I(T; Y)`` of every unit's quantised output with the class (eq. 4).

    Computed as ``I(T; Y) = sum_y P(y) D(P_{T|Y=y} || P_T)``, the average of the
    specific-information spectrum. Classes without samples have ``P(y) = 0`` and contribute
    nothing, so unlike :func:`specific_information` this accepts absent classes.

    Parameters
    ----------
    counts : CountTable, or Tensor of shape [n_units, n_bins, n_classes]
        Joint counts of bins and classes.
    name : str, optional
        Name of the layer, put at the start of error messages.

    Returns
    -------
    Tensor of float64, shape [n_units]
        In bits, between 0 and ``min(H(T), H(Y))``. Exactly 0 for a constant unit and for
        counts that factorise exactly (``counts[t, y] * N == counts[t] * counts[y]``).

    Examples
    --------
    >>> mutual_information(torch.tensor([[[2, 0], [0, 2]], [[1, 1], [1, 1]]]))
    tensor([1., 0.], dtype=torch.float64)
    """
    joint = _as_counts(counts, name)
    p_y = joint.sum(dim=1) / joint.sum(dim=(1, 2))[:, None]
    return (p_y * _spectrum(joint)).sum(dim=1)


def specific_information(
    counts: CountTable | ArrayLike, *, name: str | None = None
) -> Tensor:
    """Specific-information spectrum ``D(P_{T|Y=y} || P_T)`` of every unit, for every class.

    The spectrum tells which classes a unit singles out (Section VI of the paper); its mean
    weighted by ``P(y)`` is the mutual information and its maximum the KL selectivity.

    Parameters
    ----------
    counts : CountTable, or Tensor of shape [n_units, n_bins, n_classes]
        Joint counts of bins and classes. Every class must have at least one sample.
    name : str, optional
        Name of the layer, put at the start of error messages.

    Returns
    -------
    Tensor of float64, shape [n_units, n_classes]
        Non-negative, in bits.

    Raises
    ------
    PruneInfoError
        If a class has no samples: ``P_{T|Y=y}`` is then undefined.

    Examples
    --------
    A unit active for class 0 only, over three classes of two samples each:

    >>> counts = torch.tensor([[[0, 2, 2], [2, 0, 0]]])
    >>> specific_information(counts)  # log2(3), log2(3/2), log2(3/2)
    tensor([[1.5850, 0.5850, 0.5850]], dtype=torch.float64)
    """
    joint = _as_counts(counts, name)
    _require_every_class(joint, name)
    return _spectrum(joint)


def kl_selectivity(counts: CountTable | ArrayLike, *, name: str | None = None) -> KLSelectivity:
    """KL selectivity ``max_y D(P_{T|Y=y} || P_T)`` of every unit, and its class (eq. 5).

    High for units that behave differently for one class than for the rest. It bounds the
    mutual information from above and is 0 exactly when the mutual information is 0.

    Parameters
    ----------
    counts : CountTable, or Tensor of shape [n_units, n_bins, n_classes]
        Joint counts of bins and classes. Every class must have at least one sample.
    name : str, optional
        Name of the layer, put at the start of error messages.

    Returns
    -------
    KLSelectivity
        Named tuple ``(values, classes)``: float64 selectivities in bits and the int64 class
        attaining each maximum (the lowest such class on ties), both of shape [n_units].

    Raises
    ------
    PruneInfoError
        If a class has no samples.

    Examples
    --------
    >>> kl_selectivity(torch.tensor([[[0, 2, 2], [2, 0, 0]]]))
    KLSelectivity(values=tensor([1.5850], dtype=torch.float64), classes=tensor([0]))
    """
    spectrum = specific_information(counts, name=name)
    classes = spectrum.argmax(dim=1)
    values = spectrum.gather(1, classes[:, None]).squeeze(1)
    return KLSelectivity(values=values, classes=classes)


def _spectrum(joint: Tensor) -> Tensor:
    """``D(P_{T|Y=y} || P_T)`` for every unit and class, from validated float64 counts.

    Absent classes get 0 here; the public entry points decide whether to allow them.
    """
    count_t = joint.sum(dim=2, keepdim=True)  # [units, bins, 1]
    count_y = joint.sum(dim=1, keepdim=True)  # [units, 1, classes]
    total = joint.sum(dim=(1, 2), keepdim=True)  # [units, 1, 1]
    tiny = torch.finfo(torch.float64).tiny
    # P(t|y) / P(t) = n(t,y) N / (n(t) n(y)). Staying with counts keeps the ratio exactly 1 when
    # counts factorise, so independent units get exactly 0 rather than rounding noise.
    # Empty cells (0 log 0 = 0) get ratio 1; the clamp only avoids 0/0 in those cells.
    ratio = joint * total / (count_t * count_y).clamp_min(tiny)
    log_ratio = torch.log2(torch.where(joint > 0, ratio, 1.0))
    # D(P_{T|Y=y} || P_T) = sum_t P(t|y) log2(P(t|y) / P(t)), >= 0 up to rounding.
    p_t_given_y = joint / count_y.clamp_min(tiny)
    return (p_t_given_y * log_ratio).sum(dim=1).clamp_min(0.0)


# --------------------------------------------------------------------------------------------
# Bias: Miller-Madow terms and label permutations
# --------------------------------------------------------------------------------------------

#: How the plug-in estimates may be corrected for their bias (``ScoreOptions.bias_correction``).
BIAS_CORRECTIONS = ("none", "miller-madow", "shuffle")


class MillerMadow(NamedTuple):
    """First-order bias of the plug-in estimates, in bits, to subtract from them."""

    entropy: Tensor  # [units]
    mi: Tensor  # [units]
    spectrum: Tensor  # [units, classes]


def miller_madow(counts: CountTable | ArrayLike, *, name: str | None = None) -> MillerMadow:
    """The bias of the plug-in entropy, mutual information and spectrum to first order in 1/N.

    The plug-in entropy of ``m`` occupied bins over ``N`` samples falls short of the true one by
    ``(m - 1) / (2 N ln 2)`` bits (Miller 1955). Through ``I(T;Y) = H(T) + H(Y) - H(T,Y)`` the
    mutual information exceeds it by ``[(m_TY - 1) - (m_T - 1) - (m_Y - 1)] / (2 N ln 2)``
    (Panzeri & Treves 1996, eq. 2.11, with occupied rather than possible bins): with every
    cell occupied, ``(B - 1)(K - 1) / (2 N ln 2)``. For the specific information of class
    ``y``, whose ``N_y = p_y N`` samples estimate ``P_{T|y}`` while all ``N`` estimate ``P_T``,
    the same expansion gives ``(m_{T|y} - 1)(1 - p_y) / (2 N_y ln 2)``; weighted by ``p_y``
    these add up to the mutual information's term when every cell is occupied.

    A constant unit (one occupied bin) has every term exactly 0, so its corrected measures stay
    exactly 0. The corrected values may be slightly negative for units that carry nothing: an
    unbiased estimate of 0 scatters around it.

    Examples
    --------
    >>> mm = miller_madow(torch.tensor([[[5, 5], [5, 5]], [[10, 10], [0, 0]]]))
    >>> [round(v, 6) for v in mm.mi.tolist()]   # 1 / (2 * 20 * ln 2); a constant unit: 0
    [0.036067, 0.0]
    """
    joint = _as_counts(counts, name)
    n = joint.sum(dim=(1, 2))
    occupied_t = (joint.sum(dim=2) > 0).sum(dim=1).double()
    occupied_y = (joint.sum(dim=1) > 0).sum(dim=1).double()
    occupied_ty = (joint > 0).sum(dim=(1, 2)).double()
    scale = 2.0 * _LN2
    h = (occupied_t - 1) / (scale * n)
    mi = (occupied_ty - occupied_t - occupied_y + 1) / (scale * n)
    n_y = joint.sum(dim=1)  # [units, classes]
    occupied_t_y = (joint > 0).sum(dim=1).double()
    p_y = n_y / n[:, None]
    spectrum = torch.where(n_y > 0, (occupied_t_y - 1).clamp_min(0) * (1 - p_y)
                           / (scale * n_y.clamp_min(1)), 0.0)
    return MillerMadow(entropy=-h, mi=mi, spectrum=spectrum)


def permuted_counts(ids: Tensor, labels: Tensor, n_bins: int, n_classes: int,
                    permutations: Tensor) -> Tensor:
    """Count tables of every unit against permuted labels: the null of "no information".

    Parameters
    ----------
    ids : Tensor of uint8 or int64, shape [n_samples, n_units]
        Each unit's bin of each sample.
    labels : Tensor of int64, shape [n_samples]
    n_bins, n_classes : int
    permutations : Tensor of int64, shape [n_permutations, n_samples]
        Sample orders; row ``p`` pairs sample ``i``'s bins with the label of sample
        ``permutations[p, i]``.

    Returns
    -------
    Tensor of int64, shape [n_permutations, n_units, n_bins, n_classes]
        Computed as one product of the permuted labels' one-hot matrices with each bin's
        indicator matrix (exact in float32 below 2**24 samples): no forward pass, and the
        per-unit cost of a table is one multiply-add per sample and class.
    """
    n_samples = ids.shape[0]
    dtype = torch.float32 if n_samples < 2**24 else torch.float64
    onehot = torch.zeros(permutations.shape[0], n_samples, n_classes, dtype=dtype)
    onehot.scatter_(2, labels[permutations][..., None], 1.0)
    flat = onehot.transpose(1, 2).reshape(-1, n_samples)  # [perms * classes, samples]
    per_class = onehot.sum(dim=1)  # [perms, classes]
    out = torch.zeros(permutations.shape[0], ids.shape[1], n_bins, n_classes,
                      dtype=torch.int64)
    upper = torch.zeros(permutations.shape[0], ids.shape[1], n_classes, dtype=torch.int64)
    for k in range(1, n_bins):
        hits = (ids == k).to(dtype)  # [samples, units]
        in_k = (flat @ hits).reshape(permutations.shape[0], n_classes, -1).transpose(1, 2)
        out[:, :, k, :] = in_k.round().to(torch.int64)
        upper += out[:, :, k, :]
    out[:, :, 0, :] = per_class.to(torch.int64)[:, None, :] - upper
    return out


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


def _where(name: str | None) -> str:
    return f"{name}: " if name else ""


def _shape_message(what: str, tensor: Tensor, name: str | None) -> str:
    return (
        f"{_where(name)}{what} must have shape [n_samples, n_units], got "
        f"{list(tensor.shape)}; fix: flatten each sample's outputs to one row, e.g. "
        "x.reshape(len(x), -1), or use x[:, None] for a single unit"
    )


def _check_int(what: str, value: object, *, minimum: int, hint: str) -> None:
    if isinstance(value, bool) or not isinstance(value, Integral) or value < minimum:
        raise PruneInfoError(f"{what} must be an integer >= {minimum}, got {value!r}; fix: {hint}")


def _as_activations(acts: ArrayLike, name: str | None) -> Tensor:
    """Unit outputs as a finite float64 tensor of shape [n_samples, n_units]."""
    acts = torch.as_tensor(acts)
    if acts.dtype == torch.bool or acts.is_complex():
        raise PruneInfoError(
            f"{_where(name)}activations must be real numbers, got dtype {acts.dtype}; "
            "fix: pass the unit outputs as a float tensor"
        )
    if acts.ndim != 2:
        raise PruneInfoError(_shape_message("activations", acts, name))
    acts = acts.to(torch.float64)
    finite = torch.isfinite(acts)
    if not finite.all():
        bad = int((~finite).sum())
        raise PruneInfoError(
            f"{_where(name)}activations contain NaN/Inf ({bad} of {acts.numel()} values); "
            "fix: check the model and its inputs for overflow or invalid values (for example "
            "evaluate in float32 rather than float16), or drop the affected samples"
        )
    return acts


def _as_edges(edges: ArrayLike, n_units: int, device: torch.device, name: str | None) -> Tensor:
    edges = torch.as_tensor(edges, dtype=torch.float64, device=device)
    if edges.ndim != 2 or edges.shape[0] != n_units or edges.shape[1] < 1:
        raise PruneInfoError(
            f"{_where(name)}edges must have shape [{n_units}, bins - 1] (one row per unit, at "
            f"least one column), got {list(edges.shape)}; fix: compute them with bin_edges on "
            "outputs of the same units"
        )
    if not torch.isfinite(edges).all():
        raise PruneInfoError(f"{_where(name)}edges contain NaN/Inf; fix: pass finite edges")
    if (edges[:, 1:] < edges[:, :-1]).any():
        raise PruneInfoError(
            f"{_where(name)}edges must be non-decreasing along each row; "
            "fix: sort them, e.g. edges.sort(dim=1).values"
        )
    return edges.contiguous()


def _as_ids(
    what: str, ids: ArrayLike, n_values: int, device: torch.device, name: str | None
) -> Tensor:
    """Integer ids as int64 on ``device``, all in ``0 .. n_values - 1``."""
    ids = torch.as_tensor(ids, device=device)
    if ids.is_floating_point() or ids.is_complex() or ids.dtype == torch.bool:
        raise PruneInfoError(
            f"{_where(name)}{what} must be integers, got dtype {ids.dtype}; fix: "
            + (
                "quantise the activations first with threshold_quantise or digitize"
                if what == "bin_ids"
                else "pass class indices, e.g. labels.long()"
            )
        )
    ids = ids.long()
    if ids.numel() and (ids.min() < 0 or ids.max() >= n_values):
        low, high = int(ids.min()), int(ids.max())
        raise PruneInfoError(
            f"{_where(name)}{what} must lie in 0..{n_values - 1}, got values in {low}..{high}; "
            f"fix: create the CountTable with enough {'bins' if what == 'bin_ids' else 'classes'}"
        )
    return ids


def _as_counts(counts: CountTable | ArrayLike, name: str | None) -> Tensor:
    """A non-empty count table as float64 of shape [n_units, n_bins, n_classes]."""
    if isinstance(counts, CountTable):
        counts = counts.counts
    counts = torch.as_tensor(counts)
    if counts.ndim != 3 or counts.shape[1] == 0 or counts.shape[2] == 0:
        raise PruneInfoError(
            f"{_where(name)}counts must have shape [n_units, n_bins, n_classes], got "
            f"{list(counts.shape)}; fix: pass a CountTable or its counts tensor"
        )
    if counts.dtype == torch.bool or counts.is_complex():
        raise PruneInfoError(
            f"{_where(name)}counts must be real numbers, got dtype {counts.dtype}; "
            "fix: pass a CountTable or its int64 counts tensor"
        )
    counts = counts.to(torch.float64)
    if not torch.isfinite(counts).all() or (counts < 0).any():
        raise PruneInfoError(
            f"{_where(name)}counts must be finite and non-negative; "
            "fix: pass a CountTable or its int64 counts tensor"
        )
    if (counts.sum(dim=(1, 2)) == 0).any():
        raise PruneInfoError(
            f"{_where(name)}the count table holds no samples; "
            "fix: call CountTable.update with at least one batch before measuring"
        )
    return counts


def _require_every_class(joint: Tensor, name: str | None) -> None:
    absent = (joint.sum(dim=1) == 0).any(dim=0).nonzero().flatten().tolist()
    if not absent:
        return
    which = f"class {absent[0]} is" if len(absent) == 1 else f"classes {absent} are"
    raise PruneInfoError(
        f"{_where(name)}{which} absent from the validation set (no samples), so "
        "D(P_T|Y=y || P_T) is undefined for it; fix: use a validation set that contains every "
        "class (e.g. a stratified split), or relabel the classes present as 0..k-1 and count "
        "with n_classes=k"
    )
