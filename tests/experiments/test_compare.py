import json

import numpy as np
import pytest
from scipy import stats

from prune_info.errors import PruneInfoError
from prune_info.experiments.subnetworks import CompareConfig, Comparison, run_comparison, summarise
from prune_info.training.loop import TrainConfig

TINY = CompareConfig(spec="64-8-8-10", criteria=("mi", "random"), seeds=(0, 1), keep=(4,),
                     train=TrainConfig(epochs=1), retrain_epochs=1)


def test_comparison_rows_resume_and_refuse_other_configs(digits, tmp_path, monkeypatch):
    result = run_comparison(digits, TINY, tmp_path, progress=False)
    assert len(result.rows) == 4
    assert {r["arch"] for r in result.rows} == {"64-4-4-10"}
    row = result.rows[0]
    assert row["drop_pp"] == pytest.approx(100 * (row["dense_test_acc"] - row["test_acc"]))
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["format"] == "prune-info-comparison" and len(saved["rows"]) == 4

    def no_training(*args, **kwargs):
        raise AssertionError("finished seeds must not be trained again")

    monkeypatch.setattr("prune_info.experiments.subnetworks._seed_rows", no_training)
    again = run_comparison(digits, TINY, tmp_path, progress=False)
    assert again.rows == result.rows
    other = CompareConfig(**{**TINY.__dict__, "keep": (5,)})
    with pytest.raises(PruneInfoError, match="another configuration"):
        run_comparison(digits, other, tmp_path, progress=False)


def test_summary_statistics_equal_scipy():
    rng = np.random.default_rng(0)
    config = CompareConfig(spec="x", criteria=("mi", "random"), seeds=tuple(range(8)), keep=(5,))
    rows = []
    for seed in range(8):
        for criterion, acc in (("mi", 0.8 + rng.normal(0, 0.02)),
                               ("random", 0.7 + rng.normal(0, 0.02))):
            rows.append({"seed": seed, "criterion": criterion, "selection": "keep", "value": 5,
                         "arch": "x", "parameters": 1, "macs": 1, "test_acc": acc,
                         "drop_pp": 100 * (0.9 - acc)})
    table = summarise(Comparison(config, "digits", rows))
    mi = next(e for e in table.entries if e.criterion == "mi")
    a = np.array([r["test_acc"] for r in rows if r["criterion"] == "mi"])
    b = np.array([r["test_acc"] for r in rows if r["criterion"] == "random"])
    assert mi.gap_pp == pytest.approx(100 * (a - b).mean())
    assert mi.p_value == pytest.approx(stats.wilcoxon(100 * (a - b), method="approx").pvalue)
    assert mi.test_acc_mean == pytest.approx(a.mean())
    assert mi.drop_pp_std == pytest.approx((100 * (0.9 - a)).std())


def test_config_needs_exactly_one_selection():
    with pytest.raises(PruneInfoError, match="`keep`"):
        CompareConfig(spec="x", criteria=("mi",), seeds=(0,)).validate()
