"""Benchmark: the multi-seed FashionMNIST study of Amjad et al., end to end, timed.

Default: 784-100-100-10, ReLU, l2, 50 seeds x 20 epochs (batched training), entropy / mi / kl
scores on the validation set, every layer-wise curve (3 criteria x 2 orders + 20 random) on the
test set, MG@80 with Wilcoxon p-values and the KS test between the layers' random curves. The
same as::

    prune-info study --data fashion-mnist --arch 784-100-100-10 --act relu --reg l2 \\
        --seeds 50 --epochs 20 --at 80 --out DIR

Usage::

    nohup .venv/bin/python benchmarks/bench_study.py --out /tmp/study50 > study50.log 2>&1 &

Run it again with the same ``--out`` after an interruption: it resumes (the times then cover the
resumed part only). Prints the table and a JSON summary with the time of each phase.

``--train-speed S [--reg R]`` instead times one epoch of S seeds trained as one batched model
against one epoch of single-seed training (``prune_info.training.loop.fit``), and checks that
seed 0 agrees. ``--train-speed S --split`` instead times one epoch of the S-seed stack on the
intra-op threads against two stacks of S/2 seeds trained at once in two Python threads of one
intra-op thread each (an arrangement measured and not kept: see RESULTS.md).

Each mode's figures go to ``benchmarks/results/`` (:func:`harness.record`), quoted by
RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time

import harness
import torch

from prune_info._torch import torch_threads
from prune_info.experiments.study import StudyConfig, run_study
from prune_info.training.loop import TrainConfig


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="study directory")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--seeds", type=int, default=50)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--random", type=int, default=20)
    parser.add_argument("--at", type=int, default=80)
    parser.add_argument("--seed-batch", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--progress", action="store_true")
    parser.add_argument("--train-speed", type=int, default=None, metavar="S",
                        help="only compare batched and single-seed training speed on S seeds")
    parser.add_argument("--reg", default="l2",
                        help="regularisation of the --train-speed networks (l2, dropout, "
                             "bn-dropout)")
    parser.add_argument("--split", action="store_true",
                        help="with --train-speed: one stack against two half stacks in two "
                             "Python threads")
    args = parser.parse_args(argv)
    if args.split and not args.train_speed:
        parser.error("--split needs --train-speed S")
    if args.threads:
        torch.set_num_threads(args.threads)
    started = harness.loadavg()
    if args.train_speed and args.split:
        summary = split_speed(args.train_speed, args.data_dir, args.reg)
    elif args.train_speed:
        summary = train_speed(args.train_speed, args.data_dir, args.reg)
    else:
        summary = study(args)
    settings = {k: v for k, v in vars(args).items() if k not in ("out", "data_dir", "progress")}
    harness.record("bench_study", settings, summary, started_load=started)
    return summary


def study(args: argparse.Namespace) -> dict:
    """The study itself, timed by phase."""
    config = StudyConfig(data="fashion-mnist", arch="784-100-100-10", acts=("relu",),
                         regs=("l2",), seeds=tuple(range(args.seeds)),
                         train=TrainConfig(epochs=args.epochs), random=args.random)
    marks: dict[str, float] = {}
    counts = {"epoch": 0, "trained": 0, "curves": 0, "skipped": 0}

    def on_event(kind: str, details: dict) -> None:
        now = time.perf_counter()
        marks.setdefault(f"first_{kind}", now)
        marks[f"last_{kind}"] = now
        if kind in counts:
            counts[kind] += 1
        if kind in ("epoch", "curves"):
            print(f"[{now - start:7.1f} s] {kind} {details}", file=sys.stderr, flush=True)

    start = time.perf_counter()
    results = run_study(config, args.out, at=[args.at], data_dir=args.data_dir,
                        seed_batch=args.seed_batch, progress=args.progress, on_event=on_event)
    total = time.perf_counter() - start
    train_s = marks.get("last_trained", start) - marks.get("first_train", start)
    curves_s = (marks.get("last_curves", start) - marks.get("last_trained", start)
                if "last_curves" in marks else 0.0)
    summary = {
        "torch_threads": torch.get_num_threads(),
        "total_s": round(total, 1),
        "train_s": round(train_s, 1),
        "scores_and_curves_s": round(curves_s, 1),
        "events": counts,
        "gaps": {
            f"{scope}/{g['label']}": g["text"]
            for scope, block in results.scenarios["relu-l2"].modes["layerwise"].items()
            for g in block.gaps},
        "ks": [f"{t['a']} vs {t['b']}: {t['text']}" for t in results.ks],
        "test_acc": results.scenarios["relu-l2"].test_acc,
        "figures": results.figures,
    }
    print(results.table())
    print(json.dumps(summary, indent=2))
    return summary


def train_speed(n_seeds: int, data_dir: str | None, reg: str = "l2") -> dict:
    """One epoch: S seeds batched vs one seed alone (x S), same data, same settings."""
    from prune_info.data import load_dataset
    from prune_info.training.batched import train_seeds
    from prune_info.training.loop import TrainConfig, train_model

    data = load_dataset("fashion-mnist", data_dir)
    config = TrainConfig(epochs=1)
    start = time.perf_counter()
    alone = train_model(data, "784-100-100-10", "relu", reg, TrainConfig(epochs=1, seed=0),
                        progress=False)
    single_s = time.perf_counter() - start
    start = time.perf_counter()
    stacked = train_seeds(data, "784-100-100-10", list(range(n_seeds)), "relu", reg, config,
                          progress=False)
    batched_s = time.perf_counter() - start
    a, b = alone.model.state_dict(), stacked[0].model.state_dict()
    result = {
        "seeds": n_seeds, "reg": reg, "trained": stacked[0].metrics.get("trained", "alone"),
        "torch_threads": torch.get_num_threads(),
        "load_average": os.getloadavg(),
        "single_seed_epoch_s": round(single_s, 2),
        "batched_epoch_s": round(batched_s, 2),
        "batched_s_per_seed": round(batched_s / n_seeds, 3),
        "speedup": round(single_s * n_seeds / batched_s, 2),
        "seed0_max_weight_difference": max(float((a[k] - b[k]).abs().max()) for k in a),
        "seed0_test_acc": [alone.metrics["test_acc"], stacked[0].metrics["test_acc"]],
    }
    print(json.dumps(result, indent=2))
    return result


def split_speed(n_seeds: int, data_dir: str | None, reg: str = "l2") -> dict:
    """One epoch: one S-seed stack on the intra-op threads, then two S/2-seed stacks at once in
    two Python threads with one intra-op thread each (the same seeds, paired in one run)."""
    from prune_info.data import load_dataset
    from prune_info.training.batched import StackedMLP, train_stacked
    from prune_info.training.loop import TrainConfig
    from prune_info.zoo import parse_arch

    data = load_dataset("fashion-mnist", data_dir)
    config = TrainConfig(epochs=1)
    arch = parse_arch("784-100-100-10", data.input_shape, data.n_classes, "relu", reg)
    seeds = list(range(n_seeds))
    threads = torch.get_num_threads()
    load_before = os.getloadavg()
    start = time.perf_counter()
    train_stacked(StackedMLP(arch, seeds), data, config, progress=False)
    one_s = time.perf_counter() - start
    halves = [StackedMLP(arch, seeds[: n_seeds // 2]), StackedMLP(arch, seeds[n_seeds // 2 :])]
    workers = [threading.Thread(target=train_stacked, args=(half, data, config),
                                kwargs={"progress": False}) for half in halves]
    with torch_threads(1):
        start = time.perf_counter()
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        split_s = time.perf_counter() - start
    result = {
        "seeds": n_seeds, "reg": reg, "torch_threads": threads,
        "load_average": [load_before, os.getloadavg()],
        "one_stack_epoch_s": round(one_s, 2),
        "two_half_stacks_in_threads_epoch_s": round(split_s, 2),
        "ratio": round(split_s / one_s, 3),
        "gemm_2048_gflops": {n: _gemm_gflops(n) for n in sorted({1, threads})},
    }
    print(json.dumps(result, indent=2))
    return result


def _gemm_gflops(threads: int, n: int = 2048, repeat: int = 10) -> float:
    """The machine's float32 matrix-product rate on ``threads`` threads (one n x n GEMM), to
    compare runs on different days."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    with torch_threads(threads):
        a @ b
        start = time.perf_counter()
        for _ in range(repeat):
            a @ b
        seconds = (time.perf_counter() - start) / repeat
    return round(2 * n**3 / seconds / 1e9, 1)


if __name__ == "__main__":
    main()
