"""``prune-info run``: the whole pipeline in one resumable command."""

from __future__ import annotations

import functools
from pathlib import Path

import click

from prune_info.checkpoint import load_checkpoint
from prune_info.cli.app import cli
from prune_info.cli.common import (
    data_source_options,
    input_shape_option,
    model_kwargs_option,
    parse_int_list,
    parse_shape,
    seed_option,
    target_allocation,
    target_options,
    track_option,
    trust_factory_option,
)
from prune_info.errors import PruneInfoError
from prune_info.experiments.pipeline import RunOptions, run_pipeline
from prune_info.experiments.tracking import make_tracker, pipeline_run
from prune_info.zoo import ACTIVATIONS, REGULARISERS, is_factory_spec, parse_model_kwargs


@cli.command()
@functools.partial(data_source_options,
                   help_text="Dataset [default: the --model checkpoint's, else digits].")
@click.option("--arch", "spec", default="64-100-100-10", show_default=True,
              help="Architecture to train (ignored with --model).")
@click.option("--model", "model_path", default=None, metavar="FILE|PKG.MOD:FN|timm:NAME",
              help="Start from this trained prune-info checkpoint instead of training, or "
                   "train a model from this factory (torchvision.models:resnet18, timm:NAME).")
@model_kwargs_option
@input_shape_option
@trust_factory_option
@click.option("--act", type=click.Choice(list(ACTIVATIONS)), default="relu", show_default=True)
@click.option("--reg", type=click.Choice(REGULARISERS), default="l2", show_default=True)
@click.option("--epochs", type=click.IntRange(min=1), default=10, show_default=True,
              help="Training epochs.")
@click.option("--criterion", default="mi", show_default=True, help="Pruning criterion.")
@click.option("--amount", type=click.FloatRange(0, 1, max_open=True), default=None,
              help="Fraction of units removed in each layer [default: 0.5 without --target].")
@target_options
@click.option("--ignore", multiple=True, metavar="LAYER|GLOB",
              help="Layers the prune stage leaves untouched (names or globs, repeatable).")
@click.option("--random", "n_random", type=click.IntRange(min=0), default=10, show_default=True,
              help="Random orderings in the ablation curves.")
@click.option("--max-exhaustive", type=click.IntRange(min=1), default=3, show_default=True,
              help="O-information: largest multiplet searched exhaustively.")
@click.option("--max-size", type=click.IntRange(min=1), default=10, show_default=True,
              help="O-information: largest multiplet (greedy above --max-exhaustive).")
@click.option("--retrain-epochs", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--bench-repeat", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--bench-batch", "bench_batch", default="1,256", show_default=True,
              metavar="N[,N...]", help="Batch sizes timed.")
@seed_option
@track_option
@click.option("--out", "out_dir", required=True, type=click.Path(),
              help="Directory of the run's artefacts and report.html (resumed when rerun).")
@click.option("--quiet", is_flag=True, help="No progress bars (stage lines still shown).")
def run(data_name, data_dir, workers, normalize, spec, model_path, model_kwargs, input_shape,
        trust_factory, act, reg, epochs,
        criterion, amount, target, allocation, latency_batch, ignore,
        n_random,
        max_exhaustive, max_size, retrain_epochs, bench_repeat, bench_batch, seed, track,
        out_dir, quiet):
    """Train, score, ablate, O-information, prune, retrain, export, bench and report.

    Every stage's artefacts go to --out and are reused when the command runs again: an
    interrupted run resumes at the stage it stopped in, and a changed option reruns only the
    stages it affects (e.g. --amount reruns prune and what follows). A directory holding a
    different run (another --data, --arch/--act/--reg or --model) is refused.

    \b
    Example:
      prune-info run --data fashion-mnist --arch 784-100-100-10 --criterion mi \\
          --amount 0.5 --out results/
    """
    factory = model_path if model_path and is_factory_spec(model_path) else None
    if data_name is None:
        recorded = (load_checkpoint(model_path, trust_factory=trust_factory).dataset_name
                    if model_path and not factory and Path(model_path).is_file() else None)
        data_name = recorded or "digits"
    if model_kwargs is not None and factory is None:
        raise PruneInfoError("--model-kwargs are the arguments of a --model factory")
    options = RunOptions(
        data=data_name, data_dir=data_dir, workers=workers, normalize=normalize,
        arch=None if model_path else spec,
        model=None if factory else model_path, factory=factory,
        factory_kwargs=parse_model_kwargs(model_kwargs), input_shape=parse_shape(input_shape),
        act=act, reg=reg, epochs=epochs, seed=seed, criterion=criterion,
        amount=0.5 if amount is None and target is None else amount, target=target,
        allocation=target_allocation(target, allocation, "uniform"), latency_batch=latency_batch,
        ignore=tuple(ignore),
        random=n_random, max_exhaustive=max_exhaustive, max_size=max_size,
        retrain_epochs=retrain_epochs, bench_repeat=bench_repeat,
        bench_batches=tuple(parse_int_list(bench_batch, "--bench-batch", 1)),
        trust_factory=trust_factory, progress=not quiet,
    )
    options.validate()
    tracker = make_tracker(track)  # a store that cannot be written: refused before any stage
    manifest = run_pipeline(out_dir, options)
    reran = manifest.get("reran", [])
    click.echo(f"stages run: {', '.join(reran) if reran else 'none (all reused)'}")
    click.echo(f"report: {Path(out_dir) / 'report.html'}")
    if tracker is not None:  # after the results are shown: a tracking failure hides nothing
        run_id = tracker.log(pipeline_run(manifest, out_dir))
        click.echo(f"tracked as MLflow run {run_id} in {tracker.uri}", err=True)
