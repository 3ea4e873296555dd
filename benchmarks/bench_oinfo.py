"""Benchmark the batched O-information and the multiplet search.

Two measurements in one run:

1. **Throughput against thoi.** 20 units + label, 10,000 samples; every multiplet of 3-6 units
   plus the label (60,249 multiplets). prune-info's :func:`o_information_batched` and thoi's
   ``nplets_measures`` (``covmat_precomputed=True``, same covariance, same sample count for the
   bias correction) are timed on the same multiplets (best of ``--repeats``); their values must
   agree to 1e-9 bits (thoi reports nats: divided by ln 2).
2. **Full search on a 100-unit layer.** Exhaustive to 4 units (3.9M multiplets of 4 units +
   label), then greedy growth to the whole layer (and, separately, with the default beam of 8).
   Synthetic ReLU activations of a random layer on a 10-class task unless ``--activations``
   gives an ``.npz`` with ``activations`` [n, units] and ``labels`` [n].

thoi is not a dependency of prune-info: install it in a separate environment, e.g.::

    python3 -m venv /tmp/benchvenv
    /tmp/benchvenv/bin/pip install torch==2.13.0 numpy scipy -r benchmarks/requirements.txt \\
        -c constraints.txt
    PYTHONPATH=. /tmp/benchvenv/bin/python benchmarks/bench_oinfo.py --threads 2

Without thoi the comparison is skipped and the rest still runs. The figures go to
``benchmarks/results/`` (:func:`harness.record`, run from the repository root), quoted by
RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time

import harness
import numpy as np
import torch

from prune_info.measures.gaussian import copula_covariance, o_information_batched
from prune_info.measures.multiplets import iter_combinations, search_multiplets

LN2 = math.log(2.0)


def synthetic_layer(n_samples: int, n_units: int, n_classes: int = 10, seed: int = 0):
    """ReLU outputs of a random layer on inputs whose class is a noisy argmax of projections."""
    rng = np.random.default_rng(seed)
    n_inputs = 32
    z = rng.standard_normal((n_samples, n_inputs))
    logits = z @ rng.standard_normal((n_inputs, n_classes)) + 0.5 * rng.standard_normal(
        (n_samples, n_classes))
    labels = logits.argmax(axis=1)
    pre = z @ rng.standard_normal((n_inputs, n_units)) / math.sqrt(n_inputs)
    pre += 0.3 * rng.standard_normal((n_samples, n_units))
    return np.maximum(pre, 0.0), labels


def best_time(fn, repeats: int) -> tuple[float, object]:
    best, out = math.inf, None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def compare_with_thoi(n_units: int, n_samples: int, sizes: range, repeats: int, seed: int):
    x, y = synthetic_layer(n_samples, n_units, seed=seed)
    cov = copula_covariance(x, y, seed=seed)
    label = n_units
    rows = []
    try:
        from thoi.measures.gaussian_copula import nplets_measures
    except ImportError as exc:  # thoi is optional
        nplets_measures = None
        print(f"thoi not importable ({exc}); comparison skipped", file=sys.stderr)
    cov_t = torch.from_numpy(cov)
    tot = {"multiplets": 0, "prune_info_s": 0.0, "thoi_s": 0.0, "max_abs_diff_bits": 0.0}
    for k in sizes:
        units = np.concatenate(list(iter_combinations(n_units, k)))
        mult = np.concatenate([units, np.full((units.shape[0], 1), label)], axis=1)
        t_pi, ours = best_time(lambda mult=mult: o_information_batched(cov, mult, n_samples),
                                repeats)
        row = {"units": k, "multiplets": int(mult.shape[0]), "prune_info_s": t_pi,
               "prune_info_per_s": mult.shape[0] / t_pi}
        tot["multiplets"] += mult.shape[0]
        tot["prune_info_s"] += t_pi
        if nplets_measures is not None:
            mult_t = torch.from_numpy(mult)
            t_th, theirs = best_time(
                lambda mult_t=mult_t: nplets_measures(cov_t, mult_t, covmat_precomputed=True,
                                                      T=n_samples, verbose=40), repeats)
            theirs_bits = theirs[:, 0, 2].numpy() / LN2
            diff = float(np.max(np.abs(ours - theirs_bits)))
            row.update({"thoi_s": t_th, "thoi_per_s": mult.shape[0] / t_th,
                        "max_abs_diff_bits": diff})
            tot["thoi_s"] += t_th
            tot["max_abs_diff_bits"] = max(tot["max_abs_diff_bits"], diff)
        rows.append(row)
    tot["prune_info_per_s"] = tot["multiplets"] / tot["prune_info_s"]
    if nplets_measures is not None:
        tot["thoi_per_s"] = tot["multiplets"] / tot["thoi_s"]
        tot["rate_ratio"] = tot["prune_info_per_s"] / tot["thoi_per_s"]
        tot["agree_to_1e-9"] = tot["max_abs_diff_bits"] <= 1e-9
    return rows, tot


def wide_search(x, y, beam_width: int, seed: int):
    t0 = time.perf_counter()
    res = search_multiplets(x, y, beam_width=beam_width, seed=seed)
    seconds = time.perf_counter() - t0
    sizes = res.sizes
    beam_better = sum(1 for r in sizes.values() if r.synergy_method == "beam")
    return {
        "n_units": res.n_units,
        "n_samples": res.n_samples,
        "max_exhaustive": res.max_exhaustive,
        "beam_width": res.beam_width,
        "n_evaluated": res.n_evaluated,
        "seconds": seconds,
        "best_synergy_omega": {k: sizes[k].synergy_omega for k in (2, 4, 10, 50, res.n_units)
                               if k in sizes},
        "sizes_where_beam_beat_greedy_synergy": beam_better,
        "synergy_order_head": [int(u) for u in res.synergy_order[:10]],
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=20)
    parser.add_argument("--samples", type=int, default=10000)
    parser.add_argument("--min-size", type=int, default=3)
    parser.add_argument("--max-size", type=int, default=6)
    parser.add_argument("--wide-units", type=int, default=100)
    parser.add_argument("--activations", help=".npz with 'activations' [n, units] and 'labels'")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    info = {"format": "prune-info/bench-oinfo/1", "python": platform.python_version(),
            "torch": torch.__version__, "numpy": np.__version__,
            "torch_threads": torch.get_num_threads(), "machine": platform.machine()}
    try:
        from importlib.metadata import PackageNotFoundError, version
        info["thoi"] = version("thoi")
    except PackageNotFoundError:  # thoi is optional
        info["thoi"] = None

    started = harness.loadavg()
    rows, tot = compare_with_thoi(args.units, args.samples,
                                  range(args.min_size, args.max_size + 1), args.repeats,
                                  args.seed)
    print(f"O-information of all multiplets of {args.min_size}-{args.max_size} units + label, "
          f"{args.units} units, {args.samples} samples (best of {args.repeats})")
    print(f"{'units':>5} {'multiplets':>10} {'prune-info/s':>13} {'thoi/s':>13} "
          f"{'max|diff| bits':>15}")
    for r in rows:
        print(f"{r['units']:>5} {r['multiplets']:>10} {r['prune_info_per_s']:>13,.0f} "
              f"{r.get('thoi_per_s', float('nan')):>13,.0f} "
              f"{r.get('max_abs_diff_bits', float('nan')):>15.2e}")
    print(f"total {tot['multiplets']} multiplets: prune-info {tot['prune_info_per_s']:,.0f}/s"
          + (f", thoi {tot['thoi_per_s']:,.0f}/s, ratio {tot['rate_ratio']:.2f}, "
             f"max |diff| {tot['max_abs_diff_bits']:.2e} bits" if "thoi_per_s" in tot else ""))

    if args.activations:
        data = np.load(args.activations)
        x, y = data["activations"], data["labels"]
        source = args.activations
    else:
        x, y = synthetic_layer(args.samples, args.wide_units, seed=args.seed)
        source = "synthetic ReLU layer"
    searches = []
    for beam in (0, None):
        s = wide_search(x, y, beam_width=beam, seed=args.seed)
        searches.append(s)
        print(f"full search, {s['n_units']} units x {s['n_samples']} samples ({source}), "
              f"exhaustive to {s['max_exhaustive']}, beam {s['beam_width']}: "
              f"{s['seconds']:.2f} s, {s['n_evaluated']:,} multiplets; beam beat greedy at "
              f"{s['sizes_where_beam_beat_greedy_synergy']} sizes")
    harness.record("bench_oinfo", {k: v for k, v in vars(args).items() if k != "json"}, {
        "thoi": info.get("thoi"),
        "per_size": {f"{r['units']} units": {k: v for k, v in r.items() if k != "units"}
                     for r in rows},
        # without thoi there is nothing to compare with: no thoi time, no difference
        "total": {k: v for k, v in tot.items()
                  if info.get("thoi") or not k.startswith(("thoi", "max_abs", "rate", "agree"))},
        "wide_source": source,
        **{f"search, beam {s['beam_width']}": s for s in searches}}, started_load=started)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({**info, "comparison": rows, "comparison_total": tot,
                       "wide_search": searches, "wide_source": source}, fh, indent=2)
    if "agree_to_1e-9" in tot and not tot["agree_to_1e-9"]:
        print("values differ from thoi by more than 1e-9 bits", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
