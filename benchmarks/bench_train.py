"""Training throughput of 784-100-100-10 on FashionMNIST at batch 32 (issue: foundation).

Target on 2 CPU cores: one epoch of 48,000 samples in under 3 s.

    .venv/bin/python benchmarks/bench_train.py [--epochs 3] [--device cpu|cuda]

The figures go to ``benchmarks/results/`` (:func:`harness.record`), quoted by RESULTS.md.
"""

from __future__ import annotations

import argparse
import platform
import time

import harness
import torch

from prune_info._torch import resolve_device
from prune_info.data import load_dataset
from prune_info.training.loop import TrainConfig, fit
from prune_info.zoo import build_model, parse_arch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = resolve_device(args.device)
    started = harness.loadavg()
    data = load_dataset("fashion-mnist")
    arch = parse_arch("784-100-100-10", data.input_shape, 10, "relu", "l2")
    times = []
    for epoch in range(args.epochs):
        torch.manual_seed(epoch)
        model = build_model(arch)
        start = time.perf_counter()
        fit(model, data, TrainConfig(epochs=1, seed=epoch), reg="l2", device=device,
            progress=False)
        times.append(time.perf_counter() - start)
    best, median = min(times), sorted(times)[len(times) // 2]
    n = len(data.train)
    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} "
          f"threads, device {device}, torch {torch.__version__}")
    print(f"epoch of {n} samples at batch 32 (incl. validation pass): median {median:.2f} s, "
          f"best {best:.2f} s, {n / median:,.0f} samples/s; target < 3 s: "
          f"{'met' if median < 3 else 'NOT met'}")
    harness.record("bench_train", vars(args), {
        "samples": n, "threads": torch.get_num_threads(), "epoch_s_median": round(median, 3),
        "epoch_s_best": round(best, 3), "samples_per_s": round(n / median),
        "target_s": 3, "met": median < 3}, started_load=started)


if __name__ == "__main__":
    main()
