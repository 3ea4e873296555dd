"""Scores you can trust: bias correction, the permutation null, ties made visible, exact zeros
on constant units."""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch
from scipy import stats

from prune_info.criteria.context import compute_scores, unit_information
from prune_info.criteria.options import ScoreOptions
from prune_info.criteria.ranking import tie_warnings, tied_share
from prune_info.data import Split
from prune_info.errors import PruneInfoError
from prune_info.measures.discrete import (
    CountTable,
    miller_madow,
    mutual_information,
    permuted_counts,
)
from tests.helpers import plant_units


def _shuffled(split: Split, seed: int = 1) -> Split:
    order = torch.randperm(len(split), generator=torch.Generator().manual_seed(seed))
    return Split(split.x, split.y[order])


def test_miller_madow_terms_equal_hand_computed_values():
    # unit 0: 2 bins x 3 classes, all 6 cells occupied, N = 12; unit 1: one bin occupied
    counts = torch.tensor([[[2, 2, 2], [2, 2, 2]], [[4, 4, 4], [0, 0, 0]]])
    mm = miller_madow(counts)
    ln2 = math.log(2)
    assert mm.mi[0].item() == pytest.approx((2 - 1) * (3 - 1) / (2 * 12 * ln2))
    assert mm.entropy[0].item() == pytest.approx(-(2 - 1) / (2 * 12 * ln2))
    # class y: (occupied bins - 1)(1 - p_y) / (2 N_y ln 2) = 1 * (2/3) / (2 * 4 * ln 2)
    assert mm.spectrum[0].tolist() == pytest.approx([(2 / 3) / (8 * ln2)] * 3)
    assert mm.mi[1].item() == 0 and mm.entropy[1].item() == 0 and mm.spectrum[1].eq(0).all()
    # a partly occupied table: 3 of 4 cells, m_T = m_Y = 2, N = 10
    mm = miller_madow(torch.tensor([[[5, 0], [3, 2]]]))
    assert mm.mi.item() == pytest.approx((3 - 2 - 2 + 1) / (2 * 10 * ln2))


def test_permuted_counts_equal_tables_counted_by_hand():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 3, (50, 4), generator=g).to(torch.uint8)
    labels = torch.randint(0, 5, (50,), generator=g)
    perms = torch.stack([torch.randperm(50, generator=g) for _ in range(3)])
    tables = permuted_counts(ids, labels, 3, 5, perms)
    for p in range(3):
        expected = CountTable.from_bins(ids.long(), labels[perms[p]], n_bins=3, n_classes=5)
        assert torch.equal(tables[p], expected.counts)


@pytest.mark.parametrize("bins,plug_in_above,corrected_below", [(2, 0.01, 0.003),
                                                                (8, 0.08, 0.03)])
def test_corrections_bring_shuffled_label_mi_to_zero(digits_mlp, digits, bins, plug_in_above,
                                                     corrected_below):
    shuffled = _shuffled(digits.val)
    medians = {}
    for correction in ("none", "miller-madow", "shuffle"):
        options = ScoreOptions(bins=bins, binning="quantile", bias_correction=correction)
        info = unit_information(digits_mlp.model, shuffled, 10, options=options)
        medians[correction] = float(torch.cat([i.mi for i in info.values()]).median())
    assert medians["none"] > plug_in_above  # the plug-in's bias: information in noise
    assert abs(medians["miller-madow"]) < corrected_below
    assert abs(medians["shuffle"]) < corrected_below / 3


def test_null_p_values_are_uniform_under_the_null_and_small_for_a_planted_unit(digits_mlp,
                                                                                 digits):
    options = ScoreOptions(null=100)
    info = unit_information(digits_mlp.model, _shuffled(digits.val), 10, options=options)
    p = torch.cat([i.mi_p for i in info.values()]).numpy()
    assert stats.kstest(p, "uniform").pvalue > 0.01
    assert all(int((i.mi_q <= 0.05).sum()) == 0 for i in info.values())
    # a unit that detects class 3 beats chance; a dead one cannot
    model = copy.deepcopy(digits_mlp.model)
    plant_units(model, "fc1", digits.val.x, digits.val.y, dead=(0,), selective={1: 3})
    info = unit_information(model, digits.val, 10, options=options)["fc1"]
    assert info.mi_p[1].item() == pytest.approx(1 / 101) and info.mi_q[1] <= 0.05
    assert info.mi_p[0].item() == 1.0 and info.mi[0].item() == 0.0


