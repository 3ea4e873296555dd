"""An activation module called twice (torchvision's BasicBlock): each layer's units are the call
that consumes its own output, read, masked and differentiated there and nowhere else."""

from __future__ import annotations

import copy

import pytest
import torch
import torchvision
from torch import nn
from torch.nn import functional as F

from prune_info.analysis.curves import layerwise_curves, naive_curves, network_curves
from prune_info.capture import CaptureOptions, unit_hooks, unit_outputs
from prune_info.criteria.baselines import taylor_scores
from prune_info.criteria.context import compute_scores
from prune_info.data import Split
from prune_info.nn import count_correct, prunable_layers, resolve_layers
from prune_info.surgery import PrunePlan, apply_plan

pytestmark = pytest.mark.usefixtures("one_thread")


class SharedReluBlock(nn.Module):
    """A BasicBlock in miniature: one in-place ReLU after bn1 and after the residual ``+=``."""

    def __init__(self, channels: int = 6, n_classes: int = 4):
        super().__init__()
        self.conv1 = nn.Conv2d(3, channels, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(channels)
        self.fc = nn.Linear(channels, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(h))
        out += h
        out = self.relu(out)
        return self.fc(out.mean(dim=(2, 3)))

    def by_hand(self, x: torch.Tensor, zero1=(), zero2=()) -> torch.Tensor:
        """The same forward written out, with channels of bn1 / bn2 zeroed before the add."""
        a = self.bn1(self.conv1(x)).clone()
        a[:, list(zero1)] = 0
        a = F.relu(a)
        b = self.bn2(self.conv2(a)).clone()
        b[:, list(zero2)] = 0
        return self.fc(F.relu(b + a).mean(dim=(2, 3)))


def _randomise_bn(model: nn.Module, seed: int) -> nn.Module:
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.3)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            with torch.no_grad():
                m.bias.copy_(torch.randn(m.num_features, generator=gen) * 0.3)
    return model


@pytest.fixture(scope="module")
def resnet():
    torch.manual_seed(0)
    return torchvision.models.resnet18(num_classes=10).eval()


@pytest.fixture(scope="module")
def x32():
    return torch.randn(16, 3, 32, 32, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def block():
    torch.manual_seed(0)
    model = _randomise_bn(SharedReluBlock(), 0).eval()
    with torch.no_grad():
        model.fc.weight.mul_(20.0)  # logits that depend on the input, not only on the bias
    return model


@pytest.fixture(scope="module")
def block_split(block):
    gen = torch.Generator().manual_seed(2)
    # a random shift per sample and channel, so that the predictions differ between samples
    x = torch.randn(48, 3, 6, 6, generator=gen) + 2.0 * torch.randn(48, 3, 1, 1, generator=gen)
    with torch.no_grad():
        y = block(x).argmax(1)
    return Split(x, y)


def _basic_blocks(model: nn.Module) -> dict[str, nn.Module]:
    return {name: m for name, m in model.named_modules()
            if isinstance(m, torchvision.models.resnet.BasicBlock)}


# --------------------------------------------------------------------------------------------
# Capture


@torch.no_grad()
def test_resnet_conv1_units_are_relu_of_bn1_and_not_the_relu_after_the_residual_add(resnet,
                                                                                      x32):
    blocks = _basic_blocks(resnet)
    layers = {layer.name: layer for layer in prunable_layers(resnet)}
    assert len(blocks) == 8
    bn1_out, bn2_out, relu_calls = {}, {}, {}
    handles = []
    for name, blk in blocks.items():
        assert (layers[f"{name}.conv1"].norm_module, layers[f"{name}.conv1"].act_module) == (
            f"{name}.bn1", f"{name}.relu")
        relu_calls[name] = []
        # clones: the in-place ReLU and the residual += overwrite the modules' outputs
        handles += [
            blk.bn1.register_forward_hook(lambda m, i, o, n=name: bn1_out.update({n: o.clone()})),
            blk.bn2.register_forward_hook(lambda m, i, o, n=name: bn2_out.update({n: o.clone()})),
            blk.relu.register_forward_hook(lambda m, i, o, n=name: relu_calls[n].append(o.clone())),
        ]
    try:
        resnet(x32)
    finally:
        for h in handles:
            h.remove()
    post = unit_outputs(resnet, list(layers.values()), x32, CaptureOptions(batch_size=16))
    pre = unit_outputs(resnet, list(layers.values()), x32,
                       CaptureOptions(batch_size=16, pre_activation=True))
    for name in blocks:
        assert len(relu_calls[name]) == 2  # the shared module really runs twice
        want = F.relu(bn1_out[name]).mean(dim=(2, 3))
        assert torch.equal(relu_calls[name][0].mean(dim=(2, 3)), want)
        assert torch.equal(post[f"{name}.conv1"], want)
        assert not torch.allclose(post[f"{name}.conv1"], relu_calls[name][1].mean(dim=(2, 3)))
        assert torch.equal(pre[f"{name}.conv1"], bn1_out[name].mean(dim=(2, 3)))
        # the block's last conv has no activation of its own: read before the addition
        assert torch.equal(post[f"{name}.conv2"], bn2_out[name].mean(dim=(2, 3)))
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in resnet.modules())


