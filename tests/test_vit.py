"""A timm ViT: read points, token units, ablation curves, pruning its MLP hidden units, export.

The model is a two-block ViT (``embed_dim=48``, three heads, 48 MLP hidden units) on the 1x8x8
digits, trained for a
few steps so that its predictions depend on its units.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from prune_info.analysis.curves import layerwise_curves, naive_curves, random_orders, unit_means
from prune_info.capture import CaptureOptions, unit_outputs
from prune_info.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from prune_info.criteria.options import ScoreOptions
from prune_info.errors import PruneInfoError
from prune_info.nn import count_parameters, prunable_layers
from prune_info.pruning.workflow import PruneConfig, prune_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")

KWARGS = {"img_size": 8, "patch_size": 2, "in_chans": 1, "num_classes": 10, "embed_dim": 48,
          "depth": 2, "num_heads": 3, "mlp_ratio": 1.0}
FACTORY = "timm:vit_tiny_patch16_224"


def _vit() -> nn.Module:
    import timm
    torch.manual_seed(0)
    return timm.create_model("vit_tiny_patch16_224", pretrained=False, **KWARGS)


@pytest.fixture(scope="module")
def vit(digits):
    """The ViT after 40 Adam steps of 128 digits (about 1 s, 55 % test accuracy)."""
    model = _vit()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    gen = torch.Generator().manual_seed(0)
    for _ in range(40):
        idx = torch.randint(len(digits.train), (128,), generator=gen)
        opt.zero_grad()
        nn.functional.cross_entropy(model(digits.train.x[idx]), digits.train.y[idx]).backward()
        opt.step()
    return model.eval()


def test_read_points_of_a_vit_are_its_own_siblings():
    layers = {layer.name: layer for layer in prunable_layers(_vit())}
    assert list(layers) == [
        "patch_embed.proj",
        "blocks.0.attn.qkv", "blocks.0.attn.proj", "blocks.0.mlp.fc1", "blocks.0.mlp.fc2",
        "blocks.1.attn.qkv", "blocks.1.attn.proj", "blocks.1.mlp.fc1", "blocks.1.mlp.fc2",
    ]  # head is the classifier
    # not blocks.0.norm1, a LayerNorm of another module after the residual addition
    assert layers["patch_embed.proj"].read_point() == ("patch_embed.proj", "output")
    assert layers["patch_embed.proj"].norm_module is None
    fc1 = layers["blocks.0.mlp.fc1"]
    assert (fc1.kind, fc1.n_units, fc1.activation) == ("linear", 48, "gelu")
    assert fc1.read_point() == ("blocks.0.mlp.act", "output")
    assert fc1.read_point(pre_activation=True) == ("blocks.0.mlp.act", "input")
    assert layers["blocks.1.attn.qkv"].n_units == 144
    assert layers["blocks.1.mlp.fc2"].output_module == "blocks.1.mlp.fc2"


@pytest.mark.parametrize("reduce", ["mean", "max", "cls"])
def test_token_units_are_reduced_over_the_tokens(vit, digits, reduce):
    layers = [layer for layer in prunable_layers(vit)
              if layer.name in ("blocks.0.mlp.fc1", "blocks.1.attn.proj")]
    x = digits.val.x[:50]
    seen = {}
    hooks = [vit.get_submodule("blocks.0.mlp.act").register_forward_hook(
                 lambda m, i, o: seen.__setitem__("blocks.0.mlp.fc1", o.detach().clone())),
             vit.get_submodule("blocks.1.attn.proj").register_forward_hook(
                 lambda m, i, o: seen.__setitem__("blocks.1.attn.proj", o.detach().clone()))]
    with torch.no_grad():
        vit(x)
    for h in hooks:
        h.remove()
    out = unit_outputs(vit, layers, x, CaptureOptions(token_reduce=reduce, batch_size=16))
    for name, tokens in seen.items():
        assert tokens.shape == (50, 17, layers[0].n_units if "fc1" in name else 48)
        want = {"mean": tokens.mean(1), "max": tokens.amax(1), "cls": tokens[:, 0]}[reduce]
        assert out[name].shape == want.shape
        torch.testing.assert_close(out[name], want, rtol=0, atol=1e-6)


def test_token_reduce_is_validated_in_parameter_vocabulary():
    for make in (CaptureOptions, ScoreOptions):
        with pytest.raises(PruneInfoError, match=r"unknown token reduction 'sum'.*"
                                                 r"mean, max, cls \(`token_reduce`\)"):
            make(token_reduce="sum")
    assert ScoreOptions(token_reduce="cls").capture.token_reduce == "cls"


@pytest.mark.parametrize("ablate_to", ["zero", "mean"])
def test_vit_layer_curves_equal_the_naive_loop(vit, digits, ablate_to):
    layer = "blocks.1.mlp.fc1"
    means = unit_means(vit, digits.train, [layer])
    assert means[layer].shape == (48, 17)  # one mean per unit and token
    orders = random_orders(48, 1, seed=3)
    info = {}
    batched = layerwise_curves(vit, layer, orders, digits.test, ablate_to=ablate_to,
                               means=means, max_k=20, info=info)
    naive = naive_curves(vit, orders, digits.test, layers=layer, ablate_to=ablate_to,
                         means=means, max_k=20)
    assert info["method"] == "batched" and batched.shape == (1, 21)
    assert torch.equal(batched, naive)
    assert int(batched[0, 0]) == int((vit(digits.test.x).argmax(1) == digits.test.y).sum())
    assert len(set(batched[0].tolist())) > 1  # ablation changes predictions


def test_token_units_in_a_sequential_model_take_the_batched_path(digits):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(1), nn.Unflatten(1, (16, 4)), nn.Linear(4, 12), nn.ReLU(),
                          nn.Linear(12, 6), nn.ReLU(), nn.Flatten(1), nn.Linear(96, 10)).eval()
    orders = random_orders(12, 3, seed=0)
    for ablate_to in ("zero", "mean"):
        means = unit_means(model, digits.train)
        info = {}
        batched = layerwise_curves(model, "2", orders, digits.test, ablate_to=ablate_to,
                                   means=means, info=info)
        assert info["method"] == "batched"  # not the prefix sums, which need flat outputs
        assert torch.equal(batched, naive_curves(model, orders, digits.test, layers="2",
                                                 ablate_to=ablate_to, means=means))


def _masked_reference(model: nn.Module, removed: dict[str, list[int]]) -> nn.Module:
    """The original with the removed units' GELU outputs zeroed on every token."""
    ref = copy.deepcopy(model).eval()
    for layer, idxs in removed.items():
        act = ref.get_submodule(layer.replace(".fc1", ".act"))
        act.register_forward_hook(
            lambda m, i, o, idxs=idxs: o.index_fill(-1, torch.tensor(idxs), 0.0))
    return ref


