"""The thread policy under a shared machine: ablation curves on the free cores against a fixed
two threads, in one run (issue #15, "robust under load").

A 784-100-100-10 FashionMNIST model (1 epoch), ``--random`` random orderings of fc1 on the 10,000
test images, by the prefix-sum and the batched path, alternately with the default policy
(``prune_info._torch.shared_threads``: the cores free when the computation starts) and with
``--threads`` fixed threads; the counts are checked equal. To load the machine on purpose, run a
CPU-bound process beside it, e.g. ``python3 -c 'while True: pass' &``.

    .venv/bin/python benchmarks/bench_threads.py --repeat 2

The figures go to ``benchmarks/results/`` (:func:`harness.record`), quoted by RESULTS.md.
"""

from __future__ import annotations

import argparse
import time

import harness
import torch

from prune_info import _torch
from prune_info.analysis.curves import layerwise_curves, random_orders
from prune_info.data import load_dataset
from prune_info.training.loop import TrainConfig, train_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--random", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2, help="the fixed setting compared")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)  # the most either variant may use
    data = load_dataset("fashion-mnist")
    model = train_model(data, "784-100-100-10", config=TrainConfig(epochs=1),
                        progress=False).model.eval()
    orders = random_orders(100, args.random, seed=0)
    started = harness.loadavg()
    times: dict[str, list[float]] = {}
    reference = None
    for _ in range(args.repeat):
        for policy in ("free cores", f"{args.threads} threads"):
            with _torch.fixed_threads(args.threads if policy != "free cores" else None):
                for method in ("prefix", "batched"):
                    start = time.perf_counter()
                    counts = layerwise_curves(model, "fc1", orders, data.test, method=method)
                    times.setdefault(f"{method}, {policy}", []).append(
                        time.perf_counter() - start)
                    reference = counts if reference is None else reference
                    assert torch.equal(counts, reference)
    seconds = {k: [round(t, 2) for t in v] for k, v in times.items()}
    for key, values in seconds.items():
        print(f"{key}: {values} s")
    fixed = f"{args.threads} threads"
    harness.record("bench_threads", vars(args), {
        "seconds": seconds,
        # the policy's gain, per path: best time with fixed threads / best on the free cores
        "fixed_over_free": {m: round(min(times[f"{m}, {fixed}"])
                                     / min(times[f"{m}, free cores"]), 3)
                            for m in ("prefix", "batched")}}, started_load=started)


if __name__ == "__main__":
    main()
