"""Group-aware pruning: residual and depthwise couplings prune together, checked against masks."""

import copy
import json

import pytest
import torch
import torchvision

from prune_info.analysis.curves import ablated_correct, group_curves
from prune_info.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from prune_info.criteria.ranking import reduce_group
from prune_info.data import load_dataset
from prune_info.errors import PruneInfoError
from prune_info.nn import count_correct, count_parameters, prunable_layers
from prune_info.pruning.config import PruneConfig
from prune_info.pruning.workflow import match_layers, prune_checkpoint
from prune_info.surgery import PrunePlan, apply_plan, unit_groups
from prune_info.training import TrainConfig, train_model

SHAPE = (3, 32, 32)


def _ckpt(factory: str) -> Checkpoint:
    torch.manual_seed(0)
    model = getattr(torchvision.models, factory)(num_classes=10).eval()
    return Checkpoint(model=model, factory=f"torchvision.models:{factory}",
                      factory_kwargs={"num_classes": 10},
                      dataset=load_dataset("digits", input_shape=SHAPE).describe())


@pytest.fixture(scope="module")
def resnet():
    return _ckpt("resnet18")


@pytest.fixture(scope="module")
def mobilenet():
    return _ckpt("mobilenet_v2")


def test_resnet_groups_are_the_residual_streams_of_its_stages(resnet):
    groups = {g.root: g.members for g in unit_groups(resnet.model, torch.zeros(2, *SHAPE))}
    assert groups["conv1"] == ("conv1", "layer1.0.conv2", "layer1.1.conv2")
    assert groups["layer2.0.conv2"] == ("layer2.0.conv2", "layer2.0.downsample.0",
                                        "layer2.1.conv2")
    assert groups["layer1.0.conv1"] == ("layer1.0.conv1",)
    covered = sorted(m for members in groups.values() for m in members)
    assert covered == sorted(layer.name for layer in prunable_layers(resnet.model))


def test_mobilenet_depthwise_convs_join_the_conv_that_feeds_them(mobilenet):
    groups = unit_groups(mobilenet.model, torch.zeros(2, *SHAPE))
    by_member = {m: g for g in groups for m in g.members}
    expand, depthwise = "features.2.conv.0.0", "features.2.conv.1.0"
    assert by_member[expand] is by_member[depthwise]
    assert mobilenet.model.get_submodule(depthwise).groups > 1


