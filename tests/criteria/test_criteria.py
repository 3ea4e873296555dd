"""Tests for prune_info.criteria and prune_info.pruning.importance: planted units, streaming counts,
the registry, baselines, ranking, bad input, and pruning through torch-pruning."""

import copy
import warnings

import pytest
import torch
import torch_pruning as tp
from helpers import plant_units

from prune_info.capture import unit_outputs
from prune_info.criteria import layer_threshold, unit_information
from prune_info.criteria.context import compute_scores
from prune_info.criteria.options import ScoreOptions
from prune_info.criteria.ranking import rank_units
from prune_info.criteria.registry import (
    CRITERIA,
    available_criteria,
    get_criterion,
    register_criterion,
)
from prune_info.criteria.report import score_report
from prune_info.data import Split
from prune_info.errors import PruneInfoError
from prune_info.measures.discrete import (
    CountTable,
    bin_edges,
    digitize,
    entropy,
    mutual_information,
    threshold_quantise,
)
from prune_info.nn import prunable_layers
from prune_info.pruning.importance import CriterionImportance
from prune_info.zoo import build_model, parse_arch

INFO = ["entropy", "mi", "kl"]


@pytest.fixture(scope="module")
def base_info(digits, digits_mlp):
    return unit_information(digits_mlp.model, digits.val)


@pytest.fixture(scope="module", params=["fc1", "fc2"])
def planted(request, digits, digits_mlp, base_info):
    """Examples 1-3 of the paper planted into one layer: dead 0, always-active 1, selective
    units 3 (class 7) and 4 (class 0), unit 6 a copy of the layer's most informative unit."""
    layer = request.param
    model = copy.deepcopy(digits_mlp.model)
    mi = base_info[layer].mi.clone()
    mi[[0, 1, 3, 4, 6]] = -1
    src = int(mi.argmax())
    plant_units(model, layer, digits.val.x, digits.val.y, dead=(0,), always_active=(1,),
                duplicates=((src, 6),), selective={3: 7, 4: 0})
    return layer, src, model


# --------------------------------------------------------------------------------------------
# Planted units rank as Examples 1-3 predict


def test_dead_and_always_active_units_have_zero_entropy_and_are_told_apart(digits, planted):
    layer, _, model = planted
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # constant units: exactly 0, no warning
        info = unit_information(model, digits.val)[layer]
    for unit in (0, 1):
        assert info.entropy[unit] == 0 and info.mi[unit] == 0 and info.kl[unit] == 0
    assert info.dead[0] and not info.always_active[0]
    assert info.always_active[1] and not info.dead[1]
    assert torch.equal(info.zero_entropy, info.dead | info.always_active)


def test_class_selective_units_have_the_highest_kl_selectivity_with_their_class(digits, planted):
    layer, _, model = planted
    info = unit_information(model, digits.val)[layer]
    top_two = set(info.kl.topk(2).indices.tolist())
    assert top_two == {3, 4}
    assert info.kl_class[3] == 7 and info.kl_class[4] == 0
    # KL selectivity bounds the MI from above (Sec. IV of the paper).
    assert (info.kl >= info.mi - 1e-12).all()


def test_duplicated_units_get_identical_scores(digits, planted):
    layer, src, model = planted
    info = unit_information(model, digits.val)[layer]
    for field in ("entropy", "mi", "kl", "kl_class", "spectrum"):
        values = getattr(info, field)
        assert torch.equal(values[src], values[6]), field
    assert info.mi[src] > 0


# --------------------------------------------------------------------------------------------
# Counting: one streaming pass, equal to the reference count tables


def test_streamed_counts_equal_count_tables_of_the_quantised_outputs(digits, digits_mlp):
    model, val = digits_mlp.model, digits.val
    options = ScoreOptions(batch_size=64)
    info = unit_information(model, val, options=options)
    outputs = unit_outputs(model, prunable_layers(model), val.x, options.capture)
    for name, acts in outputs.items():
        bins = threshold_quantise(acts, 0.0)
        expected = CountTable.from_bins(bins, val.y, n_bins=2, n_classes=10)
        assert torch.equal(info[name].counts.counts, expected.counts)
        assert torch.equal(info[name].entropy, entropy(expected))
        assert torch.equal(info[name].mi, mutual_information(expected))


