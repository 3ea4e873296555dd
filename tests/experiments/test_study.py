"""Multi-seed studies: statistics over seeds, resuming after an interruption, refusing mixes."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from scipy import stats

from prune_info.errors import PruneInfoError
from prune_info.experiments.study import StudyConfig, run_study
from prune_info.experiments.study_results import StudyResult
from prune_info.training.loop import TrainConfig

CONFIG = StudyConfig(data="digits", arch="64-16-12-10", seeds=(0, 1, 2),
                     train=TrainConfig(epochs=2), random=3, criteria=("mi", "kl"))


# Tiny tensors: a second intra-op thread only adds wake-up latency on a loaded machine.
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The tiny study run without interruption."""
    root = tmp_path_factory.mktemp("reference") / "study"
    return run_study(CONFIG, root, progress=False), root


def _without_paths(results) -> dict:
    return {k: v for k, v in results.to_dict().items() if k != "figures"}


def test_a_study_writes_curves_statistics_table_and_figures(reference):
    results, root = reference
    assert results.at == [10]  # 80 % of the smallest layer (12 units)
    block = results.scenarios["relu-l2"].modes["layerwise"]["fc1"]
    assert block.units == 16
    assert set(block.curves) == {"mi:low", "mi:high", "kl:low", "kl:high", "random"}
    assert len(block.curves["random"]["mean"]) == 17
    gap = block.gaps[0]
    assert gap["k"] == 10 and gap["p_value"] is None and "at least 6" in gap["note"]
    assert gap["text"].startswith("MG@10 = ") and gap["text"].endswith("p = n/a")
    assert [t["a"] for t in results.ks] == ["relu-l2/layerwise/fc1"]
    for name in ("config.json", "results.json", "table.txt", "fig-relu-l2-layerwise.png"):
        assert (root / name).stat().st_size > 0
    assert "MG@10" in (root / "table.txt").read_text()
    saved = json.loads((root / "results.json").read_text())
    assert saved["format"] == "prune-info-study"
    assert len(saved["per_seed"]["relu-l2"]) == 3
    assert StudyResult.read(root / "results.json") == results


def test_study_statistics_equal_scipy_on_the_per_seed_curves(tmp_path):
    config = replace(CONFIG, seeds=tuple(range(7)), train=TrainConfig(epochs=1), random=2,
                     criteria=("mi",), orders=("low",))
    results = run_study(config, tmp_path / "s", at=[6], progress=False)
    per_seed = results.per_seed["relu-l2"]
    n = 360  # digits test set
    mi = np.array([per_seed[str(s)]["layerwise"]["fc2"]["mi:low"][0][6] for s in range(7)]) / n
    rnd = np.array([np.mean([row[6] for row in per_seed[str(s)]["layerwise"]["fc2"]["random"]])
                    for s in range(7)]) / n
    gap = results.scenarios["relu-l2"].modes["layerwise"]["fc2"].gaps[0]
    diff = 100 * (mi - rnd)
    assert gap["gap"] == pytest.approx(diff.mean())
    if np.any(diff != 0):
        assert gap["p_value"] == pytest.approx(stats.wilcoxon(diff, method="approx").pvalue)
    rnd1 = np.array([np.mean([row[6] for row in per_seed[str(s)]["layerwise"]["fc1"]["random"]])
                     for s in range(7)]) / n
    ks = results.ks[0]
    assert ks["p_value"] == pytest.approx(stats.ks_2samp(rnd1, rnd).pvalue)
    assert ks["gap"] == pytest.approx(100 * (rnd1.mean() - rnd.mean()))


def test_an_interrupted_study_resumes_without_redoing_finished_work(reference, tmp_path):
    expected, _ = reference
    root = tmp_path / "study"
    events = []

    def crash_after_first_seed(kind, details):
        events.append((kind, details.get("seed")))
        if kind == "curves":
            raise KeyboardInterrupt  # Ctrl-C right after seed 0 was saved

    with pytest.raises(KeyboardInterrupt):
        run_study(CONFIG, root, progress=False, on_event=crash_after_first_seed)
    assert (root / "relu-l2" / "seed-0000" / "curves.json").exists()
    assert not (root / "relu-l2" / "seed-0001" / "curves.json").exists()

    events.clear()
    resumed = run_study(CONFIG, root, progress=False,
                        on_event=lambda kind, d: events.append((kind, d.get("seed"))))
    assert ("train", None) not in events  # every model was already saved
    assert ("skipped", 0) in events
    assert [e for e in events if e[0] == "curves"] == [("curves", 1), ("curves", 2)]
    assert _without_paths(resumed) == _without_paths(expected)


