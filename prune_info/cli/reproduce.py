"""``prune-info reproduce``: the papers' findings with their protocols, side by side."""

from __future__ import annotations

import click

from prune_info._torch import resolve_device
from prune_info.cli.app import cli
from prune_info.cli.common import DEVICES, executor_options, make_executor
from prune_info.data import DATASETS
from prune_info.experiments.reproduce import (
    SCALES,
    ReproduceOptions,
    format_findings,
    run_reproduce,
)


@cli.command()
@click.argument("findings", nargs=-1, metavar="FINDING...")
@click.option("--out", "out_dir", required=True, type=click.Path(), metavar="DIR",
              help="Run directory; running the same command again resumes it.")
@click.option("--scale", type=click.Choice(SCALES), default="paper", show_default=True,
              help="paper: the papers' protocols; toy: digits-sized, 6 seeds, 1 epoch.")
@click.option("--data", "data_name", type=click.Choice(DATASETS), default=None,
              help="Dataset (default: fashion-mnist at paper scale, digits at toy scale).")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None,
              help="Directory with the dataset files.")
@click.option("--seeds", type=int, default=None,
              help="Networks per setting, overriding the scale's (at least 6).")
@click.option("--epochs", type=int, default=None,
              help="Training epochs of every network (and of C2's retraining), overriding the "
                   "scale's.")
@click.option("--device", type=DEVICES, default="cpu", show_default=True)
@executor_options
@click.option("--quiet", is_flag=True, help="No progress bars or stage lines.")
def reproduce(findings, out_dir, scale, data_name, data_dir, seeds, epochs, device, executor,
              ray_address, quiet):
    """Run the papers' findings with their protocols and report each beside the paper's number.

    FINDING is one or more of A1 A2 A3 (Amjad, Liu & Geiger: Figs. 1-4), C1 C2 (Clauw,
    Marinazzo & Stramaglia: Figs. 1-2), C1-wide C2-wide (C1/C2 on 784-100-100-10), C1-conv (C1
    on the convolutional layers of a VGG-11-bn layout at 1/8 width), or all.
    Writes DIR/findings.json, findings.txt and findings.html; every finding gets a verdict
    (reproduced / partly / not reproduced) by the rule written into the report.

    \b
    Examples:
      prune-info reproduce all --out repro/
      prune-info reproduce A2 C2 --scale toy --out repro-toy/
      prune-info reproduce A1 --data mnist --data-dir ~/mnist --out repro-mnist/
    """
    options = ReproduceOptions(findings=tuple(findings), scale=scale, data=data_name,
                               data_dir=data_dir, seeds=seeds, epochs=epochs,
                               device=str(resolve_device(device)))
    options.validate()
    runner = make_executor(executor, address=ray_address)
    log = None if quiet else (lambda line: click.echo(f"reproduce: {line}", err=True))
    report = run_reproduce(options, out_dir, executor=runner, progress=not quiet, log=log)
    click.echo(format_findings(report))
    click.echo(f"wrote {out_dir}/findings.json, {out_dir}/findings.txt, "
               f"{out_dir}/findings.html")

