"""The typed reports: every Report subclass round-trips through JSON, renders its table and
refuses a document of another format or version; the documents are pinned."""

import json
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
import torch

from prune_info.analysis.ablate import AblationConfig, AblationReport, ablate_checkpoint
from prune_info.analysis.curves import CurveSet, compute_curves
from prune_info.analysis.oinfo import OinfoDocument, oinfo_checkpoint
from prune_info.analysis.score import ScoreDocument, score_checkpoint
from prune_info.checkpoint import Checkpoint
from prune_info.data import load_dataset
from prune_info.deploy.bench import benchmark_models
from prune_info.deploy.bench_report import BenchReport
from prune_info.deploy.onnx import ExportReport, export_onnx
from prune_info.errors import PruneInfoError
from prune_info.experiments.study import StudyConfig
from prune_info.experiments.study_results import StudyResult
from prune_info.experiments.study_results import summarise as summarise_study
from prune_info.experiments.subnetworks import (
    CompareConfig,
    Comparison,
    ComparisonTable,
    summarise,
)
from prune_info.pruning.config import PruneConfig
from prune_info.pruning.retrain_report import RetrainReport, RetrainRun, Round, RoundsReport
from prune_info.pruning.summary import PruneSummary
from prune_info.pruning.workflow import prune_checkpoint
from prune_info.reports import Report
from prune_info.training.loop import TrainConfig


def _subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def small_ablation() -> AblationReport:
    """Two orderings of a 2-unit layer on 4 samples, one random order; a gap at k=1."""
    curves = CurveSet(mode="layerwise", ablate_to="zero", n_samples=4, units={"fc1": 2},
                      counts={"fc1": {"mi:low": torch.tensor([[4, 3, 1]]),
                                      "random": torch.tensor([[4, 2, 1], [4, 1, 1]])}})
    return AblationReport(model="m.pt", arch="8-2-3", dataset="digits", seed=0,
                          curves={"layerwise": curves}, at=(1,))


@dataclass(frozen=True)
class PlainReport(Report):
    """A report whose document is its fields: the base's own round trip."""

    FORMAT = "prune-info-test-plain"

    name: str
    values: list
    in_memory: int = field(default=0, metadata={"json": False})

    def table(self) -> str:
        return f"{self.name}: {self.values}"


def _untrained() -> tuple[Checkpoint, object]:
    """An untrained 64-6-10 MLP (seeded) on digits: a real checkpoint for the verbs."""
    from prune_info.zoo import build_model, parse_arch

    torch.manual_seed(0)
    arch = parse_arch("64-6-10", (1, 8, 8), 10)
    return Checkpoint(build_model(arch), arch=arch, source="m.pt"), \
        load_dataset("digits", seed=0)


def small_scores() -> ScoreDocument:
    ckpt, data = _untrained()
    return score_checkpoint(ckpt, data, ["entropy", "mi"], max_samples=100)


def small_oinfo() -> OinfoDocument:
    ckpt, data = _untrained()
    return oinfo_checkpoint(ckpt, data, max_samples=100, max_size=3)


def small_retrain() -> RetrainReport:
    """A rewind to init and the fine-tuning it is compared with, the first with a dense row."""
    def run(rewind, after):
        return RetrainRun(rewind=rewind, freeze_others=True, epochs=2, best_epoch=1,
                          before={"val_acc": 0.5, "test_acc": 0.25},
                          after={"val_acc": after, "test_acc": after - 0.125},
                          dense={"val_acc": 1.0, "test_acc": 0.875}, trained_entries=1200,
                          held_entries=34, history=[{"epoch": 1, "loss": 0.5}])
    return RetrainReport((run("init", 0.75), run("none", 0.625)), output="r.pt")


def small_rounds(target: str | None = "macs=x2") -> RoundsReport:
    rounds = (Round(0, "64-8-10", 610, 592, None, 0.75, 0.5),
              Round(1, "64-4-10", 310, 296, 0.25, 0.625, 0.375, target=target,
                    target_met=target and False, checkpoint="out/round1.pt"))
    return RoundsReport(criterion="mi", amount_per_round=None if target else 0.5, target=target,
                        allocation="global" if target else "layerwise", rounds=rounds)


def small_comparison() -> Comparison:
    """Two seeds of mi and random at k=4 (a comparison directory's results.json)."""
    config = CompareConfig(spec="64-8-10", criteria=("mi", "random"), seeds=(0, 1), keep=(4,))
    rows = [{"seed": s, "criterion": c, "selection": "keep", "value": 4, "arch": "64-4-10",
             "parameters": 310, "macs": 296, "dense_test_acc": 0.875,
             "test_acc": acc, "drop_pp": 100 * (0.875 - acc)}
            for s, (mi, rand) in enumerate([(0.75, 0.5), (0.625, 0.625)])
            for c, acc in (("mi", mi), ("random", rand))]
    return Comparison(config, "digits", rows)