def _outputs(model, seed=1):
    x = torch.randn(6, *SHAPE, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return model.eval()(x)


@pytest.mark.parametrize("which", ["resnet", "mobilenet"])
def test_pruned_equals_masked_with_no_ignore(which, request, tmp_path):
    ckpt = request.getfixturevalue(which)
    config = PruneConfig(criterion="magnitude", amount=0.5)
    pruned = prune_checkpoint(ckpt, None, config)
    masked = prune_checkpoint(ckpt, None, PruneConfig(criterion="magnitude", amount=0.5,
                                                      mask=True))
    assert pruned.plan.remove == masked.plan.remove
    want, got = _outputs(masked.checkpoint.model), _outputs(pruned.checkpoint.model)
    assert torch.allclose(got, want, atol=1e-4, rtol=1e-4)
    # every group, coupled or not, loses half of its channels
    for group in unit_groups(ckpt.model, torch.zeros(2, *SHAPE)):
        removed = {len(pruned.plan.remove[m]) for m in group.members}
        assert removed == {group.n_units // 2}
        assert len({pruned.plan.remove[m] for m in group.members}) == 1
    before, after = count_parameters(ckpt.model), count_parameters(pruned.checkpoint.model)
    assert after < 0.35 * before
    # the pruned factory model reloads safely by replaying its history
    path = tmp_path / "pruned.pt"
    save_checkpoint(pruned.checkpoint, path)
    torch.load(path, weights_only=True)
    again = load_checkpoint(path)
    assert torch.equal(_outputs(again.model), got)
    summary = pruned.summary.to_dict()
    assert ["conv1", "layer1.0.conv2", "layer1.1.conv2"] in summary["groups"] or which != "resnet"


def test_a_glob_ignore_keeps_the_matched_layers_and_their_group_whole(resnet):
    result = prune_checkpoint(resnet, None, PruneConfig(criterion="magnitude", amount=0.5,
                                                        ignore=("layer4.*", "layer1.0.conv2")))
    widths = {layer.name: layer.n_units for layer in prunable_layers(result.checkpoint.model)}
    assert all(widths[n] == 512 for n in widths if n.startswith("layer4."))
    # layer1.0.conv2 is coupled to conv1 and layer1.1.conv2: the whole stream keeps 64 channels
    assert widths["conv1"] == widths["layer1.1.conv2"] == 64
    assert widths["layer1.0.conv1"] == 32
    rows = {r.name: r for r in result.summary.layers}
    assert rows["conv1"].ignored and rows["layer4.0.conv1"].ignored


def test_an_ignore_that_matches_nothing_names_near_layers():
    with pytest.raises(PruneInfoError, match=r"`ignore`=layer9\.\*: .*no glob match; near"):
        match_layers(["layer9.*"], ["layer1.0.conv1", "layer4.0.conv1"], "ignore")
    assert match_layers(["layer?.0.*"], ["layer1.0.conv1", "layer1.1.conv1"], "ignore") == {
        "layer1.0.conv1"}


def test_group_scores_combine_members_by_mean_max_or_first():
    scores = {"a": torch.tensor([1.0, 4.0, 2.0]), "b": torch.tensor([3.0, 0.0, 2.0])}
    assert reduce_group(scores, ["a", "b"], "mean").tolist() == [2.0, 2.0, 2.0]
    assert reduce_group(scores, ["a", "b"], "max").tolist() == [3.0, 4.0, 2.0]
    assert reduce_group(scores, ["b", "a"], "first").tolist() == [3.0, 0.0, 2.0]
    with pytest.raises(PruneInfoError, match="unknown `group_reduce`"):
        PruneConfig(amount=0.5, group_reduce="median").validate()


@pytest.fixture(scope="module")
def small_resnet():
    """helpers.tiny_resnet trained for 2 epochs on digits: its groups are the residual stream
    (``0``, ``3.conv2``, ``4.conv2``) and each block's first conv."""
    data = load_dataset("digits")
    ckpt = train_model(data, factory="helpers:tiny_resnet", factory_kwargs={"width": 8},
                       config=TrainConfig(epochs=2, lr=1e-2), progress=False)
    return ckpt, data


def test_group_curves_count_what_pruning_the_group_channels_leaves(small_resnet):
    ckpt, data = small_resnet
    model = ckpt.model.eval()
    example = torch.zeros(2, *data.input_shape)
    (stream,) = [g for g in unit_groups(model, example) if len(g.members) > 1]
    assert stream.members == ("0", "3.conv2", "4.conv2")
    order = torch.tensor([5, 2, 7, 0, 1, 3, 6, 4])
    counts = group_curves(model, stream.members, order, data.test)[0]
    for k in range(8):
        plan = PrunePlan.from_indices({m: order[:k].tolist() for m in stream.members},
                                      {m: 8 for m in stream.members})
        pruned = apply_plan(copy.deepcopy(model), plan, example) if k else model
        assert int(counts[k]) == count_correct(pruned, data.test), k
    # with the whole stream ablated the head sees zeros and always answers argmax(bias)
    assert int(counts[8]) == int((data.test.y == model[-1].bias.argmax()).sum())
    # several groups at once: what the joint check of max-drop counts
    removed = {**{m: [1, 6] for m in stream.members}, "3.conv1": [0, 2, 5]}
    plan = PrunePlan.from_indices(removed, {m: 8 for m in removed})
    assert ablated_correct(model, data.test, removed) == count_correct(
        apply_plan(copy.deepcopy(model), plan, example), data.test)
    sparse = group_curves(model, stream.members, order, data.test, at_k=[0, 3, 8])[0]
    assert sparse.tolist() == counts[[0, 3, 8]].tolist()
    with pytest.raises(PruneInfoError, match="same number of units"):
        mlp = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 16), torch.nn.ReLU(),
                                  torch.nn.Linear(16, 8), torch.nn.ReLU(), torch.nn.Linear(8, 10))
        group_curves(mlp, ["1", "3"], order, data.test)


def test_max_drop_reads_coupled_groups_off_their_joint_curves(small_resnet):
    ckpt, data = small_resnet
    result = prune_checkpoint(ckpt, data, PruneConfig(criterion="magnitude",
                                                      allocation="max-drop", max_drop=3.0))
    report = result.summary.max_drop
    assert report["joint_drop_pp"] <= 3.0
    stream = report["alone"]["0"]
    assert stream["members"] == ["0", "3.conv2", "4.conv2"] and stream["at_k"] == list(range(9))
    assert "members" not in report["alone"]["3.conv1"]
    removed = {layer.name: layer.removed for layer in result.summary.layers}
    assert removed["0"] == removed["3.conv2"] == removed["4.conv2"] == report["counts"]["0"]
    assert sum(report["counts"].values()) > 0
    # the joint drop was measured on the masked model; the pruned one agrees
    before = count_correct(ckpt.model, data.val)
    after = count_correct(result.checkpoint.model, data.val)
    assert 100.0 * (before - after) / len(data.val) == pytest.approx(report["joint_drop_pp"])


