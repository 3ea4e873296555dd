"""bench: accuracy, size, MACs and latency of checkpoints and ONNX files; outputs; bad input."""

from __future__ import annotations

import csv
import json

import numpy as np
import onnx
import pytest
import torch

from prune_info._torch import time_interleaved, torch_threads
from prune_info.checkpoint import save_checkpoint
from prune_info.deploy.bench import (
    CSV_COLUMNS,
    benchmark_models,
    eval_split_for,
    flat_rows,
    open_bench_model,
)
from prune_info.deploy.onnx import export_onnx
from prune_info.deploy.timing import latency_stats
from prune_info.errors import PruneInfoError
from prune_info.nn import accuracy, count_parameters, total_macs
from prune_info.training.loop import TrainConfig, train_model

FAST = {"repeat": 3, "warmup": 1}


@pytest.fixture(scope="module")
def small_mlp(digits):
    """A pruned-like 64-16-16-10 model (same code paths as a pruned checkpoint)."""
    ckpt = train_model(digits, "64-16-16-10", "relu", "l2", TrainConfig(epochs=2, seed=2),
                       progress=False)
    ckpt.pruning_history = [{"criterion": "magnitude", "widths_before": {"fc1": 32, "fc2": 24},
                             "widths_after": {"fc1": 16, "fc2": 16}}]
    return ckpt


@pytest.fixture()
def small_path(small_mlp, tmp_path):
    path = tmp_path / "small.pt"
    save_checkpoint(small_mlp, path)
    return path


@pytest.fixture(scope="module")
def library_run(digits_mlp, small_mlp, digits, tmp_path_factory):
    """benchmark_models on the dense MLP, the small one and the small one's ONNX export."""
    root = tmp_path_factory.mktemp("bench")
    dense, small, small_onnx = root / "dense.pt", root / "small.pt", root / "small.onnx"
    save_checkpoint(digits_mlp, dense)
    save_checkpoint(small_mlp, small)
    export_onnx(small_mlp, small_onnx)
    before = torch.get_num_threads()
    results = benchmark_models([dense, small, small_onnx], batches=[1, 37], threads=1, **FAST)
    rows = [r.to_dict() for r in results]  # the models of the JSON document
    return rows, (dense, small, small_onnx), before


# --------------------------------------------------------------------------------------------
# The library


def test_static_figures_are_exact(library_run, digits_mlp, small_mlp, digits):
    rows, paths, _ = library_run
    dense, small, small_onnx = rows
    assert [r["name"] for r in rows] == ["dense.pt", "small.pt", "small.onnx"]
    assert [r["format"] for r in rows] == ["checkpoint", "checkpoint", "onnx"]
    for row, path in zip(rows, paths):
        assert row["file_bytes"] == path.stat().st_size
        assert row["dataset"] == "digits"
    assert dense["parameters"] == count_parameters(digits_mlp.model) == 3122
    assert small["parameters"] == small_onnx["parameters"] == count_parameters(small_mlp.model)
    assert dense["macs"] == total_macs(digits_mlp.model, (1, 8, 8)) == 64 * 32 + 32 * 24 + 240
    assert small["macs"] == small_onnx["macs"] == 64 * 16 + 16 * 16 + 160
    assert dense["mac_ratio"] == 1.0
    assert small["mac_ratio"] == pytest.approx(dense["macs"] / small["macs"])
    assert dense["test_acc"] == pytest.approx(accuracy(digits_mlp.model, digits.test))
    assert small["test_acc"] == pytest.approx(accuracy(small_mlp.model, digits.test))
    # onnxruntime on the exported file classifies the test set as PyTorch does
    assert small_onnx["test_acc"] == pytest.approx(small["test_acc"], abs=1 / len(digits.test))
    assert small_onnx["onnx_bytes"] == small_onnx["file_bytes"]
    assert small["onnx_bytes"] == pytest.approx(small_onnx["file_bytes"], rel=0.05)
    assert small["pruning_steps"] == small_onnx["pruning_steps"] == 1
    assert dense["pruning_steps"] == 0


