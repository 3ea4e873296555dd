"""Robust under load (issue #15): ``ablate`` and ``study`` work alone, then beside exactly one
competing CPU-bound process, in one run.

The competitor is ``python3 -c 'while True: pass'`` (one core busy). Measured: 8 random
ablation curves of fc1 (784-100-100-10 FashionMNIST, 1 epoch, 10,000 test images; prefix-sum
path, best of 2), and a study (digits, 64-100-100-10, 20 seeds x 10 epochs, mi, 5 random
orderings), each run once untimed first (imports, caches);
alone and loaded with the default thread policy, and loaded with 2 fixed threads. On 2 cores one
competitor takes one core, so about 2x is what the lost core explains.

    .venv/bin/python benchmarks/bench_load.py

The figures go to ``benchmarks/results/`` (:func:`harness.record`), quoted by RESULTS.md.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import harness

from prune_info import _torch
from prune_info.analysis.curves import layerwise_curves, random_orders
from prune_info.data import load_dataset
from prune_info.experiments.study import StudyConfig, run_study
from prune_info.training.loop import TrainConfig, train_model


def main() -> None:
    started = harness.loadavg()
    data = load_dataset("fashion-mnist")
    model = train_model(data, "784-100-100-10", config=TrainConfig(epochs=1),
                        progress=False).model.eval()
    orders = random_orders(100, 8, seed=0)
    config = StudyConfig(data="digits", arch="64-100-100-10", seeds=tuple(range(20)),
                         train=TrainConfig(epochs=10), random=5, criteria=("mi",))

    def ablate() -> float:
        times = []
        for _ in range(2):
            start = time.perf_counter()
            layerwise_curves(model, "fc1", orders, data.test, method="prefix")
            times.append(time.perf_counter() - start)
        return min(times)

    def study() -> float:
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            run_study(config, Path(tmp) / "s", progress=False)
            return time.perf_counter() - start

    ablate()
    study()  # warm-up, untimed
    out: dict = {}
    out["alone"] = {"ablate": ablate(), "study": study()}
    competitor = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(2)
        out["load_with_competitor"] = harness.loadavg()
        out["one competitor, free cores"] = {"ablate": ablate(), "study": study()}
        with _torch.fixed_threads(2):
            out["one competitor, 2 fixed threads"] = {"ablate": ablate(), "study": study()}
    finally:
        competitor.kill()
    for key in ("one competitor, free cores", "one competitor, 2 fixed threads"):
        out[key]["slowdown"] = {k: round(out[key][k] / out["alone"][k], 2)
                                for k in ("ablate", "study")}
    for key in ("alone", "one competitor, free cores", "one competitor, 2 fixed threads"):
        out[key].update({k: round(out[key][k], 2) for k in ("ablate", "study")})
    for key, value in out.items():
        print(f"{key}: {value}")
    harness.record("bench_load", {}, out, started_load=started)


if __name__ == "__main__":
    main()
