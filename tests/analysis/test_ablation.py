"""Cumulative ablation: batched curves against the naive loop, planted models, statistics."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from helpers import plant_units
from scipy import stats

from prune_info.analysis.curves import (
    CurveSet,
    compute_curves,
    layerwise_curve,
    layerwise_curves,
    naive_curves,
    network_curves,
    random_orders,
    unit_means,
)
from prune_info.analysis.stats import format_p, ks_gap, mean_gap
from prune_info.criteria.context import compute_scores
from prune_info.criteria.ranking import rank_units
from prune_info.data import Split
from prune_info.errors import PruneInfoError
from prune_info.nn import count_correct
from prune_info.zoo import build_model, parse_arch

# Tiny tensors: a second intra-op thread only adds wake-up latency on a loaded machine.
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def mlp(digits_mlp):
    return digits_mlp.model.eval()


@pytest.fixture(scope="module")
def mlp_means(mlp, digits):
    return unit_means(mlp, digits.train)


@pytest.fixture(scope="module")
def mlp_scores(mlp, digits):
    return compute_scores(mlp, digits.val, ["entropy", "mi", "kl"], n_classes=10)


def _orders(scores: dict, layer: str, repeats: int, seed: int) -> torch.Tensor:
    n = scores["mi"][layer].numel()
    ranked = [rank_units(scores[c][layer], o) for c in scores for o in ("low", "high")]
    return torch.cat([torch.stack(ranked), random_orders(n, repeats, seed)])


# --------------------------------------------------------------------------------------------
# Batched == naive, exactly


@pytest.mark.parametrize("method", ["prefix", "batched"])
@pytest.mark.parametrize("ablate_to", ["zero", "mean"])
@pytest.mark.parametrize("layer", ["fc1", "fc2"])
def test_layerwise_curves_equal_the_naive_loop_exactly(mlp, digits, mlp_scores, mlp_means,
                                                       layer, ablate_to, method):
    orders = _orders(mlp_scores, layer, repeats=3, seed=1)
    info = {}
    batched = layerwise_curves(mlp, layer, orders, digits.test, ablate_to=ablate_to,
                               means=mlp_means, method=method, info=info)
    naive = naive_curves(mlp, orders, digits.test, layers=layer, ablate_to=ablate_to,
                         means=mlp_means)
    assert info["method"] == method
    assert batched.dtype == torch.int64 and batched.shape == (orders.shape[0],
                                                              orders.shape[1] + 1)
    assert torch.equal(batched, naive)
    # something actually happens along the curves
    assert int(batched[:, -1].max()) < int(batched[:, 0].min())


@pytest.mark.parametrize("act, reg", [("sigmoid", "dropout"), ("tanh", "bn-dropout")])
def test_prefix_sums_are_exact_through_sigmoid_tanh_and_batchnorm(digits, act, reg):
    from prune_info.training.loop import TrainConfig, train_model

    model = train_model(digits, "64-20-16-12-10", act, reg, TrainConfig(epochs=2),
                        progress=False).model
    means = unit_means(model, digits.train)
    for layer, n in (("fc1", 20), ("fc2", 16)):
        orders = random_orders(n, 6, seed=n)
        for ablate_to in ("zero", "mean"):
            info = {}
            fast = layerwise_curves(model, layer, orders, digits.test, ablate_to=ablate_to,
                                    means=means, info=info)
            assert info["method"] == "prefix"
            assert torch.equal(fast, naive_curves(model, orders, digits.test, layers=layer,
                                                  ablate_to=ablate_to, means=means))


@pytest.mark.parametrize("act, reg", [("relu", "l2"), ("sigmoid", "dropout"),
                                      ("tanh", "bn-dropout")])
def test_running_sums_stay_within_their_rounding_bound(digits, act, reg):
    """The prefix path's outputs at every k differ from the naive forward's by less than the
    bound it checks margins against, and the bound is tight (so few predictions recheck)."""
    from prune_info.analysis.curves import running
    from prune_info.nn import resolve_layers
    from prune_info.training.loop import TrainConfig, train_model

    torch.manual_seed(0)
    model = train_model(digits, "64-20-16-12-10", act, reg, TrainConfig(epochs=2),
                        progress=False).model.eval()
    means = unit_means(model, digits.train)
    x = digits.test.x
    for layer, n in (("fc1", 20), ("fc2", 16), ("fc3", 12)):
        (info,) = resolve_layers(model, [layer])
        plan = running._prefix_plan(model, info, x[:1])
        assert plan is not None
        for fill in (None, means[layer]):
            order = random_orders(n, 1, seed=n)[0]
            sums = running._RunningSums(plan, fill, n, torch.device("cpu"))
            with torch.no_grad():
                h = plan.prefix(x)
                outputs, err = sums.logits(sums.block(h), order)
                for k in range(n + 1):
                    masked = h.clone()
                    masked[:, order[:k]] = 0.0 if fill is None else fill[order[:k]]
                    naive = plan.suffix(masked).t()
                    gap = (outputs[k] - naive).abs().amax(0)
                    assert bool((gap <= err[k]).all()), (layer, k)
                    assert float(err[k].max()) < 1e-3 * (1 + float(naive.abs().max()))
                    top2 = naive.topk(2, dim=0).values
                    doubtful = (top2[0] - top2[1] <= 2 * err[k]).float().mean()
                    assert float(doubtful) < 0.02, (layer, k)  # rechecked: a few at most


@pytest.mark.parametrize("ablate_to", ["zero", "mean"])
def test_whole_network_curves_equal_the_naive_loop_exactly(mlp, digits, mlp_scores, mlp_means,
                                                           ablate_to):
    from prune_info.analysis.curves import network_orders
    from prune_info.nn import resolve_layers

    infos = resolve_layers(mlp)
    ranked = [network_orders(mlp_scores[c], infos, o) for c in ("mi", "kl") for o in
              ("low", "high")]
    orders = torch.cat([torch.stack(ranked), random_orders(56, 2, seed=3)])
    naive = naive_curves(mlp, orders, digits.test, ablate_to=ablate_to, means=mlp_means)
    for method in ("prefix", "batched"):
        info = {}
        fast = network_curves(mlp, orders, digits.test, ablate_to=ablate_to, means=mlp_means,
                              method=method, info=info)
        assert info["method"] == method
        assert torch.equal(fast, naive), method
    assert int(naive[:, -1].max()) < int(naive[:, 0].min())


@pytest.mark.parametrize("act, reg", [("relu", "l2"), ("sigmoid", "dropout"),
                                      ("tanh", "bn-dropout")])
def test_whole_network_prefix_sums_mask_every_later_layer_where_the_naive_loop_does(
        digits, act, reg):
    """Running sums of the first layer, the later layers' units masked inside the rest (with
    their means too, through BatchNorm and squashing activations): the naive loop's counts, for
    every layer subset, with the rounding checks rechecking some predictions."""
    from prune_info.training.loop import TrainConfig, train_model

    model = train_model(digits, "64-20-16-12-10", act, reg, TrainConfig(epochs=2, seed=2),
                        progress=False).model.eval()
    means = unit_means(model, digits.train)
    rechecked = 0
    for layers in (["fc1", "fc2", "fc3"], ["fc1", "fc3"], ["fc2", "fc3"]):
        total = sum({"fc1": 20, "fc2": 16, "fc3": 12}[name] for name in layers)
        orders = random_orders(total, 3, seed=total)
        for ablate_to in ("zero", "mean"):
            info = {}
            fast = network_curves(model, orders, digits.test, layers=layers,
                                  ablate_to=ablate_to, means=means, info=info)
            assert info["method"] == "prefix"
            rechecked += info["rechecked"]
            naive = naive_curves(model, orders, digits.test, layers=layers,
                                 ablate_to=ablate_to, means=means)
            assert torch.equal(fast, naive), (layers, ablate_to)
            sparse = network_curves(model, orders, digits.test, layers=layers,
                                    ablate_to=ablate_to, means=means, at_k=[0, 7, total])
            assert torch.equal(sparse, naive[:, [0, 7, total]])
    assert rechecked < 0.02 * 3 * 2 * 3 * 49 * len(digits.test)  # few doubtful margins


def test_whole_network_prefix_path_is_refused_where_it_cannot_run(digits_cnn, digits):
    with pytest.raises(PruneInfoError, match="method='batched'"):
        network_curves(digits_cnn.model, random_orders(30, 1, seed=0), digits.test,
                       method="prefix")


@pytest.mark.parametrize("ablate_to", ["zero", "mean"])
def test_cnn_curves_equal_the_naive_loop_exactly(digits_cnn, digits, ablate_to):
    model = digits_cnn.model.eval()
    means = unit_means(model, digits.train)
    assert means["conv1"].shape == (6, 8, 8) and means["fc1"].shape == (16,)
    for layer, n in (("conv1", 6), ("conv2", 8), ("fc1", 16)):
        orders = random_orders(n, 3, seed=n)
        batched = layerwise_curves(model, layer, orders, digits.test, ablate_to=ablate_to,
                                   means=means)
        naive = naive_curves(model, orders, digits.test, layers=layer, ablate_to=ablate_to,
                             means=means)
        assert torch.equal(batched, naive), layer
    orders = random_orders(30, 2, seed=0)
    assert torch.equal(
        network_curves(model, orders, digits.test, ablate_to=ablate_to, means=means),
        naive_curves(model, orders, digits.test, ablate_to=ablate_to, means=means))


def test_chunking_does_not_change_the_counts(mlp, digits):
    orders = random_orders(32, 4, seed=5)
    reference = layerwise_curves(mlp, "fc1", orders, digits.test)
    tiny = layerwise_curves(mlp, "fc1", orders, digits.test, memory_mb=0.01, batch_size=100)
    assert torch.equal(reference, tiny)


def test_layerwise_curve_starts_at_the_model_and_ends_with_everything_ablated(mlp, digits):
    order = torch.randperm(24, generator=torch.Generator().manual_seed(0))
    curve = layerwise_curve(mlp, "fc2", order, digits.test)
    assert curve.shape == (25,) and curve.dtype == torch.int64
    assert int(curve[0]) == count_correct(mlp, digits.test)
    # with fc2 silenced the output is the bias alone: one class for every sample
    constant = int((digits.test.y == int(mlp.out.bias.argmax())).sum())
    assert int(curve[-1]) == constant
    assert mlp.training is False


class Wrapped(torch.nn.Module):
    """A model that is not an nn.Sequential: its layers are nested one level down."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x)


