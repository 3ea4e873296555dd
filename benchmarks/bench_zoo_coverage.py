"""Zoo coverage (issue "The model zoos"): which torchvision and timm classifiers prune-info takes
through every step, next to what torch-pruning alone does with them.

For every torchvision classification model and a list of timm models (one or two per family
torch-pruning's users prune), built with ``num_classes=10`` and no weights, at the smallest
square input each model accepts, on ``digits`` adapted to that input:

* ``info``: the state_dict saved and loaded back with ``load_checkpoint(..., factory=...)``;
* ``score``: ``mi`` of every unit on the validation set (359 images);
* ``prune``: ``prune_checkpoint`` with ``mi``, ``amount=0.5`` (layer-wise; groups that cannot
  be removed faithfully are left out, named in the notes);
* ``reload``: the pruned checkpoint saved and loaded in a fresh object, same outputs;
* ``check``: every pruning step compared with the original with those units ablated (prune-info
  does this inside ``apply_plan``; recorded as passed when the prune finished with it on);
* ``export``: ONNX export checked against PyTorch; ``bench``: one latency per runtime at batch 1;
* ``tp``: torch-pruning alone, ``MetaPruner`` with ``GroupMagnitudeImportance`` at ratio 0.5
  (classifier ignored): does the pruned model run?

and the wall time of ``prune_checkpoint`` with the data-free ``magnitude`` criterion (no data:
no accuracies) against torch-pruning's own pruning of the same model, in the same process.

Each model runs in its own process (a crash or an out-of-memory kill is recorded, not fatal);
``--out``/models/<name>.json is kept, so a rerun skips finished models (``--redo`` forces them).

    .venv/bin/python benchmarks/bench_zoo_coverage.py --out benchmarks/out/zoo   # hours
    .venv/bin/python benchmarks/bench_zoo_coverage.py --models resnet18,timm:resnet50
    .venv/bin/python benchmarks/bench_zoo_coverage.py --hf --out benchmarks/out/zoo-hf
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import harness

#: timm models: one or two per family torch-pruning's users prune.
TIMM = ["resnet50", "regnetx_002", "regnety_002", "efficientnet_b0", "mobilenetv2_100",
        "mobilenetv3_small_100", "mobilenetv3_large_100", "ghostnet_100", "convnext_atto",
        "densenet121", "inception_v3", "vit_tiny_patch16_224", "deit_tiny_patch16_224",
        "eva02_tiny_patch14_224", "cait_xxs24_224", "pvt_v2_b0", "mobilevit_xxs",
        "levit_128s", "edgenext_xx_small", "poolformer_s12", "mixer_s16_224", "resmlp_12_224",
        "fastvit_t8", "repvgg_a0", "cspresnet50", "nf_resnet26", "convformer_s18",
        "swin_tiny_patch4_window7_224", "seresnext26d_32x4d", "dla34", "hrnet_w18_small",
        "efficientformer_l1", "ese_vovnet19b_dw"]

#: HuggingFace image classifiers (``--hf``), built from their default configuration (base
#: sizes) with ``num_labels=10``: every ``...ForImageClassification`` of transformers 5 that
#: takes images, except Dinat (needs the natten package) and the multimodal ones.
HF = ["ViT", "DeiT", "Beit", "Data2VecVision", "Dinov2", "ViTMSN", "IJepa", "Swin", "Swinv2",
      "ConvNext", "ConvNextV2", "ResNet", "RegNet", "Bit", "MobileNetV1", "MobileNetV2",
      "MobileViT", "MobileViTV2", "EfficientNet", "Levit", "PoolFormer", "Pvt", "PvtV2", "Cvt",
      "FocalNet", "SwiftFormer", "Hiera", "HGNetV2", "Segformer"]

STEPS = ("info", "score", "prune", "reload", "check", "export", "bench")
SIZES = (32, 64, 96, 128, 160, 192, 224, 256, 299)


def all_models(hf: bool = False) -> list[str]:
    """Every torchvision classifier and the timm list; with ``hf``, the HuggingFace list."""
    if hf:
        return [f"hf:{name}ForImageClassification" for name in HF]
    import torchvision

    return [*torchvision.models.list_models(module=torchvision.models),
            *(f"timm:{name}" for name in TIMM)]


def classes_kwarg(name: str) -> dict:
    """Ten classes, in the model's own vocabulary (HuggingFace configs call them labels)."""
    return {"num_labels": 10} if name.startswith("hf:") else {"num_classes": 10}


