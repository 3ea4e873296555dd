"""Speed of physically pruned models against the dense model (issue 6).

For the 784-100-100-10 MLP and the c32-c64-f128 CNN on 1x28x28 inputs, removes 25 / 50 / 75 /
90 % of the units of every hidden layer (seeded random units: dense kernels do not care which)
with :func:`prune_info.surgery.apply_plan` and reports parameters, MACs of one sample and CPU
latency at batch 1 and 256 of each pruned model against the dense one, beside the theoretical
MAC ratio (dense MACs / pruned MACs).

Target: for the MLP at 50 % removed and batch 256, speed-up (dense latency / pruned latency) at
least 0.7 x the MAC ratio.

Latency is timed with :mod:`prune_info.deploy.bench` (one call per model in turn, round-robin, so a
busy
phase of a shared machine slows all models alike; median of ``--repeat`` calls). The "floor" row
is the same architecture cut to 1 unit per layer: its latency is the fixed cost of a call
(Python dispatch of every module, allocation of outputs, the input layer of a CNN, which pruning
does not shrink), which bounds the speed-up of heavy pruning. ``predicted`` is the speed-up of
the simple model ``t = floor + (dense - floor) x MACs / dense MACs``. Measured speed-ups fall
below even that at high removal because a matrix product with few output columns runs far below
peak: the kernels work in blocks of 16 floats (one AVX-512 register), so a width of 10 or 25
leaves lanes idle, and the input batch (256 x 784 floats) is read and packed whatever the width.

    .venv/bin/python benchmarks/bench_prune.py [--threads 1] [--repeat 200] [--json out.json]

The headline figures (per model and removal: MAC ratio, speed-up and speed-up / MAC ratio at
each batch) go to ``benchmarks/results/`` (:func:`harness.record`), quoted by RESULTS.md;
``--json`` writes every row.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform

import harness
import numpy as np
import torch

from prune_info._torch import time_interleaved, timing_input, torch_threads, torch_timer
from prune_info.deploy.timing import latency_stats
from prune_info.nn import count_parameters, prunable_layers, total_macs
from prune_info.pruning.allocation import removal_count
from prune_info.surgery import PrunePlan, apply_plan
from prune_info.zoo import build_model, parse_arch

FRACTIONS = (0.25, 0.5, 0.75, 0.9)
INPUT_SHAPE = (1, 28, 28)


def random_plan(model: torch.nn.Module, fraction: float | None, seed: int = 0) -> PrunePlan:
    """Remove ``fraction`` of every hidden layer's units at random; None keeps 1 unit each."""
    gen = torch.Generator().manual_seed(seed)
    remove, widths = {}, {}
    for layer in prunable_layers(model):
        n = layer.n_units
        k = n - 1 if fraction is None else removal_count(n, fraction)
        remove[layer.name] = torch.randperm(n, generator=gen)[:k]
        widths[layer.name] = n
    return PrunePlan.from_indices(remove, widths)


