"""Contracts of the library: every registered criterion behaves alike, and the one-call verbs
take what a researcher has (an ``nn.Module``, a ``DataLoader``) and give back what loads again."""

import sys

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import prune_info as pi
from prune_info.criteria import get_criterion

CRITERIA = pi.available_criteria()
DEAD = 5  # the unit of fc1 the fixture below kills


@pytest.fixture(scope="module")
def dead_unit_mlp(digits_mlp):
    """The digits MLP with unit 5 of fc1 dead: zero weights and bias, constant output."""
    model = pi.clone_model(digits_mlp.model)
    with torch.no_grad():
        model.fc1.weight[DEAD] = 0
        model.fc1.bias[DEAD] = 0
    return model


@pytest.mark.parametrize("name", CRITERIA)
def test_every_criterion_scores_every_unit_once_finite_and_deterministic(name, digits,
                                                                        dead_unit_mlp):
    data = digits.val if get_criterion(name).needs_data else None
    first = pi.score(dead_unit_mlp, data, name)
    again = pi.score(dead_unit_mlp, data, name)
    assert {k: tuple(v.shape) for k, v in first.items()} == {"fc1": (32,), "fc2": (24,)}
    for layer, values in first.items():
        assert values.dtype == torch.float64 and torch.isfinite(values).all()
        assert torch.equal(values, again[layer]), f"{name} is not deterministic on {layer}"


@pytest.mark.parametrize("name", [c for c in CRITERIA if c != "random"])
def test_higher_means_keep_a_dead_unit_scores_lowest(name, digits, dead_unit_mlp):
    """A unit whose output never changes carries nothing and does nothing: every criterion but
    ``random`` puts it at the bottom of its layer (ties allowed), so a prune removes it first."""
    data = digits.val if get_criterion(name).needs_data else None
    fc1 = pi.score(dead_unit_mlp, data, name)["fc1"]
    assert fc1[DEAD] == fc1.min(), (name, fc1[DEAD].item(), fc1.min().item())
    plan = pi.plan_layerwise({"fc1": fc1}, amounts=0.1)
    assert DEAD in plan.remove["fc1"]


@pytest.mark.parametrize("name", [c for c in CRITERIA if get_criterion(c).needs_data])
def test_a_criterion_that_needs_data_refuses_none_naming_itself(name, dead_unit_mlp):
    with pytest.raises(pi.PruneInfoError, match=name):
        pi.score(dead_unit_mlp, None, name)


def test_prune_error_is_a_value_error():
    assert issubclass(pi.PruneInfoError, ValueError)


@pytest.fixture
def module_and_loader(digits, digits_mlp):
    """What a researcher has: a bare nn.Module and DataLoaders of (x, y) batches."""
    model = pi.clone_model(digits_mlp.model)
    loaders = {name: DataLoader(TensorDataset(split.x, split.y), batch_size=64)
               for name, split in (("train", digits.train), ("val", digits.val),
                                   ("test", digits.test))}
    return model, loaders


def test_prune_takes_a_module_and_a_dataloader_and_matches_the_masked_model(module_and_loader,
                                                                            digits):
    model, loaders = module_and_loader
    before = [p.clone() for p in model.parameters()]
    result = pi.prune(model, loaders["val"], criterion="mi", amount=0.5)
    assert [layer.n_units for layer in pi.prunable_layers(result.checkpoint.model)] == [16, 12]
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))  # untouched
    example = pi.example_input(model, digits.input_shape)
    masked = pi.mask_plan(pi.clone_model(model), result.plan, example).eval()
    x = digits.test.x[:128]
    assert torch.allclose(result.checkpoint.model(x), masked(x), atol=1e-5)
    # the same scores, hence the same plan, from the split the loader was made of
    same = pi.prune_checkpoint(pi.Checkpoint(model), digits,
                               pi.PruneConfig(criterion="mi", amount=0.5))
    assert same.plan.remove == result.plan.remove
    assert result.summary.val_acc_before == pytest.approx(pi.accuracy(model, digits.val))


def test_settings_and_splits_are_checked_in_parameter_vocabulary(module_and_loader):
    model, loaders = module_and_loader
    with pytest.raises(pi.PruneInfoError, match="unknown setting `crit` of PruneConfig"):
        pi.prune(model, loaders["val"], crit="mi")
    with pytest.raises(pi.PruneInfoError, match=r"keys \['holdout'\]; use train, val and test"):
        pi.prune(model, {"holdout": loaders["val"]}, criterion="mi", amount=0.5)
    with pytest.raises(pi.PruneInfoError, match="`model` must be torch.nn.Module or Checkpoint"):
        pi.prune("model.pt", loaders["val"])