def test_constant_units_score_exactly_zero_everywhere(digits_mlp, digits):
    model = copy.deepcopy(digits_mlp.model)
    plant_units(model, "fc1", dead=(0, 1), always_active=(2,))
    for correction in ("none", "miller-madow", "shuffle"):
        for bins in (2, 4):
            options = ScoreOptions(bins=bins, binning="quantile", bias_correction=correction,
                                   null=10)
            info = unit_information(model, digits.val, 10, options=options)["fc1"]
            for measure in (info.entropy, info.mi, info.kl):
                assert measure[:3].tolist() == [0.0, 0.0, 0.0], (correction, bins)
    scores = compute_scores(model, digits.val, ["gcmi-model", "gcmi-mixture"], n_classes=10,
                            layers=["fc1"])
    for criterion in ("gcmi-model", "gcmi-mixture"):
        # read before the ReLU, the dead and always-on units are constant too (-1 and +1)
        assert scores[criterion]["fc1"][:3].tolist() == [0.0, 0.0, 0.0], criterion


def test_ties_warn_on_always_on_channels_and_not_on_a_healthy_mlp(digits_mlp, digits,
                                                                  digits_cnn):
    scores = compute_scores(digits_mlp.model, digits.val, ["entropy", "mi", "kl"],
                            n_classes=10)
    assert tie_warnings(scores) == []
    # every channel of a conv layer always on: under the threshold quantiser MI is 0 for all
    model = copy.deepcopy(digits_cnn.model)
    conv = model.get_submodule(digits_cnn.layers[0].name)
    with torch.no_grad():
        conv.weight.zero_()
        conv.bias.fill_(1.0)
    layer = digits_cnn.layers[0].name
    threshold = compute_scores(model, digits.val, ["mi"], n_classes=10, layers=[layer],
                               options=ScoreOptions(channel_quantiser="threshold"))
    assert tied_share(threshold["mi"][layer]) == 1.0
    (line,) = tie_warnings(threshold)
    assert f"{layer} 100 % at 0" in line and "tie-break order" in line and "`bins`=4" in line
    # the default median split of a healthy CNN's channels leaves no tie
    healthy = compute_scores(digits_cnn.model, digits.val, ["mi", "kl"], n_classes=10)
    assert tie_warnings(healthy) == []


def test_score_cli_reports_units_above_chance(run_cli, mlp_path, tmp_path):
    out = tmp_path / "s.json"
    code, stdout, stderr = run_cli("score", str(mlp_path), "--null", "50", "--bias-correction",
                                   "miller-madow", "--out", str(out))
    assert code == 0, stderr
    assert "above chance (q <= 0.05): MI" in stdout and "miller-madow corrected" in stdout
    doc = json.loads(out.read_text())
    layer = doc["layers"][0]
    assert len(layer["null"]["mi_p"]) == layer["n_units"]
    assert layer["summary"]["above_chance"]["mi"] == sum(q <= 0.05 for q in
                                                          layer["null"]["mi_q"])
    header = (tmp_path / "s.csv").read_text().splitlines()[0].split(",")
    assert header[-4:] == ["mi_p", "mi_q", "kl_p", "kl_q"]


def test_bad_score_options_are_refused():
    for kwargs, says in (({"bias_correction": "jackknife"}, "bias_correction"),
                         ({"null": -1}, "null"), ({"channel_quantiser": "mean"},
                                                  "channel_quantiser")):
        with pytest.raises(PruneInfoError, match=says):
            ScoreOptions(**kwargs)


def test_mutual_information_unchanged_by_default(digits_mlp, digits):
    """The default stays the papers' plug-in estimator on fully-connected units."""
    info = unit_information(digits_mlp.model, digits.val, 10)["fc1"]
    assert torch.equal(info.mi, mutual_information(info.counts))


def test_benjamini_hochberg_adjustment_equals_the_hand_computed_step_up():
    from prune_info.analysis.stats import adjust_p

    p = [0.001, 0.04, None, 0.03, 0.5]
    # sorted 0.001, 0.03, 0.04, 0.5 (m = 4): p * m / rank = 0.004, 0.06, 0.0533, 0.5;
    # then the running minimum from the top: 0.004, 0.0533, 0.0533, 0.5
    assert adjust_p(p) == pytest.approx([0.004, 0.16 / 3, None, 0.16 / 3, 0.5])
    assert adjust_p([None, None]) == [None, None]


