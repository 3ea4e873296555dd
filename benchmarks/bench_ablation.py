"""Benchmark: every layer-wise ablation curve of a 784-100-100-10 FashionMNIST model.

For both hidden layers: 3 criteria (entropy, mi, kl) x 2 orders + 20 random orderings, every k
from 0 to 100, on the 10,000 test images; computed by the prefix-sum path (the default), by the
batched rest-of-network path, and by the naive loop (mask k units, run the whole network), in one
run. Checks that all three give identical counts and prints the times as JSON.

``--network`` times the whole-network curves instead (both layers' 200 units ranked together,
k = 0..200, the ReLU/Dropout model of the first paper's Simpson's-paradox figure): the prefix path
against the batched path (and the naive loop on ``--naive-orders`` orderings, extrapolated).

Usage::

    .venv/bin/python benchmarks/bench_ablation.py                   # the full naive loop
    .venv/bin/python benchmarks/bench_ablation.py --naive-orders 4  # naive on 4 orderings per
                                                                    # layer, extrapolated
    .venv/bin/python benchmarks/bench_ablation.py --network --naive-orders 2

Timings are wall-clock on whatever the machine is doing at the time; ``--threads`` sets torch's
intra-op threads (default: torch's own choice). The figures go to ``benchmarks/results/``
(:func:`harness.record`), quoted by RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import harness
import torch

from prune_info.analysis.curves import (
    layerwise_curves,
    naive_curves,
    network_curves,
    network_orders,
    random_orders,
)
from prune_info.criteria.context import compute_scores
from prune_info.criteria.ranking import rank_units
from prune_info.data import load_dataset
from prune_info.nn import prunable_layers
from prune_info.training.loop import TrainConfig, train_model


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--epochs", type=int, default=3, help="training epochs of the model")
    parser.add_argument("--random", type=int, default=20)
    parser.add_argument("--naive-orders", type=int, default=None,
                        help="run the naive loop on this many orderings per layer only and "
                             "extrapolate (default: all)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default=None, help="also write the JSON here")
    parser.add_argument("--network", action="store_true",
                        help="whole-network curves (prefix vs batched) instead of layer-wise")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    started = harness.loadavg()
    if args.network:
        return _report(_network(args), args, started)

    data = load_dataset("fashion-mnist", args.data_dir)
    start = time.perf_counter()
    ckpt = train_model(data, "784-100-100-10", "relu", "l2",
                       TrainConfig(epochs=args.epochs, seed=0), progress=False)
    train_s = time.perf_counter() - start
    model = ckpt.model.eval()
    start = time.perf_counter()
    scores = compute_scores(model, data.val, ["entropy", "mi", "kl"], n_classes=10)
    score_s = time.perf_counter() - start

    result = {
        "what": "layer-wise curves, 784-100-100-10 ReLU/l2 FashionMNIST, 10,000 test images, "
                f"3 criteria x 2 orders + {args.random} random, k = 0..100, both hidden layers",
        "torch_threads": torch.get_num_threads(),
        "model_test_acc": ckpt.metrics["test_acc"], "train_s": round(train_s, 1),
        "score_s": round(score_s, 2), "layers": {},
    }
    totals = {"prefix": 0.0, "batched": 0.0, "naive": 0.0}
    for layer in ("fc1", "fc2"):
        ranked = [rank_units(scores[c][layer], o) for c in ("entropy", "mi", "kl")
                  for o in ("low", "high")]
        orders = torch.cat([torch.stack(ranked), random_orders(100, args.random, seed=0)])
        entry = {"orderings": orders.shape[0], "points": orders.shape[0] * 101}
        info = {}
        t = time.perf_counter()
        fast = layerwise_curves(model, layer, orders, data.test, info=info)
        entry["prefix_s"] = time.perf_counter() - t
        entry["prefix_rechecked_predictions"] = info["rechecked"]
        t = time.perf_counter()
        batched = layerwise_curves(model, layer, orders, data.test, method="batched")
        entry["batched_s"] = time.perf_counter() - t
        n_naive = orders.shape[0] if args.naive_orders is None else min(args.naive_orders,
                                                                         orders.shape[0])
        t = time.perf_counter()
        naive = naive_curves(model, orders[:n_naive], data.test, layers=layer)
        measured = time.perf_counter() - t
        entry["naive_orderings_run"] = n_naive
        entry["naive_s"] = measured * orders.shape[0] / n_naive
        entry["naive_extrapolated"] = n_naive < orders.shape[0]
        entry["prefix_equals_naive"] = bool(torch.equal(fast[:n_naive], naive))
        entry["batched_equals_naive"] = bool(torch.equal(batched[:n_naive], naive))
        entry["prefix_equals_batched"] = bool(torch.equal(fast, batched))
        for key in totals:
            totals[key] += entry[f"{key}_s"]
        entry = {k: (round(v, 2) if isinstance(v, float) else v) for k, v in entry.items()}
        result["layers"][layer] = entry
        print(json.dumps({layer: entry}), file=sys.stderr, flush=True)
    result["total_s"] = {k: round(v, 1) for k, v in totals.items()}
    result["speedup_vs_naive"] = {
        "prefix": round(totals["naive"] / totals["prefix"], 1),
        "batched": round(totals["naive"] / totals["batched"], 1),
    }
    return _report(result, args, started)


def _network(args: argparse.Namespace) -> dict:
    data = load_dataset("fashion-mnist", args.data_dir)
    ckpt = train_model(data, "784-100-100-10", "relu", "dropout",
                       TrainConfig(epochs=args.epochs, seed=0), progress=False)
    model = ckpt.model.eval()
    scores = compute_scores(model, data.val, ["entropy", "mi", "kl"], n_classes=10)
    infos = prunable_layers(model)
    ranked = [network_orders({i.name: scores[c][i.name] for i in infos}, infos, o)
              for c in ("entropy", "mi", "kl") for o in ("low", "high")]
    orders = torch.cat([torch.stack(ranked), random_orders(200, args.random, seed=0)])
    result: dict = {
        "what": "whole-network curves, 784-100-100-10 ReLU/dropout FashionMNIST, 10,000 test "
                f"images, 3 criteria x 2 orders + {args.random} random, k = 0..200",
        "torch_threads": torch.get_num_threads(),
        "model_test_acc": ckpt.metrics["test_acc"], "runs": [],
    }
    counts = {}
    for _ in range(2):  # alternately, twice: the machine's load drifts
        for method in ("prefix", "batched"):
            info: dict = {}
            t = time.perf_counter()
            counts[method] = network_curves(model, orders, data.test, method=method, info=info)
            result["runs"].append({"method": method, "s": round(time.perf_counter() - t, 2),
                                   "rechecked": info["rechecked"]})
            print(json.dumps(result["runs"][-1]), file=sys.stderr, flush=True)
    result["prefix_equals_batched"] = bool(torch.equal(counts["prefix"], counts["batched"]))
    if args.naive_orders:
        n = min(args.naive_orders, orders.shape[0])
        t = time.perf_counter()
        naive = naive_curves(model, orders[:n], data.test)
        result["naive_s_extrapolated"] = round((time.perf_counter() - t) * orders.shape[0] / n, 1)
        result["prefix_equals_naive"] = bool(torch.equal(counts["prefix"][:n], naive))
    return result


def _report(result: dict, args: argparse.Namespace, started: list[float] | None) -> dict:
    """Print the result as JSON, record it (and write it to ``--out``)."""
    text = json.dumps(result, indent=2)
    print(text)
    harness.record("bench_ablation", {k: v for k, v in vars(args).items() if k != "out"},
                   result, started_load=started)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text + "\n")
    return result


if __name__ == "__main__":
    main()
