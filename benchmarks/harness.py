"""The small harness every benchmark script shares: the machine, its load, wall times, and one
JSON result file per configuration; and what the real-model benchmarks (``bench_zoo``,
``bench_groups``) share: their model table, seeded subsets of a dataset, error records.

A result file (``write_result``; ``record`` names it by the configuration and keeps it in
``benchmarks/results/``, where ``benchmarks/results.py`` renders it into RESULTS.md and checks
the quoted block) holds what a RESULTS.md row needs to be checked later: the
command line that produced it, the date, the machine (CPU, cores, memory, Python and torch
versions, GPU if any), the load average when it started and when it ended, the configuration
and the figures. Scripts run from the repository root (``.venv/bin/python benchmarks/X.py``), so
``import harness`` works from any of them (Python puts the script's directory on ``sys.path``).
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shlex
import sys
import time
import traceback
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

__all__ = ["MODELS", "RESULTS_DIR", "Stopwatch", "error_record", "loadavg", "loadavg_text",
           "machine", "record", "result_path", "short_error", "subsample", "write_json",
           "write_result"]

#: Where the result files RESULTS.md quotes are kept (committed; ``benchmarks/results.py check``
#: compares each quoted block with its file).
RESULTS_DIR = Path(__file__).resolve().parent / "results"


def loadavg() -> list[float] | None:
    """The 1, 5 and 15-minute load averages, or None where the system does not say."""
    try:
        return [float(v) for v in Path("/proc/loadavg").read_text().split()[:3]]
    except (OSError, ValueError):
        return None


def loadavg_text() -> str:
    """The load averages as one line (``"1.02 0.87 0.75"``), or ``n/a``."""
    load = loadavg()
    return " ".join(map(str, load)) if load else "n/a"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    import torch

    memory = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory = round(int(line.split()[1]) / 2**20, 1)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": _cpu_model(), "cores": cores, "memory_gib": memory,
            "python": platform.python_version(), "torch": torch.__version__,
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


class Stopwatch:
    """Wall times of named blocks: ``with watch("prune"): ...``; ``watch.seconds["prune"]``."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = round(self.seconds.get(name, 0.0)
                                       + time.perf_counter() - start, 4)


def result_path(out_dir: str | Path, name: str, config: dict[str, Any]) -> Path:
    """``out_dir/name[-key=value...].json``: a file per configuration, named by it."""
    parts = [name] + [f"{k}={v}" for k, v in sorted(config.items())
                      if isinstance(v, (str, int, float)) and len(str(v)) <= 24]
    stem = "-".join(parts).replace("/", "_").replace(" ", "")
    return Path(out_dir) / f"{stem}.json"


def write_result(path: str | Path, config: dict[str, Any], result: dict[str, Any], *,
                 started_load: list[float] | None) -> Path:
    """Write one result with its provenance; the file is replaced as a whole."""
    document = {
        "command": shlex.join([Path(sys.executable).name, *sys.argv]),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": machine(),
        "load": {"start": started_load, "end": loadavg()},
        "config": config,
        "result": result,
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(document, indent=2, default=str) + "\n")
    os.replace(tmp, path)
    return path


def record(name: str, config: dict[str, Any], result: dict[str, Any], *,
           started_load: list[float] | None, out_dir: str | Path = RESULTS_DIR) -> Path:
    """Write one figure set as ``out_dir/name[-config].json`` (:func:`result_path`,
    :func:`write_result`) and say where: the file ``benchmarks/results.py`` renders into
    RESULTS.md."""
    path = write_result(result_path(out_dir, name, config), config, result,
                        started_load=started_load)
    print(f"result: {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")
    return path


#: The real models bench_zoo and bench_groups train: name -> (factory, factory_kwargs, input
#: shape the data are adapted to; None: native 1x28x28)
MODELS: dict[str, tuple[str, dict, tuple[int, int, int] | None]] = {
    "resnet18": ("torchvision.models:resnet18", {"num_classes": 10}, (3, 32, 32)),
    "mobilenet_v2": ("torchvision.models:mobilenet_v2", {"num_classes": 10}, (3, 32, 32)),
    "vgg11_bn": ("torchvision.models:vgg11_bn", {"num_classes": 10}, (3, 32, 32)),
    "vit_tiny": ("timm:vit_tiny_patch16_224",
                 {"img_size": 28, "patch_size": 4, "in_chans": 1, "num_classes": 10}, None),
}


def subsample(data, n_train: int, n_val: int, n_test: int, seed: int):
    """The first samples of a seeded permutation of each split (train and val are random
    permutations already; the designated test set is in file order)."""
    import torch

    from prune_info.data import Split

    def take(split: Split, n: int, salt: int) -> Split:
        if n >= len(split):
            return split
        g = torch.Generator().manual_seed(seed * 1000 + salt)
        idx = torch.randperm(len(split), generator=g)[:n]
        return Split(split.x[idx].contiguous(), split.y[idx].contiguous())

    return replace(data, train=take(data.train, n_train, 1), val=take(data.val, n_val, 2),
                   test=take(data.test, n_test, 3))


def write_json(doc: dict, path: Path) -> None:
    """Write ``doc`` as indented JSON, atomically (temporary file, then rename)."""
    from prune_info.io import atomic_write

    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(doc, indent=2, default=str) + "\n")


def error_record(exc: BaseException) -> dict:
    """Type, message, full traceback, and the innermost prune_info frame it came from."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if "prune_info" in f.filename]
    where = (f"{Path(frames[-1].filename).name}:{frames[-1].lineno} in {frames[-1].name}"
             if frames else None)
    return {"type": type(exc).__name__, "message": str(exc).strip(), "where": where,
            "traceback": traceback.format_exc()}


def short_error(err: dict) -> str:
    first = (err.get("message") or "").splitlines()
    where = f" (in {err['where']})" if err.get("where") else ""
    return f"{err['type']}: {first[0] if first else ''}{where}"
