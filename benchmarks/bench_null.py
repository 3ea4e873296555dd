"""The permutation null and the bias corrections (issue "Information scores you can trust"):
what ``--null 100`` costs, how many units beat chance, how large the plug-in bias is.

1. **Cost**: ``unit_information`` (the streaming pass of ``score``) with ``null=100`` against
   without, on ResNet-18 over 2,000 FashionMNIST validation images at 3x32x32, timed alternately
   (``--repeat`` pairs, medians) in one run; the ratio is the figure (target <= 2).
2. **Above chance**: per layer, units whose MI beats 100 label permutations at a 5 % false
   discovery rate (Benjamini-Hochberg), on a FashionMNIST MLP (784-100-100-10) and ResNet-18.
3. **Bias**: the median MI of the MLP's units with the labels shuffled, plug-in against
   Miller-Madow and shuffle-corrected, at 2 and 8 quantile bins, next to the real median; the
   same for the README's digits model (64-100-100-10, 20 epochs: 359 validation samples, where
   the bias is large).
4. **Pruning the chance-level units first**: test accuracy one-shot and after
   ``--finetune-steps`` SGD steps when the MLP's hidden layers lose ``--amount`` of their units
   ordered by MI p-value (least significant first, MI breaking ties) against MI alone and
   random.

The ResNet-18 is the dense seed-0 model of ``bench_budget.py`` (trained there) when present,
else one trained here for ``--epochs``.

    .venv/bin/python benchmarks/bench_null.py
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import harness
import numpy as np
import torch
from bench_budget import adapted, finetune  # the same data and fine-tuning as bench_budget

from prune_info.checkpoint import load_checkpoint
from prune_info.criteria.context import unit_information
from prune_info.criteria.options import ScoreOptions
from prune_info.data import Split, load_dataset
from prune_info.nn import accuracy
from prune_info.pruning.allocation import plan_layerwise
from prune_info.surgery import apply_plan
from prune_info.training.loop import TrainConfig, train_model

FASHION = "/usr/share/datasets/fashion-mnist"


def cost(model, split, repeat: int) -> dict:
    plain, null = [], []
    for _ in range(repeat):
        for options, times in ((ScoreOptions(), plain), (ScoreOptions(null=100), null)):
            start = time.perf_counter()
            unit_information(model, split, 10, options=options)
            times.append(time.perf_counter() - start)
    return {"plain_s": float(np.median(plain)), "null100_s": float(np.median(null)),
            "ratio": float(np.median(null) / np.median(plain)), "repeat": repeat}


def above_chance(model, split, options=ScoreOptions(null=100)) -> dict:
    info = unit_information(model, split, 10, options=options)
    return {name: {"units": i.n_units, "mi_above": int((i.mi_q <= 0.05).sum()),
                   "kl_above": int((i.kl_q <= 0.05).sum()),
                   "median_mi": float(i.mi.median())} for name, i in info.items()}


def bias(model, val: Split) -> dict:
    order = torch.randperm(len(val), generator=torch.Generator().manual_seed(1))
    shuffled = Split(val.x, val.y[order])
    out = {}
    for bins in (2, 8):
        for correction in ("none", "miller-madow", "shuffle"):
            options = ScoreOptions(bins=bins, binning="quantile", bias_correction=correction)
            real = unit_information(model, val, 10, options=options)
            fake = unit_information(model, shuffled, 10, options=options)
            out[f"bins={bins} {correction}"] = {
                "real_median": float(torch.cat([i.mi for i in real.values()]).median()),
                "shuffled_median": float(torch.cat([i.mi for i in fake.values()]).median())}
    return out


def prune_order(model, data, amount: float, steps: int, seed: int) -> dict:
    info = unit_information(model, data.val, 10, options=ScoreOptions(null=100, seed=seed))
    example = data.val.x[:2]
    rankings = {
        # least significant first: p descending, then MI ascending
        "null p, then MI": {n: -(i.mi_p * 1e3) + i.mi / 1e3 for n, i in info.items()},
        "MI": {n: i.mi for n, i in info.items()},
        "random": {n: torch.rand(i.n_units, generator=torch.Generator().manual_seed(seed))
                   for n, i in info.items()},
    }
    out = {}
    for name, scores in rankings.items():
        plan = plan_layerwise({k: v.double() for k, v in scores.items()}, amounts=amount)
        pruned = apply_plan(copy.deepcopy(model), plan, example)
        one_shot = accuracy(pruned, data.test)
        tuned = finetune(pruned, data.train, steps, seed)
        out[name] = {"one_shot": one_shot, "finetuned": accuracy(tuned, data.test)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--amount", type=float, default=0.5)
    parser.add_argument("--finetune-steps", type=int, default=100)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--parts", default="cost,chance,mlp,digits",
                        help="comma-separated, of: cost, chance (ResNet-18), mlp, digits")
    parser.add_argument("--out", default="benchmarks/out/null.json")
    args = parser.parse_args()
    parts = args.parts.split(",")
    started = harness.loadavg()
    torch.set_num_threads(1)
    fashion = load_dataset("fashion-mnist", FASHION, seed=0)
    result: dict = {}

    val_img = adapted(fashion.val, 2000, 2)
    dense = Path("benchmarks/out/budget/resnet18-seed0-dense.pt")
    if dense.exists():
        resnet = load_checkpoint(dense).model.eval()
    else:
        from dataclasses import replace

        data = replace(fashion, train=adapted(fashion.train, 10000, 1), val=val_img,
                       test=adapted(fashion.test, 2000, 3))
        resnet = train_model(data, factory="torchvision.models:resnet18",
                             factory_kwargs={"num_classes": 10}, progress=False,
                             config=TrainConfig.for_factory_models(epochs=args.epochs)).model
    if "cost" in parts:
        result["cost_resnet18_2000"] = cost(resnet.eval(), val_img, args.repeat)
        print("cost", result["cost_resnet18_2000"], flush=True)
    if "chance" in parts:
        result["above_chance_resnet18"] = above_chance(resnet, val_img)
    if "digits" in parts:
        digits = load_dataset("digits", seed=0)
        torch.manual_seed(0)
        model = train_model(digits, "64-100-100-10", "relu", "l2", TrainConfig(epochs=20),
                            progress=False).model
        result["bias_digits"] = bias(model, digits.val)
        print("digits", result["bias_digits"], flush=True)

    result["mlp"] = []
    for seed in range(args.seeds if "mlp" in parts else 0):
        data = load_dataset("fashion-mnist", FASHION, seed=seed)
        torch.manual_seed(seed)
        mlp = train_model(data, "784-100-100-10", "relu", "l2",
                          TrainConfig(epochs=args.epochs, seed=seed), progress=False).model
        entry = {"seed": seed, "test_acc": accuracy(mlp, data.test),
                 "above_chance": above_chance(mlp, data.val),
                 "prune": prune_order(mlp, data, args.amount, args.finetune_steps, seed)}
        if seed == 0:
            entry["bias"] = bias(mlp, data.val)
        result["mlp"].append(entry)
        print(entry, flush=True)
    path = harness.write_result(args.out, vars(args), result, started_load=started)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