@pytest.mark.parametrize("binning", ["uniform", "quantile"])
def test_finer_bins_use_edges_of_the_first_batch(digits, digits_mlp, binning):
    model, val = digits_mlp.model, digits.val
    options = ScoreOptions(bins=4, binning=binning, batch_size=100)
    info = unit_information(model, val, options=options)
    outputs = unit_outputs(model, prunable_layers(model), val.x, options.capture)
    for name, acts in outputs.items():
        edges = bin_edges(acts[:100], 4, binning)
        assert torch.equal(info[name].edges, edges)
        expected = CountTable.from_bins(digitize(acts, edges), val.y, n_bins=4, n_classes=10)
        assert torch.equal(info[name].counts.counts, expected.counts)
        assert info[name].entropy.max() <= 2.0 + 1e-12


def test_entropy_mi_and_kl_share_one_forward_pass(digits, digits_mlp):
    model = digits_mlp.model
    calls = []
    handle = model.register_forward_hook(lambda *_: calls.append(1))
    try:
        scores = compute_scores(model, digits.val, INFO, options=ScoreOptions(batch_size=128))
    finally:
        handle.remove()
    assert len(calls) == 3  # ceil(359 / 128) batches, once
    assert list(scores) == INFO
    for criterion in INFO:
        assert set(scores[criterion]) == {"fc1", "fc2"}
        assert scores[criterion]["fc1"].dtype == torch.float64
        assert scores[criterion]["fc2"].shape == (24,)


def test_pre_and_post_activation_one_bit_bins_agree_for_dense_relu_units(digits, digits_mlp):
    post = unit_information(digits_mlp.model, digits.val)
    pre = unit_information(digits_mlp.model, digits.val,
                           options=ScoreOptions(pre_activation=True))
    for name in post:
        assert torch.equal(pre[name].counts.counts, post[name].counts.counts)


def test_sigmoid_units_are_thresholded_at_one_half(digits):
    arch = parse_arch("64-10-10", digits.input_shape, 10, "sigmoid")
    torch.manual_seed(0)
    model = build_model(arch).eval()
    layer = prunable_layers(model)[0]
    assert layer_threshold(layer) == 0.5 and layer_threshold(layer, pre_activation=True) == 0.0
    info = unit_information(model, digits.val)["fc1"]
    acts = unit_outputs(model, [layer], digits.val.x)["fc1"]
    expected = CountTable.from_bins(threshold_quantise(acts, 0.5), digits.val.y, 2, 10)
    assert torch.equal(info.counts.counts, expected.counts)


def test_conv_layers_are_scored(digits, digits_cnn):
    scores = compute_scores(digits_cnn.model, digits.val, INFO)
    assert {k: v.shape[0] for k, v in scores["mi"].items()} == {"conv1": 6, "conv2": 8, "fc1": 16}
    assert all((v >= 0).all() for v in scores["kl"].values())


def test_report_csv_round_trips_every_number(digits, digits_mlp):
    report = score_report(digits_mlp.model, digits.val, ["mi", "magnitude"])
    lines = report.csv_text().splitlines()
    assert lines[0].startswith("layer,unit,mi,magnitude,kl_class,dead,always_active,spectrum_0")
    assert len(lines) == 1 + 32 + 24
    first = lines[1].split(",")
    assert first[:2] == ["fc1", "0"]
    assert float(first[2]) == report.scores["mi"]["fc1"][0].item()
    summary = report.layer_summary(report.layers[0])
    assert summary["measures"]["mi"]["max"] == report.scores["mi"]["fc1"].max().item()


# --------------------------------------------------------------------------------------------
# Bad input


def test_unknown_criterion_lists_the_known_ones(digits, digits_mlp):
    with pytest.raises(PruneInfoError, match="unknown criterion 'synergi'.*entropy.*kl.*mi"):
        compute_scores(digits_mlp.model, digits.val, ["mi", "synergi"])
    with pytest.raises(PruneInfoError, match="unknown criterion"):
        get_criterion("nope")


def test_data_of_the_wrong_size_is_refused(digits_mlp):
    split = Split(torch.zeros(20, 1, 28, 28), torch.arange(20) % 10)
    with pytest.raises(PruneInfoError, match="does not fit the model.*784 values.*expects 64"):
        compute_scores(digits_mlp.model, split, INFO)


def test_a_model_without_prunable_layers_is_refused(digits):
    model = build_model(parse_arch("64-10", digits.input_shape, 10))
    with pytest.raises(PruneInfoError, match="no prunable layer"):
        compute_scores(model, digits.val, ["mi"])


def test_an_empty_split_is_refused(digits, digits_mlp):
    empty = Split(digits.val.x[:0], digits.val.y[:0])
    with pytest.raises(PruneInfoError, match="validation set is empty.*fix"):
        compute_scores(digits_mlp.model, empty, INFO)


