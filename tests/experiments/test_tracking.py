"""MLflow tracking of studies and runs: what is logged equals the JSON the command wrote.

Skipped when the ``mlflow`` extra is not installed; the refusals that need no MLflow run either
way.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest
from helpers import import_extra

from prune_info.errors import PruneInfoError
from prune_info.experiments.tracking import metric_key, parse_track

pytestmark = pytest.mark.usefixtures("one_thread")

STUDY = ["study", "--data", "digits", "--arch", "64-12-10-10", "--seeds", "6", "--epochs", "1",
         "--random", "2", "--criteria", "mi", "--order", "low", "--quiet"]


def _client(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def _only_run(client, experiment: str):
    found = client.get_experiment_by_name(experiment)
    runs = client.search_runs([found.experiment_id])
    assert len(runs) == 1
    return runs[0]


@pytest.mark.slow
def test_a_tracked_study_logs_the_numbers_of_its_results_json(run_cli, tmp_path, monkeypatch):
    import_extra("mlflow")
    monkeypatch.chdir(tmp_path)  # the default store is ./mlruns
    code, _, err = run_cli(*STUDY, "--track", "mlflow", "--out", "study")
    assert code == 0, err
    store = tmp_path / "mlruns"
    assert f"in {store.as_uri()}" in err
    results = json.loads((tmp_path / "study" / "results.json").read_text())
    client = _client(store.as_uri())
    run = _only_run(client, "prune-info-study")
    assert run.info.run_name == "study" and run.info.status == "FINISHED"
    params, metrics = run.data.params, run.data.metrics
    assert params["arch"] == "64-12-10-10" and params["epochs"] == "1"
    assert params["seeds"] == "6" and params["seed_list"] == "0,1,2,3,4,5"
    assert params["criteria"] == "mi" and params["at"] == "8"
    entry = results["scenarios"]["relu-l2"]
    assert metrics["relu-l2/test_acc_mean"] == entry["test_acc"]["mean"]
    assert metrics["relu-l2/test_acc_std"] == entry["test_acc"]["std"]
    gaps = 0
    for scope, block in entry["modes"]["layerwise"].items():
        for gap in block["gaps"]:
            base = f"relu-l2/layerwise/{scope}/{gap['label']}"
            assert metrics[f"{base}/mg_k{gap['k']}"] == gap["gap"]
            assert gap["p_value"] is not None  # 6 seeds: the Wilcoxon test is reported
            assert metrics[f"{base}/p_value_k{gap['k']}"] == gap["p_value"]
            assert metrics[f"{base}/acc_k{gap['k']}"] == \
                block["curves"][gap["label"]]["mean"][gap["k"]]
            gaps += 1
    assert gaps == 2  # mi:low against random in fc1 and fc2
    ks = results["ks"][0]
    assert metrics[f"ks/relu-l2.layerwise.fc1_vs_relu-l2.layerwise.fc2/p_value_k{ks['k']}"] == \
        ks["p_value"]
    history = client.get_metric_history(run.info.run_id, "relu-l2/test_acc")
    per_seed = {s: json.loads((tmp_path / "study" / "relu-l2" / f"seed-{s:04d}" /
                               "curves.json").read_text())["test_acc"] for s in range(6)}
    assert {m.step: m.value for m in history} == per_seed
    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert names == {"config.json", "results.json", "table.txt", "fig-relu-l2-layerwise.png"}
    copy = Path(client.download_artifacts(run.info.run_id, "results.json", str(tmp_path)))
    assert copy.read_bytes() == (tmp_path / "study" / "results.json").read_bytes()


@pytest.mark.slow
def test_a_tracked_run_logs_its_stage_summaries_latencies_and_report(run_cli, tmp_path):
    import_extra("mlflow")
    store = tmp_path / "store"
    out = tmp_path / "results"
    code, _, err = run_cli("run", "--data", "digits", "--arch", "64-16-16-10", "--epochs", "1",
                           "--random", "2", "--max-exhaustive", "2", "--max-size", "3",
                           "--retrain-epochs", "1", "--bench-repeat", "2", "--bench-batch", "1",
                           "--track", f"mlflow:{store}", "--out", str(out), "--quiet")
    assert code == 0, err
    manifest = json.loads((out / "run.json").read_text())
    client = _client(store.as_uri())
    run = _only_run(client, "prune-info-run")
    params, metrics = run.data.params, run.data.metrics
    assert params["arch"] == "64-16-16-10" and params["amount"] == "0.5"
    assert run.data.tags["prune_info.reproduce"] == manifest["command"]
    stages = manifest["stages"]
    assert metrics["train/test_acc"] == stages["train"]["summary"]["test_acc"]
    assert metrics["prune/parameters/after"] == stages["prune"]["summary"]["parameters"]["after"]
    assert metrics["prune/macs/ratio"] == stages["prune"]["summary"]["macs"]["ratio"]
    assert metrics["retrain/after/test_acc"] == stages["retrain"]["summary"]["after"]["test_acc"]
    for layer, extremes in stages["oinfo"]["summary"]["layers"].items():
        assert metrics[f"oinfo/layers/{layer}/synergy"] == extremes["synergy"]
        assert metrics[f"oinfo/layers/{layer}/redundancy"] == extremes["redundancy"]
    bench = json.loads((out / "bench.json").read_text())
    timed = 0
    for model in bench["models"]:
        assert metrics[f"bench/{model['name']}/parameters"] == model["parameters"]
        for entry in model["latency"]:
            key = f"bench/{model['name']}/{entry['runtime']}/batch{entry['batch']}/median_ms"
            assert metrics[key] == entry["median_ms"]
            timed += 1
    assert timed >= 4
    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"report.html", "run.json", "bench.json", "scores.png"} <= names
    assert not any(n.endswith((".pt", ".onnx")) for n in names)


def test_a_store_that_cannot_be_written_is_refused_before_any_work(run_cli, tmp_path):
    import_extra("mlflow")
    (tmp_path / "a-file").write_text("not a directory")
    code, _, err = run_cli(*STUDY, "--track", f"mlflow:{tmp_path / 'a-file'}",
                           "--out", str(tmp_path / "s"))
    assert code == 2
    assert err.startswith(f"error: cannot track to --track mlflow:{tmp_path / 'a-file'}: ")
    assert len(err.strip().splitlines()) == 1
    code, _, err = run_cli(*STUDY, "--track", f"mlflow:{tmp_path / 'no' / 'such' / 'dir'}",
                           "--out", str(tmp_path / "s"))
    assert code == 2 and "does not exist" in err
    start = time.perf_counter()
    code, _, err = run_cli("run", "--data", "digits", "--track", "mlflow:http://127.0.0.1:9",
                           "--out", str(tmp_path / "r"))
    assert time.perf_counter() - start < 10
    assert code == 2
    assert err.startswith("error: no MLflow tracking server answers at --track "
                          "mlflow:http://127.0.0.1:9")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]  # nothing was written


def test_tracking_without_mlflow_says_how_to_install_it(run_cli, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # import mlflow -> ImportError
    monkeypatch.setitem(sys.modules, "mlflow.tracking", None)
    code, _, err = run_cli(*STUDY, "--track", "mlflow", "--out", str(tmp_path / "s"))
    assert code == 2
    assert err.strip() == ("error: --track mlflow needs MLflow, which is not installed: "
                           "pip install 'prune-info[mlflow]'")
    assert not (tmp_path / "s").exists()


def test_track_specs_and_metric_names():
    assert parse_track("mlflow") == ("mlflow", None)
    assert parse_track("mlflow:file:///tmp/x") == ("mlflow", "file:///tmp/x")
    with pytest.raises(PruneInfoError, match="unknown `track` 'wandb'"):
        parse_track("wandb")
    with pytest.raises(PruneInfoError, match="names no URI"):
        parse_track("mlflow:")
    for unsupported in ("databricks", "databricks-uc", "databricks://profile", "s3://bucket/x"):
        with pytest.raises(PruneInfoError, match="tracking store prune-info does not support"):
            parse_track(f"mlflow:{unsupported}")
    assert parse_track("mlflow:./databricks") == ("mlflow", "./databricks")
    assert parse_track("mlflow:postgresql+psycopg2://u@h/db")[1].startswith("postgresql")
    assert metric_key("relu-l2", "fc1", "MG@10 (p)") == "relu-l2/fc1/MG_10 _p_"
