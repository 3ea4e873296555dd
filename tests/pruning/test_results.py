"""Typed result objects: each ``to_dict`` gives exactly the JSON-ready dict the CLI writes."""

from __future__ import annotations

import json

import pytest

from prune_info.nn import count_parameters, layer_costs, prunable_layers
from prune_info.pruning.config import PruneConfig
from prune_info.pruning.summary import LayerPruneSummary, PruneSummary
from prune_info.pruning.workflow import prune_checkpoint

# --------------------------------------------------------------------------------------------
# PruneSummary


def _legacy_prune_summary(old, new, plan, mode, config, input_shape, before, after) -> dict:
    """The summary dict as ``prune_checkpoint`` built it before it was typed."""
    cost_before = layer_costs(old.model, input_shape)
    cost_after = layer_costs(new.model, input_shape)
    widths_after = (plan.widths_after() if mode == "mask" else
                    {layer.name: layer.n_units for layer in prunable_layers(new.model)})
    rows = [{
        "name": layer.name,
        "units_before": layer.n_units,
        "units_after": widths_after.get(layer.name, layer.n_units),
        "removed": len(plan.remove.get(layer.name, ())),
        "ignored": layer.name in config.ignore,
        "params_before": cost_before[layer.name]["params"],
        "params_after": cost_after[layer.name]["params"],
        "macs_before": cost_before[layer.name]["macs"],
        "macs_after": cost_after[layer.name]["macs"],
    } for layer in prunable_layers(old.model)]
    macs_before = sum(c["macs"] for c in cost_before.values())
    macs_after = sum(c["macs"] for c in cost_after.values())
    return {
        "criterion": config.criterion, "allocation": config.allocation, "order": config.order,
        "mode": mode, "arch_before": old.spec, "arch_after": new.spec, "layers": rows,
        "removed": {layer: list(idxs) for layer, idxs in plan.remove.items()},
        "parameters": {"before": count_parameters(old.model),
                       "after": count_parameters(new.model)},
        "macs": {"before": macs_before, "after": macs_after,
                 "ratio": macs_before / macs_after if macs_after else None},
        "accuracy": {"val": {"before": before["val_acc"], "after": after["val_acc"]},
                     "test": {"before": before["test_acc"], "after": after["test_acc"]}},
    }


@pytest.mark.parametrize("config", [
    PruneConfig(criterion="mi", amount=0.5),
    PruneConfig(criterion="magnitude", amount=0.3, mask=True, ignore=("fc2",)),
    PruneConfig(criterion="magnitude", allocation="global", amount=0.9, min_units=4),
], ids=["layerwise", "mask", "global"])
def test_prune_summary_to_dict_is_the_legacy_dict(digits_mlp, digits, config):
    result = prune_checkpoint(digits_mlp, digits, config)
    summary = result.summary
    assert isinstance(summary, PruneSummary)
    assert all(isinstance(r, LayerPruneSummary) for r in summary.layers)
    new = result.checkpoint
    before = new.metrics["before_pruning"]
    expected = _legacy_prune_summary(digits_mlp, new, result.plan,
                                     "mask" if config.mask else "remove", config,
                                     tuple(digits.input_shape), before, new.metrics)
    expected["warnings"] = list(summary.warnings)
    expected["layers_at_min_units"] = list(summary.layers_at_min_units)
    got = summary.to_dict()
    assert got == expected
    assert list(got) == list(expected)  # key order, hence the JSON bytes
    assert json.dumps(got) == json.dumps(expected)
    assert summary.macs_ratio == got["macs"]["ratio"]
    if config.allocation == "global":
        assert summary.warnings and summary.layers_at_min_units == ("fc1", "fc2")
    with pytest.raises(AttributeError):
        summary.mode = "other"  # frozen


def test_prune_summary_max_drop_report_is_kept_last(digits_mlp, digits):
    config = PruneConfig(criterion="magnitude", allocation="max-drop", max_drop=2.0)
    summary = prune_checkpoint(digits_mlp, digits, config).summary
    got = summary.to_dict()
    assert list(got)[-1] == "max_drop" and got["max_drop"] is summary.max_drop
    assert set(summary.max_drop) >= {"budget_pp", "counts", "joint_drop_pp", "rounds"}
    assert "max_drop" not in prune_checkpoint(digits_mlp, digits,
                                              PruneConfig(amount=0.5)).summary.to_dict()


def test_prune_cli_json_is_summary_to_dict(run_cli, mlp_path, digits_mlp, digits):
    out = mlp_path.parent / "pruned.pt"
    code, stdout, stderr = run_cli("prune", str(mlp_path), "--amount", "0.5", "-o", str(out),
                                   "--json")
    assert code == 0, stderr
    document = json.loads(stdout)
    summary = prune_checkpoint(digits_mlp, digits, PruneConfig(amount=0.5)).summary
    assert list(document) == ["format", "format_version", *summary.to_dict(), "input", "output"]
    assert {k: document[k] for k in summary.to_dict()} == json.loads(
        json.dumps(summary.to_dict()))


# --------------------------------------------------------------------------------------------
# ArchSpec