def test_a_study_killed_during_training_continues_from_the_last_epoch(reference, tmp_path):
    expected, _ = reference
    root = tmp_path / "study"

    def crash_in_training(kind, details):
        if kind == "epoch" and details["epoch"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_study(CONFIG, root, progress=False, on_event=crash_in_training)
    assert list((root / "relu-l2").glob("train-state-*.pt"))
    events = []
    resumed = run_study(CONFIG, root, progress=False,
                        on_event=lambda kind, d: events.append((kind, d)))
    trains = [d for kind, d in events if kind == "train"]
    assert len(trains) == 1 and trains[0]["resumed"] is True
    assert [d["epoch"] for kind, d in events if kind == "epoch"] == [2]
    assert not list((root / "relu-l2").glob("train-state-*"))
    assert _without_paths(resumed) == _without_paths(expected)


def test_a_study_killed_while_storing_models_trains_nothing_again(reference, tmp_path):
    expected, _ = reference
    root = tmp_path / "study"

    def crash_after_first_model(kind, details):
        if kind == "trained":
            raise KeyboardInterrupt  # seed 0 stored, seeds 1 and 2 not yet

    with pytest.raises(KeyboardInterrupt):
        run_study(CONFIG, root, progress=False, on_event=crash_after_first_model)
    events = []
    resumed = run_study(CONFIG, root, progress=False,
                        on_event=lambda kind, d: events.append((kind, d.get("seed"))))
    assert ("epoch", None) not in events  # the finished batch's state was reused
    assert [e for e in events if e[0] == "trained"] == [("trained", 1), ("trained", 2)]
    assert not list((root / "relu-l2").glob("train-state-*"))
    assert _without_paths(resumed) == _without_paths(expected)


def test_a_grid_of_scenarios_compares_random_curves_across_scenarios(tmp_path):
    config = replace(CONFIG, acts=("relu", "sigmoid"), regs=("l2", "dropout"), seeds=(0, 1),
                     train=TrainConfig(epochs=1), random=2, criteria=("mi",),
                     modes=("layerwise", "network"))
    results = run_study(config, tmp_path / "grid", progress=False)
    assert list(results.scenarios) == ["relu-l2", "relu-dropout", "sigmoid-l2",
                                          "sigmoid-dropout"]
    pairs = {(t["a"], t["b"]) for t in results.ks}
    assert ("relu-l2/layerwise/fc1", "relu-l2/layerwise/fc2") in pairs
    assert ("relu-l2/layerwise/fc1", "sigmoid-dropout/layerwise/fc1") in pairs
    assert ("relu-dropout/network/network", "sigmoid-l2/network/network") in pairs
    assert ("relu-l2/layerwise/fc1", "sigmoid-l2/layerwise/fc2") not in pairs
    assert len(results.figures) == 8
    assert all((tmp_path / "grid" / name).exists() for name in results.figures)


def test_a_directory_of_another_configuration_is_refused(reference, tmp_path):
    _, root = reference
    before = sorted(p.name for p in root.rglob("*"))
    with pytest.raises(PruneInfoError, match=r"holds another configuration \(epochs: 2 there, "
                                             r"3 here\)"):
        run_study(replace(CONFIG, train=TrainConfig(epochs=3)), root, progress=False)
    assert sorted(p.name for p in root.rglob("*")) == before
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(PruneInfoError, match="non-empty directory"):
        run_study(CONFIG, tmp_path / "other", progress=False)


def test_asking_for_fewer_seeds_reports_on_those_without_recomputing(reference, tmp_path):
    _, root = reference
    events = []
    results = run_study(replace(CONFIG, seeds=(0, 1)), root, progress=False,
                        on_event=lambda kind, d: events.append(kind))
    assert set(events) == {"skipped"}
    assert results.seeds == [0, 1]


def test_bad_study_requests_are_refused_before_any_work(tmp_path):
    with pytest.raises(PruneInfoError, match="`at`=20 is beyond the 16 units of fc1"):
        run_study(CONFIG, tmp_path / "a", at=[20], progress=False)
    with pytest.raises(PruneInfoError, match="`random` is 0"):
        run_study(replace(CONFIG, random=0), tmp_path / "b", at=[5], progress=False)
    with pytest.raises(PruneInfoError, match="repeats"):
        run_study(replace(CONFIG, acts=("relu", "relu")), tmp_path / "c", progress=False)
    assert not any(tmp_path.iterdir())


def test_the_identity_keeps_the_training_settings_as_top_level_keys():
    """config.json of every study directory: the contained TrainConfig reads as before, so
    directories written before it still resume."""
    identity = CONFIG.identity()
    assert list(identity)[:10] == ["data", "arch", "acts", "regs", "epochs", "batch_size",
                                   "optimizer", "lr", "momentum", "weight_decay"]
    assert (identity["epochs"], identity["optimizer"], identity["momentum"]) == (2, "rmsprop",
                                                                                 0.01)
    assert "train" not in identity and "seeds" not in identity
    with pytest.raises(PruneInfoError, match="a study sets `schedule` of `train` itself"):
        replace(CONFIG, train=TrainConfig(epochs=2, schedule="cosine")).validate()
