"""Benchmark: ``prune-info reproduce``, the whole suite and each finding, timed.

Runs each finding of ``--findings`` (default: all) one after another into one run directory, so
that each finding's time covers only what it adds (A1 trains the first paper's ReLU networks,
A3 then reuses them; C2 reuses C1's networks and searches). Equivalent to::

    prune-info reproduce all --out DIR [--scale toy]

Usage::

    nohup .venv/bin/python benchmarks/bench_reproduce.py --out /tmp/repro > repro.log 2>&1 &
    .venv/bin/python benchmarks/bench_reproduce.py --scale toy --out /tmp/repro-toy

Resumable like the command: run it again with the same ``--out`` and finished stages are reused
(the times then cover the resumed part only). Prints, per finding, the wall time, the verdict,
and at the end a JSON summary with the stage times of ``DIR/timings.json``, also recorded in
``benchmarks/results/`` (:func:`harness.record`), quoted by RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import harness

from prune_info.experiments.reproduce import FINDINGS, ReproduceOptions, run_reproduce


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="run directory")
    parser.add_argument("--scale", choices=("paper", "toy"), default="paper")
    parser.add_argument("--findings", default=",".join(FINDINGS),
                        help="comma-separated findings, in the order to time them")
    parser.add_argument("--data", default=None)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    wanted = [f.strip() for f in args.findings.split(",") if f.strip()]
    started = harness.loadavg()
    print(f"cpus {os.cpu_count()}, load at start {harness.loadavg_text()}", flush=True)
    per_finding = {}
    verdicts: dict[str, str] = {}
    start_all = time.perf_counter()
    done: list[str] = []
    for finding in wanted:
        done.append(finding)
        options = ReproduceOptions(findings=tuple(done), scale=args.scale, data=args.data,
                                   data_dir=args.data_dir, seeds=args.seeds,
                                   epochs=args.epochs)
        start = time.perf_counter()
        report = run_reproduce(options, args.out, progress=not args.quiet,
                               log=lambda line: print(f"  {line}", flush=True))
        seconds = time.perf_counter() - start
        per_finding[finding] = round(seconds, 1)
        for f in report["findings"]:
            verdicts[f["id"]] = f["verdict"]
        print(f"{finding}: {seconds:.1f} s (load {harness.loadavg_text()}); verdicts so far: "
              + ", ".join(f"{k} {v}" for k, v in verdicts.items()), flush=True)
    total = time.perf_counter() - start_all
    with open(os.path.join(args.out, "timings.json")) as f:
        stages = json.load(f)
    summary = {"total_s": round(total, 1), "per_finding_s": per_finding, "stages_s": stages,
               "verdicts": verdicts}
    print(json.dumps(summary, indent=2), flush=True)
    harness.record("bench_reproduce", {k: v for k, v in vars(args).items()
                                       if k not in ("out", "quiet", "data_dir")},
                   summary, started_load=started)
    return summary


if __name__ == "__main__":
    main(sys.argv[1:])
