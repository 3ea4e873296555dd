"""``prune-info oinfo``: layer-wise synergy and redundancy with the O-information."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import click

from prune_info.analysis.oinfo import OINFO_FORMAT, layer_oinfo, results_to_dict
from prune_info.capture import resolve_device
from prune_info.cli.app import cli
from prune_info.cli.common import (
    check_output,
    data_options,
    device_option,
    echo_json,
    json_option,
    max_samples_option,
    model_command_args,
    samples_of,
    seed_option,
)
from prune_info.errors import PruneInfoError
from prune_info.io import write_json
from prune_info.viz.figures import check_image_path
from prune_info.viz.oinfo import plot_oinfo

SPLITS = ("val", "test", "train")
_METHOD = {"exhaustive": "exh", "greedy": "greedy", "beam": "beam"}


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

    data = data_args.load(ckpt)
    samples = samples_of(getattr(data, split), max_samples, "the O-information search")
    dev = str(resolve_device(device))
    model = ckpt.model.to(dev)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = layer_oinfo(model, samples, layers, max_exhaustive=max_exhaustive,
                              max_size=max_size, beam_width=beam_width,
                              post_activation=post_activation, seed=seed,
                              batch_size=batch_size, device=dev,
                              progress=sys.stderr.isatty() and not (as_json or quiet))
    notes = list(dict.fromkeys(str(w.message) for w in caught))
    for note in notes:
        click.echo(f"note: {note}", err=True)

    reading = "post-activation" if post_activation else "pre-activation"
    meta = {"model": ckpt.source, "arch": ckpt.spec, "dataset": data.name, "split": split,
            "n_samples": len(samples), "reading": reading, "seed": seed,
            "notes": notes}
    document = {**meta, **results_to_dict(results)}
    if plot is not None:
        plot_oinfo(results, plot, title=f"{ckpt.spec} on {data.name} ({split}), {reading}")
    if out is not None:
        write_json(document, out, OINFO_FORMAT)

    if as_json:
        echo_json(document, OINFO_FORMAT)
        return
    _print_table(document)
    for path in outputs:
        click.echo(f"wrote {path}")


def _units(units: list[int], limit: int = 6) -> str:
    text = ",".join(map(str, units[:limit]))
    return text + (f",... ({len(units)})" if len(units) > limit else "")


def _print_table(document: dict) -> None:
    click.echo(f"{document['arch']} on {document['dataset']} {document['split']} "
               f"({document['n_samples']} samples), {document['reading']}; Omega of k units + "
               "label in bits (< 0 synergy, > 0 redundancy)")
    rows = [("layer", "k", "min Omega", "found", "synergy units", "max Omega", "found",
             "redundancy units")]
    footers = {}
    for layer in document["layers"]:
        for i, r in enumerate(layer["sizes"]):
            rows.append((layer["layer"] if i == 0 else "", str(r["size"]),
                         f"{r['synergy_omega']:+.4f}", _METHOD[r["synergy_method"]],
                         _units(r["synergy_units"]), f"{r['redundancy_omega']:+.4f}",
                         _METHOD[r["redundancy_method"]], _units(r["redundancy_units"])))
        dom = layer["dominance"]
        footers[len(rows) - 1] = (
            f"{layer['layer']}: {layer['n_units']} units, {layer['n_evaluated']:,} multiplets in "
            f"{layer['seconds']:.1f} s; summed over k: synergy {dom['synergy']:.3f} bits, "
            f"redundancy {dom['redundancy']:.3f} bits -> {dom['label']}-dominated")
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    right = {1, 2, 5}
    for index, row in enumerate(rows):
        cells = [cell.rjust(w) if i in right else cell.ljust(w)
                 for i, (cell, w) in enumerate(zip(row, widths))]
        click.echo("  ".join(cells).rstrip())
        if index in footers:
            click.echo("  " + footers[index])
