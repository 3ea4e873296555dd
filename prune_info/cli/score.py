"""``prune-info score``: per-unit information measures of a trained model."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import click

from prune_info.analysis.score import SPLITS, score_checkpoint
from prune_info.capture import resolve_device
from prune_info.cli.app import cli, flag_message
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
from prune_info.criteria.options import BIAS_CORRECTIONS, CHANNEL_QUANTISERS, ScoreOptions
from prune_info.criteria.ranking import GROUP_REDUCTIONS
from prune_info.criteria.registry import parse_criteria
from prune_info.criteria.report import ScoreReport
from prune_info.errors import PruneInfoError
from prune_info.viz.figures import check_image_path, violin_plot


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

    check_max_samples(max_samples)
    data = data_args.load(ckpt)
    document = score_checkpoint(ckpt, data, names, split=split, max_samples=max_samples,
                                options=options, group_reduce=group_reduce)
    if plot is not None:
        violin_plot(document.score_tensors(), plot,
                    title=f"{ckpt.spec} on {data.name} ({split}), {document.quantiser}")
    if out is not None:
        cast(ScoreReport, document.report).write_csv(_csv_path(out))
        document.write(out)

    for line in document.warnings:
        click.echo(flag_message(line, click.get_current_context().command), err=True)
    if as_json:
        click.echo(document.to_json())
        return
    click.echo(document.table())
    for path in outputs:
        click.echo(f"wrote {path}")