def test_non_sequential_models_fall_back_to_the_naive_loop(mlp, digits):
    wrapped = Wrapped(mlp).eval()
    orders = random_orders(24, 2, seed=0)
    assert torch.equal(layerwise_curves(wrapped, "inner.fc2", orders, digits.test),
                       layerwise_curves(mlp, "fc2", orders, digits.test))


# --------------------------------------------------------------------------------------------
# Planted models


@pytest.mark.parametrize("ablate_to", ["zero", "mean"])
def test_ablating_dead_units_first_leaves_accuracy_unchanged(digits_mlp, digits, ablate_to):
    model = copy.deepcopy(digits_mlp.model).eval()
    dead = (3, 7, 11, 20, 25)
    plant_units(model, "fc1", dead=dead)
    entropy = compute_scores(model, digits.val, ["entropy"], n_classes=10)["entropy"]["fc1"]
    assert torch.all(entropy[list(dead)] == 0)  # the lowest possible: ranked first
    rest = [j for j in torch.randperm(32, generator=torch.Generator().manual_seed(0)).tolist()
            if j not in dead]
    order = torch.tensor([*dead, *rest])
    means = unit_means(model, digits.train) if ablate_to == "mean" else None
    curve = layerwise_curve(model, "fc1", order, digits.test, ablate_to=ablate_to, means=means)
    assert torch.all(curve[: len(dead) + 1] == curve[0])
    assert int(curve[len(dead) + 6]) < int(curve[0])


