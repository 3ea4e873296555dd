"""Capture the outputs of every prunable unit on a dataset, streamed in batches.

A *unit* is a neuron of a hidden Linear layer or a channel of a hidden Conv2d layer (see
:func:`prune_info.nn.prunable_layers`). Its output on a sample is read with forward hooks
during one ordinary forward pass of the model, batch by batch, so that measures can be
accumulated without ever holding the outputs of the whole dataset:

* **post-activation** (default): the output of the layer's activation module (after BatchNorm,
  if any, and the activation function). This is ``t_j(x)`` of eq. 1 of Amjad, Liu & Geiger.
* **pre-activation** (``pre_activation=True``): the *input* of the activation module, i.e. the
  affine output of the layer, after BatchNorm when the model has one.

A layer without an activation module (a model that calls its activation functionally) is read
at the output of its BatchNorm, else of the layer itself, in both modes.

Convolutional channels
----------------------
The paper treats fully-connected networks only; a channel of a convolution has one output per
spatial position. prune-info reduces a channel to one value per sample over the spatial
positions, with ``channel_reduce="mean"`` (default) or ``"max"``, and reads it at the same place
as a dense unit (after the activation, *before* pooling). Both reductions keep the meaning of the
paper's 1-bit quantiser for ReLU channels: the mean and the max of a ReLU map are positive
exactly when the channel fires somewhere in the image, so bin 1 still means "active". The mean
also reflects how much of the image activates the channel, which matters for finer binning;
``max`` follows the usual "does the feature occur" reading of a channel.

Examples
--------
>>> import torch
>>> from torch import nn
>>> from prune_info.nn import prunable_layers
>>> model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
>>> layers = prunable_layers(model)
>>> outputs = unit_outputs(model, layers, torch.randn(10, 1, 2, 2))
>>> {name: tuple(t.shape) for name, t in outputs.items()}
{'1': (10, 3)}
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from prune_info._torch import resolve_device
from prune_info.errors import PruneInfoError
from prune_info.nn import LayerInfo, get_module

__all__ = ['CHANNEL_REDUCTIONS', 'CaptureOptions', 'iter_unit_outputs', 'unit_outputs']

#: Accepted values of :attr:`CaptureOptions.channel_reduce`.
CHANNEL_REDUCTIONS = ("mean", "max")


@dataclass(frozen=True)
class CaptureOptions:
    """Where and how unit outputs are read.

    Parameters
    ----------
    pre_activation : bool, default False
        Read the input of the activation function instead of its output.
    channel_reduce : {"mean", "max"}, default "mean"
        How a convolutional channel's spatial map becomes one value per sample.
    batch_size : int, default 4096
        Samples per forward pass; memory of the capture is proportional to it.
    device : str, default "cpu"
        Where the forward pass runs (``cpu``, ``cuda``, ``cuda:N`` or ``auto``); the model must
        already be there.
    """

    pre_activation: bool = False
    channel_reduce: str = "mean"
    batch_size: int = 4096
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.channel_reduce not in CHANNEL_REDUCTIONS:
            raise PruneInfoError(
                f"unknown channel reduction {self.channel_reduce!r}; fix: use one of "
                f"{', '.join(CHANNEL_REDUCTIONS)} (`channel_reduce`)"
            )
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or (
            self.batch_size < 1
        ):
            raise PruneInfoError(
                f"batch size must be a positive integer, got {self.batch_size!r}; "
                "fix: use e.g. `batch_size`=4096 (smaller if memory is short)"
            )


# --------------------------------------------------------------------------------------------
# Hooks


def _read_point(model: nn.Module, layer: LayerInfo, pre_activation: bool):
    """The module to hook for a layer's units, and whether to hook its input or its output."""
    name, where = layer.read_point(pre_activation)
    module = get_module(model, name)
    inplace = layer.act_module is not None and bool(getattr(module, "inplace", False))
    return module, where, inplace


def _to_units(value: torch.Tensor, layer: LayerInfo, reduce: str, copy: bool) -> torch.Tensor:
    """One row per sample, one column per unit: reduce conv maps, copy if it may be overwritten."""
    if layer.kind == "conv":
        if value.ndim != 4 or value.shape[1] != layer.n_units:
            raise PruneInfoError(
                f"{layer.name}: expected channel maps of shape [batch, {layer.n_units}, H, W], "
                f"got {list(value.shape)}; fix: prune-info reads Conv2d layers of image models"
            )
        value = value.float()
        # Reductions allocate a new tensor, so a later in-place activation cannot alter it.
        return value.mean(dim=(2, 3)) if reduce == "mean" else value.amax(dim=(2, 3))
    if value.ndim != 2 or value.shape[1] != layer.n_units:
        raise PruneInfoError(
            f"{layer.name}: expected outputs of shape [batch, {layer.n_units}], got "
            f"{list(value.shape)}; fix: prune-info reads Linear layers applied to flat inputs"
        )
    value = value.float()
    return value.clone() if copy else value


@contextlib.contextmanager
def _hooks(model: nn.Module, layers: list[LayerInfo], options: CaptureOptions, store: dict):
    handles = []
    try:
        for layer in layers:
            module, where, inplace = _read_point(model, layer, options.pre_activation)
            # An in-place activation overwrites its input, so a pre-activation read must copy.
            copy = inplace and where == "input"

            def record(value, layer=layer, copy=copy):
                if layer.name in store:
                    raise PruneInfoError(
                        f"{layer.name}: the module read for its units ran twice in one forward "
                        "pass (an activation module shared between layers?); fix: give each "
                        "layer its own activation module"
                    )
                store[layer.name] = _to_units(value, layer, options.channel_reduce, copy)

            if where == "input":
                handles.append(module.register_forward_pre_hook(
                    lambda _m, args, record=record: record(args[0])))
            else:
                handles.append(module.register_forward_hook(
                    lambda _m, _args, out, record=record: record(out)))
        yield
    finally:
        for handle in handles:
            handle.remove()


