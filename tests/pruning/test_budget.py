"""Pruning to a budget: targets parsed, met (exactly priced for MACs), the curves allocation
against brute force, the iterative mode re-scoring each round, bad targets refused."""

from __future__ import annotations

import itertools
import json

import pytest
import torch

import prune_info.pruning.budget as budget
import prune_info.pruning.workflow as workflow
from prune_info.checkpoint import Checkpoint
from prune_info.criteria.context import compute_scores
from prune_info.errors import PruneInfoError
from prune_info.experiments.pipeline import RunOptions
from prune_info.nn import example_input
from prune_info.pruning.allocation import group_drops
from prune_info.pruning.budget import CostModel, parse_target, search_counts
from prune_info.pruning.config import PruneConfig
from prune_info.pruning.retrain import RetrainConfig, iterative_prune
from prune_info.pruning.workflow import prune_checkpoint
from prune_info.surgery import channel_flow, unit_groups
from prune_info.training.loop import TrainConfig, train_model
from prune_info.zoo import build_factory_model
from tests.helpers import assert_refused


def _mlp_costs(widths: list[int]) -> tuple[int, int]:
    """MACs and parameters of an MLP of these widths, by hand."""
    macs = sum(a * b for a, b in zip(widths, widths[1:]))
    return macs, macs + sum(widths[1:])


def _widths(spec: str) -> list[int]:
    return [int(w) for w in spec.split("-")]


def test_targets_are_read_as_shares_kept():
    assert parse_target("macs=x2").kept == 0.5
    assert parse_target("macs=0.25").kept == 0.25
    assert parse_target("params=X4").kept == 0.25
    assert parse_target("speedup=2").kept == 0.5
    assert parse_target("latency=3.5ms").kept is None
    assert parse_target("latency=3.5").limit(10.0) == 3.5
    assert parse_target("macs=x2").limit(10.0) == 5.0
    for bad, says in (("flops=2", "give one of"), ("macs", "give one of"),
                      ("macs=1.5", "in (0, 1)"), ("macs=x0.5", "at least 1"),
                      ("macs=abc", "positive number"), ("speedup=1", "above 1"),
                      ("latency=-2", "positive number"), ("params=0", "positive number")):
        with pytest.raises(PruneInfoError, match=says.replace("(", r"\(").replace(")", r"\)")):
            parse_target(bad)


@pytest.mark.parametrize("allocation", ["uniform", "global", "curves"])
@pytest.mark.parametrize("target", ["macs=x2", "params=0.3", "macs=x8"])
def test_an_mlp_meets_its_target_at_exactly_the_predicted_cost(digits_mlp, digits, allocation,
                                                               target):
    config = PruneConfig(criterion="mi", target=target, allocation=allocation)
    result = prune_checkpoint(digits_mlp, digits, config)
    t = result.summary.target
    macs, params = _mlp_costs(_widths(result.summary.arch_after))
    dense_macs, dense_params = _mlp_costs(_widths(digits_mlp.spec))
    achieved = macs / dense_macs if t["kind"] == "macs" else params / dense_params
    asked = parse_target(target).kept
    assert t["achieved_share"] == pytest.approx(achieved)
    assert t["met"] and achieved <= asked * 1.02
    if t["kind"] == "macs":  # channel flow prices an MLP's MACs exactly
        assert t["predicted_share"] == pytest.approx(achieved)
    assert result.summary.allocation == allocation
    assert result.checkpoint.pruning_history[-1]["target"]["target"] == target


def test_a_cnn_meets_a_mac_target_with_curves(digits_cnn, digits):
    result = prune_checkpoint(digits_cnn, digits, PruneConfig(criterion="mi", target="macs=x2",
                                                              allocation="curves"))
    s = result.summary
    assert s.target["met"]
    assert s.macs_after / s.macs_before == pytest.approx(s.target["achieved_share"])
    assert s.macs_after / s.macs_before <= 0.5 * 1.02
    assert s.target["predicted_share"] == pytest.approx(s.target["achieved_share"], abs=1e-9)