def _duplicate_model() -> tuple[torch.nn.Module, Split]:
    """Units 0 and 1 of fc1 are copies; either one alone is enough for the decision.

    The class is the sign of feature 0. Each copy outputs 10 when the sign is positive; the
    classifier needs a summed input above 5, so one copy stands in for the other. Unit 2 is dead.
    """
    arch = parse_arch("2-3-2", (1, 1, 2), 2, "relu", "none")
    model = build_model(arch).eval()
    with torch.no_grad():
        model.fc1.weight.copy_(torch.tensor([[10.0, 0.0], [10.0, 0.0], [0.0, 0.0]]))
        model.fc1.bias.copy_(torch.tensor([0.0, 0.0, -1.0]))
        model.out.weight.copy_(torch.tensor([[0.0, 0.0, 0.0], [1.0, 1.0, 0.0]]))
        model.out.bias.copy_(torch.tensor([0.0, -5.0]))
    gen = torch.Generator().manual_seed(0)
    signs = torch.randint(0, 2, (200,), generator=gen) * 2 - 1
    x = torch.stack([signs.float(), torch.randn(200, generator=gen)], 1)[:, None, None, :]
    return model, Split(x.contiguous(), (signs > 0).long())


def test_removing_one_of_two_duplicates_changes_nothing_until_both_are_gone():
    model, split = _duplicate_model()
    n = len(split)
    positives = int(split.y.sum())
    curve = layerwise_curves(model, "fc1", torch.tensor([[0, 1, 2], [2, 1, 0], [1, 2, 0]]),
                             split)
    assert curve.tolist() == [[n, n, n - positives, n - positives],
                              [n, n, n, n - positives],
                              [n, n, n, n - positives]]
    # the information measures see two equally informative units and a dead one
    scores = compute_scores(model, split, ["mi"], n_classes=2)["mi"]["fc1"]
    assert scores[0] == scores[1] > 0.9 and scores[2] == 0
    low = compute_curves(model, split, {"mi": {"fc1": scores}}, orders=("low", "high"),
                         random=0)
    assert low.counts["fc1"]["mi:low"].tolist() == [[n, n, n, n - positives]]
    assert low.counts["fc1"]["mi:high"].tolist() == [[n, n, n - positives, n - positives]]


