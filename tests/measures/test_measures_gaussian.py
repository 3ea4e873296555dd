"""Gaussian-copula estimators: reference values, behaviour, batched path, edge cases."""

import itertools
import math
import warnings

import numpy as np
import pytest
import torch
from scipy.special import multigammaln, ndtri
from scipy.stats import multivariate_normal, rankdata

from prune_info.errors import PruneInfoError
from prune_info.measures.gaussian import (
    SingularCovarianceWarning,
    copula_covariance,
    copula_normalise,
    encode_labels,
    entropy_bias,
    gaussian_entropy,
    gcmi_mixture_cd,
    gcmi_model_cd,
    o_information,
    o_information_batched,
    o_information_reference,
    units_with_label,
)

# --------------------------------------------------------------------------------------------
# reference values of the public gcmi implementation (ranks / (n + 1), ddof = 1, Ince et al.
# bias correction)
# --------------------------------------------------------------------------------------------


def test_reference_o_information_of_four_correlated_columns():
    np.random.seed(0)
    m = np.array([[1, .5, .3, .2], [0, 1, .4, .1], [0, 0, 1, .6], [0, 0, 0, 1]])
    x = np.random.randn(10000, 4) @ m
    assert o_information(x) == pytest.approx(0.0567636818, abs=1e-6)


def test_reference_o_information_of_a_sum_is_synergistic():
    np.random.seed(0)
    e = np.random.randn(10000, 3)
    x = np.c_[e[:, 0], e[:, 1], e[:, 0] + e[:, 1] + 0.3 * e[:, 2]]
    assert o_information(x) == pytest.approx(-1.3175019266, abs=1e-6)


def test_reference_gcmi_model_form():
    np.random.seed(0)
    y = np.repeat(np.arange(4), 2500)
    x = np.random.randn(10000) + 0.5 * y
    assert gcmi_model_cd(x[:, None], y)[0] == pytest.approx(0.1962861746, abs=1e-6)


def test_reference_values_do_not_depend_on_the_tie_breaking_seed():
    np.random.seed(0)
    e = np.random.randn(10000, 3)
    x = np.c_[e[:, 0], e[:, 1], e[:, 0] + e[:, 1] + 0.3 * e[:, 2]]
    assert o_information(x, seed=123) == pytest.approx(o_information(x, seed=0), abs=1e-12)


# --------------------------------------------------------------------------------------------
# behaviour
# --------------------------------------------------------------------------------------------


def test_copies_of_a_variable_are_redundant():
    rng = np.random.default_rng(1)
    a, b, c = rng.standard_normal((3, 5000))
    omega = o_information(np.c_[a, a + 0.2 * b, a + 0.2 * c])
    assert omega > 0.5


def test_sum_of_independent_variables_is_synergistic():
    rng = np.random.default_rng(2)
    a, b, c = rng.standard_normal((3, 5000))
    omega = o_information(np.c_[a, b, c, a + b + c])
    assert omega < -0.5


def test_independent_variables_have_zero_o_information():
    rng = np.random.default_rng(3)
    assert abs(o_information(rng.standard_normal((20000, 4)))) < 2e-3


def _random_covariance(d, seed):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((4 * d, d)) @ rng.standard_normal((d, d))
    return np.cov(a, rowvar=False)


@pytest.mark.parametrize("bias_correct", [True, False])
def test_batched_path_equals_one_at_a_time_path(bias_correct):
    cov = _random_covariance(12, seed=4)
    rng = np.random.default_rng(5)
    for k in range(1, 12):  # k <= 8: unrolled numpy path; k > 8: batched torch path
        mult = np.array([rng.choice(12, size=k, replace=False) for _ in range(40)])
        fast = o_information_batched(cov, mult, 500, bias_correct=bias_correct, chunk_size=7)
        slow = [o_information_reference(cov, m, 500, bias_correct=bias_correct) for m in mult]
        np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-10)


def test_batched_path_accepts_torch_and_is_order_invariant():
    cov = _random_covariance(6, seed=6)
    mult = np.array(list(itertools.combinations(range(6), 4)))
    base = o_information_batched(cov, mult, 100)
    perm = o_information_batched(torch.from_numpy(cov), torch.from_numpy(mult[:, ::-1].copy()),
                                 100)
    np.testing.assert_allclose(base, perm, rtol=0, atol=1e-12)


