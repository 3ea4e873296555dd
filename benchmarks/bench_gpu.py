"""The GPU path in one short script (issue #15, part 5): every command with ``--device cuda``,
GPU latency of dense against pruned models, and GPU against CPU speed of training and ablation.

Prepared to run in a few minutes on a lent GPU machine (device time is short), in one go::

    .venv/bin/python benchmarks/bench_gpu.py --out "$OUT/gpu"        # on the GPU machine
    .venv/bin/python benchmarks/bench_gpu.py --device cpu --quick    # a dry run here

Stages (each recorded in ``--out``/gpu.json as it finishes, failures kept with their message):

1. ``pytest`` of the CUDA tests (``-k cuda``);
2. every command with ``--device cuda`` on a FashionMNIST MLP and on ``helpers:tiny_resnet``
   (train, score, ablate, oinfo, prune, retrain, export, bench, study), exit status and time;
3. latency of dense and 50 %-pruned ResNet-18 (3x32x32) and MLP with CUDA events, batch
   1 / 64 / 256, eager and ``torch.compile`` (median of ``--repeat``), and onnxruntime's CUDA
   provider when it is installed;
4. a 10-seed batched training epoch and 26 ablation curves of fc1, on the device and on the CPU
   (same run), and their ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

import prune_info
from prune_info.analysis.curves import layerwise_curves, random_orders
from prune_info.io import atomic_write
from prune_info.training.batched import train_seeds
from prune_info.zoo import build_factory_model, build_model, parse_arch

ROOT = Path(__file__).resolve().parent.parent


def _write(doc: dict, path: Path) -> None:
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(doc, indent=2, default=str) + "\n")


def _stage(doc: dict, name: str, path: Path, fn) -> None:
    start = time.perf_counter()
    try:
        result = fn()
        doc[name] = {"result": result, "ok": not (isinstance(result, dict)
                                                  and result.get("failed"))}
    except Exception as exc:  # recorded, the next stage still runs
        doc[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    doc[name]["seconds"] = round(time.perf_counter() - start, 1)
    print(f"[{name}] {'ok' if doc[name]['ok'] else doc[name].get('error', 'failed')} "
          f"({doc[name]['seconds']} s)", flush=True)
    _write(doc, path)


def cuda_tests() -> dict:
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-k", "cuda", "tests"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    return {"returncode": proc.returncode, "tail": proc.stdout.strip().splitlines()[-3:]}


def commands(device: str, work: Path, quick: bool) -> dict:
    """Each command once on an MLP and on a small residual CNN; exit status and seconds."""
    epochs = "1"
    mlp, cnn = work / "mlp.pt", work / "cnn.pt"
    data = ["--data", "digits"] if quick else ["--data", "fashion-mnist"]
    runs = {
        "train mlp": ["train", *data, "--arch", "784-100-100-10" if not quick else "64-32-10",
                      "--epochs", epochs, "-o", str(mlp)],
        "train cnn": ["train", *data, "--model", "helpers:tiny_resnet", "--model-kwargs",
                      "width=16", "--epochs", epochs, "-o", str(cnn)],
    }
    for name, path in (("mlp", mlp), ("cnn", cnn)):
        runs |= {
            f"score {name}": ["score", str(path), "--criteria", "mi,gcmi-model,taylor"],
            f"ablate {name}": ["ablate", str(path), "--criteria", "mi", "--random", "2"],
            f"oinfo {name}": ["oinfo", str(path), "--max-exhaustive", "2", "--max-size", "4"],
            f"prune {name}": ["prune", str(path), "--criterion", "mi", "--amount", "0.5", "-o",
                              str(work / f"{name}-p.pt")],
            f"retrain {name}": ["retrain", str(work / f"{name}-p.pt"), "--epochs", "1", "-o",
                                str(work / f"{name}-r.pt")],
            f"export {name}": ["export", str(work / f"{name}-r.pt"), "-o",
                               str(work / f"{name}.onnx")],
            f"bench {name}": ["bench", str(path), str(work / f"{name}-r.pt"), "--repeat", "5"],
        }
    runs["study"] = ["study", *data, "--arch", "784-100-100-10" if not quick else "64-32-10",
                     "--seeds", "6", "--epochs", "1", "--random", "2", "--out",
                     str(work / "study")]
    out = {}
    for name, args in runs.items():
        no_device = args[0] in ("export",)
        full = [str(Path(sys.executable).parent / "prune-info"), *args,
                *([] if no_device else ["--device", device])]
        start = time.perf_counter()
        proc = subprocess.run(full, cwd=ROOT, capture_output=True, text=True, timeout=600,
                              env={**os.environ, "PYTHONPATH": str(ROOT / "tests")})
        out[name] = {"returncode": proc.returncode,
                     "seconds": round(time.perf_counter() - start, 1),
                     "stderr_tail": proc.stderr.strip().splitlines()[-1:]}
        print(f"  {name}: exit {proc.returncode} in {out[name]['seconds']} s", flush=True)
    return {"runs": out, "failed": [name for name, run in out.items() if run["returncode"]]}


def _cuda_ms(model, x, repeat: int) -> float:
    """Median milliseconds of one forward pass, timed with CUDA events (CPU: perf_counter)."""
    times = []
    with torch.no_grad():
        for _ in range(3):
            model(x)
        for _ in range(repeat):
            if x.is_cuda:
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(
                    enable_timing=True)
                start.record()
                model(x)
                end.record()
                torch.cuda.synchronize()
                times.append(start.elapsed_time(end))
            else:
                t = time.perf_counter()
                model(x)
                times.append(1000 * (time.perf_counter() - t))
    return statistics.median(times)


def latency(device: str, repeat: int, quick: bool) -> dict:
    out: dict = {}
    shape = (3, 32, 32)
    resnet_kwargs = {"num_classes": 10}
    arch = parse_arch("3072-512-512-10", shape, 10)
    ckpts = {
        "resnet18": prune_info.Checkpoint(
            model=build_factory_model("torchvision.models:resnet18", resnet_kwargs).eval(),
            factory="torchvision.models:resnet18", factory_kwargs=resnet_kwargs,
            dataset={"input_shape": list(shape)}),
        "mlp": prune_info.Checkpoint(model=build_model(arch).eval(), arch=arch,
                                     dataset={"input_shape": list(shape)}),
    }
    for name, ckpt in ckpts.items():
        model = ckpt.model
        pruned = prune_info.prune_checkpoint(
            ckpt, None, prune_info.PruneConfig(criterion="magnitude", amount=0.5,
                                               verify=False)).checkpoint.model.eval()
        for label, net in (("dense", model), ("pruned", pruned)):
            net = net.to(device)
            variants = {"eager": net}
            if not quick and device.startswith("cuda"):
                variants["compile"] = torch.compile(net)
            for variant, fn in variants.items():
                for batch in (1, 64, 256):
                    x = torch.randn(batch, *shape, device=device)
                    key = f"{name} {label} {variant} b{batch}"
                    out[key] = round(_cuda_ms(fn, x, repeat), 4)
                    print(f"  {key}: {out[key]} ms", flush=True)
    try:
        import onnxruntime as ort

        out["onnxruntime_providers"] = ort.get_available_providers()
    except ImportError:
        out["onnxruntime_providers"] = None
    return out


def speed(device: str, quick: bool) -> dict:
    """Batched 10-seed training epoch and 26 fc1 curves, on ``device`` and on the CPU."""
    data = prune_info.load_dataset("digits" if quick else "fashion-mnist")
    arch = "64-100-100-10" if quick else "784-100-100-10"
    out = {}
    for where in dict.fromkeys([device, "cpu"]):
        start = time.perf_counter()
        ckpts = train_seeds(
            data, arch, list(range(10)), "relu", "l2", prune_info.TrainConfig(epochs=1),
            device=where, progress=False, batched=True)
        out[f"train 10 seeds 1 epoch, {where}"] = round(time.perf_counter() - start, 2)
        model = ckpts[0].model.to(where).eval()
        orders = random_orders(100, 26, seed=0)
        start = time.perf_counter()
        layerwise_curves(model, "fc1", orders, data.test, device=where)
        if where.startswith("cuda"):
            torch.cuda.synchronize()
        out[f"26 curves of fc1, {where}"] = round(time.perf_counter() - start, 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--quick", action="store_true", help="digits and small models (dry run)")
    parser.add_argument("--out", default="benchmarks/out/gpu")
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("no CUDA device here; run it on the GPU machine, or --device cpu --quick "
                     "for a dry run")
    out = Path(args.out)
    (out / "work").mkdir(parents=True, exist_ok=True)
    path = out / "gpu.json"
    doc: dict = {"machine": platform.machine(), "torch": torch.__version__,
                 "device": (torch.cuda.get_device_name(0) if args.device.startswith("cuda")
                            else "cpu"),
                 "loadavg": Path("/proc/loadavg").read_text().strip()}
    if args.device.startswith("cuda"):
        _stage(doc, "cuda tests", path, cuda_tests)
    _stage(doc, "commands", path, lambda: commands(args.device, out / "work", args.quick))
    _stage(doc, "latency", path, lambda: latency(args.device, args.repeat, args.quick))
    _stage(doc, "speed", path, lambda: speed(args.device, args.quick))
    print(json.dumps(doc, indent=2, default=str))


if __name__ == "__main__":
    main()