# --------------------------------------------------------------------------------------------
# CurveSet / compute_curves


def test_compute_curves_labels_and_seeded_random_repeats(mlp, digits, mlp_scores):
    a = compute_curves(mlp, digits.test, mlp_scores, random=4, seed=7)
    b = compute_curves(mlp, digits.test, {"mi": mlp_scores["mi"]}, orders=("low",), random=4,
                       seed=7)
    c = compute_curves(mlp, digits.test, mlp_scores, random=4, seed=8)
    assert list(a.counts) == ["fc1", "fc2"]
    assert list(a.counts["fc1"]) == ["entropy:low", "entropy:high", "mi:low", "mi:high",
                                     "kl:low", "kl:high", "random"]
    assert a.counts["fc1"]["random"].shape == (4, 33)
    # the random curves depend on the seed only, not on which criteria are asked for
    assert torch.equal(a.counts["fc2"]["random"], b.counts["fc2"]["random"])
    assert not torch.equal(a.counts["fc2"]["random"], c.counts["fc2"]["random"])
    assert torch.equal(a.counts["fc1"]["mi:low"], b.counts["fc1"]["mi:low"])
    again = CurveSet.from_dict(a.to_dict())
    assert torch.equal(again.counts["fc1"]["kl:high"], a.counts["fc1"]["kl:high"])
    assert a.accuracy("fc1", "random").max() <= 1.0


# --------------------------------------------------------------------------------------------
# Statistics


def test_mean_gap_equals_scipy_and_has_the_papers_sign():
    rng = np.random.default_rng(0)
    random_acc = rng.uniform(0.3, 0.6, 20)
    ordered = random_acc + rng.normal(0.05, 0.04, 20)
    for method in ("approx", "exact"):
        test = mean_gap(ordered, random_acc, 80, method=method)
        reference = stats.wilcoxon(100 * (ordered - random_acc), method=method)
        assert test.p_value == pytest.approx(reference.pvalue, rel=1e-12)
        assert test.statistic == reference.statistic
    assert test.gap == pytest.approx(100 * np.mean(ordered - random_acc))
    assert test.gap > 0  # the ordering keeps more accuracy than random
    assert mean_gap(random_acc, ordered, 80).gap == pytest.approx(-test.gap)


def test_fifty_seeds_on_one_side_give_the_papers_smallest_p_value():
    rng = np.random.default_rng(1)
    b = rng.uniform(0.4, 0.5, 50)
    test = mean_gap(b + rng.uniform(0.01, 0.2, 50), b, 80)
    assert test.p_value == pytest.approx(7.55e-10, rel=1e-3)  # as in the paper, Sec. V-C
    assert test.format().startswith("MG@80 = ") and test.format().endswith("p = 7.6e-10")
    assert format_p(3.56e-9) == "3.6e-9" and format_p(0.0181) == "0.018"