def test_arch_spec_round_trips_the_checkpoint_dict(digits_mlp, digits_cnn, digits, tmp_path):
    import torch

    from prune_info.checkpoint import load_checkpoint, save_checkpoint
    from prune_info.zoo import ArchSpec, arch_spec, build_model, parse_arch

    pruned = prune_checkpoint(digits_mlp, digits, PruneConfig(amount=0.5)).checkpoint
    for ckpt in (digits_mlp, digits_cnn, pruned):
        path = tmp_path / "model.pt"
        save_checkpoint(ckpt, path)
        stored = torch.load(path, weights_only=True)["arch"]
        spec = ArchSpec.from_dict(stored)
        assert spec.to_dict() == stored and list(spec.to_dict()) == list(stored)
        assert json.dumps(spec.to_dict()) == json.dumps(stored)
        assert spec.spec == arch_spec(stored) == ckpt.spec == load_checkpoint(path).spec
        assert ArchSpec.from_dict(spec) is spec
        torch.manual_seed(0)
        from_dict = build_model(stored).state_dict()
        torch.manual_seed(0)
        from_spec = build_model(spec).state_dict()
        assert list(from_dict) == list(from_spec)
        assert all(torch.equal(from_dict[k], from_spec[k]) for k in from_dict)
    assert ArchSpec.from_dict(pruned.arch).hidden == (16, 12)
    cnn = ArchSpec.from_dict(parse_arch("c6-c8-f16", (1, 8, 8), 10, batchnorm=True))
    assert (cnn.kind, cnn.conv, cnn.hidden, cnn.batchnorm) == ("cnn", (6, 8), (16,), True)
    assert "conv" not in ArchSpec.from_dict(digits_mlp.arch).to_dict()


def test_arch_spec_rejects_incomplete_dicts():
    from prune_info.errors import PruneInfoError
    from prune_info.zoo import ArchSpec, parse_arch

    arch = parse_arch("64-16-10", (1, 8, 8), 10)
    with pytest.raises(PruneInfoError, match="lacks hidden"):
        ArchSpec.from_dict({k: v for k, v in arch.items() if k != "hidden"})
    with pytest.raises(PruneInfoError, match="kind"):
        ArchSpec.from_dict({**arch, "kind": "rnn"})
    legacy = {k: v for k, v in arch.items() if k != "batchnorm"}
    assert ArchSpec.from_dict(legacy).batchnorm is False


# --------------------------------------------------------------------------------------------
# BenchResult, LatencyEntry, BenchRow


def _legacy_flat_rows(results: list[dict]) -> list[dict]:
    """:func:`flat_rows` as it was written on dicts, before the results were typed."""
    from prune_info.deploy.bench import CSV_COLUMNS

    rows = []
    for r in results:
        base = {
            "model": r["name"], "path": r.get("path"), "format": r.get("format"),
            "arch": r.get("arch"), "dataset": r.get("dataset"),
            "pruning_steps": r.get("pruning_steps"), "test_acc": r.get("test_acc"),
            "parameters": r.get("parameters"), "macs": r.get("macs"),
            "file_bytes": r.get("file_bytes"), "onnx_bytes": r.get("onnx_bytes"),
            "mac_ratio": r.get("mac_ratio"),
        }
        for entry in r["latency"] or [{}]:
            rows.append({col: entry.get(col, base.get(col)) for col in CSV_COLUMNS})
    return rows


def test_bench_result_round_trips_and_keeps_the_json_keys(digits_mlp, digits, tmp_path):
    import dataclasses

    from prune_info.checkpoint import save_checkpoint
    from prune_info.deploy.bench import (
        CSV_COLUMNS,
        BenchResult,
        BenchRow,
        LatencyEntry,
        benchmark_models,
        flat_rows,
    )
    from prune_info.deploy.bench_report import BenchReport

    dense, pruned = tmp_path / "dense.pt", tmp_path / "pruned.pt"
    save_checkpoint(digits_mlp, dense)
    save_checkpoint(prune_checkpoint(digits_mlp, digits, PruneConfig(amount=0.5)).checkpoint,
                    pruned)
    results = benchmark_models([dense, pruned], batches=[1, 5], threads=1, repeat=2, warmup=0)
    assert all(isinstance(r, BenchResult) for r in results)
    assert all(isinstance(e, LatencyEntry) for r in results for e in r.latency)
    as_dicts = [r.to_dict() for r in results]
    assert list(as_dicts[0]) == [
        "name", "path", "format", "arch", "dataset", "pruning_steps", "file_bytes", "test_acc",
        "recorded_test_acc", "parameters", "macs", "onnx_bytes", "latency", "mac_ratio"]
    assert list(as_dicts[0]["latency"][0]) == [
        "runtime", "device", "threads", "batch", "median_ms", "p90_ms", "min_ms", "repeat",
        "samples_per_s", "speedup"]
    assert [BenchResult.from_dict(d) for d in as_dicts] == results
    assert json.loads(json.dumps(as_dicts)) == as_dicts
    assert results[1].arch == "64-16-12-10" and results[1].pruning_steps == 1
    assert results[0].mac_ratio == 1.0 and results[1].mac_ratio == pytest.approx(
        results[0].macs / results[1].macs)
    assert all(e.speedup == 1.0 for e in results[0].latency)

    assert tuple(f.name for f in dataclasses.fields(BenchRow)) == CSV_COLUMNS
    flat = flat_rows(results)
    assert flat == flat_rows(as_dicts) == _legacy_flat_rows(as_dicts)
    assert [list(row) for row in flat] == [list(CSV_COLUMNS)] * len(flat) == [
        list(row.to_dict()) for r in results for row in r.rows()]
    assert len(flat) == 2 * 2 * 2  # models x runtimes x batches
    bare = dataclasses.replace(results[0], latency=())
    (row,) = bare.rows()
    assert row.to_dict() == _legacy_flat_rows([bare.to_dict()])[0] and row.median_ms is None

    document = BenchReport.of(results, batches=[1, 5]).to_dict()
    assert document["models"] == as_dicts == BenchReport.of(as_dicts).to_dict()["models"]
