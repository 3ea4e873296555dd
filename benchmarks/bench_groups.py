"""Group pruning against torch-pruning's own pruners, on the same models, in one run (issue #14).

For torchvision ResNet-18 and MobileNetV2 (``num_classes=10``, FashionMNIST adapted to 3x32x32)
on a subset of FashionMNIST, per seed:

1. train the dense model once (factory recipe, ``--epochs``);
2. for every pruning ratio (fraction of every dependency group's channels removed) and method:

   * ``pi:<criterion>`` — ``prune_info.prune_checkpoint`` with that criterion and the same
     fraction of every group (``--group-reduce mean``), for mi, kl, entropy, gcmi-model,
     magnitude, taylor, random;
   * ``pi-global:mi`` — one MI ranking across groups, the same total fraction of channels;
   * ``pi-maxdrop:mi`` — the allocation of ``--max-drop`` (each group's own MI-ordered ablation
     curve, ``--maxdrop-budget`` points) scaled to the same total fraction of channels: group
     ``g`` loses ``s * k_g`` channels, ``k_g`` the count its curve allowed alone, ``s`` chosen so
     the total matches (at most all but one channel of a group);
   * ``tp:<importance>`` — ``torch_pruning.pruner.BasePruner`` with ``GroupMagnitudeImportance``,
     ``LAMPImportance``, ``FPGMImportance`` or ``GroupTaylorImportance`` (gradients of one
     batch of 256 training images) at ``pruning_ratio`` = the ratio, the classifier ignored;

   every pruned model is fine-tuned with the same budget (``prune_info.retrain_checkpoint``,
   ``--finetune-epochs`` at ``--finetune-lr``, best validation epoch kept), then its test
   accuracy, parameters, MACs and onnxruntime latency (1 thread, median of ``--repeat``
   interleaved calls against the dense model in the same call, batch 1 and 64) are recorded.

prune-info rounds no width here (``round_to=1``), as torch-pruning's ``round_to=None``: at a
given ratio the uniform methods produce the same widths, so their accuracies compare at equal
MACs and latency.

    .venv/bin/python benchmarks/bench_groups.py                       # both models, seed 0
    .venv/bin/python benchmarks/bench_groups.py --models resnet18 --seeds 0,1,2

Resumable per cell: ``--out``/<model>-s<seed>/<method>@<ratio>.json is written when the cell is
done, the dense checkpoint is kept; a rerun with the same settings skips finished cells (and
tries failed ones again).
``--out``/summary.json and summary.md hold the table (mean ± std over seeds), the accuracy-latency
front of each method and the comparison of the best information criterion with the best
torch-pruning importance.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import platform
import time
from pathlib import Path

import numpy as np
import torch
from harness import MODELS, error_record, loadavg_text, short_error, subsample, write_json

import prune_info

PI_CRITERIA = ("mi", "kl", "entropy", "gcmi-model", "magnitude", "taylor", "random")
TP_IMPORTANCES = ("magnitude", "lamp", "fpgm", "taylor")
METHODS = (*(f"pi:{c}" for c in PI_CRITERIA), "pi-global:mi", "pi-maxdrop:mi",
           *(f"tp:{i}" for i in TP_IMPORTANCES))
INFORMATION = {"pi:mi", "pi:kl", "pi:entropy", "pi:gcmi-model", "pi-global:mi", "pi-maxdrop:mi"}


def _tp_importance(name: str):
    import torch_pruning as tp

    return {"magnitude": lambda: tp.importance.GroupMagnitudeImportance(p=2),
            "lamp": lambda: tp.importance.LAMPImportance(p=2),
            "fpgm": lambda: tp.importance.FPGMImportance(p=2),
            "taylor": lambda: tp.importance.GroupTaylorImportance()}[name]()


def tp_prune(dense: prune_info.Checkpoint, data: prune_info.Dataset, importance: str,
             ratio: float, seed: int) -> prune_info.Checkpoint:
    """torch-pruning's own pipeline: BasePruner, uniform ratio, classifier ignored."""
    import torch_pruning as tp

    model = copy.deepcopy(dense.model).eval()
    example = torch.zeros(2, *data.input_shape)
    classifier = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
    pruner = tp.pruner.BasePruner(model, example, importance=_tp_importance(importance),
                                  pruning_ratio=ratio, ignored_layers=[classifier])
    if importance == "taylor":
        g = torch.Generator().manual_seed(seed)
        idx = torch.randperm(len(data.train), generator=g)[:256]
        model.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(data.train.x[idx]), data.train.y[idx])
        loss.backward()
    pruner.step()
    model.zero_grad(set_to_none=True)
    return dense.replace(model=model.eval(), source=None)