def by_size(names: list[str]) -> list[str]:
    """``names``, fewest parameters first (built on the meta device: no memory, no time), so
    that a sweep cut short has covered the most models."""
    import torch

    from prune_info.zoo import build_factory_model

    def size(name: str) -> float:
        try:
            with torch.device("meta"):
                model = build_factory_model(factory_of(name), classes_kwarg(name))
            return sum(p.numel() for p in model.parameters())
        except Exception:  # built at another input size later: keep it, last
            return float("inf")

    return sorted(names, key=size)


def factory_of(name: str) -> str:
    return name if name.startswith(("timm:", "hf:")) else f"torchvision.models:{name}"


def smallest_input(name: str) -> tuple[dict, tuple[int, int, int]]:
    """The kwargs and ``(3, S, S)`` of the smallest square input the model runs on."""
    import torch

    from prune_info.zoo import build_factory_model

    factory = factory_of(name)
    last: Exception | None = None
    for size in SIZES:
        for extra in ({"img_size": size} if name.startswith("timm:") else
                      {"image_size": size} if name.startswith(("vit_", "hf:")) else {}, {}):
            kwargs = {**classes_kwarg(name), **extra}
            try:
                model = build_factory_model(factory, kwargs).eval()
                with torch.no_grad():
                    out = model(torch.zeros(2, 3, size, size))
                if getattr(out, "shape", None) == (2, 10):
                    return kwargs, (3, size, size)
            except Exception as exc:  # noqa: BLE001  not at this size: try the next
                last = exc
    raise RuntimeError(f"no input size of {SIZES} runs: {last}")


def _error(exc: BaseException) -> str:
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first}"[:400]


def torch_pruning_alone(model, example) -> tuple[bool, float, str | None]:
    """Prune ``model`` with torch-pruning's MetaPruner (magnitude, ratio 0.5); runs after?"""
    import torch
    import torch_pruning as tp

    from prune_info._torch import memory_ceiling

    classifier = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1:]
    start = time.perf_counter()
    try:
        # torch-pruning's graph of a Swin outgrows the machine: a MemoryError, not a kill
        with memory_ceiling():
            pruner = tp.pruner.MetaPruner(model, example, importance=tp.importance.
                                          GroupMagnitudeImportance(p=2), pruning_ratio=0.5,
                                          ignored_layers=classifier)
            pruner.step()
        seconds = time.perf_counter() - start
        with torch.no_grad():
            out = model.eval()(example)
        return out.shape[-1] == 10, seconds, None
    except Exception as exc:  # noqa: BLE001
        return False, time.perf_counter() - start, _error(exc)