def test_o_information_of_one_or_two_variables_is_zero():
    cov = _random_covariance(4, seed=7)
    np.testing.assert_allclose(o_information_batched(cov, [[0], [3]], 50), 0, atol=1e-12)
    np.testing.assert_allclose(o_information_batched(cov, [[0, 1], [2, 3]], 50), 0, atol=1e-12)


def test_bias_corrected_entropy_matches_the_wishart_expectation():
    # Independent computation: E[log det S] - log det C = d ln 2 - d ln(N - 1) + psi_d((N - 1)/2)
    # with psi_d the multivariate digamma, i.e. the derivative of scipy's multigammaln.
    for d, n in [(1, 10), (3, 20), (7, 1000)]:
        a, h = (n - 1) / 2.0, 1e-4
        psi_d = (multigammaln(a + h, d) - multigammaln(a - h, d)) / (2 * h)
        expected = 0.5 * (d * math.log(2) - d * math.log(n - 1) + psi_d) / math.log(2)
        assert entropy_bias(d, n) == pytest.approx(expected, abs=1e-7)


def test_bias_corrected_entropy_is_unbiased_and_plugin_is_not():
    rng = np.random.default_rng(8)
    d, n, reps = 3, 20, 4000
    cov = _random_covariance(d, seed=9)
    true = multivariate_normal(cov=cov).entropy() / math.log(2)
    chol = np.linalg.cholesky(cov)
    samples = rng.standard_normal((reps, n, d)) @ chol.T
    centred = samples - samples.mean(axis=1, keepdims=True)
    covs = np.einsum("rni,rnj->rij", centred, centred) / (n - 1)
    corrected = gaussian_entropy(covs, n).mean()
    plugin = gaussian_entropy(covs, bias_correct=False).mean()
    assert corrected == pytest.approx(true, abs=0.02)
    assert plugin < true - 0.15


def test_gaussian_entropy_of_identity():
    assert gaussian_entropy(np.eye(3), bias_correct=False) == pytest.approx(
        1.5 * math.log2(2 * math.pi * math.e), abs=1e-12
    )
    assert gaussian_entropy(np.eye(3), 100) == pytest.approx(
        1.5 * math.log2(2 * math.pi * math.e) - entropy_bias(3, 100), abs=1e-12
    )


def test_copula_normalise_gives_normal_quantiles_of_the_ranks():
    x = np.array([[3.0, 10.0], [1.0, 30.0], [2.0, 20.0], [5.0, 0.0]])
    z = copula_normalise(x)
    np.testing.assert_allclose(z[:, 0], ndtri(np.array([3, 1, 2, 4]) / 5.0))
    np.testing.assert_allclose(z[:, 1], ndtri(np.array([2, 4, 3, 1]) / 5.0))


def test_copula_normalise_breaks_ties_at_random_per_column_under_a_seed():
    x = np.zeros((1000, 2))
    z1, z2 = copula_normalise(x, seed=1), copula_normalise(x, seed=1)
    np.testing.assert_array_equal(z1, z2)
    assert not np.array_equal(z1, copula_normalise(x, seed=2))
    assert not np.array_equal(z1[:, 0], z1[:, 1])  # independent permutation per column
    assert abs(np.corrcoef(z1.T)[0, 1]) < 0.1
    np.testing.assert_allclose(np.sort(z1[:, 0]), ndtri(np.arange(1, 1001) / 1001.0))


