"""Physical pruning: removal equals ablation to zero, plans, history replay, costs, bad input.

"Ablated to zero" means the unit's *post-activation* output (what the next layer reads) is zero:
removing a unit also removes its BatchNorm channel, so the reference zeroes the output of the
activation module, not the Linear / Conv output (which BatchNorm would shift away from zero).
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from prune_info.errors import PruneInfoError
from prune_info.nn import layer_costs, prunable_layers, total_macs
from prune_info.pruning.allocation import plan_global, plan_layerwise, removal_count, removal_counts
from prune_info.pruning.config import PruneConfig
from prune_info.surgery import PrunePlan, apply_plan, history_entry, mask_plan, replay_history
from prune_info.zoo import build_model, parse_arch


def _random_plan(model: nn.Module, fraction: float, seed: int) -> PrunePlan:
    gen = torch.Generator().manual_seed(seed)
    remove, widths = {}, {}
    for layer in prunable_layers(model):
        n = layer.n_units
        remove[layer.name] = torch.randperm(n, generator=gen)[: removal_count(n, fraction)]
        widths[layer.name] = n
    return PrunePlan.from_indices(remove, widths)


def _ablated_reference(model: nn.Module, plan: PrunePlan) -> nn.Module:
    """A copy of ``model`` whose planned units output zero after their activation."""
    ref = copy.deepcopy(model).eval()
    acts = {layer.name: layer.act_module for layer in prunable_layers(ref)}

    def zero(idxs):
        def hook(module, inputs, output):
            output = output.clone()
            output[:, list(idxs)] = 0.0
            return output
        return hook

    for layer, idxs in plan.remove.items():
        ref.get_submodule(acts[layer]).register_forward_hook(zero(idxs))
    return ref


def _randomise_batchnorm(model: nn.Module, seed: int = 0) -> None:
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=gen))
            m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
            m.weight.data.copy_(torch.randn(n, generator=gen))
            m.bias.data.copy_(torch.randn(n, generator=gen))


# --------------------------------------------------------------------------------------------
# Removal equals ablation


def test_pruned_mlp_equals_units_ablated_to_zero(digits_mlp, digits):
    model = copy.deepcopy(digits_mlp.model).eval()
    plan = _random_plan(model, 0.5, seed=1)
    ref = _ablated_reference(model, plan)
    pruned = apply_plan(copy.deepcopy(model), plan, torch.zeros(2, 1, 8, 8))
    assert [layer.n_units for layer in prunable_layers(pruned)] == [16, 12]
    assert pruned.fc2.weight.shape == (12, 16) and pruned.out.weight.shape == (10, 12)
    x = digits.test.x
    with torch.no_grad():
        assert torch.allclose(pruned(x), ref(x), atol=1e-5, rtol=0)
    # exactly the chosen units are gone: surviving rows are the original rows, in order
    kept = plan.kept("fc1")
    assert torch.equal(pruned.fc1.weight, model.fc1.weight[kept])
    assert torch.equal(pruned.fc2.weight, model.fc2.weight[plan.kept("fc2")][:, kept])


def test_pruned_cnn_with_batchnorm_equals_post_activation_ablation(digits_cnn, digits):
    model = copy.deepcopy(digits_cnn.model).eval()
    _randomise_batchnorm(model)  # make BatchNorm's shift matter
    plan = _random_plan(model, 0.5, seed=2)
    assert plan.n_removed() == {"conv1": 3, "conv2": 4, "fc1": 8}
    pruned = apply_plan(copy.deepcopy(model), plan, torch.zeros(2, 1, 8, 8))
    assert pruned.conv2.weight.shape == (4, 3, 3, 3)
    assert pruned.cbn2.running_mean.shape == (4,)
    assert pruned.fc1.weight.shape == (8, 4 * 2 * 2)  # conv -> flatten -> linear coupling
    x = digits.test.x
    with torch.no_grad():
        out = pruned(x)
        assert torch.allclose(out, _ablated_reference(model, plan)(x), atol=1e-5, rtol=0)
        # zeroing the conv output instead (before BatchNorm) is a different model
        pre = copy.deepcopy(model)
        for layer, idxs in plan.remove.items():
            pre.get_submodule(layer).register_forward_hook(
                lambda m, i, o, idxs=idxs: o.index_fill(1, torch.tensor(idxs), 0.0))
        assert (pre(x) - out).abs().max() > 1e-2


def test_removal_equals_ablation_for_sigmoid_with_batchnorm(digits):
    arch = parse_arch("64-20-12-10", digits.input_shape, 10, act="sigmoid", batchnorm=True)
    torch.manual_seed(0)
    model = build_model(arch).eval()
    _randomise_batchnorm(model, seed=3)
    plan = _random_plan(model, 0.6, seed=3)
    pruned = apply_plan(copy.deepcopy(model), plan, torch.zeros(2, 1, 8, 8))
    x = digits.val.x
    with torch.no_grad():
        assert torch.allclose(pruned(x), _ablated_reference(model, plan)(x), atol=1e-5, rtol=0)


def test_layers_can_be_pruned_in_any_order_with_original_indices(digits_cnn, digits):
    model = copy.deepcopy(digits_cnn.model).eval()
    plan = _random_plan(model, 0.4, seed=4)
    reverse = PrunePlan(dict(reversed(list(plan.remove.items()))), plan.widths)
    a = apply_plan(copy.deepcopy(model), plan, torch.zeros(2, 1, 8, 8))
    b = apply_plan(copy.deepcopy(model), reverse, torch.zeros(2, 1, 8, 8))
    x = digits.val.x
    with torch.no_grad():
        assert torch.allclose(a(x), b(x), atol=1e-6, rtol=0)


def test_mask_keeps_shapes_and_equals_removal(digits_cnn, digits):
    model = copy.deepcopy(digits_cnn.model).eval()
    _randomise_batchnorm(model, seed=5)
    plan = _random_plan(model, 0.5, seed=5)
    masked = mask_plan(copy.deepcopy(model), plan, torch.zeros(2, 1, 8, 8))
    pruned = apply_plan(copy.deepcopy(model), plan, torch.zeros(2, 1, 8, 8))
    assert {k: v.shape for k, v in masked.state_dict().items()} == \
        {k: v.shape for k, v in model.state_dict().items()}
    assert masked.conv1.weight[list(plan.remove["conv1"])].abs().sum() == 0
    x = digits.test.x
    with torch.no_grad():
        assert torch.allclose(masked(x), pruned(x), atol=1e-5, rtol=0)


def test_tracing_works_under_no_grad_and_leaves_batchnorm_statistics_alone(digits_cnn):
    model = copy.deepcopy(digits_cnn.model).train()  # tracing must not update running stats
    before = model.cbn1.running_mean.clone()
    plan = PrunePlan.from_indices({"conv1": [0]}, {"conv1": 6})
    with torch.inference_mode():  # tracing needs autograd: apply_plan turns it back on
        apply_plan(model, plan, torch.randn(4, 1, 8, 8))
    assert torch.equal(model.cbn1.running_mean, before[1:])
    assert model.training
    with torch.no_grad():
        apply_plan(model, PrunePlan.from_indices({"fc1": [3]}, {"fc1": 16}),
                   torch.zeros(2, 1, 8, 8))
    assert model.fc1.out_features == 15


# --------------------------------------------------------------------------------------------
# Plans


def test_a_layer_never_loses_every_unit():
    with pytest.raises(PruneInfoError, match="fc1 would lose every one of its 3 units"):
        PrunePlan.from_indices({"fc1": [0, 1, 2]}, {"fc1": 3})
    assert removal_count(100, 0.5) == 50 and removal_count(6, 0.99) == 5
    assert removal_count(100, 0.29) == 29  # no float truncation to 28


@pytest.mark.parametrize("kwargs, message", [
    ({"amounts": 1.0}, r"outside \[0, 1\)"),
    ({"amounts": -0.1}, r"outside \[0, 1\)"),
    ({"amounts": [0.5, 0.5, 0.5]}, "3 values for 2 prunable layers"),
    ({"keep": [120, 5]}, "more than its 100 units"),
    ({"keep": [0, 5]}, "keep at least 1"),
    ({"keep": [5]}, "1 values for 2"),
    ({}, "exactly one"),
])
def test_removal_counts_reject_bad_input(kwargs, message):
    with pytest.raises(PruneInfoError, match=message):
        removal_counts({"fc1": 100, "fc2": 10}, **kwargs)


def test_removal_counts_per_layer():
    widths = {"fc1": 100, "fc2": 100}
    assert removal_counts(widths, amounts=0.5) == {"fc1": 50, "fc2": 50}
    assert removal_counts(widths, amounts=[0.5, 0.8]) == {"fc1": 50, "fc2": 80}
    assert removal_counts(widths, keep=[30, 20]) == {"fc1": 70, "fc2": 80}


def test_layerwise_plan_removes_lowest_or_highest_scores():
    scores = {"fc1": torch.tensor([0.3, 0.1, 0.9, 0.5]), "fc2": torch.tensor([2.0, 1.0, 3.0])}
    low = plan_layerwise(scores, amounts=0.5)
    assert low.remove == {"fc1": (0, 1), "fc2": (1,)}
    high = plan_layerwise(scores, keep=[1, 1], order="high")
    assert high.remove == {"fc1": (0, 2, 3), "fc2": (0, 2)}


def test_global_plan_never_empties_a_layer_and_reports_it():
    scores = {"fc1": torch.tensor([0.01, 0.02, 0.03, 0.04]),
              "fc2": torch.linspace(1.0, 2.0, 8).double()}
    plan, floor = plan_global(scores, 0.5, min_units=1)
    assert plan.n_removed() == {"fc1": 3, "fc2": 3}  # 6 of 12; fc1 stopped at 1 unit
    assert plan.remove["fc2"] == (0, 1, 2)
    assert floor == ["fc1"]
    plan, floor = plan_global(scores, 0.9, min_units=2)
    assert plan.widths_after() == {"fc1": 2, "fc2": 2} and floor == ["fc1", "fc2"]
    with pytest.raises(PruneInfoError, match="at least 1"):
        plan_global(scores, 0.5, min_units=0)


@pytest.mark.parametrize("changes, message", [
    ({"amount": 0.5, "keep": (3, 3)}, "exactly one"),
    ({}, "exactly one"),
    ({"amount": (1.2,)}, r"outside \[0, 1\)"),
    ({"amount": 0.5, "min_units": 0}, "at least 1"),
    ({"allocation": "global", "keep": (3, 3)}, "does not go with `allocation='global'`"),
    ({"allocation": "global", "amount": (0.5, 0.2)}, "one `amount`"),
    ({"allocation": "global", "max_drop": 1.0}, "drop `allocation='global'`"),
    ({"allocation": "max-drop", "max_drop": -1.0}, r"\[0, 100\)"),
])
def test_prune_config_rejects_bad_combinations(changes, message):
    with pytest.raises(PruneInfoError, match=message):
        PruneConfig(**changes).validate()


# --------------------------------------------------------------------------------------------
# User models, history replay and tracing failures


class _Functional(nn.Module):
    """A user model that calls its activation functionally and flattens by hand."""

    def __init__(self, detach: bool = False):
        super().__init__()
        self.fc1 = nn.Linear(64, 16)
        self.fc2 = nn.Linear(16, 12)
        self.out = nn.Linear(12, 10)
        self.detach = detach

    def forward(self, x):
        h = torch.relu(self.fc1(x.view(x.shape[0], -1)))
        if self.detach:  # breaks the autograd graph torch-pruning traces
            h = h.detach()
        return self.out(torch.relu(self.fc2(h)))


def test_replaying_history_rebuilds_a_user_model(digits):
    torch.manual_seed(0)
    model = _Functional().eval()
    example = torch.zeros(2, 1, 8, 8)
    plan = PrunePlan.from_indices({"fc1": [1, 5, 7], "fc2": [0, 11]}, {"fc1": 16, "fc2": 12})
    once = apply_plan(copy.deepcopy(model), plan, example)
    # a second step numbers the units of the once-pruned model
    again = PrunePlan.from_indices({"fc1": [0, 12]}, {"fc1": 13})
    twice = apply_plan(copy.deepcopy(once), again, example)
    masked = PrunePlan.from_indices({"fc2": [3]}, {"fc2": 10})
    history = [history_entry(p, mode=mode, allocation="layerwise", criterion="mi", order="low",
                             input_shape=(1, 8, 8))
               for p, mode in ((plan, "remove"), (again, "remove"), (masked, "mask"))]
    assert history[1]["widths_after"] == {"fc1": 11}
    fresh = replay_history(_Functional(), history)
    assert (fresh.fc1.out_features, fresh.fc2.in_features, fresh.fc2.out_features) == (11, 11, 10)
    fresh.load_state_dict(twice.state_dict())
    x = digits.val.x
    with torch.no_grad():
        assert torch.equal(fresh.eval()(x), twice(x))
        assert torch.allclose(once(x), _ablated_reference_functional(model, plan)(x),
                              atol=1e-5, rtol=0)
    with pytest.raises(PruneInfoError, match="expects 16 units in fc1 but the rebuilt model"):
        replay_history(_Functional(), history[:1] * 2)


def _ablated_reference_functional(model, plan):
    # ReLU without BatchNorm: zeroing the Linear output zeroes the post-activation output too
    ref = copy.deepcopy(model)
    for layer, idxs in plan.remove.items():
        ref.get_submodule(layer).register_forward_hook(
            lambda m, i, o, idxs=idxs: o.index_fill(1, torch.tensor(idxs), 0.0))
    return ref


class _Rolled(_Functional):
    """torch-pruning traces torch.roll as an element-wise op and removes the wrong inputs."""

    def forward(self, x):
        h = torch.roll(torch.relu(self.fc1(x.flatten(1))), 1, dims=1)
        return self.out(torch.relu(self.fc2(h)))


@pytest.mark.parametrize("model_cls, message", [
    (lambda: _Functional(detach=True), "layer fc1 does not appear in the traced forward pass"),
    (_Rolled, "wrong inputs downstream of layer fc1"),
])
def test_untraceable_layer_is_named_with_the_ignore_hint(model_cls, message):
    plan = PrunePlan.from_indices({"fc1": [0, 1]}, {"fc1": 16})
    for transform in (apply_plan, mask_plan):
        with pytest.raises(PruneInfoError, match=message + ".*`ignore`=fc1"):
            transform(model_cls().eval(), plan, torch.zeros(2, 1, 8, 8))
    ok = PrunePlan.from_indices({"fc2": [0, 1]}, {"fc2": 12})
    assert apply_plan(_Functional(detach=True), ok, torch.zeros(2, 1, 8, 8)).out.in_features == 10


def test_a_layer_missing_from_the_trace_is_left_out_and_the_rest_pruned():
    """A layer torch-pruning does not see run (here: its output detached from the autograd
    graph) is left out with the reason, not a failure of the whole prune (magnitude: no data)."""
    from prune_info.checkpoint import Checkpoint
    from prune_info.pruning.workflow import prune_checkpoint

    torch.manual_seed(0)
    ckpt = Checkpoint(_Functional(detach=True).eval(), dataset={"input_shape": [1, 8, 8]})
    result = prune_checkpoint(ckpt, None, PruneConfig(criterion="magnitude", amount=0.5))
    assert sorted(result.plan.remove) == ["fc2"]
    assert result.checkpoint.model.fc2.out_features == 6
    assert result.checkpoint.model.fc1.out_features == 16
    (row,) = [row for row in result.summary.layers if row.name == "fc1"]
    assert row.ignored and not row.removed
    assert any("fc1" in w and "does not appear in the traced forward pass" in w
               for w in result.summary.warnings), result.summary.warnings


def test_a_dependency_group_that_runs_away_is_left_out_not_fatal(monkeypatch):
    """torch-pruning's group of one layer growing without end (torchvision's Swin-T took the
    machine's 24 GB) fails under a memory ceiling; that layer is left out, the rest pruned."""
    import torch_pruning as tp

    import prune_info.surgery.graph as graph
    from prune_info.checkpoint import Checkpoint
    from prune_info.pruning.workflow import prune_checkpoint

    monkeypatch.setattr(graph, "GROUP_MEMORY", 64 << 20)
    real = tp.DependencyGraph.get_pruning_group

    def runaway(self, module, fn, idxs):
        if module.out_features == 16:  # fc1: more than the ceiling lets it have
            return bytearray(512 << 20)
        return real(self, module, fn, idxs)

    monkeypatch.setattr(tp.DependencyGraph, "get_pruning_group", runaway)
    torch.manual_seed(0)
    ckpt = Checkpoint(_Functional().eval(), dataset={"input_shape": [1, 8, 8]})
    result = prune_checkpoint(ckpt, None, PruneConfig(criterion="magnitude", amount=0.5))
    assert sorted(result.plan.remove) == ["fc2"]
    assert result.checkpoint.model.fc1.out_features == 16
    assert any("fc1" in w and "dependency group of its outputs grew past" in w
               for w in result.summary.warnings), result.summary.warnings


