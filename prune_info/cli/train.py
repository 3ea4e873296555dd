"""``prune-info train`` and ``prune-info info``."""

from __future__ import annotations

import time

import click

from prune_info._torch import resolve_device
from prune_info.checkpoint import Checkpoint, save_checkpoint
from prune_info.cli.app import cli
from prune_info.cli.common import (
    DEVICES,
    check_output,
    echo_json,
    model_command_args,
    parse_int_list,
    seed_option,
)
from prune_info.data import DATASETS, load_dataset
from prune_info.nn import count_parameters
from prune_info.training.loop import OPTIMIZERS, TrainConfig, train_model
from prune_info.zoo import ACTIVATIONS, REGULARISERS


@cli.command()
@click.option("--data", "data_name", type=click.Choice(DATASETS), default="digits",
              show_default=True, help="Dataset to train on.")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None,
              help="Directory with the dataset files.")
@click.option("--arch", "spec", default="64-100-100-10", show_default=True,
              help="784-100-100-10 (MLP) or c32-c64-f128 (CNN).")
@click.option("--act", type=click.Choice(list(ACTIVATIONS)), default="relu", show_default=True)
@click.option("--reg", type=click.Choice(REGULARISERS), default="l2", show_default=True,
              help="l2: weight decay 1e-4; dropout: rates of the first paper; bn-dropout: + BN.")
@click.option("--batchnorm/--no-batchnorm", default=None,
              help="BatchNorm after each hidden layer (default: only with bn-dropout).")
@click.option("--epochs", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--optimizer", type=click.Choice(OPTIMIZERS), default="rmsprop", show_default=True)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=1e-3,
              show_default=True)
@click.option("--momentum", type=click.FloatRange(min=0), default=0.01, show_default=True,
              help="RMSprop momentum.")
@click.option("--weight-decay", type=click.FloatRange(min=0), default=None,
              help="Override the weight decay implied by --reg.")
@click.option("--save-rewind-step", "rewind_steps", default="", metavar="K[,K...]",
              help="Also keep the weights after K optimiser steps (for retrain --rewind K).")
@seed_option
@click.option("--device", type=DEVICES, default="cpu", show_default=True)
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Checkpoint to write.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def train(data_name, data_dir, spec, act, reg, batchnorm, epochs, batch_size, optimizer, lr,
          momentum, weight_decay, rewind_steps, seed, device, output, quiet, as_json):
    """Train a model and save a self-describing checkpoint.

    Defaults follow Amjad et al.: RMSprop, lr 1e-3, momentum 0.01, batch 32, weight decay 1e-4
    for l2; the epoch with the best validation accuracy is kept. `--optimizer sgd --lr 0.01`
    gives the set-up of Clauw et al.

    \b
    Example:
      prune-info train --data fashion-mnist --arch 784-100-100-10 --act relu --reg l2 \\
          --epochs 20 --seed 0 -o model.pt
    """
    check_output(output)
    dev = resolve_device(device)
    steps = tuple(parse_int_list(rewind_steps, "--save-rewind-step", 0)) if rewind_steps else ()
    config = TrainConfig(epochs=epochs, batch_size=batch_size, optimizer=optimizer, lr=lr,
                         momentum=momentum, weight_decay=weight_decay, seed=seed,
                         save_rewind_steps=steps)
    config.validate()
    data = load_dataset(data_name, data_dir, seed=seed)
    start = time.perf_counter()
    ckpt = train_model(data, spec, act, reg, config, batchnorm=batchnorm, device=dev,
                       progress=not quiet)
    ckpt.metrics["train_seconds"] = round(time.perf_counter() - start, 2)
    save_checkpoint(ckpt, output)
    summary = _summary(ckpt)
    if as_json:
        echo_json({**summary, "output": output}, "prune-info-train")
        return
    _print_summary(summary)
    click.echo(f"saved {output}")


def _summary(ckpt: Checkpoint) -> dict:
    m = ckpt.metrics
    return {
        "arch": ckpt.spec,
        "activation": (ckpt.arch or {}).get("act"),
        "regularisation": (ckpt.arch or {}).get("reg"),
        "parameters": count_parameters(ckpt.model),
        "layers": [{"name": layer.name, "kind": layer.kind, "units": layer.n_units}
                   for layer in ckpt.layers],
        "dataset": ckpt.dataset.get("name"),
        "seed": ckpt.seed,
        "epochs": ckpt.train_config.get("epochs"),
        "best_epoch": m.get("best_epoch"),
        "val_acc": m.get("val_acc"),
        "test_acc": m.get("test_acc"),
        "train_seconds": m.get("train_seconds"),
        "pruning_history": ckpt.pruning_history,
        "has_init_weights": ckpt.init_state_dict is not None,
        "rewind_steps": sorted(ckpt.rewind_state_dicts),
    }


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.2f} %"


def _print_summary(s: dict) -> None:
    rows = [
        ("architecture", s["arch"]),
        ("activation / reg", f"{s['activation'] or '-'} / {s['regularisation'] or '-'}"),
        ("parameters", f"{s['parameters']:,}"),
        ("prunable layers",
         ", ".join(f"{layer['name']} ({layer['units']})" for layer in s["layers"]) or "-"),
        ("dataset", s["dataset"] or "-"),
        ("seed", "-" if s["seed"] is None else str(s["seed"])),
        ("best epoch", f"{s['best_epoch']} of {s['epochs']}" if s["epochs"] else "-"),
        ("validation accuracy", _pct(s["val_acc"])),
        ("test accuracy", _pct(s["test_acc"])),
    ]
    if s["train_seconds"] is not None:
        rows.append(("training time", f"{s['train_seconds']:.1f} s"))
    rows.append(("initial weights", "stored" if s["has_init_weights"] else "not stored"))
    if s["rewind_steps"]:
        rows.append(("rewind steps", ", ".join(map(str, s["rewind_steps"]))))
    for i, entry in enumerate(s["pruning_history"], start=1):
        rows.append((f"pruning step {i}", entry.get("summary") or entry.get("criterion", "?")))
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        click.echo(f"{key:<{width}}  {value}")


@cli.command()
@model_command_args
@click.option("--data", "data_name", type=click.Choice(DATASETS), default=None,
              help="Dataset, needed only with --arch.")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of the table.")
def info(ckpt, data_name, data_dir, as_json):
    """Show a checkpoint: architecture, parameters, accuracy, dataset, pruning history.

    \b
    Example:
      prune-info info model.pt
    """
    summary = _summary(ckpt)
    if as_json:
        echo_json(summary, "prune-info-info")
    else:
        _print_summary(summary)