def maxdrop_keep(dense: prune_info.Checkpoint, data: prune_info.Dataset, ratio: float,
                 budget: float, seed: int, cache: dict) -> list[int]:
    """Per-group kept widths: the max-drop counts of each group scaled to ``ratio`` overall."""
    if "report" not in cache:
        config = prune_info.PruneConfig(criterion="mi", allocation="max-drop", max_drop=budget,
                                        seed=seed, round_to=1, verify=False, mask=True)
        cache["report"] = prune_info.prune_checkpoint(dense, data, config).summary.max_drop
    alone = cache["report"]["alone"]
    widths = {layer.name: layer.n_units for layer in dense.layers}
    roots = list(alone)
    k = np.array([alone[r]["k"] for r in roots], dtype=float)
    n = np.array([widths[r] for r in roots], dtype=float)
    target = ratio * n.sum()
    lo, hi = 0.0, float(n.max())
    for _ in range(60):  # bisection on the scale s: sum(min(s k, n - 1)) = target
        s = (lo + hi) / 2
        lo, hi = (s, hi) if np.minimum(s * k, n - 1).sum() < target else (lo, s)
    removed = np.floor(np.minimum(hi * k, n - 1) + 1e-9).astype(int)
    keep_of = {r: int(n_r - rm) for r, n_r, rm in zip(roots, n, removed)}
    # one entry per prunable layer, in model order; members of a group share their root's
    groups = {m: root for root, entry in alone.items() for m in entry.get("members", [root])}
    return [keep_of[groups[layer.name]] for layer in dense.layers]


def run_cell(method: str, ratio: float, dense: prune_info.Checkpoint, data: prune_info.Dataset,
             settings: dict, seed: int, cache: dict) -> dict:
    t0 = time.perf_counter()
    family, _, name = method.partition(":")
    if family == "tp":
        pruned = tp_prune(dense, data, name, ratio, seed)
    else:
        common = {"criterion": name, "seed": seed, "round_to": 1}
        if family == "pi":
            config = prune_info.PruneConfig(amount=ratio, **common)
        elif family == "pi-global":
            config = prune_info.PruneConfig(amount=ratio, allocation="global", **common)
        else:
            keep = maxdrop_keep(dense, data, ratio, settings["maxdrop_budget"], seed, cache)
            config = prune_info.PruneConfig(keep=tuple(keep), **common)
        pruned = prune_info.prune_checkpoint(dense, data, config).checkpoint
    seconds_prune = time.perf_counter() - t0
    shape = tuple(data.input_shape)
    cell = {"method": method, "ratio": ratio, "seed": seed,
            "parameters": prune_info.count_parameters(pruned.model),
            "macs": prune_info.total_macs(pruned.model, shape),
            "widths": [layer.n_units for layer in prune_info.nn.prunable_layers(pruned.model)],
            "test_acc_before_finetune": prune_info.accuracy(pruned.model, data.test)}
    t0 = time.perf_counter()
    rconfig = prune_info.RetrainConfig(epochs=settings["finetune_epochs"],
                                       lr=settings["finetune_lr"], seed=seed)
    tuned, summary = prune_info.retrain_checkpoint(pruned, data, rconfig, progress=False)
    cell.update(test_acc=summary["after"]["test_acc"], val_acc=summary["after"]["val_acc"],
                seconds={"prune": round(seconds_prune, 1),
                         "finetune": round(time.perf_counter() - t0, 1)})
    rows = prune_info.benchmark_models([dense, tuned], data, batches=settings["batches"],
                                       threads=1, repeat=settings["repeat"],
                                       runtimes=("onnxruntime",))
    cell["latency_ms"] = {str(e.batch): e.median_ms for e in rows[1].latency}
    cell["dense_latency_ms"] = {str(e.batch): e.median_ms for e in rows[0].latency}
    cell["speedup"] = {str(e.batch): e.speedup for e in rows[1].latency}
    cell["loadavg"] = loadavg_text()
    return cell