def test_random_tie_breaking_does_not_manufacture_information():
    rng = np.random.default_rng(1)
    n = 8000
    x = np.maximum(rng.standard_normal((n, 2)) - 0.2533, 0)  # about 60 % exact zeros
    assert np.all((x == 0).mean(axis=0) > 0.58)
    y = np.repeat(np.arange(4), n // 4)  # label sorted by row, independent of x
    cov = copula_covariance(x, y, seed=3)
    omega = o_information_batched(cov, [[0, 1, 2]], n)[0]
    mi = gcmi_model_cd(x, y)
    assert abs(omega) < 1e-3
    assert np.all(np.abs(mi) < 5e-3)
    assert np.all(np.abs(gcmi_mixture_cd(x, y)) < 5e-3)
    # Row-order tie breaking (the same in every column) invents redundancy and class info.
    data = units_with_label(x, y)
    z = ndtri(rankdata(data, method="ordinal", axis=0) / (n + 1))
    omega_row = o_information_batched(np.cov(z, rowvar=False), [[0, 1, 2]], n)[0]
    assert omega_row > 10 * max(abs(omega), 1e-4)
    z_units = np.c_[z[:, :2]]
    mi_row = gcmi_model_cd(z_units, y)  # z has no ties left: its copula is itself
    assert np.all(mi_row > 0.1)


def test_gcmi_model_form_is_positive_for_dependence_and_about_zero_for_independence():
    rng = np.random.default_rng(10)
    y = rng.integers(0, 5, 6000)
    x = rng.standard_normal((6000, 30))
    x[:, 0] += y
    mi = gcmi_model_cd(x, y)
    assert mi[0] > 0.5
    assert np.all(np.abs(mi[1:]) < 5e-3)
    assert abs(mi[1:].mean()) < 1e-3


def test_gcmi_mixture_form_agrees_roughly_with_model_form():
    np.random.seed(0)
    y = np.repeat(np.arange(4), 2500)
    x = np.random.randn(10000) + 0.5 * y
    mixture = gcmi_mixture_cd(x[:, None], y)[0]
    assert mixture == pytest.approx(0.196, abs=0.02)


def test_gcmi_mixture_form_is_finite_when_a_unit_is_zero_for_most_of_a_class():
    rng = np.random.default_rng(11)
    n = 4000
    y = rng.integers(0, 4, n)
    x = np.maximum(rng.standard_normal((n, 4)) + 0.3 * y[:, None], 0)
    x[y == 0, 1] = 0.0                          # constant on a class
    x[(y == 1) & (rng.random(n) < 0.8), 2] = 0  # zero for 80 % of a class (MAD = 0)
    x[:, 3] = 0.0                               # dead unit
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mi = gcmi_mixture_cd(x, y)
    assert np.all(np.isfinite(mi))
    assert mi[3] == pytest.approx(0.0, abs=1e-6)
    assert mi[1] > mi[0] > 0
    assert mi[1] <= 2.0 + 1e-6  # bounded by H(Y) = 2 bits
    assert np.all(np.isfinite(gcmi_model_cd(x, y)))


# --------------------------------------------------------------------------------------------
# singular covariances
# --------------------------------------------------------------------------------------------


def test_duplicated_unit_warns_and_gives_the_finite_limit():
    rng = np.random.default_rng(12)
    x = rng.standard_normal((3000, 3))
    x = np.c_[x, x[:, 0]]  # exact duplicate of unit 0, no ties: identical copula columns
    y = (x[:, 0] > 0).astype(int)
    cov = copula_covariance(x, y)
    mult = np.array([[0, 3, 4], [1, 2, 4], [0, 1, 4]])
    with pytest.warns(SingularCovarianceWarning):
        omega = o_information_batched(cov, mult, 3000, bias_correct=False)
    assert np.all(np.isfinite(omega))
    # The ridge terms cancel: Omega(a, copy of a, y) = I(a; y) (Gaussian MI from cov).
    sub = cov[np.ix_([0, 4], [0, 4])]
    mi = 0.5 * math.log2(sub[0, 0] * sub[1, 1] / np.linalg.det(sub))
    assert omega[0] == pytest.approx(mi, abs=1e-6)
    assert mi > 0.3
    # Multiplets without the copy are unaffected (same matrix without the copy's row/column).
    keep = [0, 1, 2, 4]
    clean = o_information_batched(cov[np.ix_(keep, keep)], [[0, 1, 3], [1, 2, 3]], 3000,
                                  bias_correct=False)
    np.testing.assert_allclose(omega[[2, 1]], clean[[0, 1]], atol=1e-6)


def test_exact_linear_combination_gives_finite_strong_synergy():
    rng = np.random.default_rng(13)
    a, b = rng.standard_normal((2, 1000))
    cov = np.cov(np.c_[a, b, a + b], rowvar=False)
    with pytest.warns(SingularCovarianceWarning):
        omega = o_information_batched(cov, [[0, 1, 2]], 1000)
    assert np.isfinite(omega[0]) and omega[0] < -10


def test_constant_variable_in_a_covariance_warns_and_is_finite():
    cov = np.diag([1.0, 1.0, 0.0])
    cov[0, 1] = cov[1, 0] = 0.5
    with pytest.warns(SingularCovarianceWarning):
        omega = o_information_batched(cov, [[0, 1, 2]], 100)
    assert np.all(np.isfinite(omega))
    with pytest.warns(SingularCovarianceWarning):
        h = gaussian_entropy(np.ones((2, 2)), 100)
    assert np.isfinite(h)


def test_singular_check_can_be_skipped_but_batched_path_still_catches_it():
    cov = np.ones((3, 3))
    with pytest.warns(SingularCovarianceWarning):
        omega = o_information_batched(cov, [[0, 1, 2]], 100, check_singular=False)
    assert np.all(np.isfinite(omega))


# --------------------------------------------------------------------------------------------
# errors a user can cause
# --------------------------------------------------------------------------------------------


def test_fewer_samples_than_variables_is_a_clear_error():
    with pytest.raises(PruneInfoError, match="more samples than variables"):
        copula_covariance(np.random.default_rng(0).standard_normal((5, 8)))
    with pytest.raises(PruneInfoError, match="more samples than variables"):
        o_information_batched(np.eye(4), [[0, 1, 2, 3]], 3)
    with pytest.raises(PruneInfoError, match="more samples"):
        entropy_bias(5, 5)


def test_multiplet_larger_than_the_variables_is_a_clear_error():
    with pytest.raises(PruneInfoError, match="larger than the 3 variables"):
        o_information_batched(np.eye(3), [[0, 1, 2, 0]], 100)


def test_bad_multiplets_are_clear_errors():
    with pytest.raises(PruneInfoError, match="repeats an index"):
        o_information_batched(np.eye(4), [[0, 1, 1]], 100)
    with pytest.raises(PruneInfoError, match="must lie in 0..3"):
        o_information_batched(np.eye(4), [[0, 1, 4]], 100)
    with pytest.raises(PruneInfoError, match="n_samples"):
        o_information_batched(np.eye(4), [[0, 1, 2]])


def test_single_class_label_is_a_clear_error():
    x = np.random.default_rng(0).standard_normal((100, 3))
    y = np.zeros(100, dtype=int)
    for call in (lambda: gcmi_model_cd(x, y), lambda: gcmi_mixture_cd(x, y),
                 lambda: copula_covariance(x, y), lambda: encode_labels(y)):
        with pytest.raises(PruneInfoError, match="single class"):
            call()


def test_invalid_inputs_are_clear_errors():
    x = np.random.default_rng(0).standard_normal((100, 3))
    bad = x.copy()
    bad[3, 1] = np.nan
    with pytest.raises(PruneInfoError, match="NaN"):
        copula_normalise(bad)
    with pytest.raises(PruneInfoError, match="same samples"):
        gcmi_model_cd(x, np.arange(99) % 2)
    with pytest.raises(PruneInfoError, match="discrete"):
        gcmi_model_cd(x, np.linspace(0, 1, 100))
    with pytest.raises(PruneInfoError, match="symmetric"):
        o_information_batched(np.triu(np.ones((3, 3))), [[0, 1, 2]], 100)
    with pytest.raises(PruneInfoError, match="at least 2 samples"):
        gcmi_model_cd(x[:5], np.array([0, 0, 0, 0, 1]))


def test_o_information_does_not_depend_on_the_units_of_the_covariance():
    cov = _random_covariance(8, seed=14)
    scale = np.diag(10.0 ** np.array([-40, -20, 0, 20, 40, 60, -60, 5]))
    mult = np.array(list(itertools.combinations(range(8), 7)))
    np.testing.assert_allclose(o_information_batched(scale @ cov @ scale, mult, 100),
                               o_information_batched(cov, mult, 100), rtol=0, atol=1e-9)
