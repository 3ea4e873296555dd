"""What information buys under a budget (issue "Prune to a budget"): prune-info's allocations
and criteria against torch-pruning's pruners at the same achieved MACs, and at the same
measured speed-up, one-shot and after the same fine-tuning.

For each model (torchvision ResNet-18 and MobileNetV2, ``num_classes=10``) and each seed:

1. train the dense model on a FashionMNIST subset adapted to 3x32x32 (channel repeated,
   bilinear resize), ``prune_info.train_model`` with the factory recipe, ``--epochs``;
2. for each budget (``--macs``: N times fewer MACs, and ``--speedup``: N times faster at batch
   ``--latency-batch`` on this CPU, PyTorch eager) and each method:

   * prune-info, ``prune_checkpoint(target=...)``: ``uniform`` allocation with the criteria
     mi, kl, gcmi-model, magnitude, taylor and random; ``curves`` with mi and with magnitude
     (each group's ablation curve on ``--curve-samples`` validation images); ``global`` with
     magnitude. Scores on ``--score-samples`` validation images.
   * torch-pruning 1.6, ``BasePruner`` with ``GroupMagnitudeImportance``, ``LAMPImportance``,
     ``FPGMImportance`` and ``GroupTaylorImportance`` (gradients of 4 training batches), each
     layer-uniform and with ``global_pruning=True`` (``max_pruning_ratio=0.95``), classifier
     ignored, ``round_to=8``; the pruning ratio bisected to the same budget: the least ratio
     whose MACs are within the target (counted by ``prune_info.total_macs``, as prune-info's
     are), or whose measured speed-up reaches it.

3. measure: test accuracy one-shot (no fine-tuning: where rankings matter most) and after
   ``--finetune-steps`` SGD steps (batch 64, lr 0.01, momentum 0.9, cosine, identical for every
   method), achieved MACs, parameters, and the latency of all models of one budget timed
   round-robin with the dense model (median of 20).

Results: one JSON per (model, seed) in ``--out`` (resumable: finished methods are kept), a
table of mean +- std (ddof=1) over seeds per (model, budget, method), a paired t-test of each method
against the best torch-pruning method of that budget (two-sided, over seeds), and an
accuracy-vs-latency figure per model (``--out``/front-MODEL.png).

    .venv/bin/python benchmarks/bench_budget.py --seeds 3                  # hours on 2 cores
    .venv/bin/python benchmarks/bench_budget.py --models resnet18 --seeds 1 --macs 2 \\
        --speedup 0 --train-samples 2000 --epochs 1 --finetune-steps 10    # a smoke run
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from dataclasses import replace
from pathlib import Path

import harness
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from prune_info._torch import timing_input
from prune_info.checkpoint import Checkpoint
from prune_info.data import Dataset, Split, load_dataset
from prune_info.nn import accuracy, count_parameters, total_macs
from prune_info.pruning.budget import measure_latencies
from prune_info.pruning.config import PruneConfig
from prune_info.pruning.workflow import prune_checkpoint
from prune_info.training.loop import TrainConfig, train_model

FASHION = "/usr/share/datasets/fashion-mnist"
SHAPE = (3, 32, 32)
MODELS = {"resnet18": "torchvision.models:resnet18",
          "mobilenet_v2": "torchvision.models:mobilenet_v2"}
PI_METHODS = [*(("uniform", c) for c in ("mi", "kl", "gcmi-model", "magnitude", "taylor",
                                         "random")),
              ("curves", "mi"), ("curves", "magnitude"), ("global", "magnitude")]
TP_IMPORTANCES = ("magnitude", "lamp", "fpgm", "taylor")
METHODS = [*(f"pi:{a}:{c}" for a, c in PI_METHODS),
           *(f"tp:{i}{':global' if g else ''}" for g in (False, True) for i in TP_IMPORTANCES)]


# --------------------------------------------------------------------------------------------
# Data and training


def adapted(split: Split, n: int, seed: int) -> Split:
    """``n`` samples of a seeded permutation, as 3x32x32 (channel repeated, bilinear)."""
    idx = torch.randperm(len(split), generator=torch.Generator().manual_seed(seed))[:n]
    x = F.interpolate(split.x[idx], size=SHAPE[1:], mode="bilinear", align_corners=False)
    return Split(x.repeat(1, 3, 1, 1).contiguous(), split.y[idx].contiguous())


def dataset(args) -> Dataset:
    full = load_dataset("fashion-mnist", FASHION, seed=0)
    return replace(full, train=adapted(full.train, args.train_samples, 1),
                   val=adapted(full.val, args.val_samples, 2),
                   test=adapted(full.test, args.test_samples, 3))


def finetune(model: nn.Module, train: Split, steps: int, seed: int) -> nn.Module:
    """The fine-tuning every method gets: ``steps`` SGD steps, batch 64, cosine from 0.01."""
    if steps == 0:
        return model.eval()
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    g = torch.Generator().manual_seed(seed)
    done = 0
    while done < steps:
        for x, y in train.epoch(64, g):
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
            sched.step()
            done += 1
            if done == steps:
                break
    return model.eval()


# --------------------------------------------------------------------------------------------
# torch-pruning at a budget


def classifier(model: nn.Module) -> nn.Module:
    return [m for m in model.modules() if isinstance(m, nn.Linear)][-1]


def tp_prune(model: nn.Module, importance: str, global_: bool, ratio: float,
             train: Split) -> nn.Module:
    import torch_pruning as tp

    m = copy.deepcopy(model).eval()
    imp = {"magnitude": tp.importance.GroupMagnitudeImportance(p=2),
           "lamp": tp.importance.LAMPImportance(p=2),
           "fpgm": tp.importance.FPGMImportance(p=2),
           "taylor": tp.importance.GroupTaylorImportance()}[importance]
    example = torch.zeros(1, *SHAPE)
    pruner = tp.pruner.BasePruner(m, example, importance=imp, pruning_ratio=ratio,
                                  global_pruning=global_, max_pruning_ratio=0.95,
                                  ignored_layers=[classifier(m)], round_to=8)
    if importance == "taylor":
        m.zero_grad()
        for i, (x, y) in enumerate(train.batches(64)):
            F.cross_entropy(m(x), y).backward()
            if i == 3:
                break
    pruner.step()
    m.zero_grad(set_to_none=True)
    return m.eval()


def tp_at_budget(model: nn.Module, importance: str, global_: bool, train: Split,
                 fits) -> tuple[nn.Module, float]:
    """The least pruning ratio whose model ``fits`` the budget: the first of a 0.05 grid, then
    8 bisection steps below it. (With ``round_to`` the MACs are not monotone in the ratio near
    its top: a ratio of 0.95 can leave more than 0.7 does, so a bisection over the whole range
    can miss.)"""
    lo = 0.0
    for hi in np.arange(0.05, 0.951, 0.05):
        best = tp_prune(model, importance, global_, float(hi), train)
        if fits(best):
            break
        lo = float(hi)
    else:
        return best, float(hi)  # never fits: the last tried, reported as missed
    hi = float(hi)
    for _ in range(8):
        mid = (lo + hi) / 2
        m = tp_prune(model, importance, global_, mid, train)
        if fits(m):
            hi, best = mid, m
        else:
            lo = mid
    return best, hi


# --------------------------------------------------------------------------------------------
# One (model, seed)


def run(name: str, seed: int, data: Dataset, args, out: Path) -> dict:
    path = out / f"{name}-seed{seed}.json"
    doc = json.loads(path.read_text())["result"] if path.exists() else {"records": []}
    done = {(r["budget"], r["method"]) for r in doc["records"]}
    started = harness.loadavg()
    dense_path = out / f"{name}-seed{seed}-dense.pt"
    factory, kwargs = MODELS[name], {"num_classes": 10}
    if dense_path.exists():
        from prune_info.checkpoint import load_checkpoint

        dense = load_checkpoint(dense_path)
    else:
        torch.manual_seed(seed)
        t0 = time.perf_counter()
        dense = train_model(data, factory=factory, factory_kwargs=kwargs, progress=False,
                            config=TrainConfig.for_factory_models(epochs=args.epochs, seed=seed))
        from prune_info.checkpoint import save_checkpoint

        save_checkpoint(dense, dense_path)
        doc["dense_seconds"] = round(time.perf_counter() - t0, 1)
    model = dense.model.eval()
    doc["dense"] = {"test_acc": accuracy(model, data.test), "macs": total_macs(model, SHAPE),
                    "parameters": count_parameters(model)}
    print(f"[{name} seed {seed}] dense test {100 * doc['dense']['test_acc']:.2f} %", flush=True)
    budgets = [f"macs=x{b:g}" for b in args.macs] + \
        ([f"speedup={args.speedup:g}"] if args.speedup else [])
    timed = timing_input(SHAPE, args.latency_batch)
    for budget in budgets:
        for method in args.methods:
            if (budget, method) in done:
                continue
            t0 = time.perf_counter()
            record = {"budget": budget, "method": method}
            try:
                pruned = prune_for(method, budget, dense, data, args, seed, timed)
            except Exception as exc:  # recorded: the table says which method failed
                record["error"] = f"{type(exc).__name__}: {exc}"[:300]
                print(f"[{name} seed {seed}] {budget} {method}: FAILED {record['error']}",
                      flush=True)
            else:
                record.update(macs=total_macs(pruned, SHAPE), parameters=count_parameters(pruned),
                              one_shot=accuracy(pruned, data.test))
                tuned = finetune(pruned, data.train, args.finetune_steps, seed)
                record["finetuned"] = accuracy(tuned, data.test)
                dense_ms, ms = measure_latencies([model, tuned], timed, repeat=20, warmup=3)
                record.update(latency_ms=ms, dense_latency_ms=dense_ms)
                if args.keep_models:
                    stem = f"{name}-seed{seed}-{budget}-{method}".replace(":", "_")
                    torch.save(tuned, out / "models" / f"{stem.replace('=', '')}.pt")
                print(f"[{name} seed {seed}] {budget} {method}: MACs x"
                      f"{doc['dense']['macs'] / record['macs']:.2f}, speed-up "
                      f"x{dense_ms / ms:.2f}, one-shot {100 * record['one_shot']:.2f} %, "
                      f"fine-tuned {100 * record['finetuned']:.2f} % "
                      f"({time.perf_counter() - t0:.0f} s)", flush=True)
            record["seconds"] = round(time.perf_counter() - t0, 1)
            doc["records"].append(record)
            harness.write_result(path, {"model": name, "seed": seed, **vars(args)}, doc,
                                 started_load=started)
    return doc


def prune_for(method: str, budget: str, dense: Checkpoint, data: Dataset, args, seed: int,
              timed: torch.Tensor) -> nn.Module:
    kind, value = budget.split("=")
    if method.startswith("pi:"):
        _, allocation, criterion = method.split(":")
        samples = args.curve_samples if allocation == "curves" else args.score_samples
        config = PruneConfig(criterion=criterion, allocation=allocation, target=budget,
                             latency_batch=args.latency_batch, max_samples=samples, seed=seed)
        return prune_checkpoint(dense, data, config).checkpoint.model.eval()
    parts = method.split(":")
    importance, global_ = parts[1], len(parts) > 2
    model = dense.model.eval()
    if kind == "macs":
        limit = total_macs(model, SHAPE) / float(value.lstrip("x"))
        pruned, _ = tp_at_budget(model, importance, global_, data.train,
                                 lambda m: total_macs(m, SHAPE) <= limit * 1.0)
        return pruned

    def fast_enough(m: nn.Module) -> bool:
        dense_ms, ms = measure_latencies([model, m], timed, repeat=15, warmup=2)
        return dense_ms / ms >= float(value) / 1.05  # prune-info's tolerance

    pruned, _ = tp_at_budget(model, importance, global_, data.train, fast_enough)
    return pruned


# --------------------------------------------------------------------------------------------
# The table, the test, the figure


def spread(values) -> float:
    """The sample standard deviation (ddof=1) over seeds; 0 for one seed."""
    return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def summarise(docs: dict[str, list[dict]], out: Path) -> str:
    from scipy import stats

    lines = []
    for name, runs in docs.items():
        dense = [d["dense"]["test_acc"] for d in runs]
        lines.append(f"\n**{name}** — dense test accuracy {100 * np.mean(dense):.2f} ± "
                     f"{100 * spread(dense):.2f} % over {len(runs)} seeds\n")
        budgets = list(dict.fromkeys(r["budget"] for d in runs for r in d["records"]))
        for budget in budgets:
            by_method: dict[str, dict[int, dict]] = {}
            for s, d in enumerate(runs):
                for r in d["records"]:
                    if r["budget"] == budget and "error" not in r:
                        by_method.setdefault(r["method"], {})[s] = r
            lines += [f"\n{name}, {budget}:\n",
                      "| method | MACs kept | speed-up | one-shot % | fine-tuned % | p vs best tp "
                      "(fine-tuned) |", "|---|---|---|---|---|---|"]
            tp_methods = [m for m in by_method if m.startswith("tp:")]
            best_tp = max(tp_methods, key=lambda m: np.mean([r["finetuned"] for r in
                                                             by_method[m].values()]),
                          default=None)
            for method, per_seed in by_method.items():
                rs = list(per_seed.values())
                dense_macs = runs[0]["dense"]["macs"]

                def ms(key: str, scale: float = 100.0, rs=rs) -> str:
                    v = [scale * r[key] for r in rs]
                    return f"{np.mean(v):.2f} ± {spread(v):.2f}"

                p = "-"
                if best_tp and method != best_tp:
                    common = sorted(set(per_seed) & set(by_method[best_tp]))
                    if len(common) >= 2:
                        a = [per_seed[s]["finetuned"] for s in common]
                        b = [by_method[best_tp][s]["finetuned"] for s in common]
                        p = f"{stats.ttest_rel(a, b).pvalue:.3f}" if np.std(
                            np.subtract(a, b)) > 0 else "1.000"
                speed = [r["dense_latency_ms"] / r["latency_ms"] for r in rs]
                lines.append(f"| {method}{' (best tp)' if method == best_tp else ''} | "
                             f"{100 * np.mean([r['macs'] / dense_macs for r in rs]):.1f} % | "
                             f"×{np.mean(speed):.2f} | {ms('one_shot')} | {ms('finetuned')} | "
                             f"{p} |")
        front(name, runs, out / f"front-{name}.png")
    return "\n".join(lines)


def front(name: str, runs: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    methods = sorted({r["method"] for d in runs for r in d["records"] if "error" not in r})
    for method in methods:
        pts = {}
        for d in runs:
            for r in d["records"]:
                if r["method"] == method and "error" not in r:
                    pts.setdefault(r["budget"], []).append((r["latency_ms"],
                                                            100 * r["finetuned"]))
        xy = sorted((np.mean([p[0] for p in v]), np.mean([p[1] for p in v]))
                    for v in pts.values())
        style = "-o" if method.startswith("pi:") else "--s"
        ax.plot([p[0] for p in xy], [p[1] for p in xy], style, label=method, ms=4, lw=1)
    dense = [(d["records"][0]["dense_latency_ms"], 100 * d["dense"]["test_acc"])
             for d in runs if d["records"]]
    if dense:
        ax.plot(np.mean([p[0] for p in dense]), np.mean([p[1] for p in dense]), "k*", ms=10,
                label="dense")
    ax.set_xlabel("latency, ms per batch (PyTorch, this CPU)")
    ax.set_ylabel("test accuracy after fine-tuning, %")
    ax.set_title(f"{name}: accuracy against latency (mean over seeds)")
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="resnet18,mobilenet_v2")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--seed-list", default=None,
                        help="comma-separated seeds to run instead of 0..--seeds-1 (to share "
                             "seeds between processes; the table covers the seeds given)")
    parser.add_argument("--macs", default="2,3,4", help="N times fewer MACs, comma-separated")
    parser.add_argument("--speedup", type=float, default=1.5, help="0: no latency budget")
    parser.add_argument("--latency-batch", type=int, default=64)
    parser.add_argument("--train-samples", type=int, default=10000)
    parser.add_argument("--val-samples", type=int, default=1000)
    parser.add_argument("--test-samples", type=int, default=2000)
    parser.add_argument("--score-samples", type=int, default=1000)
    parser.add_argument("--curve-samples", type=int, default=500)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--finetune-steps", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--keep-models", action="store_true")
    parser.add_argument("--methods", default=",".join(METHODS),
                        help="comma-separated, of: " + ", ".join(METHODS))
    parser.add_argument("--out", default="benchmarks/out/budget")
    args = parser.parse_args()
    args.methods = args.methods.split(",")
    seeds = ([int(v) for v in args.seed_list.split(",")] if args.seed_list
             else list(range(args.seeds)))
    unknown = set(args.methods) - set(METHODS)
    if unknown:
        parser.error(f"unknown methods {sorted(unknown)}")
    args.macs = [float(v) for v in args.macs.split(",") if v]
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    (out / "models").mkdir(parents=True, exist_ok=True)
    data = dataset(args)
    docs: dict[str, list[dict]] = {}
    for name in args.models.split(","):
        for seed in seeds:
            docs.setdefault(name, []).append(run(name, seed, data, args, out))
    text = summarise(docs, out)
    (out / "table.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
