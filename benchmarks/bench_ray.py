"""Benchmark: one study run in this process and on a local Ray cluster, same machine, timed.

Default: FashionMNIST 784-100-100-10, 2 scenarios (ReLU and sigmoid, l2), 20 seeds each,
1 epoch (batched training, all seeds of a scenario in one task, as without --seed-batch),
mi scores, layer-wise curves (mi low / high and 5 random orderings), MG@80. The same as::

    prune-info study --data fashion-mnist --act relu,sigmoid --reg l2 --seeds 20 --epochs 1 \\
        --criteria mi --random 5 --at 80 --out DIR [--executor ray]

run twice into fresh directories: with the local executor (this process, on
``--local-threads`` torch threads: 1 by default, the thread count of each Ray task, so that the
two runs do the same arithmetic) and with ``--executor ray`` on a local cluster of
``--workers`` CPUs (each task one CPU). Then ``--empty`` empty tasks through each executor give
the scheduling cost per task. The sizes keep the whole benchmark near 10 minutes on a loaded
2-core machine.

Usage::

    nohup .venv/bin/python benchmarks/bench_ray.py --out /tmp/bench-ray > bench-ray.log 2>&1 &

Prints one JSON summary: wall time of each run and their ratio, the cluster's start-up, the
time to the first result, the overhead per empty task, and whether both runs gave the same
numbers, also recorded in ``benchmarks/results/`` (:func:`harness.record`), quoted by
RESULTS.md. Needs the ``ray`` extra.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import time
from pathlib import Path

import harness
import torch

from prune_info.experiments.executor import LocalExecutor, Task
from prune_info.experiments.study import StudyConfig, run_study
from prune_info.training.loop import TrainConfig


def _noop() -> None:
    return None


def _timed_study(config: StudyConfig, out: Path, executor, data_dir: str | None,
                 at: int) -> dict:
    marks: dict[str, float] = {}

    def on_event(kind: str, details: dict) -> None:
        now = time.perf_counter()
        marks.setdefault(f"first_{kind}", now)
        marks[f"last_{kind}"] = now
        if kind in ("trained", "curves"):
            print(f"[{executor.name} {now - start:7.1f} s] {kind} {details}", file=sys.stderr,
                  flush=True)

    start = time.perf_counter()
    results = run_study(config, out, at=[at], data_dir=data_dir, progress=False,
                        on_event=on_event, executor=executor)
    total = time.perf_counter() - start
    return {"wall_s": round(total, 1),
            "train_s": round(marks["last_trained"] - start, 1),
            "curves_s": round(marks["last_curves"] - marks["last_trained"], 1),
            "results": {k: v for k, v in results.to_dict().items() if k != "figures"}}


def _per_task(executor, n: int) -> float:
    """Seconds per empty task, after a warm-up round (workers started)."""
    tasks = [Task(f"empty-{i}", _noop) for i in range(n)]
    executor.run(tasks[: max(2, n // 10)], lambda task, result: None)
    start = time.perf_counter()
    executor.run(tasks, lambda task, result: None)
    return (time.perf_counter() - start) / n


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="directory for the two study directories")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--criteria", default="mi")
    parser.add_argument("--random", type=int, default=5)
    parser.add_argument("--at", type=int, default=80)
    parser.add_argument("--workers", type=int, default=2, help="CPUs of the local Ray cluster")
    parser.add_argument("--empty", type=int, default=200, help="empty tasks timed per executor")
    parser.add_argument("--local-threads", type=int, default=1,
                        help="torch threads of the local run (0: leave the machine's default)")
    args = parser.parse_args(argv)
    if args.local_threads:
        torch.set_num_threads(args.local_threads)

    import ray

    from prune_info.experiments.ray_executor import RayExecutor

    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    config = StudyConfig(data="fashion-mnist", arch="784-100-100-10", acts=("relu", "sigmoid"),
                         regs=("l2",), seeds=tuple(range(args.seeds)),
                         train=TrainConfig(epochs=args.epochs),
                         criteria=tuple(args.criteria.split(",")), random=args.random)
    started = harness.loadavg()
    summary: dict = {"torch_threads_local": torch.get_num_threads(),
                     "ray_workers": args.workers}

    local = _timed_study(config, out / "local", LocalExecutor(), args.data_dir, args.at)

    start = time.perf_counter()
    executor = RayExecutor(num_cpus=args.workers)
    startup = time.perf_counter() - start
    remote = _timed_study(config, out / "ray", executor, args.data_dir, args.at)
    remote["wall_s_with_startup"] = round(remote["wall_s"] + startup, 1)

    empty_ray = _per_task(executor, args.empty)
    empty_local = _per_task(LocalExecutor(), args.empty)
    ray.shutdown()
    logging.shutdown()

    n_tasks = len(config.scenarios()) * (1 + args.seeds)  # one training task per scenario
    same = local.pop("results") == remote.pop("results")
    summary.update({
        "local": local, "ray": remote, "ray_startup_s": round(startup, 1),
        "ratio_ray_over_local": round(remote["wall_s_with_startup"] / local["wall_s"], 3),
        "tasks": n_tasks,
        "empty_task_ms": {"ray": round(1000 * empty_ray, 3),
                          "local": round(1000 * empty_local, 4)},
        "scheduling_share_of_local_wall": round(n_tasks * empty_ray / local["wall_s"], 5),
        "startup_share_of_local_wall": round(startup / local["wall_s"], 4),
        "identical_results": same,
    })
    print(json.dumps(summary, indent=2))
    harness.record("bench_ray", {k: v for k, v in vars(args).items()
                                 if k not in ("out", "data_dir")}, summary,
                   started_load=started)
    return summary


if __name__ == "__main__":
    main()
