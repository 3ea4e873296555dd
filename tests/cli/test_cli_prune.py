"""``prune-info prune``: widths, reloading in a fresh process, allocation options, bad input."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import textwrap

import pytest
import torch

from prune_info.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from prune_info.criteria.context import compute_scores
from prune_info.criteria.options import ScoreOptions
from prune_info.criteria.ranking import rank_units
from prune_info.nn import accuracy, prunable_layers
from prune_info.training.loop import TrainConfig, train_model
from prune_info.zoo import build_model, parse_arch

USER_MODELS = textwrap.dedent('''
    import torch
    from torch import nn


    class Net(nn.Module):
        def __init__(self, detach=False):
            super().__init__()
            self.fc1 = nn.Linear(64, 40)
            self.fc2 = nn.Linear(40, 30)
            self.out = nn.Linear(30, 10)
            self.detach = detach

        def forward(self, x):
            h = torch.relu(self.fc1(x.flatten(1)))
            if self.detach:
                h = h.detach()
            return self.out(torch.relu(self.fc2(h)))


    def net():
        torch.manual_seed(0)
        return Net()


    def detached():
        torch.manual_seed(0)
        return Net(detach=True)
''')


def _sha(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


@pytest.fixture(scope="module")
def wide_ckpt(digits):
    """64-100-100-10 on digits, with a rewind point, trained briefly."""
    return train_model(digits, "64-100-100-10", "relu", "l2",
                       TrainConfig(epochs=3, seed=0, save_rewind_steps=(5,)), progress=False)


@pytest.fixture()
def wide_path(wide_ckpt, tmp_path):
    path = tmp_path / "wide.pt"
    save_checkpoint(wide_ckpt, path)
    return path


@pytest.fixture()
def user_models(tmp_path, monkeypatch):
    (tmp_path / "pi_user_models.py").write_text(USER_MODELS)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def _ablated(model, removed: dict):
    """The model with the removed units' post-activation outputs set to zero."""
    import copy

    ref = copy.deepcopy(model).eval()
    acts = {layer.name: layer.act_module or layer.name for layer in prunable_layers(ref)}
    for layer, idxs in removed.items():
        ref.get_submodule(acts[layer]).register_forward_hook(
            lambda m, i, o, idxs=idxs: o.index_fill(1, torch.tensor(idxs, dtype=torch.long), 0.0))
    return ref


# --------------------------------------------------------------------------------------------
# Layer-wise pruning and reloading


