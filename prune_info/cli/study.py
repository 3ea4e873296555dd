"""``prune-info study``: many seeds, every ablation curve, mean gaps and their p-values."""

from __future__ import annotations

import click

from prune_info._torch import resolve_device
from prune_info.analysis.curves import ORDERS
from prune_info.cli.ablate import modes_from_flags, parse_names
from prune_info.cli.app import cli
from prune_info.cli.common import (
    DATA_METAVAR,
    DEVICES,
    echo_json,
    executor_options,
    make_executor,
    parse_int_list,
    track_option,
)
from prune_info.errors import PruneInfoError
from prune_info.experiments.study import StudyConfig, run_study, seeds_from_count
from prune_info.experiments.tracking import make_tracker, study_run
from prune_info.io import check_writable_dir
from prune_info.training.loop import OPTIMIZERS, TrainConfig
from prune_info.zoo import ACTIVATIONS, REGULARISERS


@cli.command()
@click.option("--data", "data_name", default="fashion-mnist", show_default=True,
              metavar=DATA_METAVAR,
              help="Dataset (a source of yours is read into memory: the seeds train at once).")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None,
              help="Directory with the dataset files.")
@click.option("--arch", "spec", default="784-100-100-10", show_default=True)
@click.option("--act", "acts", default="relu", show_default=True, metavar="ACT[,ACT]",
              help="Activations of the scenario grid, e.g. relu,sigmoid.")
@click.option("--reg", "regs", default="l2", show_default=True, metavar="REG[,REG]",
              help="Regularisers of the scenario grid, e.g. l2,dropout.")
@click.option("--seeds", "n_seeds", type=click.IntRange(min=1), default=50, show_default=True,
              help="Networks per scenario (seeds 0..N-1).")
@click.option("--epochs", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--optimizer", type=click.Choice(OPTIMIZERS), default="rmsprop", show_default=True)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=1e-3,
              show_default=True)
@click.option("--momentum", type=click.FloatRange(min=0), default=0.01, show_default=True)
@click.option("--weight-decay", type=click.FloatRange(min=0), default=None,
              help="Override the weight decay implied by --reg.")
@click.option("--split-seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of the train / validation split (the same for every network).")
@click.option("--criteria", default="entropy,mi,kl", show_default=True, metavar="NAME[,NAME]")
@click.option("--order", "orders", default="low,high", show_default=True, metavar="low,high")
@click.option("--random", "n_random", type=click.IntRange(min=0), default=20, show_default=True,
              help="Random orderings per network and layer.")
@click.option("--layerwise", is_flag=True, help="Ablate within each layer (the default).")
@click.option("--whole-network", is_flag=True,
              help="Rank all layers' units together (with --layerwise: both).")
@click.option("--ablate-to", type=click.Choice(["zero", "mean"]), default="zero",
              show_default=True)
@click.option("--bins", type=click.IntRange(min=2), default=2, show_default=True)
@click.option("--at", "at_text", default=None, metavar="K[,K...]",
              help="Numbers of ablated units to compare at (default: 80 % of the smallest "
                   "layer, 80 for 100 units).")
@click.option("--wilcoxon", type=click.Choice(["approx", "exact", "auto"]), default="approx",
              show_default=True,
              help="scipy's Wilcoxon method; approx (normal approximation) is the paper's.")
@click.option("--sequential", is_flag=True,
              help="Train the seeds one after another instead of as one batched model.")
@click.option("--seed-batch", type=click.IntRange(min=1), default=None,
              help="Seeds per batched model (default: all seeds of a scenario).")
@click.option("--device", type=DEVICES, default="cpu", show_default=True)
@executor_options
@track_option
@click.option("--out", "out_dir", required=True, type=click.Path(), metavar="DIR",
              help="Study directory; running the same command again resumes it.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
def study(data_name, data_dir, spec, acts, regs, n_seeds, epochs, batch_size, optimizer, lr,
          momentum, weight_decay, split_seed, criteria, orders, n_random, layerwise,
          whole_network, ablate_to, bins, at_text, wilcoxon, sequential, seed_batch, device,
          executor, ray_address, track, out_dir, quiet, as_json):
    """Train many seeds per scenario, ablate, and test the differences over seeds.

    For every activation x regulariser, trains N networks (as one batched model), ranks their
    units on the validation set, draws every cumulative ablation curve on the test set, and
    reports mean ± std curves, the mean gap MG@k of each ordering against random ablation with
    its Wilcoxon p-value, and KS tests between the random curves of layers and scenarios.
    Interrupted? Run the same command again: finished seeds are skipped.

    With --executor ray, each batch of --seed-batch seeds of a scenario trains as one Ray task and
    each seed's curves are another, on the cluster at --ray-address (default: a local one); this
    process stores every result in --out as it arrives, so the numbers are those of a local run.

    \b
    Examples:
      prune-info study --data fashion-mnist --arch 784-100-100-10 --act relu --reg l2 \\
          --seeds 50 --epochs 20 --at 80 --out study/
      prune-info study --act relu,sigmoid --reg l2,dropout --seeds 20 --out grid/
      prune-info study --seeds 20 --seed-batch 5 --executor ray --ray-address 10.0.0.1:6379 \\
          --track mlflow --out study/
    """
    config = StudyConfig(
        data=data_name, arch=spec,
        acts=tuple(parse_names(acts, "--act", tuple(ACTIVATIONS))),
        regs=tuple(parse_names(regs, "--reg", REGULARISERS)),
        seeds=seeds_from_count(n_seeds),
        train=TrainConfig(epochs=epochs, batch_size=batch_size, optimizer=optimizer, lr=lr,
                          momentum=momentum, weight_decay=weight_decay),
        split_seed=split_seed,
        criteria=tuple(parse_names(criteria, "--criteria")) if criteria.strip() else (),
        orders=tuple(parse_names(orders, "--order", ORDERS)), random=n_random,
        modes=tuple(modes_from_flags(layerwise, whole_network)), ablate_to=ablate_to,
        bins=bins,
    )
    at = parse_int_list(at_text, "--at", 0) if at_text else None
    if at and n_random == 0:
        raise PruneInfoError("--at compares with random ablation, but --random is 0; pass "
                             "--random R")
    config.validate()  # before a cluster is started or joined
    check_writable_dir(out_dir)
    tracker = make_tracker(track)
    results = run_study(config, out_dir, at=at, wilcoxon=wilcoxon, data_dir=data_dir,
                        device=resolve_device(device), batched=not sequential,
                        seed_batch=seed_batch, progress=not quiet,
                        executor=make_executor(executor, address=ray_address))
    if as_json:
        # every seed's curves stay in results.json: stdout gets the statistics
        echo_json({k: v for k, v in results.to_dict().items() if k != "per_seed"},
                  results.FORMAT)
    else:
        click.echo(results.table())
        click.echo(f"wrote {out_dir}/results.json, {out_dir}/table.txt, "
                   + ", ".join(f"{out_dir}/{f}" for f in results.figures))
    if tracker is not None:  # after the results are shown: a tracking failure hides nothing
        run_id = tracker.log(study_run(results, out_dir))
        click.echo(f"tracked as MLflow run {run_id} in {tracker.uri}", err=True)
