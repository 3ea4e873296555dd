"""Gaussian-copula estimators: copula normalisation, Gaussian entropy, GC-MI, O-information.

Every function here is a pure numerical function on float64 arrays (numpy, or torch float64
inside the batched path); results are in **bits**.

The estimators follow Ince et al. (2017), *A statistical framework for neuroimaging data analysis
based on mutual information estimated via a Gaussian copula*, Hum. Brain Mapp. 38:1541-1573
("gcmi"): every variable is rank-transformed to a standard normal marginal (the copula
normalisation), after which entropies are the closed-form entropies of a multivariate Gaussian
with an analytic bias correction. The O-information is eq. 1 of Clauw, Marinazzo & Stramaglia
(after Rosas et al. 2019, Phys. Rev. E 100:032305):

.. math:: \\Omega(Z) = (n - 2) H(Z) + \\sum_{j=1}^n [H(Z_j) - H(Z \\setminus Z_j)]

with :math:`\\Omega > 0` redundancy-dominated and :math:`\\Omega < 0` synergy-dominated.

Conventions (chosen so that published gcmi numbers come out exactly):

- ranks start at 1 and are divided by ``n + 1`` before the inverse normal CDF;
- ties are broken **at random**, independently in every column, under a seed (ReLU outputs hold
  many exact zeros; breaking their ties in row order in every column would correlate the columns
  and the label through the row order and manufacture redundancy and class information);
- covariances are unbiased (``ddof = 1``);
- the bias correction is the analytic one of Ince et al. (2017), from the expectation of the
  log-determinant of a Wishart matrix.

Examples
--------
>>> import numpy as np
>>> from prune_info.measures.gaussian import o_information
>>> rng = np.random.default_rng(0)
>>> a, b, c = rng.standard_normal((3, 5000))
>>> o_information(np.c_[a, a + 0.3 * b, a + 0.3 * c]) > 0   # noisy copies: redundancy
True
>>> o_information(np.c_[a, b, a + b + 0.3 * c]) < 0         # a sum: synergy
True
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch
from scipy.special import ndtri, psi

from prune_info.errors import PruneInfoError

__all__ = [
    "SingularCovarianceWarning",
    "copula_normalise",
    "encode_labels",
    "units_with_label",
    "copula_covariance",
    "entropy_bias",
    "gaussian_entropy",
    "regularise_covariance",
    "o_information",
    "o_information_reference",
    "o_information_batched",
    "gcmi_model_cd",
    "gcmi_mixture_cd",
    "DEFAULT_CHUNK_SIZE",
    "RIDGE",
    "SINGULAR_TOL",
]

LN2 = math.log(2.0)
#: Multiplets evaluated per batch in :func:`o_information_batched`.
DEFAULT_CHUNK_SIZE = 65536
#: A covariance is treated as singular when the smallest eigenvalue of its correlation matrix
#: (equivalently, some conditional variance relative to the marginal one) is below this.
SINGULAR_TOL = 1e-12
#: Relative ridge added to a singular covariance: ``C + RIDGE * diag(C)``.
RIDGE = 1e-10
# Consistent estimator of the standard deviation from the median absolute deviation of a
# Gaussian sample: 1 / Phi^{-1}(3/4).
_MAD_TO_SD = 1.0 / float(ndtri(0.75))
# Consistent estimator of the standard deviation from the mean absolute deviation of a Gaussian
# sample: E|X - mu| = sigma * sqrt(2 / pi).
_MEANAD_TO_SD = math.sqrt(math.pi / 2.0)
# Share of a class sitting exactly at its minimum or maximum (ReLU zeros, saturation) from which
# the MAD is no longer trusted as a scale: it jumps between 0 and tiny values around a 50 % share.
_CLIPPED_SHARE = 0.25
# Last-resort scale of a class that is constant on a unit, relative to the unit's overall scale.
_MIXTURE_SCALE_FLOOR = 1e-6


class SingularCovarianceWarning(UserWarning):
    """A covariance (or one of its sub-matrices) was singular and has been regularised.

    Issued through :func:`warnings.warn` when some variables are exact copies or linear
    combinations of others, or constant. The estimate is then computed from
    ``C + RIDGE * diag(C)`` (:data:`RIDGE` ``= 1e-10``): every variable receives independent
    noise of ``1e-10`` times its own variance. The result is finite, never NaN. What it means:

    - **O-information, exact copy or constant variable**: the ``log(RIDGE)`` terms cancel in
      eq. 1 (the copy pair, or the constant, enters as many entropies with ``+`` as with ``-``),
      so the value is the ``RIDGE -> 0`` limit and is meaningful: e.g.
      ``Omega(a, copy of a, y) = I(a; y)``, and a constant (then independent) variable leaves
      Omega unchanged;
    - **O-information, exact linear combination of three or more variables** (``c = a + b``):
      one ``log(RIDGE)`` term survives and the value is about ``-0.5 * log2(1 / RIDGE)``
      (about -16 bits): read "synergistic beyond what the data can resolve", not a measurement;
    - **entropies** of a singular matrix are dominated by ``0.5 * log2(RIDGE)`` per degenerate
      direction: finite lower bounds without meaning as measurements.

    Quantities that do not involve the degenerate variables change by ``O(RIDGE)``.
    """


# --------------------------------------------------------------------------------------------
# input handling
# --------------------------------------------------------------------------------------------


def _as_float64(x, name: str) -> np.ndarray:
    """Return ``x`` as a float64 numpy array (torch tensors are detached and moved to CPU)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().to("cpu", torch.float64).numpy()
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise PruneInfoError(
            f"{name} could not be read as an array of numbers ({exc}); pass a numeric numpy "
            "array or torch tensor"
        ) from None
    if not np.all(np.isfinite(arr)):
        raise PruneInfoError(
            f"{name} holds NaN or infinite values; remove or impute those samples first"
        )
    return arr


