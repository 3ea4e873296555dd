"""The model zoos: one model of each family torch-pruning's users prune, through prune-info.

Every model is built as a user builds it (``num_classes=10``, no weights), pruned by half with the
data-free ``magnitude`` criterion at a small input, each step checked against the original with
the removed units ablated (inside :func:`prune_info.surgery.apply_plan`), saved, and reloaded in a
fresh object that must compute the same outputs. Groups that cannot be removed faithfully are left
out with a note, never failing the whole model; the share of MACs removed says that the rest was
pruned. ``benchmarks/bench_zoo_coverage.py`` runs the same over every torchvision classifier and
the timm list, with mutual information and the other steps (export, bench).
"""

from __future__ import annotations

import pytest
import torch

from prune_info.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from prune_info.errors import PruneInfoError
from prune_info.pruning import PruneConfig, prune_checkpoint
from prune_info.zoo import build_factory_model

pytestmark = pytest.mark.usefixtures("one_thread")

#: (factory, kwargs, input side, what the family exercises, least share of MACs removed)
ZOO = [
    ("torchvision.models:resnet50", {}, 32, "Bottleneck: one ReLU registered first, called 3x",
     0.7),
    ("torchvision.models:mobilenet_v3_small", {}, 32, "squeeze-excitation, hard-swish", 0.7),
    ("torchvision.models:efficientnet_b0", {}, 32, "SE registered after its layers, SiLU", 0.7),
    ("torchvision.models:regnet_x_400mf", {}, 32, "grouped convolutions: block positions", 0.7),
    ("torchvision.models:mnasnet0_5", {}, 32, "state-dict version metadata on reload", 0.65),
    ("torchvision.models:squeezenet1_1", {}, 64, "concatenation; a convolutional classifier",
     0.6),
    ("timm:convnext_atto", {}, 32, "channels-last LayerNorm, renormalised stream", 0.7),
    ("timm:ghostnet_050", {}, 32, "concatenation of unequal halves: left out, named", 0.2),
    ("timm:vit_tiny_patch16_224", {"img_size": 32, "depth": 2}, 32,
     "heads, token units, the residual stream", 0.6),
    ("timm:mobilevit_xxs", {}, 32, "transformer blocks inside a CNN", 0.6),
    ("timm:repvgg_a0", {}, 32, "multi-branch blocks", 0.7),
    ("timm:seresnext26d_32x4d", {}, 32, "grouped convolutions with squeeze-excitation", 0.7),
    ("timm:dla34", {}, 32, "tree aggregation; a convolutional classifier", 0.7),
    ("timm:mixer_s16_224", {"img_size": 32}, 32, "token-mixing MLPs: the stream left out", 0.3),
    ("timm:poolformer_s12", {}, 32, "GroupNorm stream, pooling token mixer", 0.3),
    ("timm:edgenext_xx_small", {}, 32, "split convolutions and channel attention", 0.4),
    ("torchvision.models:googlenet", {}, 64, "auxiliary classifiers never called in eval", 0.5),
    ("timm:mobilevit_xxs", {}, 64, "patches folded into the batch: transformers left out", 0.5),
]


@pytest.mark.parametrize("factory,kwargs,side,what,least", ZOO,
                         ids=[z[0].split(":")[1] for z in ZOO])
def test_a_zoo_model_prunes_verified_and_reloads(factory, kwargs, side, what, least, tmp_path):
    torch.manual_seed(0)
    kwargs = {"num_classes": 10, **kwargs}
    model = build_factory_model(factory, kwargs).eval()
    ckpt = Checkpoint(model, factory=factory, factory_kwargs=kwargs,
                      dataset={"input_shape": [3, side, side]})
    result = prune_checkpoint(ckpt, None, PruneConfig(criterion="magnitude", amount=0.5))
    s = result.summary
    assert 1 - s.macs_after / s.macs_before >= least, (what, s.macs_after / s.macs_before)
    left = [w for w in s.warnings if w.startswith("left out")]
    assert all(": " in w for w in left)  # each one named, with its reason
    path = tmp_path / "pruned.pt"
    save_checkpoint(result.checkpoint, path)
    again = load_checkpoint(path).model.eval()
    x = torch.randn(2, 3, side, side, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(again(x), result.checkpoint.model.eval()(x))


def test_a_model_torch_pruning_cannot_trace_is_one_line_naming_the_operation():
    model = build_factory_model("torchvision.models:shufflenet_v2_x0_5", {"num_classes": 10})
    ckpt = Checkpoint(model.eval(), factory="torchvision.models:shufflenet_v2_x0_5",
                      factory_kwargs={"num_classes": 10}, dataset={"input_shape": [3, 32, 32]})
    with pytest.raises(PruneInfoError, match="cannot trace the model at a reshape or view of "
                                             r"the channels \(a channel shuffle\?\)"):
        prune_checkpoint(ckpt, None, PruneConfig(criterion="magnitude", amount=0.5))


def test_strict_refuses_what_is_otherwise_left_out():
    factory, kwargs = "timm:ghostnet_050", {"num_classes": 10}
    ckpt = Checkpoint(build_factory_model(factory, kwargs).eval(), factory=factory,
                      factory_kwargs=kwargs, dataset={"input_shape": [3, 32, 32]})
    with pytest.raises(PruneInfoError, match="cannot prune conv_stem.*coupled with different "
                                             "widths.*drop `strict`"):
        prune_checkpoint(ckpt, None, PruneConfig(criterion="magnitude", amount=0.5,
                                                 strict=True))


class _PerModelTable(torch.nn.Module):
    """A Linear run on one table for the whole model (as Swin V2's position-bias MLP), its
    output broadcast over the batch: a first dimension of 1, whatever the batch."""

    def __init__(self):
        super().__init__()
        self.fc1 = torch.nn.Linear(64, 8)
        self.table = torch.nn.Parameter(torch.randn(1, 4, 2))
        self.bias_mlp = torch.nn.Linear(2, 8)
        self.out = torch.nn.Linear(8, 10)

    def forward(self, x):
        h = torch.relu(self.fc1(x.flatten(1)) + self.bias_mlp(self.table).mean(1))
        return self.out(h)


def test_a_layer_on_a_per_model_table_is_not_taken_for_per_sample_units(digits):
    """Probed with one sample, the table's [1, ...] output looked like one row per sample, and
    scoring it crashed on the batch (a shape error); it is left out, with a note."""
    import prune_info as pi
    from prune_info.nn import find_read_points, prunable_layers

    model = _PerModelTable().eval()
    reads = find_read_points(model, torch.zeros(1, 1, 8, 8))
    assert reads.folded == {"bias_mlp"}
    assert [layer.name for layer in prunable_layers(model)] == ["fc1"]
    assert pi.compute_scores(model, digits.val, ["mi"])["mi"].keys() == {"fc1"}
