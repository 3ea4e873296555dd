"""``prune-info score``: per-unit information measures of a trained model."""

from __future__ import annotations

from pathlib import Path

import click

from prune_info.capture import resolve_device
from prune_info.cli.app import cli, flag_message
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
from prune_info.criteria.options import BIAS_CORRECTIONS, CHANNEL_QUANTISERS, ScoreOptions
from prune_info.criteria.ranking import GROUP_REDUCTIONS, reduce_group
from prune_info.criteria.registry import parse_criteria
from prune_info.criteria.report import score_report
from prune_info.errors import PruneInfoError
from prune_info.io import write_json
from prune_info.nn import example_input
from prune_info.surgery import unit_groups
from prune_info.viz.figures import check_image_path, violin_plot

SCORES_FORMAT = "prune-info-scores"
SPLITS = ("val", "test", "train")


def _csv_path(out: str) -> str:
    path = Path(out)
    if path.suffix.lower() == ".csv":
        raise PruneInfoError(
            f"--out {out}: give the JSON file (e.g. scores.json); the CSV table is written "
            "beside it with the suffix .csv"
        )
    if not path.name or out.endswith("/"):
        return out  # names no file: check_output refuses it
    return str(path.with_suffix(".csv"))


@cli.command()
@model_command_args
@data_options
@click.option("--split", type=click.Choice(SPLITS), default="val", show_default=True,
              help="Data split to measure on (the paper uses the validation set).")
@max_samples_option
@click.option("--criteria", default="entropy,mi,kl", show_default=True, metavar="NAME[,NAME]",
              help="Criteria to score and summarise, e.g. entropy,mi,kl,magnitude,random "
                   "(an unknown name lists the known ones).")
@click.option("--bins", type=int, default=2, show_default=True,
              help="Quantisation bins: 2 = the paper's 1-bit threshold quantiser.")
@click.option("--binning", type=click.Choice(["uniform", "quantile"]), default="uniform",
              show_default=True, help="Per-unit bin edges for --bins > 2.")
@click.option("--pre-activation", is_flag=True,
              help="Read units before the activation function.")
@click.option("--channel-reduce", type=click.Choice(["mean", "max"]), default="mean",
              show_default=True,
              help="How a conv channel becomes one value per sample: over its map after the "
                   "activation, before pooling.")
@click.option("--token-reduce", type=click.Choice(["mean", "max", "cls"]), default="mean",
              show_default=True,
              help="How a token unit (a Linear layer on [batch, tokens, dim], as in a ViT) "
                   "becomes one value per sample: over its tokens, or token 0 (cls).")
@click.option("--group-reduce", type=click.Choice(GROUP_REDUCTIONS), default="mean",
              show_default=True,
              help="How coupled layers (residual, depthwise) combine into one score per group "
                   "channel, reported beside the per-layer scores.")
@click.option("--channel-quantiser", type=click.Choice(CHANNEL_QUANTISERS), default="median",
              show_default=True,
              help="2-bin quantiser of conv channels: each channel's median, or the paper's "
                   "'is it active?' threshold (after a ReLU most channels are always on, and tie).")
@click.option("--bias-correction", type=click.Choice(BIAS_CORRECTIONS), default="none",
              show_default=True,
              help="Correct entropy, MI and KL for the plug-in bias: miller-madow (free), or "
                   "shuffle (minus the mean over label permutations: also corrects KL).")
@click.option("--null", "n_null", type=click.IntRange(min=0), default=0, show_default=True,
              metavar="N",
              help="N label permutations: a p-value per unit for MI and KL, and per layer the "
                   "units above chance at a 5 % false discovery rate (no forward passes).")
@click.option("--batch-size", type=int, default=4096, show_default=True,
              help="Samples per forward pass.")
@seed_option
@device_option
@click.option("--out", default=None, type=click.Path(dir_okay=False), metavar="FILE.json",
              help="Write every unit's scores as JSON, and as CSV beside it (FILE.csv).")
@click.option("--plot", default=None, type=click.Path(dir_okay=False), metavar="FILE.png",
              help="Draw per-layer violin plots of each measure (as Fig. 1 of the paper).")
