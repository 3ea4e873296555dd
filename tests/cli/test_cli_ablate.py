"""``prune-info ablate`` and ``prune-info study`` from the command line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from prune_info.analysis.curves import compute_curves
from prune_info.checkpoint import load_checkpoint
from prune_info.criteria.context import compute_scores

STUDY = ["study", "--data", "digits", "--arch", "64-16-12-10", "--seeds", "3", "--epochs", "2",
         "--random", "3", "--criteria", "mi", "--quiet"]


# Tiny tensors: a second intra-op thread only adds wake-up latency on a loaded machine.
pytestmark = pytest.mark.usefixtures("one_thread")


def test_ablate_writes_the_curves_and_the_figure(run_cli, mlp_path, tmp_path, digits):
    out, plot = tmp_path / "curves.json", tmp_path / "curves.png"
    code, stdout, stderr = run_cli("ablate", str(mlp_path), "--criteria", "mi,kl,entropy",
                                   "--order", "low,high", "--random", "5", "--at", "20",
                                   "--out", str(out), "--plot", str(plot))
    assert code == 0, stderr
    assert "fc1 (32 units, ablation to zero)" in stdout and "gap@20" in stdout
    assert plot.stat().st_size > 10_000
    doc = json.loads(out.read_text())
    assert doc["format"] == "prune-info-ablation"
    fc2 = doc["modes"]["layerwise"]["scopes"]["fc2"]
    # the same numbers as the library computes
    ckpt = load_checkpoint(mlp_path)
    scores = compute_scores(ckpt.model, digits.val, ["mi", "kl", "entropy"], n_classes=10)
    curves = compute_curves(ckpt.model, digits.test, scores, random=5, seed=0)
    for label, counts in curves.counts["fc2"].items():
        assert fc2["counts"][label] == counts.tolist()
    assert len(fc2["counts"]["random"]) == 5
    assert fc2["accuracy"]["mi:low"]["mean"][0] == pytest.approx(ckpt.metrics["test_acc"])


def test_ablate_whole_network_to_the_mean(run_cli, mlp_path, tmp_path):
    out = tmp_path / "net.json"
    code, stdout, stderr = run_cli("ablate", str(mlp_path), "--whole-network", "--ablate-to",
                                   "mean", "--criteria", "mi", "--random", "2", "--out", str(out))
    assert code == 0, stderr
    doc = json.loads(out.read_text())
    assert list(doc["modes"]) == ["network"]
    scope = doc["modes"]["network"]["scopes"]["network"]
    assert scope["units"] == 56 and len(scope["counts"]["mi:low"][0]) == 57
    assert doc["modes"]["network"]["ablate_to"] == "mean"


@pytest.mark.parametrize("args, message", [
    (["--at", "28"], "--at 28 is beyond the 24 units of fc2"),
    (["--random", "0", "--at", "5"], "--random is 0"),
    (["--criteria", "nonsense"], "nonsense"),
    (["--order", "low,middle"], "unknown value 'middle'"),
    (["--layers", "fc7"], "'fc7' is not a prunable layer"),
    (["--criteria", "", "--random", "0"], "nothing to ablate"),
    (["--plot", "PLACEHOLDER.xyz"], "unknown image format"),
])
def test_ablate_bad_input_is_one_line_exit_2_and_no_output(run_cli, mlp_path, tmp_path, args,
                                                           message):
    out = tmp_path / "curves.json"
    args = [a.replace("PLACEHOLDER", str(tmp_path / "fig")) for a in args]
    code, stdout, stderr = run_cli("ablate", str(mlp_path), "--out", str(out), *args)
    assert code == 2
    assert message in stderr and len(stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_study_runs_resumes_and_refuses_another_configuration(run_cli, tmp_path):
    out = tmp_path / "study"
    code, stdout, stderr = run_cli(*STUDY, "--at", "8", "--out", str(out))
    assert code == 0, stderr
    assert "MG@8 = " in stdout and "p = n/a" in stdout
    first = json.loads((out / "results.json").read_text())
    stamp = (out / "relu-l2" / "seed-0001" / "curves.json").stat().st_mtime_ns
    code, stdout, _ = run_cli(*STUDY, "--at", "8", "--out", str(out))
    assert code == 0
    assert (out / "relu-l2" / "seed-0001" / "curves.json").stat().st_mtime_ns == stamp
    assert json.loads((out / "results.json").read_text())["per_seed"] == first["per_seed"]
    code, stdout, stderr = run_cli(*STUDY[:-1], "--reg", "dropout", "--out", str(out))
    assert code == 2 and "holds another configuration" in stderr
    assert len(stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("args, message", [
    (["--random", "0", "--at", "5"], "--random is 0"),
    (["--at", "30"], "--at 30 is beyond the 16 units of fc1"),
    (["--act", "relu,swish"], "unknown value 'swish'"),
])
def test_study_bad_input_is_refused_before_creating_anything(run_cli, tmp_path, args, message):
    out = tmp_path / "study"
    code, _, stderr = run_cli(*STUDY, *args, "--out", str(out))
    assert code == 2 and message in stderr and len(stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_study_killed_with_sigkill_resumes_to_the_same_results(run_cli, tmp_path):
    """kill -9 while the seeds train, run the same command again: nothing lost, same numbers."""
    args = [*STUDY[:5], "--seeds", "4", "--epochs", "6", *STUDY[9:]]
    clean = tmp_path / "clean"
    assert run_cli(*args, "--out", str(clean))[0] == 0

    killed = tmp_path / "killed"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "prune_info", *args, "--out", str(killed)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if list((killed / "relu-l2").glob("train-state-*.pt")):
                break
            time.sleep(0.005)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert not (killed / "results.json").exists(), "the study ended before it could be killed"
    code, _, stderr = run_cli(*args, "--out", str(killed))
    assert code == 0, stderr
    a = json.loads((clean / "results.json").read_text())
    b = json.loads((killed / "results.json").read_text())
    assert a["per_seed"] == b["per_seed"] and a["scenarios"] == b["scenarios"]


def test_ablate_at_some_k_steps_and_max_samples(run_cli, mlp_path, tmp_path, digits):
    out, plot = tmp_path / "curves.json", tmp_path / "curves.png"
    code, stdout, stderr = run_cli("ablate", str(mlp_path), "--criteria", "mi", "--random", "3",
                                   "--steps", "5", "--at", "13", "--max-samples", "150",
                                   "--out", str(out), "--plot", str(plot), "--quiet")
    assert code == 0, stderr
    assert "(first 150 samples)" in stdout and "fc1 (32 units, ablation to zero, 5 points)" in \
        stdout
    assert "gap@12 = " in stdout and "nearest 13" in stdout
    assert plot.stat().st_size > 10_000
    doc = json.loads(out.read_text())
    assert doc["max_samples"] == 150
    fc1, fc2 = (doc["modes"]["layerwise"]["scopes"][s] for s in ("fc1", "fc2"))
    assert fc1["at_k"] == [0, 8, 16, 24, 32] and fc2["at_k"] == [0, 6, 12, 18, 24]
    assert fc1["gaps"][0]["k"] == 16 and fc1["gaps"][0]["requested_k"] == 13
    assert fc2["gaps"][0]["k"] == 12 and fc2["gaps"][0]["requested_k"] == 13
    assert doc["modes"]["layerwise"]["n_samples"] == 150
    ckpt = load_checkpoint(mlp_path)
    scores = compute_scores(ckpt.model, digits.val, ["mi"], n_classes=10)
    from prune_info.data import Split
    test = Split(digits.test.x[:150], digits.test.y[:150])
    full = compute_curves(ckpt.model, test, scores, random=3, seed=0)
    for label, counts in full.counts["fc1"].items():
        assert fc1["counts"][label] == counts[:, [0, 8, 16, 24, 32]].tolist()
    # --at-k: the same list on every scope
    code, stdout, stderr = run_cli("ablate", str(mlp_path), "--criteria", "", "--random", "2",
                                   "--at-k", "0,3,24", "--json", "--quiet")
    assert code == 0, stderr
    doc = json.loads(stdout)
    assert doc["modes"]["layerwise"]["scopes"]["fc2"]["at_k"] == [0, 3, 24]
    assert "max_samples" not in doc


def test_ablate_defaults_to_33_points_on_wide_conv_layers_only(run_cli, digits, tmp_path):
    from prune_info.checkpoint import save_checkpoint
    from prune_info.training import TrainConfig, train_model

    ckpt = train_model(digits, "c80-f20", "relu", "none", TrainConfig(epochs=1, seed=0),
                       progress=False)
    path = tmp_path / "wide.pt"
    save_checkpoint(ckpt, path)
    code, stdout, stderr = run_cli("ablate", str(path), "--criteria", "", "--random", "2",
                                   "--whole-network", "--layerwise", "--json", "--quiet")
    assert code == 0, stderr
    doc = json.loads(stdout)
    conv1 = doc["modes"]["layerwise"]["scopes"]["conv1"]
    assert len(conv1["at_k"]) == 33 and conv1["at_k"][-1] == 80
    assert len(conv1["counts"]["random"][0]) == 33
    fc1 = doc["modes"]["layerwise"]["scopes"]["fc1"]
    assert "at_k" not in fc1 and len(fc1["counts"]["random"][0]) == 21
    net = doc["modes"]["network"]["scopes"]["network"]
    assert len(net["at_k"]) == 33 and net["at_k"][-1] == 100


@pytest.mark.parametrize("args, message", [
    (["--steps", "1"], "--steps = 1: choose 2 to 33 points for the 32 units of fc1"),
    (["--steps", "30"], "--steps = 30: choose 2 to 25 points for the 24 units of fc2"),
    (["--at-k", "0,30"], "--at-k: k = 30 is outside 0..24"),
    (["--at-k", "4,2"], "--at-k must be sorted and without repeats"),
    (["--at-k", "4"], "--at-k needs at least 2 values of k"),
    (["--at-k", "0,x"], "--at-k must be comma-separated integers"),
    (["--steps", "5", "--at-k", "0,4"], "give one of them"),
    (["--max-samples", "0"], "--max-samples must be at least 1"),
])
def test_ablate_bad_points_are_one_line_exit_2(run_cli, mlp_path, tmp_path, args, message):
    out = tmp_path / "curves.json"
    code, _, stderr = run_cli("ablate", str(mlp_path), "--out", str(out), *args)
    assert code == 2
    assert message in stderr and len(stderr.strip().splitlines()) == 1
    assert not out.exists()