def test_an_operation_between_the_norm_and_its_activation_reads_the_norm_output():
    """``act(bn(fc1(x)) * 2.0)``: the activation does not take the norm's output as it is, so
    the units are read at the documented fallback point, the norm's output (and said so:
    the layer has no activation)."""
    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.bn, self.act = nn.Linear(4, 3), nn.BatchNorm1d(3), nn.ReLU()
            self.out = nn.Linear(3, 2)

        def forward(self, x):
            return self.out(self.act(self.bn(self.fc1(x)) * 2.0))

    torch.manual_seed(0)
    model = Scaled().eval()
    x = torch.randn(5, 4)
    got = unit_outputs(model, prunable_layers(model), x)["fc1"]
    (layer,) = prunable_layers(model)
    assert (layer.norm_module, layer.act_module) == ("bn", None)
    with torch.no_grad():
        torch.testing.assert_close(got, model.bn(model.fc1(x)))
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


# --------------------------------------------------------------------------------------------
# Ablation and verification


@torch.no_grad()
def test_masking_layer1_0_conv1_equals_zeroing_bn1_channels_before_the_first_relu(resnet, x32):
    (layer,) = resolve_layers(resnet, ["layer1.0.conv1"])
    idxs = torch.tensor([0, 3, 7, 40])

    def zero(_layer, value):
        return value.index_fill(1, idxs, 0.0)

    with unit_hooks(resnet, [layer], zero):
        masked = resnet(x32)
    handle = resnet.layer1[0].bn1.register_forward_hook(lambda m, i, o: o.index_fill(1, idxs, 0.0))
    try:
        by_hand = resnet(x32)
    finally:
        handle.remove()
    assert torch.equal(masked, by_hand)
    # what hooking the shared module itself does: both calls masked, other logits
    handle = resnet.layer1[0].relu.register_forward_hook(lambda m, i, o: o.index_fill(1, idxs, 0.0))
    try:
        both_calls = resnet(x32)
    finally:
        handle.remove()
    assert not torch.allclose(both_calls, by_hand)


def test_resnet_curves_count_like_the_model_zeroed_by_hand(resnet, x32):
    with torch.no_grad():
        y = resnet(x32).argmax(1)
    split = Split(x32, y)
    first = [5, 0, 17, 63]
    order = torch.tensor(first + [i for i in range(64) if i not in first])
    counts = layerwise_curves(resnet, "layer1.0.conv1", order[None], split, max_k=4)
    want = []
    for k in range(5):
        idxs = order[:k]
        handle = resnet.layer1[0].bn1.register_forward_hook(
            lambda m, i, o, idxs=idxs: o.index_fill(1, idxs, 0.0))
        try:
            want.append(count_correct(resnet, split))
        finally:
            handle.remove()
    assert counts.tolist() == [want]