@json_option
def score(ckpt, data_args, split, max_samples, criteria, bins, binning, pre_activation,
          channel_reduce, token_reduce, group_reduce, channel_quantiser, bias_correction, n_null,
          batch_size, seed, device, out, plot, as_json):
    """Score every unit by entropy, mutual information and KL selectivity.

    Prints, per layer, min / median / mean / max of each measure (bits) and how many units have
    zero entropy, split into dead (never active) and always-active units. Measures are
    computed on the validation split of the dataset the model was trained on, unless --data or
    --split say otherwise.

    \b
    Examples:
      prune-info score model.pt
      prune-info score model.pt --criteria entropy,mi,kl,magnitude --out scores.json
      prune-info score model.pt --bins 8 --binning quantile --plot scores.png
      prune-info score model.pt --null 100 --bias-correction miller-madow

    With --null N each unit's MI and KL selectivity are compared with their values under N
    permutations of the labels: p = (1 + #permutations scoring at least as high) / (1 + N),
    and Benjamini-Hochberg q-values over each layer; the table says how many units per layer
    beat chance at q <= 0.05. The plug-in estimates are biased upward with few samples per
    bin (by about (bins - 1)(classes - 1) / (2 N ln 2) bits for MI); --bias-correction removes
    most of it.
    """
    names = parse_criteria(criteria)
    options = ScoreOptions(bins=bins, binning=binning, pre_activation=pre_activation,
                           channel_reduce=channel_reduce, token_reduce=token_reduce, seed=seed,
                           batch_size=batch_size, channel_quantiser=channel_quantiser,
                           bias_correction=bias_correction, null=n_null,
                           device=str(resolve_device(device)))
    inputs = [ckpt.source] if ckpt.source else []
    outputs = []
    if out is not None:
        outputs += [out, _csv_path(out)]
    if plot is not None:
        check_image_path(plot)
        outputs.append(plot)
    for path in outputs:
        check_output(path, *inputs)
    if len(set(map(lambda p: str(Path(p).resolve()), outputs))) < len(outputs):
        raise PruneInfoError("--out and --plot name the same file; choose different files")

    data = data_args.load(ckpt)
    model = ckpt.model.to(options.device)
    samples = samples_of(getattr(data, split), max_samples, "scoring")
    report = score_report(model, samples, names, n_classes=data.n_classes,
                          options=options)
    meta = {"model": ckpt.source, "arch": ckpt.spec, "dataset": data.name, "split": split}
    document = {**meta, **report.to_dict()}
    groups = group_scores(model, data.input_shape, report, group_reduce)
    if groups:
        document["groups"] = groups

    if plot is not None:
        values = {c: report.scores[c] for c in report.criteria}
        violin_plot(values, plot, title=f"{ckpt.spec} on {data.name} ({split}), "
                                        f"{report.quantiser}")
    if out is not None:
        report.write_csv(_csv_path(out))
        write_json(document, out, SCORES_FORMAT)

    for line in report.warnings:
        click.echo(flag_message(line, click.get_current_context().command), err=True)
    if as_json:
        echo_json(document, SCORES_FORMAT)
        return
    _print_summary(report, meta)
    for group in groups:
        click.echo(f"coupled, scored together ({group_reduce} over members): "
                   f"{' + '.join(group['members'])}")
    for path in outputs:
        click.echo(f"wrote {path}")


def group_scores(model, input_shape, report, how: str) -> list[dict]:
    """Per coupled group: its members and each criterion's score per group channel.

    A model torch-pruning cannot trace has no groups to report (its layers are scored alone).
    """
    try:
        groups = unit_groups(model, example_input(model, input_shape))
    except PruneInfoError:
        return []
    out = []
    for group in groups:
        if len(group.members) < 2 or not all(m in report.scores[report.criteria[0]]
                                              for m in group.members):
            continue
        out.append({"root": group.root, "members": list(group.members), "reduce": how,
                    "scores": {c: reduce_group(report.scores[c], group.members, how)
                               for c in report.criteria}})
    return out


def _print_summary(report, meta: dict) -> None:
    where = "pre-activation" if report.options.pre_activation else "post-activation"
    click.echo(f"{meta['arch']} on {meta['dataset']} {meta['split']} ({report.n_samples} "
               f"samples, {report.n_classes} classes); {report.quantiser}, {where}; "
               "measures in bits")
    rows = [("layer", "units", "criterion", "min", "median", "mean", "max")]
    notes = {}
    for layer in report.layers:
        s = report.layer_summary(layer)
        for i, (criterion, stats) in enumerate(s["measures"].items()):
            rows.append((layer.name if i == 0 else "", str(layer.n_units) if i == 0 else "",
                         criterion, *(f"{stats[k]:.4f}" for k in ("min", "median", "mean",
                                                                   "max"))))
        notes[len(rows) - 1] = (f"zero entropy: {s['zero_entropy']} of {layer.n_units} units "
                                f"({s['zero_entropy_dead']} dead, "
                                f"{s['zero_entropy_always_active']} always active)")
        if "above_chance" in s:
            chance = s["above_chance"]
            notes[len(rows) - 1] += (f"; above chance (q <= {chance['q']:g}): MI {chance['mi']}, "
                                     f"KL {chance['kl']} of {layer.n_units}")
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for index, row in enumerate(rows):
        cells = [cell.ljust(w) if i < 3 else cell.rjust(w)
                 for i, (cell, w) in enumerate(zip(row, widths))]
        click.echo("  ".join(cells).rstrip())
        if index in notes:
            click.echo(" " * (widths[0] + 2) + notes[index])
