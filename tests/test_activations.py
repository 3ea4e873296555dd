"""Tests for prune_info.capture: where unit outputs are read, streaming, hooks, bad input."""

import pytest
import torch
from torch import nn

from prune_info.capture import CaptureOptions, iter_unit_outputs, unit_outputs
from prune_info.errors import PruneInfoError
from prune_info.nn import prunable_layers
from prune_info.zoo import build_model, parse_arch


def _all_hooks(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


@torch.no_grad()
def test_post_activation_outputs_are_the_activation_outputs(digits, digits_mlp):
    model = digits_mlp.model
    x = digits.val.x
    out = unit_outputs(model, prunable_layers(model), x)
    h1 = torch.relu(model.fc1(x.flatten(1)))
    h2 = torch.relu(model.fc2(h1))
    assert set(out) == {"fc1", "fc2"}
    assert out["fc1"].dtype == torch.float32 and out["fc1"].shape == (len(x), 32)
    torch.testing.assert_close(out["fc1"], h1, rtol=0, atol=1e-6)
    torch.testing.assert_close(out["fc2"], h2, rtol=0, atol=1e-6)


@torch.no_grad()
def test_pre_activation_reads_the_batchnorm_output_before_the_activation(digits):
    arch = parse_arch("64-12-10", digits.input_shape, 10, "relu", "none", batchnorm=True)
    torch.manual_seed(0)
    model = build_model(arch).eval()
    model.bn1.running_mean.uniform_(-1, 1)  # make the BatchNorm do something in eval mode
    x = digits.val.x[:50]
    out = unit_outputs(model, prunable_layers(model), x, CaptureOptions(pre_activation=True))
    expected = model.bn1(model.fc1(x.flatten(1)))
    torch.testing.assert_close(out["fc1"], expected, rtol=0, atol=1e-6)
    assert (out["fc1"] < 0).any()  # really before the ReLU


@torch.no_grad()
def test_pre_activation_survives_an_inplace_activation():
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 6), nn.ReLU(inplace=True), nn.Linear(6, 2))
    torch.manual_seed(1)
    x = torch.randn(40, 1, 2, 2)
    out = unit_outputs(model, prunable_layers(model), x, CaptureOptions(pre_activation=True))
    torch.testing.assert_close(out["1"], model[1](x.flatten(1)))
    assert (out["1"] < 0).any()


@pytest.mark.parametrize("reduce", ["mean", "max"])
@torch.no_grad()
def test_conv_channels_are_reduced_over_space_after_the_activation(digits, digits_cnn, reduce):
    model = digits_cnn.model
    x = digits.val.x[:64]
    layers = prunable_layers(model)
    assert [layer.name for layer in layers] == ["conv1", "conv2", "fc1"]
    out = unit_outputs(model, layers, x, CaptureOptions(channel_reduce=reduce))
    maps = model.cact1(model.cbn1(model.conv1(x)))  # before pooling
    expected = maps.mean(dim=(2, 3)) if reduce == "mean" else maps.amax(dim=(2, 3))
    assert out["conv1"].shape == (64, 6)
    torch.testing.assert_close(out["conv1"], expected, rtol=0, atol=1e-6)
    assert out["fc1"].shape == (64, 16)


@torch.no_grad()
def test_streamed_batches_concatenate_to_the_whole_set(digits, digits_mlp):
    model, x = digits_mlp.model, digits.val.x
    layers = prunable_layers(model)
    batches = list(iter_unit_outputs(model, layers, x, CaptureOptions(batch_size=100)))
    assert [b["fc1"].shape[0] for b in batches] == [100, 100, 100, 59]
    whole = unit_outputs(model, layers, x)
    for name in ("fc1", "fc2"):
        torch.testing.assert_close(torch.cat([b[name] for b in batches]), whole[name],
                                   rtol=0, atol=1e-5)


def test_hooks_are_removed_and_training_mode_restored(digits, digits_mlp):
    model, x = digits_mlp.model, digits.val.x
    layers = prunable_layers(model)
    model.train()
    try:
        for _ in iter_unit_outputs(model, layers, x, CaptureOptions(batch_size=50)):
            assert not model.training and _all_hooks(model) > 0
            break  # an abandoned iteration must clean up too
        assert _all_hooks(model) == 0 and model.training
        with pytest.raises(PruneInfoError):
            list(iter_unit_outputs(model, layers, x[:, :, :4, :4]))
        assert _all_hooks(model) == 0 and model.training
    finally:
        model.eval()


def test_data_that_does_not_fit_the_model_is_refused_with_both_sizes(digits_mlp):
    model = digits_mlp.model
    with pytest.raises(PruneInfoError, match=r"does not fit the model.*28x28 \(784 values\).*"
                                             r"fc1 expects 64 input values.*fix"):
        unit_outputs(model, prunable_layers(model), torch.zeros(5, 1, 28, 28))


def test_a_model_without_hidden_layers_is_refused():
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    assert prunable_layers(model) == []
    with pytest.raises(PruneInfoError, match="no prunable layer.*fix"):
        unit_outputs(model, [], torch.zeros(3, 1, 2, 2))


@pytest.mark.parametrize("kwargs, message", [
    ({"channel_reduce": "median"}, "unknown channel reduction 'median'.*mean, max"),
    ({"batch_size": 0}, "batch size must be a positive integer"),
])
def test_bad_capture_options_are_refused(kwargs, message):
    with pytest.raises(PruneInfoError, match=message):
        CaptureOptions(**kwargs)


def test_an_activation_module_shared_by_two_layers_is_read_at_each_layers_own_call():
    """One ReLU object after both layers: the data flow tells the two calls apart."""
    act = nn.ReLU()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3), act, nn.Linear(3, 3), act,
                          nn.Linear(3, 2))
    x = torch.randn(5, 1, 2, 2)
    got = unit_outputs(model, prunable_layers(model), x)
    with torch.no_grad():
        h1 = torch.relu(model[1](x.flatten(1)))
        h2 = torch.relu(model[3](h1))
    torch.testing.assert_close(got["1"], h1)
    torch.testing.assert_close(got["3"], h2)
    assert [layer.act_module for layer in prunable_layers(model)] == ["2", "2"]
    assert _all_hooks(model) == 0