def test_a_class_absent_from_the_split_is_named(digits, digits_mlp):
    keep = digits.val.y != 3
    split = Split(digits.val.x[keep], digits.val.y[keep])
    with pytest.raises(PruneInfoError, match="class 3 is absent from the validation set.*fix"):
        compute_scores(digits_mlp.model, split, ["kl"])


def test_labels_beyond_the_classes_are_refused(digits, digits_mlp):
    split = Split(digits.val.x[:20], torch.arange(20) % 12)
    with pytest.raises(PruneInfoError, match=r"labels lie in 0..11 but the model has 10 classes"):
        compute_scores(digits_mlp.model, split, ["mi"])


def test_nan_outputs_name_the_layer(digits, digits_mlp):
    model = copy.deepcopy(digits_mlp.model)
    with torch.no_grad():
        model.fc2.weight[3, 0] = float("nan")
    threads = torch.get_num_threads()
    with pytest.raises(PruneInfoError, match=r"^fc2: the unit outputs contain NaN/Inf.*fc2:3"):
        compute_scores(model, digits.val, ["entropy"])
    assert torch.get_num_threads() == threads  # counting on one thread is undone on errors


@pytest.mark.parametrize("kwargs, message", [
    ({"bins": 1}, r"bins \(`bins`\) must be an integer of at least 2, got 1"),
    ({"binning": "log"}, "unknown binning 'log'"),
    ({"channel_reduce": "sum"}, "unknown channel reduction"),
    ({"batch_size": -3}, "batch size must be a positive integer"),
])
def test_bad_options_are_refused(kwargs, message):
    with pytest.raises(PruneInfoError, match=message):
        ScoreOptions(**kwargs)


def test_unknown_layer_names_are_refused(digits, digits_mlp):
    scores = compute_scores(digits_mlp.model, digits.val, ["mi"], layers=["fc2"])
    assert list(scores["mi"]) == ["fc2"]
    with pytest.raises(PruneInfoError, match="'out' is not a prunable layer.*fc1, fc2"):
        compute_scores(digits_mlp.model, digits.val, ["mi"], layers=["out"])


def test_data_criteria_need_a_split_but_weight_criteria_do_not(digits_mlp):
    scores = compute_scores(digits_mlp.model, None, ["magnitude", "random"])
    assert set(scores) == {"magnitude", "random"}
    with pytest.raises(PruneInfoError, match="criterion mi needs labelled data"):
        compute_scores(digits_mlp.model, None, ["mi"])


# --------------------------------------------------------------------------------------------
# Baselines, registry, ranking


def test_random_scores_are_seeded_and_per_layer(digits_mlp):
    model = digits_mlp.model
    a = compute_scores(model, None, ["random"], options=ScoreOptions(seed=3))["random"]
    b = compute_scores(model, None, ["random"], options=ScoreOptions(seed=3),
                       layers=["fc2"])["random"]
    c = compute_scores(model, None, ["random"], options=ScoreOptions(seed=4))["random"]
    assert torch.equal(a["fc2"], b["fc2"])
    assert not torch.equal(a["fc2"], c["fc2"])
    assert ((a["fc1"] >= 0) & (a["fc1"] < 1)).all()


@pytest.mark.parametrize("fixture", ["digits_mlp", "digits_cnn"])
@pytest.mark.parametrize("p, criterion", [(1, "magnitude-l1"), (2, "magnitude")])
def test_magnitude_matches_torch_pruning_magnitude_importance(request, fixture, p, criterion):
    model = request.getfixturevalue(fixture).model
    scores = compute_scores(model, None, [criterion])[criterion]
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=torch.zeros(1, 1, 8, 8))
    reference = tp.importance.GroupMagnitudeImportance(p=p, group_reduction="first",
                                                       normalizer=None)
    for layer in prunable_layers(model):
        module = model.get_submodule(layer.name)
        fn = tp.prune_conv_out_channels if layer.kind == "conv" else tp.prune_linear_out_channels
        group = graph.get_pruning_group(module, fn, idxs=list(range(layer.n_units)))
        torch.testing.assert_close(scores[layer.name] ** p, reference(group).double(),
                                   rtol=1e-5, atol=0)