def test_prune_a_vit_removes_mlp_units_and_leaves_out_the_rest(vit, digits, tmp_path):
    ckpt = Checkpoint(vit, factory=FACTORY, factory_kwargs=dict(KWARGS),
                      dataset={"name": "digits", "input_shape": [1, 8, 8]})
    result = prune_checkpoint(ckpt, digits, PruneConfig(criterion="mi", amount=0.5))
    pruned, summary = result.checkpoint.model.eval(), result.summary
    assert sorted(result.plan.remove) == ["blocks.0.mlp.fc1", "blocks.1.mlp.fc1"]
    for block in (0, 1):
        assert pruned.get_submodule(f"blocks.{block}.mlp.fc1").out_features == 24
        assert pruned.get_submodule(f"blocks.{block}.mlp.fc2").in_features == 24
        assert pruned.get_submodule(f"blocks.{block}.attn.qkv").out_features == 144
    # the attention qkv (heads) and the residual stream are left out, with a note each
    notes = [w for w in summary.warnings if w.startswith("left out")]
    assert len(notes) == 2
    assert notes[0].startswith("left out the attention projections blocks.0.attn.qkv, "
                               "blocks.1.attn.qkv: their units are attention heads")
    assert notes[1].startswith("left out patch_embed.proj, blocks.0.attn.proj, blocks.0.mlp.fc2")
    assert {row.name for row in summary.layers if row.ignored} == {
        "patch_embed.proj", "blocks.0.attn.qkv", "blocks.0.attn.proj", "blocks.0.mlp.fc2",
        "blocks.1.attn.qkv", "blocks.1.attn.proj", "blocks.1.mlp.fc2"}
    # parameters drop by the two halves of fc1 (weights and biases) and of fc2's inputs
    assert count_parameters(vit) - count_parameters(pruned) == 2 * (24 * 48 + 24 + 48 * 24)
    assert summary.params_after == count_parameters(pruned) < summary.params_before
    # pruned == masked
    ref = _masked_reference(vit, result.plan.remove)
    x = digits.test.x
    with torch.no_grad():
        got, want = pruned(x), ref(x)
    assert float((got - want).abs().max()) < 1e-4
    assert summary.test_acc_after == int((got.argmax(1) == digits.test.y).sum()) / len(x)

    # reloads from its checkpoint (the factory rebuilds it, the history replays the removal)
    path = tmp_path / "vit.pt"
    save_checkpoint(result.checkpoint, path)
    loaded = load_checkpoint(path).model.eval()
    assert loaded.blocks[1].mlp.fc1.out_features == 24
    with torch.no_grad():
        assert torch.equal(loaded(x), got)


