import json

import pytest
import torch

from prune_info.checkpoint import load_checkpoint, save_checkpoint
from prune_info.errors import PruneInfoError
from prune_info.pruning.config import PruneConfig
from prune_info.pruning.retrain import RetrainConfig, retrain_checkpoint
from prune_info.pruning.retrain_report import RetrainReport, RoundsReport
from prune_info.pruning.workflow import prune_checkpoint


@pytest.fixture(scope="module")
def pruned(digits, digits_mlp):
    return prune_checkpoint(digits_mlp, digits, PruneConfig(criterion="mi", amount=0.5)).checkpoint


def _kept(ckpt, layer):
    removed = set(ckpt.pruning_history[-1]["removed"][layer])
    width = ckpt.pruning_history[-1]["widths_before"][layer]
    return [i for i in range(width) if i not in removed]


def test_rewind_init_restores_the_initial_weights_of_surviving_units(pruned, digits_mlp, digits,
                                                                      monkeypatch):
    seen = {}

    def capture(model, *args, **kwargs):  # stop before the first optimiser step
        seen.update({k: v.clone() for k, v in model.state_dict().items()})
        raise KeyboardInterrupt

    monkeypatch.setattr("prune_info.pruning.retrain.fit", capture)
    with pytest.raises(KeyboardInterrupt):
        retrain_checkpoint(pruned, digits, RetrainConfig(epochs=1, rewind="init"), progress=False)
    init = digits_mlp.init_state_dict
    k1, k2 = _kept(pruned, "fc1"), _kept(pruned, "fc2")
    assert torch.equal(seen["fc1.weight"], init["fc1.weight"][k1])
    assert torch.equal(seen["fc1.bias"], init["fc1.bias"][k1])
    assert torch.equal(seen["fc2.weight"], init["fc2.weight"][k2][:, k1])
    assert torch.equal(seen["out.weight"], init["out.weight"][:, k2])
    assert torch.equal(seen["out.bias"], init["out.bias"])


def test_freeze_others_keeps_frozen_weights_bit_identical(digits, digits_mlp):
    masked = prune_checkpoint(digits_mlp, digits,
                              PruneConfig(criterion="mi", amount=0.5, mask=True)).checkpoint
    new, report = retrain_checkpoint(masked, digits, RetrainConfig(epochs=2, freeze_others=True),
                                      progress=False)
    old_state, new_state = masked.model.state_dict(), new.model.state_dict()
    k1 = _kept(masked, "fc1")
    removed1 = masked.pruning_history[-1]["removed"]["fc1"]
    # the output layer is frozen entirely, removed units' rows stay zero, kept rows trained
    assert torch.equal(new_state["out.weight"], old_state["out.weight"])
    assert torch.equal(new_state["out.bias"], old_state["out.bias"])
    assert torch.all(new_state["fc1.weight"][removed1] == 0)
    assert torch.equal(new_state["fc1.weight"][removed1], old_state["fc1.weight"][removed1])
    assert not torch.equal(new_state["fc1.weight"][k1], old_state["fc1.weight"][k1])
    assert report.run.held_entries > 0


def test_fine_tuning_a_masked_model_keeps_the_mask(digits, digits_mlp):
    masked = prune_checkpoint(digits_mlp, digits,
                              PruneConfig(criterion="mi", amount=0.5, mask=True)).checkpoint
    new, _ = retrain_checkpoint(masked, digits, RetrainConfig(epochs=1), progress=False)
    removed2 = masked.pruning_history[-1]["removed"]["fc2"]
    state = new.model.state_dict()
    assert torch.all(state["fc2.weight"][removed2] == 0)
    assert torch.all(state["out.weight"][:, removed2] == 0)


def test_fine_tuning_recovers_accuracy(pruned, digits):
    new, report = retrain_checkpoint(pruned, digits, RetrainConfig(epochs=3), progress=False)
    assert report.run.after["test_acc"] > report.run.before["test_acc"]
    assert report.run.dense["test_acc"] - report.run.after["test_acc"] < 0.03
    assert new.pruning_history == pruned.pruning_history
    assert new.spec == "64-16-12-10"