def run_model_seed(model: str, seed: int, data: prune_info.Dataset, settings: dict, out: Path,
                   methods: list[str], ratios: list[float]) -> tuple[dict, list[dict]]:
    factory, kwargs, _ = MODELS[model]
    root = out / f"{model}-s{seed}"
    root.mkdir(parents=True, exist_ok=True)
    dense_path = root / "dense.pt"
    meta_path = root / "dense.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    if meta.get("settings") == settings and dense_path.exists():
        dense = prune_info.load_checkpoint(dense_path)
    else:
        t0 = time.perf_counter()
        print(f"[{model} s{seed}] training dense ({settings['epochs']} epochs)", flush=True)
        config = prune_info.TrainConfig.for_factory_models(epochs=settings["epochs"], seed=seed)
        dense = prune_info.train_model(data, factory=factory, factory_kwargs=kwargs,
                                       config=config, progress=False)
        prune_info.save_checkpoint(dense, dense_path)
        meta = {"settings": settings, "test_acc": dense.metrics["test_acc"],
                "val_acc": dense.metrics["val_acc"],
                "parameters": prune_info.count_parameters(dense.model),
                "macs": prune_info.total_macs(dense.model, tuple(data.input_shape)),
                "seconds": round(time.perf_counter() - t0, 1)}
        write_json(meta, meta_path)
    print(f"[{model} s{seed}] dense test accuracy {100 * meta['test_acc']:.2f} %", flush=True)
    cells, cache = [], {}
    for ratio in ratios:
        for method in methods:
            path = root / f"{method.replace(':', '-')}@{ratio:g}.json"
            if path.exists():
                doc = json.loads(path.read_text())
                if doc.get("settings") == settings and "error" not in doc:
                    cells.append(doc)
                    continue  # a failed cell is tried again
            try:
                cell = run_cell(method, ratio, dense, data, settings, seed, cache)
            except Exception as exc:  # recorded, not hidden
                cell = {"method": method, "ratio": ratio, "seed": seed,
                        "error": error_record(exc)}
                print(f"[{model} s{seed}] {method} @{ratio:g} FAILED: "
                      f"{short_error(cell['error'])}", flush=True)
            else:
                print(f"[{model} s{seed}] {method} @{ratio:g}: "
                      f"{100 * cell['test_acc_before_finetune']:.1f} -> "
                      f"{100 * cell['test_acc']:.2f} %, {cell['macs']:,} MACs, b1 "
                      f"{cell['latency_ms'].get('1', float('nan')):.3f} ms", flush=True)
            cell["settings"] = settings
            write_json(cell, path)
            cells.append(cell)
    return meta, cells


def _mean_std(values: list[float]) -> tuple[float, float]:
    arr = np.asarray(values, dtype=float)
    return float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else 0.0


