"""``prune-info prune``: rank units, remove them for real, save a smaller checkpoint."""

from __future__ import annotations

import click

from prune_info._torch import resolve_device
from prune_info.checkpoint import save_checkpoint
from prune_info.cli.app import cli, flag_message
from prune_info.cli.common import (
    check_checkpoint_output,
    data_options,
    device_option,
    echo_json,
    json_option,
    max_samples_option,
    model_command_args,
    parse_float_list,
    parse_int_list,
    seed_option,
    target_allocation,
    target_options,
)
from prune_info.criteria.options import BINNINGS, ScoreOptions
from prune_info.criteria.ranking import GROUP_REDUCTIONS
from prune_info.pruning.allocation import ORDERS
from prune_info.pruning.config import PruneConfig
from prune_info.pruning.workflow import prune_checkpoint


@cli.command()
@model_command_args
@data_options
@click.option("--criterion", default="mi", show_default=True, metavar="NAME",
              help="Ranking criterion from the registry (mi, entropy, kl, synergy, ...).")
@click.option("--layerwise/--global", "layerwise", default=True, show_default=True,
              help="Rank within each layer, or across all layers (ill-advised for information "
                   "measures).")
@click.option("--amount", default=None, metavar="F[,F...]",
              help="Fraction of units to remove, in [0, 1): one for all layers or one per layer.")
@click.option("--keep", default=None, metavar="N[,N...]", help="Units to keep, one per layer.")
@click.option("--max-drop", type=float, default=None, metavar="PP",
              help="Choose per-layer counts so validation accuracy drops at most PP points.")
@target_options
@click.option("--min-units", type=int, default=1, show_default=True,
              help="Units every layer keeps under --global and --max-drop.")
@click.option("--order", type=click.Choice(ORDERS), default="low", show_default=True,
              help="low: remove the lowest-ranked first; high / random: for experiments.")
@click.option("--mask", is_flag=True, help="Zero the units but keep every shape (no speed-up).")
@click.option("--ignore", multiple=True, metavar="LAYER|GLOB",
              help="Leave these layers untouched: a name or a glob such as 'layer4.*' "
                   "(repeatable); layers coupled to them are kept whole too.")
@click.option("--round-to", type=click.IntRange(min=1), default=None,
              help="Keep a multiple of N channels in every layer (faster on most hardware) "
                   "[default: 8 for conv layers of 64+ channels, else 1].")
@click.option("--verify/--no-verify", default=True, show_default=True,
              help="Check the pruned model against the original with the units ablated.")
@max_samples_option
@click.option("--strict", is_flag=True,
              help="Refuse the prune when a group cannot be pruned faithfully, instead of "
                   "leaving it out with a note.")
@click.option("--group-reduce", type=click.Choice(GROUP_REDUCTIONS), default="mean",
              show_default=True,
              help="How the scores of coupled layers (residual, depthwise) combine per channel.")
@click.option("--bins", type=int, default=None,
              help="Quantisation bins of the information criteria (default: 2).")
@click.option("--binning", type=click.Choice(BINNINGS), default=None,
              help="Quantiser of the criterion's bins (default: uniform).")
@click.option("--null", "n_null", type=click.IntRange(min=0), default=0, show_default=True,
              metavar="N",
              help="With mi or kl: N label permutations, and a warning for each layer where "
                   "most units do not beat chance (q <= 0.05), whose ranking is then noise.")
@seed_option
@device_option
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Pruned checkpoint to write.")
@json_option
def prune(ckpt, data_args, criterion, layerwise, amount, keep, max_drop, target, allocation,
          latency_batch, min_units,
          order, mask, ignore, round_to, verify, max_samples, strict, group_reduce, bins, binning,
          n_null, seed, device, output, as_json):
    """Remove the least important units of a model and save a smaller checkpoint.

    Units are ranked by CRITERION on the validation set; the pruned model has smaller weight
    matrices (784-100-100-10 at --amount 0.5 becomes 784-50-50-10) and reloads like any
    checkpoint. Layers whose outputs are tied (residual additions, depthwise convolutions)
    form one group and lose the same channels; a group is scored per channel by combining its
    members' scores (--group-reduce).

    \b
    Examples:
      prune-info prune model.pt --criterion mi --layerwise --amount 0.5 -o pruned.pt
      prune-info prune model.pt --keep 30,20 -o pruned.pt
      prune-info prune model.pt --max-drop 1.0 -o pruned.pt
      prune-info prune model.pt --target macs=x2 --allocation curves -o pruned.pt
    """
    check_checkpoint_output(output, ckpt)
    dev = str(resolve_device(device))
    score_kwargs = {k: v for k, v in (("bins", bins), ("binning", binning)) if v is not None}
    if n_null:
        score_kwargs["null"] = n_null
    config = PruneConfig(
        criterion=criterion,
        allocation=target_allocation(target, allocation, "max-drop" if max_drop is not None
                                     and layerwise else ("layerwise" if layerwise else "global")),
        target=target, latency_batch=latency_batch,
        amount=tuple(parse_float_list(amount, "--amount")) if amount is not None else None,
        keep=tuple(parse_int_list(keep, "--keep")) if keep is not None else None,
        max_drop=max_drop, min_units=min_units, order=order, mask=mask, ignore=tuple(ignore),
        group_reduce=group_reduce, round_to=round_to, verify=verify, strict=strict,
        max_samples=max_samples,
        score_options=_score_options(score_kwargs, seed, dev), seed=seed, device=dev,
    )
    config.validate()
    data = data_args.load(ckpt) if data_args.given or ckpt.dataset_name else None
    result = prune_checkpoint(ckpt, data, config)
    save_checkpoint(result.checkpoint, output)
    summary = result.summary
    for line in summary.warnings:
        click.echo(flag_message(line, click.get_current_context().command), err=True)
    if summary.layers_at_min_units:
        click.echo(f"note: held at --min-units {min_units}: "
                   f"{', '.join(summary.layers_at_min_units)}", err=True)
    if as_json:
        echo_json({**summary.to_dict(), "input": ckpt.source, "output": output},
                  summary.FORMAT)
        return
    click.echo(summary.table())
    click.echo(f"saved {output}")


def _score_options(kwargs: dict, seed: int, device: str) -> ScoreOptions:
    return ScoreOptions(**kwargs, seed=seed, device=device)
