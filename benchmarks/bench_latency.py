"""Does pruning half the units buy the speed its MACs promise? (issue 8: export and bench)

Target: at batch 256 on the CPU, the 50 %-pruned 784-100-100-10 MLP's measured speed-up
(dense median latency / pruned median latency), in onnxruntime and in PyTorch eager, is at least
0.7 x its MAC ratio (dense MACs / pruned MACs).

The dense model is a FashionMNIST-shaped 784-100-100-10 MLP (untrained: latency does not depend
on the weights); the pruned one is made from it by ``prune_info.pruning.workflow.prune_checkpoint``
(magnitude criterion, layerwise, amount 0.5: a real 784-50-50-10). Both are converted to ONNX
and verified exactly as ``prune-info export`` does. Each (runtime, batch) times the two models
round-robin (see :func:`prune_info._torch.time_interleaved`) for ``--repeat`` calls each
after a
warm-up, and compares medians. Batch 1 is reported too: there per-call overhead dominates and
no speed-up is expected.

    .venv/bin/python benchmarks/bench_latency.py [--threads 1] [--repeat 2000] [--device cpu|cuda]

The figures (per runtime and batch: medians, speed-up, speed-up / MAC ratio) go to
``benchmarks/results/`` (:func:`harness.record`), quoted by RESULTS.md; ``--json`` writes every
statistic.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys

import harness
import onnxruntime as ort
import torch

from prune_info._torch import (
    resolve_device,
    time_interleaved,
    timing_input,
    torch_threads,
    torch_timer,
)
from prune_info.checkpoint import Checkpoint
from prune_info.deploy.onnx import convert_checkpoint, count_macs
from prune_info.deploy.onnx_runtime import ort_session
from prune_info.deploy.timing import latency_stats, onnx_cuda_available, onnx_timer
from prune_info.errors import PruneInfoError
from prune_info.nn import count_parameters
from prune_info.zoo import build_model, parse_arch

INPUT_SHAPE = (1, 28, 28)
TARGET_FRACTION = 0.7


def make_models(seed: int = 0) -> tuple[Checkpoint, Checkpoint, str]:
    """The dense MLP and its 50 %-pruned copy; also how the pruned one was made."""
    arch = parse_arch("784-100-100-10", INPUT_SHAPE, 10, "relu", "l2")
    torch.manual_seed(seed)
    dense = Checkpoint(model=build_model(arch).eval(), arch=arch,
                       dataset={"name": "fashion-mnist", "input_shape": list(INPUT_SHAPE),
                                "n_classes": 10})
    try:
        from prune_info.pruning.config import PruneConfig
        from prune_info.pruning.workflow import prune_checkpoint
    except ImportError:  # before pruning existed: the architecture pruning produces
        small = parse_arch("784-50-50-10", INPUT_SHAPE, 10, "relu", "l2")
        torch.manual_seed(seed)
        return dense, Checkpoint(model=build_model(small).eval(), arch=small), "built directly"
    config = PruneConfig(criterion="magnitude", allocation="layerwise", amount=0.5, seed=seed)
    pruned = prune_checkpoint(dense, None, config).checkpoint
    return dense, pruned, "prune_checkpoint(magnitude, layerwise, 0.5)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1,
                        help="intra-op threads of both runtimes (default 1: stable on a shared "
                             "machine)")
    parser.add_argument("--repeat", type=int, default=2000, help="timed calls per model")
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--batches", default="256,1")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto (PyTorch; "
                        "onnxruntime also on CUDA when its provider is installed)")
    parser.add_argument("--json", dest="json_path", default=None, help="also write results")
    args = parser.parse_args()
    try:
        dev = resolve_device(args.device)
    except PruneInfoError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    batches = [int(b) for b in args.batches.split(",")]

    started = harness.loadavg()
    dense, pruned, how = make_models()
    macs = [count_macs(c.model, INPUT_SHAPE) for c in (dense, pruned)]
    mac_ratio = macs[0] / macs[1]
    sample = timing_input(INPUT_SHAPE, 64, seed=1)
    onnx = [convert_checkpoint(c, sample)[0] for c in (dense, pruned)]
    targets = [("torch", dev.type), ("onnxruntime", "cpu")]
    if dev.type == "cuda" and onnx_cuda_available():
        targets.append(("onnxruntime", "cuda"))

    print(f"machine: {platform.machine()} {platform.processor() or ''}, {args.threads} "
          f"thread(s), device {dev}, torch {torch.__version__}, onnxruntime {ort.__version__}")
    print(f"dense  {dense.spec}: {count_parameters(dense.model):,} parameters, {macs[0]:,} MACs")
    print(f"pruned {pruned.spec}: {count_parameters(pruned.model):,} parameters, {macs[1]:,} "
          f"MACs ({how})")
    print(f"MAC ratio {mac_ratio:.3f}; target speed-up >= {TARGET_FRACTION} x {mac_ratio:.3f} = "
          f"{TARGET_FRACTION * mac_ratio:.3f} at batch 256 on the CPU")
    print(f"{args.repeat} timed calls per model after {args.warmup} warm-up calls, interleaved\n")
    header = (f"{'runtime':<18}{'batch':>6}  {'dense ms (p90)':>18}  {'pruned ms (p90)':>18}  "
              f"{'speed-up':>8}  {'/ MAC ratio':>11}  target")
    print(header)
    results, ok = [], True
    with torch_threads(args.threads):
        models = [c.model.to(dev).eval() for c in (dense, pruned)]
        for runtime, where in targets:
            sessions = None
            if runtime == "onnxruntime":
                providers = (["CUDAExecutionProvider", "CPUExecutionProvider"]
                             if where == "cuda" else ["CPUExecutionProvider"])
                sessions = [ort_session(o, providers, args.threads) for o in onnx]
            for batch in batches:
                x = timing_input(INPUT_SHAPE, batch)
                if sessions is None:
                    timers = [torch_timer(m, x.to(dev), dev) for m in models]
                else:
                    timers = [onnx_timer(s, x.numpy(), where) for s in sessions]
                times = time_interleaved(timers, args.repeat, args.warmup)
                stats = [latency_stats(t, batch) for t in times]
                speedup = stats[0]["median_ms"] / stats[1]["median_ms"]
                judged = batch == 256 and where == "cpu"
                met = speedup >= TARGET_FRACTION * mac_ratio
                ok &= met or not judged
                verdict = ("met" if met else "NOT met") if judged else "(not judged)"
                print(f"{runtime + ' ' + where:<18}{batch:>6}  "
                      f"{stats[0]['median_ms']:>8.4f} ({stats[0]['p90_ms']:.4f})  "
                      f"{stats[1]['median_ms']:>8.4f} ({stats[1]['p90_ms']:.4f})  "
                      f"{speedup:>8.2f}  {speedup / mac_ratio:>11.2f}  {verdict}")
                results.append({"runtime": runtime, "device": where, "batch": batch,
                                "dense": stats[0], "pruned": stats[1], "speedup": speedup,
                                "speedup_over_mac_ratio": speedup / mac_ratio,
                                "judged": judged, "met": bool(met)})
    print(f"\ntarget {'met' if ok else 'NOT met'}")
    harness.record("bench_latency", {k: v for k, v in vars(args).items() if k != "json_path"}, {
        "mac_ratio": round(mac_ratio, 3), "pruned_by": how,
        **{f"{r['runtime']} {r['device']} b{r['batch']}": {
            "dense_ms": round(r["dense"]["median_ms"], 4),
            "pruned_ms": round(r["pruned"]["median_ms"], 4),
            "speedup": round(r["speedup"], 3),
            "per_mac_ratio": round(r["speedup_over_mac_ratio"], 3)} for r in results},
        "target_met": ok}, started_load=started)
    if args.json_path:
        document = {"threads": args.threads, "repeat": args.repeat, "device": str(dev),
                    "macs": macs, "mac_ratio": mac_ratio, "pruned_by": how,
                    "results": results, "target_met": ok}
        with open(args.json_path, "w") as fh:
            json.dump(document, fh, indent=2, default=float)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