def test_as_dataset_fills_missing_splits_from_the_given_ones(module_and_loader, digits):
    _, loaders = module_and_loader
    data = pi.as_dataset({"train": loaders["train"], "validation": loaders["val"]})
    assert (len(data.train), len(data.val), len(data.test)) == (
        len(digits.train), len(digits.val), len(digits.val))
    assert data.n_classes == 10 and data.input_shape == (1, 8, 8)
    one = pi.as_dataset(loaders["val"])
    assert one.train is one.val is one.test


def test_oinfo_and_bench_take_a_module_and_a_dataloader(module_and_loader, digits):
    from prune_info.analysis.oinfo import oinfo_checkpoint

    model, loaders = module_and_loader
    document = pi.oinfo(model, loaders["val"], max_samples=100, max_size=3)
    by_hand = oinfo_checkpoint(pi.Checkpoint(model), digits, max_samples=100, max_size=3)
    def timeless(doc):
        return [{k: v for k, v in layer.items() if k != "seconds"} for layer in doc.layers]

    assert timeless(document) == timeless(by_hand) and document.table().strip()
    small = pi.prune(model, loaders["val"], criterion="mi", amount=0.5).checkpoint.model
    report = pi.bench([model, small], loaders["test"], batches=(1,), repeat=2, warmup=1,
                      runtimes=("torch",), threads=1)
    rows = report.models
    assert [r.test_acc for r in rows] == pytest.approx(
        [pi.accuracy(model, digits.test), pi.accuracy(small, digits.test)])
    assert rows[1].parameters < rows[0].parameters
    assert report.settings["batches"] == (1,) and "batch 1" in report.table()


def test_retrain_and_export_take_the_pruned_module(module_and_loader, digits, tmp_path):
    model, loaders = module_and_loader
    pruned = pi.prune(model, loaders["val"], criterion="mi", amount=0.5).checkpoint
    retrained, summary = pi.retrain(pruned, loaders, epochs=1, lr=0.01)
    assert summary.run.before["val_acc"] == pytest.approx(pi.accuracy(pruned.model, digits.val))
    assert summary.run.after["val_acc"] == pytest.approx(
        pi.accuracy(retrained.model, digits.val))
    report = pi.export_onnx(retrained.model, tmp_path / "m.onnx", sample=digits.val.x[:8])
    assert report.max_abs_diff < 1e-4 and (tmp_path / "m.onnx").is_file()
    with pytest.raises(pi.PruneInfoError, match="pass a sample batch as `sample`"):
        pi.export_onnx(retrained.model, tmp_path / "n.onnx")
    assert not (tmp_path / "n.onnx").exists()


def test_a_checkpoint_the_library_saves_always_loads(module_and_loader, tmp_path, monkeypatch):
    model, loaders = module_and_loader
    path = tmp_path / "bare.pt"
    with pytest.raises(pi.PruneInfoError, match="neither an architecture nor a factory"):
        pi.save_checkpoint(pi.Checkpoint(model), path)
    assert not path.exists()
    (tmp_path / "usernets.py").write_text(
        "import torch\n"
        "def mlp(width=32):\n"
        "    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, width),\n"
        "                               torch.nn.ReLU(), torch.nn.Linear(width, 10))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "usernets", raising=False)  # another test's usernets
    import usernets

    ckpt = pi.Checkpoint(usernets.mlp(), factory="usernets:mlp", factory_kwargs={"width": 32})
    pruned = pi.prune(ckpt, loaders["val"], criterion="mi", amount=0.5).checkpoint
    pi.save_checkpoint(pruned, path)
    loaded = pi.load_checkpoint(path, factory="usernets:mlp")
    x = torch.randn(4, 1, 8, 8)
    assert torch.equal(loaded.model(x), pruned.model.eval()(x))


def test_cli_refuses_to_prune_a_pickled_module_before_any_work(run_cli, tmp_path, digits_mlp):
    whole = tmp_path / "whole.pt"
    torch.save(digits_mlp.model, whole)
    out = tmp_path / "pruned.pt"
    code, _, stderr = run_cli("prune", "--trust-pickle", str(whole), "--data", "digits",
                              "--amount", "0.5", "-o", str(out))
    assert code == 2 and not out.exists()
    assert stderr.strip().splitlines() == [
        f"error: {whole} is a pickled module, which records no architecture or factory, so "
        "the checkpoint written could not be loaded again: save torch.save(model.state_dict(), "
        "...) and pass --model FACTORY (or --arch) instead"]


def test_ablate_takes_a_module_and_dataloaders_and_returns_the_cli_report(module_and_loader,
                                                                          digits_mlp, digits):
    model, loaders = module_and_loader
    report = pi.ablate(model, loaders, criteria=("mi",), random=2, at=(8,))
    by_checkpoint = pi.ablate(digits_mlp, digits, pi.AblationConfig(criteria=("mi",), random=2,
                                                                    at=(8,)))
    assert report.to_dict()["modes"] == by_checkpoint.to_dict()["modes"]
    assert "mi:low: gap@8 = " in report.table()
