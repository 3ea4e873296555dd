"""Your data, streamed (issue "Your own data"): an image folder read in batches, in constant memory.

FashionMNIST is written once as an ImageFolder of PNG files (``train/`` 60,000 and ``test/``
10,000 images, one folder per class), and a second folder holds its first 10,000 training
images only. On a torchvision ResNet-18 (``num_classes=10``, no weights) at 3x32x32:

* **throughput**: ``score --criteria mi,kl,entropy`` on the validation split (12,000 images of
  the big folder) against a bare loop of the same ``DataLoader`` and forward passes, in one
  process, interleaved (``--repeat`` rounds); the ratio is bare / score time (target >= 0.9);
* **memory**: peak RSS of ``prune-info score --batch-size 1024`` in a fresh process on the
  10,000-image folder and on the 70,000-image one (target: within 10 %; at the default batch of
  4,096 the small folder's 2,000 validation images are one smaller batch, which measured the batch
  size rather than the data: 1,152 against 1,668 MiB);
* ``prune`` (mi, 0.5) and ``bench`` (batch 1, 64) on the big folder, with their wall times;
* ``--in-memory``: only the throughput, on 12,000 random inputs held in memory.

    .venv/bin/python benchmarks/bench_data.py --out benchmarks/out/data
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import harness


def write_folder(root: Path, limit_train: int | None = None) -> Path:
    """FashionMNIST as PNG files: ``root/train/<class>/`` and ``root/test/<class>/``, or with
    ``limit_train`` the first that many training images in ``root/<class>/`` alone."""
    import numpy as np
    from PIL import Image

    from prune_info.data.builtin import CLASSES, _locate, read_idx

    done = root / ".complete"
    if done.exists():
        return root
    files = _locate("fashion-mnist", None)
    names = [c.replace("/", "-") for c in CLASSES["fashion-mnist"]]
    parts = (("train", "train_x", "train_y"), ("test", "test_x", "test_y"))
    for part, xk, yk in parts[:1] if limit_train else parts:
        images, labels = read_idx(files[xk], 3), read_idx(files[yk], 1)
        for i in range(limit_train or len(labels)):
            folder = (root if limit_train else root / part) / names[int(labels[i])]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.asarray(images[i]), mode="L").save(folder / f"{i:05d}.png")
    done.write_text("ok\n")
    return root


def rss_of(args: list[str]) -> tuple[float, float]:
    """Peak RSS (MiB) and wall time of one ``prune-info`` command in a fresh process."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "prune_info", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.read().decode()[-2000:] if proc.stderr else "failed")
    return usage.ru_maxrss / 1024, seconds


def throughput(folder: Path | None, repeat: int, batch: int, workers: int) -> dict:
    """Seconds of scoring vs a bare loop over the same batches, interleaved, one process.
    ``folder`` None: 12,000 seeded random inputs in memory (the counting's cost without the
    image decoding)."""
    import torch

    from prune_info.criteria.options import ScoreOptions
    from prune_info.criteria.report import score_report
    from prune_info.data import Split, load_dataset
    from prune_info.zoo import build_factory_model

    torch.manual_seed(0)
    model = build_factory_model("torchvision.models:resnet18", {"num_classes": 10}).eval()
    if folder is None:
        split = Split(torch.randn(12_000, 3, 32, 32), torch.randint(0, 10, (12_000,)))
    else:
        data = load_dataset(f"imagefolder:{folder}", input_shape=(3, 32, 32), workers=workers)
        split = data.val
    options = ScoreOptions(batch_size=batch)

    @torch.no_grad()
    def bare() -> None:
        for x, _ in split.batches(batch):
            model(x)

    def scored() -> None:
        score_report(model, split, ["mi", "kl", "entropy"], n_classes=10, options=options)

    times: dict[str, list[float]] = {"bare": [], "score": []}
    scored()  # warm-up: read points, the first pass of the files through the page cache
    for _ in range(repeat):
        for name, fn in (("bare", bare), ("score", scored)):
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    best = {k: min(v) for k, v in times.items()}
    return {"samples": len(split), "batch": batch, "workers": workers, "seconds": times,
            "ratio_bare_over_score": best["bare"] / best["score"],
            "images_per_s": {k: len(split) / v for k, v in best.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="benchmarks/out/data")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--in-memory", action="store_true",
                        help="only the throughput, on random inputs in memory (no folders)")
    args = parser.parse_args()
    out = Path(args.out)
    if args.in_memory:
        print(json.dumps(throughput(None, args.repeat, args.batch, 0), indent=1))
        return
    started = harness.loadavg()
    watch = harness.Stopwatch()
    with watch("write_folders"):
        big = write_folder(out / "fashion-png")
        small = write_folder(out / "fashion-png-10k", limit_train=10_000)
    result: dict = {"folders": {"big": str(big), "small": str(small)}}
    with watch("throughput"):
        result["throughput"] = throughput(big, args.repeat, args.batch, args.workers)
    print(json.dumps(result["throughput"], indent=1), flush=True)

    # a trained-enough checkpoint to score and prune: one short epoch on the big folder
    model = out / "resnet.pt"
    common = ["--input-shape", "3,32,32", "--workers", str(args.workers)]
    if not model.exists():
        with watch("train"):
            subprocess.run([sys.executable, "-m", "prune_info", "train", "--data",
                            f"imagefolder:{big}", "--model", "torchvision.models:resnet18",
                            "--model-kwargs", "num_classes=10", *common, "--epochs", "1",
                            "--quiet", "-o", str(model)], check=True)
    small_model = out / "resnet-10k.pt"
    if not small_model.exists():
        subprocess.run([sys.executable, "-m", "prune_info", "train", "--data",
                        f"imagefolder:{small}", "--model", "torchvision.models:resnet18",
                        "--model-kwargs", "num_classes=10", *common, "--epochs", "1",
                        "--quiet", "-o", str(small_model)], check=True)
    rss = {}
    for label, path in (("10k", small_model), ("70k", model)):
        # the same batch (1,024) in both: the small folder's 2,000 validation images would
        # otherwise make its one batch smaller than the default 4,096, and its activations too
        mib, seconds = rss_of(["score", str(path), "--criteria", "mi,kl,entropy",
                               "--batch-size", "1024"])
        rss[label] = {"peak_rss_mib": round(mib, 1), "seconds": round(seconds, 1)}
    rss["ratio_70k_over_10k"] = rss["70k"]["peak_rss_mib"] / rss["10k"]["peak_rss_mib"]
    result["score_rss"] = rss
    print(json.dumps(rss, indent=1), flush=True)
    pruned = out / "resnet-pruned.pt"
    mib, seconds = rss_of(["prune", str(model), "--criterion", "mi", "--amount", "0.5",
                           "-o", str(pruned)])
    result["prune"] = {"peak_rss_mib": round(mib, 1), "seconds": round(seconds, 1)}
    mib, seconds = rss_of(["bench", str(model), str(pruned), "--batch", "1,64", "--repeat",
                           "10", "--quiet"])
    result["bench"] = {"peak_rss_mib": round(mib, 1), "seconds": round(seconds, 1)}
    result["seconds"] = watch.seconds
    path = harness.write_result(harness.result_path(out, "data", {"batch": args.batch,
                                                                   "workers": args.workers}),
                                vars(args), result, started_load=started)
    print(json.dumps({k: v for k, v in result.items() if k != "throughput"}, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