# --------------------------------------------------------------------------------------------
# Public functions


def _check_model_device(model: nn.Module, device: torch.device) -> None:
    param = next(model.parameters(), None)
    if param is None:
        return
    have = param.device
    if have.type != device.type or (
        device.index is not None and have.index is not None and have.index != device.index
    ):
        raise PruneInfoError(
            f"the model is on {have} but the outputs are to be computed on {device}; "
            f"fix: move the model with model.to('{device}') or pass device='{have}'"
        )


def _first_weight_layer(model: nn.Module) -> tuple[str, nn.Module] | None:
    for name, module in model.named_modules():
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            return name, module
    return None


def _shape_error(model: nn.Module, x: torch.Tensor, exc: Exception) -> PruneInfoError:
    """A clear message for data that does not fit the model's first layer."""
    shape = "x".join(map(str, x.shape[1:]))
    n_values = math.prod(x.shape[1:])
    first = _first_weight_layer(model)
    if first is None:
        expects = ""
    elif isinstance(first[1], nn.Linear):
        expects = f"; its first layer {first[0]} expects {first[1].in_features} input values"
    else:
        expects = f"; its first layer {first[0]} expects {first[1].in_channels} input channels"
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return PruneInfoError(
        f"the data does not fit the model: samples of shape {shape} ({n_values} values){expects} "
        f"({detail}); fix: use the dataset the model was trained on (`data`) or the "
        "matching `arch`"
    )


@torch.no_grad()
def iter_unit_outputs(
    model: nn.Module,
    layers: list[LayerInfo],
    x: torch.Tensor,
    options: CaptureOptions = CaptureOptions(),
) -> Iterator[dict[str, torch.Tensor]]:
    """Yield, batch by batch, the outputs of the units of ``layers`` on the samples ``x``.

    Every batch is one forward pass of the model with hooks on the modules that hold the units'
    outputs. The model is put in eval mode (and restored afterwards); hooks are removed when the
    iteration ends, fails, or is abandoned.

    Parameters
    ----------
    model : nn.Module
        The network, already on ``options.device``.
    layers : list of LayerInfo
        Layers whose units to read, from :func:`prune_info.nn.prunable_layers`.
    x : Tensor, shape [n_samples, ...]
        Inputs in the layout the model takes (``[N, C, H, W]`` for prune-info datasets).
    options : CaptureOptions
        Pre- or post-activation, channel reduction, batch size, device.

    Yields
    ------
    dict of str to Tensor
        ``{layer name: float32 tensor [batch, n_units]}`` on ``options.device``; batches come
        in the order of ``x`` and have ``options.batch_size`` rows (the last may have fewer).

    Raises
    ------
    PruneInfoError
        If a layer list is empty, the data does not fit the model, the model is on another
        device, or a layer's output has an unexpected shape.
    """
    if not layers:
        raise PruneInfoError(
            "the model has no prunable layer (no hidden Linear or Conv2d layer before the "
            "classifier); fix: give a model with at least one hidden layer"
        )
    device = resolve_device(options.device)
    _check_model_device(model, device)
    was_training = model.training
    model.eval()
    store: dict[str, torch.Tensor] = {}
    try:
        with _hooks(model, layers, options, store):
            for start in range(0, len(x), options.batch_size):
                batch = x[start : start + options.batch_size].to(device, non_blocking=True)
                store.clear()
                if start == 0:
                    try:
                        model(batch)
                    except PruneInfoError:
                        raise
                    except (RuntimeError, ValueError) as exc:
                        raise _shape_error(model, x, exc) from exc
                else:
                    model(batch)
                missing = [layer.name for layer in layers if layer.name not in store]
                if missing:
                    raise PruneInfoError(
                        f"{missing[0]}: its output was not seen during the forward pass "
                        "(the module is not called by forward()); fix: score only layers the "
                        "model uses"
                    )
                yield {layer.name: store[layer.name] for layer in layers}
    finally:
        store.clear()
        model.train(was_training)


def unit_outputs(
    model: nn.Module,
    layers: list[LayerInfo],
    x: torch.Tensor,
    options: CaptureOptions = CaptureOptions(),
) -> dict[str, torch.Tensor]:
    """All unit outputs on ``x`` at once: :func:`iter_unit_outputs` concatenated.

    Memory grows with the number of samples; use it for small data or for estimators that
    need every sample (the streaming measures use :func:`iter_unit_outputs`).

    Returns
    -------
    dict of str to Tensor
        ``{layer name: float32 tensor [n_samples, n_units]}`` on ``options.device``.
    """
    parts: dict[str, list[torch.Tensor]] = {layer.name: [] for layer in layers}
    for batch in iter_unit_outputs(model, layers, x, options):
        for name, value in batch.items():
            parts[name].append(value)
    if len(x) == 0:
        device = resolve_device(options.device)
        return {layer.name: torch.empty(0, layer.n_units, device=device) for layer in layers}
    return {name: torch.cat(chunks) for name, chunks in parts.items()}
