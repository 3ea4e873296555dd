import hashlib
import subprocess
import sys

import pytest
import torch

from prune_info.checkpoint import load_checkpoint, save_checkpoint
from prune_info.errors import PruneInfoError
from prune_info.zoo import parse_arch


def test_checkpoint_is_self_describing_and_loads_weights_only(mlp_path, digits_mlp):
    raw = torch.load(mlp_path, weights_only=True)
    assert raw["format"] == "prune-info-checkpoint" and raw["format_version"] == 1
    assert raw["arch"]["hidden"] == [32, 24]
    assert raw["dataset"]["name"] == "digits"
    assert raw["dataset"]["normalisation"]["scale"] == pytest.approx(1 / 16)
    assert raw["pruning_history"] == []
    assert set(raw["init_state_dict"]) == set(raw["state_dict"])
    assert 0.8 < raw["metrics"]["test_acc"] <= 1.0
    ckpt = load_checkpoint(mlp_path)
    x = torch.randn(5, 1, 8, 8)
    assert torch.equal(ckpt.model(x), digits_mlp.model.eval()(x))


def test_checkpoint_reloads_identically_in_a_fresh_process(mlp_path, digits):
    x = digits.test.x[:50]
    expected = load_checkpoint(mlp_path).model(x)
    torch.save(x, mlp_path.parent / "x.pt")
    code = (
        "import sys, torch; from prune_info.checkpoint import load_checkpoint; "
        f"m = load_checkpoint(r'{mlp_path}').model; "
        f"torch.save(m(torch.load(r'{mlp_path.parent / 'x.pt'}')), r'{mlp_path.parent / 'y.pt'}')"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    assert torch.equal(torch.load(mlp_path.parent / "y.pt"), expected)


def test_initial_weights_differ_from_trained_ones(digits_mlp):
    init = digits_mlp.init_state_dict["fc1.weight"]
    assert init.shape == (32, 64)
    assert not torch.equal(init, digits_mlp.model.state_dict()["fc1.weight"])


def test_plain_state_dict_needs_an_architecture(tmp_path, digits_mlp, digits):
    path = tmp_path / "sd.pt"
    torch.save(digits_mlp.model.state_dict(), path)
    with pytest.raises(PruneInfoError, match="plain state_dict.*`arch`"):
        load_checkpoint(path)
    arch = parse_arch("64-32-24-10", digits.input_shape, 10, "relu", "l2")
    ckpt = load_checkpoint(path, arch=arch)
    x = digits.val.x[:8]
    assert torch.equal(ckpt.model(x), digits_mlp.model(x))
    wrong = parse_arch("64-30-24-10", digits.input_shape, 10)
    with pytest.raises(PruneInfoError, match="do not fit"):
        load_checkpoint(path, arch=wrong)


def test_pickled_module_needs_trust_pickle(tmp_path, digits_mlp):
    path = tmp_path / "whole.pt"
    torch.save(digits_mlp.model, path)
    with pytest.raises(PruneInfoError, match="`trust_pickle`"):
        load_checkpoint(path)
    assert load_checkpoint(path, trust_pickle=True).layers[0].n_units == 32


def test_factory_model_with_state_dict(tmp_path, monkeypatch):
    pkg = tmp_path / "usermodels.py"
    pkg.write_text(
        "import torch.nn as nn\n"
        "def tiny():\n"
        "    return nn.Sequential(nn.Flatten(), nn.Linear(64, 12), nn.ReLU(), nn.Linear(12, 10))\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    import usermodels

    model = usermodels.tiny()
    torch.save(model.state_dict(), tmp_path / "sd.pt")
    ckpt = load_checkpoint(tmp_path / "sd.pt", factory="usermodels:tiny")
    got = [(layer.name, layer.n_units, layer.activation) for layer in ckpt.layers]
    assert got == [("1", 12, "relu")]
    with pytest.raises(PruneInfoError, match="cannot import"):
        load_checkpoint(tmp_path / "sd.pt", factory="nosuchpkg:tiny")


@pytest.mark.parametrize("content,match", [
    (b"hello, I am text\n", "not a PyTorch checkpoint"),
    (b"", "truncated or corrupt"),
])
def test_garbage_files_are_explained(tmp_path, content, match):
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises(PruneInfoError, match=match):
        load_checkpoint(path)


def test_truncated_checkpoint_is_explained(tmp_path, mlp_path):
    data = mlp_path.read_bytes()
    path = tmp_path / "cut.pt"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(PruneInfoError, match="truncated or corrupt"):
        load_checkpoint(path)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(PruneInfoError, match="no such file"):
        load_checkpoint(tmp_path / "nope.pt")
    with pytest.raises(PruneInfoError, match="is a directory"):
        load_checkpoint(tmp_path)


def test_interrupted_save_leaves_the_old_file_intact(tmp_path, digits_mlp, monkeypatch):
    path = tmp_path / "m.pt"
    save_checkpoint(digits_mlp, path)
    before = hashlib.sha256(path.read_bytes()).hexdigest()

    def explode(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", explode)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(digits_mlp, path)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]
