import pytest
import torch
from helpers import plant_units

from prune_info.errors import PruneInfoError
from prune_info.nn import count_parameters, prunable_layers
from prune_info.zoo import ArchSpec, arch_spec, build_model, dropout_rates, parse_arch


def test_mlp_spec_builds_named_layers_and_units():
    arch = parse_arch("784-100-100-10", (1, 28, 28), 10, "relu", "l2")
    model = build_model(arch)
    layers = prunable_layers(model)
    assert [(la.name, la.n_units, la.act_module, la.activation) for la in layers] == [
        ("fc1", 100, "act1", "relu"), ("fc2", 100, "act2", "relu")]
    assert layers[0].unit_names()[:2] == ["fc1:0", "fc1:1"]
    assert count_parameters(model) == 784 * 100 + 100 + 100 * 100 + 100 + 100 * 10 + 10
    assert arch_spec(arch) == "784-100-100-10"


def test_dropout_rates_follow_the_paper():
    assert dropout_rates(2) == [0.3, 0.4]
    assert dropout_rates(4) == [0.2, 0.4, 0.2, 0.4]
    model = build_model(parse_arch("64-20-20-10", (1, 8, 8), 10, "sigmoid", "dropout"))
    assert [m.p for m in model if isinstance(m, torch.nn.Dropout)] == [0.3, 0.4]


def test_bn_dropout_puts_batchnorm_between_layer_and_activation():
    model = build_model(parse_arch("64-20-20-10", (1, 8, 8), 10, "tanh", "bn-dropout"))
    layers = prunable_layers(model)
    assert [(layer.norm_module, layer.act_module, layer.activation) for layer in layers] == [
        ("bn1", "act1", "tanh"), ("bn2", "act2", "tanh")]


def test_cnn_spec_has_prunable_channels_and_hidden_units():
    arch = parse_arch("c8-c16-f32", (1, 28, 28), 10)
    model = build_model(arch)
    assert [(layer.name, layer.kind, layer.n_units) for layer in prunable_layers(model)] == [
        ("conv1", "conv", 8), ("conv2", "conv", 16), ("fc1", "linear", 32)]
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    assert arch_spec(arch) == "c8-c16-f32"


def test_cnn_stages_pool_once_after_their_last_convolution():
    arch = parse_arch("c8-c16-c32.32-c64.64-c64.64-f64-f64", (1, 32, 32), 10)  # VGG-11 / 8
    assert arch["conv"] == [8, 16, 32, 32, 64, 64, 64, 64]
    assert arch["conv_stages"] == [1, 1, 2, 2, 2]
    model = build_model(arch)
    pools = [name for name, m in model.named_children() if isinstance(m, torch.nn.MaxPool2d)]
    assert pools == ["pool1", "pool2", "pool4", "pool6", "pool8"]  # 32 -> 1 in five stages
    assert model.fc1.in_features == 64
    assert model(torch.zeros(2, 1, 32, 32)).shape == (2, 10)
    assert arch_spec(arch) == "c8-c16-c32.32-c64.64-c64.64-f64-f64"
    assert ArchSpec.from_dict(arch).to_dict() == arch
    assert "conv_stages" not in parse_arch("c8-c16", (1, 8, 8), 10)  # old dicts stay as they were
    pruned = {**arch, "conv": [8, 16, 30, 31, 64, 64, 64, 64]}  # widths of one stage may differ
    assert arch_spec(pruned) == "c8-c16-c30.31-c64.64-c64.64-f64-f64"
    with pytest.raises(PruneInfoError, match="does not split the 8 convolutions"):
        build_model({**arch, "conv_stages": [1, 1, 2, 2]})


@pytest.mark.parametrize("spec,match", [
    ("784-100-10", "expects 784 inputs but the data has 64"),
    ("64-100-7", "7 outputs but the data has 10 classes"),
    ("64-0-10", "at least 1 unit"),
    ("banana", "cannot parse"),
    ("c8-c8-c8-c8", "shrink"),
    ("c8.8.8-c8.8-c8-c8", "4 pooling stages shrink"),
    ("c8.-c8", "cannot parse"),
])
def test_bad_specs_are_explained(spec, match):
    with pytest.raises(PruneInfoError, match=match):
        parse_arch(spec, (1, 8, 8), 10)


def test_planted_units_behave_as_planted(digits):
    torch.manual_seed(0)
    model = build_model(parse_arch("64-16-10", (1, 8, 8), 10))
    plant_units(model, "fc1", digits.val.x, digits.val.y, dead=(0,), always_active=(1,),
                duplicates=((2, 3),), selective={4: 0})
    captured = {}
    model.act1.register_forward_hook(lambda m, i, o: captured.setdefault("t", o))
    model(digits.val.x)
    t = captured["t"]
    assert torch.all(t[:, 0] == 0)
    assert torch.all(t[:, 1] == 1)
    assert torch.equal(t[:, 2], t[:, 3])
    fires = t[:, 4] > 0
    is_zero = digits.val.y == 0
    # the detector fires for (nearly) all zeros and (nearly) nothing else
    assert fires[is_zero].float().mean() > 0.95
    assert fires[~is_zero].float().mean() < 0.05