def test_a_registered_criterion_is_served_and_checked(digits_mlp):
    @register_criterion("test-width", description="unit index", needs_data=False,
                        needs_labels=False)
    def _width(ctx):
        return {layer.name: torch.arange(layer.n_units) for layer in ctx.layers}

    @register_criterion("test-bad", description="wrong shape", needs_data=False,
                        needs_labels=False)
    def _bad(ctx):
        return {layer.name: torch.zeros(2) for layer in ctx.layers}

    try:
        assert "test-width" in available_criteria()
        assert not get_criterion("test-width").needs_gradients
        scores = compute_scores(digits_mlp.model, None, "test-width")["test-width"]
        assert scores["fc2"].dtype == torch.float64 and scores["fc2"][-1] == 23
        with pytest.raises(PruneInfoError, match="test-bad gave scores of shape"):
            compute_scores(digits_mlp.model, None, ["test-bad"])
        with pytest.raises(ValueError, match="already registered"):
            register_criterion("mi", description="", needs_data=True, needs_labels=True)
    finally:
        CRITERIA.pop("test-width", None)
        CRITERIA.pop("test-bad", None)


def test_rank_units_orders_and_breaks_ties_by_index():
    scores = torch.tensor([0.5, 0.0, 0.5, 0.2, 0.0], dtype=torch.float64)
    assert rank_units(scores).tolist() == [1, 4, 3, 0, 2]
    assert rank_units(scores, "high").tolist() == [0, 2, 3, 1, 4]
    random_a = rank_units(scores, "random", seed=1)
    assert torch.equal(random_a, rank_units(scores, "random", seed=1))
    assert sorted(random_a.tolist()) == [0, 1, 2, 3, 4]
    with pytest.raises(PruneInfoError, match="unknown order"):
        rank_units(scores, "middle")
    with pytest.raises(PruneInfoError, match="NaN"):
        rank_units(torch.tensor([0.1, float("nan")]))


# --------------------------------------------------------------------------------------------
# torch-pruning adapter


def _kept_units(original_bias: torch.Tensor, pruned_bias: torch.Tensor) -> list[int]:
    """Indices of the original units that survive pruning, recognised by their bias."""
    return [int((original_bias == b).nonzero()[0]) for b in pruned_bias]


def test_base_pruner_with_mi_importance_removes_the_lowest_mi_units(digits, digits_mlp):
    model = copy.deepcopy(digits_mlp.model)
    mi = compute_scores(model, digits.val, ["mi"])["mi"]
    original = {name: model.get_submodule(name).bias.detach().clone() for name in mi}
    assert all(len(set(b.tolist())) == len(b) for b in original.values())
    pruner = tp.pruner.BasePruner(model, digits.val.x[:1], CriterionImportance(model, mi),
                                  pruning_ratio=0.25, ignored_layers=[model.out])
    pruner.step()
    assert (model.fc1.out_features, model.fc2.out_features) == (24, 18)
    for name in mi:
        kept = _kept_units(original[name], model.get_submodule(name).bias.detach())
        removed = sorted(set(range(len(mi[name]))) - set(kept))
        assert len(removed) == len(mi[name]) // 4
        assert mi[name][removed].max() <= mi[name][kept].min()
    assert model(digits.val.x[:3]).shape == (3, 10)


def test_importance_recomputes_its_criterion_between_iterative_steps(digits, digits_mlp):
    model = copy.deepcopy(digits_mlp.model)
    importance = CriterionImportance(model, criterion="mi", split=digits.val)
    pruner = tp.pruner.BasePruner(model, digits.val.x[:1], importance, pruning_ratio=0.5,
                                  iterative_steps=2, ignored_layers=[model.out])
    for _ in range(2):
        pruner.step()
    assert (model.fc1.out_features, model.fc2.out_features) == (16, 12)
    assert importance.scores()["fc1"].shape == (16,)

    stale = CriterionImportance(model, {"fc1": torch.zeros(32), "fc2": torch.zeros(24)})
    with pytest.raises(PruneInfoError, match="fc1 are for 32 units but the layer now has 16"):
        stale.scores()
    with pytest.raises(PruneInfoError, match="exactly one of scores= .* or criterion="):
        CriterionImportance(model)


def test_importance_with_a_data_free_criterion_needs_no_data():
    """`pi.CriterionImportance(model, criterion="magnitude")` prunes a ResNet with no split."""
    import torchvision

    import prune_info as pi

    model = torchvision.models.resnet18(num_classes=10).eval()
    x = torch.zeros(1, 3, 32, 32)
    pruner = tp.pruner.BasePruner(model, x, pi.CriterionImportance(model, criterion="magnitude"),
                                  pruning_ratio=0.5, ignored_layers=[model.fc])
    pruner.step()
    assert model.conv1.out_channels == 32 and model(x).shape == (1, 10)
