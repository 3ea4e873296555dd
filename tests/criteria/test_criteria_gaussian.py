"""Gaussian-copula, synergy and Taylor criteria (prune_info.criteria.gaussian and .baselines)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import plant_units

from prune_info.capture import CaptureOptions, unit_outputs
from prune_info.checkpoint import clone_model
from prune_info.criteria.context import compute_scores
from prune_info.criteria.options import ScoreOptions
from prune_info.criteria.ranking import rank_units
from prune_info.criteria.registry import available_criteria, get_criterion
from prune_info.data import Split
from prune_info.errors import PruneInfoError
from prune_info.measures.gaussian import gcmi_mixture_cd, gcmi_model_cd
from prune_info.measures.multiplets import search_multiplets
from prune_info.nn import prunable_layers


@pytest.fixture(scope="module")
def small_val(digits):
    """300 validation samples: enough for every estimator, quick for the searches."""
    return Split(digits.val.x[:300], digits.val.y[:300])


@pytest.fixture(scope="module")
def pre_acts(digits_mlp, small_val):
    layers = prunable_layers(digits_mlp.model)
    out = unit_outputs(digits_mlp.model, layers, small_val.x, CaptureOptions(pre_activation=True))
    return {k: v.double().numpy() for k, v in out.items()}


def test_plugin_criteria_are_registered_with_their_needs():
    names = available_criteria()
    for name in ("gcmi-model", "gcmi-mixture", "synergy", "taylor"):
        assert name in names
    assert get_criterion("taylor").needs_gradients
    assert not get_criterion("gcmi-model").needs_gradients
    assert get_criterion("synergy").needs_labels


def test_gcmi_criteria_equal_the_estimators_on_pre_activations(digits_mlp, small_val, pre_acts):
    y = small_val.y.numpy()
    # the post-activation option of the discrete criteria does not change the Gaussian reading
    scores = compute_scores(digits_mlp.model, small_val, ["gcmi-model", "gcmi-mixture"],
                            options=ScoreOptions(seed=3, pre_activation=False))
    for name, acts in pre_acts.items():
        np.testing.assert_allclose(scores["gcmi-model"][name].numpy(),
                                   gcmi_model_cd(acts, y, seed=3), rtol=0, atol=1e-12)
        np.testing.assert_allclose(scores["gcmi-mixture"][name].numpy(),
                                   gcmi_mixture_cd(acts, y, seed=3), rtol=0, atol=1e-12)
        assert scores["gcmi-model"][name].max() > 0.3  # trained units carry class information


def test_synergy_top_k_keeps_the_greedy_multiplet(digits_mlp, small_val, pre_acts):
    y = small_val.y.numpy()
    scores = compute_scores(digits_mlp.model, small_val, "synergy", layers=["fc2"])
    fc2 = scores["synergy"]["fc2"]
    assert sorted(fc2.tolist()) == list(range(1, 25))  # a permutation of 24..1
    res = search_multiplets(pre_acts["fc2"], y, beam_width=0, seed=0)
    assert res.max_exhaustive == 6
    order = rank_units(fc2, "high")
    for k in range(6, 25):
        assert sorted(order[:k].tolist()) == list(res.sizes[k].synergy_units), k
    assert res.sizes[6].synergy_method == "exhaustive"
    assert res.sizes[10].synergy_method == "greedy"


def test_taylor_ranks_a_planted_dead_unit_lowest(digits_mlp, small_val):
    model = plant_units(clone_model(digits_mlp.model), "fc1", dead=(5,))
    scores = compute_scores(model, small_val, "taylor")["taylor"]
    fc1 = scores["fc1"]
    assert fc1[5] == 0.0
    assert int(rank_units(fc1, "low")[0]) == 5
    assert (fc1[torch.arange(32) != 5] > 0).sum() >= 20
    assert scores["fc2"].shape == (24,)


def test_taylor_matches_activation_times_gradient_by_hand(digits_mlp, small_val):
    model = digits_mlp.model
    x, y = small_val.x[:50], small_val.y[:50]
    scores = compute_scores(model, Split(x, y), "taylor",
                            options=ScoreOptions(batch_size=16))["taylor"]
    # by hand, one sample at a time
    acts = {}
    handle = model.get_submodule("act1").register_forward_hook(
        lambda m, i, o: acts.__setitem__("a", o))
    total = torch.zeros(32, dtype=torch.float64)
    try:
        for n in range(50):
            out = model(x[n : n + 1])
            loss = torch.nn.functional.cross_entropy(out, y[n : n + 1])
            (grad,) = torch.autograd.grad(loss, acts["a"])
            total += (acts["a"] * grad).abs()[0].double().detach()
    finally:
        handle.remove()
    np.testing.assert_allclose(scores["fc1"].numpy(), (total / 50).numpy(), rtol=1e-5,
                               atol=1e-9)
    # pre-activation reading gives the same products for ReLU units
    pre = compute_scores(model, Split(x, y), "taylor",
                         options=ScoreOptions(pre_activation=True))["taylor"]
    np.testing.assert_allclose(pre["fc1"].numpy(), scores["fc1"].numpy(), rtol=1e-5, atol=1e-9)


def test_gaussian_criteria_refuse_too_few_samples_naming_the_layer(digits_mlp, digits):
    tiny = Split(digits.val.x[:20], digits.val.y[:20])
    with pytest.raises(PruneInfoError, match="fc1: 20 samples for 32 units"):
        compute_scores(digits_mlp.model, tiny, "synergy")