def _as_samples_by_variables(x, name: str) -> np.ndarray:
    """Validate a ``[n_samples, n_variables]`` (or ``[n_samples]``) float64 array."""
    arr = _as_float64(x, name)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise PruneInfoError(
            f"{name} must be 2-D [n_samples, n_variables], got shape {tuple(arr.shape)}; "
            "flatten the unit axes first"
        )
    if arr.shape[0] < 2:
        raise PruneInfoError(f"{name} has {arr.shape[0]} sample(s); pass at least 2 samples")
    if arr.shape[1] < 1:
        raise PruneInfoError(f"{name} has no variables (shape {tuple(arr.shape)})")
    return arr


def as_covariance(cov, name: str = "cov") -> np.ndarray:
    """Validate a symmetric ``[d, d]`` covariance matrix."""
    c = _as_float64(cov, name)
    if c.ndim != 2 or c.shape[0] != c.shape[1] or c.shape[0] < 1:
        raise PruneInfoError(
            f"{name} must be a square [d, d] covariance matrix, got shape {tuple(c.shape)}"
        )
    scale = max(float(np.max(np.abs(c))), 1e-300)
    if not np.allclose(c, c.T, rtol=0.0, atol=1e-10 * scale):
        raise PruneInfoError(f"{name} is not symmetric; pass a covariance matrix")
    if np.any(np.diag(c) < 0):
        raise PruneInfoError(f"{name} has negative variances on its diagonal; pass a covariance")
    return 0.5 * (c + c.T)


def check_n_samples(n_samples, n_variables: int) -> int:
    """Validate a sample count for the bias correction (needs ``n_samples > n_variables``)."""
    if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)):
        raise PruneInfoError(f"n_samples must be an integer, got {n_samples!r}")
    n_samples = int(n_samples)
    if n_samples <= n_variables:
        raise PruneInfoError(
            f"{n_samples} samples for {n_variables} variables: the Gaussian-copula estimator "
            "needs more samples than variables; pass more samples or fewer variables"
        )
    return n_samples


def check_chunk_size(chunk_size) -> int:
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)):
        raise PruneInfoError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    if chunk_size < 1:
        raise PruneInfoError(f"chunk_size must be a positive integer, got {chunk_size}")
    return int(chunk_size)


def encode_labels(y, n_samples: int | None = None) -> tuple[np.ndarray, int]:
    """Validate discrete class labels and encode them as ``0 .. n_classes - 1``.

    Parameters
    ----------
    y : array-like of shape (n_samples,)
        Class labels: integers, booleans or integer-valued floats.
    n_samples : int, optional
        Expected number of samples (the rows of the matching activations).

    Returns
    -------
    codes : ndarray of int64, shape (n_samples,)
        Label codes in ``0 .. n_classes - 1`` (in sorted order of the original labels).
    n_classes : int
        Number of distinct classes (at least 2).

    Raises
    ------
    PruneInfoError
        If ``y`` is not 1-D, has the wrong length, is not discrete, or holds a single class.
    """
    if isinstance(y, torch.Tensor):
        y = y.detach().cpu().numpy()
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise PruneInfoError(f"labels must be 1-D [n_samples], got shape {tuple(arr.shape)}")
    if n_samples is not None and arr.shape[0] != n_samples:
        raise PruneInfoError(
            f"labels have {arr.shape[0]} samples but the activations have {n_samples}; "
            "pass the labels of the same samples"
        )
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            raise PruneInfoError(
                "labels must be discrete class ids (integers); got non-integer values"
            )
    elif arr.dtype.kind not in "iub":
        raise PruneInfoError(
            f"labels must be integer class ids, got dtype {arr.dtype}; encode them as integers"
        )
    classes, codes = np.unique(arr, return_inverse=True)
    if classes.size < 2:
        raise PruneInfoError(
            "labels hold a single class: information about the class is undefined; "
            "pass samples of at least two classes"
        )
    return codes.astype(np.int64).reshape(-1), int(classes.size)


# --------------------------------------------------------------------------------------------
# copula normalisation
# --------------------------------------------------------------------------------------------


