"""``prune-info ablate``: cumulative ablation curves of one trained model."""

from __future__ import annotations

from pathlib import Path

import click

from prune_info._torch import resolve_device
from prune_info.analysis.ablate import AblationConfig, ablate_checkpoint
from prune_info.analysis.curves import DEFAULT_STEPS, ORDERS, SPARSE_ABOVE
from prune_info.cli.app import cli, flag_message
from prune_info.cli.common import (
    check_max_samples,
    check_output,
    data_options,
    device_option,
    json_option,
    max_samples_option,
    model_command_args,
    parse_int_list,
    seed_option,
)
from prune_info.criteria.registry import parse_criteria
from prune_info.errors import PruneInfoError
from prune_info.viz.ablation import plot_ablation
from prune_info.viz.figures import check_image_path


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
    at = parse_int_list(at_text, "--at", 0) if at_text else []
    check_max_samples(max_samples)
    if steps is not None and at_k_text is not None:
        raise PruneInfoError("--steps and --at-k both choose the points; give one of them")
    at_k = tuple(parse_int_list(at_k_text, "--at-k", 0)) if at_k_text is not None else None
    config = AblationConfig(
        criteria=tuple(names), orders=tuple(parse_names(orders, "--order", ORDERS)),
        random=n_random, modes=tuple(modes_from_flags(layerwise, whole_network)),
        layers=tuple(parse_names(layers, "--layers")) if layers else None, ablate_to=ablate_to,
        steps=steps, at_k=at_k, at=tuple(at), max_samples=max_samples, bins=bins, seed=seed,
        device=str(resolve_device(device)))
    config.validate()
    inputs = [ckpt.source] if ckpt.source else []
    outputs = [p for p in (out, plot) if p is not None]
    if plot is not None:
        check_image_path(plot)
    for path in outputs:
        check_output(path, *inputs)
    if out is not None and plot is not None and Path(out).resolve() == Path(plot).resolve():
        raise PruneInfoError("--out and --plot name the same file; choose different files")
    data = data_args.load(ckpt)
    report = ablate_checkpoint(ckpt, data, config, progress=not quiet)
    for line in report.warnings:
        click.echo(flag_message(line, click.get_current_context().command), err=True)
    if plot is not None:
        _plot(report.curves, plot,
              f"{ckpt.spec} on {data.name} test set, ablation to {ablate_to}")
    if out is not None:
        report.write(out)
    if as_json:
        click.echo(report.to_json())
        return
    click.echo(report.table())
    for path in outputs:
        click.echo(f"wrote {path}")


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