def run_one(name: str, out: Path, skip_tp: bool = False) -> dict:
    """Every step for one model (in this process); the record is written as steps finish.
    ``skip_tp``: torch-pruning alone is not run (where it exhausts memory, prune-info's steps
    are still judged)."""
    import torch

    import prune_info as pi
    from prune_info.checkpoint import load_checkpoint, save_checkpoint
    from prune_info.deploy import benchmark_models, export_onnx
    from prune_info.pruning import PruneConfig, prune_checkpoint
    from prune_info.zoo import build_factory_model

    torch.manual_seed(0)
    record: dict = {"model": name, "steps": {}, "errors": {}, "notes": []}
    path = out / "models" / f"{name.replace(':', '_')}.json"
    started = harness.loadavg()

    def save() -> None:
        harness.write_result(path, {"model": name}, record, started_load=started)

    def step(key: str, fn):
        start = time.perf_counter()
        try:
            value = fn()
            record["steps"][key] = True
            return value
        except Exception as exc:  # noqa: BLE001  recorded, the sweep goes on
            record["steps"][key] = False
            record["errors"][key] = _error(exc)
            record.setdefault("tracebacks", {})[key] = traceback.format_exc()[-3000:]
            return None
        finally:
            record.setdefault("seconds", {})[key] = round(time.perf_counter() - start, 2)
            save()

    factory = factory_of(name)
    try:
        kwargs, shape = smallest_input(name)
    except Exception as exc:  # noqa: BLE001
        record["errors"]["input"] = _error(exc)
        save()
        return record
    record.update(factory=factory, kwargs=kwargs, input_shape=list(shape))
    data = pi.load_dataset("digits", input_shape=shape)
    model = build_factory_model(factory, kwargs).eval()
    record["parameters"] = pi.count_parameters(model)
    example = torch.zeros(1, *shape)

    # torch-pruning alone, and its wall time against prune-info's data-free prune
    if skip_tp:
        record["errors"]["tp"] = "not run (--skip-tp)"
    else:
        runs, tp_seconds, tp_error = torch_pruning_alone(copy.deepcopy(model), example)
        record["steps"]["tp"] = runs
        record["seconds"] = {"tp_prune": round(tp_seconds, 2)}
        if tp_error:
            record["errors"]["tp"] = tp_error
    save()
    with tempfile.TemporaryDirectory() as tmp:
        sd = Path(tmp) / "sd.pt"
        torch.save(model.state_dict(), sd)
        ckpt = step("info", lambda: load_checkpoint(sd, factory=factory, factory_kwargs=kwargs))
        if ckpt is None:
            return record
        ckpt.dataset = data.describe()
        record["layers"] = len(ckpt.layers)
        step("score", lambda: pi.compute_scores(ckpt.model, data.val, ["mi"]))
        data_free = ckpt.replace(dataset={"input_shape": list(shape)})
        start = time.perf_counter()
        free = step("prune_magnitude", lambda: prune_checkpoint(
            data_free, None, PruneConfig(criterion="magnitude", amount=0.5)))
        record["seconds"]["pi_prune_magnitude"] = round(time.perf_counter() - start, 2)
        if free is not None:
            record["magnitude_macs"] = [free.summary.macs_before, free.summary.macs_after]
        result = step("prune", lambda: prune_checkpoint(ckpt, data, PruneConfig(
            criterion="mi", amount=0.5)))
        if result is None:
            return record
        s = result.summary
        record["macs"] = [s.macs_before, s.macs_after]
        record["params"] = [s.params_before, s.params_after]
        record["layers_pruned"] = sum(1 for layer in s.layers if layer.removed)
        record["layers_left_out"] = [layer.name for layer in s.layers if layer.ignored]
        record["notes"] = list(s.warnings)
        record["accuracy"] = [s.test_acc_before, s.test_acc_after]
        record["steps"]["check"] = True  # apply_plan verified every step (verify is on)
        pruned_path = Path(tmp) / "pruned.pt"
        save_checkpoint(result.checkpoint, pruned_path)

        def reload():
            again = load_checkpoint(pruned_path)
            x = data.val.head(4).x
            with torch.no_grad():
                diff = float((again.model(x) - result.checkpoint.model.eval()(x)).abs().max())
            if diff > 1e-5:
                raise RuntimeError(f"the reloaded model differs by {diff:.3g}")
            return again

        again = step("reload", reload)
        if again is None:
            return record
        report = step("export", lambda: export_onnx(again, Path(tmp) / "pruned.onnx",
                                                    sample=data.val.head(8).x))
        if report is not None:
            record["export"] = {"exporter": report.exporter, "max_abs_diff": report.max_abs_diff}
        bench = step("bench", lambda: benchmark_models([ckpt, again], data, batches=(1,),
                                                       repeat=5, warmup=1, threads=1))
        if bench is not None:
            record["latency_ms"] = {r.name: {e.runtime: e.median_ms for e in r.latency}
                                    for r in bench}
    save()
    return record


def table(records: list[dict]) -> str:
    head = ["model", "input", "layers", *STEPS, "tp", "pruned / left out", "MACs kept",
            "prune s (mi)", "pi mag s", "tp s", "first error"]
    rows = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    mark = {True: "✓", False: "✗", None: "–"}
    for r in records:
        steps = r.get("steps", {})
        macs = r.get("macs")
        kept = f"{macs[1] / macs[0]:.2f}" if macs and macs[0] else "–"
        errors = r.get("errors", {})
        first = next((f"{k}: {v}" for k, v in errors.items() if k != "tp"), "")
        secs = r.get("seconds", {})
        rows.append("| " + " | ".join([
            r["model"], "x".join(map(str, r.get("input_shape", []))) or "–",
            str(r.get("layers", "–")), *(mark[steps.get(s)] for s in STEPS),
            mark[steps.get("tp")],
            f"{r.get('layers_pruned', '–')} / {len(r.get('layers_left_out', []))}", kept,
            str(secs.get("prune", "–")), str(secs.get("pi_prune_magnitude", "–")),
            str(secs.get("tp_prune", "–")), first.replace("|", "/")[:160]]) + " |")
    return "\n".join(rows)