def test_synergy_on_a_group_searches_each_members_channels(small_resnet):
    from prune_info.criteria.context import compute_scores

    ckpt, data = small_resnet
    members = ["0", "3.conv2", "4.conv2"]
    synergy = compute_scores(ckpt.model, data.val, ["synergy"], layers=members)["synergy"]
    for how, want in (("first", synergy["0"]),
                      ("mean", torch.stack([synergy[m] for m in members]).mean(0))):
        result = prune_checkpoint(ckpt, data, PruneConfig(criterion="synergy", amount=0.5,
                                                          group_reduce=how, round_to=1))
        removed = set(result.plan.remove["0"])
        assert removed == set(result.plan.remove["4.conv2"])
        assert removed == set(torch.argsort(want.double(), stable=True)[:4].tolist()), how


def test_cli_prunes_a_resnet_and_lists_its_groups(run_cli, resnet, tmp_path):
    path, out = tmp_path / "r.pt", tmp_path / "p.pt"
    save_checkpoint(resnet, path)
    code, stdout, stderr = run_cli("prune", str(path), "--criterion", "magnitude", "--amount",
                                   "0.5", "-o", str(out), "--json")
    assert code == 0, stderr
    doc = json.loads(stdout)
    assert ["conv1", "layer1.0.conv2", "layer1.1.conv2"] in doc["groups"]
    code, _, stderr = run_cli("prune", str(path), "--criterion", "magnitude", "--amount", "0.5",
                              "--ignore", "layer9.*", "-o", str(tmp_path / "q.pt"))
    assert code == 2 and "--ignore layer9.*" in stderr and stderr.count("\n") == 1


def _ln_mlp_ckpt() -> Checkpoint:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 16),
                                torch.nn.LayerNorm(16), torch.nn.GELU(), torch.nn.Linear(16, 10))
    return Checkpoint(model=model.eval(), factory="tests_ln:mlp",
                      dataset=load_dataset("digits").describe())


