"""``prune-info export``: a checkpoint to a checked ONNX file."""

from __future__ import annotations

import click

from prune_info.cli.app import cli
from prune_info.cli.common import (
    check_output,
    data_options,
    model_command_args,
)
from prune_info.deploy.onnx import (
    EXPORTERS,
    TOLERANCE,
    default_sample,
    export_onnx,
    model_input_shape,
)
from prune_info.errors import PruneInfoError


@cli.command("export")
@model_command_args
@data_options
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="ONNX file to write.")
@click.option("--opset", type=int, default=None,
              help="ONNX opset (default 18; the torchscript exporter writes 9 to 20).")
@click.option("--exporter", type=click.Choice(EXPORTERS), default="auto",
              show_default=True,
              help="torchscript: fast tracer; dynamo: torch.export-based, more operators; auto: "
                   "torchscript, or dynamo when torchscript fails or does not match PyTorch.")
@click.option("--batch", "n_samples", type=click.IntRange(min=1), default=256, show_default=True,
              help="Validation samples run through both onnxruntime and PyTorch.")
@click.option("--tolerance", type=click.FloatRange(min=0, min_open=True), default=TOLERANCE,
              show_default=True,
              help="Largest max-abs logit difference that passes (or 1e-5 of the largest "
                   "logit, when that is more: float32 rounding grows with the values).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def export(ckpt, data_args, output, opset, exporter, n_samples, tolerance, as_json):
    """Export a checkpoint (dense or pruned) to ONNX with a dynamic batch axis.

    The file is checked with onnx.checker, run in onnxruntime on a validation batch and on a
    single sample, and compared with PyTorch; above the tolerance nothing is written. Its
    metadata props record the architecture, dataset, accuracy and pruning history. The default
    exporter, auto, uses the fast TorchScript exporter and falls back to the dynamo exporter
    (saying why) when that fails or does not match PyTorch.

    \b
    Example:
      prune-info export pruned.pt -o pruned.onnx
    """
    check_output(output, *([ckpt.source] if ckpt.source else []))
    note = None
    if data_args.given or ckpt.dataset_name:
        data = data_args.load(ckpt)
        sample = data.val.head(n_samples).x
    else:
        shape = model_input_shape(ckpt)
        if shape is None:
            raise PruneInfoError("the model records neither its dataset nor its input shape; "
                                 "pass --data NAME")
        sample = default_sample(shape, n_samples)
        note = "no dataset recorded: compared on random standard-normal inputs"
    report = export_onnx(ckpt, output, opset=opset, sample=sample, exporter=exporter,
                         tolerance=tolerance)
    if as_json:
        click.echo(report.to_json())
        return
    click.echo(report.table())
    if report.fallback:
        click.echo(f"note: {report.fallback}", err=True)
    if note:
        click.echo(f"note: {note}", err=True)
    click.echo(f"saved {output}")
