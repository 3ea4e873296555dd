"""``prune-info oinfo``: layer-wise synergy and redundancy with the O-information."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from prune_info.analysis.oinfo import oinfo_checkpoint
from prune_info.capture import resolve_device
from prune_info.cli.app import cli
from prune_info.cli.common import (
    check_max_samples,
    check_output,
    data_options,
    device_option,
    json_option,
    max_samples_option,
    model_command_args,
    seed_option,
)
from prune_info.errors import PruneInfoError
from prune_info.viz.figures import check_image_path
from prune_info.viz.oinfo import plot_oinfo

SPLITS = ("val", "test", "train")


@cli.command()
@model_command_args
@data_options
@click.option("--split", type=click.Choice(SPLITS), default="val", show_default=True,
              help="Data split to measure on (Clauw et al. use the test set).")
@max_samples_option
@click.option("--layers", default=None, metavar="NAME[,NAME]",
              help="Hidden layers to analyse (default: all), e.g. fc1,fc2.")
@click.option("--max-exhaustive", type=int, default=None,
              help="Largest multiplet size searched exhaustively [default: 6 for layers of at "
                   "most 40 units, 4 above].")
@click.option("--max-size", type=int, default=None,
              help="Largest multiplet size (units; the label comes on top) [default: the whole "
                   "layer]; clipped to each layer's width with a note.")
@click.option("--beam-width", type=click.IntRange(min=0), default=None,
              help="Extra beam search of this width [default: 0 up to 40 units, 8 above].")
@click.option("--post-activation", is_flag=True,
              help="Read units after the activation function (the paper reads them before).")
@click.option("--batch-size", type=click.IntRange(min=1), default=4096, show_default=True,
              help="Samples per forward pass.")
@seed_option
@device_option
@click.option("--out", default=None, type=click.Path(dir_okay=False), metavar="FILE.json",
              help="Write every layer's best multiplets and their Omega as JSON.")
@click.option("--plot", default=None, type=click.Path(dir_okay=False), metavar="FILE.png",
              help="Bar plots of min / max Omega against the multiplet size (Fig. 1 of Clauw "
                   "et al.).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@json_option
def oinfo(ckpt, data_args, split, max_samples, layers, max_exhaustive, max_size, beam_width,
          post_activation, batch_size, seed, device, out, plot, quiet, as_json):
    """Most synergistic and most redundant multiplets of units, per layer and size.

    For every hidden layer and multiplet size k, prints the O-information Omega (bits) of the
    most synergistic multiplet (min Omega) and of the most redundant one (max Omega) of k units
    plus the class label, and which search found it (exh = exhaustive, the exact optimum;
    greedy; beam). Omega < 0: synergy-dominated; Omega > 0: redundancy-dominated.

    \b
    Examples:
      prune-info oinfo model.pt --max-size 20 --out oinfo.json --plot oinfo.png
      prune-info oinfo model.pt --layers fc1 --max-exhaustive 4 --beam-width 8
    """
    inputs = [ckpt.source] if ckpt.source else []
    outputs = []
    if plot is not None:
        check_image_path(plot)
        outputs.append(plot)
    if out is not None:
        outputs.append(out)
    for path in outputs:
        check_output(path, *inputs)
    if len({str(Path(p).resolve()) for p in outputs}) < len(outputs):
        raise PruneInfoError("--out and --plot name the same file; choose different files")

    check_max_samples(max_samples)
    data = data_args.load(ckpt)
    document = oinfo_checkpoint(
        ckpt, data, split=split, max_samples=max_samples, layers=layers,
        max_exhaustive=max_exhaustive, max_size=max_size, beam_width=beam_width,
        post_activation=post_activation, seed=seed, batch_size=batch_size,
        device=str(resolve_device(device)),
        progress=sys.stderr.isatty() and not (as_json or quiet))
    for line in document.notes:
        click.echo(f"note: {line}", err=True)
    if plot is not None:
        plot_oinfo(document.results, plot,
                   title=f"{ckpt.spec} on {data.name} ({split}), {document.reading}")
    if out is not None:
        document.write(out)
    if as_json:
        click.echo(document.to_json())
        return
    click.echo(document.table())
    for path in outputs:
        click.echo(f"wrote {path}")