def small_study() -> StudyResult:
    """Two seeds' records of a 2-unit layer (an mi ordering and one random order each)."""
    config = StudyConfig(data="digits", arch="64-2-10", seeds=(0, 1), criteria=("mi",),
                         orders=("low",), random=1, modes=("layerwise",))
    def record(seed, mi, rnd):
        return {"seed": seed, "test_acc": 0.5 + seed / 4, "curves": {"layerwise": {
            "n_samples": 4, "units": {"fc1": 2},
            "counts": {"fc1": {"mi:low": [mi], "random": [rnd]}}}}}
    records = {"relu-l2": [record(0, [4, 3, 1], [4, 2, 1]), record(1, [4, 4, 2], [4, 1, 1])]}
    return summarise_study(config, records, at=[1])


def small_prune() -> PruneSummary:
    ckpt, data = _untrained()
    return prune_checkpoint(ckpt, data, PruneConfig(criterion="magnitude", amount=0.5)).summary


def small_export() -> ExportReport:
    ckpt, data = _untrained()
    with tempfile.TemporaryDirectory() as tmp:
        return export_onnx(ckpt, Path(tmp) / "m.onnx", sample=data.val.x[:8])


def small_bench() -> BenchReport:
    ckpt, data = _untrained()
    results = benchmark_models([ckpt], data, batches=(1,), repeat=2, warmup=1,
                               runtimes=("torch",), threads=1)
    return BenchReport.of(results, batches=[1], threads=1, repeat=2)


#: One example of every Report subclass; a new report without one fails the contract below.
EXAMPLES = {AblationReport: small_ablation, ScoreDocument: small_scores,
            OinfoDocument: small_oinfo, RetrainReport: small_retrain, RoundsReport: small_rounds,
            Comparison: small_comparison, StudyResult: small_study,
            PruneSummary: small_prune, ExportReport: small_export, BenchReport: small_bench,
            ComparisonTable: lambda: summarise(small_comparison()),
            PlainReport: lambda: PlainReport("fc1", [1, 2], in_memory=7)}


def test_the_base_writes_its_fields_but_not_the_in_memory_ones():
    report = PlainReport("fc1", [1, 2], in_memory=7)
    assert report.to_dict() == {"name": "fc1", "values": [1, 2]}
    assert PlainReport.from_dict(report.to_dict()) == PlainReport("fc1", [1, 2])


def test_every_report_has_an_example():
    assert set(_subclasses(Report)) <= set(EXAMPLES)


@pytest.mark.parametrize("cls", list(EXAMPLES), ids=lambda c: c.__name__)
def test_report_round_trips_renders_and_refuses_other_formats(cls, tmp_path):
    report = EXAMPLES[cls]()
    path = tmp_path / "report.json"
    report.write(path)
    doc = json.loads(path.read_text())
    assert doc["format"] == cls.FORMAT and doc["format_version"] == cls.VERSION
    again = cls.read(path)
    assert again.to_dict() == report.to_dict()
    assert again.table() == report.table() and report.table().strip()
    assert json.loads(report.to_json()) == doc
    with pytest.raises(PruneInfoError, match=r"is malformed \(its format is 'other'"):
        cls.from_dict({**doc, "format": "other"}, "x.json")
    with pytest.raises(PruneInfoError, match=r"is malformed \(format version 99"):
        cls.from_dict({**doc, "format_version": 99}, "x.json")
    with pytest.raises(PruneInfoError, match=r"x.json is malformed \(a JSON list"):
        cls.from_dict([doc], "x.json")


def test_ablation_document_is_pinned():
    """The ``prune-info-ablation`` JSON of ``ablate --out``, field by field (format version 1)."""
    assert small_ablation().to_dict() == {
        "model": "m.pt", "arch": "8-2-3", "dataset": "digits", "split": "test", "seed": 0,
        "modes": {"layerwise": {"ablate_to": "zero", "n_samples": 4, "scopes": {"fc1": {
            "units": 2,
            "counts": {"mi:low": [[4, 3, 1]], "random": [[4, 2, 1], [4, 1, 1]]},
            "accuracy": {"mi:low": {"mean": [1.0, 0.75, 0.25], "std": None},
                         "random": {"mean": [1.0, 0.375, 0.25],
                                    "std": pytest.approx([0.0, 0.1767767, 0.0])}},
            "gaps": [{"label": "mi:low", "k": 1, "gap": 37.5,
                      "text": "gap@1 = 37.5 points (one model: no p-value; use prune-info "
                              "study)"}]}}}}}
    table = small_ablation().table().splitlines()
    assert table[0] == "8-2-3 on digits test set: accuracy [%] after ablating k units"
    assert table[3].split() == ["mi:low", "100.0", "75.0", "25.0"]