class _Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(64, 8)
        self.fc2 = nn.Linear(8, 8)
        self.out = nn.Linear(8, 10)

    def forward(self, x):
        h = torch.relu(self.fc1(x.flatten(1)))
        return self.out(torch.relu(self.fc2(h)) + h)


def test_coupled_layers_must_lose_the_same_units():
    widths = {"fc1": 8, "fc2": 8}
    bad = PrunePlan.from_indices({"fc1": [0, 1], "fc2": [2, 3]}, widths)
    with pytest.raises(PruneInfoError, match="fc1 and fc2 are coupled.*`ignore`=fc2"):
        apply_plan(_Residual(), bad, torch.zeros(2, 1, 8, 8))
    same = PrunePlan.from_indices({"fc1": [0, 1], "fc2": [0, 1]}, widths)
    model = apply_plan(_Residual(), same, torch.zeros(2, 1, 8, 8))
    assert model.fc1.out_features == model.fc2.out_features == model.out.in_features == 6


# --------------------------------------------------------------------------------------------
# Costs


def test_layer_costs_count_params_and_macs(digits):
    arch = parse_arch("64-100-100-10", digits.input_shape, 10)
    model = build_model(arch)
    before = layer_costs(model, (1, 8, 8))
    assert before["fc1"] == {"params": 6500, "macs": 6400}
    assert before["out"] == {"params": 1010, "macs": 1000}
    plan = _random_plan(model, 0.5, seed=0)
    pruned = apply_plan(model, plan, torch.zeros(2, 1, 8, 8))
    after = layer_costs(pruned, (1, 8, 8))
    assert after["fc1"]["macs"] == 3200 and after["fc2"]["macs"] == 2500
    assert total_macs(pruned, (1, 8, 8)) == 3200 + 2500 + 500
    cnn = build_model(parse_arch("c6-c8-f16", digits.input_shape, 10))
    costs = layer_costs(cnn, (1, 8, 8))
    assert costs["conv1"]["macs"] == 6 * 8 * 8 * 9
    assert costs["conv2"]["macs"] == 8 * 4 * 4 * 6 * 9
    assert costs["fc1"]["macs"] == 8 * 2 * 2 * 16
