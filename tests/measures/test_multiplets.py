"""Multiplet search: exhaustive optimum, greedy and beam growth, synergy order, edge cases."""

import itertools
import json
import math
import warnings

import numpy as np
import pytest

from prune_info.errors import PruneInfoError
from prune_info.measures.gaussian import (
    SingularCovarianceWarning,
    copula_covariance,
    o_information_batched,
    o_information_reference,
)
from prune_info.measures.multiplets import (
    MultipletSearch,
    default_beam_width,
    default_max_exhaustive,
    iter_combinations,
    search_multiplets,
    search_multiplets_covariance,
)


def _planted(n=4000, n_units=8, seed=0):
    """Units 1 and 2 are synergistic about the label (it is a quantised sum of both);
    units 3 and 4 are noisy copies of one driver of the label (redundant)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, n_units))
    driver = rng.standard_normal(n)
    x[:, 3] = driver + 0.3 * rng.standard_normal(n)
    x[:, 4] = driver + 0.3 * rng.standard_normal(n)
    s = x[:, 1] + x[:, 2] + 0.5 * driver + 0.2 * rng.standard_normal(n)
    y = np.digitize(s, [-1.0, 0.0, 1.0])
    return x, y


def _brute_force(cov, n_units, k, n_samples):
    """Every multiplet of k units + label through the slow one-at-a-time path."""
    label = n_units
    best_min, best_max = (math.inf, None), (-math.inf, None)
    for units in itertools.combinations(range(n_units), k):
        omega = o_information_reference(cov, list(units) + [label], n_samples)
        if omega < best_min[0]:
            best_min = (omega, units)
        if omega > best_max[0]:
            best_max = (omega, units)
    return best_min, best_max


def test_iter_combinations_matches_itertools_in_order_and_chunks():
    for n, k, chunk in [(10, 3, 7), (12, 4, 1000), (5, 5, 2), (7, 1, 3), (9, 2, 1)]:
        chunks = list(iter_combinations(n, k, chunk))
        assert all(c.shape[0] == chunk for c in chunks[:-1])
        got = np.concatenate(chunks)
        np.testing.assert_array_equal(got, np.array(list(itertools.combinations(range(n), k))))


def test_exhaustive_search_finds_the_planted_synergistic_pair_and_brute_force_agrees():
    x, y = _planted()
    res = search_multiplets(x, y, max_exhaustive=4, max_size=4, seed=0)
    assert res.sizes[2].synergy_units == (1, 2)
    assert res.sizes[2].synergy_omega < -0.2
    assert res.sizes[2].redundancy_units == (3, 4)
    assert res.sizes[2].redundancy_omega > 0.03
    cov = copula_covariance(x, y, seed=0)
    for k in (2, 3, 4):
        (lo, lo_units), (hi, hi_units) = _brute_force(cov, 8, k, x.shape[0])
        assert res.sizes[k].synergy_units == lo_units
        assert res.sizes[k].synergy_omega == pytest.approx(lo, abs=1e-10)
        assert res.sizes[k].redundancy_units == hi_units
        assert res.sizes[k].redundancy_omega == pytest.approx(hi, abs=1e-10)
        assert res.sizes[k].synergy_method == "exhaustive"


def test_beam_as_wide_as_every_level_is_exhaustive():
    x, y = _planted(n=3000, n_units=7, seed=1)
    res = search_multiplets(x, y, max_exhaustive=2, beam_width=35)  # C(7, k) <= 35
    cov = copula_covariance(x, y, seed=0)
    for k in range(3, 8):
        (lo, lo_units), (hi, hi_units) = _brute_force(cov, 7, k, 3000)
        r = res.sizes[k]
        assert r.beam_synergy_omega == pytest.approx(lo, abs=1e-10)
        assert r.beam_redundancy_omega == pytest.approx(hi, abs=1e-10)
        assert r.synergy_omega == pytest.approx(lo, abs=1e-10)
        assert r.synergy_units == lo_units
        assert r.greedy_synergy_omega >= lo - 1e-10  # greedy can only be worse
        assert r.greedy_redundancy_omega <= hi + 1e-10
        assert r.synergy_method in ("greedy", "beam")


def test_greedy_grows_the_best_multiplet_one_unit_at_a_time():
    x, y = _planted(n_units=10, seed=2)
    res = search_multiplets(x, y, max_exhaustive=3, beam_width=0)
    assert sorted(res.sizes) == list(range(2, 11))
    for k in range(4, 11):
        prev, cur = set(res.sizes[k - 1].synergy_units), set(res.sizes[k].synergy_units)
        assert prev < cur and len(cur) == k
        assert res.sizes[k].synergy_method == "greedy"
        assert res.sizes[k].beam_synergy_omega is None
    # The reported value is the O-information of the reported multiplet.
    cov = copula_covariance(x, y, seed=0)
    for k in (3, 6, 10):
        units = list(res.sizes[k].synergy_units) + [10]
        assert res.sizes[k].synergy_omega == pytest.approx(
            o_information_reference(cov, units, x.shape[0]), abs=1e-10
        )


def test_synergy_order_starts_with_the_planted_pair_and_ranks_every_unit():
    x, y = _planted(n_units=10, seed=3)
    res = search_multiplets(x, y, max_exhaustive=2)
    assert set(res.synergy_order[:2]) == {1, 2}
    assert sorted(res.synergy_order) == list(range(10))
    scores = res.synergy_scores()
    assert scores.shape == (10,)
    assert set(np.argsort(-scores)[:2]) == {1, 2}
    assert sorted(scores) == list(range(1, 11))


def test_partial_search_scores_unreached_units_zero():
    x, y = _planted(n_units=10, seed=3)
    res = search_multiplets(x, y, max_exhaustive=2, max_size=4)
    assert res.synergy_order.size == 4 and max(res.sizes) == 4
    assert np.count_nonzero(res.synergy_scores()) == 4


def test_label_position_in_the_covariance_does_not_matter():
    x, y = _planted(n_units=6, seed=4)
    cov = copula_covariance(x, y, seed=0)
    perm = [6, 0, 1, 2, 3, 4, 5]
    a = search_multiplets_covariance(cov, x.shape[0], max_exhaustive=3)
    b = search_multiplets_covariance(cov[np.ix_(perm, perm)], x.shape[0], label_index=0,
                                     max_exhaustive=3)
    for k in a.sizes:
        assert a.sizes[k].synergy_units == b.sizes[k].synergy_units
        assert a.sizes[k].synergy_omega == pytest.approx(b.sizes[k].synergy_omega, abs=1e-12)


def test_counts_and_defaults():
    assert default_max_exhaustive(20) == 6 and default_max_exhaustive(40) == 6
    assert default_max_exhaustive(41) == 4 and default_max_exhaustive(3) == 3
    assert default_beam_width(40) == 0 and default_beam_width(100) > 0
    x, y = _planted(n_units=9, seed=5)
    res = search_multiplets(x, y, max_exhaustive=3, beam_width=0)
    exhaustive = sum(math.comb(9, k) for k in (2, 3))
    greedy = 2 * sum(9 - k for k in range(3, 9))  # candidates at each step, both directions
    loo = 3  # leave-one-out ordering of the seed
    assert res.n_evaluated == exhaustive + greedy + loo


def test_result_is_json_ready():
    x, y = _planted(n_units=5, seed=6)
    res = search_multiplets(x, y, layer="fc1")
    assert isinstance(res, MultipletSearch)
    data = json.loads(json.dumps(res.to_dict()))
    assert data["format"].startswith("prune-info/multiplets/")
    assert data["layer"] == "fc1" and len(data["sizes"]) == 4


def test_duplicated_unit_warns_and_search_is_finite():
    x, y = _planted(n_units=6, seed=7)
    x = np.c_[x, x[:, 1]]  # an exact copy
    with pytest.warns(SingularCovarianceWarning):
        res = search_multiplets(x, y, max_exhaustive=3)
    for r in res.sizes.values():
        assert np.isfinite(r.synergy_omega) and np.isfinite(r.redundancy_omega)


def test_search_results_do_not_depend_on_the_chunk_size():
    x, y = _planted(n_units=9, seed=8)
    a = search_multiplets(x, y, max_exhaustive=4, chunk_size=7, beam_width=3)
    b = search_multiplets(x, y, max_exhaustive=4, chunk_size=100000, beam_width=3)
    assert a.to_dict()["sizes"] == b.to_dict()["sizes"]


def test_full_search_of_a_wide_layer_is_fast_enough():
    # 60 units, exhaustive to 3 (36k multiplets), greedy to 60 with a beam of 4.
    rng = np.random.default_rng(9)
    x = rng.standard_normal((3000, 60))
    y = rng.integers(0, 10, 3000)
    res = search_multiplets(x, y, max_exhaustive=3, beam_width=4)
    assert res.seconds < 15
    assert len(res.sizes) == 59


# --------------------------------------------------------------------------------------------
# errors a user can cause
# --------------------------------------------------------------------------------------------


def test_multiplet_size_larger_than_the_layer_is_a_clear_error():
    x, y = _planted(n_units=5, seed=10)
    with pytest.raises(PruneInfoError, match="larger than the layer"):
        search_multiplets(x, y, max_exhaustive=6)
    with pytest.raises(PruneInfoError, match="larger than the layer"):
        search_multiplets(x, y, max_size=6)
    with pytest.raises(PruneInfoError, match="exceeds max_size"):
        search_multiplets(x, y, max_exhaustive=4, max_size=3)
    with pytest.raises(PruneInfoError, match="at least 2"):
        search_multiplets(x, y, max_exhaustive=1)


def test_fewer_samples_than_variables_is_a_clear_error():
    rng = np.random.default_rng(11)
    with pytest.raises(PruneInfoError, match="more samples than variables"):
        search_multiplets(rng.standard_normal((6, 8)), np.arange(6) % 2)


def test_single_class_label_is_a_clear_error():
    rng = np.random.default_rng(12)
    with pytest.raises(PruneInfoError, match="single class"):
        search_multiplets(rng.standard_normal((100, 4)), np.ones(100, dtype=int))


def test_other_bad_arguments_are_clear_errors():
    x, y = _planted(n_units=5, seed=13)
    with pytest.raises(PruneInfoError, match="beam_width"):
        search_multiplets(x, y, beam_width=-1)
    with pytest.raises(PruneInfoError, match="chunk_size"):
        search_multiplets(x, y, chunk_size=0)
    with pytest.raises(PruneInfoError, match="at least 2 units"):
        search_multiplets(x[:, :1], y)
    with pytest.raises(PruneInfoError, match="lower max_exhaustive"):
        search_multiplets_covariance(np.eye(301), 10000, max_exhaustive=6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        o_information_batched(np.eye(3), [[0, 1, 2]], 10)  # a clean matrix does not warn
