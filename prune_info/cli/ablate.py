"""``prune-info ablate``: cumulative ablation curves of one trained model."""

from __future__ import annotations

from pathlib import Path

import click

from prune_info._torch import resolve_device
from prune_info.analysis.curves import (
    DEFAULT_STEPS,
    ORDERS,
    SPARSE_ABOVE,
    check_at_k,
    compute_curves,
    default_at_k,
    nearest_k,
    spaced_ks,
    unit_means,
)
from prune_info.cli.app import cli, flag_message
from prune_info.cli.common import (
    check_max_samples,
    check_output,
    data_options,
    device_option,
    echo_json,
    json_option,
    max_samples_option,
    model_command_args,
    parse_int_list,
    seed_option,
)
from prune_info.criteria.context import compute_scores
from prune_info.criteria.options import ScoreOptions
from prune_info.criteria.ranking import tie_warnings
from prune_info.criteria.registry import parse_criteria
from prune_info.data import bounded, note
from prune_info.errors import PruneInfoError
from prune_info.io import write_json
from prune_info.nn import resolve_layers
from prune_info.viz.ablation import plot_ablation
from prune_info.viz.figures import check_image_path

CURVES_FORMAT = "prune-info-ablation"


def parse_names(text: str, what: str, allowed: tuple[str, ...] | None = None) -> list[str]:
    """``"low,high"`` -> ``["low", "high"]``, checked against ``allowed``, no repeats."""
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise PruneInfoError(f"{what} is empty")
    if len(set(names)) != len(names):
        raise PruneInfoError(f"{what} repeats a value: {text}")
    if allowed is not None:
        bad = [n for n in names if n not in allowed]
        if bad:
            raise PruneInfoError(f"{what}: unknown value {bad[0]!r}; choose from: "
                                 f"{', '.join(allowed)}")
    return names


def modes_from_flags(layerwise: bool, whole_network: bool) -> list[str]:
    """``--layerwise`` (default) and / or ``--whole-network``."""
    modes = (["layerwise"] if layerwise or not whole_network else []) + \
        (["network"] if whole_network else [])
    return modes


@cli.command()
@model_command_args
@data_options
@click.option("--criteria", default="entropy,mi,kl", show_default=True, metavar="NAME[,NAME]",
              help="Criteria ranking the units (computed on the validation set); '' for none.")
@click.option("--order", "orders", default="low,high", show_default=True, metavar="low,high",
              help="Ablate the lowest-ranked units first (low), the highest (high), or both.")
@click.option("--random", "n_random", type=click.IntRange(min=0), default=20, show_default=True,
              help="Random orderings (seeded); drawn as a mean ± std band.")
@click.option("--layerwise", is_flag=True,
              help="Ablate within each layer (the default).")
@click.option("--whole-network", is_flag=True,
              help="Rank the units of all layers together (with --layerwise: both).")
@click.option("--layers", default=None, metavar="NAME[,NAME]",
              help="Layers to ablate (default: every hidden layer).")
@click.option("--ablate-to", type=click.Choice(["zero", "mean"]), default="zero",
              show_default=True, help="Replace an ablated unit's output by 0 or by its "
                                      "training-set mean.")
@click.option("--at", "at_text", default=None, metavar="K[,K...]",
              help="Report the gap to random ablation at K ablated units.")
@click.option("--steps", type=int, default=None, metavar="N",
              help=f"Compute each curve at N evenly spaced k from 0 to n (default: "
                   f"{DEFAULT_STEPS} on scopes wider than {SPARSE_ABOVE} units, every k "
                   "otherwise).")
@click.option("--at-k", "at_k_text", default=None, metavar="K,K[,K...]",
              help="Compute each curve at these k only (sorted, at least two).")
@max_samples_option
@click.option("--bins", type=int, default=2, show_default=True,
              help="Quantisation bins of the information criteria.")
@seed_option
@device_option
@click.option("--out", default=None, type=click.Path(dir_okay=False), metavar="FILE.json",
              help="Write every curve (correct counts and accuracies) as JSON.")