def test_a_pruned_vit_exports_to_onnx_and_matches_pytorch(vit, digits):
    from prune_info.deploy.onnx import export_model, ort_session, run_onnx

    ckpt = Checkpoint(vit, factory=FACTORY, factory_kwargs=dict(KWARGS),
                      dataset={"name": "digits", "input_shape": [1, 8, 8]})
    pruned = prune_checkpoint(ckpt, None, PruneConfig(criterion="magnitude", amount=0.25))
    model = pruned.checkpoint.model.eval()
    assert model.blocks[0].mlp.fc1.out_features == 36
    data = export_model(model, digits.test.x[:4])
    x = digits.test.x[:32]
    got = run_onnx(ort_session(data), x.numpy())
    with torch.no_grad():
        want = model(x).numpy()
    assert got.shape == (32, 10)
    assert float(np.abs(got - want).max()) < 1e-4


def test_cli_scores_with_token_reduce_and_prunes_a_vit(run_cli, vit, tmp_path):
    import json

    path, out = tmp_path / "vit.pt", tmp_path / "pruned.pt"
    save_checkpoint(Checkpoint(vit, factory=FACTORY, factory_kwargs=dict(KWARGS),
                               dataset={"name": "digits", "input_shape": [1, 8, 8]}), path)
    code, stdout, stderr = run_cli("score", str(path), "--criteria", "entropy",
                                   "--token-reduce", "cls", "--json")
    assert code == 0, stderr
    doc = json.loads(stdout)
    assert doc["options"]["token_reduce"] == "cls"
    assert "blocks.1.mlp.fc1" in [layer["name"] for layer in doc["layers"]]
    code, stdout, stderr = run_cli("prune", str(path), "--criterion", "mi", "--amount", "0.5",
                                   "-o", str(out), "--json")
    assert code == 0, stderr
    doc = json.loads(stdout)
    assert doc["removed"].keys() == {"blocks.0.mlp.fc1", "blocks.1.mlp.fc1"}
    assert sum(w.startswith("left out") for w in doc["warnings"]) == 2
    assert load_checkpoint(out).model.blocks[0].mlp.fc1.out_features == 24
