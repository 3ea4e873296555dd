"""Tests for ``prune-info score``: numbers equal the library's, outputs, and bad input."""

import copy
import csv
import json

import pytest
import torch
from helpers import plant_units

from prune_info.checkpoint import Checkpoint, save_checkpoint
from prune_info.criteria import unit_information
from prune_info.criteria.context import compute_scores
from prune_info.criteria.options import ScoreOptions
from prune_info.zoo import build_model, parse_arch


def _files(directory):
    return sorted(p.name for p in directory.iterdir())


@pytest.mark.parametrize("extra, options", [
    ([], ScoreOptions()),
    (["--bins", "4", "--binning", "quantile", "--pre-activation", "--batch-size", "100"],
     ScoreOptions(bins=4, binning="quantile", pre_activation=True, batch_size=100)),
])
def test_cli_writes_exactly_the_library_numbers(run_cli, mlp_path, digits, digits_mlp, extra,
                                                options):
    out = mlp_path.parent / "scores.json"
    code, stdout, stderr = run_cli("score", str(mlp_path), "--criteria", "entropy,mi,kl,magnitude",
                                   "--out", str(out), *extra)
    assert code == 0, stderr
    doc = json.loads(out.read_text())
    assert doc["format"] == "prune-info-scores" and doc["format_version"] == 1
    assert (doc["dataset"], doc["split"], doc["n_samples"]) == ("digits", "val", 359)

    criteria = ["entropy", "mi", "kl", "magnitude"]
    scores = compute_scores(digits_mlp.model, digits.val, criteria, options=options)
    info = unit_information(digits_mlp.model, digits.val, options=options)
    for layer in doc["layers"]:
        name = layer["name"]
        for criterion in criteria:
            assert layer["scores"][criterion] == scores[criterion][name].tolist()
        assert layer["kl_class"] == info[name].kl_class.tolist()
        assert layer["spectrum"] == info[name].spectrum.tolist()
        assert layer["dead"] == info[name].dead.tolist()

    with open(out.with_suffix(".csv"), newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0])[:6] == ["layer", "unit", "entropy", "mi", "kl", "magnitude"]
    assert len(rows) == 32 + 24
    fc2_mi = [float(r["mi"]) for r in rows if r["layer"] == "fc2"]
    assert fc2_mi == scores["mi"]["fc2"].tolist()
    assert [int(r["kl_class"]) for r in rows[:32]] == info["fc1"].kl_class.tolist()


def test_summary_counts_dead_and_always_active_units(run_cli, digits, digits_mlp, tmp_path):
    planted = copy.deepcopy(digits_mlp)
    planted.model = copy.deepcopy(digits_mlp.model)
    plant_units(planted.model, "fc1", dead=(0, 2), always_active=(1,))
    path = tmp_path / "planted.pt"
    save_checkpoint(planted, path)
    code, stdout, _ = run_cli("score", str(path))
    assert code == 0
    lines = stdout.splitlines()
    assert "64-32-24-10 on digits val (359 samples, 10 classes); 1-bit threshold" in lines[0]
    assert lines[1].split() == ["layer", "units", "criterion", "min", "median", "mean", "max"]
    fc1 = [line for line in lines if line.startswith("fc1")][0].split()
    assert fc1[:3] == ["fc1", "32", "entropy"] and fc1[3] == "0.0000"
    entropy = unit_information(planted.model, digits.val)["fc1"].entropy
    assert float(fc1[5]) == pytest.approx(entropy.mean().item(), abs=1e-4)
    zero = int((entropy == 0).sum())
    assert f"zero entropy: {zero} of 32 units (2 dead, {zero - 2} always active)" in stdout


def test_plot_and_json_outputs(run_cli, cnn_path):
    plot = cnn_path.parent / "scores.png"
    code, stdout, stderr = run_cli("score", str(cnn_path), "--plot", str(plot), "--json",
                                   "--channel-reduce", "max")
    assert code == 0, stderr
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    doc = json.loads(stdout)
    assert doc["format"] == "prune-info-scores"
    assert doc["options"]["channel_reduce"] == "max"
    assert [layer["name"] for layer in doc["layers"]] == ["conv1", "conv2", "fc1"]
    assert _files(cnn_path.parent) == ["cnn.pt", "scores.png"]


def _checkpoint(tmp_path, spec, input_shape=(1, 8, 8), dataset="digits", nan_layer=None):
    arch = parse_arch(spec, input_shape, 10)
    torch.manual_seed(0)
    model = build_model(arch).eval()
    if nan_layer:
        with torch.no_grad():
            model.get_submodule(nan_layer).weight[0, 0] = float("nan")
    path = tmp_path / "model.pt"
    save_checkpoint(Checkpoint(model=model, arch=arch, dataset={"name": dataset}), path)
    return path


@pytest.mark.parametrize("case, args, message", [
    ("bins", ["--bins", "1"], r"bins \(--bins\) must be an integer of at least 2, got 1; fix"),
    ("criterion", ["--criteria", "mi,entropi"],
     "unknown criterion 'entropi'; fix: use one of entropy, gcmi-mixture, gcmi-model, kl"),
    ("size", [], r"does not fit the model: samples of shape 1x8x8 \(64 values\); its first "
                 r"layer fc1 expects 784 input values"),
    ("no-layer", [], "no prunable layer"),
    ("nan", [], r"model.pt holds non-finite weights \(NaN or inf in fc2.weight\)"),
    # let through at loading, the unit outputs are still checked
    ("nan", ["--allow-nonfinite"], "fc2: the unit outputs contain NaN/Inf"),
    ("csv-out", ["--out", "{tmp}/scores.csv"], "give the JSON file"),
    ("plot-format", ["--plot", "{tmp}/scores.xyz"], "unknown image format 'xyz'"),
])
def test_bad_input_exits_2_with_one_line_and_no_output(run_cli, tmp_path, mlp_path, case, args,
                                                       message):
    if case == "size":
        path = _checkpoint(tmp_path, "784-20-10", input_shape=(1, 28, 28))
    elif case == "no-layer":
        path = _checkpoint(tmp_path, "64-10")
    elif case == "nan":
        path = _checkpoint(tmp_path, "64-12-12-10", nan_layer="fc2")
    else:
        path = mlp_path
    before = _files(path.parent)
    out = [a.format(tmp=path.parent) for a in args]
    if "--out" not in out:
        out += ["--out", str(path.parent / "scores.json")]
    if "--plot" not in out:
        out += ["--plot", str(path.parent / "scores.png")]
    code, stdout, stderr = run_cli("score", str(path), *out)
    assert code == 2
    assert stdout == ""
    assert len(stderr.strip().splitlines()) == 1
    assert stderr.startswith("error: ")
    assert __import__("re").search(message, stderr), stderr
    assert _files(path.parent) == before
