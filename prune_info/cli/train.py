"""``prune-info train`` and ``prune-info info``."""

from __future__ import annotations

import functools
import time

import click

from prune_info._torch import resolve_device
from prune_info.checkpoint import Checkpoint, save_checkpoint
from prune_info.cli.app import cli
from prune_info.cli.common import (
    DEVICES,
    allow_nonfinite_option,
    check_output,
    data_source_options,
    echo_json,
    input_shape_option,
    model_command_args,
    model_kwargs_option,
    open_dataset,
    parse_int_list,
    seed_option,
)
from prune_info.errors import PruneInfoError
from prune_info.nn import count_parameters
from prune_info.training.loop import OPTIMIZERS, SCHEDULES, TrainConfig, train_model
from prune_info.zoo import ACTIVATIONS, REGULARISERS, parse_model_kwargs


@cli.command()
@functools.partial(data_source_options, default="digits",
                   help_text="Dataset to train on [default: digits].")
@click.option("--arch", "spec", default=None,
              help="784-100-100-10 (MLP) or c32-c64-f128 (CNN)  [default: 64-100-100-10 "
                   "unless --model is given].")
@click.option("--model", "factory", default=None, metavar="PKG.MODULE:FN|timm:NAME",
              help="Train a model from a factory instead: torchvision.models:resnet18, "
                   "timm:vit_tiny_patch16_224, your_package.module:function.")
@model_kwargs_option
@input_shape_option
@click.option("--act", type=click.Choice(list(ACTIVATIONS)), default="relu", show_default=True)
@click.option("--reg", type=click.Choice(REGULARISERS), default="l2", show_default=True,
              help="l2: weight decay 1e-4; dropout: rates of the first paper; bn-dropout: + BN.")
@click.option("--batchnorm/--no-batchnorm", default=None,
              help="BatchNorm after each hidden layer (default: only with bn-dropout).")
@click.option("--epochs", type=click.IntRange(min=1), default=None,
              help="[default: 20; 10 with --model]")
@click.option("--batch-size", type=click.IntRange(min=1), default=None,
              help="[default: 32; 128 with --model]")
@click.option("--optimizer", type=click.Choice(OPTIMIZERS), default=None,
              help="[default: rmsprop; sgd-momentum with --model]")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=None,
              help="[default: 1e-3; 0.05 with --model]")
@click.option("--momentum", type=click.FloatRange(min=0), default=None,
              help="RMSprop / sgd-momentum momentum [default: 0.01; 0.9 with --model].")
@click.option("--schedule", type=click.Choice(SCHEDULES), default=None,
              help="Learning-rate schedule [default: constant; cosine with --model].")
@click.option("--augment/--no-augment", default=None,
              help="Random 2-pixel shifts and flips of images [default: off; on with --model].")
@click.option("--weight-decay", type=click.FloatRange(min=0), default=None,
              help="Override the weight decay implied by --reg [5e-4 with --model].")
@click.option("--save-rewind-step", "rewind_steps", default="", metavar="K[,K...]",
              help="Also keep the weights after K optimiser steps (for retrain --rewind K).")
@seed_option
@click.option("--device", type=DEVICES, default="cpu", show_default=True)
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Checkpoint to write.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@allow_nonfinite_option
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def train(data_name, data_dir, workers, normalize, spec, factory, model_kwargs, input_shape, act,
          reg, batchnorm, epochs, batch_size, optimizer, lr, momentum, schedule, augment,
          weight_decay, rewind_steps, seed, device, output, quiet, allow_nonfinite, as_json):
    """Train a model and save a self-describing checkpoint.

    Defaults follow Amjad et al.: RMSprop, lr 1e-3, momentum 0.01, batch 32, weight decay 1e-4
    for l2; the epoch with the best validation accuracy is kept. `--optimizer sgd --lr 0.01`
    gives the set-up of Clauw et al. A --model factory trains with the usual recipe of such
    models instead (SGD with momentum 0.9, cosine schedule, weight decay 5e-4, batch 128,
    augmentation); every option overrides it.

    \b
    Examples:
      prune-info train --data fashion-mnist --arch 784-100-100-10 --act relu --reg l2 \\
          --epochs 20 --seed 0 -o model.pt
      prune-info train --data fashion-mnist --model torchvision.models:resnet18 \\
          --model-kwargs num_classes=10 --input-shape 3,28,28 --epochs 3 -o resnet.pt
    """
    check_output(output)
    if factory is not None and spec is not None:
        raise PruneInfoError("give --arch or --model, not both")
    if model_kwargs is not None and factory is None:
        raise PruneInfoError("--model-kwargs are the arguments of --model; pass --model too")
    dev = resolve_device(device)
    steps = tuple(parse_int_list(rewind_steps, "--save-rewind-step", 0)) if rewind_steps else ()
    given = dict(epochs=epochs, batch_size=batch_size, optimizer=optimizer, lr=lr,
                 momentum=momentum, schedule=schedule, augment=augment,
                 weight_decay=weight_decay)
    changes = {k: v for k, v in given.items() if v is not None}
    changes.update(seed=seed, save_rewind_steps=steps)
    config = (TrainConfig.for_factory_models(**changes) if factory is not None
              else TrainConfig(**changes))
    config.validate()
    kwargs = parse_model_kwargs(model_kwargs)
    data = open_dataset(data_name, data_dir, seed=seed, workers=workers, normalize=normalize,
                        input_shape=input_shape)
    start = time.perf_counter()
    if factory is not None:
        ckpt = train_model(data, config=config, reg=reg, device=dev, progress=not quiet,
                           factory=factory, factory_kwargs=kwargs,
                           allow_nonfinite=allow_nonfinite)
    else:
        ckpt = train_model(data, spec or "64-100-100-10", act, reg, config,
                           batchnorm=batchnorm, device=dev, progress=not quiet,
                           allow_nonfinite=allow_nonfinite)
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
@functools.partial(data_source_options, help_text="Dataset, needed only with --arch.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of the table.")
def info(ckpt, data_args, as_json):
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
