"""The curated library API: `import prune_info as pi`, its inputs, its cost, criteria plugins."""

import subprocess
import sys
from importlib.metadata import EntryPoint

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import prune_info as pi
from prune_info.criteria import registry


def test_every_documented_name_is_importable():
    missing = [name for name in pi.__all__ if not hasattr(pi, name)]
    assert missing == []
    for name in ("score", "train_model", "load_checkpoint", "plan_layerwise", "plan_global",
                 "plan_max_drop", "apply_plan", "retrain_checkpoint", "compute_curves",
                 "mean_gap", "layer_oinfo", "export_onnx", "benchmark_models"):
        assert name in pi.__all__


def test_every_lazy_name_is_listed_once():
    assert sorted(pi.__all__) == sorted({"PruneInfoError", "__version__", *pi._EXPORTS})


def test_import_stays_cheap():
    code = ("import sys, prune_info; heavy = ['torch', 'matplotlib', 'onnxruntime', 'onnx', "
            "'ray', 'mlflow', 'torch_pruning', 'timm']; "
            "print([m for m in heavy if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_score_takes_a_split_a_pair_a_dataset_and_a_dataloader_alike(digits, digits_mlp):
    split = digits.val
    by_split = pi.score(digits_mlp, split, "mi")
    by_pair = pi.score(digits_mlp.model, (split.x, split.y), "mi")
    by_dataset = pi.score(digits_mlp.model, digits, "mi")
    loader = DataLoader(TensorDataset(split.x, split.y), batch_size=50)
    by_loader = pi.score(digits_mlp.model, loader, "mi")
    assert sorted(by_split) == ["fc1", "fc2"]
    for other in (by_pair, by_dataset, by_loader):
        for layer in by_split:
            assert torch.equal(by_split[layer], other[layer])


def test_score_refuses_what_it_cannot_read_in_parameter_vocabulary(digits_mlp):
    with pytest.raises(pi.PruneInfoError, match="must be a Split, a Dataset, a pair"):
        pi.score(digits_mlp.model, "digits", "mi")
    with pytest.raises(pi.PruneInfoError, match="`model` must be torch.nn.Module or Checkpoint"):
        pi.score("model.pt", None, "random")
    with pytest.raises(pi.PruneInfoError, match="`criterion` names one criterion"):
        pi.score(digits_mlp.model, None, ["random", "magnitude"])
    with pytest.raises(pi.PruneInfoError, match="labels must be integers"):
        pi.score(digits_mlp.model, (torch.zeros(4, 64), torch.zeros(4)), "mi")


def test_criteria_that_need_no_data_take_none(digits_mlp):
    scores = pi.score(digits_mlp.model, None, "magnitude")
    assert scores["fc1"].shape == (digits_mlp.model.fc1.out_features,)


def _plugin_points(monkeypatch, points):
    monkeypatch.setattr(registry, "_entry_points_loaded", False)
    monkeypatch.setattr(registry, "entry_points", lambda group: points if
                        group == registry.ENTRY_POINT_GROUP else [])


def test_a_criterion_from_an_entry_point_is_found_by_name(monkeypatch, digits_mlp):
    def load():  # what importing a plugin module does: register its criteria
        @pi.register_criterion("test-ones", description="all ones", needs_data=False,
                               needs_labels=False)
        def ones(ctx):
            return {layer.name: torch.ones(layer.n_units) for layer in ctx.layers}

    point = EntryPoint(name="fake", value="fake_plugin.criteria", group=registry.ENTRY_POINT_GROUP)
    monkeypatch.setattr(EntryPoint, "load", lambda self: load())
    _plugin_points(monkeypatch, [point])
    try:
        assert "test-ones" in pi.available_criteria()
        scores = pi.score(digits_mlp.model, None, "test-ones")
        assert torch.equal(scores["fc1"], torch.ones(digits_mlp.model.fc1.out_features,
                                                     dtype=torch.float64))
    finally:
        registry.CRITERIA.pop("test-ones", None)


def test_a_plugin_that_fails_to_load_is_named(monkeypatch):
    point = EntryPoint(name="broken", value="no_such_module_xyz:criteria",
                       group=registry.ENTRY_POINT_GROUP)
    _plugin_points(monkeypatch, [point])
    with pytest.raises(pi.PruneInfoError, match="criteria plugin 'broken'.*failed to load"):
        pi.available_criteria()