@pytest.mark.parametrize("factory,target,allocation", [
    ("torchvision.models:resnet18", "macs=x2", "uniform"),
    ("torchvision.models:resnet18", "params=x3", "global"),
    ("torchvision.models:mobilenet_v2", "macs=x3", "uniform"),
])
def test_zoo_models_meet_targets_within_a_rounding_step(factory, target, allocation):
    torch.manual_seed(0)
    kwargs = {"num_classes": 10}
    ckpt = Checkpoint(build_factory_model(factory, kwargs).eval(), factory=factory,
                      factory_kwargs=kwargs, dataset={"input_shape": [3, 32, 32]})
    s = prune_checkpoint(ckpt, None, PruneConfig(criterion="magnitude", target=target,
                                                 allocation=allocation)).summary
    kept = parse_target(target).kept
    achieved = (s.macs_after / s.macs_before if target.startswith("macs")
                else s.params_after / s.params_before)
    assert s.target["met"] and achieved <= kept * 1.02, achieved
    assert achieved > kept * 0.85  # not far below: the search takes what the target allows
    if target.startswith("macs"):  # grouped, depthwise and residual channels priced exactly
        assert s.target["predicted_share"] == pytest.approx(achieved, abs=1e-9)


def _brute_force(costs: CostModel, limit: float, drops: dict) -> float:
    """The least summed drop of any counts within ``limit``, by trying them all, each curve
    read as its running maximum (removing more never taken to help)."""
    roots = list(drops)
    worst = {r: list(itertools.accumulate(drops[r][1], max)) for r in roots}
    best = float("inf")
    for counts in itertools.product(*(range(len(drops[r][0])) for r in roots)):
        plan = {r: drops[r][0][i] for r, i in zip(roots, counts)}
        if costs.cost(plan) <= limit:
            best = min(best, sum(worst[r][i] for r, i in zip(roots, counts)))
    return best


@pytest.mark.parametrize("criterion", ["mi", "magnitude"])
def test_the_curves_search_finds_the_brute_force_optimum(digits_mlp, digits, criterion,
                                                         monkeypatch):
    model = digits_mlp.model.eval()
    x = example_input(model, (1, 8, 8))
    groups = unit_groups(model, x, ["fc1", "fc2"])
    costs = CostModel.build(model, x, groups, channel_flow(model, x, groups), "macs")
    scores = {k: v.double() for k, v in compute_scores(model, digits.val, [criterion],
                                                       n_classes=10,
                                                       layers=["fc1", "fc2"])[criterion].items()}
    drops = group_drops(model, digits.val, scores)
    # the curves rise and fall (read as their running maximum)
    assert any(b < a for _, d in drops.values() for a, b in zip(d, d[1:]))
    for exhaustive in (budget.EXHAUSTIVE_PLANS, 0):  # every plan tried, or the searches
        monkeypatch.setattr(budget, "EXHAUSTIVE_PLANS", exhaustive)
        for share in (0.8, 0.5, 0.3, 0.1):
            limit = costs.dense * share
            counts, report = search_counts(costs, limit, "curves", round_counts=lambda r, k: k,
                                           drops=drops)
            assert report["met"] and costs.cost(counts) <= limit
            # the budget is used: no group could keep one more unit within it
            assert all(costs.cost({**counts, r: k - 1}) > limit
                       for r, k in counts.items() if k), (exhaustive, share, counts)
            assert report["summed_drop_pp"] == pytest.approx(_brute_force(costs, limit, drops)), \
                (exhaustive, share)