@pytest.mark.parametrize("ablate_to", ["zero", "mean"])
def test_resnet_curves_run_only_the_rest_of_the_traced_network(resnet, x32, ablate_to):
    from prune_info.analysis.curves import unit_means

    with torch.no_grad():
        y = resnet(x32).argmax(1)
    split = Split(x32, y)
    means = unit_means(resnet, split, layers=["layer2.1.conv1"]) if ablate_to == "mean" else None
    torch.manual_seed(0)
    orders = torch.stack([torch.randperm(128) for _ in range(3)])
    calls = []
    # (the tracer runs hooks too, on proxies: only real calls are counted)
    handle = resnet.conv1.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    info = {}
    try:
        fast = layerwise_curves(resnet, "layer2.1.conv1", orders, split, at_k=[0, 1, 40, 128],
                                ablate_to=ablate_to, means=means, info=info)
    finally:
        handle.remove()
    assert info["cut"] == "traced"
    # the first layer, before the cut: the check (2 samples) and sizing (1), then once for the
    # batch, not once per mask
    assert [c for c in calls if isinstance(c, int)] == [2, 1, len(x32)]
    naive = naive_curves(resnet, orders, split, layers="layer2.1.conv1",
                         at_k=[0, 1, 40, 128], ablate_to=ablate_to, means=means)
    assert torch.equal(fast, naive)
    assert int(fast[:, 0].min()) == len(split) and int(fast[:, -1].max()) < len(split)


def test_resnet_whole_network_curves_mask_the_later_layers_inside_the_cut(resnet, x32):
    with torch.no_grad():
        split = Split(x32, resnet(x32).argmax(1))
    layers = ["layer1.1.conv1", "layer2.1.conv1", "layer3.0.conv1"]  # 64 + 128 + 256 units
    torch.manual_seed(1)
    orders = torch.stack([torch.randperm(448) for _ in range(2)])
    calls = []
    handle = resnet.conv1.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    try:
        fast = network_curves(resnet, orders, split, layers=layers, at_k=[0, 50, 200, 448])
    finally:
        handle.remove()
    assert [c for c in calls if isinstance(c, int)] == [2, 1, len(x32)]  # before: once
    naive = naive_curves(resnet, orders, split, layers=layers, at_k=[0, 50, 200, 448])
    assert torch.equal(fast, naive)
    assert int(fast[:, 1:].min()) < len(split)  # the later layers' masks do something


class _SizeBeforeCut(nn.Module):
    """Reads the batch size before the layer and uses it after (a traced int, not a tensor)."""

    def __init__(self):
        super().__init__()
        self.conv, self.bn, self.act = nn.Conv2d(3, 6, 3), nn.BatchNorm2d(6), nn.ReLU()
        self.fc = nn.Linear(6 * 30 * 30, 4)

    def forward(self, x):
        b = x.size(0)
        return self.fc(self.act(self.bn(self.conv(x))).view(b, -1))


class _Untraceable(_SizeBeforeCut):
    def forward(self, x):
        if float(x.sum()) > 1e9:  # control flow on a value: torch.fx cannot trace it
            x = -x
        return self.fc(self.act(self.bn(self.conv(x))).flatten(1))


@pytest.mark.parametrize("model_type", [_SizeBeforeCut, _Untraceable])
def test_models_that_cannot_be_cut_run_whole_with_the_same_counts(model_type, x32):
    torch.manual_seed(0)
    model = _randomise_bn(model_type(), 1).eval()
    with torch.no_grad():
        split = Split(x32, model(x32).argmax(1))
    orders = torch.stack([torch.randperm(6) for _ in range(2)])
    info = {}
    fast = layerwise_curves(model, "conv", orders, split, info=info)
    assert info["cut"] == "none"
    assert torch.equal(fast, naive_curves(model, orders, split, layers="conv"))


