"""``prune-info retrain`` and ``prune-info prune-retrain``."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import click

from prune_info._torch import resolve_device
from prune_info.checkpoint import save_checkpoint
from prune_info.cli.app import cli
from prune_info.cli.common import (
    DATA_METAVAR,
    check_checkpoint_output,
    check_rebuildable,
    data_options,
    device_option,
    executor_options,
    json_option,
    make_executor,
    model_command_args,
    parse_float_list,
    parse_int_list,
    seed_option,
    target_allocation,
    target_options,
)
from prune_info.criteria.registry import parse_criteria
from prune_info.data import load_dataset
from prune_info.errors import PruneInfoError
from prune_info.experiments.subnetworks import (
    REST,
    CompareConfig,
    run_comparison,
    summarise,
)
from prune_info.io import atomic_write, check_writable_dir, locked_output_dir
from prune_info.pruning.config import PruneConfig
from prune_info.pruning.retrain import RetrainConfig, iterative_prune, retrain_checkpoint
from prune_info.pruning.retrain_report import RetrainReport
from prune_info.training.loop import OPTIMIZERS, TrainConfig
from prune_info.viz.subnetworks import plot_comparison
from prune_info.zoo import ACTIVATIONS, REGULARISERS


def _rewind(value: str | None):
    if value is None or value == "init":
        return value
    if not value.isdigit():
        raise PruneInfoError(f"--rewind must be init or a step number K >= 0, got {value!r}")
    return int(value)


def _retrain_options(f):
    f = click.option("--batch-size", type=click.IntRange(min=1), default=None,
                     help="Default: the checkpoint's training batch size.")(f)
    f = click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=None,
                     help="Default: the checkpoint's training learning rate.")(f)
    f = click.option("--optimizer", type=click.Choice(OPTIMIZERS), default=None,
                     help="Default: the checkpoint's training optimiser.")(f)
    f = click.option("--epochs", type=int, default=10, show_default=True)(f)
    return f


@cli.command()
@model_command_args
@data_options
@_retrain_options
@click.option("--rewind", default=None, metavar="init|K",
              help="Reset surviving weights to initialisation (init) or to step K, then train.")
@click.option("--freeze-others", is_flag=True,
              help="Train only the units kept by the last pruning step; freeze everything else.")
@click.option("--compare-finetune", is_flag=True,
              help="With --rewind, also fine-tune from the current weights and show both.")
@seed_option
@device_option
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False))
@click.option("--quiet", is_flag=True, help="No progress bar.")
@json_option
def retrain(ckpt, data_args, epochs, optimizer, lr, batch_size, rewind, freeze_others,
            compare_finetune, seed, device, output, quiet, as_json, allow_nonfinite=False):
    """Retrain a pruned model: fine-tune, or rewind to initialisation (lottery ticket).

    The epoch with the best validation accuracy is kept. Optimiser settings default to those the
    model was trained with.

    \b
    Examples:
      prune-info retrain pruned.pt --epochs 10 -o retrained.pt
      prune-info retrain pruned.pt --rewind init --compare-finetune -o ticket.pt
      prune-info retrain pruned.pt --freeze-others --rewind init -o subnet.pt
    """
    check_checkpoint_output(output, ckpt)
    if epochs < 1:
        raise PruneInfoError(f"--epochs must be at least 1, got {epochs}")
    dev = str(resolve_device(device))
    config = RetrainConfig(epochs=epochs, rewind=_rewind(rewind), freeze_others=freeze_others,
                           optimizer=optimizer, lr=lr, batch_size=batch_size, seed=seed,
                           device=dev, allow_nonfinite=allow_nonfinite)
    data = data_args.load(ckpt)
    new, report = retrain_checkpoint(ckpt, data, config, progress=not quiet)
    runs = report.runs
    if compare_finetune and config.rewind is not None:
        runs += retrain_checkpoint(ckpt, data, replace(config, rewind=None),
                                   progress=not quiet)[1].runs
    save_checkpoint(new, output)
    report = RetrainReport(runs, output=output)
    if as_json:
        click.echo(report.to_json())
        return
    click.echo(report.table())
    click.echo(f"saved {output}")


@cli.command("prune-retrain")
@model_command_args
@data_options
@_retrain_options
@click.option("--criterion", default="mi", show_default=True)
@click.option("--rounds", type=click.IntRange(min=1), default=5, show_default=True)
@click.option("--amount-per-round", type=float, default=None,
              help="Fraction of the remaining units of every layer removed per round "
                   "[default: 0.2 without --target].")
@target_options
@click.option("--ignore", multiple=True, metavar="LAYER|GLOB",
              help="Leave these layers untouched (names or globs, repeatable).")
@seed_option
@device_option
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Directory for round1.pt ... and rounds.json (resumable: the same command "
                   "continues after the last finished round).")
@click.option("--quiet", is_flag=True)
@json_option
def prune_retrain(ckpt, data_args, epochs, optimizer, lr, batch_size, criterion,
                  rounds, amount_per_round, target, allocation, latency_batch, ignore, seed,
                  device, out_dir, quiet, as_json,
                  allow_nonfinite=False):
    """Iterative pruning: prune then retrain, several rounds, keeping every round.

    \b
    Example:
      prune-info prune-retrain model.pt --criterion mi --rounds 5 --amount-per-round 0.2 -o out/
      prune-info prune-retrain model.pt --target macs=x2 --rounds 3 -o out/

    Under --target the share of the cost kept shrinks geometrically over the rounds (the
    last reaches the target), and each round scores the retrained model afresh.
    """
    out = Path(out_dir)
    check_rebuildable(ckpt)
    if epochs < 1:
        raise PruneInfoError(f"--epochs must be at least 1, got {epochs}")
    dev = str(resolve_device(device))
    if amount_per_round is None and target is None:
        amount_per_round = 0.2
    prune_config = PruneConfig(criterion=criterion, amount=amount_per_round, seed=seed,
                               device=dev, ignore=tuple(ignore), target=target,
                               allocation=target_allocation(target, allocation, "layerwise"),
                               latency_batch=latency_batch)
    prune_config.validate()
    retrain_config = RetrainConfig(epochs=epochs, optimizer=optimizer, lr=lr,
                                   batch_size=batch_size, seed=seed, device=dev,
                                   allow_nonfinite=allow_nonfinite)
    check_writable_dir(out)
    data = data_args.load(ckpt)
    report = iterative_prune(ckpt, data, prune_config, retrain_config, rounds, out,
                             progress=not quiet)
    if as_json:
        click.echo(report.to_json())
        return
    for row in report.missed():
        click.echo(f"warning: round {row.round} missed its target {row.target}", err=True)
    click.echo(report.table())
    click.echo(f"saved {len(report.rounds) - 1} rounds and rounds.json in {out_dir}")


SUBNET_CRITERIA = "synergy,gcmi-model,gcmi-mixture,mi,kl,entropy,magnitude,random"


@cli.command()
@click.option("--data", "data_name", default="digits", show_default=True,
              metavar=DATA_METAVAR,
              help="Dataset (a source of yours is read into memory: the sub-networks train at "
                   "once).")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None)
@click.option("--arch", "spec", default="64-20-20-20-10", show_default=True)
@click.option("--act", type=click.Choice(list(ACTIVATIONS)), default="relu", show_default=True)
@click.option("--reg", type=click.Choice(REGULARISERS), default="none", show_default=True)
@click.option("--criteria", default=SUBNET_CRITERIA, show_default=True,
              help="Criteria compared; include random for the Wilcoxon tests.")
@click.option("--keep", default=None, metavar="K[,K...]",
              help="Units kept per layer, one sub-network per value (default 5,10,15).")
@click.option("--amounts", default=None, metavar="F[,F...]",
              help="Instead of --keep: fractions of units removed per layer.")
@click.option("--seeds", type=click.IntRange(min=1), default=6, show_default=True,
              help="Networks trained (seeds 0..N-1); Wilcoxon p-values need 6 or more.")
@click.option("--epochs", type=click.IntRange(min=1), default=10, show_default=True,
              help="Training epochs of each dense network.")
@click.option("--retrain-epochs", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--rewind", type=click.Choice(["init", "none"]), default="init", show_default=True,
              help="init: lottery-ticket retraining from the initial weights; none: fine-tune.")
@click.option("--optimizer", type=click.Choice(OPTIMIZERS), default="rmsprop",
              show_default=True)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=1e-3,
              show_default=True)
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Directory for results.json, table.txt and subnetworks.png (resumable).")
@click.option("--rest", type=click.Choice(REST), default="removed", show_default=True,
              help="What happens to the units not kept: cut out, or kept in the network with "
                   "their initial weights frozen (Clauw et al.; needs --keep and --rewind "
                   "init).")
@executor_options
@click.option("--quiet", is_flag=True)
@json_option
def subnetworks(data_name, data_dir, spec, act, reg, criteria, keep, amounts, seeds, epochs,
                retrain_epochs, rewind, optimizer, lr, out_dir, rest, executor, ray_address,
                quiet, as_json):
    """Retrain the sub-network each criterion selects and compare accuracy drops over seeds.

    The experiment of Clauw et al. (Fig. 2): for every seed a dense network is trained; the K
    best units of every layer by each criterion are kept, the sub-network is rewound to its
    initial weights and trained again; the table gives the accuracy drop against the dense model
    (mean ± std over seeds) and the Wilcoxon p-value against random selection.

    \b
    Example:
      prune-info subnetworks --data digits --arch 64-20-20-20-10 --keep 5,10,15 --seeds 6 -o subnet/
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise PruneInfoError(f"--out {out_dir} is a file; give a directory")
    if keep is not None and amounts is not None:
        raise PruneInfoError("give --keep or --amounts, not both")
    config = CompareConfig(
        spec=spec, act=act, reg=reg, criteria=tuple(parse_criteria(criteria)),
        seeds=tuple(range(seeds)),
        keep=tuple(parse_int_list(keep or "5,10,15", "--keep")) if amounts is None else (),
        amounts=tuple(parse_float_list(amounts, "--amounts")) if amounts is not None else (),
        train=TrainConfig(epochs=epochs, optimizer=optimizer, lr=lr),
        retrain_epochs=retrain_epochs,
        rewind=None if rewind == "none" else rewind, rest=rest,
    )
    config.validate()
    check_writable_dir(out)
    runner = make_executor(executor, address=ray_address)
    data = load_dataset(data_name, data_dir)
    with locked_output_dir(out):
        comparison = run_comparison(data, config, out, progress=not quiet, executor=runner)
        table = replace(summarise(comparison), out=out_dir)
        with atomic_write(out / "table.txt") as tmp:
            tmp.write_text(table.table() + "\n")
        plot_comparison(table, out / "subnetworks.png",
                        title=f"{data_name} {spec}: sub-networks retrained ({rewind})")
    if as_json:
        click.echo(table.to_json())
        return
    click.echo(table.table())
    for note in table.notes():
        click.echo(f"note: {note}")
    click.echo(f"saved results.json, table.txt and subnetworks.png in {out_dir}")