def _copula(arr: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Copula-normalise the columns of a validated 2-D array with random tie breaking."""
    n = arr.shape[0]
    # Sort each column by value, ties ordered by an independent random key per column
    # (np.lexsort: the last key is the primary one).
    keys = rng.random(arr.shape)
    order = np.lexsort((keys, arr), axis=0)
    ranks = np.empty(arr.shape, dtype=np.float64)
    np.put_along_axis(
        ranks, order, np.broadcast_to(np.arange(1, n + 1, dtype=np.float64)[:, None], arr.shape),
        axis=0,
    )
    # Empirical CDF in the open interval (0, 1): rank / (n + 1), then the standard normal
    # inverse CDF (Ince et al. 2017, "copnorm").
    return ndtri(ranks / (n + 1.0))


def copula_normalise(x, seed: int = 0) -> np.ndarray:
    """Copula-normalise each column: ranks mapped to standard normal quantiles.

    Column ``j`` becomes ``ndtri(rank_j / (n + 1))`` with ranks ``1 .. n``. Ties (the many exact
    zeros of ReLU outputs, the repeated values of integer labels) are broken **at random**,
    independently in every column, under ``seed``; breaking them in row order in every column
    would correlate columns that are independent.

    Parameters
    ----------
    x : array-like of shape (n_samples,) or (n_samples, n_variables)
        Samples; numpy arrays and torch tensors are accepted.
    seed : int, default 0
        Seed of the random tie breaking. Data without ties give the same result for every seed.

    Returns
    -------
    ndarray of float64, same shape as ``x``
        Standard-normal marginals with the rank order of ``x``.

    Raises
    ------
    PruneInfoError
        If ``x`` is not numeric, not finite, not 1-D/2-D or has fewer than 2 samples.

    Examples
    --------
    >>> copula_normalise([3.0, 1.0, 2.0]).round(4)
    array([ 0.6745, -0.6745,  0.    ])
    """
    arr = _as_float64(x, "x")
    squeeze = arr.ndim == 1
    arr = _as_samples_by_variables(arr, "x")
    out = _copula(arr, np.random.default_rng(seed))
    return out[:, 0] if squeeze else out


def units_with_label(x, y) -> np.ndarray:
    """Stack unit activations and the class label into one ``[n, units + 1]`` matrix.

    The label becomes the **last** column, as its class code ``0 .. n_classes - 1`` (float64).
    After :func:`copula_normalise` it enters the O-information as one Gaussianised variable whose
    ties (all samples of a class) are broken at random: this is the route of Clauw et al., in
    which the label is one more variable of every multiplet.

    Parameters
    ----------
    x : array-like of shape (n_samples, n_units)
        Unit activations.
    y : array-like of shape (n_samples,)
        Discrete class labels (at least two classes).

    Returns
    -------
    ndarray of float64, shape (n_samples, n_units + 1)
    """
    xs = _as_samples_by_variables(x, "activations")
    codes, _ = encode_labels(y, xs.shape[0])
    return np.concatenate([xs, codes[:, None].astype(np.float64)], axis=1)


def copula_covariance(x, y=None, seed: int = 0) -> np.ndarray:
    """Covariance (``ddof = 1``) of the copula-normalised columns of ``x`` (and the label).

    This is the single matrix from which every O-information of every multiplet is computed: no
    sub-covariance is ever re-estimated from samples.

    Parameters
    ----------
    x : array-like of shape (n_samples, n_variables)
        Unit activations (or any continuous variables).
    y : array-like of shape (n_samples,), optional
        Class labels; when given they are appended as the last variable (see
        :func:`units_with_label`).
    seed : int, default 0
        Seed of the random tie breaking in :func:`copula_normalise`.

    Returns
    -------
    ndarray of float64, shape (d, d)
        ``d = n_variables`` (``+ 1`` with a label).

    Raises
    ------
    PruneInfoError
        If there are not more samples than variables, or the inputs are invalid.
    """
    data = _as_samples_by_variables(x, "activations") if y is None else units_with_label(x, y)
    n, d = data.shape
    if n <= d:
        what = f"{d - 1} units + label" if y is not None else f"{d} variables"
        raise PruneInfoError(
            f"{n} samples for {d} variables ({what}): the Gaussian-copula estimator needs more "
            "samples than variables; pass more samples or fewer units"
        )
    z = _copula(data, np.random.default_rng(seed))
    return np.atleast_2d(np.cov(z, rowvar=False, ddof=1))


# --------------------------------------------------------------------------------------------
# Gaussian entropy with bias correction
# --------------------------------------------------------------------------------------------


def _psi_sum_nats(d: int, n_samples: int) -> float:
    """``sum_{i=1..d} psi((N - i) / 2) / 2`` in nats (0 for ``d = 0``)."""
    if d <= 0:
        return 0.0
    return float(np.sum(psi((n_samples - np.arange(1, d + 1)) / 2.0)) / 2.0)


def entropy_bias(n_variables: int, n_samples: int) -> float:
    """Bias of the plug-in Gaussian entropy, in bits (subtracted by the correction).

    With ``S`` the unbiased sample covariance of ``N`` samples of ``d`` Gaussian variables,
    ``(N - 1) S`` is Wishart with ``N - 1`` degrees of freedom, so
    ``E[log det S] = log det C + d (ln 2 - ln(N - 1)) + sum_{i=1..d} psi((N - i) / 2)``.
    Half of that excess is the bias of ``0.5 log det S`` (Ince et al. 2017, gcmi ``ent_g``):

    ``bias = d * (ln 2 - ln(N - 1)) / 2 + sum_{i=1..d} psi((N - i) / 2) / 2`` (nats).

    Parameters
    ----------
    n_variables : int
        Dimension ``d``.
    n_samples : int
        Sample count ``N`` (must exceed ``d``).

    Returns
    -------
    float
        The bias in bits (negative: the plug-in estimate underestimates the entropy).
    """
    if isinstance(n_variables, bool) or not isinstance(n_variables, (int, np.integer)):
        raise PruneInfoError(f"n_variables must be an integer, got {n_variables!r}")
    d = int(n_variables)
    n = check_n_samples(n_samples, d)
    dterm = (LN2 - math.log(n - 1.0)) / 2.0
    return (d * dterm + _psi_sum_nats(d, n)) / LN2


def _corr_min_eig(c: np.ndarray) -> np.ndarray:
    """Smallest eigenvalue of the correlation matrices of ``c`` ([..., d, d]); 0 if a var is 0."""
    diag = np.diagonal(c, axis1=-2, axis2=-1)
    zero = np.any(diag <= 0, axis=-1)
    sd = np.sqrt(np.where(diag > 0, diag, 1.0))
    r = c / (sd[..., :, None] * sd[..., None, :])
    lam = np.linalg.eigvalsh(r)[..., 0]
    return np.where(zero, 0.0, lam)


def ridge(c: np.ndarray) -> np.ndarray:
    """``C + RIDGE * diag(C)`` (a zero variance gets ``RIDGE`` times the mean variance, or 1)."""
    diag = np.diagonal(c, axis1=-2, axis2=-1).copy()
    mean = diag.mean(axis=-1, keepdims=True)
    fallback = np.where(mean > 0, mean, 1.0)
    diag = np.where(diag > 0, diag, fallback)
    out = c.copy()
    idx = np.arange(c.shape[-1])
    out[..., idx, idx] += RIDGE * diag
    return out


def correlation(c: np.ndarray) -> np.ndarray:
    """Rescale a covariance to unit variances (zero variances are left as they are).

    The O-information is invariant to rescaling each variable (every log-variance enters eq. 1
    as often with ``+`` as with ``-``), so this changes no Omega; it keeps the products of the
    unrolled path (:func:`_omega_unrolled`) far from overflow whatever the units of ``c``.
    """
    diag = np.diag(c)
    sd = np.sqrt(np.where(diag > 0, diag, 1.0))
    out = c / np.outer(sd, sd)
    np.fill_diagonal(out, np.where(diag > 0, 1.0, 0.0))
    return out


def regularise_covariance(cov, *, name: str = "covariance") -> np.ndarray:
    """Return ``cov`` unchanged if it is non-singular, else warn and return it with a ridge.

    Singular means: the smallest eigenvalue of the correlation matrix is below
    :data:`SINGULAR_TOL`, or a variance is zero. The regularised matrix is
    ``C + RIDGE * diag(C)``; see :class:`SingularCovarianceWarning` for what the estimates then
    mean.

    Parameters
    ----------
    cov : array-like of shape (d, d)
        Covariance matrix.
    name : str, default "covariance"
        How the matrix is called in the warning.

    Returns
    -------
    ndarray of float64, shape (d, d)
    """
    c = as_covariance(cov)
    lam = float(_corr_min_eig(c))
    if lam >= SINGULAR_TOL:
        return c
    warnings.warn(
        f"the {name} is singular (smallest correlation eigenvalue {lam:.3g}): some variables "
        "are exact copies or linear combinations of others, or constant; a relative ridge of "
        f"{RIDGE:g} was added (see SingularCovarianceWarning for what the estimates then mean; "
        "drop duplicated or constant units to avoid this)",
        SingularCovarianceWarning,
        stacklevel=3,
    )
    return ridge(c)


def gaussian_entropy(cov, n_samples: int | None = None, *, bias_correct: bool = True):
    """Entropy of a multivariate Gaussian with covariance ``cov``, in bits.

    ``H = 0.5 log det C + d/2 log(2 pi e)`` (nats, converted to bits), minus
    :func:`entropy_bias` when ``bias_correct`` (Ince et al. 2017). Singular matrices give a
    :class:`SingularCovarianceWarning` and the entropy of the ridge-regularised matrix.

    Parameters
    ----------
    cov : array-like of shape (d, d) or (..., d, d)
        One covariance matrix or a batch of them.
    n_samples : int, optional
        Number of samples the covariance was estimated from; required when ``bias_correct``.
    bias_correct : bool, default True
        Subtract the analytic bias of the plug-in estimator.

    Returns
    -------
    float or ndarray of float64
        A float for one matrix, an array of shape ``cov.shape[:-2]`` for a batch.

    Examples
    --------
    >>> round(gaussian_entropy(np.eye(2), bias_correct=False), 4)   # log2(2 pi e)
    4.0942
    """
    c = _as_float64(cov, "cov")
    if c.ndim < 2 or c.shape[-1] != c.shape[-2] or c.shape[-1] < 1:
        raise PruneInfoError(
            f"cov must be [d, d] or a batch [..., d, d], got shape {tuple(c.shape)}"
        )
    d = c.shape[-1]
    if bias_correct:
        if n_samples is None:
            raise PruneInfoError(
                "bias_correct=True needs n_samples (the samples behind the covariance); pass it "
                "or set bias_correct=False"
            )
        n_samples = check_n_samples(n_samples, d)
    single = c.ndim == 2
    c = 0.5 * (c + np.swapaxes(c, -1, -2))
    lam = np.atleast_1d(_corr_min_eig(c))
    bad = lam < SINGULAR_TOL
    if np.any(bad):
        warnings.warn(
            f"{int(bad.sum())} covariance matrix(es) are singular (exact copies, linear "
            f"combinations or constant variables); a relative ridge of {RIDGE:g} was added and "
            "their entropies are finite lower bounds without meaning as measurements",
            SingularCovarianceWarning,
            stacklevel=2,
        )
        c = c.reshape((-1, d, d)).copy()
        c[bad] = ridge(c[bad])
        c = c.reshape(lam.shape + (d, d)) if not single else c[0]
    _, logdet = np.linalg.slogdet(c)
    h = 0.5 * logdet + 0.5 * d * (math.log(2.0 * math.pi) + 1.0)
    h = h / LN2
    if bias_correct:
        assert n_samples is not None  # checked at the top when bias_correct
        h = h - entropy_bias(d, n_samples)
    return float(h) if single else np.asarray(h, dtype=np.float64)


# --------------------------------------------------------------------------------------------
# O-information
# --------------------------------------------------------------------------------------------


def omega_bias_bits(k: int, n_samples: int) -> float:
    """Bias-correction term of the O-information of ``k`` variables, in bits.

    With ``B(d) = d * dterm + S(d)`` the entropy bias of :func:`entropy_bias`,
    ``Omega_corrected = Omega_plugin - [(k - 2) B(k) + k B(1) - k B(k - 1)]``; the ``dterm``
    parts cancel (``(k - 2) k + k - k (k - 1) = 0``) and only the digamma sums ``S`` remain.
    """
    s_k = _psi_sum_nats(k, n_samples)
    s_1 = _psi_sum_nats(1, n_samples)
    s_km1 = _psi_sum_nats(k - 1, n_samples)
    return -((k - 2) * s_k + k * s_1 - k * s_km1) / LN2


def o_information_reference(
    cov, multiplet, n_samples: int | None = None, *, bias_correct: bool = True
) -> float:
    """O-information of one multiplet, straight from eq. 1 (slow reference path).

    Computes every entropy of eq. 1 separately with :func:`gaussian_entropy` on the
    sub-matrices of ``cov``. Use :func:`o_information_batched` for many multiplets; this one
    exists to check it.

    Parameters
    ----------
    cov : array-like of shape (d, d)
        Covariance of the copula-normalised variables (see :func:`copula_covariance`).
    multiplet : sequence of int
        Indices into ``cov`` of the variables of the multiplet (distinct).
    n_samples : int, optional
        Samples behind ``cov``; required when ``bias_correct``.
    bias_correct : bool, default True
        Use bias-corrected entropies.

    Returns
    -------
    float
        Omega in bits (> 0 redundancy, < 0 synergy).
    """
    c = as_covariance(cov)
    idx = _as_multiplets(multiplet, c.shape[0])[0]
    k = idx.size
    if bias_correct:
        n_samples = check_n_samples(n_samples, k)

    def h(sub: np.ndarray) -> float:
        if sub.size == 0:
            return 0.0
        return gaussian_entropy(c[np.ix_(sub, sub)], n_samples, bias_correct=bias_correct)

    omega = (k - 2) * h(idx)
    for j in range(k):
        omega += h(idx[[j]]) - h(np.delete(idx, j))
    return float(omega)


def o_information(x, *, seed: int = 0, bias_correct: bool = True) -> float:
    """O-information of the columns of ``x`` with the Gaussian-copula estimator, in bits.

    The columns are copula-normalised (:func:`copula_normalise`, random tie breaking under
    ``seed``), their covariance estimated once, and eq. 1 evaluated on it.

    Parameters
    ----------
    x : array-like of shape (n_samples, n_variables)
        Samples of the variables (append the label yourself, e.g. with
        :func:`units_with_label`).
    seed : int, default 0
        Seed of the random tie breaking.
    bias_correct : bool, default True
        Use bias-corrected entropies (Ince et al. 2017).

    Returns
    -------
    float
        Omega in bits.
    """
    data = _as_samples_by_variables(x, "x")
    cov = copula_covariance(data, seed=seed)
    cov = regularise_covariance(cov)
    return o_information_reference(
        cov, np.arange(data.shape[1]), data.shape[0], bias_correct=bias_correct
    )


def _as_multiplets(multiplets, n_variables: int) -> np.ndarray:
    """Validate an integer array ``[m, k]`` of distinct in-range indices."""
    if isinstance(multiplets, torch.Tensor):
        multiplets = multiplets.detach().cpu().numpy()
    try:
        arr = np.asarray(multiplets)
    except ValueError:
        raise PruneInfoError(
            "multiplets must be a rectangular integer array [n_multiplets, size]; evaluate "
            "multiplets of different sizes in separate calls"
        ) from None
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] < 1:
        raise PruneInfoError(
            f"multiplets must be an integer array [n_multiplets, size], got shape "
            f"{tuple(arr.shape)}"
        )
    if arr.size and arr.dtype.kind not in "iu":
        if arr.dtype.kind == "f" and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise PruneInfoError(f"multiplets must hold integer indices, got dtype {arr.dtype}")
    arr = arr.astype(np.int64, copy=False)
    k = arr.shape[1]
    if k > n_variables:
        raise PruneInfoError(
            f"multiplets of size {k} are larger than the {n_variables} variables available; "
            f"pass multiplets of at most {n_variables} variables"
        )
    if arr.size and (arr.min() < 0 or arr.max() >= n_variables):
        raise PruneInfoError(
            f"multiplet indices must lie in 0..{n_variables - 1}, got {arr.min()}..{arr.max()}"
        )
    if k > 1 and arr.size:
        srt = np.sort(arr, axis=1)
        rep = np.flatnonzero(np.any(srt[:, 1:] == srt[:, :-1], axis=1))
        if rep.size:
            raise PruneInfoError(
                f"multiplet {rep[0]} repeats an index ({arr[rep[0]].tolist()}); every variable "
                "may appear once per multiplet"
            )
    return arr


def _safe_cholesky(a: torch.Tensor) -> torch.Tensor:
    """Batched Cholesky factor of ``a`` ([m, k, k], float64), ridge-regularising singular rows.

    A matrix is singular when the factorisation fails or a pivot, relative to its variance, is
    below :data:`SINGULAR_TOL` (the conditional variance of a variable given the preceding ones).
    Those rows get ``A + RIDGE * diag(A)`` (and a :class:`SingularCovarianceWarning`).
    """
    low, info = torch.linalg.cholesky_ex(a)
    diag_a = torch.diagonal(a, dim1=-2, dim2=-1)
    piv = torch.diagonal(low, dim1=-2, dim2=-1) ** 2
    rel = piv / torch.where(diag_a > 0, diag_a, torch.ones_like(diag_a))
    bad = (info != 0) | (rel.min(dim=-1).values < SINGULAR_TOL) | (diag_a <= 0).any(dim=-1)
    if bool(bad.any()):
        warnings.warn(
            f"{int(bad.sum())} multiplet covariance(s) are singular (exact copies, linear "
            f"combinations or constant units); a relative ridge of {RIDGE:g} was added (see "
            "SingularCovarianceWarning for what their O-information then means)",
            SingularCovarianceWarning,
            stacklevel=4,
        )
        fixed = torch.from_numpy(ridge(a[bad].numpy()))
        low_fixed, info_fixed = torch.linalg.cholesky_ex(fixed)
        if bool((info_fixed != 0).any()):  # pragma: no cover - a ridge always makes it PD
            raise FloatingPointError("ridge-regularised covariance is still not positive definite")
        low = low.clone()
        low[bad] = low_fixed
    return low


def _omega_torch(cov: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Omega (nats, no bias term) of the multiplets ``idx`` through batched torch linear algebra.

    For ``A`` the sub-covariance of a multiplet, with Cholesky factor ``L`` (``A = L L^T``):

    - ``log det A = 2 sum_i log L_ii``;
    - ``(A^{-1})_jj = sum_i (L^{-1})_ij^2`` since ``A^{-1} = L^{-T} L^{-1}``;
    - ``log det A_{-j} = log det A + log (A^{-1})_jj`` (Schur complement: ``1/(A^{-1})_jj`` is
      the variance of ``Z_j`` given the rest).

    Substituting the Gaussian entropies into eq. 1, the ``log(2 pi e)`` terms cancel
    (``(k - 2) k + k - k (k - 1) = 0``) and

    ``Omega = -log det A + 0.5 sum_j log A_jj - 0.5 sum_j log (A^{-1})_jj`` (nats).
    """
    cov_t = torch.from_numpy(cov)
    it = torch.from_numpy(idx)
    a = cov_t[it[:, :, None], it[:, None, :]]
    low = _safe_cholesky(a)
    logdet = 2.0 * torch.log(torch.diagonal(low, dim1=-2, dim2=-1)).sum(dim=-1)
    eye = torch.eye(idx.shape[1], dtype=torch.float64).expand_as(low)
    low_inv = torch.linalg.solve_triangular(low, eye, upper=False)
    inv_diag = (low_inv * low_inv).sum(dim=-2)
    var = (low * low).sum(dim=-1)  # diag(L L^T): the (possibly ridged) variances
    omega = -logdet + 0.5 * torch.log(var).sum(dim=-1) - 0.5 * torch.log(inv_diag).sum(dim=-1)
    return omega.numpy()


def _omega_unrolled(cov: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Omega (nats, no bias term) of small multiplets, vectorised over multiplets.

    The same formula as :func:`_omega_torch`, but the ``k x k`` Cholesky factorisation and the
    inverse of its factor are unrolled over the (few) matrix entries, each step one numpy
    operation over all multiplets of the chunk. For ``k <= 8`` this is faster than batched
    LAPACK calls and free of thread contention. With ``p_j = L_jj^2`` (the pivots) and
    ``M = L^{-1}``:
    ``Omega = 0.5 log( prod_j A_jj / (prod_j p_j^2 * prod_j (M^T M)_jj) )``.

    Returns
    -------
    omega : ndarray, shape (m,)
        Valid where ``ok``.
    ok : ndarray of bool, shape (m,)
        False where a relative pivot fell below :data:`SINGULAR_TOL` (singular sub-matrix).
    """
    m, k = idx.shape
    cols = [idx[:, i] for i in range(k)]
    diag = [cov[cols[i], cols[i]] for i in range(k)]
    low: dict[tuple[int, int], np.ndarray] = {}
    inv_piv = []
    ok = np.ones(m, dtype=bool)
    num = np.ones(m)  # prod_j A_jj
    den = np.ones(m)  # prod_j p_j^2 * prod_j (A^{-1})_jj
    for j in range(k):  # Cholesky, column by column (Golub & Van Loan, alg. 4.2.1)
        piv = diag[j].copy()
        for p in range(j):
            piv -= low[j, p] * low[j, p]
        good = piv > SINGULAR_TOL * diag[j]
        ok &= good
        piv = np.where(good, piv, 1.0)
        num *= np.where(good, diag[j], 1.0)
        den *= piv * piv
        inv = 1.0 / np.sqrt(piv)
        inv_piv.append(inv)
        for i in range(j + 1, k):
            acc = cov[cols[i], cols[j]]
            for p in range(j):
                acc = acc - low[i, p] * low[j, p]
            low[i, j] = acc * inv
    # M = L^{-1} (lower triangular) by forward substitution, one column j at a time, and
    # (A^{-1})_jj = sum_{i >= j} M_ij^2.
    for j in range(k):
        col = {j: inv_piv[j]}
        inv_diag = inv_piv[j] * inv_piv[j]
        for i in range(j + 1, k):
            acc = low[i, j] * col[j]
            for p in range(j + 1, i):
                acc = acc + low[i, p] * col[p]
            col[i] = -acc * inv_piv[i]
            inv_diag = inv_diag + col[i] * col[i]
        den *= inv_diag
    return 0.5 * np.log(num / den), ok


# Largest multiplet (variables) evaluated by the unrolled numpy path; larger ones go to torch.
_UNROLL_MAX = 8


def omega_chunk(cov: np.ndarray, idx: np.ndarray, bias_bits: float) -> np.ndarray:
    """Omega (bits, bias term added) of the multiplets ``idx`` ([m, k]) from ``cov``.

    Small multiplets go through :func:`_omega_unrolled`; larger ones, and any small one whose
    sub-matrix is singular (then ridge-regularised with a warning), through
    :func:`_omega_torch`.
    """
    if idx.shape[1] > _UNROLL_MAX:
        omega = _omega_torch(cov, idx)
    else:
        omega, ok = _omega_unrolled(cov, idx)
        if not ok.all():
            omega[~ok] = _omega_torch(cov, idx[~ok])
    return omega / LN2 + bias_bits


def o_information_batched(
    cov,
    multiplets,
    n_samples: int | None = None,
    *,
    bias_correct: bool = True,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    check_singular: bool = True,
) -> np.ndarray:
    """O-information of many multiplets at once from one covariance matrix, in bits.

    Each multiplet's sub-covariance is gathered from ``cov`` (never re-estimated from samples)
    and factorised by Cholesky; the entropies of eq. 1 come from its log-determinant, its
    diagonal and the diagonal of its inverse, so that

    ``Omega = -log det A + 0.5 sum_j log A_jj - 0.5 sum_j log (A^{-1})_jj`` (+ bias term).

    Multiplets of at most 8 variables use a Cholesky unrolled over the matrix entries and
    vectorised over multiplets (numpy); larger ones a batched ``torch.linalg.cholesky_ex`` and
    triangular inverse (float64). Multiplets are processed ``chunk_size`` at a time, so memory
    stays bounded by about ``chunk_size * k^2 * 8 * 4`` bytes.

    Parameters
    ----------
    cov : array-like of shape (d, d)
        Covariance of the copula-normalised variables (see :func:`copula_covariance`).
    multiplets : array-like of int, shape (n_multiplets, k)
        Each row lists ``k`` distinct indices into ``cov``.
    n_samples : int, optional
        Samples behind ``cov``; required when ``bias_correct``.
    bias_correct : bool, default True
        Use bias-corrected entropies (Ince et al. 2017); the correction only shifts every
        multiplet of a given size by the same constant.
    chunk_size : int, default 65536
        Multiplets per batch.
    check_singular : bool, default True
        Check ``cov`` once (and ridge-regularise it with a :class:`SingularCovarianceWarning`
        when singular). Callers that already passed it through :func:`regularise_covariance`
        may skip the check.

    Returns
    -------
    ndarray of float64, shape (n_multiplets,)
        Omega in bits (> 0 redundancy-dominated, < 0 synergy-dominated).

    Raises
    ------
    PruneInfoError
        On an invalid covariance, out-of-range or repeated indices, multiplets larger than
        ``d`` or too few samples.

    Examples
    --------
    >>> c = np.array([[1.0, 0.0, 0.7], [0.0, 1.0, 0.7], [0.7, 0.7, 1.0]])   # z ~ x + y
    >>> o_information_batched(c, [[0, 1, 2]], bias_correct=False).round(4)
    array([-1.8505])
    """
    c = as_covariance(cov)
    if check_singular:
        c = regularise_covariance(c)
    idx = _as_multiplets(multiplets, c.shape[0])
    chunk_size = check_chunk_size(chunk_size)
    k = idx.shape[1]
    bias_bits = 0.0
    if bias_correct:
        n_samples = check_n_samples(n_samples, k)
        bias_bits = omega_bias_bits(k, n_samples)
    out = np.empty(idx.shape[0], dtype=np.float64)
    c = np.ascontiguousarray(correlation(c))
    for start in range(0, idx.shape[0], chunk_size):
        block = idx[start : start + chunk_size]
        out[start : start + block.shape[0]] = omega_chunk(c, block, bias_bits)
    return out


# --------------------------------------------------------------------------------------------
# Gaussian-copula mutual information between units and a discrete label
# --------------------------------------------------------------------------------------------


def _entropy_1d_nats(var: np.ndarray, n: np.ndarray | int, bias_correct: bool) -> np.ndarray:
    """Bias-corrected entropy (nats) of 1-D Gaussians with variances ``var`` from ``n`` samples."""
    h = 0.5 * np.log(var) + 0.5 * (math.log(2.0 * math.pi) + 1.0)
    if bias_correct:
        n = np.asarray(n, dtype=np.float64)
        h = h - ((LN2 - np.log(n - 1.0)) / 2.0 + psi((n - 1.0) / 2.0) / 2.0)
    return h


def _labels_and_units(x, y) -> tuple[np.ndarray, np.ndarray, int]:
    xs = _as_samples_by_variables(x, "activations")
    codes, n_classes = encode_labels(y, xs.shape[0])
    counts = np.bincount(codes, minlength=n_classes)
    if counts.min() < 2:
        raise PruneInfoError(
            f"class {int(np.argmin(counts))} has {int(counts.min())} sample(s); every class "
            "needs at least 2 samples for a class-conditional variance (drop rare classes)"
        )
    return xs, codes, n_classes


def gcmi_model_cd(x, y, *, seed: int = 0, bias_correct: bool = True) -> np.ndarray:
    """Gaussian-copula MI between each unit and a discrete label, ANOVA ("model") form, in bits.

    Each unit is copula-normalised over all samples (random ties under ``seed``); the label
    is then modelled as shifting the mean of a Gaussian with a class-specific variance
    (Ince et al. 2017, ``gcmi_model_cd``):

    ``I(X; Y) = H(X) - sum_y p(y) H(X | Y = y)``

    with each entropy the (bias-corrected) 1-D Gaussian entropy of the corresponding samples.
    Vectorised over units.

    Parameters
    ----------
    x : array-like of shape (n_samples, n_units)
        Unit activations.
    y : array-like of shape (n_samples,)
        Discrete class labels (at least two classes, each with at least two samples).
    seed : int, default 0
        Seed of the random tie breaking of the copula normalisation.
    bias_correct : bool, default True
        Bias-correct every entropy with its own sample count.

    Returns
    -------
    ndarray of float64, shape (n_units,)
        MI in bits; about 0 (slightly negative values possible after bias correction) for a
        unit independent of the label, exactly 0 for a constant unit (:func:`_constant`).
    """
    xs, codes, n_classes = _labels_and_units(x, y)
    n = xs.shape[0]
    cx = _copula(xs, np.random.default_rng(seed))
    h_all = _entropy_1d_nats(np.var(cx, axis=0, ddof=1), n, bias_correct)
    h_cond = np.zeros(xs.shape[1])
    for cls in range(n_classes):  # a loop over the (few) classes, vectorised over units
        part = cx[codes == cls]
        h_cond += part.shape[0] / n * _entropy_1d_nats(
            np.var(part, axis=0, ddof=1), part.shape[0], bias_correct
        )
    return np.where(_constant(xs), 0.0, (h_all - h_cond) / LN2)


def gcmi_mixture_cd(x, y, *, seed: int = 0) -> np.ndarray:
    """Gaussian-copula MI between each unit and a discrete label, mixture form, in bits.

    Following Ince et al. (2017, ``gcmi_mixture_cd``): within each class the unit is
    copula-normalised, then shifted and scaled back to the class's robust location (median) and
    robust scale (``1.4826 * MAD``, the Gaussian-consistent median absolute deviation). The
    classes form a Gaussian mixture with weights ``p(y)``; the MI is

    ``I = H(mixture) - sum_y p(y) H(X | Y = y)``,

    with Gaussian class-conditional entropies and the mixture entropy approximated by the
    unscented transform (Huber et al. 2008; for one dimension the sigma points of class ``y``
    are ``m_y +- s_y``): ``H(mixture) ~ -sum_y p(y) * 0.5 * sum_{+-} log p_mix(m_y +- s_y)``.
    No bias correction is applied (as in gcmi). Vectorised over units.

    **Zero robust scale.** A ReLU unit that is exactly 0 for more than half of a class has
    ``MAD = 0`` (and just below half, a tiny MAD that says nothing about the spread). Whenever
    the MAD is 0, or at least a quarter of the class sits exactly at the class minimum or
    maximum (a clipped unit), the scale falls back to ``sqrt(pi / 2) * mean |x - median|``
    (the Gaussian-consistent mean absolute deviation), and when the unit is constant on the
    class to ``1e-6`` times the unit's overall standard deviation (1 if the unit is constant
    everywhere). A class squeezed to such a small scale is
    nearly a point mass: its samples are then almost perfectly identified, and the estimate
    approaches the label entropy contributed by that class - finite, never NaN.

    Parameters
    ----------
    x : array-like of shape (n_samples, n_units)
        Unit activations.
    y : array-like of shape (n_samples,)
        Discrete class labels (at least two classes, each with at least two samples).
    seed : int, default 0
        Seed of the random tie breaking of the within-class copula normalisations.

    Returns
    -------
    ndarray of float64, shape (n_units,)
        MI in bits (about 0 for an independent unit; the unscented approximation may give
        values slightly below 0); exactly 0 for a constant unit (:func:`_constant`).
    """
    xs, codes, n_classes = _labels_and_units(x, y)
    n, n_units = xs.shape
    rng = np.random.default_rng(seed)
    overall_sd = xs.std(axis=0, ddof=1)
    floor = _MIXTURE_SCALE_FLOOR * np.where(overall_sd > 0, overall_sd, 1.0 / _MIXTURE_SCALE_FLOOR)
    weights = np.bincount(codes, minlength=n_classes) / n
    means = np.empty((n_classes, n_units))
    sds = np.empty((n_classes, n_units))
    for cls in range(n_classes):  # a loop over the (few) classes, vectorised over units
        part = xs[codes == cls]
        med = np.median(part, axis=0)
        absdev = np.abs(part - med)
        scale = _MAD_TO_SD * np.median(absdev, axis=0)
        clipped = np.maximum((part == part.min(axis=0)).mean(axis=0),
                             (part == part.max(axis=0)).mean(axis=0))
        use_mad = (scale > 0) & (clipped < _CLIPPED_SHARE)
        scale = np.where(use_mad, scale, _MEANAD_TO_SD * absdev.mean(axis=0))
        scale = np.where(scale > 0, scale, floor)
        fitted = _copula(part, rng) * scale + med
        means[cls] = fitted.mean(axis=0)
        sds[cls] = fitted.std(axis=0, ddof=1)
    # Class-conditional Gaussian entropies (nats): 0.5 log(2 pi e s^2).
    h_cond = np.log(sds) + 0.5 * (math.log(2.0 * math.pi) + 1.0)
    # Sigma points [class c, sign, unit] and their log-density under every class j:
    # log N(p; m_j, s_j) = -0.5 ((p - m_j) / s_j)^2 - log s_j - 0.5 log(2 pi).
    points = means[:, None, :] + np.array([-1.0, 1.0])[None, :, None] * sds[:, None, :]
    z = (points[:, :, None, :] - means[None, None, :, :]) / sds[None, None, :, :]
    loglik = -0.5 * z * z - np.log(sds)[None, None, :, :] - 0.5 * math.log(2.0 * math.pi)
    log_mix = _logsumexp(loglik + np.log(weights)[None, None, :, None], axis=2)  # [c, 2, u]
    h_mix = -np.einsum("c,cu->u", weights, 0.5 * log_mix.sum(axis=1))
    return np.where(_constant(xs), 0.0, (h_mix - weights @ h_cond) / LN2)


def _constant(xs: np.ndarray) -> np.ndarray:
    """Bool [n_units]: units with one value on every sample. A constant unit carries no
    information about anything; the copula (random tie breaking) would turn it into noise, and
    the estimators would score that noise (between -0.02 and +0.02 bits on a layer of dead
    units), so such units score exactly 0."""
    return np.all(xs == xs[:1], axis=0)


def _logsumexp(a: np.ndarray, axis: int) -> np.ndarray:
    top = np.max(a, axis=axis, keepdims=True)
    return np.squeeze(top, axis=axis) + np.log(np.sum(np.exp(a - top), axis=axis))