def test_iterative_pruning_to_a_target_rescores_each_round(digits_mlp, digits, monkeypatch):
    scored: list[str] = []
    original = workflow._compute_scores

    def spy(model, data, criterion, layer_names, config):
        scored.append("-".join(str(m.out_features) for m in model.modules()
                               if isinstance(m, torch.nn.Linear)))
        return original(model, data, criterion, layer_names, config)

    monkeypatch.setattr(workflow, "_compute_scores", spy)
    rows = iterative_prune(digits_mlp, digits, PruneConfig(criterion="mi", target="macs=x3"),
                           RetrainConfig(epochs=1, seed=0), rounds=3, progress=False).rounds
    dense = rows[0].macs
    assert [r.macs <= dense * (1 / 3) ** (r.round / 3) * 1.02 for r in rows[1:]] == \
        [True] * 3
    assert rows[-1].macs <= dense / 3 * 1.02
    # each round scored the model the previous round left (and retrained)
    assert scored == ["32-24-10"] + [r.arch.split("-", 1)[1] for r in rows[1:-1]]
    assert all(r.target_met for r in rows[1:])


def test_a_latency_target_is_measured_against_the_dense_model(digits):
    ckpt = train_model(digits, "64-512-512-10", "relu", "none", TrainConfig(epochs=1, seed=0),
                       progress=False)
    result = prune_checkpoint(ckpt, digits, PruneConfig(criterion="magnitude",
                                                        target="speedup=1.5",
                                                        latency_batch=256))
    t = result.summary.target
    assert t["unit"] == "ms" and t["batch"] == 256 and 1 <= t["attempts"] <= 3
    assert t["achieved_share"] == pytest.approx(t["achieved"] / t["dense_measured"])
    assert t["limit_measured"] == pytest.approx(t["dense_measured"] / 1.5)
    assert t["met"] == (t["achieved"] <= t["limit_measured"] * 1.05)
    assert any("missed" in w for w in result.summary.warnings) == (not t["met"])


def test_run_records_a_target_in_its_prune_stage():
    options = RunOptions(target="macs=x2", allocation="curves")
    options.validate()
    assert options.prune_config().planner == "curves"
    assert options.prune_options() == {"criterion": "mi", "target": "macs=x2",
                                       "allocation": "curves", "latency_batch": 1}
    args = options.cli_args()
    assert args[args.index("--target") + 1] == "macs=x2" and "--amount" not in args
    assert RunOptions().prune_options() == {"criterion": "mi", "amount": 0.5}


def test_prune_cli_reports_the_target(run_cli, mlp_path, tmp_path):
    out = tmp_path / "p.pt"
    code, stdout, stderr = run_cli("prune", str(mlp_path), "--target", "macs=x2",
                                   "--allocation", "global", "-o", str(out), "--json")
    assert code == 0, stderr
    doc = json.loads(stdout)
    assert doc["target"]["met"] and doc["target"]["achieved_share"] <= 0.51
    assert doc["macs"]["after"] / doc["macs"]["before"] == \
        pytest.approx(doc["target"]["achieved_share"])
    code, stdout, _ = run_cli("prune", str(mlp_path), "--target", "params=x2", "-o", str(out))
    assert code == 0 and "target params=x2 (uniform):" in stdout and ": met" in stdout


@pytest.mark.parametrize("args,says", [
    (["--target", "flops=2"], "give one of macs=F"),
    (["--target", "macs=x2", "--amount", "0.5"], "exactly one of --amount, --keep"),
    (["--allocation", "curves", "--amount", "0.5"], "chooses how a --target is met"),
    (["--target", "macs=x1000"], "at best"),
    (["--target", "macs=x2", "--mask"], "drop --mask"),
    (["--target", "latency=0.000001"], "cannot be met"),
    (["--target", "latency=100000"], "already meets"),
    (["--target", "macs=x2", "--max-drop", "1"], "exactly one of"),
])
def test_bad_targets_are_refused_in_one_line(run_cli, mlp_path, tmp_path, args, says):
    assert_refused(run_cli, tmp_path, ["prune", str(mlp_path), *args, "-o",
                                       str(tmp_path / "p.pt")], says)
