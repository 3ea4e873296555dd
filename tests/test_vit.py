"""A timm ViT: read points, token units, attention heads, ablation curves, pruning, export.

The model is a two-block ViT (``embed_dim=48``, three heads, 48 MLP hidden units) on the 1x8x8
digits, trained for a
few steps so that its predictions depend on its units.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from helpers import adam_steps, zero_heads_at, zero_units_at
from torch import nn

from prune_info.analysis.curves import layerwise_curves, naive_curves, random_orders, unit_means
from prune_info.capture import CaptureOptions, unit_outputs
from prune_info.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from prune_info.criteria.options import ScoreOptions
from prune_info.errors import PruneInfoError
from prune_info.nn import count_parameters, prunable_layers
from prune_info.pruning.config import PruneConfig
from prune_info.pruning.workflow import prune_checkpoint

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
    return adam_steps(_vit(), digits.train, 40)


def test_read_points_of_a_vit_are_its_own_siblings():
    layers = {layer.name: layer for layer in prunable_layers(_vit())}
    assert list(layers) == [
        "patch_embed.proj",
        "blocks.0.attn", "blocks.0.attn.proj", "blocks.0.mlp.fc1", "blocks.0.mlp.fc2",
        "blocks.1.attn", "blocks.1.attn.proj", "blocks.1.mlp.fc1", "blocks.1.mlp.fc2",
    ]  # head is the classifier; an attention module's units are its heads (not qkv's features)
    # not blocks.0.norm1, a LayerNorm of another module after the residual addition
    assert layers["patch_embed.proj"].read_point() == ("patch_embed.proj", "output")
    assert layers["patch_embed.proj"].norm_module is None
    fc1 = layers["blocks.0.mlp.fc1"]
    assert (fc1.kind, fc1.n_units, fc1.activation) == ("linear", 48, "gelu")
    assert fc1.read_point() == ("blocks.0.mlp.act", "output")
    assert fc1.read_point(pre_activation=True) == ("blocks.0.mlp.act", "input")
    heads = layers["blocks.1.attn"]
    assert (heads.kind, heads.n_units) == ("heads", 3)
    assert heads.read_point() == heads.read_point(True) == ("blocks.1.attn.proj", "input")
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


def _masked_reference(model: nn.Module, removed: dict[str, list[int]],
                      stream: list[int] | None = None) -> nn.Module:
    """The original with the removed units' outputs zeroed, built by hand: MLP units at their
    GELU on every token, heads at the input of ``proj`` (their 16 columns), and the residual
    stream's ``stream`` channels zeroed wherever they are written (patch embedding, class token,
    position embedding, ``proj`` and ``fc2`` outputs), every LayerNorm over the stream then
    normalising over the kept channels only (what the pruned model computes)."""
    ref = copy.deepcopy(model).eval()
    for layer, idxs in removed.items():
        if layer.endswith(".attn"):
            zero_heads_at(ref, f"{layer}.proj", idxs, 16)
        elif layer.endswith(".fc1"):
            zero_units_at(ref, layer.replace(".fc1", ".act"), idxs)
    if not stream:
        return ref
    gone = torch.tensor(stream)
    keep = torch.tensor(sorted(set(range(48)) - set(stream)))
    with torch.no_grad():
        for name in ("patch_embed.proj", "blocks.0.attn.proj", "blocks.0.mlp.fc2",
                     "blocks.1.attn.proj", "blocks.1.mlp.fc2"):
            module = ref.get_submodule(name)
            module.weight.index_fill_(0, gone, 0.0)
            module.bias.index_fill_(0, gone, 0.0)
        ref.cls_token.index_fill_(-1, gone, 0.0)
        ref.pos_embed.index_fill_(-1, gone, 0.0)

    def kept_only(norm, args, out):
        y = torch.zeros_like(out)
        y[..., keep] = nn.functional.layer_norm(args[0][..., keep], (len(keep),),
                                                norm.weight[keep], norm.bias[keep], norm.eps)
        return y

    for module in ref.modules():
        if isinstance(module, nn.LayerNorm) and module.normalized_shape == (48,):
            module.register_forward_hook(kept_only)
    return ref


def test_prune_a_vit_removes_mlp_units_heads_and_residual_stream_channels(vit, digits, tmp_path):
    ckpt = Checkpoint(vit, factory=FACTORY, factory_kwargs=dict(KWARGS),
                      dataset={"name": "digits", "input_shape": [1, 8, 8]})
    result = prune_checkpoint(ckpt, digits, PruneConfig(criterion="mi", amount=0.5))
    pruned, summary = result.checkpoint.model.eval(), result.summary
    stream = ["patch_embed.proj", "blocks.0.attn.proj", "blocks.0.mlp.fc2",
              "blocks.1.attn.proj", "blocks.1.mlp.fc2"]
    assert sorted(result.plan.remove) == sorted(["blocks.0.attn", "blocks.0.mlp.fc1",
                                                 "blocks.1.attn", "blocks.1.mlp.fc1", *stream])
    assert not [w for w in summary.warnings if w.startswith("left out")]
    assert not any(row.ignored for row in summary.layers)
    for block in (0, 1):
        assert pruned.get_submodule(f"blocks.{block}.mlp.fc1").out_features == 24
        assert pruned.get_submodule(f"blocks.{block}.mlp.fc2").in_features == 24
        attn = pruned.get_submodule(f"blocks.{block}.attn")
        assert (attn.num_heads, attn.attn_dim) == (2, 32)  # floor(0.5 * 3) = 1 head removed
        assert attn.qkv.out_features == 96 and attn.proj.in_features == 32
    # the stream (one group: every layer writing into it) loses the same 24 channels
    assert {tuple(result.plan.remove[name]) for name in stream} == {
        tuple(result.plan.remove["patch_embed.proj"])}
    assert pruned.pos_embed.shape[-1] == pruned.cls_token.shape[-1] == 24
    assert pruned.blocks[0].attn.qkv.in_features == pruned.blocks[1].mlp.fc1.in_features == 24
    notes = [w for w in summary.warnings if "renormalises" in w]
    assert len(notes) == 1 and notes[0].startswith("note: patch_embed.proj is followed")
    heads_row = next(row for row in summary.layers if row.name == "blocks.0.attn")
    assert (heads_row.units_before, heads_row.units_after, heads_row.removed) == (3, 2, 1)
    assert summary.params_after == count_parameters(pruned) < summary.params_before / 3
    # pruned == the hand-built reference with those units and stream channels removed
    ref = _masked_reference(vit, result.plan.remove, result.plan.remove["patch_embed.proj"])
    x = digits.test.x
    with torch.no_grad():
        got, want = pruned(x), ref(x)
    assert float((got - want).abs().max()) < 1e-4
    assert summary.test_acc_after == int((got.argmax(1) == digits.test.y).sum()) / len(x)

    # reloads from its checkpoint (the factory rebuilds it, the history replays the removal)
    path = tmp_path / "vit.pt"
    save_checkpoint(result.checkpoint, path)
    loaded = load_checkpoint(path).model.eval()
    assert loaded.blocks[1].mlp.fc1.out_features == 24 and loaded.blocks[1].attn.num_heads == 2
    with torch.no_grad():
        assert torch.equal(loaded(x), got)


def test_a_pruned_vit_exports_to_onnx_and_matches_pytorch(vit, digits):
    from prune_info.deploy.onnx import export_model
    from prune_info.deploy.onnx_runtime import ort_session, run_onnx

    ckpt = Checkpoint(vit, factory=FACTORY, factory_kwargs=dict(KWARGS),
                      dataset={"name": "digits", "input_shape": [1, 8, 8]})
    pruned = prune_checkpoint(ckpt, None, PruneConfig(criterion="magnitude", amount=0.5))
    model = pruned.checkpoint.model.eval()
    assert model.blocks[0].mlp.fc1.out_features == 24 and model.blocks[0].attn.num_heads == 2
    data = export_model(model, digits.test.x[:4])
    x = digits.test.x[:32]
    got = run_onnx(ort_session(data), x.numpy())
    with torch.no_grad():
        want = model(x).numpy()
    assert got.shape == (32, 10)
    assert float(np.abs(got - want).max()) < 1e-4


def _proj_inputs(model: nn.Module, block: int, x: torch.Tensor) -> torch.Tensor:
    seen = []
    handle = model.get_submodule(f"blocks.{block}.attn.proj").register_forward_pre_hook(
        lambda m, args: seen.append(args[0].detach().clone()))
    with torch.no_grad():
        model(x)
    handle.remove()
    return seen[0]


@pytest.mark.parametrize("reduce", ["mean", "max", "cls"])
def test_head_activity_is_the_norm_of_each_heads_output(vit, digits, reduce):
    x = digits.val.x[:40]
    heads = [layer for layer in prunable_layers(vit) if layer.kind == "heads"]
    got = unit_outputs(vit, heads, x, CaptureOptions(token_reduce=reduce, batch_size=16))
    for block in (0, 1):
        per_head = _proj_inputs(vit, block, x).view(40, 17, 3, 16)  # [batch, tokens, heads, 16]
        norms = per_head.norm(dim=-1)  # [batch, tokens, heads]
        want = {"mean": norms.mean(1), "max": norms.amax(1), "cls": norms[:, 0]}[reduce]
        torch.testing.assert_close(got[f"blocks.{block}.attn"], want, rtol=1e-5, atol=1e-6)


def test_head_curves_count_what_removing_the_heads_leaves(vit, digits):
    from prune_info.nn import count_correct
    from prune_info.surgery import PrunePlan, apply_plan, mask_plan

    layer, order = "blocks.1.attn", torch.tensor([2, 0, 1])
    curve = layerwise_curves(vit, layer, order, digits.test)[0]
    example = torch.zeros(2, 1, 8, 8)
    assert int(curve[0]) == count_correct(vit, digits.test)
    for k in (1, 2):
        plan = PrunePlan.from_indices({layer: order[:k].tolist()}, {layer: 3})
        pruned = apply_plan(copy.deepcopy(vit), plan, example)
        masked = mask_plan(copy.deepcopy(vit), plan, example)
        assert pruned.blocks[1].attn.num_heads == 3 - k
        assert masked.blocks[1].attn.qkv.weight.shape == (144, 48)
        with torch.no_grad():
            torch.testing.assert_close(pruned(digits.test.x), masked(digits.test.x),
                                       rtol=0, atol=1e-5)
        assert int(curve[k]) == count_correct(pruned, digits.test)
    ref = _masked_reference(vit, {layer: [0, 1, 2]})
    assert int(curve[3]) == count_correct(ref, digits.test)
    assert len(set(curve.tolist())) > 1


def test_magnitude_of_a_head_is_the_norm_of_its_q_k_v_rows(vit):
    from prune_info.criteria.context import compute_scores

    scores = compute_scores(vit, None, ["magnitude"], n_classes=10,
                            layers=["blocks.0.attn"])["magnitude"]["blocks.0.attn"]
    weight = vit.blocks[0].attn.qkv.weight.detach().double()
    want = [torch.cat([weight[part * 48 + h * 16 : part * 48 + (h + 1) * 16]
                       for part in range(3)]).norm() for h in range(3)]
    torch.testing.assert_close(scores, torch.stack(want))


def test_one_bit_entropy_of_a_head_splits_its_range(vit, digits):
    """A head's activity is never below 0, so 2 bins split its range (from the first batch)."""
    from prune_info.criteria.context import compute_scores
    from prune_info.measures.discrete import bin_edges, digitize

    layer = [info for info in prunable_layers(vit) if info.name == "blocks.0.attn"]
    split = digits.val
    scores = compute_scores(vit, split, ["entropy"], n_classes=10, layers=layer,
                            options=ScoreOptions(bins=2, batch_size=4096))
    acts = unit_outputs(vit, layer, split.x)["blocks.0.attn"]
    on = digitize(acts, bin_edges(acts, 2)).double().mean(0)  # one batch: the edges of all
    want = -(on * on.log2() + (1 - on) * (1 - on).log2())
    torch.testing.assert_close(scores["entropy"]["blocks.0.attn"], want)
    assert float(want.min()) > 0.1  # not "always on", as the 1-bit threshold at 0 would say


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
    assert doc["removed"].keys() == {"blocks.0.attn", "blocks.0.mlp.fc1", "blocks.1.attn",
                                     "blocks.1.mlp.fc1", "patch_embed.proj",
                                     "blocks.0.attn.proj", "blocks.0.mlp.fc2",
                                     "blocks.1.attn.proj", "blocks.1.mlp.fc2"}
    assert not any(w.startswith("left out") for w in doc["warnings"])
    assert load_checkpoint(out).model.blocks[0].mlp.fc1.out_features == 24
