"""Statistics over seeds: mean gaps of ablation curves, Wilcoxon and Kolmogorov-Smirnov tests.

The mean gap ``MG@k`` of Amjad et al. (Sec. VI) is the mean over seeds of the difference between
two curves' accuracies at ``k`` ablated units; its significance is a Wilcoxon signed-rank test of
the paired differences (:func:`mean_gap`). :func:`ks_gap` compares two scenarios' distributions at
``k`` with a two-sample Kolmogorov-Smirnov test.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from prune_info.errors import PruneInfoError

__all__ = ['MIN_WILCOXON_SEEDS', 'GapTest', 'adjust_p', 'format_p', 'ks_gap', 'mean_gap']

#: Below this many seeds a two-sided Wilcoxon signed-rank test cannot reach p < 0.05
#: (the smallest exact p-value with 5 pairs is 2 / 2**5 = 0.0625).
MIN_WILCOXON_SEEDS = 6


# --------------------------------------------------------------------------------------------
# Statistics


@dataclass(frozen=True)
class GapTest:
    """A mean gap between two sets of accuracies at ``k`` ablated units, with its p-value.

    Attributes
    ----------
    k : int
        Number of ablated units.
    gap : float
        Mean of ``a - b`` (paired) or ``mean(a) - mean(b)`` (two samples), in percentage points.
        Positive: ``a`` keeps more accuracy than ``b``.
    p_value : float or None
        Two-sided p-value; None when the test is not meaningful (see ``note``).
    test : {"wilcoxon", "ks"}
    n : int
        Number of pairs (Wilcoxon) or of samples in ``a`` (KS).
    statistic : float or None
        The test statistic as scipy returns it.
    note : str or None
        Why the p-value is missing or what to keep in mind.
    """

    k: int
    gap: float
    p_value: float | None
    test: str
    n: int
    statistic: float | None = None
    note: str | None = None

    def format(self) -> str:
        """The paper's notation, e.g. ``MG@80 = 15.2, p = 3.6e-9``."""
        return f"MG@{self.k} = {self.gap:.1f}, p = {format_p(self.p_value)}"

    def to_dict(self) -> dict:
        return {"k": self.k, "gap": self.gap, "p_value": self.p_value, "test": self.test,
                "n": self.n, "statistic": self.statistic, "note": self.note}


def format_p(p: float | None) -> str:
    """A p-value as the paper writes it: ``0.82``, ``0.018``, ``3.6e-9``; ``n/a`` for None.

    Examples
    --------
    >>> format_p(3.56e-9), format_p(0.8213), format_p(None)
    ('3.6e-9', '0.82', 'n/a')
    """
    if p is None:
        return "n/a"
    if p == 0 or p >= 1e-3:
        return f"{p:.2g}"
    mantissa, exponent = f"{p:.1e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def _as_1d(values, what: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    if array.size == 0:
        raise PruneInfoError(f"{what} is empty; a statistic needs at least one seed")
    if not np.all(np.isfinite(array)):
        raise PruneInfoError(f"{what} holds NaN or infinite accuracies")
    return array


def mean_gap(a, b, k: int, *, method: str = "approx") -> GapTest:
    """Mean gap ``MG@k`` of paired accuracies and its Wilcoxon signed-rank p-value.

    Parameters
    ----------
    a, b : array-like of float
        Accuracies (fractions) at ``k`` ablated units, one per seed, paired by seed: ``a`` the
        information ordering, ``b`` random ablation (the mean over the random repeats of that
        seed).
    k : int
    method : {"approx", "exact", "auto"}
        scipy's ``wilcoxon`` method. ``approx`` (the normal approximation) is the default
        because it is what the paper's p-values are (50 seeds all on one side give
        ``p = 7.55e-10``, the paper's value; the exact test would give ``1.8e-15``).

    Returns
    -------
    GapTest
        ``gap`` in percentage points, positive when ``a`` keeps more accuracy. With fewer than
        :data:`MIN_WILCOXON_SEEDS` seeds the p-value is None and ``note`` says why; when every
        difference is zero the p-value is 1.
    """
    from scipy import stats

    a = _as_1d(a, "the accuracies of the ordering")
    b = _as_1d(b, "the random accuracies")
    if a.shape != b.shape:
        raise PruneInfoError(
            f"a paired test needs as many random as ordered accuracies ({b.size} vs {a.size})")
    if method not in ("approx", "exact", "auto"):
        raise PruneInfoError(f"unknown Wilcoxon method {method!r}; choose approx, exact or auto")
    diff = 100.0 * (a - b)
    gap = float(diff.mean())
    if a.size < MIN_WILCOXON_SEEDS:
        return GapTest(k, gap, None, "wilcoxon", int(a.size), None,
                       f"{a.size} seeds: a Wilcoxon test needs at least {MIN_WILCOXON_SEEDS} "
                       "to reach p < 0.05, so no p-value is reported")
    if not np.any(diff != 0):
        return GapTest(k, gap, 1.0, "wilcoxon", int(a.size), None,
                       "every difference is zero")
    result = stats.wilcoxon(diff, method=method)
    return GapTest(k, gap, float(result.pvalue), "wilcoxon", int(a.size),
                   float(result.statistic))


def ks_gap(a, b, k: int) -> GapTest:
    """Compare two scenarios' random-ablation accuracies with the two-sample KS test.

    Parameters
    ----------
    a, b : array-like of float
        Accuracies (fractions) at ``k`` ablated units, one per seed, of scenario A and B (for
        example layer 1 and layer 2, or l2 and dropout). They need not be paired or equally many.
    k : int

    Returns
    -------
    GapTest
        ``gap = mean(a) - mean(b)`` in percentage points and scipy's ``ks_2samp`` p-value.
    """
    from scipy import stats

    a = _as_1d(a, "the accuracies of scenario A")
    b = _as_1d(b, "the accuracies of scenario B")
    gap = 100.0 * float(a.mean() - b.mean())
    result = stats.ks_2samp(a, b)
    note = None
    if min(a.size, b.size) < MIN_WILCOXON_SEEDS:
        note = f"only {min(a.size, b.size)} seeds in a scenario: the KS test has little power"
    return GapTest(k, gap, float(result.pvalue), "ks", int(a.size), float(result.statistic),
                   note)


def adjust_p(p_values: list[float | None]) -> list[float | None]:
    """Benjamini-Hochberg adjusted p-values (q-values) of a family of tests, ``None`` kept where
    a test had no p-value: a q-value at most ``q`` keeps the expected share of false discoveries
    among the rejected tests at most ``q``.

    >>> [round(v, 3) if v is not None else v for v in adjust_p([0.01, None, 0.04, 0.03])]
    [0.03, None, 0.04, 0.04]
    """
    from scipy.stats import false_discovery_control

    present = [i for i, p in enumerate(p_values) if p is not None]
    out: list[float | None] = [None] * len(p_values)
    if present:
        adjusted = false_discovery_control([p_values[i] for i in present], method="bh")
        for i, q in zip(present, adjusted):
            out[i] = float(q)
    return out
