"""Search for the most synergistic and most redundant multiplets of units of one layer.

Following Clauw, Marinazzo & Stramaglia (Sec. 4.1), a *multiplet* of size ``k`` is a set of
``k`` units of one layer **plus the class label**, and its O-information
``Omega_k(x_1, ..., x_k, y)`` (eq. 1, Gaussian-copula estimator) is minimised for synergy and
maximised for redundancy:

1. **exhaustive** search over every multiplet of each size ``2 <= k <= K`` (``K = 6`` for layers
   of at most 40 units, 4 above), streamed in chunks through the batched estimator
   :func:`prune_info.measures.gaussian.o_information_batched` on one covariance matrix;
2. **greedy** growth, one unit at a time, from the best multiplet of size ``k - 1`` up to the
   whole layer (each step evaluates all candidate additions as one batch);
3. optionally a **beam** search (the ``beam_width`` best multiplets of size ``K`` are grown,
   keeping the ``beam_width`` best of every size), which is never worse than greedy at a size
   whose parent set it kept; the result records which method found the more extreme value.

The order in which the greedy synergy search adds units gives the ``synergy`` pruning criterion
(:meth:`MultipletSearch.synergy_scores`).

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> x = rng.standard_normal((4000, 6))
>>> y = (x[:, 1] + x[:, 4] > 0).astype(int) + (x[:, 1] + x[:, 4] > 1)   # label from a sum
>>> res = search_multiplets(x, y)
>>> res.sizes[2].synergy_units       # the planted synergistic pair
(1, 4)
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from scipy.linalg import cho_factor, cho_solve
from tqdm.auto import tqdm

from prune_info.errors import PruneInfoError
from prune_info.measures.gaussian import (
    DEFAULT_CHUNK_SIZE,
    LN2,
    SINGULAR_TOL,
    as_covariance,
    check_chunk_size,
    check_n_samples,
    copula_covariance,
    correlation,
    omega_bias_bits,
    omega_chunk,
    regularise_covariance,
    ridge,
)

__all__ = [
    "SizeResult",
    "MultipletSearch",
    "default_max_exhaustive",
    "default_beam_width",
    "iter_combinations",
    "search_multiplets",
    "search_multiplets_covariance",
    "FORMAT",
]

#: Version key of :meth:`MultipletSearch.to_dict`.
FORMAT = "prune-info/multiplets/1"
# Refuse exhaustive searches that would evaluate more multiplets than this (hours of work).
_MAX_EXHAUSTIVE = 2_000_000_000
_LARGE_LAYER = 40


def default_max_exhaustive(n_units: int) -> int:
    """Largest exhaustive multiplet size by default: 6 up to 40 units, 4 above (at most the layer).

    Parameters
    ----------
    n_units : int
        Units of the layer.

    Returns
    -------
    int
    """
    return min(6 if n_units <= _LARGE_LAYER else 4, n_units)


def default_beam_width(n_units: int) -> int:
    """Beam width by default: 0 (greedy only) up to 40 units, 8 above.

    Parameters
    ----------
    n_units : int
        Units of the layer.

    Returns
    -------
    int
    """
    return 0 if n_units <= _LARGE_LAYER else 8


# --------------------------------------------------------------------------------------------
# combinations in chunks
# --------------------------------------------------------------------------------------------


def _rebatch(chunks: Iterator[np.ndarray], size: int) -> Iterator[np.ndarray]:
    """Re-cut a stream of ``[m_i, width]`` arrays into arrays of exactly ``size`` rows."""
    buf: list[np.ndarray] = []
    held = 0
    for chunk in chunks:
        buf.append(chunk)
        held += chunk.shape[0]
        if held >= size:
            joined = np.concatenate(buf, axis=0)
            cut = (held // size) * size
            for start in range(0, cut, size):
                yield joined[start : start + size]
            rest = joined[cut:]
            buf, held = ([rest], rest.shape[0]) if rest.shape[0] else ([], 0)
    if held:
        yield np.concatenate(buf, axis=0) if len(buf) > 1 else buf[0]


def _combinations(n_items: int, size: int, chunk_size: int) -> Iterator[np.ndarray]:
    if size == 1:
        yield from _rebatch(
            (np.arange(s, min(s + chunk_size, n_items), dtype=np.int64)[:, None]
             for s in range(0, n_items, chunk_size)),
            chunk_size,
        )
        return
    # A (size-1)-prefix ending in `last` extends by every item after it: at most
    # n_items - size + 1 of them, so this many prefixes fill about one chunk.
    prefix_chunk = max(1, chunk_size // max(1, n_items - size + 1))

    def extended() -> Iterator[np.ndarray]:
        for prefix in _combinations(n_items, size - 1, prefix_chunk):
            counts = n_items - 1 - prefix[:, -1]
            keep = counts > 0
            prefix, counts = prefix[keep], counts[keep]
            if prefix.shape[0] == 0:
                continue
            rows = np.repeat(np.arange(prefix.shape[0]), counts)
            starts = np.cumsum(counts) - counts
            within = np.arange(rows.shape[0]) - starts[rows]
            new = prefix[rows, -1] + 1 + within
            yield np.concatenate([prefix[rows], new[:, None]], axis=1)

    yield from _rebatch(extended(), chunk_size)


def iter_combinations(n_items: int, size: int, chunk_size: int = DEFAULT_CHUNK_SIZE
                      ) -> Iterator[np.ndarray]:
    """All ``size``-subsets of ``range(n_items)`` in lexicographic order, in chunks.

    Equivalent to ``itertools.combinations(range(n_items), size)`` but vectorised: each
    chunk of (size-1)-prefixes is extended at once.

    Parameters
    ----------
    n_items : int
        Number of items.
    size : int
        Subset size (``1 <= size <= n_items``).
    chunk_size : int, default 65536
        Rows per yielded array (the last one may be shorter).

    Yields
    ------
    ndarray of int64, shape (m, size)
        Rows of increasing indices.

    Examples
    --------
    >>> np.concatenate(list(iter_combinations(4, 2, chunk_size=4))).tolist()
    [[0, 1], [0, 2], [0, 3], [1, 2], [1, 3], [2, 3]]
    """
    chunk_size = check_chunk_size(chunk_size)
    if size < 1 or size > n_items:
        raise PruneInfoError(f"subset size must lie in 1..{n_items}, got {size}")
    yield from _combinations(int(n_items), int(size), chunk_size)


# --------------------------------------------------------------------------------------------
# results
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SizeResult:
    """Best multiplets of one size ``k`` (``k`` units + the label).

    Attributes
    ----------
    size : int
        Number of units ``k`` (the multiplet also holds the label: ``k + 1`` variables).
    synergy_units, redundancy_units : tuple of int
        Sorted unit indices of the most synergistic (min Omega) and most redundant (max Omega)
        multiplet found.
    synergy_omega, redundancy_omega : float
        Their O-information in bits.
    synergy_method, redundancy_method : str
        ``"exhaustive"`` (exact optimum), ``"greedy"`` or ``"beam"``: which search found it.
    greedy_synergy_omega, beam_synergy_omega, greedy_redundancy_omega, beam_redundancy_omega
        : float or None
        What each heuristic reached at this size (None where it did not run).
    """

    size: int
    synergy_units: tuple[int, ...]
    synergy_omega: float
    synergy_method: str
    redundancy_units: tuple[int, ...]
    redundancy_omega: float
    redundancy_method: str
    greedy_synergy_omega: float | None = None
    beam_synergy_omega: float | None = None
    greedy_redundancy_omega: float | None = None
    beam_redundancy_omega: float | None = None


@dataclass(frozen=True)
class MultipletSearch:
    """Result of :func:`search_multiplets` for one layer.

    Attributes
    ----------
    layer : str or None
        Layer name (informative only).
    n_units, n_samples : int
        Layer width and samples behind the covariance.
    max_exhaustive : int
        Largest size searched exhaustively.
    max_size : int
        Largest size searched.
    beam_width : int
        Beam width (0: no beam search).
    sizes : dict of int to SizeResult
        One entry per size ``2 .. max_size``.
    synergy_order : ndarray of int64
        Units in the order of the greedy synergy search: first the units of the best
        exhaustive multiplet of size ``max_exhaustive`` (ordered by how much its synergy drops
        when the unit is left out, largest first), then the units in the order greedy adds
        them. Its length is ``max_size``.
    n_evaluated : int
        O-informations computed.
    seconds : float
        Wall-clock time of the search.
    """

    layer: str | None
    n_units: int
    n_samples: int
    max_exhaustive: int
    max_size: int
    beam_width: int
    sizes: dict[int, SizeResult]
    synergy_order: np.ndarray
    n_evaluated: int
    seconds: float

    def synergy_scores(self) -> np.ndarray:
        """One score per unit from :attr:`synergy_order` (higher = more important).

        The unit added first scores ``n_units``, the next ``n_units - 1``, ...; units the
        search never reached (when ``max_size < n_units``) score 0.

        Returns
        -------
        ndarray of float64, shape (n_units,)
        """
        scores = np.zeros(self.n_units, dtype=np.float64)
        scores[self.synergy_order] = self.n_units - np.arange(self.synergy_order.size)
        return scores

    def to_dict(self) -> dict:
        """A JSON-ready dict with a ``"format"`` key."""
        return {
            "format": FORMAT,
            "layer": self.layer,
            "n_units": self.n_units,
            "n_samples": self.n_samples,
            "max_exhaustive": self.max_exhaustive,
            "max_size": self.max_size,
            "beam_width": self.beam_width,
            "n_evaluated": self.n_evaluated,
            "seconds": self.seconds,
            "synergy_order": [int(u) for u in self.synergy_order],
            "sizes": [
                {
                    "size": r.size,
                    "synergy_units": list(r.synergy_units),
                    "synergy_omega": r.synergy_omega,
                    "synergy_method": r.synergy_method,
                    "redundancy_units": list(r.redundancy_units),
                    "redundancy_omega": r.redundancy_omega,
                    "redundancy_method": r.redundancy_method,
                    "greedy_synergy_omega": r.greedy_synergy_omega,
                    "beam_synergy_omega": r.beam_synergy_omega,
                    "greedy_redundancy_omega": r.greedy_redundancy_omega,
                    "beam_redundancy_omega": r.beam_redundancy_omega,
                }
                for r in (self.sizes[k] for k in sorted(self.sizes))
            ],
        }


# --------------------------------------------------------------------------------------------
# the search
# --------------------------------------------------------------------------------------------


class _Evaluator:
    """Omega of unit multiplets (label appended) from one regularised covariance."""

    def __init__(self, cov: np.ndarray, n_samples: int, label: int, chunk_size: int,
                 bias_correct: bool) -> None:
        self.cov = np.ascontiguousarray(correlation(cov))  # Omega is scale-invariant
        self.n_samples = n_samples
        self.label = label
        self.chunk_size = chunk_size
        self.bias_correct = bias_correct
        self.count = 0
        self._bias: dict[int, float] = {}

    def bias(self, n_variables: int) -> float:
        """Bias-correction term (bits) of the Omega of ``n_variables`` variables."""
        if n_variables not in self._bias:
            self._bias[n_variables] = (
                omega_bias_bits(n_variables, self.n_samples) if self.bias_correct else 0.0
            )
        return self._bias[n_variables]

    def __call__(self, units: np.ndarray) -> np.ndarray:
        """Omega (bits) of ``units`` ([m, k] indices into the covariance) + the label."""
        m, k = units.shape
        out = np.empty(m, dtype=np.float64)
        for start in range(0, m, self.chunk_size):
            block = units[start : start + self.chunk_size]
            full = np.empty((block.shape[0], k + 1), dtype=np.int64)
            full[:, :k] = block
            full[:, k] = self.label
            out[start : start + block.shape[0]] = omega_chunk(self.cov, full, self.bias(k + 1))
        self.count += m
        return out

    def start(self, units: np.ndarray) -> _GrowState:
        """Growth state of ``units`` (covariance indices) + label: inverse and log-determinant."""
        idx = np.append(units, self.label)
        a = self.cov[np.ix_(idx, idx)]
        try:
            fac = cho_factor(a, lower=True)
        except np.linalg.LinAlgError:  # pragma: no cover - cov was regularised up front
            a = ridge(a)
            fac = cho_factor(a, lower=True)
        return _GrowState(
            idx=idx,
            prec=cho_solve(fac, np.eye(idx.size)),
            logdet=2.0 * float(np.sum(np.log(np.diag(fac[0])))),
            sum_log_var=float(np.sum(np.log(np.diag(a)))),
        )

    def extend(self, state: _GrowState, candidates: np.ndarray):
        """Omega (bits) of ``state + c`` for every ``c`` in ``candidates`` (covariance indices).

        With ``A`` the covariance of the state's variables ``S`` (units + label),
        ``P = A^{-1}``, ``b_c`` the covariances of ``c`` with ``S``, ``u_c = P b_c`` and
        ``s_c = A_cc - b_c . u_c`` (the variance of ``c`` given ``S``), the block-inverse
        formulas give, for ``S + c``: ``log det = log det A + log s_c``,
        ``(inverse)_jj = P_jj + u_cj^2 / s_c`` for ``j`` in ``S`` and ``1 / s_c`` for ``c``.
        One product serves all candidates (``np.einsum``: no multi-threaded BLAS call, which
        stalls on a busy machine). Candidates whose ``s_c`` is (relatively) below
        ``SINGULAR_TOL`` go through the batched path.

        Returns
        -------
        omega : ndarray (m,)
        u : ndarray (s, m)
        schur : ndarray (m,)
        """
        cov = self.cov
        b = cov[np.ix_(state.idx, candidates)]  # [s, m]
        u = np.einsum("ij,jm->im", state.prec, b)
        var_c = cov[candidates, candidates]
        schur = var_c - np.einsum("sm,sm->m", b, u)
        ok = schur > SINGULAR_TOL * var_c
        schur_safe = np.where(ok, schur, 1.0)
        inv_diag = np.diag(state.prec)[:, None] + u * u / schur_safe  # [s, m]
        # Omega = -log det + 0.5 sum log var - 0.5 sum log inv_diag, where c contributes
        # -log s_c + 0.5 log var_c + 0.5 log s_c.
        omega = (
            -(state.logdet + np.log(schur_safe))
            + 0.5 * (state.sum_log_var + np.log(var_c))
            - 0.5 * (np.log(inv_diag).sum(axis=0) - np.log(schur_safe))
        )
        out = omega / LN2 + self.bias(state.idx.size + 1)
        self.count += candidates.size
        if not ok.all():
            base = state.idx[:-1]
            rows = np.concatenate(
                [np.broadcast_to(base, (int((~ok).sum()), base.size)),
                 candidates[~ok][:, None]], axis=1)
            self.count -= rows.shape[0]
            out[~ok] = self(rows)
        return out, u, schur

    def child(self, state: _GrowState, candidate: int, u: np.ndarray, schur: float
              ) -> _GrowState:
        """State of ``state + candidate`` by the rank-one block-inverse update.

        ``P_new = [[P + u u^T / s, -u / s], [-u^T / s, 1 / s]]``; the label stays last.
        """
        if not schur > SINGULAR_TOL * self.cov[candidate, candidate]:
            return self.start(np.append(state.idx[:-1], candidate))
        k = state.idx.size
        # New order: old units, candidate, label (the label stays last).
        order = np.r_[np.arange(k - 1), k, k - 1]
        big = np.empty((k + 1, k + 1))
        big[:k, :k] = state.prec + np.multiply.outer(u, u) / schur
        big[:k, k] = big[k, :k] = -u / schur
        big[k, k] = 1.0 / schur
        return _GrowState(
            idx=np.r_[state.idx[:-1], candidate, state.idx[-1]],
            prec=big[np.ix_(order, order)],
            logdet=state.logdet + math.log(schur),
            sum_log_var=state.sum_log_var + math.log(self.cov[candidate, candidate]),
        )


@dataclass
class _GrowState:
    """A multiplet being grown: covariance indices (label last), inverse, log-det, log-vars."""

    idx: np.ndarray
    prec: np.ndarray
    logdet: float
    sum_log_var: float


class _TopK:
    """The ``width`` smallest values seen (with their rows), streamed over chunks."""

    def __init__(self, width: int, size: int) -> None:
        self.width = width
        self.values = np.empty(0)
        self.rows = np.empty((0, size), dtype=np.int64)

    def update(self, values: np.ndarray, rows: np.ndarray) -> None:
        if values.size > self.width:
            part = np.argpartition(values, self.width - 1)[: self.width]
            values, rows = values[part], rows[part]
        vals = np.concatenate([self.values, values])
        allrows = np.concatenate([self.rows, rows])
        order = np.argsort(vals, kind="stable")[: self.width]
        self.values, self.rows = vals[order], allrows[order]


def _grow(evaluate: _Evaluator, start: np.ndarray, sign: float, n_units: int, max_size: int,
          width: int, unit_to_cov: np.ndarray) -> dict[int, tuple[np.ndarray, float, list[int]]]:
    """Grow a beam of multiplets one unit at a time; ``width = 1`` from one start is greedy.

    ``sign = 1`` minimises Omega (synergy), ``-1`` maximises it (redundancy). At every size,
    each beam member is extended by every unit it lacks (one batch per member through
    :meth:`_Evaluator.extend`), duplicate sets are dropped and the ``width`` best are kept.
    Returns, for every size reached, the best multiplet, its Omega and (for the greedy case)
    the units added so far.
    """
    members = [np.sort(row) for row in start]
    states = [evaluate.start(unit_to_cov[row]) for row in members]
    out: dict[int, tuple[np.ndarray, float, list[int]]] = {}
    added: list[int] = []
    all_units = np.arange(n_units)
    for size in range(members[0].size + 1, max_size + 1):
        pool = []  # (value, sorted units, parent, added unit, column, u, schur)
        seen = set()
        for parent, (member, state) in enumerate(zip(members, states)):
            # a loop over the (few) beam members, vectorised over candidates
            free = np.setdiff1d(all_units, member, assume_unique=True)
            vals, u, schur = evaluate.extend(state, unit_to_cov[free])
            vals = sign * vals
            if width == 1:
                col = int(np.argmin(vals))  # first minimum: lowest unit index on ties
                pool.append((vals[col], np.sort(np.r_[member, free[col]]), parent,
                             int(free[col]), col, u, schur))
                continue
            for col in np.argsort(vals, kind="stable")[: width]:
                units = np.sort(np.r_[member, free[col]])
                key = units.tobytes()
                if key not in seen:
                    seen.add(key)
                    pool.append((vals[col], units, parent, int(free[col]), col, u, schur))
        pool.sort(key=lambda item: (item[0], item[1].tolist()))
        kept = pool[:width]
        members = [item[1] for item in kept]
        states = [
            evaluate.child(states[item[2]], int(unit_to_cov[item[3]]), item[5][:, item[4]],
                           float(item[6][item[4]]))
            for item in kept
        ]
        added.append(kept[0][3])
        out[size] = (members[0].copy(), float(sign * kept[0][0]), list(added))
    return out


def _pick(greedy: float | None, beam: float | None, sign: float) -> str:
    """Which heuristic found the more extreme value (ties go to the cheaper greedy)."""
    if beam is None or greedy is None:
        return "greedy" if beam is None else "beam"
    return "beam" if sign * beam < sign * greedy else "greedy"


def search_multiplets_covariance(
    cov,
    n_samples: int,
    *,
    label_index: int = -1,
    max_exhaustive: int | None = None,
    max_size: int | None = None,
    beam_width: int | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    bias_correct: bool = True,
    layer: str | None = None,
    progress: bool = False,
) -> MultipletSearch:
    """Synergy and redundancy search on a precomputed covariance of ``[units..., label]``.

    See :func:`search_multiplets`, which builds the covariance from activations and labels.

    Parameters
    ----------
    cov : array-like of shape (n_units + 1, n_units + 1)
        Covariance of the copula-normalised units and label (:func:`copula_covariance`).
    n_samples : int
        Samples behind ``cov``.
    label_index : int, default -1
        Index of the label in ``cov``; the other indices are the units, numbered in order.
    max_exhaustive, max_size, beam_width, chunk_size, bias_correct, layer, progress
        As in :func:`search_multiplets`.

    Returns
    -------
    MultipletSearch
    """
    t0 = time.perf_counter()
    c = as_covariance(cov)
    d = c.shape[0]
    n_units = d - 1
    if n_units < 2:
        raise PruneInfoError(
            f"the covariance holds {n_units} unit(s) besides the label; a multiplet needs at "
            "least 2 units: pass a layer with 2 or more units"
        )
    if not -d <= label_index < d:
        raise PruneInfoError(f"label_index {label_index} is outside 0..{d - 1}")
    label = label_index % d
    n_samples = check_n_samples(n_samples, d)
    chunk_size = check_chunk_size(chunk_size)
    max_size = n_units if max_size is None else _check_size("max_size", max_size, n_units)
    if max_exhaustive is None:
        max_exhaustive = min(default_max_exhaustive(n_units), max_size)
    else:
        max_exhaustive = _check_size("max_exhaustive", max_exhaustive, n_units)
        if max_exhaustive > max_size:
            raise PruneInfoError(
                f"max_exhaustive ({max_exhaustive}) exceeds max_size ({max_size}); lower it"
            )
    total = sum(math.comb(n_units, k) for k in range(2, max_exhaustive + 1))
    if total > _MAX_EXHAUSTIVE:
        raise PruneInfoError(
            f"an exhaustive search to size {max_exhaustive} over {n_units} units evaluates "
            f"{total:,} multiplets; lower max_exhaustive (greedy and beam search cover the "
            "larger sizes)"
        )
    if beam_width is None:
        beam_width = default_beam_width(n_units)
    if isinstance(beam_width, bool) or not isinstance(beam_width, (int, np.integer)) \
            or beam_width < 0:
        raise PruneInfoError(f"beam_width must be a non-negative integer, got {beam_width!r}")
    beam_width = int(beam_width)

    c = regularise_covariance(c, name="covariance of the units and label")
    # Units are numbered 0..n_units-1; map them to covariance indices around the label.
    unit_to_cov = np.delete(np.arange(d), label)
    evaluator = _Evaluator(c, n_samples, label, chunk_size, bias_correct)

    def evaluate(units: np.ndarray) -> np.ndarray:
        return evaluator(unit_to_cov[units])

    bar = None
    if progress:
        bar = tqdm(total=total, desc=f"multiplets {layer or ''}".strip(), unit="mult",
                   unit_scale=True, leave=False)

    sizes: dict[int, SizeResult] = {}
    tops: dict[int, tuple[_TopK, _TopK]] = {}
    for k in range(2, max_exhaustive + 1):
        width = max(1, beam_width) if k == max_exhaustive else 1
        low, high = _TopK(width, k), _TopK(width, k)
        for chunk in iter_combinations(n_units, k, chunk_size):
            vals = evaluate(chunk)
            low.update(vals, chunk)
            high.update(-vals, chunk)
            if bar is not None:
                bar.update(chunk.shape[0])
        tops[k] = (low, high)
        sizes[k] = SizeResult(
            size=k,
            synergy_units=tuple(int(u) for u in low.rows[0]),
            synergy_omega=float(low.values[0]),
            synergy_method="exhaustive",
            redundancy_units=tuple(int(u) for u in high.rows[0]),
            redundancy_omega=float(-high.values[0]),
            redundancy_method="exhaustive",
        )
    if bar is not None:
        bar.close()

    low, high = tops[max_exhaustive]
    seed_syn = low.rows[:1]
    greedy_syn = _grow(evaluator, seed_syn, 1.0, n_units, max_size, 1, unit_to_cov)
    greedy_red = _grow(evaluator, high.rows[:1], -1.0, n_units, max_size, 1, unit_to_cov)
    beam_syn = beam_red = {}
    if beam_width > 0:
        beam_syn = _grow(evaluator, low.rows, 1.0, n_units, max_size, beam_width, unit_to_cov)
        beam_red = _grow(evaluator, high.rows, -1.0, n_units, max_size, beam_width,
                         unit_to_cov)

    for k in range(max_exhaustive + 1, max_size + 1):
        g_s, g_r = greedy_syn[k][1], greedy_red[k][1]
        b_s = beam_syn[k][1] if beam_syn else None
        b_r = beam_red[k][1] if beam_red else None
        m_s, m_r = _pick(g_s, b_s, 1.0), _pick(g_r, b_r, -1.0)
        syn = greedy_syn[k] if m_s == "greedy" else beam_syn[k]
        red = greedy_red[k] if m_r == "greedy" else beam_red[k]
        sizes[k] = SizeResult(
            size=k,
            synergy_units=tuple(int(u) for u in syn[0]),
            synergy_omega=syn[1],
            synergy_method=m_s,
            redundancy_units=tuple(int(u) for u in red[0]),
            redundancy_omega=red[1],
            redundancy_method=m_r,
            greedy_synergy_omega=g_s,
            beam_synergy_omega=b_s,
            greedy_redundancy_omega=g_r,
            beam_redundancy_omega=b_r,
        )

    # Order of the seed's units: by how much Omega rises (synergy is lost) when each one is
    # left out of the seed, largest first (ties by unit index).
    seed = seed_syn[0]
    k0 = seed.size
    loo = np.array([np.delete(seed, j) for j in range(k0)])
    loss = evaluate(loo) - low.values[0]
    seed_order = seed[np.argsort(-loss, kind="stable")]
    added = greedy_syn[max_size][2] if max_size > max_exhaustive else []
    order = np.concatenate([seed_order, np.asarray(added, dtype=np.int64)]).astype(np.int64)

    return MultipletSearch(
        layer=layer,
        n_units=n_units,
        n_samples=n_samples,
        max_exhaustive=max_exhaustive,
        max_size=max_size,
        beam_width=beam_width,
        sizes=sizes,
        synergy_order=order,
        n_evaluated=evaluator.count,
        seconds=time.perf_counter() - t0,
    )


def _check_size(name: str, value, n_units: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise PruneInfoError(f"{name} must be an integer, got {value!r}")
    if value < 2:
        raise PruneInfoError(f"{name} must be at least 2 (a multiplet holds 2+ units), "
                             f"got {value}")
    if value > n_units:
        raise PruneInfoError(
            f"{name} = {value} is larger than the layer ({n_units} units); pass at most "
            f"{n_units}"
        )
    return int(value)


def search_multiplets(
    activations,
    labels,
    *,
    max_exhaustive: int | None = None,
    max_size: int | None = None,
    beam_width: int | None = None,
    seed: int = 0,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    bias_correct: bool = True,
    layer: str | None = None,
    progress: bool = False,
) -> MultipletSearch:
    """Find the most synergistic and most redundant multiplets of a layer's units.

    The units and the label are copula-normalised once (random tie breaking under ``seed``) and
    their covariance estimated once; every multiplet's O-information
    ``Omega(x_i1, ..., x_ik, y)`` comes from that one matrix (Clauw et al., eq. 1).
    Sizes ``2 .. max_exhaustive`` are searched exhaustively, larger sizes by greedy growth
    from the best multiplet of the size below (and by beam search when ``beam_width > 0``).

    Parameters
    ----------
    activations : array-like of shape (n_samples, n_units)
        Unit outputs of one layer (Clauw et al. use pre-activations; ReLU outputs work thanks to
        the random tie breaking).
    labels : array-like of shape (n_samples,)
        Class labels (at least two classes).
    max_exhaustive : int, optional
        Largest exhaustive size; default 6 for layers of at most 40 units, 4 above.
    max_size : int, optional
        Largest multiplet size searched; default the whole layer.
    beam_width : int, optional
        Beam width of the extra beam search (0: greedy only); default 0 up to 40 units, 8
        above.
    seed : int, default 0
        Seed of the copula normalisation's tie breaking.
    chunk_size : int, default 65536
        Multiplets per batch (bounds memory).
    bias_correct : bool, default True
        Bias-corrected entropies (shifts every multiplet of a size by the same constant: the
        chosen multiplets do not depend on it).
    layer : str, optional
        Layer name stored in the result.
    progress : bool, default False
        Show a tqdm progress bar of the exhaustive stage on stderr.

    Returns
    -------
    MultipletSearch

    Raises
    ------
    PruneInfoError
        Too few samples for the variables, a single-class label, sizes larger than the layer,
        invalid arrays.
    """
    cov = copula_covariance(activations, labels, seed=seed)
    n_samples = int(np.shape(activations)[0])
    return search_multiplets_covariance(
        cov,
        n_samples,
        label_index=-1,
        max_exhaustive=max_exhaustive,
        max_size=max_size,
        beam_width=beam_width,
        chunk_size=chunk_size,
        bias_correct=bias_correct,
        layer=layer,
        progress=progress,
    )