def test_layerwise_half_turns_64_100_100_10_into_64_50_50_10(run_cli, wide_path, wide_ckpt,
                                                              digits, user_models):
    digest = _sha(wide_path)
    out = wide_path.parent / "pruned.pt"
    code, stdout, stderr = run_cli("prune", str(wide_path), "--criterion", "mi", "--layerwise",
                                   "--amount", "0.5", "-o", str(out), "--json")
    assert code == 0, stderr
    assert _sha(wide_path) == digest  # the input is never modified
    summary = json.loads(stdout)
    assert summary["format"] == "prune-info-prune"
    assert summary["arch_before"] == "64-100-100-10" and summary["arch_after"] == "64-50-50-10"
    assert [(r["units_before"], r["units_after"]) for r in summary["layers"]] == [(100, 50)] * 2
    assert summary["parameters"] == {"before": 17610, "after": 64 * 50 + 50 + 50 * 50 + 50 + 510}
    assert summary["macs"]["before"] == 17400 and summary["macs"]["after"] == 6200
    assert summary["layers"][1]["macs_after"] == 2500
    assert summary["accuracy"]["val"]["before"] == pytest.approx(accuracy(wide_ckpt.model,
                                                                          digits.val))

    raw = torch.load(out, weights_only=True)
    assert raw["arch"]["hidden"] == [50, 50]
    assert raw["state_dict"]["fc2.weight"].shape == (50, 50)
    entry = raw["pruning_history"][-1]
    assert entry["criterion"] == "mi" and entry["mode"] == "remove"
    assert entry["widths_before"] == {"fc1": 100, "fc2": 100}
    assert entry["widths_after"] == {"fc1": 50, "fc2": 50}
    removed = entry["removed"]
    assert [len(removed["fc1"]), len(removed["fc2"])] == [50, 50]
    # the lowest-MI units are the ones removed
    mi = compute_scores(wide_ckpt.model, digits.val, ["mi"], options=ScoreOptions())["mi"]
    assert sorted(removed["fc1"]) == sorted(rank_units(mi["fc1"])[:50].tolist())
    # initial and rewind weights are sliced with the same indices
    kept = [i for i in range(100) if i not in set(removed["fc1"])]
    assert torch.equal(raw["init_state_dict"]["fc1.weight"],
                       wide_ckpt.init_state_dict["fc1.weight"][kept])
    assert raw["rewind_state_dicts"]["5"]["fc2.weight"].shape == (50, 50)
    # pruned == unpruned with the same units ablated to zero
    pruned = load_checkpoint(out).model
    x = digits.test.x
    with torch.no_grad():
        assert torch.allclose(pruned(x), _ablated(wide_ckpt.model, removed)(x), atol=1e-5,
                              rtol=0)

    # a user model built by a factory, pruned and rebuilt by replaying its history
    user_in, user_out = user_models / "user.pt", user_models / "user_pruned.pt"
    import pi_user_models

    save_checkpoint(Checkpoint(model=pi_user_models.net().eval(), factory="pi_user_models:net",
                               dataset=digits.describe()), user_in)
    code, _, stderr = run_cli("prune", str(user_in), "--model", "pi_user_models:net",
                              "--amount", "0.5,0.3", "-o", str(user_out))
    assert code == 0, stderr
    user_pruned = load_checkpoint(user_out, trust_factory=True).model
    assert (user_pruned.fc1.out_features, user_pruned.fc2.out_features) == (20, 21)

    # both reload in a fresh process (weights_only=True) and give identical outputs
    torch.save(x, user_models / "x.pt")
    code = textwrap.dedent(f"""
        import torch
        from prune_info.checkpoint import load_checkpoint
        for name in ("pruned", "user_pruned"):
            raw = torch.load(r"{user_models}/" + name + ".pt", weights_only=True)
            model = load_checkpoint(r"{user_models}/" + name + ".pt", trust_factory=True).model
            with torch.no_grad():
                y = model(torch.load(r"{user_models}/x.pt"))
            torch.save(y, r"{user_models}/y_" + name + ".pt")
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(user_models), os.environ.get("PYTHONPATH", "")])}
    (user_models / "pruned.pt").write_bytes(out.read_bytes())
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
    with torch.no_grad():
        assert torch.equal(torch.load(user_models / "y_pruned.pt"), pruned(x))
        assert torch.equal(torch.load(user_models / "y_user_pruned.pt"), user_pruned(x))


def test_cnn_with_batchnorm_prunes_through_flatten(run_cli, cnn_path, digits_cnn, digits):
    out = cnn_path.parent / "cnn_pruned.pt"
    code, stdout, stderr = run_cli("prune", str(cnn_path), "--criterion", "entropy",
                                   "--amount", "0.5", "-o", str(out))
    assert code == 0, stderr
    assert "c6-c8-f16 -> c3-c4-f8" in stdout
    raw = torch.load(out, weights_only=True)
    assert raw["arch"]["conv"] == [3, 4] and raw["arch"]["hidden"] == [8]
    assert raw["state_dict"]["fc1.weight"].shape == (8, 4 * 2 * 2)
    pruned = load_checkpoint(out).model
    removed = raw["pruning_history"][-1]["removed"]
    with torch.no_grad():
        x = digits.test.x
        assert torch.allclose(pruned(x), _ablated(digits_cnn.model, removed)(x), atol=1e-5,
                              rtol=0)


def test_keep_per_layer_amounts_mask_and_order(run_cli, wide_path, wide_ckpt, digits):
    def prune(*args):
        out = wide_path.parent / "out.pt"
        code, stdout, stderr = run_cli("prune", str(wide_path), *args, "-o", str(out), "--json")
        assert code == 0, stderr
        return json.loads(stdout), torch.load(out, weights_only=True), out

    _, raw, _ = prune("--keep", "30,20")
    assert raw["arch"]["hidden"] == [30, 20]
    _, raw, _ = prune("--amount", "0.5,0.8")
    assert raw["arch"]["hidden"] == [50, 20]
    summary, raw, out = prune("--amount", "0.5", "--mask", "--order", "high")
    assert raw["arch"]["hidden"] == [100, 100]
    assert raw["state_dict"]["fc1.weight"].shape == (100, 64)
    assert summary["parameters"]["after"] == summary["parameters"]["before"]
    removed = raw["pruning_history"][-1]["removed"]
    mi = compute_scores(wide_ckpt.model, digits.val, ["mi"])["mi"]
    assert sorted(removed["fc2"]) == sorted(rank_units(mi["fc2"], "high")[:50].tolist())
    masked = load_checkpoint(out).model
    assert masked.fc1.weight[removed["fc1"]].abs().sum() == 0
    with torch.no_grad():
        x = digits.val.x
        assert torch.allclose(masked(x), _ablated(wide_ckpt.model, removed)(x), atol=1e-5,
                              rtol=0)
    assert summary["accuracy"]["val"]["after"] == pytest.approx(accuracy(masked, digits.val))


def test_global_never_empties_a_layer(run_cli, mlp_path):
    out = mlp_path.parent / "global.pt"
    code, stdout, stderr = run_cli("prune", str(mlp_path), "--global", "--amount", "0.95",
                                   "--min-units", "2", "-o", str(out), "--json")
    assert code == 0, stderr
    assert "ill-advised" in stderr and "held at --min-units 2: fc1, fc2" in stderr
    summary = json.loads(stdout)
    assert [r["units_after"] for r in summary["layers"]] == [2, 2]
    assert summary["layers_at_min_units"] == ["fc1", "fc2"]
    assert torch.load(out, weights_only=True)["arch"]["hidden"] == [2, 2]


def test_max_drop_keeps_the_joint_drop_within_budget(run_cli, wide_path, wide_ckpt, digits):
    out = wide_path.parent / "md.pt"
    code, stdout, stderr = run_cli("prune", str(wide_path), "--max-drop", "2", "-o", str(out),
                                   "--json")
    assert code == 0, stderr
    report = json.loads(stdout)["max_drop"]
    pruned = load_checkpoint(out).model
    drop = 100 * (accuracy(wide_ckpt.model, digits.val) - accuracy(pruned, digits.val))
    assert drop <= 2.0 + 1e-9 and report["joint_drop_pp"] == pytest.approx(drop)
    widths = [layer.n_units for layer in prunable_layers(pruned)]
    assert widths == [100 - report["counts"]["fc1"], 100 - report["counts"]["fc2"]]
    assert sum(report["counts"].values()) > 0  # a 2-point budget buys some removal
    for layer, alone in report["alone"].items():
        assert alone["drop_pp"] <= 2.0 + 1e-9 and report["counts"][layer] <= alone["k"]


# --------------------------------------------------------------------------------------------
# Bad input: one line, exit 2, no output file


@pytest.mark.parametrize("args, message", [
    (["--amount", "1.0"], r"--amount 1 is outside \[0, 1\)"),
    (["--amount", "-0.2"], r"outside \[0, 1\)"),
    (["--amount", "0.5,0.5,0.5"], "3 values for 2 prunable layers"),
    (["--keep", "40,20"], "--keep 40 for fc1 is more than its 32 units"),
    (["--keep", "0,5"], "at least 1"),
    (["--global", "--keep", "5,5"], "does not go with --global"),
    (["--global", "--amount", "0.5", "--min-units", "0"], "at least 1 unit"),
    (["--amount", "0.5", "--keep", "3,3"], "exactly one of"),
    (["--criterion", "nonsense", "--amount", "0.5"], "nonsense"),
    (["--ignore", "fc9", "--amount", "0.5"], "--ignore fc9: not a prunable layer"),
    (["--max-drop", "150"], r"\[0, 100\)"),
    (["--amount", "0.5", "-o", "SELF"], "is the input file"),
])
def test_bad_input_gets_one_line_exit_2_and_no_output(run_cli, mlp_path, args, message):
    out = mlp_path.parent / "never.pt"
    args = [str(mlp_path) if a == "SELF" else a for a in args]
    if "-o" not in args:
        args += ["-o", str(out)]
    digest = _sha(mlp_path)
    code, stdout, stderr = run_cli("prune", str(mlp_path), *args)
    assert code == 2
    assert stderr.startswith("error:") and stderr.strip().count("\n") == 0, stderr
    assert re.search(message, stderr), stderr
    assert not out.exists()
    assert _sha(mlp_path) == digest


def test_user_model_errors_name_the_fix(run_cli, user_models, digits):
    import pi_user_models

    sd = user_models / "sd.pt"
    torch.save(pi_user_models.net().state_dict(), sd)
    out = user_models / "never.pt"
    code, _, stderr = run_cli("prune", str(sd), "--model", "pi_user_models:net", "--amount", "0.5",
                              "-o", str(out))
    assert code == 2 and "criterion mi needs data" in stderr and "--data" in stderr
    assert not out.exists()

    bad = user_models / "detached.pt"
    save_checkpoint(Checkpoint(model=pi_user_models.detached().eval(),
                               factory="pi_user_models:detached", dataset=digits.describe()), bad)
    # torch-pruning cannot see fc1 run: --strict refuses in one line naming the fix ...
    code, _, stderr = run_cli("prune", str(bad), "--trust-factory", "--amount", "0.5", "-o",
                              str(out), "--strict")
    assert code == 2 and stderr.count("\n") == 1
    assert "fc1" in stderr and "--ignore fc1" in stderr and not out.exists()
    # ... otherwise fc1 is left out with that reason and the rest is pruned
    for ignore in ([], ["--ignore", "fc1"]):
        code, stdout, stderr = run_cli("prune", str(bad), "--trust-factory", "--amount", "0.5",
                                       *ignore, "-o", str(out), "--json")
        assert code == 0, stderr
        doc = json.loads(stdout)
        assert [r["units_after"] for r in doc["layers"]] == [40, 15]
        assert ("does not appear in the traced forward pass" in " ".join(doc["warnings"])) \
            == (not ignore)
        out.unlink()


@pytest.mark.fashion
def test_fashion_784_100_100_10_pruned_by_half(run_cli, fashion, fashion_dir, tmp_path,
                                               monkeypatch):
    monkeypatch.setenv("PRUNE_INFO_DATA", fashion_dir)
    torch.manual_seed(0)  # untrained: the widths are what is checked, training costs seconds
    arch = parse_arch("784-100-100-10", fashion.input_shape, 10, "relu", "l2")
    ckpt = Checkpoint(model=build_model(arch).eval(), arch=arch, dataset=fashion.describe())
    path, out = tmp_path / "f.pt", tmp_path / "fp.pt"
    save_checkpoint(ckpt, path)
    code, stdout, stderr = run_cli("prune", str(path), "--amount", "0.5", "-o", str(out),
                                   "--json")
    assert code == 0, stderr
    assert json.loads(stdout)["arch_after"] == "784-50-50-10"
    assert load_checkpoint(out).model.fc1.weight.shape == (50, 784)