def summarise(results: dict, ratios: list[float], methods: list[str]) -> dict:
    """Per model and ratio: every method's mean ± std, the front, the best of each family."""
    summary: dict = {}
    for model, per_seed in results.items():
        dense_acc = [meta["test_acc"] for meta, _ in per_seed.values()]
        entry: dict = {"dense_test_acc": _mean_std(dense_acc),
                       "dense_macs": next(iter(per_seed.values()))[0]["macs"],
                       "seeds": sorted(per_seed), "ratios": {}}
        for ratio in ratios:
            rows = {}
            for method in methods:
                cells = [c for _, cs in per_seed.values() for c in cs
                         if c["method"] == method and c["ratio"] == ratio and "error" not in c]
                errors = [c["error"]["message"].splitlines()[0] for _, cs in per_seed.values()
                          for c in cs if c["method"] == method and c["ratio"] == ratio
                          and "error" in c]
                if not cells:
                    rows[method] = {"error": errors[0] if errors else "not run"}
                    continue
                rows[method] = {
                    "n": len(cells),
                    "test_acc": _mean_std([c["test_acc"] for c in cells]),
                    "before_finetune": _mean_std([c["test_acc_before_finetune"] for c in cells]),
                    "macs": float(np.mean([c["macs"] for c in cells])),
                    "parameters": float(np.mean([c["parameters"] for c in cells])),
                    "latency_ms": {b: float(np.mean([c["latency_ms"][b] for c in cells]))
                                   for b in cells[0]["latency_ms"]},
                    "speedup": {b: float(np.mean([c["speedup"][b] for c in cells]))
                                for b in cells[0]["speedup"]},
                }
            ok = {m: r for m, r in rows.items() if "error" not in r}
            info = {m: r for m, r in ok.items() if m in INFORMATION}
            tpm = {m: r for m, r in ok.items() if m.startswith("tp:")}
            best_info = max(info, key=lambda m: info[m]["test_acc"][0], default=None)
            best_tp = max(tpm, key=lambda m: tpm[m]["test_acc"][0], default=None)
            verdict = None
            if best_info and best_tp:
                gap = 100 * (info[best_info]["test_acc"][0] - tpm[best_tp]["test_acc"][0])
                verdict = {"best_information": best_info, "best_torch_pruning": best_tp,
                           "gap_pp": gap}
            entry["ratios"][str(ratio)] = {"methods": rows, "comparison": verdict}
        entry["front"] = {m: sorted(((r["methods"][m]["latency_ms"].get("1"),
                                      r["methods"][m]["test_acc"][0])
                                     for r in entry["ratios"].values()
                                     if "error" not in r["methods"].get(m, {"error": 1})),
                                    key=lambda p: p[0] or math.inf)
                          for m in methods}
        summary[model] = entry
    return summary


