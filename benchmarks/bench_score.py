"""Cost of ``score`` (entropy + MI + KL) relative to one plain forward pass (issue 3).

For 784-100-100-10 and c32-c64-f128 on the 12,000 FashionMNIST validation samples, one run
times, alternately and ``--repeats`` times each:

* a plain forward pass over the validation set (eval mode, no grad, batches of
  ``--batch-size``), and
* :func:`prune_info.criteria.context.compute_scores` with ``entropy, mi, kl`` (one forward pass with
  hooks, count tables, measures), same batches;

and prints the median of each and their ratio (the target: at most 1.3 on CPU), with the median
of the per-repeat ratios and the ratio of the best times as checks against noise.

On a shared CPU, multi-threaded timings mostly measure waiting for descheduled worker threads
(on 2 busy cores a plain forward pass of 784-100-100-10 took 120-500 ms with two threads and
30-80 ms with one); ``--threads 1`` gives steadier numbers there.

The models are trained briefly first (``--train-epochs`` on ``--train-samples`` training
samples, so that the units have realistic activity); timing does not depend on accuracy.

    .venv/bin/python benchmarks/bench_score.py [--repeats 11] [--threads N] [--device cpu]

The figures go to ``benchmarks/results/`` (:func:`harness.record`), quoted by RESULTS.md.
"""

from __future__ import annotations

import argparse
import platform
import shlex
import statistics
import sys
import time
from dataclasses import replace

import harness
import torch

from prune_info._torch import resolve_device
from prune_info.criteria.context import compute_scores
from prune_info.criteria.options import ScoreOptions
from prune_info.data import load_dataset
from prune_info.training.loop import TrainConfig, fit
from prune_info.zoo import build_model, parse_arch

ARCHS = ("784-100-100-10", "c32-c64-f128")


@torch.no_grad()
def plain_forward(model, x, batch_size, device) -> None:
    model.eval()
    for start in range(0, len(x), batch_size):
        model(x[start : start + batch_size].to(device))
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench(spec, data, args, device) -> dict:
    arch = parse_arch(spec, data.input_shape, data.n_classes, "relu", "none")
    torch.manual_seed(0)
    model = build_model(arch)
    if args.train_epochs:
        n = min(args.train_samples, len(data.train))
        subset = replace(data, train=type(data.train)(data.train.x[:n], data.train.y[:n]))
        fit(model, subset, TrainConfig(epochs=args.train_epochs, seed=0), device=device,
            progress=False)
    model.to(device).eval()
    val = data.val
    options = ScoreOptions(batch_size=args.batch_size, device=str(device))
    criteria = ["entropy", "mi", "kl"]

    def score():
        compute_scores(model, val, criteria, n_classes=data.n_classes, options=options)
        if device.type == "cuda":
            torch.cuda.synchronize()

    def forward():
        plain_forward(model, val.x, args.batch_size, device)

    forward(), score()  # warm-up
    t_fwd, t_score = [], []
    for _ in range(args.repeats):
        t_fwd.append(timed(forward))
        t_score.append(timed(score))
    fwd, sco = statistics.median(t_fwd), statistics.median(t_score)
    return {
        "arch": spec,
        "forward_ms": 1e3 * fwd,
        "score_ms": 1e3 * sco,
        "ratio": sco / fwd,
        "paired_ratio": statistics.median(s / f for s, f in zip(t_score, t_fwd)),
        "best_ratio": min(t_score) / min(t_fwd),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--train-epochs", type=int, default=1)
    parser.add_argument("--train-samples", type=int, default=12000)
    parser.add_argument("--arch", action="append", default=None,
                        help=f"architecture (repeatable; default {', '.join(ARCHS)})")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    started = harness.loadavg()
    data = load_dataset("fashion-mnist")

    print("command:", shlex.join([".venv/bin/python", "benchmarks/bench_score.py",
                                  *sys.argv[1:]]))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}, "
          f"{platform.processor() or platform.machine()}")
    print(f"data: fashion-mnist validation, {len(data.val)} samples; batch {args.batch_size}; "
          f"median of {args.repeats} repeats; criteria entropy, mi, kl (1-bit quantiser)")
    print(f"{'model':<16} {'forward ms':>11} {'score ms':>9} {'ratio':>6} {'paired':>7} "
          f"{'best':>5}")
    worst = 0.0
    figures = {}
    for spec in args.arch or ARCHS:
        r = bench(spec, data, args, device)
        worst = max(worst, r["ratio"])
        print(f"{r['arch']:<16} {r['forward_ms']:>11.1f} {r['score_ms']:>9.1f} "
              f"{r['ratio']:>6.2f} {r['paired_ratio']:>7.2f} {r['best_ratio']:>5.2f}")
        figures[spec] = {k: round(v, 3) for k, v in r.items() if k != "arch"}
    print(f"target: ratio <= 1.30 -> {'met' if worst <= 1.3 else 'NOT met'} (worst {worst:.2f})")
    harness.record("bench_score", {k: v for k, v in vars(args).items() if k != "arch"},
                   {**figures, "threads": torch.get_num_threads(), "target_ratio": 1.3,
                    "met": worst <= 1.3}, started_load=started)


if __name__ == "__main__":
    main()
