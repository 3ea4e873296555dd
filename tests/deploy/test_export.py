"""ONNX export: faithful to PyTorch, dynamic batch, metadata, atomic, quiet, clear failures."""

from __future__ import annotations

import copy
import json

import numpy as np
import onnx
import pytest
import torch
from torch import nn

import prune_info.deploy.onnx as export
from prune_info.checkpoint import Checkpoint, save_checkpoint
from prune_info.deploy.onnx import (
    DEFAULT_OPSET,
    ExportReport,
    check_opset,
    convert_checkpoint,
    convert_model,
    export_model,
    export_onnx,
)
from prune_info.deploy.onnx_metadata import decode_metadata, summarise_pruning
from prune_info.deploy.onnx_runtime import load_onnx, looks_like_onnx, ort_session, run_onnx
from prune_info.errors import PruneInfoError
from prune_info.nn import accuracy, count_parameters, total_macs
from prune_info.training.loop import TrainConfig, train_model


def _torch_logits(ckpt: Checkpoint, x: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return ckpt.model.eval()(x).numpy()


@pytest.fixture(scope="module")
def pruned_like(digits):
    """A 64-16-16-10 model with a pruning history, as prune-info prune records one."""
    ckpt = train_model(digits, "64-16-16-10", "relu", "l2", TrainConfig(epochs=2, seed=1),
                       progress=False)
    ckpt.pruning_history = [{
        "mode": "remove", "allocation": "layerwise", "criterion": "mi", "order": "low",
        "amounts": {"fc1": 0.5, "fc2": 0.5},
        "removed": {"fc1": list(range(16)), "fc2": list(range(16))},
        "widths_before": {"fc1": 32, "fc2": 32}, "widths_after": {"fc1": 16, "fc2": 16},
        "summary": "mi layerwise (low first): pruned 32-32 -> 16-16",
        "scores": torch.arange(500.0),  # long per-unit data stays out of the metadata
    }]
    return ckpt


# --------------------------------------------------------------------------------------------
# Faithfulness and the dynamic batch axis


@pytest.mark.parametrize("fixture", ["digits_mlp", "digits_cnn", "pruned_like"])
def test_onnx_matches_torch_at_batch_1_and_37(fixture, request, digits, tmp_path):
    ckpt = request.getfixturevalue(fixture)
    path = tmp_path / "model.onnx"
    report = export_onnx(ckpt, path, sample=digits.val.x[:64])
    assert isinstance(report, ExportReport)
    assert report.exporter == "torchscript" and report.fallback is None  # auto: the fast one
    assert report.max_abs_diff < 1e-4
    assert report.batch_sizes == [64, 1]
    assert report.opset == DEFAULT_OPSET
    assert report.file_bytes == path.stat().st_size
    session = ort_session(path.read_bytes())
    for n in (1, 37):
        x = digits.test.x[:n]
        got = run_onnx(session, x)
        assert got.shape == (n, 10)
        assert np.abs(got - _torch_logits(ckpt, x)).max() < 1e-4
    # the batch axis is symbolic in the file itself
    proto = onnx.load(str(path))
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch"
    assert [d.dim_value for d in dims[1:]] == [1, 8, 8]


def test_cnn_with_batchnorm_keeps_accuracy_in_onnxruntime(digits_cnn, digits, tmp_path):
    assert any(isinstance(m, nn.BatchNorm2d) for m in digits_cnn.model.modules())
    path = tmp_path / "cnn.onnx"
    export_onnx(digits_cnn, path, sample=digits.val.x[:32])
    logits = run_onnx(ort_session(path.read_bytes()), digits.test.x)
    onnx_acc = float((logits.argmax(1) == digits.test.y.numpy()).mean())
    assert onnx_acc == pytest.approx(accuracy(digits_cnn.model, digits.test), abs=1 / 360)


@pytest.mark.slow  # the first torch.export conversion of a process takes seconds
def test_dynamo_exporter_also_round_trips(digits_mlp, digits, tmp_path):
    path = tmp_path / "dyn.onnx"
    report = export_onnx(digits_mlp, path, sample=digits.val.x[:16], exporter="dynamo")
    assert report.exporter == "dynamo" and report.max_abs_diff < 1e-4
    got = run_onnx(ort_session(path.read_bytes()), digits.test.x[:37])
    assert np.abs(got - _torch_logits(digits_mlp, digits.test.x[:37])).max() < 1e-4


@pytest.mark.slow  # the real dynamo exporter
def test_auto_uses_dynamo_for_an_operator_torchscript_lacks(digits, tmp_path):
    ckpt = Checkpoint(model=_Erfcx().eval(), factory="x:y")
    path = tmp_path / "erfcx.onnx"
    report = export_onnx(ckpt, path, sample=digits.val.x[:16])
    assert report.exporter == "dynamo" and report.max_abs_diff < 1e-4
    assert report.fallback == ("the torchscript exporter does not support operator "
                               "aten::special_erfcx at opset 18; used the dynamo exporter")
    got = run_onnx(ort_session(path.read_bytes()), digits.test.x[:3])
    assert np.abs(got - _torch_logits(ckpt, digits.test.x[:3])).max() < 1e-4


@pytest.mark.slow  # the real dynamo exporter
def test_auto_above_torchscript_opsets_uses_dynamo(digits_mlp, tmp_path):
    report = export_onnx(digits_mlp, tmp_path / "m.onnx", opset=21)
    assert report.exporter == "dynamo" and report.opset == 21
    assert report.fallback == "the torchscript exporter writes opset 9 to 20; used the dynamo " \
                              "exporter"
    assert load_onnx(tmp_path / "m.onnx").opset == 21


@pytest.mark.slow  # the real dynamo exporter
def test_explicit_dynamo_above_torchscript_opsets_is_no_fallback(digits_mlp, tmp_path):
    report = export_onnx(digits_mlp, tmp_path / "m.onnx", opset=22, exporter="dynamo")
    assert report.exporter == "dynamo" and report.fallback is None and report.opset == 22


@pytest.mark.slow  # the real dynamo exporter
def test_dynamo_that_cannot_write_the_opset_is_refused(digits_mlp, tmp_path):
    # torch.export's exporter builds opset 18 and keeps it where it cannot convert down
    with pytest.raises(PruneInfoError, match=r"the dynamo exporter wrote opset 18, not the 13 "
                       r"asked; the torchscript exporter converts .* `exporter`=torchscript"):
        export_onnx(digits_mlp, tmp_path / "m.onnx", opset=13, exporter="dynamo")
    assert list(tmp_path.iterdir()) == []


def test_requested_opset_is_written(digits_mlp, tmp_path):
    path = tmp_path / "m13.onnx"
    report = export_onnx(digits_mlp, path, opset=13)  # default sample: seeded random inputs
    assert report.opset == 13 and report.batch_sizes == [16, 1]
    assert load_onnx(path).opset == 13


# --------------------------------------------------------------------------------------------
# Metadata


def test_metadata_records_arch_dataset_accuracy_and_cost(digits_mlp, tmp_path):
    path = tmp_path / "m.onnx"
    report = export_onnx(digits_mlp, path)
    raw = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert raw == report.metadata
    meta = load_onnx(path).metadata
    assert meta == decode_metadata(raw)
    assert meta["spec"] == "64-32-24-10"
    assert meta["arch"] == digits_mlp.arch
    assert meta["dataset"]["name"] == "digits"
    assert meta["dataset"]["normalisation"] == digits_mlp.dataset["normalisation"]
    assert meta["dataset"]["split_seed"] == 0
    assert meta["metrics"]["test_acc"] == pytest.approx(digits_mlp.metrics["test_acc"])
    assert meta["metrics"]["val_acc"] == pytest.approx(digits_mlp.metrics["val_acc"])
    assert meta["parameters"] == count_parameters(digits_mlp.model) == 64 * 32 + 32 + 32 * 24 \
        + 24 + 24 * 10 + 10
    assert meta["macs"] == total_macs(digits_mlp.model, (1, 8, 8)) == 64 * 32 + 32 * 24 + 24 * 10
    assert meta["input_shape"] == [1, 8, 8]
    assert meta["pruning"] == [] and meta["pruning_steps"] == 0


def test_metadata_summarises_pruning_history(pruned_like, tmp_path):
    path = tmp_path / "p.onnx"
    export_onnx(pruned_like, path)
    meta = load_onnx(path).metadata
    assert meta["spec"] == "64-16-16-10"
    assert meta["pruning_steps"] == 1
    (step,) = meta["pruning"]
    assert step["criterion"] == "mi"
    assert step["widths_before"] == {"fc1": 32, "fc2": 32}
    assert step["widths_after"] == {"fc1": 16, "fc2": 16}
    assert step["summary"].endswith("32-32 -> 16-16")
    assert "removed" not in step and "scores" not in step


def test_summarise_pruning_keeps_short_entries_only():
    history = [{"criterion": "kl", "amount": 0.25, "big": list(range(1000)),
                "t": torch.tensor([1.0, 2.0])}, {}]
    assert summarise_pruning(history) == [{"criterion": "kl", "amount": 0.25, "t": [1.0, 2.0]},
                                          {}]


def test_really_pruned_checkpoint_exports(digits_mlp, digits, tmp_path):
    from prune_info.pruning.config import PruneConfig
    from prune_info.pruning.workflow import prune_checkpoint

    config = PruneConfig(criterion="magnitude", allocation="layerwise", amount=0.5)
    pruned = prune_checkpoint(digits_mlp, digits, config).checkpoint
    report = export_onnx(pruned, tmp_path / "p.onnx", sample=digits.val.x[:64])
    assert report.max_abs_diff < 1e-4
    meta = load_onnx(tmp_path / "p.onnx").metadata
    assert meta["spec"] == "64-16-12-10" and meta["pruning_steps"] == 1
    assert meta["pruning"][0]["widths_after"] == {"fc1": 16, "fc2": 12}
    assert meta["parameters"] == count_parameters(pruned.model)


# --------------------------------------------------------------------------------------------
# Failures leave nothing behind


class _Erfcx(nn.Module):
    """A model with an operator the TorchScript exporter cannot convert."""

    def __init__(self):
        super().__init__()
        self.flatten, self.out = nn.Flatten(), nn.Linear(64, 10)

    def forward(self, x):
        return self.out(torch.special.erfcx(self.flatten(x)))


REAL_EXPORTER = export._run_exporter


def _fake_exporters(monkeypatch, torchscript: str = "real", dynamo: str = "real"):
    """Replace the exporters, fast: "real", "fail", "torchscript" (the TorchScript exporter's
    output standing in), or "off-by-one" (TorchScript of a model with shifted logits)."""
    def run(model, sample, opset, exporter):
        how = torchscript if exporter == "torchscript" else dynamo
        if how == "fail":
            raise export._ExporterFailed(f"fails: fake {exporter} failure")
        if how == "torchscript":
            return REAL_EXPORTER(model, sample, opset, "torchscript")
        if how == "off-by-one":
            shifted = nn.Sequential(model, nn.Linear(10, 10)).eval()
            with torch.no_grad():
                shifted[1].weight.copy_(torch.eye(10))
                shifted[1].bias.fill_(1.0)
            return REAL_EXPORTER(shifted, sample, opset, "torchscript")
        return REAL_EXPORTER(model, sample, opset, exporter)

    monkeypatch.setattr(export, "_run_exporter", run)


def test_unsupported_operator_is_named_and_nothing_written(tmp_path, monkeypatch):
    _fake_exporters(monkeypatch, dynamo="fail")
    ckpt = Checkpoint(model=_Erfcx().eval(), factory="x:y")
    with pytest.raises(PruneInfoError, match=r"^ONNX export failed: the torchscript exporter does "
                       r"not support operator aten::special_erfcx at opset 18; the dynamo "
                       r"exporter fails: fake dynamo failure; replace the operator in the model"):
        export_onnx(ckpt, tmp_path / "bad.onnx", sample=torch.randn(4, 1, 8, 8))
    assert list(tmp_path.iterdir()) == []


def test_export_failure_is_silent(tmp_path, capfd, monkeypatch):
    _fake_exporters(monkeypatch, dynamo="fail")
    ckpt = Checkpoint(model=_Erfcx().eval(), factory="x:y")
    with pytest.raises(PruneInfoError):
        export_onnx(ckpt, tmp_path / "bad.onnx", sample=torch.randn(4, 1, 8, 8))
    out, err = capfd.readouterr()
    assert out == "" and err == ""  # the exporter's C++ graph dump is swallowed


def test_successful_export_is_silent(digits_mlp, tmp_path, capfd):
    export_onnx(digits_mlp, tmp_path / "m.onnx")
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_difference_above_tolerance_writes_nothing(digits_mlp, tmp_path, monkeypatch):
    _fake_exporters(monkeypatch, dynamo="torchscript")
    real = export.run_onnx
    monkeypatch.setattr(export, "run_onnx", lambda s, x: real(s, x) + 1e-3)
    with pytest.raises(PruneInfoError, match=r"torchscript exporter wrote a model whose logits "
                       r"differ from PyTorch's by up to 0\.001 \(limit 0\.0001\); the dynamo "
                       r"exporter wrote .* by up to 0\.001 .*a larger `tolerance`"):
        export_onnx(digits_mlp, tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


def test_existing_file_survives_a_failed_export(tmp_path, monkeypatch):
    _fake_exporters(monkeypatch, dynamo="fail")
    target = tmp_path / "keep.onnx"
    target.write_bytes(b"previous")
    with pytest.raises(PruneInfoError):
        export_onnx(Checkpoint(model=_Erfcx().eval()), target, sample=torch.randn(2, 1, 8, 8))
    assert target.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.onnx"]


@pytest.mark.parametrize("exporter, opset, message", [
    ("auto", 5, r"`opset`=5 is outside what either exporter writes; choose 9 to 23"),
    ("auto", 99, r"`opset`=99 .* choose 9 to 23"),
    ("torchscript", 21, r"`opset`=21 .* torchscript exporter writes; choose 9 to 20 \(default "
                        r"18\), or pass `exporter`=dynamo \(it writes up to 23\)$"),
    ("dynamo", 8, r"`opset`=8 .* dynamo exporter writes; choose 9 to 23 \(default 18\)$"),
])
def test_opset_out_of_range_is_refused(digits_mlp, tmp_path, exporter, opset, message):
    with pytest.raises(PruneInfoError, match=message):
        export_onnx(digits_mlp, tmp_path / "m.onnx", opset=opset, exporter=exporter)
    assert list(tmp_path.iterdir()) == []


def test_opset_ranges():
    assert check_opset(None) == check_opset(None, "torchscript") == DEFAULT_OPSET == 18
    assert check_opset(23) == check_opset(23, "dynamo") == 23
    with pytest.raises(PruneInfoError, match=r"unknown `exporter` 'onnx'; choose one of: auto, "
                       r"torchscript, dynamo"):
        check_opset(None, "onnx")


# --------------------------------------------------------------------------------------------
# Choosing the exporter: auto falls back, an explicit exporter that fails names the one that
# works. The dynamo exporter is stood in for by the TorchScript one (seconds faster).


def test_auto_falls_back_when_torchscript_fails(digits_mlp, digits, tmp_path, monkeypatch):
    _fake_exporters(monkeypatch, torchscript="fail", dynamo="torchscript")
    path = tmp_path / "m.onnx"
    report = export_onnx(digits_mlp, path, sample=digits.val.x[:32])
    assert report.exporter == "dynamo"
    assert report.fallback == ("the torchscript exporter fails: fake torchscript failure; used "
                               "the dynamo exporter")
    assert report.to_dict()["fallback"] == report.fallback
    assert report.max_abs_diff < 1e-4 and path.stat().st_size == report.file_bytes


def test_auto_falls_back_when_torchscript_does_not_match(digits_mlp, digits, tmp_path,
                                                         monkeypatch):
    _fake_exporters(monkeypatch, torchscript="off-by-one", dynamo="torchscript")
    report = export_onnx(digits_mlp, tmp_path / "m.onnx", sample=digits.val.x[:32])
    assert report.exporter == "dynamo" and report.max_abs_diff < 1e-4
    assert report.fallback == ("the torchscript exporter wrote a model whose logits differ from "
                               "PyTorch's by up to 1 (limit 0.0001); used the dynamo exporter")
    got = run_onnx(ort_session((tmp_path / "m.onnx").read_bytes()), digits.test.x[:5])
    assert np.abs(got - _torch_logits(digits_mlp, digits.test.x[:5])).max() < 1e-4


def test_tolerance_decides_the_fallback(digits_mlp, tmp_path, monkeypatch):
    _fake_exporters(monkeypatch, torchscript="off-by-one", dynamo="fail")
    report = export_onnx(digits_mlp, tmp_path / "m.onnx", tolerance=1.5)
    assert report.exporter == "torchscript" and report.fallback is None
    assert report.max_abs_diff == pytest.approx(1.0)


def test_explicit_exporter_that_fails_names_the_one_that_works(digits_mlp, tmp_path,
                                                               monkeypatch):
    _fake_exporters(monkeypatch, torchscript="fail", dynamo="torchscript")
    with pytest.raises(PruneInfoError, match=r"^ONNX export failed: the torchscript exporter "
                       r"fails: fake torchscript failure; the dynamo exporter converts this model "
                       r"faithfully: pass `exporter`=dynamo \(or `exporter`=auto\)$"):
        export_onnx(digits_mlp, tmp_path / "m.onnx", exporter="torchscript")
    assert list(tmp_path.iterdir()) == []


def test_explicit_dynamo_that_fails_names_torchscript(digits_mlp, tmp_path, monkeypatch):
    _fake_exporters(monkeypatch, dynamo="fail")
    with pytest.raises(PruneInfoError, match=r"the dynamo exporter fails: fake dynamo failure; "
                       r"the torchscript exporter converts .* `exporter`=torchscript"):
        export_onnx(digits_mlp, tmp_path / "m.onnx", exporter="dynamo")
    assert list(tmp_path.iterdir()) == []


def test_export_model_gives_checked_bytes_without_metadata(digits_cnn, digits):
    sample = digits.val.x[:8]
    data = export_model(digits_cnn.model, sample)
    assert data == convert_model(digits_cnn.model, sample).data  # the tracer is deterministic
    proto = onnx.ModelProto()
    proto.ParseFromString(data)
    assert not proto.metadata_props
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    got = run_onnx(ort_session(data), digits.test.x[:3])
    assert np.abs(got - _torch_logits(digits_cnn, digits.test.x[:3])).max() < 1e-4


def test_explicit_exporter_is_used_when_it_works(digits_mlp, tmp_path, monkeypatch):
    _fake_exporters(monkeypatch, dynamo="torchscript")
    report = export_onnx(digits_mlp, tmp_path / "m.onnx", exporter="dynamo")
    assert report.exporter == "dynamo" and report.fallback is None


def test_unknown_input_shape_is_refused():
    with pytest.raises(PruneInfoError, match="input shape"):
        convert_checkpoint(Checkpoint(model=_Erfcx()))


# --------------------------------------------------------------------------------------------
# Reading ONNX files


def test_checker_failure_is_reported(digits_mlp, tmp_path):
    path = tmp_path / "m.onnx"
    export_onnx(digits_mlp, path)
    proto = onnx.load(str(path))
    proto.graph.node[0].op_type = "NoSuchOp"
    broken = tmp_path / "broken.onnx"
    onnx.save(proto, str(broken))
    with pytest.raises(PruneInfoError, match="broken.onnx fails the ONNX checker"):
        load_onnx(broken)


def test_file_kind_is_told_by_content(digits_mlp, mlp_path, tmp_path):
    onnx_path = tmp_path / "m.onnx"
    export_onnx(digits_mlp, onnx_path)
    renamed = tmp_path / "model-onnx.bin"
    renamed.write_bytes(onnx_path.read_bytes())
    junk = tmp_path / "junk.bin"
    junk.write_text("hello, not a model\n")
    assert looks_like_onnx(onnx_path) and looks_like_onnx(renamed)
    assert not looks_like_onnx(mlp_path) and not looks_like_onnx(junk)
    with pytest.raises(PruneInfoError, match="not an ONNX model"):
        load_onnx(junk)


# --------------------------------------------------------------------------------------------
# Command line


def test_cli_export_writes_checked_file(run_cli, mlp_path, tmp_path):
    out = tmp_path / "m.onnx"
    code, stdout, stderr = run_cli("export", str(mlp_path), "-o", str(out))
    assert code == 0, stderr
    assert "max abs diff" in stdout and f"saved {out}" in stdout
    assert load_onnx(out).metadata["spec"] == "64-32-24-10"


def test_cli_export_json_report(run_cli, cnn_path, tmp_path):
    out = tmp_path / "c.onnx"
    code, stdout, _ = run_cli("export", str(cnn_path), "-o", str(out), "--opset", "17",
                              "--json")
    assert code == 0
    doc = json.loads(stdout)
    assert doc["format"] == "prune-info-export"
    assert doc["max_abs_diff"] < 1e-4 and doc["opset"] == 17
    assert doc["batch_sizes"] == [256, 1]  # a validation batch and a single sample
    assert doc["file_bytes"] == out.stat().st_size


def _factory_module(tmp_path, monkeypatch):
    (tmp_path / "erfcx_model.py").write_text(
        "import torch\nfrom torch import nn\n\n"
        "class M(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.flatten, self.out = nn.Flatten(), nn.Linear(64, 10)\n\n"
        "    def forward(self, x):\n"
        "        return self.out(torch.special.erfcx(self.flatten(x)))\n\n"
        "def build():\n    return M()\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    from erfcx_model import build  # noqa: PLC0415

    state = tmp_path / "state.pt"
    torch.save(build().state_dict(), state)
    return state


def test_cli_export_failure_names_operator(run_cli, tmp_path, monkeypatch):
    _fake_exporters(monkeypatch, dynamo="fail")
    state = _factory_module(tmp_path, monkeypatch)
    out = tmp_path / "bad.onnx"
    code, stdout, stderr = run_cli("export", str(state), "--model", "erfcx_model:build",
                                   "--data", "digits", "-o", str(out))
    assert code == 2 and stdout == ""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "aten::special_erfcx" in lines[0]
    assert "the dynamo exporter fails" in lines[0]
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if "bad.onnx" in p.name]


@pytest.mark.slow  # the real dynamo exporter, tried to name the exporter that works
def test_cli_explicit_torchscript_failure_names_dynamo(run_cli, tmp_path, monkeypatch):
    state = _factory_module(tmp_path, monkeypatch)
    out = tmp_path / "bad.onnx"
    code, stdout, stderr = run_cli("export", str(state), "--model", "erfcx_model:build",
                                   "--data", "digits", "-o", str(out), "--exporter",
                                   "torchscript")
    assert code == 2 and stdout == ""
    (line,) = stderr.strip().splitlines()
    assert line == ("error: ONNX export failed: the torchscript exporter does not support "
                    "operator aten::special_erfcx at opset 18; the dynamo exporter converts this "
                    "model faithfully: pass --exporter dynamo (or --exporter auto)")
    assert not [p for p in tmp_path.iterdir() if "bad.onnx" in p.name]


@pytest.mark.slow  # the real dynamo exporter
def test_cli_auto_falls_back_to_dynamo(run_cli, tmp_path, monkeypatch):
    state = _factory_module(tmp_path, monkeypatch)
    out = tmp_path / "erfcx.onnx"
    code, stdout, stderr = run_cli("export", str(state), "--model", "erfcx_model:build",
                                   "--data", "digits", "-o", str(out))
    assert code == 0, stderr
    assert "18 / dynamo" in stdout and f"saved {out}" in stdout
    assert stderr.strip().splitlines() == [
        "note: the torchscript exporter does not support operator aten::special_erfcx at opset "
        "18; used the dynamo exporter"]
    assert load_onnx(out).opset == 18


def test_cli_export_reports_the_fallback(run_cli, mlp_path, tmp_path, monkeypatch):
    _fake_exporters(monkeypatch, torchscript="fail", dynamo="torchscript")
    out = tmp_path / "m.onnx"
    code, stdout, stderr = run_cli("export", str(mlp_path), "-o", str(out))
    assert code == 0, stderr
    assert "18 / dynamo" in stdout
    assert stderr.strip().splitlines() == [
        "note: the torchscript exporter fails: fake torchscript failure; used the dynamo "
        "exporter"]
    code, stdout, _ = run_cli("export", str(mlp_path), "-o", str(out), "--json")
    doc = json.loads(stdout)
    assert doc["exporter"] == "dynamo" and doc["fallback"].startswith("the torchscript exporter")


def test_cli_explicit_exporter_failure_is_one_line_naming_the_flag(run_cli, mlp_path, tmp_path,
                                                                  monkeypatch):
    _fake_exporters(monkeypatch, torchscript="fail", dynamo="torchscript")
    out = tmp_path / "m.onnx"
    code, stdout, stderr = run_cli("export", str(mlp_path), "-o", str(out), "--exporter",
                                   "torchscript")
    assert code == 2 and stdout == ""
    (line,) = stderr.strip().splitlines()
    assert line.endswith("pass --exporter dynamo (or --exporter auto)")
    assert not [p for p in tmp_path.iterdir() if "m.onnx" in p.name]


@pytest.mark.parametrize("args, message", [
    (["--opset", "99"], "--opset 99"),
    (["--opset", "21", "--exporter", "torchscript"], "or pass --exporter dynamo"),
    (["-o", "/no/such/dir/m.onnx"], "does not exist"),
])
def test_cli_export_bad_input(run_cli, mlp_path, tmp_path, args, message):
    argv = ["export", str(mlp_path)]
    if "-o" not in args:
        argv += ["-o", str(tmp_path / "m.onnx")]
    code, stdout, stderr = run_cli(*argv, *args)
    assert code == 2 and stdout == ""
    assert len(stderr.strip().splitlines()) == 1 and message in stderr
    assert not (tmp_path / "m.onnx").exists()


def test_cli_export_of_non_checkpoint(run_cli, tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_text("not a checkpoint")
    code, _, stderr = run_cli("export", str(junk), "-o", str(tmp_path / "m.onnx"))
    assert code == 2 and "not a PyTorch checkpoint" in stderr
    assert not (tmp_path / "m.onnx").exists()


def test_cli_export_saved_pruned_like_checkpoint(run_cli, pruned_like, tmp_path):
    src = tmp_path / "p.pt"
    save_checkpoint(pruned_like, src)
    out = tmp_path / "p.onnx"
    code, stdout, _ = run_cli("export", str(src), "-o", str(out))
    assert code == 0 and "(pruned in 1 step)" in stdout
    assert load_onnx(out).metadata["pruning_steps"] == 1


def test_the_limit_grows_with_large_logits(digits_mlp, tmp_path, monkeypatch):
    """Logits a thousand times larger: float32 rounding grows with them, so a difference of
    1e-3 passes where it is under 1e-5 of the largest logit, and the report says the limit."""
    from prune_info.deploy.onnx import default_sample, difference_limit

    assert difference_limit([np.array([[3.0, -5.0]])], 1e-4) == 1e-4
    assert difference_limit([np.array([[3.0, -2e5]])], 1e-4) == pytest.approx(2.0)
    model = copy.deepcopy(digits_mlp.model)
    with torch.no_grad():
        model.out.weight.mul_(1000.0)
        model.out.bias.mul_(1000.0)
    big = Checkpoint(model=model, dataset=digits_mlp.dataset)
    sample = default_sample(digits_mlp.dataset["input_shape"])
    expected = [_torch_logits(big, sample), _torch_logits(big, sample[:1])]
    limit = difference_limit(expected, 1e-4)
    assert limit > 1e-3  # the logits are in the hundreds or more
    real = export.run_onnx
    monkeypatch.setattr(export, "run_onnx", lambda s, x: real(s, x) + 1e-3)
    report = export_onnx(big, tmp_path / "m.onnx")
    assert 0.9e-3 < report.max_abs_diff <= limit  # the 1e-3, and float32's own rounding
    assert report.tolerance == pytest.approx(limit)
    with pytest.raises(PruneInfoError, match=r"by up to 0\.001 \(limit 0\.0001\)"):
        export_onnx(digits_mlp, tmp_path / "small.onnx")  # logits near 1e1: 1e-3 is too much