def test_ks_gap_equals_scipy():
    rng = np.random.default_rng(2)
    a, b = rng.uniform(0.2, 0.5, 30), rng.uniform(0.3, 0.7, 25)
    test = ks_gap(a, b, 80)
    reference = stats.ks_2samp(a, b)
    assert test.p_value == pytest.approx(reference.pvalue, rel=1e-12)
    assert test.statistic == pytest.approx(reference.statistic)
    assert test.gap == pytest.approx(100 * (a.mean() - b.mean()))
    separated = ks_gap(np.linspace(0.1, 0.2, 50), np.linspace(0.5, 0.6, 50), 80)
    assert separated.p_value == pytest.approx(stats.ks_2samp(np.linspace(0.1, 0.2, 50),
                                                             np.linspace(0.5, 0.6, 50)).pvalue)
    assert separated.gap < 0


def test_fewer_than_six_seeds_give_no_wilcoxon_p_value():
    test = mean_gap([0.5, 0.6, 0.7, 0.8, 0.9], [0.4, 0.5, 0.6, 0.7, 0.8], 10)
    assert test.p_value is None
    assert "at least 6" in test.note
    assert test.gap == pytest.approx(10.0)
    assert test.format() == "MG@10 = 10.0, p = n/a"
    assert mean_gap([0.5] * 8, [0.5] * 8, 10).p_value == 1.0


# --------------------------------------------------------------------------------------------
# Bad input


def test_bad_inputs_are_refused_with_a_clear_message(mlp, digits, mlp_means, digits_cnn):
    order = torch.arange(32)
    with pytest.raises(PruneInfoError, match="k = 40 is beyond the 32 units of fc1"):
        layerwise_curves(mlp, "fc1", order, digits.test, max_k=40)
    with pytest.raises(PruneInfoError, match="permutation"):
        layerwise_curve(mlp, "fc1", torch.zeros(32, dtype=torch.long), digits.test)
    with pytest.raises(PruneInfoError, match="all 32 units"):
        layerwise_curve(mlp, "fc1", torch.arange(10), digits.test)
    with pytest.raises(PruneInfoError, match="'fc9' is not a prunable layer"):
        layerwise_curve(mlp, "fc9", order, digits.test)
    with pytest.raises(PruneInfoError, match="needs the units' training-set means"):
        layerwise_curve(mlp, "fc1", order, digits.test, ablate_to="mean")
    with pytest.raises(PruneInfoError, match="zero or mean"):
        layerwise_curve(mlp, "fc1", order, digits.test, ablate_to="median")
    with pytest.raises(PruneInfoError, match="integer unit indices"):
        layerwise_curve(mlp, "fc1", order.float(), digits.test)
    with pytest.raises(PruneInfoError, match="prefix-sum path needs a Linear layer"):
        layerwise_curves(digits_cnn.model, "conv1", torch.arange(6), digits.test,
                         method="prefix")
    with pytest.raises(PruneInfoError, match="unknown method"):
        layerwise_curves(mlp, "fc1", order, digits.test, method="fastest")
    with pytest.raises(PruneInfoError, match="as many random"):
        mean_gap([0.1, 0.2], [0.1], 3)
    assert layerwise_curves(mlp, "fc1", order, digits.test, max_k=5,
                            means=mlp_means).shape == (1, 6)


# --------------------------------------------------------------------------------------------
# Points of a curve (at_k)


def test_spaced_ks_and_the_default_points():
    from prune_info.analysis.curves import DEFAULT_STEPS, default_at_k, spaced_ks

    assert spaced_ks(128, 33) == list(range(0, 129, 4))
    assert spaced_ks(24, 25) == list(range(25)) and spaced_ks(24, 2) == [0, 24]
    for n in (7, 64, 65, 100, 128, 512):
        for steps in [s for s in (2, 3, 17, DEFAULT_STEPS, n + 1) if s <= n + 1]:
            ks = spaced_ks(n, steps)
            assert len(ks) == steps and ks[0] == 0 and ks[-1] == n
            assert ks == sorted(set(ks))
    assert default_at_k(64) is None and default_at_k(32) is None
    assert default_at_k(65) == spaced_ks(65, 33) and len(default_at_k(512)) == 33
    # linear layers keep every k up to 256 units (the paper's MLPs), then 33 points too
    assert default_at_k(100, "linear") is None and default_at_k(256, "linear") is None
    assert len(default_at_k(768, "linear")) == 33
    with pytest.raises(PruneInfoError, match="choose 2 to 25 points for the 24 units of fc2"):
        spaced_ks(24, 26, "fc2")
    with pytest.raises(PruneInfoError, match="choose 2 to"):
        spaced_ks(24, 1)


