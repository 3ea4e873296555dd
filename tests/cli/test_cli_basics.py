import json
import subprocess
import sys

import pytest
import torch


def test_train_then_info(run_cli, tmp_path):
    out = tmp_path / "m.pt"
    code, stdout, _ = run_cli("train", "--data", "digits", "--arch", "64-12-10", "--epochs", "2",
                              "--quiet", "-o", str(out))
    assert code == 0, stdout
    assert "test accuracy" in stdout and f"saved {out}" in stdout
    code, stdout, _ = run_cli("info", "--json", str(out))
    info = json.loads(stdout)
    assert info["format"] == "prune-info-info"
    assert info["arch"] == "64-12-10" and info["parameters"] == 64 * 12 + 12 + 12 * 10 + 10
    assert info["layers"] == [{"name": "fc1", "kind": "linear", "units": 12}]
    saved = torch.load(out, weights_only=True)["metrics"]["test_acc"]
    assert info["test_acc"] == pytest.approx(saved)


def test_python_dash_m_and_help_with_example():
    result = subprocess.run([sys.executable, "-m", "prune_info", "train", "--help"],
                            capture_output=True, text=True, check=True)
    assert "Examples:" in result.stdout and "--save-rewind-step" in result.stdout


@pytest.mark.parametrize("args,message", [
    (["info", "missing.pt"], "no such file"),
    (["train", "--epochs", "-3", "-o", "x.pt"], "--epochs"),
    (["train", "--epochs", "many", "-o", "x.pt"], "--epochs"),
    (["train", "--lr", "-1", "-o", "x.pt"], "--lr"),
    (["train", "--data", "imagenet", "-o", "x.pt"], "--data"),
    (["train", "--arch", "784-100-10", "-o", "x.pt"], "expects 784 inputs"),
    (["train", "-o", "no/such/dir/x.pt"], "does not exist"),
])
def test_bad_input_gets_one_line_and_exit_2(run_cli, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    code, stdout, stderr = run_cli(*args)
    assert code == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert "Traceback" not in stderr
    assert not (tmp_path / "x.pt").exists()


def test_not_a_checkpoint_and_pickle_refusal(run_cli, tmp_path, digits_mlp):
    text = tmp_path / "notes.pt"
    text.write_text("not a model")
    code, _, stderr = run_cli("info", str(text))
    assert code == 2 and "not a PyTorch checkpoint" in stderr
    whole = tmp_path / "whole.pt"
    torch.save(digits_mlp.model, whole)
    code, _, stderr = run_cli("info", str(whole))
    assert code == 2 and "arbitrary code" in stderr and "--trust-pickle" in stderr
    code, stdout, _ = run_cli("info", "--trust-pickle", str(whole))
    assert code == 0 and "fc1 (32)" in stdout


def test_state_dict_with_arch(run_cli, tmp_path, digits_mlp):
    path = tmp_path / "sd.pt"
    torch.save(digits_mlp.model.state_dict(), path)
    code, _, stderr = run_cli("info", str(path))
    assert code == 2 and "--arch" in stderr
    code, stdout, _ = run_cli("info", "--arch", "64-32-24-10", "--data", "digits", str(path))
    assert code == 0 and "64-32-24-10" in stdout


def test_debug_shows_the_traceback(tmp_path):
    result = subprocess.run([sys.executable, "-m", "prune_info", "--debug", "info",
                             str(tmp_path / "none.pt")], capture_output=True, text=True)
    assert result.returncode != 0 and "Traceback" in result.stderr


@pytest.mark.parametrize("args, message", [
    (["--amount", "1.5"], "error: --amount 1.5 is outside [0, 1)"),
    (["--max-drop", "150"], "error: --max-drop 150 must be in [0, 100)"),
    (["--global", "--max-drop", "1"], "--max-drop allocates per layer by itself; drop --global"),
    (["--amount", "0.5", "--ignore", "fc9"], "error: --ignore fc9: not a prunable layer"),
])
def test_library_parameters_become_the_commands_flags(run_cli, mlp_path, args, message):
    code, _, stderr = run_cli("prune", str(mlp_path), *args, "-o", str(mlp_path.parent / "x.pt"))
    assert code == 2 and message in stderr and "`" not in stderr, stderr
    assert len(stderr.strip().splitlines()) == 1


def test_backticked_names_without_a_flag_lose_their_backticks():
    from prune_info.cli.app import cli, flag_message

    message = "`amounts`=1.5 is outside [0, 1); `allocation='global'` and `count` and `spec`=64-10"
    assert flag_message(message, cli.commands["prune"]) == (
        "--amount 1.5 is outside [0, 1); --global and count and --arch 64-10")
    assert flag_message(message, None) == (
        "amounts=1.5 is outside [0, 1); allocation='global' and count and spec=64-10")
