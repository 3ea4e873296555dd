"""Tests for prune_info.measures.discrete: quantisers, count tables and the measures of eqs. 2-5."""

import doctest
import warnings
from collections import Counter
from math import log2

import numpy as np
import pytest
import torch

from prune_info.errors import PruneInfoError
from prune_info.measures import discrete
from prune_info.measures.discrete import (
    CountTable,
    bin_edges,
    default_threshold,
    digitize,
    entropy,
    kl_selectivity,
    mutual_information,
    specific_information,
    threshold_quantise,
)


def table(*units):
    """A count tensor [units, bins, classes] from nested lists, one [bins][classes] per unit."""
    return torch.tensor(units, dtype=torch.int64)


def brute_force(bins, labels, n_classes):
    """Entropy, mutual information and spectrum of one unit, straight from the definitions."""
    n = len(labels)
    joint = Counter(zip(bins, labels))
    count_t, count_y = Counter(bins), Counter(labels)
    h = -sum(c / n * log2(c / n) for c in count_t.values())
    mi = sum(
        c / n * log2((c / n) / ((count_t[t] / n) * (count_y[y] / n))) for (t, y), c in joint.items()
    )
    spectrum = []
    for y in range(n_classes):
        d = 0.0
        for t in count_t:
            p_t_given_y = joint[(t, y)] / count_y[y]
            if p_t_given_y > 0:
                d += p_t_given_y * log2(p_t_given_y / (count_t[t] / n))
        spectrum.append(d)
    return h, mi, spectrum


