"""A HuggingFace ViT built from its config (``hf:ViTForImageClassification``): the zoo, its heads
as units, pruning against a hand-masked original, reload, export and bench.

The model is a two-layer ViT (hidden size 16, four heads of 4, 32 MLP units) on the 1x8x8
digits, trained for a few Adam steps so that its predictions depend on its units.
"""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from helpers import adam_steps, zero_heads_at, zero_units_at
from torch import nn

from prune_info.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from prune_info.errors import PruneInfoError
from prune_info.nn import attention_heads, layer_costs, prunable_layers
from prune_info.pruning.config import PruneConfig
from prune_info.pruning.workflow import prune_checkpoint
from prune_info.zoo import build_factory_model, zoo_builder

transformers = pytest.importorskip("transformers")
pytestmark = pytest.mark.usefixtures("one_thread")

FACTORY = "hf:ViTForImageClassification"
KWARGS = {"image_size": 8, "patch_size": 2, "num_channels": 1, "hidden_size": 16,
          "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 32,
          "num_labels": 10}
HEAD_DIM = 4


def _vit() -> nn.Module:
    torch.manual_seed(0)
    return build_factory_model(FACTORY, KWARGS)


@pytest.fixture(scope="module")
def vit(digits):
    """The ViT after 60 Adam steps of 128 digits (about 1 s)."""
    return adam_steps(_vit(), digits.train, 60)


def _checkpoint(model: nn.Module) -> Checkpoint:
    return Checkpoint(model, factory=FACTORY, factory_kwargs=dict(KWARGS),
                      dataset={"name": "digits", "input_shape": [1, 8, 8]})


