"""``prune-info bench``: accuracy, size and latency of models side by side."""

from __future__ import annotations

import functools

import click

from prune_info._torch import resolve_device
from prune_info.cli.app import cli, flag_message
from prune_info.cli.common import (
    DEVICES,
    check_output,
    data_source_options,
    parse_int_list,
    trust_options,
)
from prune_info.deploy.bench import (
    DEFAULT_REPEAT,
    DEFAULT_WARMUP,
    RUNTIMES,
    benchmark_models,
    write_csv,
)
from prune_info.deploy.bench_report import BenchReport
from prune_info.deploy.onnx import EXPORTERS
from prune_info.viz.bench import plot_bench, plot_format


@cli.command()
@click.argument("models", nargs=-1, required=True, type=click.Path(),
                metavar="MODEL.pt|MODEL.onnx...")
@click.option("--device", type=DEVICES, default="cpu", show_default=True,
              help="Where PyTorch runs (and onnxruntime's CUDA provider, when installed); auto "
                   "picks CUDA when available.")
@click.option("--batch", "batch_text", default="1,32,256,4096", show_default=True,
              metavar="N[,N...]", help="Batch sizes timed.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="Intra-op threads of both runtimes (default: PyTorch's current setting; 1 "
                   "gives steadier figures on a busy machine).")
@click.option("--repeat", type=click.IntRange(min=1), default=DEFAULT_REPEAT, show_default=True,
              help="Timed calls per model, runtime and batch size.")
@click.option("--warmup", type=click.IntRange(min=0), default=DEFAULT_WARMUP, show_default=True,
              help="Untimed calls before timing.")
@click.option("--runtime", type=click.Choice(["all", *RUNTIMES]), default="all",
              show_default=True, help="Time PyTorch eager, onnxruntime, or both.")
@functools.partial(data_source_options,
                   help_text="Test data for every model (default: each model's recorded "
                             "dataset).")
@click.option("--opset", type=int, default=None, help="Opset of the ONNX conversion of .pt files.")
@click.option("--exporter", type=click.Choice(EXPORTERS), default="auto",
              show_default=True, help="Exporter of the ONNX conversion of .pt files.")
@trust_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of the tables.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), default=None,
              help="Also write one CSV row per model, runtime and batch size.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None,
              help="Also draw accuracy vs parameters and latency vs batch (.png/.pdf/.svg).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def bench(models, device, batch_text, threads, repeat, warmup, runtime, data_name, data_dir,
          workers, normalize,
          opset, exporter, trust_pickle, trust_factory, as_json, csv_path, plot_path, quiet):
    """Measure test accuracy, parameters, MACs, file size and latency of models.

    Latency is the median and 90th percentile of single timed calls after warm-up, in PyTorch
    eager and in onnxruntime (CPU; CUDA provider too with --device cuda when installed). Speed-ups
    and MAC ratios are relative to the first model. .pt files are converted to ONNX in memory
    (checked against PyTorch); .onnx files are timed in onnxruntime only and read their dataset
    from their metadata (or --data).

    \b
    Example:
      prune-info bench model.pt pruned.pt pruned.onnx --batch 1,256 --csv bench.csv
    """
    batches = parse_int_list(batch_text, "--batch", 1)
    for path in (csv_path, plot_path):
        if path is not None:
            check_output(path, *models)
    if plot_path is not None:
        plot_format(plot_path)
    dev = resolve_device(device)
    runtimes = RUNTIMES if runtime == "all" else (runtime,)
    results = benchmark_models(
        models, data=data_name, batches=batches, device=dev, threads=threads, repeat=repeat,
        warmup=warmup, data_dir=data_dir, opset=opset, exporter=exporter, runtimes=runtimes,
        trust_pickle=trust_pickle, trust_factory=trust_factory, progress=not quiet,
        workers=workers, normalize=normalize,
    )
    used_threads = next((e.threads for r in results for e in r.latency), threads)
    settings = {"device": dev.type, "batches": batches, "threads": used_threads,
                "repeat": repeat, "warmup": warmup, "runtimes": list(runtimes),
                "exporter": exporter}
    if csv_path is not None:
        write_csv(results, csv_path)
    if plot_path is not None:
        plot_bench(results, plot_path)
    report = BenchReport.of(results, **settings)
    if as_json:
        click.echo(report.to_json())
        return
    click.echo(report.table())
    for note in report.notes:
        click.echo(flag_message(note, click.get_current_context().command), err=True)
    for path in (csv_path, plot_path):
        if path is not None:
            click.echo(f"saved {path}")
