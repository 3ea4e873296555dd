"""Real models (issue "Real models"): does information-based pruning shrink torchvision and timm
classifiers, and does the smaller model run faster?

For torchvision ResNet-18, MobileNetV2 and VGG-11-bn (``num_classes=10``, FashionMNIST adapted to
3x32x32: channel repeated, bilinear resize) and timm ViT-tiny (``vit_tiny_patch16_224`` with
``img_size=28, patch_size=4, in_chans=1, num_classes=10`` on native 1x28x28), on a subset of
FashionMNIST:

1. train the dense model (``prune_info.train_model`` with the factory recipe,
   ``TrainConfig.for_factory_models``: SGD momentum 0.9, cosine, augmentation) for ``--epochs``;
2. remove ``--amount`` of every prunable group's channels, lowest ``--criterion`` first
   (``prune_info.prune_checkpoint``; residual and depthwise layers lose channels together);
3. fine-tune the pruned model for ``--finetune-epochs`` (``prune_info.retrain_checkpoint``, the
   checkpoint's optimiser at ``--finetune-lr``, constant rate, best validation epoch kept);
4. measure dense against pruned: test accuracy, parameters, MACs (``prune_info.total_macs``:
   linear and convolution layers, and since 2026-12-02 a ViT's attention products), and onnxruntime
   latency on 1 thread at batch 1 and 64 (``prune_info.benchmark_models``: both models timed
   round-robin, median of ``--repeat`` calls), the speed-up (dense / pruned median) and the
   speed-up divided by the MAC ratio (1.0: the latency falls as much as the MACs).

A model whose pruning fails (e.g. one torch-pruning cannot trace) keeps its
dense figures, and its JSON and the table record the error message.

    .venv/bin/python benchmarks/bench_zoo.py   # all four: ~20 min on 2 idle cores, 28.5 min shared
    .venv/bin/python benchmarks/bench_zoo.py --models resnet18 --train-samples 1000 --epochs 1

Resumable per model: ``--out``/<model>.json is rewritten after every stage, the dense and the
fine-tuned checkpoints are kept in ``--out``/<model>/; a rerun with the same settings skips
finished models and restarts the others at the stage they stopped in (``--redo`` forces models).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import signal
import time
from pathlib import Path

import torch
from harness import MODELS, error_record, loadavg_text, short_error, subsample, write_json

import prune_info

#: Settings that change the results; a saved model with other values is recomputed.
RESULT_SETTINGS = ("data", "train_samples", "val_samples", "test_samples", "epochs",
                   "finetune_epochs", "finetune_lr", "criterion", "amount", "prune_timeout",
                   "batches", "repeat", "seed")


class StageTimeout(Exception):
    """A stage ran past its time limit (``--prune-timeout``)."""


@contextlib.contextmanager
def time_limit(seconds: int, what: str):
    """Raise :class:`StageTimeout` in the main thread if the block runs past ``seconds``."""
    if not seconds:
        yield
        return

    def stop(signum, frame):
        raise StageTimeout(f"{what} did not finish within {seconds} s (limit --prune-timeout)")

    old = signal.signal(signal.SIGALRM, stop)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def run_model(name: str, data: prune_info.Dataset, settings: dict, out: Path) -> dict:
    """Train, prune, fine-tune and measure one model; the JSON is rewritten after each stage."""
    factory, kwargs, _ = MODELS[name]
    path, ckpt_dir = out / f"{name}.json", out / name
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    dense_path, pruned_path = ckpt_dir / "dense.pt", ckpt_dir / "pruned.pt"
    previous = json.loads(path.read_text()) if path.exists() else {}
    resume = previous.get("settings") == settings
    doc: dict = {
        "model": name, "factory": factory, "factory_kwargs": kwargs,
        "input_shape": list(data.input_shape), "settings": settings,
        "sizes": {"train": len(data.train), "val": len(data.val), "test": len(data.test)},
        "status": "running", "errors": {}, "seconds": {},
        "loadavg_start": loadavg_text(), "torch": torch.__version__,
    }
    stages_done = previous.get("stages_done", []) if resume else []
    if resume:
        for key in ("dense", "pruned", "seconds"):
            if key in previous and previous.get(key) is not None:
                doc[key] = previous[key]
    doc["stages_done"] = list(stages_done)
    input_shape = tuple(data.input_shape)

    def stage_done(stage: str, seconds: float) -> None:
        doc["seconds"][stage] = round(seconds, 1)
        if stage not in doc["stages_done"]:
            doc["stages_done"].append(stage)
        write_json(doc, path)

    # 1. dense
    t0 = time.perf_counter()
    if "dense" in stages_done and dense_path.exists():
        dense = prune_info.load_checkpoint(dense_path)
        print(f"[{name}] dense: reusing {dense_path}", flush=True)
    else:
        print(f"[{name}] training dense ({settings['epochs']} epochs, {len(data.train)} "
              "samples)", flush=True)
        config = prune_info.TrainConfig.for_factory_models(epochs=settings["epochs"],
                                                           seed=settings["seed"])
        dense = prune_info.train_model(data, factory=factory, factory_kwargs=kwargs,
                                       config=config, progress=False)
        prune_info.save_checkpoint(dense, dense_path)
        doc["dense"] = {
            "val_acc": dense.metrics["val_acc"], "test_acc": dense.metrics["test_acc"],
            "best_epoch": dense.metrics["best_epoch"],
            "parameters": prune_info.count_parameters(dense.model),
            "macs": prune_info.total_macs(dense.model, input_shape),
            "widths": {layer.name: layer.n_units for layer in dense.layers},
        }
        stage_done("dense", time.perf_counter() - t0)
    print(f"[{name}] dense test accuracy {100 * doc['dense']['test_acc']:.2f} %", flush=True)

    # 2. prune and 3. fine-tune
    finetuned = None
    if "finetune" in stages_done and pruned_path.exists():
        finetuned = prune_info.load_checkpoint(pruned_path)
        print(f"[{name}] pruned: reusing {pruned_path}", flush=True)
    else:
        t0 = time.perf_counter()
        try:
            config = prune_info.PruneConfig(criterion=settings["criterion"],
                                            amount=settings["amount"], seed=settings["seed"])
            with time_limit(settings["prune_timeout"], "pruning"):
                result = prune_info.prune_checkpoint(dense, data, config)
        except Exception as exc:  # recorded, not hidden: the table shows the message
            doc["errors"]["prune"] = error_record(exc)
            print(f"[{name}] pruning FAILED: {short_error(doc['errors']['prune'])}", flush=True)
            write_json(doc, path)
        else:
            pruned = result.checkpoint
            doc["pruned"] = {
                "test_acc_before_finetune": prune_info.accuracy(pruned.model, data.test),
                "parameters": prune_info.count_parameters(pruned.model),
                "macs": prune_info.total_macs(pruned.model, input_shape),
                "widths": {layer.name: layer.n_units for layer in pruned.layers},
                "layers_pruned": sum(1 for v in result.plan.remove.values() if v),
            }
            stage_done("prune", time.perf_counter() - t0)
            print(f"[{name}] pruned: {doc['dense']['parameters']:,} -> "
                  f"{doc['pruned']['parameters']:,} parameters, test accuracy "
                  f"{100 * doc['pruned']['test_acc_before_finetune']:.2f} % before fine-tuning",
                  flush=True)
            t0 = time.perf_counter()
            try:
                rconfig = prune_info.RetrainConfig(epochs=settings["finetune_epochs"],
                                                   lr=settings["finetune_lr"],
                                                   seed=settings["seed"])
                finetuned, summary = prune_info.retrain_checkpoint(pruned, data, rconfig,
                                                                   progress=False)
            except Exception as exc:
                doc["errors"]["finetune"] = error_record(exc)
                print(f"[{name}] fine-tuning FAILED: {short_error(doc['errors']['finetune'])}",
                      flush=True)
                write_json(doc, path)
            else:
                prune_info.save_checkpoint(finetuned, pruned_path)
                doc["pruned"].update(val_acc=summary["after"]["val_acc"],
                                     test_acc=summary["after"]["test_acc"],
                                     best_epoch=summary["best_epoch"])
                stage_done("finetune", time.perf_counter() - t0)
                print(f"[{name}] fine-tuned test accuracy "
                      f"{100 * doc['pruned']['test_acc']:.2f} %", flush=True)

    # 4. latency (dense and pruned together, interleaved)
    t0 = time.perf_counter()
    models = [dense] + ([finetuned] if finetuned is not None else [])
    try:
        rows = prune_info.benchmark_models(models, data, batches=settings["batches"], threads=1,
                                           repeat=settings["repeat"], runtimes=("onnxruntime",))
    except Exception as exc:
        doc["errors"]["bench"] = error_record(exc)
        print(f"[{name}] latency FAILED: {short_error(doc['errors']['bench'])}", flush=True)
    else:
        for key, row in zip(("dense", "pruned"), rows):
            doc[key]["bench_test_acc"] = row.test_acc
            doc[key]["onnx_bytes"] = row.onnx_bytes
            doc[key]["latency"] = {
                str(e.batch): {"median_ms": e.median_ms, "p90_ms": e.p90_ms,
                               "min_ms": e.min_ms, "repeat": e.repeat, "speedup": e.speedup}
                for e in row.latency}
        if finetuned is not None:
            mac_ratio = doc["dense"]["macs"] / doc["pruned"]["macs"]
            doc["pruned"]["mac_ratio"] = mac_ratio
            doc["pruned"]["param_ratio"] = doc["dense"]["parameters"] / doc["pruned"]["parameters"]
            for entry in doc["pruned"]["latency"].values():
                entry["speedup_per_mac_ratio"] = (entry["speedup"] / mac_ratio
                                                  if entry["speedup"] else None)
        stage_done("bench", time.perf_counter() - t0)
    doc["loadavg_end"] = loadavg_text()
    if not doc["errors"]:
        doc["status"] = "done"
    elif set(doc["errors"]) == {"prune"}:
        doc["status"] = "dense-only"
    else:
        doc["status"] = "failed"
    write_json(doc, path)
    return doc


def pct(v) -> str:
    return "–" if v is None else f"{100 * v:.2f}"


def table(docs: list[dict], batches: list[int]) -> str:
    b = [str(x) for x in batches]
    head = ("| model | test acc dense → pruned → fine-tuned (%) | params dense → pruned | "
            "MACs dense → pruned (ratio) | "
            + " | ".join(f"ORT ms b{x} dense → pruned (speed-up)" for x in b) + " | "
            + " | ".join(f"speed-up / MAC ratio b{x}" for x in b) + " | time (min) |")
    lines = [head, "| " + " | ".join(["---"] * (5 + 2 * len(b))) + " |"]
    notes = []
    for doc in docs:
        d, p = doc.get("dense") or {}, doc.get("pruned") or {}
        if not d:
            lines.append(f"| {doc['model']} | FAILED | | | " + " | " * (2 * len(b)) + " |")
        else:
            acc = (f"{pct(d.get('test_acc'))} → {pct(p.get('test_acc_before_finetune'))} → "
                   f"{pct(p.get('test_acc'))}")
            params = f"{d['parameters']:,} → " + (f"{p['parameters']:,}" if p else "–")
            macs = f"{d['macs']:,} → " + (f"{p['macs']:,} ({p['mac_ratio']:.2f}×)"
                                          if p.get("mac_ratio") else "–")
            lat, eff = [], []
            for x in b:
                dl = (d.get("latency") or {}).get(x)
                pl = (p.get("latency") or {}).get(x)
                if dl is None:
                    lat.append("–")
                elif pl is None:
                    lat.append(f"{dl['median_ms']:.3f} → –")
                else:
                    lat.append(f"{dl['median_ms']:.3f} → {pl['median_ms']:.3f} "
                               f"({pl['speedup']:.2f}×)")
                eff.append(f"{pl['speedup_per_mac_ratio']:.2f}" if pl and
                           pl.get("speedup_per_mac_ratio") else "–")
            minutes = sum(doc.get("seconds", {}).values()) / 60
            lines.append(f"| {doc['model']} | {acc} | {params} | {macs} | " + " | ".join(lat)
                         + " | " + " | ".join(eff) + f" | {minutes:.1f} |")
        for stage, err in doc.get("errors", {}).items():
            notes.append(f"- {doc['model']}: {stage} failed — {short_error(err)}")
    return "\n".join(lines + ([""] + notes if notes else []))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(MODELS),
                        help=f"comma-separated, from: {', '.join(MODELS)}")
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--train-samples", type=int, default=4000,
                        help="training samples (of 48,000); default: ~20 min in all, 2 idle cores")
    parser.add_argument("--val-samples", type=int, default=1000,
                        help="validation samples (model selection and the MI scores)")
    parser.add_argument("--test-samples", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=3, help="dense training epochs")
    parser.add_argument("--finetune-epochs", type=int, default=2)
    parser.add_argument("--finetune-lr", type=float, default=0.01,
                        help="constant learning rate of the fine-tuning (the dense recipe's "
                             "optimiser, SGD momentum 0.9)")
    parser.add_argument("--criterion", default="mi")
    parser.add_argument("--amount", type=float, default=0.5)
    parser.add_argument("--prune-timeout", type=int, default=300,
                        help="seconds a model's pruning may take before it is recorded as "
                             "failed (0: no limit)")
    parser.add_argument("--batches", default="1,64")
    parser.add_argument("--repeat", type=int, default=30, help="timed calls per latency")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--redo", default="", help="comma-separated models to recompute")
    parser.add_argument("--out", default="benchmarks/out/zoo")
    args = parser.parse_args()

    names = [n for n in args.models.split(",") if n]
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        parser.error(f"unknown models {unknown}; choose from {', '.join(MODELS)}")
    batches = [int(x) for x in args.batches.split(",")]
    settings = {"data": args.data, "train_samples": args.train_samples,
                "val_samples": args.val_samples, "test_samples": args.test_samples,
                "epochs": args.epochs, "finetune_epochs": args.finetune_epochs,
                "finetune_lr": args.finetune_lr, "criterion": args.criterion,
                "amount": args.amount, "prune_timeout": args.prune_timeout,
                "batches": batches, "repeat": args.repeat, "seed": args.seed}
    assert set(settings) == set(RESULT_SETTINGS)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    redo = set(args.redo.split(",")) - {""}
    start = time.perf_counter()
    print(f"loadavg at start: {loadavg_text()}; {platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} training threads", flush=True)

    datasets: dict = {}

    def data_for(shape) -> prune_info.Dataset:
        if shape not in datasets:
            full = prune_info.load_dataset(args.data, seed=args.seed, input_shape=shape)
            datasets[shape] = subsample(full, args.train_samples, args.val_samples,
                                        args.test_samples, args.seed)
        return datasets[shape]

    docs = []
    for name in names:
        path = out / f"{name}.json"
        if path.exists() and name not in redo:
            doc = json.loads(path.read_text())
            if doc.get("settings") == settings and doc.get("status") in ("done", "dense-only"):
                print(f"[{name}] finished earlier ({doc['status']}): {path}", flush=True)
                docs.append(doc)
                continue
        if name in redo and path.exists():
            path.unlink()
        try:
            docs.append(run_model(name, data_for(MODELS[name][2]), settings, out))
        except Exception as exc:  # a model that fails outside a stage: recorded, and go on
            err = error_record(exc)
            print(f"[{name}] FAILED: {short_error(err)}", flush=True)
            doc = json.loads(path.read_text()) if path.exists() else {"model": name}
            doc.update(status="failed", settings=settings)
            doc.setdefault("errors", {})["run"] = err
            write_json(doc, path)
            docs.append(doc)

    elapsed = time.perf_counter() - start
    sizes = docs[0].get("sizes", {}) if docs else {}
    text = "\n".join([
        f"{args.data} subset: {sizes.get('train')} train / {sizes.get('val')} val / "
        f"{sizes.get('test')} test samples; dense {args.epochs} epochs (factory recipe), "
        f"{args.criterion} pruning of {args.amount:.0%} of every group's channels, "
        f"{args.finetune_epochs} fine-tuning epoch(s) at lr {args.finetune_lr}; onnxruntime on "
        f"1 thread, median of {args.repeat} interleaved calls; {platform.machine()}, "
        f"torch {torch.__version__}",
        "",
        table(docs, batches),
        "",
        f"this invocation {elapsed / 60:.1f} min; loadavg at end: {loadavg_text()}",
    ])
    (out / "table.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