def test_score_and_oinfo_documents_are_pinned():
    """The ``prune-info-scores`` / ``-oinfo`` JSON of ``score --out`` / ``oinfo --out`` and of
    ``run``'s stages (format version 1): one layout, key by key."""
    scores = small_scores()
    doc = scores.to_dict()
    assert list(doc) == ["model", "arch", "dataset", "split", "criteria", "n_samples",
                         "n_classes", "quantiser", "options", "layers", "warnings"]
    assert (doc["model"], doc["arch"], doc["split"], doc["n_samples"]) == (
        "m.pt", "64-6-10", "val", 100)  # no coupled group: no "groups" key
    (layer,) = doc["layers"]
    assert list(layer) == ["name", "kind", "activation", "n_units", "threshold", "edges",
                           "summary", "scores", "kl_class", "dead", "always_active",
                           "spectrum"]
    assert layer["scores"]["mi"] == scores.report.scores["mi"]["fc1"].tolist()
    assert scores.scores("mi") == {"fc1": layer["scores"]["mi"]}
    table = scores.table().splitlines()
    assert table[0].startswith("64-6-10 on digits val (100 samples, 10 classes)")
    assert table[2].split()[:3] == ["fc1", "6", "entropy"]
    with pytest.raises(PruneInfoError, match="not 'kl'"):
        scores.scores("kl")

    oinfo = small_oinfo().to_dict()
    assert list(oinfo) == ["model", "arch", "dataset", "split", "n_samples", "reading", "seed",
                           "notes", "layers"]
    assert oinfo["reading"] == "pre-activation" and oinfo["n_samples"] == 100
    assert [r["size"] for r in oinfo["layers"][0]["sizes"]] == [2, 3]
    assert set(oinfo["layers"][0]["dominance"]) == {"synergy", "redundancy", "label"}


def test_retrain_and_rounds_documents_are_pinned():
    """``prune-info-retrain`` (``retrain --json``) and ``prune-info-prune-retrain``
    (``prune-retrain``'s rounds.json), format version 1, key by key."""
    doc = small_retrain().to_dict()
    assert list(doc) == ["runs", "output"] and doc["output"] == "r.pt"
    assert doc["runs"][1] == {
        "rewind": "none", "freeze_others": True, "epochs": 2, "best_epoch": 1,
        "before": {"val_acc": 0.5, "test_acc": 0.25}, "after": {"val_acc": 0.625,
                                                                "test_acc": 0.5},
        "dense": {"val_acc": 1.0, "test_acc": 0.875}, "trained_entries": 1200,
        "held_entries": 34, "history": [{"epoch": 1, "loss": 0.5}]}
    assert small_retrain().table().splitlines() == [
        "start          val acc  test acc",
        "dense         100.00 %   87.50 %",
        "pruned         50.00 %   25.00 %",
        "rewind init    75.00 %   62.50 %   best epoch 1",
        "fine-tune      62.50 %   50.00 %   best epoch 1",
        "trained 1,200 weights, froze 34"]
    targeted = small_rounds().to_dict()
    assert list(targeted) == ["criterion", "amount_per_round", "target", "allocation", "rounds"]
    assert targeted["rounds"] == [
        {"round": 0, "arch": "64-8-10", "parameters": 610, "macs": 592,
         "test_acc_pruned": None, "val_acc": 0.75, "test_acc": 0.5, "target": None,
         "target_met": None},
        {"round": 1, "arch": "64-4-10", "parameters": 310, "macs": 296,
         "test_acc_pruned": 0.25, "val_acc": 0.625, "test_acc": 0.375, "target": "macs=x2",
         "target_met": False, "checkpoint": "out/round1.pt"}]
    assert [r.round for r in small_rounds().missed()] == [1]
    plain = small_rounds(None).to_dict()["rounds"]  # no target: no target keys
    assert list(plain[1]) == ["round", "arch", "parameters", "macs", "test_acc_pruned",
                              "val_acc", "test_acc", "checkpoint"]
    assert small_rounds().table().splitlines()[2].split() == [
        "1", "64-4-10", "310", "296", "25.00", "%", "37.50", "%"]