def test_shared_relu_curves_equal_the_naive_loop_and_the_hand_written_model(block, block_split):
    torch.manual_seed(3)
    orders = torch.stack([torch.randperm(6) for _ in range(3)])
    batched = layerwise_curves(block, "conv1", orders, block_split, method="batched")
    naive = naive_curves(block, orders, block_split, layers="conv1")
    assert torch.equal(batched, naive)
    with torch.no_grad():
        want = [[int((block.by_hand(block_split.x, zero1=order[:k].tolist()).argmax(1)
                      == block_split.y).sum()) for k in range(7)] for order in orders]
    assert batched.tolist() == want
    assert int(batched[:, 1:].min()) < len(block_split)  # ablation changes predictions
    global_orders = torch.stack([torch.randperm(12) for _ in range(2)])
    assert torch.equal(network_curves(block, global_orders, block_split),
                       naive_curves(block, global_orders, block_split))


def test_pruning_the_shared_relu_block_passes_its_verification(block):
    model = copy.deepcopy(block)
    x = torch.randn(4, 3, 6, 6, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        # conv1 and conv2 are added, so torch-pruning removes the channels from both
        want = block.by_hand(x, zero1=(1, 4), zero2=(1, 4))
    plan = PrunePlan({"conv1": (1, 4)}, {"conv1": 6, "conv2": 6})
    pruned = apply_plan(model, plan, torch.zeros(2, 3, 6, 6), verify=True)
    assert pruned.conv1.out_channels == 4
    with torch.no_grad():
        assert torch.allclose(pruned.eval()(x), want, atol=1e-5)


# --------------------------------------------------------------------------------------------
# Criteria


def test_every_resnet_conv_gets_one_score_per_channel(resnet, x32):
    split = Split(x32, torch.arange(16) % 10)
    criteria = ["mi", "entropy", "kl", "random", "magnitude"]
    scores = compute_scores(resnet, split, criteria)
    convs = {name: m.out_channels for name, m in resnet.named_modules()
             if isinstance(m, nn.Conv2d)}
    assert set(scores) == set(criteria)
    for criterion in criteria:
        assert {name: int(t.numel()) for name, t in scores[criterion].items()} == convs
        assert all(bool(torch.isfinite(t).all()) for t in scores[criterion].values())


def test_taylor_on_the_shared_relu_block_equals_the_hand_computed_value(block, block_split):
    layers = resolve_layers(block, ["conv1", "conv2"])
    got = taylor_scores(block, block_split, layers, batch_size=len(block_split))
    x, y = block_split.x, block_split.y
    n = len(block_split)

    def score(act: torch.Tensor, loss: torch.Tensor) -> torch.Tensor:
        (grad,) = torch.autograd.grad(loss, [act])
        prod = (act.detach() * grad).flatten(2).sum(dim=2)
        return prod.abs().sum(dim=0).to(torch.float64) / n

    a = F.relu(block.bn1(block.conv1(x))).detach().requires_grad_(True)
    rest = block.fc(F.relu(block.bn2(block.conv2(a)) + a).mean(dim=(2, 3)))
    want1 = score(a, F.cross_entropy(rest, y, reduction="sum"))
    b = block.bn2(block.conv2(a.detach())).detach().requires_grad_(True)
    rest = block.fc(F.relu(b + a.detach()).mean(dim=(2, 3)))
    want2 = score(b, F.cross_entropy(rest, y, reduction="sum"))
    assert torch.allclose(got["conv1"], want1, rtol=1e-5, atol=1e-9)
    assert torch.allclose(got["conv2"], want2, rtol=1e-5, atol=1e-9)
    assert float(got["conv1"].min()) > 0