def random_bins(seed, n_samples, n_units, n_bins, n_classes):
    """Random bin ids, some units driven by the label, plus a constant unit and an empty bin."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n_samples) % n_classes)  # every class present
    noise = rng.integers(0, n_bins, size=(n_samples, n_units))
    strength = np.linspace(0.0, 0.9, n_units)
    driven = rng.random((n_samples, n_units)) < strength
    bins = np.where(driven, (labels % n_bins)[:, None], noise)
    bins[:, 0] = 1  # constant unit
    bins[:, 1] = np.minimum(bins[:, 1], n_bins - 2)  # last bin never used
    return bins, labels


def random_counts(seed, n_units=200, n_bins=4, n_classes=5):
    """Random sparse count tables plus constant and exactly independent units."""
    gen = torch.Generator().manual_seed(seed)
    counts = torch.randint(0, 8, (n_units, n_bins, n_classes), generator=gen)
    counts *= torch.rand(counts.shape, generator=gen) < 0.5  # many empty cells
    counts[:, 0, :] += 1  # every class present
    constant = torch.zeros(1, n_bins, n_classes, dtype=torch.int64)
    constant[0, 2] = torch.tensor([3, 1, 4, 1, 5])
    independent = torch.outer(torch.tensor([1, 2, 0, 3]), torch.tensor([2, 1, 1, 3, 2]))[None]
    return torch.cat([counts, constant, independent])


# ------------------------------------------------------------------------------------------
# Quantisers
# ------------------------------------------------------------------------------------------


def test_default_threshold_follows_the_paper():
    assert default_threshold("relu") == 0.0
    assert default_threshold("Tanh") == 0.0
    assert default_threshold("sigmoid") == 0.5


def test_default_threshold_rejects_unknown_activation():
    with pytest.raises(PruneInfoError, match="unknown activation 'softplus'.*fix"):
        default_threshold("softplus")


def test_threshold_quantise_puts_values_above_threshold_in_bin_one():
    acts = torch.tensor([[-1.0, 0.2], [0.0, 0.5], [0.5, 0.7], [2.0, -3.0]])
    bins = threshold_quantise(acts, 0.0)
    assert bins.dtype == torch.int64
    assert bins.tolist() == [[0, 1], [0, 1], [1, 1], [1, 0]]
    assert threshold_quantise(acts, 0.5).tolist() == [[0, 0], [0, 0], [0, 1], [1, 0]]
    per_unit = threshold_quantise(acts, torch.tensor([0.0, 0.5]))
    assert per_unit.tolist() == [[0, 0], [0, 0], [1, 1], [1, 0]]


def test_threshold_quantise_accepts_numpy():
    assert threshold_quantise(np.array([[0.4], [0.6]]), 0.5).tolist() == [[0], [1]]


def test_digitize_with_one_edge_equals_threshold_quantise():
    acts = torch.randn(300, 4, generator=torch.Generator().manual_seed(0)).round(decimals=1)
    edges = torch.full((4, 1), 0.5)  # some values sit exactly on the edge
    assert (acts == 0.5).any()
    assert torch.equal(digitize(acts, edges), threshold_quantise(acts, 0.5))


def test_uniform_edges_split_the_range_evenly():
    acts = torch.stack([torch.arange(9.0), torch.arange(9.0) * 10 - 40], dim=1)
    edges = bin_edges(acts, bins=4)
    assert edges.dtype == torch.float64
    assert edges.tolist() == [[2.0, 4.0, 6.0], [-20.0, 0.0, 20.0]]
    # A value on an edge falls in the lower bin.
    assert digitize(acts, edges)[:, 0].tolist() == [0, 0, 0, 1, 1, 2, 2, 3, 3]
    # Values outside the reference range fall in the end bins.
    outside = torch.tensor([[-100.0, -100.0], [100.0, 100.0]])
    assert digitize(outside, edges).tolist() == [[0, 0], [3, 3]]


@pytest.mark.parametrize("bins", [2, 3, 4, 7])
def test_quantile_edges_give_equal_counts(bins):
    acts = torch.randn(1000, 5, generator=torch.Generator().manual_seed(bins))
    edges = bin_edges(acts, bins, scheme="quantile")
    expected = np.quantile(acts.double().numpy(), np.arange(1, bins) / bins, axis=0,
                           method="inverted_cdf").T
    np.testing.assert_array_equal(edges.numpy(), expected)
    ids = digitize(acts, edges)
    for unit in range(5):
        counts = torch.bincount(ids[:, unit], minlength=bins)
        assert counts.max() - counts.min() <= 1
        assert counts.sum() == 1000


@pytest.mark.parametrize("scheme", ["uniform", "quantile"])
def test_constant_unit_has_zero_entropy_without_warnings(scheme):
    gen = torch.Generator().manual_seed(1)
    acts = torch.randn(200, 3, generator=gen)
    acts[:, 0] = 0.0  # a dead ReLU unit
    labels = torch.arange(200) % 5
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ids = digitize(acts, bin_edges(acts, 4, scheme=scheme))
        counts = CountTable.from_bins(ids, labels, n_bins=4, n_classes=5)
        h, mi, kl = entropy(counts), mutual_information(counts), kl_selectivity(counts)
    assert h[0] == 0.0 and mi[0] == 0.0 and kl.values[0] == 0.0
    assert torch.isfinite(h).all() and torch.isfinite(mi).all() and (h[1:] > 1.0).all()


# ------------------------------------------------------------------------------------------
# Count tables
# ------------------------------------------------------------------------------------------


def test_count_table_counts_each_unit_bin_and_class():
    bins = torch.tensor([[0, 1], [1, 1], [0, 0], [0, 1]])
    labels = torch.tensor([0, 1, 2, 2])
    counts = CountTable.from_bins(bins, labels, n_bins=2, n_classes=3)
    assert counts.counts.dtype == torch.int64
    assert counts.counts.tolist() == [
        [[1, 0, 2], [0, 1, 0]],
        [[0, 0, 1], [1, 1, 1]],
    ]
    assert counts.n_samples == 4
    assert repr(counts) == "CountTable(n_units=2, n_bins=2, n_classes=3, n_samples=4)"


def test_streaming_batches_equals_one_batch():
    gen = torch.Generator().manual_seed(2)
    acts = torch.randn(500, 7, generator=gen)
    labels = torch.randint(0, 5, (500,), generator=gen)
    labels[:5] = torch.arange(5)
    edges = bin_edges(acts[:100], 4, scheme="quantile")  # reference sample: first batch

    whole = CountTable(7, 4, 5).update(digitize(acts, edges), labels)
    streamed = CountTable(7, 4, 5)
    for batch, batch_labels in zip(acts.split([1, 0, 99, 250, 150]),
                                   labels.split([1, 0, 99, 250, 150])):
        streamed.update(digitize(batch, edges), batch_labels)

    assert torch.equal(streamed.counts, whole.counts)
    assert streamed.n_samples == 500
    for measure in (entropy, mutual_information, specific_information):
        assert torch.equal(measure(streamed), measure(whole))


# ------------------------------------------------------------------------------------------
# Measures: hand-computed values
# ------------------------------------------------------------------------------------------


def test_entropy_matches_hand_computed_values():
    counts = table(
        [[1, 0], [1, 2], [0, 0], [0, 0]],  # bins (1/4, 3/4), two empty bins
        [[1, 0], [0, 1], [1, 0], [0, 1]],  # four equally likely bins
        [[0, 0], [3, 5], [0, 0], [0, 0]],  # constant
    )
    expected = [-(0.25 * log2(0.25) + 0.75 * log2(0.75)), 2.0, 0.0]
    assert entropy(counts).tolist() == pytest.approx(expected, abs=1e-15)
    assert entropy(counts)[2] == 0.0


def test_mutual_information_matches_hand_computed_values():
    counts = table(
        [[2, 0], [0, 2]],  # bin = class
        [[3, 1], [1, 3]],  # noisy copy of the class
        [[1, 2], [2, 4]],  # independent of the class
    )
    noisy = 2 * (3 / 8) * log2((3 / 8) / (1 / 4)) + 2 * (1 / 8) * log2((1 / 8) / (1 / 4))
    assert mutual_information(counts).tolist() == pytest.approx([1.0, noisy, 0.0], abs=1e-15)
    assert mutual_information(counts)[2] == 0.0


def test_specific_information_and_kl_selectivity_match_hand_computed_values():
    counts = table(
        [[0, 2, 2], [2, 0, 0]],  # active only for class 0: P_T = (2/3, 1/3)
        [[2, 2, 0], [0, 0, 2]],  # active only for class 2
    )
    one_class = [log2(1 / (1 / 3)), log2(1 / (2 / 3)), log2(1 / (2 / 3))]
    spectrum = specific_information(counts)
    assert spectrum[0].tolist() == pytest.approx(one_class, abs=1e-15)
    assert spectrum[1].tolist() == pytest.approx(one_class[::-1], abs=1e-15)

    kl = kl_selectivity(counts)
    assert kl.values.tolist() == pytest.approx([log2(3), log2(3)], abs=1e-15)
    assert kl.classes.tolist() == [0, 2]
    # I(T;Y) = sum_y P(y) D_y = H(T) here, since T is a function of Y.
    expected_mi = (1 / 3) * log2(3) + (2 / 3) * log2(3 / 2)
    assert mutual_information(counts).tolist() == pytest.approx([expected_mi] * 2, abs=1e-15)


def test_kl_selectivity_ties_go_to_the_lowest_class():
    kl = kl_selectivity(table([[2, 0], [0, 2]], [[1, 1], [1, 1]]))
    assert kl.values.tolist() == [1.0, 0.0]
    assert kl.classes.tolist() == [0, 0]


# ------------------------------------------------------------------------------------------
# Measures: brute force and identities
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n_bins", [3, 4])
def test_measures_match_brute_force_on_random_data(n_bins):
    n_units, n_classes = 6, 5
    bins, labels = random_bins(n_bins, 400, n_units, n_bins, n_classes)
    counts = CountTable.from_bins(torch.from_numpy(bins), torch.from_numpy(labels),
                                  n_bins=n_bins, n_classes=n_classes)
    h, mi = entropy(counts), mutual_information(counts)
    spectrum, kl = specific_information(counts), kl_selectivity(counts)

    for unit in range(n_units):
        column = bins[:, unit].tolist()
        joint = Counter(zip(column, labels.tolist()))
        for t in range(n_bins):
            for y in range(n_classes):
                assert counts.counts[unit, t, y] == joint[(t, y)]
        h_ref, mi_ref, spectrum_ref = brute_force(column, labels.tolist(), n_classes)
        assert h[unit].item() == pytest.approx(h_ref, abs=1e-12)
        assert mi[unit].item() == pytest.approx(mi_ref, abs=1e-12)
        assert spectrum[unit].tolist() == pytest.approx(spectrum_ref, abs=1e-12)
        assert kl.values[unit].item() == pytest.approx(max(spectrum_ref), abs=1e-12)
        assert kl.classes[unit].item() == int(np.argmax(spectrum_ref))
    assert h[0] == 0.0 and mi[0] == 0.0  # the constant unit
    assert mi[-1] > 0.5  # the most label-driven unit


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_information_identities_hold_on_random_tables(seed):
    counts = random_counts(seed)
    h_t, mi, kl = entropy(counts), mutual_information(counts), kl_selectivity(counts).values
    h_y = entropy(counts.transpose(1, 2))  # the class marginal plays the role of the bins

    assert (mi >= 0).all()
    assert (mi <= torch.minimum(h_t, h_y) + 1e-12).all()
    assert (kl >= mi - 1e-12).all()  # I = sum_y P(y) D_y <= max_y D_y
    assert torch.equal(kl == 0, mi == 0)
    assert (mi == 0).sum() >= 2  # the constant and the independent unit, at least
    assert (mi[h_t == 0] == 0).all() and (h_t == 0).any()


def test_doctest_examples_hold():
    result = doctest.testmod(discrete)
    assert result.attempted > 0
    assert result.failed == 0


# ------------------------------------------------------------------------------------------
# Bad inputs
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bins", [1, 0, 2.5, True])
def test_bad_bin_counts_raise(bins):
    acts = torch.randn(10, 2)
    with pytest.raises(PruneInfoError, match="bins must be an integer >= 2"):
        bin_edges(acts, bins)
    with pytest.raises(PruneInfoError, match="n_bins must be an integer >= 2"):
        CountTable(2, bins, 3)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_activations_raise_with_layer_name(bad):
    acts = torch.randn(10, 2)
    acts[3, 1] = bad
    edges = torch.zeros(2, 1)
    pattern = r"fc1: activations contain NaN/Inf \(1 of 20 values\); fix"
    for call in (
        lambda: threshold_quantise(acts, 0.0, name="fc1"),
        lambda: bin_edges(acts, 3, name="fc1"),
        lambda: digitize(acts, edges, name="fc1"),
    ):
        with pytest.raises(PruneInfoError, match=pattern):
            call()


def test_mismatched_shapes_raise():
    table_ = CountTable(3, 2, 4)
    with pytest.raises(PruneInfoError, match=r"bin_ids must have shape \[n_samples, 3\]"):
        table_.update(torch.zeros(5, 2, dtype=torch.int64), torch.zeros(5, dtype=torch.int64))
    with pytest.raises(PruneInfoError, match=r"labels must have shape \[5\]"):
        table_.update(torch.zeros(5, 3, dtype=torch.int64), torch.zeros(4, dtype=torch.int64))
    with pytest.raises(PruneInfoError, match=r"edges must have shape \[3, bins - 1\]"):
        digitize(torch.randn(5, 3), torch.zeros(2, 1))
    with pytest.raises(PruneInfoError, match=r"activations must have shape \[n_samples, n_units\]"):
        bin_edges(torch.randn(5), 2)
    assert table_.n_samples == 0  # failed updates count nothing


def test_out_of_range_or_float_ids_raise():
    table_ = CountTable(1, 2, 3)
    with pytest.raises(PruneInfoError, match=r"bin_ids must lie in 0..1, got values in 0..2"):
        table_.update(torch.tensor([[0], [2]]), torch.tensor([0, 1]))
    with pytest.raises(PruneInfoError, match=r"labels must lie in 0..2"):
        table_.update(torch.tensor([[0], [1]]), torch.tensor([0, 3]))
    with pytest.raises(PruneInfoError, match="bin_ids must be integers.*threshold_quantise"):
        table_.update(torch.tensor([[0.0], [1.0]]), torch.tensor([0, 1]))


def test_unsorted_edges_and_unknown_scheme_raise():
    with pytest.raises(PruneInfoError, match="non-decreasing"):
        digitize(torch.randn(4, 1), torch.tensor([[1.0, 0.0]]))
    with pytest.raises(PruneInfoError, match="unknown binning scheme 'log'"):
        bin_edges(torch.randn(4, 1), 3, scheme="log")


def test_absent_class_raises_for_spectrum_but_not_for_mutual_information():
    counts = table([[2, 1, 0], [0, 1, 0]])
    for measure in (specific_information, kl_selectivity):
        with pytest.raises(PruneInfoError, match="fc2: class 2 is absent from the validation set"):
            measure(counts, name="fc2")
    assert mutual_information(counts).item() == pytest.approx(
        (2 / 4) * log2((2 / 4) / ((3 / 4) * (2 / 4)))
        + (1 / 4) * log2((1 / 4) / ((3 / 4) * (2 / 4)))
        + (1 / 4) * log2((1 / 4) / ((1 / 4) * (2 / 4))),
        abs=1e-15,
    )


def test_empty_table_raises():
    with pytest.raises(PruneInfoError, match="holds no samples.*update"):
        entropy(CountTable(2, 2, 2))