def test_bad_at_k_is_refused_with_a_clear_message(mlp, digits):
    order = torch.arange(32)
    for at_k, message in (([0, 40], "k = 40 is outside 0..32"), ([-1, 3], "k = -1"),
                          ([5, 3], "sorted and without repeats"),
                          ([3, 3, 5], "sorted and without repeats"), ([4], "at least 2"),
                          ([0.0, 2.0], "integer k values"), ("0,4", "sequence of integers"),
                          (torch.tensor([0.0, 1.0]), "integer k values")):
        with pytest.raises(PruneInfoError, match=message):
            layerwise_curves(mlp, "fc1", order, digits.test, at_k=at_k)
    with pytest.raises(PruneInfoError, match="either `max_k` or `at_k`"):
        layerwise_curves(mlp, "fc1", order, digits.test, at_k=[0, 4], max_k=8)
    with pytest.raises(PruneInfoError, match="k = 57 is outside"):
        network_curves(mlp, torch.arange(56), digits.test, at_k=[0, 57])
    with pytest.raises(PruneInfoError, match="'fc7', which is not a scope"):
        compute_curves(mlp, digits.test, {}, random=1, at_k={"fc7": [0, 1]})


@pytest.mark.parametrize("method", ["prefix", "batched"])
def test_sparse_mlp_curves_are_the_full_curves_at_those_k(mlp, digits, mlp_scores, method):
    orders = _orders(mlp_scores, "fc1", repeats=2, seed=4)
    at_k = [0, 1, 5, 16, 31, 32]
    full = layerwise_curves(mlp, "fc1", orders, digits.test, method=method)
    sparse = layerwise_curves(mlp, "fc1", orders, digits.test, at_k=at_k, method=method)
    assert sparse.shape == (orders.shape[0], len(at_k))
    assert torch.equal(sparse, full[:, at_k])
    naive = naive_curves(mlp, orders, digits.test, layers="fc1", at_k=at_k)
    assert torch.equal(sparse, naive)
    # a top k below n: the prefix path sums up to it only, same counts
    assert torch.equal(layerwise_curves(mlp, "fc1", orders, digits.test, at_k=[2, 7],
                                        method=method), full[:, [2, 7]])
    # every k listed is the full curve
    assert torch.equal(layerwise_curves(mlp, "fc1", orders, digits.test,
                                        at_k=list(range(33))), full)


@pytest.mark.parametrize("ablate_to", ["zero", "mean"])
def test_sparse_cnn_curves_equal_the_naive_loop_at_those_k(digits_cnn, digits, ablate_to):
    from prune_info.analysis import curves as curves_module

    model = digits_cnn.model.eval()
    means = unit_means(model, digits.train)
    orders = random_orders(8, 3, seed=8)
    at_k = [0, 3, 5, 8]
    built = []
    real = curves_module._prefix_masks

    def spy(orders_, ks):
        built.append(int(ks.numel()))
        return real(orders_, ks)

    curves_module._prefix_masks = spy
    try:
        sparse = layerwise_curves(model, "conv2", orders, digits.test, ablate_to=ablate_to,
                                  means=means, at_k=at_k)
    finally:
        curves_module._prefix_masks = real
    assert built == [len(at_k)]  # masks for the requested k only
    full = layerwise_curves(model, "conv2", orders, digits.test, ablate_to=ablate_to,
                            means=means)
    naive = naive_curves(model, orders, digits.test, layers="conv2", ablate_to=ablate_to,
                         means=means, at_k=at_k)
    assert torch.equal(sparse, naive) and torch.equal(sparse, full[:, at_k])
    net_orders = random_orders(30, 2, seed=1)
    net_k = [0, 7, 15, 29, 30]
    sparse_net = network_curves(model, net_orders, digits.test, ablate_to=ablate_to,
                                means=means, at_k=net_k)
    assert torch.equal(sparse_net, naive_curves(model, net_orders, digits.test,
                                                ablate_to=ablate_to, means=means, at_k=net_k))
    assert torch.equal(sparse_net, network_curves(model, net_orders, digits.test,
                                                  ablate_to=ablate_to, means=means)[:, net_k])