def test_comparison_documents_are_pinned():
    """``prune-info-comparison`` (results.json of ``subnetworks``) and ``prune-info-subnetworks``
    (its ``--json``), format version 1."""
    comparison = small_comparison()
    doc = comparison.to_dict()
    assert list(doc) == ["config", "dataset", "rows"]
    assert doc["config"] == {"spec": "64-8-10", "criteria": ["mi", "random"], "seeds": [0, 1],
                             "keep": [4], "amounts": [], "act": "relu", "reg": "none",
                             "epochs": 10, "optimizer": "rmsprop", "lr": 1e-3,
                             "retrain_epochs": 10, "rewind": "init"}  # rest "removed": left out
    assert Comparison.from_dict(doc).config == comparison.config
    tuned = replace(comparison.config, train=TrainConfig(epochs=3, momentum=0.9))
    assert tuned.to_dict()["momentum"] == 0.9  # a setting off its default is recorded too
    assert CompareConfig.from_dict(tuned.to_dict()) == tuned
    table = summarise(comparison)
    mi = table.to_dict()["table"][0]
    assert mi == {"criterion": "mi", "selection": "keep", "value": 4, "arch": "64-4-10",
                  "parameters": 310, "macs": 296, "n_seeds": 2, "test_acc_mean": 0.6875,
                  "test_acc_std": 0.0625, "drop_pp_mean": 18.75, "drop_pp_std": 6.25,
                  "gap_pp": 12.5, "p_value": None, "note": mi["note"], "p_adjusted": None}
    assert "seeds" in mi["note"]  # two seeds: no p-value, and the note says why
    assert table.table().splitlines()[1].split()[:4] == ["mi", "k=4", "64-4-10", "68.75"]
    assert comparison.table() == table.table()


def test_study_document_is_pinned():
    """``prune-info-study`` (a study directory's results.json), format version 1."""
    study = small_study()
    doc = study.to_dict()
    assert list(doc) == ["config", "seeds", "at", "scenarios", "ks", "per_seed", "notes"]
    block = doc["scenarios"]["relu-l2"]["modes"]["layerwise"]["fc1"]
    assert doc["scenarios"]["relu-l2"]["test_acc"] == {"mean": 0.625,
                                                       "std": pytest.approx(0.1767767)}
    assert block["units"] == 2 and block["curves"]["mi:low"]["mean"] == [1.0, 0.875, 0.375]
    (gap,) = block["gaps"]
    assert (gap["label"], gap["k"], gap["gap"]) == ("mi:low", 1, 50.0)  # 87.5 vs 37.5 %
    assert gap["p_value"] is None and gap["p_adjusted"] is None and gap["text"].endswith("n/a")
    assert doc["per_seed"]["relu-l2"]["1"] == {"layerwise": {"fc1": {"mi:low": [[4, 4, 2]],
                                                                     "random": [[4, 1, 1]]}}}
    assert "2 seeds" in doc["notes"][0] and study.ks == []
    assert [s[:3] for s in study.scopes()] == [("relu-l2", "layerwise", "fc1")]
    table = study.table().splitlines()
    assert table[0] == "relu-l2: 2 seeds, test accuracy  62.5 ± 17.7 %"
    assert table[2] == "    k = 1: random  37.5 ± 17.7 %"
    figures = replace(study, figures=["fig.png"]).to_dict()
    assert list(figures)[-1] == "figures" and StudyResult.from_dict(figures).figures == [
        "fig.png"]


def test_a_missing_field_is_named(tmp_path):
    doc = small_ablation().to_dict()
    del doc["modes"]["layerwise"]["n_samples"]
    with pytest.raises(PruneInfoError, match=r"malformed \(its fields: missing field 'n_samples'"):
        AblationReport.from_dict(doc, "x.json")


def test_ablate_checkpoint_equals_the_curves_computed_by_hand(digits, digits_mlp):
    config = AblationConfig(criteria=("mi",), random=3, modes=("layerwise", "network"), seed=2)
    report = ablate_checkpoint(digits_mlp, digits, config)
    scores = report.scores
    assert set(scores) == {"mi"}
    for mode in ("layerwise", "network"):
        by_hand = compute_curves(digits_mlp.model, digits.test, scores, random=3, seed=2,
                                 mode=mode)
        assert by_hand.to_dict() == report.curves[mode].to_dict()
    assert report.max_samples is None and report.warnings == ()


@pytest.mark.parametrize("settings, message", [
    ({"criteria": (), "random": 0}, "nothing to ablate"),
    ({"random": 0, "at": (3,)}, "`at` compares with random ablation"),
    ({"steps": 5, "at_k": (0, 3)}, "give one of them"),
    ({"modes": ("sideways",)}, "unknown mode or order 'sideways'"),
    ({"at": (40,)}, "`at`=40 is beyond the 32 units of fc1"),
    ({"steps": 1}, "`steps` = 1: choose 2 to 33 points"),
])
def test_ablation_config_refuses_in_parameter_vocabulary(digits, digits_mlp, settings, message):
    with pytest.raises(PruneInfoError, match=message):
        ablate_checkpoint(digits_mlp, digits, AblationConfig(**settings))
