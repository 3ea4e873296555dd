"""The headline table: accuracy kept against size and speed, criterion by criterion.

Dense against 50 %, 75 % and 90 % of the hidden units of every layer removed, by each criterion,
each pruned then fine-tuned with the same budget, over several seeds: test accuracy (mean ± std),
parameters, MACs, and CPU latency at batch 1 and 256 (PyTorch eager and onnxruntime). Latency
depends only on the widths, which layer-wise pruning makes equal for every criterion, so it is
measured once per amount (on one thread, interleaved, median of repeated calls).

    .venv/bin/python benchmarks/bench_compression.py --data fashion-mnist \
        --arch 784-100-100-10 --seeds 3 --out benchmarks/out/compression-mlp
    .venv/bin/python benchmarks/bench_compression.py --data fashion-mnist \
        --arch c8-c16-f64 --seeds 3 --epochs 3 --out benchmarks/out/compression-cnn

Resumable: results.json in --out is rewritten after every seed. The table's figures also go
to ``benchmarks/results/`` (:func:`harness.record`), quoted by RESULTS.md.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import harness
import torch

from prune_info.checkpoint import Checkpoint
from prune_info.data import load_dataset
from prune_info.deploy.bench import benchmark_models
from prune_info.experiments.subnetworks import CompareConfig, run_comparison, summarise
from prune_info.training.loop import TrainConfig
from prune_info.zoo import arch_spec, build_model, parse_arch

CRITERIA = "mi,kl,entropy,synergy,gcmi-model,magnitude,taylor,random"


def latency_by_arch(data, specs: list[str], act: str, repeat: int) -> dict[str, dict]:
    """Median latency (ms) per spec at batch 1 and 256, torch and onnxruntime, one thread."""
    ckpts = []
    for spec in specs:
        arch = parse_arch(spec, data.input_shape, data.n_classes, act)
        torch.manual_seed(0)
        ckpts.append(Checkpoint(model=build_model(arch).eval(), arch=arch,
                                dataset=data.describe()))
    rows = benchmark_models(ckpts, data, batches=(1, 256), threads=1, repeat=repeat)
    out = {}
    for spec, row in zip(specs, rows):
        out[spec] = {(lat.runtime, lat.batch): lat.median_ms for lat in row.latency}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--arch", default="784-100-100-10")
    parser.add_argument("--act", default="relu")
    parser.add_argument("--reg", default="l2")
    parser.add_argument("--criteria", default=CRITERIA)
    parser.add_argument("--amounts", default="0.5,0.75,0.9")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=10, help="dense training epochs")
    parser.add_argument("--finetune-epochs", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=200, help="timed calls per latency")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    started = harness.loadavg()
    data = load_dataset(args.data)
    config = CompareConfig(
        spec=args.arch, act=args.act, reg=args.reg,
        criteria=tuple(args.criteria.split(",")), seeds=tuple(range(args.seeds)),
        amounts=tuple(float(a) for a in args.amounts.split(",")),
        train=TrainConfig(epochs=args.epochs),
        retrain_epochs=args.finetune_epochs, rewind=None,
    )
    start = time.perf_counter()
    comparison = run_comparison(data, config, args.out, progress=False)
    table = summarise(comparison)
    rows = comparison.rows
    dense_acc = torch.tensor([r["dense_test_acc"] for r in rows if r["criterion"] ==
                              config.criteria[0] and r["value"] == config.amounts[0]])
    dense_arch = parse_arch(args.arch, data.input_shape, data.n_classes)
    specs = [arch_spec(dense_arch)] + list(dict.fromkeys(e.arch for e in table.entries))
    latency = latency_by_arch(data, specs, args.act, args.repeat)
    elapsed = time.perf_counter() - start

    def lat(spec: str) -> str:
        t = latency[spec]
        return (f"{t[('torch', 1)]:.3f} / {t[('torch', 256)]:.3f} | "
                f"{t[('onnxruntime', 1)]:.3f} / {t[('onnxruntime', 256)]:.3f}")

    r0 = rows[0]
    lines = [
        f"{args.data} {args.arch} ({args.act}/{args.reg}), {args.seeds} seeds, dense trained "
        f"{args.epochs} epochs, each pruned model fine-tuned {args.finetune_epochs} epochs; "
        f"{platform.machine()}, torch {torch.__version__}, latency on 1 CPU thread",
        "",
        "| removed | criterion | arch | test acc (%) | params | MACs | torch ms b1 / b256 | "
        "onnxruntime ms b1 / b256 |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
        f"| 0 | dense | {specs[0]} | {100 * dense_acc.mean():.2f} ± "
        f"{100 * dense_acc.std(unbiased=False):.2f} | {r0['dense_parameters']:,} | "
        f"{r0['dense_macs']:,} | {lat(specs[0])} |",
    ]
    for e in table.entries:
        lines.append(
            f"| {e.value:.0%} | {e.criterion} | {e.arch} | "
            f"{100 * e.test_acc_mean:.2f} ± {100 * e.test_acc_std:.2f} | "
            f"{e.parameters:,} | {e.macs:,} | {lat(e.arch)} |"
        )
    lines.append("")
    lines.append(f"total time {elapsed / 60:.1f} min")
    text = "\n".join(lines)
    Path(args.out, "table.md").write_text(text + "\n")
    print(text)

    def figures(spec: str, acc_mean: float, acc_std: float, params: int, macs: int) -> dict:
        return {"arch": spec, "test_acc_mean": round(acc_mean, 4),
                "test_acc_std": round(acc_std, 4), "parameters": params, "macs": macs,
                **{f"{runtime} b{batch} ms": round(ms, 4)
                   for (runtime, batch), ms in latency[spec].items()}}

    harness.record("bench_compression", {k: v for k, v in vars(args).items() if k != "out"}, {
        "dense": figures(specs[0], float(dense_acc.mean()), float(dense_acc.std(unbiased=False)),
                         r0["dense_parameters"], r0["dense_macs"]),
        **{f"{e.value:.0%} {e.criterion}": figures(e.arch, e.test_acc_mean, e.test_acc_std,
                                                  e.parameters, e.macs)
           for e in table.entries},
        "total_min": round(elapsed / 60, 1)}, started_load=started)


if __name__ == "__main__":
    main()