def test_subnetwork_summaries_adjust_every_comparison_together():
    from types import SimpleNamespace

    from prune_info.analysis.stats import adjust_p
    from prune_info.experiments.subnetworks import summarise

    rows = [{"criterion": c, "value": k, "seed": s, "arch": "a", "parameters": 1, "macs": 1,
             "test_acc": 0.9 - 0.01 * s * (c == "mi") + 0.001 * k, "drop_pp": 1.0}
            for c in ("mi", "kl", "random") for k in (5, 10) for s in range(6)]
    config = SimpleNamespace(criteria=["mi", "kl", "random"],
                             selections=[("keep", 5), ("keep", 10)])
    table = summarise(SimpleNamespace(rows=rows, config=config))
    assert [e.p_adjusted for e in table.entries] == adjust_p([e.p_value for e in table.entries])
    assert "q (BH)" in table.table().splitlines()[0]


def test_the_median_split_counts_as_digitize_does(digits_cnn, digits):
    """Conv channels split at their median (edges from the first batch) are counted by a
    comparison; the counts equal digitize + CountTable on the same edges, batch by batch."""
    from prune_info.capture import CaptureOptions, unit_outputs_and_labels
    from prune_info.measures.discrete import bin_edges, digitize

    batch = 100
    options = ScoreOptions(batch_size=batch)
    info = unit_information(digits_cnn.model, digits.val, n_classes=10, options=options)
    conv = [layer for layer in digits_cnn.layers if layer.kind == "conv"]
    outputs, labels = unit_outputs_and_labels(digits_cnn.model, conv, digits.val,
                                              CaptureOptions(batch_size=batch))
    for layer in conv:
        acts = outputs[layer.name]
        edges = bin_edges(acts[:batch], 2, "quantile")
        table = CountTable(layer.n_units, 2, 10).update(digitize(acts, edges), labels)
        assert torch.equal(info[layer.name].counts.counts, table.counts), layer.name
        assert torch.equal(info[layer.name].edges, edges)


def test_prune_with_a_null_names_the_layers_whose_ranking_is_noise(digits_mlp, digits):
    """Labels shuffled: no unit beats chance, so each layer's MI ranking is called noise; with
    the real labels the trained MLP's layers are not. A criterion without a null is refused."""
    from prune_info.pruning import PruneConfig, prune_checkpoint

    options = ScoreOptions(null=40)
    config = PruneConfig(criterion="mi", amount=0.5, score_options=options)
    shuffled = Split(digits.val.x, digits.val.y[torch.randperm(len(digits.val.y),
                                                 generator=torch.Generator().manual_seed(0))])
    noisy = prune_checkpoint(digits_mlp, replace_val(digits, shuffled), config)
    chance = [w for w in noisy.summary.warnings if "than chance" in w]
    assert [w.split(":")[0] for w in chance] == ["fc1", "fc2"]
    assert "so the mi ranking there is mostly noise" in chance[0]
    assert "`ignore`=fc1" in chance[0]
    real = prune_checkpoint(digits_mlp, digits, config)
    assert not [w for w in real.summary.warnings if "than chance" in w]
    assert real.plan.remove == prune_checkpoint(
        digits_mlp, digits, PruneConfig(criterion="mi", amount=0.5)).plan.remove
    with pytest.raises(PruneInfoError, match="criterion magnitude has no null"):
        PruneConfig(criterion="magnitude", amount=0.5, score_options=options).validate()


def replace_val(data, split):
    from dataclasses import replace

    return replace(data, val=split)


def test_prune_cli_null_is_refused_for_a_criterion_without_one(run_cli, mlp_path, tmp_path):
    out = tmp_path / "p.pt"
    code, _, stderr = run_cli("prune", str(mlp_path), "--criterion", "magnitude", "--amount",
                              "0.5", "--null", "20", "-o", str(out))
    assert code == 2 and not out.exists()
    assert stderr.strip() == ("error: --null 20 tests the mi and kl scores against label "
                              "permutations; criterion magnitude has no null: leave --null out")
    code, _, stderr = run_cli("prune", str(mlp_path), "--criterion", "mi", "--amount", "0.5",
                              "--null", "20", "-o", str(out))
    assert code == 0 and out.exists(), stderr