@click.option("--plot", default=None, type=click.Path(dir_okay=False), metavar="FILE.png",
              help="Draw the curves as in Figs. 2-5 of the paper.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@json_option
def ablate(ckpt, data_args, criteria, orders, n_random, layerwise, whole_network,
           layers, ablate_to, at_text, steps, at_k_text, max_samples, bins, seed, device, out,
           plot, quiet, as_json):
    """Accuracy after cumulatively ablating units ranked by information measures.

    Units are ranked on the validation set; the accuracy on the test set is measured after
    ablating the k lowest- (or highest-) ranked units, for every k, within each layer or
    across the whole network, next to random orderings. On scopes wider than 64 units (a
    convolutional layer: one pass of the rest of the network per ordering and k) the curves are
    computed at 33 evenly spaced k by default; --steps and --at-k choose the points.

    \b
    Examples:
      prune-info ablate model.pt --criteria mi,kl,entropy --order low,high --random 20 \\
          --out curves.json --plot curves.png
      prune-info ablate model.pt --whole-network --ablate-to mean --at 80
      prune-info ablate resnet.pt --layers layer2.1.conv1 --steps 17 --max-samples 2000
    """
    names = parse_criteria(criteria) if criteria.strip() else []
    order_list = parse_names(orders, "--order", ORDERS)
    modes = modes_from_flags(layerwise, whole_network)
    at = parse_int_list(at_text, "--at", 0) if at_text else []
    if at and n_random == 0:
        raise PruneInfoError("--at compares with random ablation, but --random is 0; pass "
                             "--random R")
    if not names and n_random == 0:
        raise PruneInfoError("nothing to ablate: give --criteria or --random R")
    check_max_samples(max_samples)
    if steps is not None and at_k_text is not None:
        raise PruneInfoError("--steps and --at-k both choose the points; give one of them")
    at_k_list = parse_int_list(at_k_text, "--at-k", 0) if at_k_text is not None else None
    inputs = [ckpt.source] if ckpt.source else []
    outputs = [p for p in (out, plot) if p is not None]
    if plot is not None:
        check_image_path(plot)
    for path in outputs:
        check_output(path, *inputs)
    if out is not None and plot is not None and Path(out).resolve() == Path(plot).resolve():
        raise PruneInfoError("--out and --plot name the same file; choose different files")
    dev = resolve_device(device)
    model = ckpt.model.to(dev).eval()
    infos = resolve_layers(model, parse_names(layers, "--layers") if layers else None)
    scopes = {}
    kinds = {info.name: info.kind for info in infos}
    if "layerwise" in modes:
        scopes.update({info.name: info.n_units for info in infos})
    if "network" in modes:
        scopes["network"] = sum(info.n_units for info in infos)
        kinds["network"] = ("linear" if all(k == "linear" for k in kinds.values())
                            else "conv")
    for k in at:
        for scope, n in scopes.items():
            if k > n:
                raise PruneInfoError(f"--at {k} is beyond the {n} units of {scope}; choose "
                                     f"k <= {n}")
    points = {scope: _points(n, scope, steps, at_k_list, kinds[scope])
              for scope, n in scopes.items()}

    data = data_args.load(ckpt)
    test = bounded(data.test, max_samples, "the ablation curves", note)
    scores = {}
    if names:
        scores = compute_scores(model, data.val, names, n_classes=data.n_classes,
                                layers=[i.name for i in infos],
                                options=ScoreOptions(bins=bins, seed=seed, device=str(dev)))
        for line in tie_warnings(scores):
            click.echo(flag_message(line, click.get_current_context().command), err=True)
    means = unit_means(model, data.train, [i.name for i in infos], device=dev) \
        if ablate_to == "mean" else None
    results = {}
    for mode in modes:
        mode_points = {scope: ks for scope, ks in points.items()
                       if (scope == "network") == (mode == "network")}
        results[mode] = compute_curves(model, test, scores, orders=order_list,
                                       random=n_random, seed=seed, mode=mode,
                                       layers=[i.name for i in infos], ablate_to=ablate_to,
                                       means=means, device=dev, progress=not quiet,
                                       at_k=mode_points)
    document = _document(ckpt, data, results, at, seed)
    if len(test) < len(data.test):
        document["max_samples"] = len(test)
    if plot is not None:
        _plot(results, plot, f"{ckpt.spec} on {data.name} test set, ablation to {ablate_to}")
    if out is not None:
        write_json(document, out, CURVES_FORMAT)
    if as_json:
        echo_json(document, CURVES_FORMAT)
        return
    _print_table(document)
    for path in outputs:
        click.echo(f"wrote {path}")


def _points(n: int, scope: str, steps: int | None, at_k: list[int] | None,
            kind: str) -> list[int] | None:
    """The k computed on one scope (None: every k): --at-k, --steps, or the default."""
    if at_k is not None:
        return check_at_k(at_k, n, scope, what="--at-k")
    if steps is not None:
        return check_at_k(spaced_ks(n, steps, scope, what="--steps"), n, scope)
    return default_at_k(n, kind)


def _document(ckpt, data, results, at, seed) -> dict:
    doc = {"model": ckpt.source, "arch": ckpt.spec, "dataset": data.name, "split": "test",
           "seed": seed, "modes": {}}
    for mode, curves in results.items():
        scopes = {}
        for scope, by_label in curves.counts.items():
            entry = {"units": curves.units[scope], "counts": {}, "accuracy": {}, "gaps": []}
            ks = curves.ks(scope)
            if scope in curves.at_k:
                entry["at_k"] = ks
            for label, counts in by_label.items():
                acc = counts.double() / curves.n_samples
                entry["counts"][label] = counts.tolist()
                entry["accuracy"][label] = {"mean": acc.mean(0).tolist(),
                                            "std": acc.std(0).tolist() if acc.shape[0] > 1
                                            else None}
            if "random" in by_label:
                rnd = entry["accuracy"]["random"]["mean"]
                for label in by_label:
                    if label == "random":
                        continue
                    for wanted in at:
                        i = nearest_k(ks, wanted)
                        k = ks[i]
                        gap = 100.0 * (entry["accuracy"][label]["mean"][i] - rnd[i])
                        near = "" if k == wanted else f", the computed k nearest {wanted}"
                        row = {"label": label, "k": k, "gap": gap,
                               "text": f"gap@{k} = {gap:.1f} points (one model: no p-value; "
                                       f"use prune-info study{near})"}
                        if k != wanted:
                            row["requested_k"] = wanted
                        entry["gaps"].append(row)
            scopes[scope] = entry
        doc["modes"][mode] = {"ablate_to": curves.ablate_to, "n_samples": curves.n_samples,
                              "scopes": scopes}
    return doc


def _plot(results, path, title) -> None:
    panels = {}
    ks: dict[str, list[int] | None] = {}
    for mode, curves in results.items():
        for scope, by_label in curves.counts.items():
            name = f"{scope} ({curves.units[scope]} units)" if mode == "layerwise" else \
                f"whole network ({curves.units[scope]} units)"
            panel = {}
            for label, counts in by_label.items():
                acc = counts.double().numpy() / curves.n_samples
                std = acc.std(0, ddof=1) if (label == "random" and acc.shape[0] > 1) else None
                panel[label] = (acc.mean(0), std)
            panels[name] = panel
            ks[name] = curves.at_k.get(scope)
    plot_ablation(panels, path, title=title, ks=ks)


def _print_table(doc: dict) -> None:
    first = f" (first {doc['max_samples']} samples)" if "max_samples" in doc else ""
    click.echo(f"{doc['arch']} on {doc['dataset']} test set{first}: accuracy [%] after "
               "ablating k units")
    for mode, block in doc["modes"].items():
        for scope, entry in block["scopes"].items():
            n = entry["units"]
            computed = entry.get("at_k", list(range(n + 1)))
            wanted = {0, n // 4, n // 2, (3 * n) // 4, n} | {g["k"] for g in entry["gaps"]}
            columns = sorted({nearest_k(computed, k) for k in wanted})
            name = scope if mode == "layerwise" else "whole network"
            points = f", {len(computed)} points" if "at_k" in entry else ""
            click.echo(f"{name} ({n} units, ablation to {block['ablate_to']}{points})")
            width = max(len(label) for label in entry["accuracy"])
            click.echo("  " + "k".ljust(width) + "".join(f"{computed[i]:>8}" for i in columns))
            for label, acc in entry["accuracy"].items():
                cells = "".join(f"{100 * acc['mean'][i]:8.1f}" for i in columns)
                click.echo(f"  {label:<{width}}{cells}")
            for gap in entry["gaps"]:
                click.echo(f"  {gap['label']}: {gap['text']}")
