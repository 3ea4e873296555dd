"""Benchmark: sparse cumulative-ablation curves of CNN layers against the bare forwards they need.

A randomly initialised torchvision ``resnet18`` or ``vgg11_bn`` (``num_classes=10``) on random
3x32x32 inputs (``--samples`` test samples, random labels). For each layer (``--layer NAME``,
or ``--layer all``: every hidden prunable layer), its units are ranked by ``mi`` (on
``--val-samples`` other samples, not timed) and ablated low- and high-first plus ``--random``
random orderings, at ``--steps`` evenly spaced k (``layerwise_curves(..., at_k=...)``).

Neither model is a ``torch.nn.Sequential``: the curve functions cut the traced graph at the layer
(``prune_info.analysis.graph_cut``), run the part before once and the part after once per
distinct mask. Measured in one run, per layer:

* ``curve_s``: the curves;
* ``bare_rest_s``: the same part-after forwards with nothing else (same chunks of masked copies,
  no masks, no counting), the floor of the work;
* ``whole_s``: that many whole-network forwards (what the curves cost before the cut).

The target of issue #15 is ``curve_s / bare_rest_s <= 1.3``. ``--check`` also compares the
counts with the naive loop (one whole masked forward per mask; slow).

``--groups`` instead times the curves of every coupled group (``group_curves``: a residual
stream's members lose their channels together, masked at the taps of the traced cut) against the
same curves with the cut disabled (whole-network forwards per mask), and checks they are equal.

Usage::

    .venv/bin/python benchmarks/bench_ablation_cnn.py         # resnet18, layer2.1.conv1
    .venv/bin/python benchmarks/bench_ablation_cnn.py --model vgg11_bn --layer all --samples 200 \\
        --steps 9 --table

Timings are wall-clock on whatever the machine is doing (``/proc/loadavg`` is printed with
them); ``--threads`` sets torch's intra-op threads. The figures go to ``benchmarks/results/``
(:func:`harness.record`), quoted by RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import harness
import torch

from prune_info.analysis.curves import (
    layerwise_curves,
    naive_curves,
    random_orders,
    spaced_ks,
)
from prune_info.analysis.curves.masked import _rows_per_chunk
from prune_info.analysis.curves.running import _prefix_masks
from prune_info.analysis.graph_cut import cut_at
from prune_info.criteria.context import compute_scores
from prune_info.criteria.ranking import rank_units
from prune_info.data import Split
from prune_info.nn import prunable_layers, resolve_layers


def _loadavg() -> str | None:
    try:
        with open("/proc/loadavg") as handle:
            return handle.read().strip()
    except OSError:
        return None


@torch.no_grad()
def _bare_rest(model: torch.nn.Module, info, split: Split, n_masks: int) -> float:
    """Time the part after the cut on ``n_masks`` copies of the test set, in the curves'
    chunks, with no masks and no counting."""
    cut = cut_at(model, info)
    assert cut is not None, f"{info.name}: the graph could not be cut"
    chunk = _rows_per_chunk(model, split.x[:1], info.output_module, len(split), 256)
    start = time.perf_counter()
    live = cut.run_before(split.x)
    assert live is not None
    cached, others = live[0], live[1:]
    for r0 in range(0, n_masks, chunk):
        n = min(chunk, n_masks - r0)  # the same copies as the curves make, without the masks
        h = cached.unsqueeze(0).expand(n, *cached.shape).reshape(-1, *cached.shape[1:])
        cut.after(h, *[torch.cat([v] * n) for v in others]).argmax(-1)
    return time.perf_counter() - start


@torch.no_grad()
def _whole(model: torch.nn.Module, split: Split, n_masks: int) -> float:
    """``n_masks`` whole-network forwards of the test set, timed on two and scaled."""
    start = time.perf_counter()
    for _ in range(2):
        model(split.x).argmax(-1)
    return (time.perf_counter() - start) / 2 * n_masks


def _layer(model, layer: str, test: Split, val: Split, args) -> dict:
    (info,) = resolve_layers(model, [layer])
    ks = spaced_ks(info.n_units, args.steps, layer, what="--steps")
    mi = compute_scores(model, val, ["mi"], n_classes=10, layers=[layer])["mi"][layer]
    orders = torch.cat([torch.stack([rank_units(mi, "low"), rank_units(mi, "high")]),
                        random_orders(info.n_units, args.random, seed=0)])
    n_masks = int(torch.unique(_prefix_masks(orders, torch.tensor(ks)), dim=0).shape[0])
    meta: dict = {}
    start = time.perf_counter()
    counts = layerwise_curves(model, layer, orders, test, at_k=ks, info=meta)
    curve_s = time.perf_counter() - start
    bare_s = _bare_rest(model, info, test, n_masks)
    whole_s = _whole(model, test, n_masks)
    row = {"layer": layer, "units": info.n_units, "masks": n_masks, "cut": meta.get("cut"),
           "curve_s": round(curve_s, 3), "bare_rest_s": round(bare_s, 3),
           "ratio": round(curve_s / bare_s, 3), "whole_s": round(whole_s, 3),
           "vs_whole": round(whole_s / curve_s, 2)}
    if args.check:
        naive = naive_curves(model, orders, test, layers=layer, at_k=ks)
        row["equal_to_naive"] = bool(torch.equal(counts, naive))
    return row


def _groups(model, test: Split, args) -> list[dict]:
    """Every coupled group's curves, with the traced cut and with it disabled."""
    from prune_info.analysis import curves
    from prune_info.analysis.curves import masked  # where the engine cuts the graph
    from prune_info.surgery import unit_groups

    rows = []
    for group in unit_groups(model, test.x[:1]):
        if len(group.members) < 2:
            continue
        (first,) = resolve_layers(model, [group.members[0]])
        orders = random_orders(first.n_units, 2, seed=0)
        ks = spaced_ks(first.n_units, args.steps, first.name, what="--steps")
        start = time.perf_counter()
        cut = curves.group_curves(model, group.members, orders, test, at_k=ks)
        cut_s = time.perf_counter() - start
        real, masked.cut_at = masked.cut_at, lambda *a, **k: None
        try:
            start = time.perf_counter()
            whole = curves.group_curves(model, group.members, orders, test, at_k=ks)
            whole_s = time.perf_counter() - start
        finally:
            masked.cut_at = real
        rows.append({"group": "+".join(group.members), "channels": first.n_units,
                     "cut_s": round(cut_s, 3), "whole_s": round(whole_s, 3),
                     "speedup": round(whole_s / cut_s, 2), "equal": bool(torch.equal(cut, whole))})
    return rows


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("resnet18", "vgg11_bn"), default="resnet18")
    parser.add_argument("--layer", default="layer2.1.conv1",
                        help="a prunable layer, or 'all' (every hidden one)")
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--val-samples", type=int, default=500)
    parser.add_argument("--steps", type=int, default=33)
    parser.add_argument("--random", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--check", action="store_true", help="compare with the naive loop")
    parser.add_argument("--groups", action="store_true",
                        help="time every coupled group's curves, with and without the cut")
    parser.add_argument("--table", action="store_true", help="print a table, not JSON")
    parser.add_argument("--out", default=None, help="also write the JSON here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    import torchvision

    torch.manual_seed(0)
    model = getattr(torchvision.models, args.model)(num_classes=10).eval()
    generator = torch.Generator().manual_seed(0)
    test = Split(torch.randn(args.samples, 3, 32, 32, generator=generator),
                 torch.randint(0, 10, (args.samples,), generator=generator))
    val = Split(torch.randn(args.val_samples, 3, 32, 32, generator=generator),
                torch.randint(0, 10, (args.val_samples,), generator=generator))
    layers = ([i.name for i in prunable_layers(model)] if args.layer == "all"
              else [args.layer])  # (the classifier is not a prunable layer)
    with torch.no_grad():  # warm-up
        model(test.x[:256])
    load_before = _loadavg()
    started = harness.loadavg()
    if args.groups:
        rows = _groups(model, test, args)
        total = {k: round(sum(r[k] for r in rows), 3) for k in ("cut_s", "whole_s")}
        extra = {"orderings": ["random0", "random1"],
                 "total_speedup": round(total["whole_s"] / total["cut_s"], 2)}
    else:
        rows = [_layer(model, layer, test, val, args) for layer in layers]
        total = {k: round(sum(r[k] for r in rows), 3)
                 for k in ("curve_s", "bare_rest_s", "whole_s")}
        extra = {"orderings": ["mi:low", "mi:high", *[f"random{i}" for i in range(args.random)]],
                 "total_ratio": round(total["curve_s"] / total["bare_rest_s"], 3)}
    result = {
        "model": f"torchvision {args.model}(num_classes=10), random init, inputs 3x32x32",
        "samples": args.samples, "steps": args.steps, "layers": rows, "total": total, **extra,
        "threads": torch.get_num_threads(), "loadavg_before": load_before,
        "loadavg_after": _loadavg(), "torch": torch.__version__,
        "python": platform.python_version(), "cpus": os.cpu_count(),
    }
    harness.record("bench_ablation_cnn",
                   {k: v for k, v in vars(args).items() if k not in ("out", "table")}, {
                       "per_layer": {row.get("layer") or row["group"]:
                                     {k: v for k, v in row.items() if k not in ("layer", "group")}
                                     for row in rows},
                       "total": total, **extra, "threads": torch.get_num_threads()},
                   started_load=started)
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(result, handle, indent=2)
    if args.table:
        keys = list(rows[0])
        print(" | ".join(keys))
        for row in rows:
            print(" | ".join(str(row[k]) for k in keys))
        summary = {k: v for k, v in extra.items() if k.startswith("total")}
        print(f"total: {total}, {summary}; load {load_before} -> {result['loadavg_after']}")
    else:
        json.dump(result, sys.stdout, indent=2)
        print()
    return result


if __name__ == "__main__":
    main()