def test_latency_entries_cover_runtimes_and_batches(library_run):
    rows, _, _ = library_run
    dense, small, small_onnx = rows
    for row in (dense, small):
        keys = {(e["runtime"], e["device"], e["batch"]) for e in row["latency"]}
        assert keys == {("torch", "cpu", 1), ("torch", "cpu", 37), ("onnxruntime", "cpu", 1),
                        ("onnxruntime", "cpu", 37)}
    # an ONNX file has no PyTorch model to time
    assert {(e["runtime"], e["batch"]) for e in small_onnx["latency"]} == {
        ("onnxruntime", 1), ("onnxruntime", 37)}
    for row in rows:
        for e in row["latency"]:
            assert e["repeat"] == 3 and e["threads"] == 1
            assert 0 < e["min_ms"] <= e["median_ms"] <= e["p90_ms"]
            assert e["samples_per_s"] == pytest.approx(e["batch"] / e["median_ms"] * 1e3)
    for e in dense["latency"]:
        assert e["speedup"] == 1.0
    ref = {(e["runtime"], e["batch"]): e["median_ms"] for e in dense["latency"]}
    for e in small["latency"]:
        assert e["speedup"] == pytest.approx(ref[(e["runtime"], e["batch"])] / e["median_ms"])


def test_thread_setting_is_restored(library_run):
    _, _, before = library_run
    assert torch.get_num_threads() == before


def test_torch_threads_restores_after_an_error():
    before = torch.get_num_threads()
    with pytest.raises(ValueError), torch_threads(1):
        assert torch.get_num_threads() == 1
        raise ValueError
    assert torch.get_num_threads() == before


def test_loaded_checkpoints_are_accepted(digits_mlp, digits):
    (result,) = benchmark_models([digits_mlp], data=digits, batches=[4], runtimes=("torch",),
                                 **FAST)
    row = result.to_dict()
    assert row["parameters"] == 3122 and row["onnx_bytes"] is None
    assert [e["runtime"] for e in row["latency"]] == ["torch"]


def test_time_interleaved_calls_round_robin():
    calls = []

    def timer(name, ms):
        def call():
            calls.append(name)
            return ms
        return call

    times = time_interleaved([timer("a", 1.0), timer("b", 2.0)], repeat=3, warmup=2)
    assert calls == ["a", "a", "b", "b", "a", "b", "a", "b", "a", "b"]
    assert [t.tolist() for t in times] == [[1.0] * 3, [2.0] * 3]


def test_latency_stats_numbers():
    stats = latency_stats(np.arange(1.0, 11.0), batch=100)
    assert stats["median_ms"] == 5.5 and stats["p90_ms"] == pytest.approx(9.1)
    assert stats["min_ms"] == 1.0 and stats["repeat"] == 10
    assert stats["samples_per_s"] == pytest.approx(100 / 5.5e-3)


def test_test_split_is_renormalised_to_the_models_record(digits, digits_mlp):
    model = open_bench_model(digits_mlp)
    assert eval_split_for(model, digits) is digits.test  # same normalisation: untouched
    stored = {"scale": 1 / 16, "mean": [0.5], "std": [0.25]}
    model.dataset = {**model.dataset, "normalisation": stored}
    split = eval_split_for(model, digits)
    norm = digits.normalisation
    pixels = digits.test.x * norm["std"][0] + norm["mean"][0]  # = raw * scale
    assert torch.allclose(split.x, (pixels - 0.5) / 0.25, atol=1e-5)
    assert torch.equal(split.y, digits.test.y)


def test_wrong_input_shape_is_refused(digits, digits_mlp):
    model = open_bench_model(digits_mlp)
    model.input_shape = (1, 28, 28)
    with pytest.raises(PruneInfoError, match=r"takes inputs of shape \[1, 28, 28\]"):
        eval_split_for(model, digits)


def test_cli_data_is_loaded_at_each_models_input_shape(run_cli, tmp_path):
    """--data digits gives a model trained on resized digits the test split its record gives
    (resized the same way), not the 1x8x8 images (once refused as the wrong shape)."""
    from prune_info.checkpoint import data_for
    from prune_info.data import load_dataset

    torch.manual_seed(0)
    ckpt = train_model(load_dataset("digits", seed=0, input_shape=(1, 12, 12)), "c4-f8",
                       "relu", "none", TrainConfig(epochs=1, seed=0), progress=False)
    assert ckpt.dataset["input_shape"] == [1, 12, 12]
    path = tmp_path / "resized.pt"
    save_checkpoint(ckpt, path)
    accs = []
    for data in (["--data", "digits"], []):
        code, stdout, stderr = run_cli("bench", str(path), *data, "--batch", "1", "--repeat",
                                       "1", "--warmup", "0", "--runtime", "torch", "--json")
        assert code == 0, stderr
        accs.append(json.loads(stdout)["models"][0]["test_acc"])
    assert accs[0] == accs[1] == accuracy(ckpt.model, data_for(ckpt))


