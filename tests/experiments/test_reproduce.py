"""``prune-info reproduce``: every finding at toy scale, its statistics, resumption, bad input,
and the frozen-units retraining underneath C2."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from prune_info.analysis.stats import MIN_WILCOXON_SEEDS, ks_gap, mean_gap
from prune_info.checkpoint import load_checkpoint
from prune_info.data import load_dataset
from prune_info.experiments.reproduce import (
    FINDINGS,
    RULE,
    ReproduceOptions,
    run_reproduce,
)
from prune_info.experiments.subnetworks import SubnetCell, retrain_subnetworks
from prune_info.training.batched import StackedMLP, train_stacked
from prune_info.training.freeze import unit_masks
from prune_info.training.loop import TrainConfig, fit, train_model
from prune_info.zoo import build_model, parse_arch

EXPECTED_IDS = ["A1", "A2", "A3", "C1", "C2", "C2-removed", "C1-wide", "C2-wide",
                "C2-removed-wide", "C1-conv"]


def snapshot(root: Path) -> dict:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*")}


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    """``reproduce all --scale toy`` once for the module (digits, 6 seeds, 1 epoch)."""
    out = tmp_path_factory.mktemp("repro") / "toy"
    report = run_reproduce(ReproduceOptions(findings=("all",), scale="toy"), out,
                           progress=False)
    return out, report


def _rule(statuses: list[str]) -> str:
    """The verdict rule as the report states it, written out independently."""
    if all(s == "agrees" for s in statuses):
        return "reproduced"
    if "agrees" in statuses or "leans" in statuses:
        return "partly"
    return "not reproduced"


def _status(expect: str, mean: float, p: float | None) -> str:
    if expect == "≈":
        return "agrees" if p is not None and p >= 0.05 else "disagrees"
    if (mean > 0) == (expect == "+") and mean != 0:
        return "agrees" if p is not None and p < 0.05 else "leans"
    return "disagrees"


def test_every_finding_is_reported_with_recomputable_statistics(toy_run):
    out, report = toy_run
    on_disk = json.loads((out / "findings.json").read_text())
    assert on_disk["format"] == "prune-info-findings"
    assert on_disk["rule"] == RULE and "p < 0.05" in RULE
    assert [f["id"] for f in on_disk["findings"]] == EXPECTED_IDS
    assert on_disk["data"] == "digits" and on_disk["scale"] == "toy"
    assert set(FINDINGS) <= {f["id"] for f in on_disk["findings"]}
    for finding in on_disk["findings"]:
        assert finding["panels"], finding["id"]
        assert finding["command"].startswith(f"prune-info reproduce {finding['id'][:2]}")
        assert any("toy scale" in d for d in finding["differences"])
        statuses = []
        for panel in finding["panels"]:
            ours = panel["ours"]
            values = np.asarray(ours["values"])
            a, b = np.asarray(ours["a"]), np.asarray(ours["b"])
            assert ours["n"] == values.size == a.size == b.size == MIN_WILCOXON_SEEDS
            scale = 100.0 if ours["unit"] == "pp" else 1.0
            np.testing.assert_allclose(values, scale * (a - b), rtol=0, atol=1e-9)
            assert ours["mean"] == pytest.approx(values.mean(), abs=1e-12)
            assert ours["std"] == pytest.approx(values.std(ddof=1), abs=1e-12)
            test = (ks_gap(a, b, ours["k"]) if ours["test"] == "ks"
                    else mean_gap(a, b, ours["k"]))
            assert ours["p_value"] == pytest.approx(test.p_value)
            assert 0 < ours["p_value"] <= 1
            if ours["unit"] == "pp":
                assert np.all((a >= 0) & (a <= 1)) and np.all((b >= 0) & (b <= 1))
            assert panel["expect"] in ("+", "-", "≈")
            assert panel["status"] == _status(panel["expect"], ours["mean"], ours["p_value"])
            assert panel["paper"]["cite"]
            statuses.append(panel["status"])
        assert finding["verdict"] == _rule(statuses), finding["id"]
    # the human outputs hold every finding and its verdict
    text = (out / "findings.txt").read_text()
    page = (out / "findings.html").read_text()
    for finding in on_disk["findings"]:
        assert f"{finding['id']}  " in text and finding["verdict"].upper() in text
        assert f"<h3>{finding['id']}:" in page
    assert "Do the papers reproduce?" in page
    assert report["findings"] == on_disk["findings"]


def test_findings_are_read_from_the_stored_per_seed_results(toy_run):
    out, report = toy_run
    by_id = {f["id"]: f for f in report["findings"]}
    # A1: fc2 mean - fc1 mean of the stored scores of each seed
    panel = by_id["A1"]["panels"][1]
    assert panel["name"].startswith("relu-l2 mi")
    fc1, fc2 = [], []
    for seed in range(MIN_WILCOXON_SEEDS):
        record = json.loads((out / "study-relu" / "relu-l2" / f"seed-{seed:04d}" /
                             "curves.json").read_text())
        fc1.append(np.mean(record["scores"]["mi"]["fc1"]))
        fc2.append(np.mean(record["scores"]["mi"]["fc2"]))
    np.testing.assert_allclose(panel["ours"]["a"], fc2)
    np.testing.assert_allclose(panel["ours"]["b"], fc1)
    # C2: the synergy cells keep exactly C1's best synergistic multiplet of each layer
    seed0 = json.loads((out / "c2" / "seed-0000.json").read_text())
    search = json.loads((out / "c1" / "seed-0000.json").read_text())
    row = next(r for r in seed0["rows"] if r["criterion"] == "synergy" and r["size"] == 2)
    for layer, units in row["units"].items():
        best = next(s for s in search["layers"][layer]["sizes"] if s["size"] == 2)
        assert units == best["synergy_units"]
    assert len(seed0["rows"]) == 4 * 2 * 2  # criteria x sizes x rest
    assert {r["rest"] for r in seed0["rows"]} == {"frozen", "removed"}


def test_the_conv_finding_searches_the_channels_of_every_convolutional_layer(toy_run):
    out, report = toy_run
    finding = next(f for f in report["findings"] if f["id"] == "C1-conv")
    ckpt = load_checkpoint(out / "nets-c-conv" / "seed-0000" / "model.pt")
    assert ckpt.spec == "c4-c6.6-f8" and ckpt.arch["batchnorm"]
    assert ckpt.train_config["optimizer"] == "sgd" and ckpt.train_config["lr"] == 0.01
    redundancy, synergy = [], []
    for seed in range(MIN_WILCOXON_SEEDS):
        search = json.loads((out / "c1-conv" / f"seed-{seed:04d}.json").read_text())
        assert list(search["layers"]) == ["conv1", "conv2", "conv3"]  # fc1 is not searched
        assert [r["size"] for r in search["layers"]["conv2"]["sizes"]] == list(range(2, 7))
        redundancy.append(search["layers"]["conv1"]["dominance"]["redundancy"])
        synergy.append(search["layers"]["conv1"]["dominance"]["synergy"])
    first, last = finding["panels"]
    assert first["name"].startswith("c-conv conv1") and last["name"].startswith("c-conv conv3")
    np.testing.assert_allclose(first["ours"]["a"], redundancy)
    np.testing.assert_allclose(first["ours"]["b"], synergy)
    assert (first["expect"], last["expect"]) == ("+", "-")
    assert set(finding["by_size"]) == {"conv1", "conv2", "conv3"}
    assert any("c4-c6.6-f8, a small CNN" in d for d in finding["differences"])
    assert report["protocols"]["c-conv"]["spec"] == "c4-c6.6-f8"


def test_a_second_run_reuses_everything_and_gives_the_same_findings(toy_run):
    out, _ = toy_run
    before = (out / "findings.json").read_bytes()
    models = {p: p.stat().st_mtime_ns for p in out.rglob("model.pt")}
    per_seed = {p: p.stat().st_mtime_ns for p in out.glob("c[12]*/seed-*.json")}
    run_reproduce(ReproduceOptions(findings=("all",), scale="toy"), out, progress=False)
    assert (out / "findings.json").read_bytes() == before
    assert {p: p.stat().st_mtime_ns for p in out.rglob("model.pt")} == models
    assert {p: p.stat().st_mtime_ns for p in out.glob("c[12]*/seed-*.json")} == per_seed


def test_the_differences_name_the_networks_and_search_that_ran(toy_run):
    _, report = toy_run
    wide = next(f for f in report["findings"] if f["id"] == "C1-wide")
    beyond = next(d for d in wide["differences"] if d.startswith("beyond the paper"))
    assert "hidden layers of 12-12 units" in beyond
    assert "exhaustive search to 3 units then greedy" in beyond


def test_a_run_of_other_findings_adds_to_the_report_and_the_timings(tmp_path):
    out = tmp_path / "parts"
    first = run_reproduce(ReproduceOptions(findings=("A3",), scale="toy"), out, progress=False)
    times = json.loads((out / "timings.json").read_text())
    assert set(times) == {"networks relu", "report A3"}
    second = run_reproduce(ReproduceOptions(findings=("A1",), scale="toy"), out,
                           progress=False)
    on_disk = json.loads((out / "findings.json").read_text())
    assert [f["id"] for f in on_disk["findings"]] == ["A1", "A3"]  # FINDINGS order
    assert on_disk["findings"][1] == first["findings"][0]  # A3 kept as it was
    assert second["findings"] == on_disk["findings"]
    assert "A3  " in (out / "findings.txt").read_text()
    summed = json.loads((out / "timings.json").read_text())
    assert set(summed) == {"networks relu", "report A1", "report A3"}
    assert summed["report A3"] == times["report A3"]
    assert summed["networks relu"] > times["networks relu"]  # the second run's check adds


def test_a_directory_of_another_protocol_is_refused(run_cli, toy_run):
    out, _ = toy_run
    before = snapshot(out)
    code, _, stderr = run_cli("reproduce", "A1", "--scale", "toy", "--epochs", "2",
                              "--out", str(out), "--quiet")
    assert code == 2 and "another protocol" in stderr and "epochs" in stderr
    assert snapshot(out) == before


@pytest.mark.parametrize("text", ["[]", '{"format": "prune-info-reproduce-config", "config": 1}',
                                  "\udcff"])
def test_a_damaged_run_configuration_is_one_line_and_left_alone(run_cli, tmp_path, text):
    out = tmp_path / "out"
    out.mkdir()
    (out / "reproduce.json").write_text(text, errors="surrogateescape")
    before = snapshot(tmp_path)
    code, _, stderr = run_cli("reproduce", "A1", "--scale", "toy", "--out", str(out), "--quiet")
    assert code == 2 and "reproduce.json is malformed" in stderr, stderr
    assert stderr.count("\n") == 1 and snapshot(tmp_path) == before


@pytest.mark.parametrize("args, expected", [
    (["A9"], ["unknown finding 'A9'", "A1, A2, A3, C1, C2, C1-wide, C2-wide, C1-conv, all"]),
    (["A1", "--seeds", "3"], ["--seeds 3", f"at least {MIN_WILCOXON_SEEDS}"]),
    (["C1", "--data", "mnist", "--data-dir", "{empty}"], ["C1 need the dataset mnist",
                                                          "not found"]),
    (["A1", "--scale", "toy", "--epochs", "0"], ["--epochs must be at least 1"]),
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(run_cli, tmp_path, args, expected):
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "out"
    args = [a.replace("{empty}", str(empty)) for a in args]
    before = snapshot(tmp_path)
    code, stdout, stderr = run_cli("reproduce", *args, "--out", str(out), "--quiet")
    assert code == 2, (stdout, stderr)
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    for text in expected:
        assert text in lines[0], lines[0]
    assert "Traceback" not in stderr
    assert not out.exists() and snapshot(tmp_path) == before


# --------------------------------------------------------------------------------------------
# Frozen units


def test_frozen_units_are_bit_identical_after_training_and_the_others_learn():
    data = load_dataset("digits")
    arch = parse_arch("64-12-12-10", data.input_shape, data.n_classes, "relu", "l2")
    torch.manual_seed(3)
    model = build_model(arch)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    keep = {"fc1": [0, 4, 7], "fc2": [1, 2]}
    # RMSprop with momentum and weight decay (l2): both would move a frozen entry on their own
    config = TrainConfig(epochs=1, seed=3)
    fit(model, data, config, reg="l2", progress=False, trainable=unit_masks(model, keep))
    after = model.state_dict()
    for layer, rows in keep.items():
        frozen = [i for i in range(12) if i not in rows]
        assert torch.equal(after[f"{layer}.weight"][frozen], start[f"{layer}.weight"][frozen])
        assert torch.equal(after[f"{layer}.bias"][frozen], start[f"{layer}.bias"][frozen])
        assert (after[f"{layer}.weight"][rows] != start[f"{layer}.weight"][rows]).all(1).all()
    assert not torch.equal(after["out.weight"], start["out.weight"])


def test_stacked_training_freezes_each_network_by_its_own_mask():
    data = load_dataset("digits")
    arch = parse_arch("64-10-10", data.input_shape, data.n_classes, "relu", "l2")
    stack = StackedMLP(arch, [0, 0])
    start = [p.detach().clone() for p in stack.parameters()]
    weight_mask = torch.zeros(2, 64, 10, dtype=torch.bool)
    weight_mask[0, :, :3] = True   # network 0 trains units 0-2 of fc1
    weight_mask[1, :, 5:] = True   # network 1 trains units 5-9
    train_stacked(stack, data, TrainConfig(epochs=1), progress=False,
                  trainable={"weights_t.0": weight_mask, "biases.0": weight_mask[:, 0, :]})
    fc1 = stack.weights_t[0].detach()
    assert torch.equal(fc1[~weight_mask], start[0][~weight_mask])
    assert (fc1[weight_mask] != start[0][weight_mask]).float().mean() > 0.9
    assert not torch.equal(stack.weights_t[1].detach(), start[1])  # unmasked: trains


def test_retrained_subnetworks_are_paired_and_removed_units_are_cut_out():
    data = load_dataset("digits")
    dense = train_model(data, "64-12-12-10", config=TrainConfig(epochs=1, seed=1),
                        progress=False)
    keep = {"fc1": (0, 1, 2, 3), "fc2": (4, 5, 6)}
    cells = [SubnetCell(keep, "frozen"), SubnetCell(keep, "removed")]
    config = TrainConfig(epochs=1, optimizer="sgd", lr=0.01, seed=1)
    stacked = retrain_subnetworks(dense, data, cells, config)
    single = retrain_subnetworks(dense, data, cells, config, batched=False)
    for a, b in zip(stacked, single):  # one stack = cell after cell, up to float reassociation
        assert a["test_acc"] == pytest.approx(b["test_acc"], abs=0.02)
    # "removed" = the sub-network alone: what the dropped units start with cannot matter;
    # "frozen": they stay in the network, so it does
    gone = [i for i in range(12) if i not in keep["fc1"]]
    dense.init_state_dict["fc1.weight"][gone] = torch.randn(len(gone), 64)
    again = retrain_subnetworks(dense, data, cells, config)
    assert again[1]["test_acc"] == stacked[1]["test_acc"]
    assert again[0]["test_acc"] != stacked[0]["test_acc"]