def test_sparse_curves_of_a_non_sequential_model(mlp, digits):
    orders = random_orders(24, 2, seed=2)
    sparse = layerwise_curves(Wrapped(mlp).eval(), "inner.fc2", orders, digits.test,
                              at_k=[0, 12, 24])
    assert torch.equal(sparse, layerwise_curves(mlp, "fc2", orders, digits.test)[:, [0, 12, 24]])


def test_compute_curves_at_some_k_records_them_and_reads_the_nearest(mlp, digits, mlp_scores):
    full = compute_curves(mlp, digits.test, mlp_scores, random=3, seed=2)
    sparse = compute_curves(mlp, digits.test, mlp_scores, random=3, seed=2,
                            at_k={"fc1": [0, 8, 16, 24, 32]})
    assert sparse.at_k == {"fc1": [0, 8, 16, 24, 32]} and full.at_k == {}
    for label, counts in full.counts["fc1"].items():
        assert torch.equal(sparse.counts["fc1"][label], counts[:, [0, 8, 16, 24, 32]])
        assert torch.equal(sparse.counts["fc2"][label], full.counts["fc2"][label])
        assert torch.equal(sparse.counts_at("fc1", label, 17), counts[:, 16])
        assert torch.equal(full.counts_at("fc1", label, 17), counts[:, 17])
    assert sparse.ks("fc1") == [0, 8, 16, 24, 32] and sparse.ks("fc2") == list(range(25))
    assert sparse.nearest("fc1", 12) == 8 and sparse.nearest("fc1", 13) == 16
    # full curves: the JSON is what it was (no at_k key); sparse ones round-trip
    assert "at_k" not in full.to_dict()
    assert list(full.to_dict()) == ["mode", "ablate_to", "n_samples", "units", "counts"]
    doc = sparse.to_dict()
    assert doc["at_k"] == {"fc1": [0, 8, 16, 24, 32]}
    again = CurveSet.from_dict(doc)
    assert again.at_k == sparse.at_k and again.to_dict() == doc
    # one list for every scope, and the network scope
    both = compute_curves(mlp, digits.test, {}, random=2, at_k=[0, 12, 24])
    assert both.at_k == {"fc1": [0, 12, 24], "fc2": [0, 12, 24]}
    net = compute_curves(mlp, digits.test, {}, random=2, mode="network",
                         at_k={"network": [0, 28, 56]})
    assert net.counts["network"]["random"].shape == (2, 3)


def test_progress_bar_over_the_masked_passes(mlp, digits, digits_cnn, capsys):
    orders = random_orders(8, 2, seed=0)
    layerwise_curves(digits_cnn.model.eval(), "conv2", orders, digits.test, at_k=[0, 4, 8],
                     progress=True)
    err = capsys.readouterr().err
    assert "ablate conv2" in err and "pass" in err
    layerwise_curves(mlp, "fc1", random_orders(32, 2, seed=0), digits.test, progress=True)
    assert "ablate fc1" in capsys.readouterr().err
    layerwise_curves(digits_cnn.model.eval(), "conv2", orders, digits.test, at_k=[0, 4, 8])
    assert capsys.readouterr().err == ""


def test_sparse_curves_plot_against_their_k(mlp, digits, tmp_path):
    from prune_info.viz.ablation import plot_ablation, plot_curves

    sparse = compute_curves(mlp, digits.test, {}, random=2, at_k={"fc1": [0, 16, 32]})
    path = plot_curves(sparse.to_dict(), tmp_path / "curves.png")
    assert path.stat().st_size > 5_000
    acc = sparse.accuracy("fc1", "random").numpy()
    plot_ablation({"fc1": {"random": (acc.mean(0), acc.std(0))}}, tmp_path / "a.png",
                  ks={"fc1": [0, 16, 32]})
    assert (tmp_path / "a.png").stat().st_size > 5_000
    with pytest.raises(PruneInfoError, match="2 k values for curves of 3 points"):
        plot_ablation({"fc1": {"random": (acc.mean(0), None)}}, tmp_path / "b.png",
                      ks={"fc1": [0, 32]})