@pytest.mark.parametrize("kwargs, message", [
    ({"batches": [0]}, "at least 1"),
    ({"batches": []}, "at least 1"),
    ({"repeat": 0}, "`repeat`"),
    ({"threads": 0}, "`threads`"),
    ({"runtimes": ("tensorrt",)}, "runtimes"),
])
def test_bad_settings_are_refused(mlp_path, kwargs, message):
    with pytest.raises(PruneInfoError, match=message):
        benchmark_models([mlp_path], **kwargs)


def test_flat_rows_have_every_column(library_run):
    rows, _, _ = library_run
    flat = flat_rows(rows)
    assert len(flat) == 4 + 4 + 2
    assert all(tuple(r) == CSV_COLUMNS for r in flat)


# --------------------------------------------------------------------------------------------
# Command line


def test_cli_json_csv_and_plot(run_cli, mlp_path, small_path, tmp_path):
    csv_path, plot_path = tmp_path / "b.csv", tmp_path / "b.png"
    code, stdout, stderr = run_cli("bench", str(mlp_path), str(small_path), "--batch", "2,8",
                                   "--repeat", "2", "--threads", "1", "--json",
                                   "--csv", str(csv_path), "--plot", str(plot_path))
    assert code == 0, stderr
    doc = json.loads(stdout)
    assert doc["format"] == "prune-info-bench"
    assert doc["settings"]["batches"] == [2, 8] and doc["settings"]["threads"] == 1
    dense, small = doc["models"]
    assert dense["parameters"] == 3122 and small["parameters"] == 64 * 16 + 16 + 16 * 16 + 16 \
        + 16 * 10 + 10
    assert dense["file_bytes"] == mlp_path.stat().st_size
    assert len(dense["latency"]) == 4
    with open(csv_path, newline="") as fh:
        table = list(csv.DictReader(fh))
    assert tuple(table[0]) == CSV_COLUMNS
    assert len(table) == 2 * 2 * 2  # models x runtimes x batches
    assert {r["model"] for r in table} == {"model.pt", "small.pt"}
    assert {int(r["parameters"]) for r in table if r["model"] == "small.pt"} == {
        small["parameters"]}
    assert {int(r["file_bytes"]) for r in table if r["model"] == "model.pt"} == {
        mlp_path.stat().st_size}
    assert all(float(r["median_ms"]) > 0 for r in table)
    assert plot_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_cli_table_on_onnx_and_checkpoint(run_cli, mlp_path, tmp_path, digits_mlp):
    onnx_path = tmp_path / "m.onnx"
    export_onnx(digits_mlp, onnx_path)
    code, stdout, _ = run_cli("bench", str(mlp_path), str(onnx_path), "--batch", "4",
                              "--repeat", "2")
    assert code == 0
    assert "model.pt" in stdout and "m.onnx" in stdout
    assert "onnxruntime cpu" in stdout and "torch cpu" in stdout
    assert "3,122" in stdout


def test_cli_device_auto_falls_back_to_cpu(run_cli, mlp_path):
    code, stdout, _ = run_cli("bench", str(mlp_path), "--device", "auto", "--batch", "2",
                              "--repeat", "1", "--runtime", "torch", "--json")
    assert code == 0
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert json.loads(stdout)["settings"]["device"] == expected


def _one_error_line(code, stdout, stderr, message):
    assert code == 2 and stdout == ""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cli_cuda_without_gpu(run_cli, mlp_path, tmp_path):
    out = tmp_path / "b.csv"
    _one_error_line(*run_cli("bench", str(mlp_path), "--device", "cuda", "--csv", str(out)),
                    "no CUDA device")
    assert not out.exists()


@pytest.mark.parametrize("batch", ["0", "-3", "1,0", "x"])
def test_cli_bad_batch(run_cli, mlp_path, tmp_path, batch):
    out = tmp_path / "b.csv"
    _one_error_line(*run_cli("bench", str(mlp_path), "--batch", batch, "--csv", str(out)),
                    "--batch")
    assert not out.exists()