def test_a_layernorm_mlp_reports_its_renormalisation_instead_of_failing():
    ckpt = _ln_mlp_ckpt()
    result = prune_checkpoint(ckpt, None, PruneConfig(criterion="magnitude", amount=0.5))
    (note,) = [w for w in result.summary.warnings if "LayerNorm" in w]
    assert note.startswith("note: 1 is followed by a LayerNorm over its units")
    diff = float(note.rsplit(" ", 1)[1])
    # the pruned model equals the original normalised over the kept units ...
    kept = torch.tensor(sorted(set(range(16)) - set(result.plan.remove["1"])))
    x = torch.randn(5, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    m = ckpt.model
    with torch.no_grad():
        h = m[1](m[0](x))[:, kept]
        h = torch.nn.functional.layer_norm(h, (len(kept),), m[2].weight[kept], m[2].bias[kept])
        want = torch.nn.functional.linear(m[3](h), m[4].weight[:, kept], m[4].bias)
        assert torch.allclose(result.checkpoint.model(x), want, atol=1e-5)
        # ... and differs from plain zeroing by the reported amount (8 random inputs there)
        zeroed = m[3](m[2](m[1](m[0](x)))).index_fill(1, torch.tensor(result.plan.remove["1"]), 0)
        plain = float((m[4](zeroed) - want).abs().max())
    assert diff > 1e-3 and plain > 1e-3


def test_round_to_keeps_multiples_and_no_verify_is_said(mobilenet):
    result = prune_checkpoint(mobilenet, None, PruneConfig(criterion="magnitude", amount=0.5,
                                                           round_to=8, verify=False))
    widths = [layer.n_units for layer in prunable_layers(result.checkpoint.model)]
    assert all(w % 8 == 0 for w in widths)
    plain = prune_checkpoint(mobilenet, None, PruneConfig(criterion="magnitude", amount=0.5))
    plain_widths = [layer.n_units for layer in prunable_layers(plain.checkpoint.model)]
    assert any(w % 8 for w in plain_widths)  # 24 -> 12 channels, say
    assert all(w >= p for w, p in zip(widths, plain_widths))  # rounding only spares units
    assert any("not verified" in w for w in result.summary.warnings)
    with pytest.raises(PruneInfoError, match="`round_to`=0 must be an integer of at least 1"):
        PruneConfig(amount=0.5, round_to=0).validate()


def test_prune_retrain_takes_ignore_globs(run_cli, mlp_path, tmp_path):
    out = tmp_path / "rounds"
    code, stdout, stderr = run_cli("prune-retrain", str(mlp_path), "--rounds", "1",
                                   "--amount-per-round", "0.5", "--epochs", "1", "--ignore",
                                   "fc[2-9]", "-o", str(out), "--json", "--quiet")
    assert code == 0, stderr
    first, last = json.loads(stdout)["rounds"][0]["arch"], json.loads(stdout)["rounds"][-1]["arch"]
    widths0, widths1 = first.split("-"), last.split("-")
    assert widths1[1] == str(int(widths0[1]) // 2) and widths1[2] == widths0[2]


def test_the_importance_adapter_serves_every_mobilenet_group_at_the_ratio(mobilenet):
    import copy

    import torch_pruning as tp

    from prune_info.pruning.importance import CriterionImportance

    model = copy.deepcopy(mobilenet.model)
    scores = {layer.name: torch.linspace(0, 1, layer.n_units) for layer in
              prunable_layers(model)}
    importance = CriterionImportance(model, scores=scores)
    before = {layer.name: layer.n_units for layer in prunable_layers(model)}
    pruner = tp.pruner.BasePruner(model, torch.zeros(1, *SHAPE), importance, pruning_ratio=0.5,
                                  ignored_layers=[model.classifier])
    pruner.step()
    after = {layer.name: layer.n_units for layer in prunable_layers(model)}
    halved = [name for name in before if after[name] == before[name] // 2]
    assert len(halved) == len(before), sorted(set(before) - set(halved))
    assert before["features.2.conv.1.0"] == 96 and after["features.2.conv.1.0"] == 48


def test_score_reports_each_coupled_group_beside_its_members(run_cli, resnet, tmp_path):
    path = tmp_path / "r.pt"
    save_checkpoint(resnet, path)
    code, stdout, stderr = run_cli("score", str(path), "--criteria", "entropy,magnitude",
                                   "--group-reduce", "max", "--json")
    assert code == 0, stderr
    doc = json.loads(stdout)
    (stem,) = [g for g in doc["groups"] if g["root"] == "conv1"]
    assert stem["members"] == ["conv1", "layer1.0.conv2", "layer1.1.conv2"]
    by_layer = {layer["name"]: layer["scores"]["magnitude"] for layer in doc["layers"]}
    want = [max(by_layer[m][i] for m in stem["members"]) for i in range(64)]
    assert stem["scores"]["magnitude"] == pytest.approx(want)


def test_per_layer_amounts_map_onto_groups_and_keep_is_not_rounded(resnet):
    n_layers = len(prunable_layers(resnet.model))
    result = prune_checkpoint(resnet, None, PruneConfig(criterion="magnitude",
                                                        amount=(0.25,) * n_layers))
    assert {len(v) for k, v in result.plan.remove.items() if k == "conv1"} == {16}
    with pytest.raises(PruneInfoError, match=r"`amounts` gives 7 values; give one, one per layer "
                                             r"pruned \(20\), or one per coupled group \(12"):
        prune_checkpoint(resnet, None, PruneConfig(criterion="magnitude", amount=(0.25,) * 7))
    uneven = [0.25] * n_layers
    uneven[2] = 0.5  # layer1.0.conv2, coupled to conv1
    with pytest.raises(PruneInfoError, match="gives different values to conv1, layer1.0.conv2"):
        prune_checkpoint(resnet, None, PruneConfig(criterion="magnitude", amount=tuple(uneven)))
    # a per-layer list is in the model's order of the prunable layers (as `info` lists them)
    names = [layer.name for layer in prunable_layers(resnet.model)]
    assert names[1] == "layer1.0.conv1"
    one_off = [0.25] * n_layers
    one_off[1] = 0.5
    result = prune_checkpoint(resnet, None, PruneConfig(criterion="magnitude",
                                                        amount=tuple(one_off), round_to=1))
    assert len(result.plan.remove["layer1.0.conv1"]) == 32
    assert len(result.plan.remove["layer1.0.conv2"]) == 16
    kept = prune_checkpoint(resnet, None, PruneConfig(criterion="magnitude", keep=(5,) * 12))
    assert {layer.n_units for layer in prunable_layers(kept.checkpoint.model)} == {5}


def test_masking_before_a_layernorm_is_checked_against_zeros_in_its_statistics():
    ckpt = _ln_mlp_ckpt()
    result = prune_checkpoint(ckpt, None, PruneConfig(criterion="magnitude", amount=0.5,
                                                      mask=True))
    assert not [w for w in result.summary.warnings if w.startswith("left out")]
    (note,) = [w for w in result.summary.warnings if "LayerNorm" in w]
    assert "still count the masked units (as zeros)" in note
    m, kept = ckpt.model, torch.tensor(sorted(set(range(16)) - set(result.plan.remove["1"])))
    gone = torch.tensor(result.plan.remove["1"])
    x = torch.randn(5, 1, 8, 8, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        h = torch.nn.functional.layer_norm(m[1](m[0](x)).index_fill(1, gone, 0.0), (16,),
                                           m[2].weight, m[2].bias)
        want = torch.nn.functional.linear(m[3](h)[:, kept], m[4].weight[:, kept], m[4].bias)
        assert torch.allclose(result.checkpoint.model(x), want, atol=1e-5)