def summary(records: list[dict]) -> str:
    n = len(records)
    every = [r for r in records if all(r.get("steps", {}).get(s) for s in STEPS)]
    tp_ok = [r for r in records if r.get("steps", {}).get("tp")]
    both = [r for r in every if r.get("steps", {}).get("tp")]
    tracebacks = [r["model"] for r in records if any(
        not e.startswith("PruneInfoError") for k, e in r.get("errors", {}).items()
        if k not in ("tp", "input"))]
    return (f"{n} models: prune-info passes every step on {len(every)}; torch-pruning alone "
            f"prunes {len(tp_ok)} into a model that runs; both: {len(both)}; prune-info only: "
            f"{len(every) - len(both)}; torch-pruning only: {len(tp_ok) - len(both)}. "
            f"Failures that are not a PruneInfoError (a traceback in the CLI): "
            f"{', '.join(tracebacks) or 'none'}.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=None,
                        help="comma-separated (torchvision names, timm:NAME, hf:CLASS); "
                             "default: all, fewest parameters first")
    parser.add_argument("--hf", action="store_true",
                        help="the HuggingFace image classifiers instead of the default list")
    parser.add_argument("--out", default="benchmarks/out/zoo")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per model")
    parser.add_argument("--redo", action="store_true")
    parser.add_argument("--report", action="store_true",
                        help="run nothing: the table of the models finished so far, and the "
                             "list of those not run")
    parser.add_argument("--skip-tp", default="", metavar="MODEL[,MODEL]",
                        help="models whose torch-pruning-alone step is not run (where it "
                             "exhausts memory), so prune-info's steps are still judged")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # the child process: one model
    args = parser.parse_args()
    out = Path(args.out)
    if args.one:
        import torch

        torch.set_num_threads(max(1, len(os.sched_getaffinity(0))))
        run_one(args.one, out, skip_tp=args.one in args.skip_tp.split(","))
        return
    names = args.models.split(",") if args.models else by_size(all_models(args.hf))
    records = []
    if args.report:
        done = [n for n in names if (out / "models" / f"{n.replace(':', '_')}.json").exists()]
        records = [json.loads((out / "models" / f"{n.replace(':', '_')}.json").read_text())
                   ["result"] for n in done]
        missing = [n for n in names if n not in done]
        text = (summary(records) + (f" Not run: {len(missing)} ({', '.join(missing)})."
                                    if missing else "") + "\n\n" + table(records) + "\n")
        (out / "table.md").write_text(text)
        print(text)
        return
    for name in names:
        path = out / "models" / f"{name.replace(':', '_')}.json"
        if path.exists() and not args.redo:
            records.append(json.loads(path.read_text())["result"])
            continue
        start = time.perf_counter()
        try:
            proc = subprocess.run([sys.executable, __file__, "--out", str(out), "--one", name,
                                   "--skip-tp", args.skip_tp],
                                  timeout=args.timeout, capture_output=True, text=True)
            crashed = proc.returncode != 0
            tail = ([f"exit status {proc.returncode}"
                     + (" (SIGKILL: out of memory?)" if proc.returncode == -9 else "") + ": "
                     + "".join(proc.stderr.strip().splitlines()[-1:])] if crashed else [])
        except subprocess.TimeoutExpired:
            crashed, tail = True, [f"timed out after {args.timeout} s"]
        record = json.loads(path.read_text())["result"] if path.exists() else {
            "model": name, "steps": {}, "errors": {}}
        if crashed:
            record.setdefault("errors", {})["process"] = (tail or ["killed"])[0][:300]
            harness.write_result(path, {"model": name}, record, started_load=None)
        records.append(record)
        print(f"{name}: {time.perf_counter() - start:.0f} s, "
              f"{ {k: v for k, v in record.get('steps', {}).items()} }", flush=True)
    text = summary(records) + "\n\n" + table(records) + "\n"
    (out / "table.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