def test_cli_neither_checkpoint_nor_onnx(run_cli, mlp_path, tmp_path):
    junk = tmp_path / "notes.pt"
    junk.write_text("hello, not a model\n")
    _one_error_line(*run_cli("bench", str(mlp_path), str(junk)),
                    "neither a prune-info checkpoint nor an ONNX model")


def test_cli_onnx_failing_checker(run_cli, digits_mlp, tmp_path):
    path = tmp_path / "m.onnx"
    export_onnx(digits_mlp, path)
    proto = onnx.load(str(path))
    proto.graph.node[-1].op_type = "NoSuchOp"
    onnx.save(proto, str(path))
    plot = tmp_path / "b.png"
    _one_error_line(*run_cli("bench", str(path), "--plot", str(plot)), "fails the ONNX checker")
    assert not plot.exists()


def test_cli_onnx_without_dataset_needs_data(run_cli, tmp_path):
    from prune_info.checkpoint import Checkpoint
    from prune_info.zoo import build_model, parse_arch

    arch = parse_arch("64-8-10", (1, 8, 8), 10)
    path = tmp_path / "anon.onnx"
    export_onnx(Checkpoint(model=build_model(arch).eval(), arch=arch), path)
    _one_error_line(*run_cli("bench", str(path)), "pass --data")
    code, stdout, _ = run_cli("bench", str(path), "--data", "digits", "--batch", "2",
                              "--repeat", "1", "--json")
    assert code == 0 and json.loads(stdout)["models"][0]["dataset"] == "digits"


def test_cli_export_failure_in_bench_names_operator(run_cli, tmp_path, monkeypatch):
    from prune_info.checkpoint import Checkpoint

    (tmp_path / "erfcx_bench.py").write_text(
        "import torch\nfrom torch import nn\n\n"
        "class M(nn.Sequential):\n"
        "    def forward(self, x):\n"
        "        return super().forward(torch.special.erfcx(x))\n\n"
        "def build():\n    return M(nn.Flatten(), nn.Linear(64, 10))\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    from erfcx_bench import build  # noqa: PLC0415

    ckpt = Checkpoint(model=build().eval(), factory="erfcx_bench:build",
                      dataset={"name": "digits", "input_shape": [1, 8, 8]})
    path = tmp_path / "erfcx.pt"
    save_checkpoint(ckpt, path)
    _one_error_line(*run_cli("bench", str(path), "--trust-factory", "--batch", "2",
                             "--repeat", "1", "--exporter", "torchscript"),
                    "aten::special_erfcx")


@pytest.mark.parametrize("args, message", [
    (["--plot", "b.gif"], "unknown figure format"),
    (["--csv", "/no/such/dir/b.csv"], "does not exist"),
    (["--threads", "0"], "--threads"),
])
def test_cli_bad_outputs_and_options(run_cli, mlp_path, args, message):
    _one_error_line(*run_cli("bench", str(mlp_path), *args), message)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_bench_times_on_the_gpu(mlp_path):
    (result,) = benchmark_models([mlp_path], batches=[8], device="cuda", **FAST)
    row = result.to_dict()
    keys = {(e["runtime"], e["device"]) for e in row["latency"]}
    assert {("torch", "cuda"), ("onnxruntime", "cpu")} <= keys
    assert all(e["median_ms"] > 0 for e in row["latency"])


def test_a_pruned_model_slower_than_its_parent_is_flagged():
    from prune_info.deploy.bench import BenchResult, LatencyEntry, slower_than_parent

    def result(name, steps, ratio, speedup):
        entry = LatencyEntry(runtime="onnxruntime", device="cpu", threads=1, batch=64, repeat=5,
                             median_ms=1.0, p90_ms=1.0, min_ms=1.0, samples_per_s=64.0,
                             speedup=speedup)
        return BenchResult(name=name, path=None, format="checkpoint", arch=None,
                           dataset="digits", pruning_steps=steps, file_bytes=None, test_acc=0.9,
                           recorded_test_acc=None, parameters=10, macs=10, onnx_bytes=None,
                           latency=(entry,), mac_ratio=ratio)

    dense = result("dense.pt", 0, 1.0, 1.0)
    fast, slow = result("fast.pt", 1, 2.0, 1.5), result("slow.pt", 1, 2.0, 0.68)
    (note,) = slower_than_parent([dense, fast, slow])
    assert note.startswith("warning: slow.pt is slower than dense.pt in onnxruntime cpu at batch "
                           "64 (x0.68) although it has fewer MACs")
    assert slower_than_parent([dense, fast]) == []