def test_bad_rewinds_are_explained(pruned, digits, tmp_path, digits_mlp):
    with pytest.raises(PruneInfoError, match="`save_rewind_steps` including 7"):
        retrain_checkpoint(pruned, digits, RetrainConfig(rewind=7), progress=False)
    with pytest.raises(PruneInfoError, match="at least 1"):
        retrain_checkpoint(pruned, digits, RetrainConfig(epochs=0), progress=False)
    no_init = pruned.replace(init_state_dict=None)
    with pytest.raises(PruneInfoError, match="no initial weights.*prune-info train"):
        retrain_checkpoint(no_init, digits, RetrainConfig(rewind="init"), progress=False)
    # pruned elsewhere: a smaller model whose stored initial weights are the dense ones
    elsewhere = pruned.replace(init_state_dict=digits_mlp.init_state_dict)
    with pytest.raises(PruneInfoError, match="without a recorded history"):
        retrain_checkpoint(elsewhere, digits, RetrainConfig(rewind="init"), progress=False)
    with pytest.raises(PruneInfoError, match="no pruning history"):
        retrain_checkpoint(digits_mlp, digits, RetrainConfig(freeze_others=True), progress=False)


def test_cli_retrain_and_prune_retrain(run_cli, tmp_path, pruned, mlp_path):
    path = tmp_path / "pruned.pt"
    save_checkpoint(pruned, path)
    code, stdout, _ = run_cli("retrain", str(path), "--epochs", "1", "--rewind", "init",
                              "--compare-finetune", "--quiet", "-o", str(tmp_path / "r.pt"))
    assert code == 0, stdout
    assert "rewind init" in stdout and "fine-tune" in stdout and "dense" in stdout
    assert load_checkpoint(tmp_path / "r.pt").spec == "64-16-12-10"
    code, stdout, _ = run_cli("prune-retrain", str(mlp_path), "--rounds", "2", "--epochs", "1",
                              "--quiet", "-o", str(tmp_path / "rounds"))
    assert code == 0, stdout
    assert load_checkpoint(tmp_path / "rounds" / "round2.pt").spec == "64-21-16-10"
    rounds = RoundsReport.read(tmp_path / "rounds" / "rounds.json")
    assert [r.checkpoint for r in rounds.rounds] == [
        None, *(str(tmp_path / "rounds" / f"round{r}.pt") for r in (1, 2))]
    assert [r.arch for r in rounds.rounds] == ["64-32-24-10", "64-26-20-10", "64-21-16-10"]
    assert (rounds.amount_per_round, rounds.target) == (0.2, None)
    code, stdout, _ = run_cli("retrain", str(path), "--epochs", "1", "--quiet", "--json",
                              "-o", str(tmp_path / "r2.pt"))
    report = RetrainReport.from_dict(json.loads(stdout))
    assert report.output == str(tmp_path / "r2.pt") and [r.label for r in report.runs] == [
        "fine-tune"]
    assert report.run.after["test_acc"] == load_checkpoint(tmp_path / "r2.pt").metrics["test_acc"]
    for args, message in [(["--epochs", "0"], "at least 1"), (["--rewind", "x"], "--rewind")]:
        code, _, stderr = run_cli("retrain", str(path), *args, "-o", str(tmp_path / "bad.pt"))
        assert code == 2 and message in stderr
        assert not (tmp_path / "bad.pt").exists()


def test_an_interrupted_prune_retrain_resumes_after_its_last_round(digits, mlp_path, tmp_path,
                                                                   monkeypatch):
    from prune_info.pruning import retrain as module
    from prune_info.pruning.retrain import iterative_prune

    ckpt = load_checkpoint(mlp_path)
    prune, again = PruneConfig(criterion="mi", amount=0.25), RetrainConfig(epochs=1, seed=3)
    whole = iterative_prune(ckpt, digits, prune, again, 3, tmp_path / "whole", progress=False)
    calls = []
    real = module.retrain_checkpoint

    def crash_in_round_3(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(module, "retrain_checkpoint", crash_in_round_3)
    out = tmp_path / "cut"
    with pytest.raises(KeyboardInterrupt):
        iterative_prune(ckpt, digits, prune, again, 3, out, progress=False)
    assert [r.round for r in RoundsReport.read(out / "rounds.json").rounds] == [0, 1, 2]
    calls.clear()
    resumed = iterative_prune(ckpt, digits, prune, again, 3, out, progress=False)
    assert len(calls) == 1  # round 3 only
    strip = [dict(r.to_dict(False), checkpoint=None) for r in resumed.rounds]
    assert strip == [dict(r.to_dict(False), checkpoint=None) for r in whole.rounds]
    assert RoundsReport.read(out / "rounds.json") == resumed
    with pytest.raises(PruneInfoError, match=r"another configuration \(prune.amount: 0.25 "
                                             r"there, 0.5 here\)"):
        iterative_prune(ckpt, digits, PruneConfig(criterion="mi", amount=0.5), again, 3, out)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    with pytest.raises(PruneInfoError, match="non-empty directory that holds no "
                                             "prune-retrain.json"):
        iterative_prune(ckpt, digits, prune, again, 3, tmp_path / "mine")