def table(summary: dict) -> str:
    lines = []
    for model, entry in summary.items():
        mean, std = entry["dense_test_acc"]
        lines += [f"### {model} (dense {100 * mean:.2f} ± {100 * std:.2f} %, "
                  f"{entry['dense_macs']:,} MACs, seeds {entry['seeds']})", "",
                  "| ratio | method | test acc % (n) | before fine-tune % | MACs | params | "
                  "ORT b1 ms (speed-up) | ORT b64 ms (speed-up) |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for ratio, block in entry["ratios"].items():
            for method, row in block["methods"].items():
                if "error" in row:
                    lines.append(f"| {ratio} | {method} | failed: {row['error'][:60]} "
                                 "| | | | | |")
                    continue
                m, s = row["test_acc"]
                bm, _ = row["before_finetune"]
                lat = row["latency_ms"]
                sp = row["speedup"]
                lines.append(
                    f"| {ratio} | {method} | {100 * m:.2f} ± {100 * s:.2f} ({row['n']}) | "
                    f"{100 * bm:.1f} | {row['macs']:,.0f} | {row['parameters']:,.0f} | "
                    f"{lat.get('1', float('nan')):.3f} (×{sp.get('1') or float('nan'):.2f}) | "
                    f"{lat.get('64', float('nan')):.2f} (×{sp.get('64') or float('nan'):.2f}) |")
            cmp = block["comparison"]
            if cmp:
                lines.append(f"| {ratio} | **best information vs best torch-pruning** | "
                             f"{cmp['best_information']} vs {cmp['best_torch_pruning']}: "
                             f"{cmp['gap_pp']:+.2f} pp | | | | | |")
        lines.append("")
    return "\n".join(lines)


def compact_table(summary: dict) -> str:
    """One row per method: fine-tuned test accuracy at each ratio, and MACs / speed-up at 0.5."""
    lines = []
    for model, entry in summary.items():
        ratios = list(entry["ratios"])
        mean, _ = entry["dense_test_acc"]
        lines += [f"**{model}** (dense {100 * mean:.2f} %, {entry['dense_macs']:,} MACs; "
                  f"seeds {entry['seeds']})", "",
                  "| method | " + " | ".join(f"acc % @{r}" for r in ratios)
                  + " | MACs @0.5 | ORT speed-up b1 / b64 @0.5 |",
                  "| --- | " + " | ".join("---" for _ in ratios) + " | --- | --- |"]
        methods = list(next(iter(entry["ratios"].values()))["methods"])
        for method in methods:
            cells, half = [], entry["ratios"].get("0.5", {}).get("methods", {}).get(method, {})
            for r in ratios:
                row = entry["ratios"][r]["methods"][method]
                cells.append("failed" if "error" in row else
                             f"{100 * row['test_acc'][0]:.2f}"
                             + (f" ± {100 * row['test_acc'][1]:.2f}" if row["n"] > 1 else ""))
            macs = f"{half['macs']:,.0f}" if "macs" in half else "–"
            sp = half.get("speedup", {})
            speed = (f"×{sp['1']:.2f} / ×{sp['64']:.2f}" if sp.get("1") and sp.get("64")
                     else "–")
            lines.append(f"| {method} | " + " | ".join(cells) + f" | {macs} | {speed} |")
        best = [f"@{r}: {c['best_information']} vs {c['best_torch_pruning']} "
                f"{c['gap_pp']:+.2f} pp" for r, b in entry["ratios"].items()
                if (c := b["comparison"])]
        lines += ["", "Best information criterion or allocation against the best torch-pruning "
                  "importance: " + "; ".join(best) + ".", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="resnet18,mobilenet_v2")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--ratios", default="0.3,0.5,0.7")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--train-samples", type=int, default=4000)
    parser.add_argument("--val-samples", type=int, default=1000)
    parser.add_argument("--test-samples", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=3, help="dense training epochs")
    parser.add_argument("--finetune-epochs", type=int, default=2)
    parser.add_argument("--finetune-lr", type=float, default=0.01)
    parser.add_argument("--maxdrop-budget", type=float, default=2.0,
                        help="accuracy budget (pp) of the max-drop curves whose counts are "
                             "scaled to each ratio")
    parser.add_argument("--batches", default="1,64")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--out", default="benchmarks/out/groups")
    args = parser.parse_args()

    models = [m for m in args.models.split(",") if m]
    methods = [m for m in args.methods.split(",") if m]
    bad = [m for m in models if m not in MODELS] + [m for m in methods if m not in METHODS]
    if bad:
        parser.error(f"unknown models or methods {bad}")
    ratios = [float(r) for r in args.ratios.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    settings = {k: getattr(args, k) for k in ("data", "train_samples", "val_samples",
                                              "test_samples", "epochs", "finetune_epochs",
                                              "finetune_lr", "maxdrop_budget", "repeat")}
    settings["batches"] = [int(b) for b in args.batches.split(",")]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    print(f"loadavg at start: {loadavg_text()}; {platform.machine()}, torch {torch.__version__}",
          flush=True)
    results: dict = {}
    for model in models:
        results[model] = {}
        for seed in seeds:
            full = prune_info.load_dataset(args.data, seed=seed, input_shape=MODELS[model][2])
            data = subsample(full, args.train_samples, args.val_samples, args.test_samples, seed)
            results[model][seed] = run_model_seed(model, seed, data, settings, out, methods,
                                                  ratios)
    summary = summarise(results, ratios, methods)
    elapsed = time.perf_counter() - start
    header = (f"{args.data} subset {args.train_samples}/{args.val_samples}/{args.test_samples}, "
              f"dense {args.epochs} epochs, fine-tune {args.finetune_epochs} epochs at lr "
              f"{args.finetune_lr}; onnxruntime 1 thread, median of {args.repeat}; "
              f"{platform.machine()}, torch {torch.__version__}; {elapsed / 60:.1f} min; "
              f"loadavg at end {loadavg_text()}")
    write_json({"settings": settings, "header": header, "summary": summary},
               out / "summary.json")
    text = header + "\n\n" + table(summary)
    (out / "summary.md").write_text(text + "\n")
    (out / "summary-compact.md").write_text(compact_table(summary) + "\n")
    print(text)


if __name__ == "__main__":
    main()