def bench_family(spec: str, batches: list[int], repeat: int, warmup: int,
                 budget_s: float) -> list[dict]:
    torch.manual_seed(0)
    dense = build_model(parse_arch(spec, INPUT_SHAPE, 10)).eval()
    example = torch.zeros(2, *INPUT_SHAPE)
    variants = [("dense", 0.0, dense)]
    for fraction in FRACTIONS:
        pruned = apply_plan(copy.deepcopy(dense), random_plan(dense, fraction), example)
        variants.append((f"{int(fraction * 100)} %", fraction, pruned))
    variants.append(("floor", None, apply_plan(copy.deepcopy(dense), random_plan(dense, None),
                                               example)))
    rows = [{"model": spec, "removed": name,
             "widths": [layer.n_units for layer in prunable_layers(m)],
             "params": count_parameters(m), "macs": total_macs(m, INPUT_SHAPE)}
            for name, _, m in variants]
    for row in rows:
        row["mac_ratio"] = rows[0]["macs"] / row["macs"]
    for batch in batches:
        x = timing_input(INPUT_SHAPE, batch)
        timers = [torch_timer(m, x) for _, _, m in variants]
        # cap the repeats so that one (model, batch) cell takes about `budget_s` seconds
        per_round_ms = sum(float(np.median([t() for _ in range(3)])) for t in timers)
        n = int(min(repeat, max(15, budget_s * 1e3 / per_round_ms)))
        times = time_interleaved(timers, n, warmup)
        stats = [latency_stats(t, batch) for t in times]
        dense_ms, floor_ms = stats[0]["median_ms"], stats[-1]["median_ms"]
        for row, st in zip(rows, stats):
            predicted_ms = floor_ms + (dense_ms - floor_ms) / row["mac_ratio"]
            row[f"b{batch}"] = {
                "repeat": n, "median_ms": st["median_ms"], "p90_ms": st["p90_ms"],
                "speedup": dense_ms / st["median_ms"],
                "efficiency": dense_ms / st["median_ms"] / row["mac_ratio"],
                "predicted_speedup": dense_ms / predicted_ms,
            }
    return rows


def print_rows(rows: list[dict], batches: list[int]) -> None:
    head = f"{'model':<15} {'removed':<7} {'widths':<16} {'params':>8} {'MACs':>10} {'MAC x':>6}"
    for b in batches:
        head += f" | b{b:<4} {'ms':>8} {'speed-up':>8} {'/MAC x':>6} {'pred.':>6}"
    print(head)
    for r in rows:
        line = (f"{r['model']:<15} {r['removed']:<7} {'-'.join(map(str, r['widths'])):<16} "
                f"{r['params']:>8,} {r['macs']:>10,} {r['mac_ratio']:>6.2f}")
        for b in batches:
            t = r[f"b{b}"]
            line += (f" |       {t['median_ms']:>8.4f} {t['speedup']:>8.2f} "
                     f"{t['efficiency']:>6.2f} {t['predicted_speedup']:>6.2f}")
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads (default 1)")
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--budget", type=float, default=15.0,
                        help="seconds of timing per model family and batch size (fewer repeats "
                             "for slow calls)")
    parser.add_argument("--batches", default="1,256")
    parser.add_argument("--json", default=None, help="also write the rows to this file")
    args = parser.parse_args()
    batches = [int(b) for b in args.batches.split(",")]
    started = harness.loadavg()
    with torch_threads(args.threads):
        print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} "
              f"thread(s), torch {torch.__version__}, median of up to {args.repeat} calls "
              f"(round-robin, about {args.budget:g} s per family and batch)")
        rows = []
        for spec in ("784-100-100-10", "c32-c64-f128"):
            rows += bench_family(spec, batches, args.repeat, args.warmup, args.budget)
    print_rows(rows, batches)
    mlp50 = next(r for r in rows if r["model"] == "784-100-100-10" and r["removed"] == "50 %")
    if 256 in batches:
        eff = mlp50["b256"]["efficiency"]
        print(f"target: MLP 50 % removed, batch 256: speed-up {mlp50['b256']['speedup']:.2f} = "
              f"{eff:.2f} x MAC ratio {mlp50['mac_ratio']:.2f} -> "
              f"{'PASS' if eff >= 0.7 else 'FAIL'} (need >= 0.7)")
    harness.record("bench_prune", {k: v for k, v in vars(args).items() if k != "json"}, {
        f"{r['model']} {r['removed']}": {
            "mac_ratio": round(r["mac_ratio"], 3),
            **{f"b{b}": {"speedup": round(r[f"b{b}"]["speedup"], 3),
                         "per_mac_ratio": round(r[f"b{b}"]["efficiency"], 3)}
               for b in batches}}
        for r in rows if r["removed"] != "dense"}, started_load=started)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"threads": args.threads, "repeat": args.repeat, "rows": rows}, fh,
                      indent=2, default=lambda v: float(np.asarray(v)))


if __name__ == "__main__":
    main()
