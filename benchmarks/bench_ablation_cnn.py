"""Benchmark: sparse cumulative-ablation curves of one torchvision ResNet-18 layer, on the CPU.

A randomly initialised ``torchvision.models.resnet18(num_classes=10)`` on random 3x32x32 inputs
(``--samples`` test samples, random labels); the units of ``--layer`` are ranked by ``mi`` (on
``--val-samples`` other random samples, not timed) and ablated low- and high-first, plus
``--random`` random orderings, at ``--steps`` evenly spaced k (``compute_curves(..., at_k=...)``).

The curve's time is compared with the bare forward passes it needs: the model is called as many
times, on the same batches, with no hooks, masks or bookkeeping. A ResNet is not a
``torch.nn.Sequential``, so the curve functions run the whole network once per distinct
``(ordering, k)`` (the naive path); the script also times the part of the network before the
layer, to show what a cut of the graph could save. Also checks that the counts are the naive
loop's on a few columns (``--check``, off by default: it costs as many forwards again).

Usage::

    .venv/bin/python benchmarks/bench_ablation_cnn.py                      # layer2.1.conv1, 33 k
    .venv/bin/python benchmarks/bench_ablation_cnn.py --layer layer4.0.conv1 --steps 17 --table

Timings are wall-clock on whatever the machine is doing at the time (``/proc/loadavg`` is
printed with them); ``--threads`` sets torch's intra-op threads.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import torch

from prune_info.analysis.curves import (
    DEFAULT_BATCH_SIZE,
    compute_curves,
    layerwise_curves,
    naive_curves,
    spaced_ks,
)
from prune_info.criteria.context import compute_scores
from prune_info.data import Split
from prune_info.nn import resolve_layers


class _Stop(Exception):
    pass


def _loadavg() -> str | None:
    try:
        with open("/proc/loadavg") as handle:
            return handle.read().strip()
    except OSError:
        return None


def _count_calls(model: torch.nn.Module):
    """A pre-hook counting the calls of the whole model (one per masked forward pass)."""
    calls = {"n": 0, "rows": []}

    def hook(module, inputs):
        calls["n"] += 1
        calls["rows"].append(int(inputs[0].shape[0]))

    return calls, model.register_forward_pre_hook(hook)


@torch.no_grad()
def _bare(model: torch.nn.Module, split: Split, rows: list[int]) -> float:
    """Time ``len(rows)`` plain forward passes (batches of ``rows[i]`` samples) and argmax."""
    start = time.perf_counter()
    offset = 0
    for n in rows:
        if offset >= len(split):
            offset = 0
        xb, yb = split.x[offset : offset + n], split.y[offset : offset + n]
        int((model(xb).argmax(1) == yb).sum())
        offset += n
    return time.perf_counter() - start


@torch.no_grad()
def _prefix_time(model: torch.nn.Module, layer: str, split: Split, repeats: int) -> float:
    """Mean time of the network up to the layer's activation (the part a graph cut would skip)."""
    (info,) = resolve_layers(model, [layer])
    name = info.act_module or info.norm_module or info.name
    module = dict(model.named_modules())[name]

    def stop(mod, inp, out):
        raise _Stop

    handle = module.register_forward_hook(stop)
    try:
        start = time.perf_counter()
        for _ in range(repeats):
            try:
                model(split.x[:DEFAULT_BATCH_SIZE])
            except _Stop:
                pass
        return (time.perf_counter() - start) / repeats
    finally:
        handle.remove()


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layer", default="layer2.1.conv1")
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--val-samples", type=int, default=500)
    parser.add_argument("--steps", type=int, default=33)
    parser.add_argument("--random", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--check", action="store_true",
                        help="also check 3 columns against the naive loop")
    parser.add_argument("--table", action="store_true", help="print a table, not JSON")
    parser.add_argument("--out", default=None, help="also write the JSON here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10).eval()
    generator = torch.Generator().manual_seed(0)
    test = Split(torch.randn(args.samples, 3, 32, 32, generator=generator),
                 torch.randint(0, 10, (args.samples,), generator=generator))
    val = Split(torch.randn(args.val_samples, 3, 32, 32, generator=generator),
                torch.randint(0, 10, (args.val_samples,), generator=generator))
    (info,) = resolve_layers(model, [args.layer])
    ks = spaced_ks(info.n_units, args.steps, args.layer, what="--steps")
    scores = compute_scores(model, val, ["mi"], n_classes=10, layers=[args.layer])
    with torch.no_grad():  # warm-up
        model(test.x[:256])

    load_before = _loadavg()
    calls, handle = _count_calls(model)
    start = time.perf_counter()
    curves = compute_curves(model, test, scores, orders=("low", "high"), random=args.random,
                            layers=[args.layer], at_k={args.layer: ks}, progress=False)
    curve_s = time.perf_counter() - start
    handle.remove()
    bare_s = _bare(model, test, calls["rows"])
    prefix_s = _prefix_time(model, args.layer, test, repeats=3)
    load_after = _loadavg()
    full_s = bare_s / max(1, calls["n"])

    result: dict = {
        "model": "torchvision resnet18(num_classes=10), random init, inputs 3x32x32",
        "layer": args.layer, "units": info.n_units, "samples": args.samples,
        "orderings": ["mi:low", "mi:high", *[f"random{i}" for i in range(args.random)]],
        "steps": len(ks), "points_per_curve": int(curves.counts[args.layer]["mi:low"].shape[1]),
        "masked_forwards": calls["n"],
        "every_k_forwards": 3 * (info.n_units - 1) + 2 if args.random == 1 else None,
        "curve_s": round(curve_s, 3), "bare_forwards_s": round(bare_s, 3),
        "ratio": round(curve_s / bare_s, 3),
        "full_forward_s": round(full_s, 4), "prefix_forward_s": round(prefix_s, 4),
        "rest_fraction": round(max(0.0, 1 - prefix_s / full_s), 3),
        "threads": torch.get_num_threads(), "loadavg_before": load_before,
        "loadavg_after": load_after, "torch": torch.__version__,
        "python": platform.python_version(), "cpus": os.cpu_count(),
    }
    if args.check:
        cols = [ks[0], ks[len(ks) // 2], ks[-1]]
        orders = torch.stack([torch.argsort(scores["mi"][args.layer].double(), stable=True)])
        sparse = layerwise_curves(model, args.layer, orders, test, at_k=cols)
        naive = naive_curves(model, orders, test, layers=args.layer, at_k=cols)
        result["check_equal_to_naive"] = bool(torch.equal(sparse, naive))
    if args.out:
        with open(args.out, "w") as handle_out:
            json.dump(result, handle_out, indent=2)
    if args.table:
        width = max(len(k) for k in result)
        for key, value in result.items():
            print(f"{key:<{width}}  {value}")
    else:
        json.dump(result, sys.stdout, indent=2)
        print()
    return result


if __name__ == "__main__":
    main()