def test_the_zoo_builds_the_class_with_its_own_names_and_returns_logits():
    model = _vit()
    assert isinstance(model, transformers.ViTForImageClassification)
    plain = transformers.ViTForImageClassification(transformers.ViTConfig(**KWARGS))
    # a state_dict saved from the original class loads as it is
    assert model.state_dict().keys() == plain.state_dict().keys()
    model.load_state_dict(plain.state_dict())
    x = torch.randn(3, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(model.eval()(x), plain.eval()(x).logits)
    # a checkpoint may name it: a known zoo, nothing else is imported to decide
    assert zoo_builder(FACTORY) is not None
    for other in ("AutoModelForImageClassification", "AutoModel", "from_pretrained"):
        assert zoo_builder(f"hf:{other}") is None  # a dispatcher, not a model; not a class


@pytest.mark.parametrize(("factory", "kwargs", "message"), [
    ("hf:VitForImageClassification", {}, "no image classifier 'VitForImageClassification'; "
                                         "close names: ViTForImageClassification"),
    ("hf:BertForSequenceClassification", {}, "classifies token ids"),
    ("hf:AutoModelForImageClassification", {}, "no image classifier"),
    ("hf:ViTForImageClassification", {"num_label": 10}, "num_label: not a setting of ViTConfig"),
    ("hf:ViTForImageClassification", {"pretrained": True}, "would download weights"),
])
def test_bad_hf_models_are_refused_in_one_line(factory, kwargs, message):
    with pytest.raises(PruneInfoError, match=message):
        build_factory_model(factory, kwargs)


def test_the_attention_heads_are_units_read_at_the_output_projection():
    model = _vit()
    heads = attention_heads(model.vit.layers[0].attention)
    assert heads is not None
    assert (heads.n_heads, heads.head_dim, heads.inputs, heads.output, heads.count_attribute) == (
        4, HEAD_DIM, ("q_proj", "k_proj", "v_proj"), "o_proj", "num_attention_heads")
    layers = {layer.name: layer for layer in prunable_layers(model)}
    assert list(layers) == [
        "vit.embeddings.patch_embeddings.projection",
        "vit.layers.0.attention", "vit.layers.0.attention.o_proj",
        "vit.layers.0.mlp.fc1", "vit.layers.0.mlp.fc2",
        "vit.layers.1.attention", "vit.layers.1.attention.o_proj",
        "vit.layers.1.mlp.fc1", "vit.layers.1.mlp.fc2",
    ]  # q_proj, k_proj and v_proj are the heads' layer, not layers of their own
    attn = layers["vit.layers.1.attention"]
    assert (attn.kind, attn.n_units) == ("heads", 4)
    assert attn.read_point() == ("vit.layers.1.attention.o_proj", "input")
    # the attention's own MACs: q k^T and the weighted sum, 2 x tokens^2 x heads x head_dim
    tokens = (8 // 2) ** 2 + 1
    costs = layer_costs(model, (1, 8, 8))
    assert costs["vit.layers.0.attention"] == {"params": 0,
                                               "macs": 2 * tokens**2 * 4 * HEAD_DIM}


def test_magnitude_of_a_head_is_the_norm_of_its_q_k_v_rows(vit):
    from prune_info.criteria.context import compute_scores

    scores = compute_scores(vit, None, ["magnitude"], n_classes=10,
                            layers=["vit.layers.0.attention"])["magnitude"]
    attn = vit.vit.layers[0].attention
    rows = slice(2 * HEAD_DIM, 3 * HEAD_DIM)  # head 2
    want = torch.cat([getattr(attn, p).weight.detach().double()[rows]
                      for p in ("q_proj", "k_proj", "v_proj")]).norm()
    torch.testing.assert_close(scores["vit.layers.0.attention"][2], want)


def _masked_reference(model: nn.Module, removed: dict[str, list[int]]) -> nn.Module:
    """The original with the removed heads' outputs (their columns at the input of ``o_proj``)
    and the removed MLP units (at their GELU) zeroed, built by hand."""
    ref = copy.deepcopy(model).eval()
    for layer, idxs in removed.items():
        if layer.endswith(".attention"):
            zero_heads_at(ref, f"{layer}.o_proj", idxs, HEAD_DIM)
        elif layer.endswith(".fc1"):
            zero_units_at(ref, layer.replace(".fc1", ".activation_fn"), idxs)
    return ref


def test_pruned_heads_and_mlp_units_equal_the_masked_original_and_reload(vit, digits,
                                                                          tmp_path):
    ckpt = _checkpoint(vit)
    config = PruneConfig(criterion="mi", amount=0.5, ignore=("*projection", "*o_proj", "*fc2"))
    result = prune_checkpoint(ckpt, digits, config)
    pruned = result.checkpoint.model.eval()
    assert sorted(result.plan.remove) == ["vit.layers.0.attention", "vit.layers.0.mlp.fc1",
                                          "vit.layers.1.attention", "vit.layers.1.mlp.fc1"]
    for block in (0, 1):
        attn = pruned.vit.layers[block].attention
        assert attn.num_attention_heads == 2
        assert attn.q_proj.out_features == attn.v_proj.out_features == 2 * HEAD_DIM
        assert attn.o_proj.in_features == 2 * HEAD_DIM
        assert pruned.vit.layers[block].mlp.fc1.out_features == 16
    ref = _masked_reference(vit, result.plan.remove)
    x = digits.test.x
    with torch.no_grad():
        got, want = pruned(x), ref(x)
    assert float((got - want).abs().max()) < 1e-5
    assert result.summary.test_acc_after == int((got.argmax(1) == digits.test.y).sum()) / len(x)

    path = tmp_path / "pruned.pt"
    save_checkpoint(result.checkpoint, path)  # a known zoo: reloads without trust
    loaded = load_checkpoint(path).model.eval()
    assert loaded.vit.layers[1].attention.num_attention_heads == 2
    with torch.no_grad():
        assert torch.equal(loaded(x), got)


def test_cli_scores_prunes_exports_and_benches_a_hf_vit(run_cli, vit, tmp_path):
    path, out, onnx = tmp_path / "vit.pt", tmp_path / "pruned.pt", tmp_path / "pruned.onnx"
    save_checkpoint(_checkpoint(vit), path)
    code, stdout, stderr = run_cli("score", str(path), "--criteria", "mi", "--json")
    assert code == 0, stderr
    scored = {layer["name"]: layer for layer in json.loads(stdout)["layers"]}
    assert scored["vit.layers.0.attention"]["n_units"] == 4
    code, stdout, stderr = run_cli("prune", str(path), "--criterion", "mi", "--amount", "0.5",
                                   "-o", str(out), "--json")
    assert code == 0, stderr
    doc = json.loads(stdout)
    assert {"vit.layers.0.attention", "vit.layers.1.mlp.fc1"} <= doc["removed"].keys()
    assert not any(w.startswith("left out") for w in doc["warnings"])
    code, _, stderr = run_cli("export", str(out), "-o", str(onnx))
    assert code == 0, stderr
    code, stdout, stderr = run_cli("bench", str(path), str(out), "--batch", "1", "--repeat",
                                   "2", "--warmup", "0", "--json")
    assert code == 0, stderr
    rows = json.loads(stdout)["models"]
    assert rows[1]["parameters"] < rows[0]["parameters"]
    assert rows[1]["test_acc"] == pytest.approx(doc["accuracy"]["test"]["after"])
    assert np.isfinite(rows[1]["macs"])


def test_a_failed_step_is_put_back_without_orphaning_the_modules_of_another():
    """Dinov2's classifier reads the class token beside the mean of the others, which
    torch-pruning does not follow: the residual stream's step fails and is put back. A heads
    step's snapshot once deep-copied the attention's submodules, so putting both back left the
    model holding copies while the stream's restore wrote into the orphaned originals, and
    every later step failed. Now the stream alone is left out; heads and MLP units go."""
    kwargs = {"num_labels": 10, "image_size": 32, "patch_size": 8, "hidden_size": 32,
              "num_hidden_layers": 1, "num_attention_heads": 2, "mlp_ratio": 2}
    torch.manual_seed(0)
    model = build_factory_model("hf:Dinov2ForImageClassification", kwargs).eval()
    ckpt = Checkpoint(model, factory="hf:Dinov2ForImageClassification",
                      factory_kwargs=kwargs, dataset={"input_shape": [3, 32, 32]})
    result = prune_checkpoint(ckpt, None, PruneConfig(criterion="magnitude", amount=0.5))
    assert sorted(result.plan.remove) == ["dinov2.encoder.layer.0.attention",
                                          "dinov2.encoder.layer.0.mlp.fc1"]
    left_out = [w for w in result.summary.warnings if w.startswith("left out")]
    assert len(left_out) == 1 and "patch_embeddings.projection" in left_out[0]
    pruned = result.checkpoint.model
    assert pruned.dinov2.encoder.layer[0].attention.num_attention_heads == 1
    assert pruned.dinov2.encoder.layer[0].mlp.fc1.out_features == 32
