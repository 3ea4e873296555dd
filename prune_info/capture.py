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

Where units are read
--------------------
A unit is read at the *call* of the activation module that consumes the layer's own output,
identified by tensor identity: the layer's *source* (its normalisation if it has one, else the
layer itself) is hooked to remember its output tensor, and the one call of the activation module
whose input *is* that tensor is the layer's call. Which norm and activation modules those are is
found by data flow, in one forward pass (:func:`prune_info.nn.find_read_points`), not by the
order the modules were registered in: ResNet-50's Bottleneck registers one shared ReLU before
its layers, a squeeze-excitation block registers its activation after both of its layers, and a
module may be called several times. Only the layer's call is read here, masked by the ablation
curves and by the verification of a pruned model, and differentiated by the ``taylor``
criterion. An activation module shared by several calls (torchvision's ResNet ``BasicBlock``
applies one ``self.relu`` after ``bn1`` and again after the residual addition) is therefore read
once per layer, *before any residual addition*: ``layer1.0.conv1`` is ``relu(bn1(conv1(x)))``,
and the last convolution of a block (no activation of its own) is read at its BatchNorm's output,
also before the addition.

Where no activation module takes the source's output as it is (an operation in between, a
permutation, a gated or functional activation such as ``F.silu(x) * gate``), the units are read
at the documented fallback point: the source's output, i.e. after the norm and before whatever
comes next. The layer then has no activation (``LayerInfo.act_module`` is None, which
``prune-info score`` shows as ``-``), and its 1-bit quantiser splits at 0. :func:`unit_hooks`
is that rule.

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

Token units
-----------
A Linear layer applied to a sequence of tokens (a transformer's MLP ``fc1`` on
``[batch, tokens, dim]``) outputs ``[batch, tokens, units]``: its units are on the *last*
dimension, one value per token. prune-info reduces a token unit to one value per sample over the
tokens, with ``token_reduce="mean"`` (default), ``"max"``, or ``"cls"`` (token 0, the class token
of a ViT), read at the same place as a dense unit (after the activation). Ablation masks and the
verification of a pruned model zero such a unit on every token (the last axis).

Attention heads
---------------
The heads of a multi-head attention module (:func:`prune_info.nn.attention_heads`) are units of
kind ``heads``. A head's output is a ``head_dim`` vector per token, read where the output
projection takes it in (the input of ``proj``, before heads are mixed). :func:`unit_hooks` hands
it over as ``[batch, heads, *tokens, head_dim]`` (units on axis 1, as channels), so masks zero a
head on every token and every dimension. As one value per sample, a head's *activity* is the
Euclidean norm of its output vector on each token, reduced over the tokens by ``token_reduce``:
the size of what the head adds to the residual stream before projection, zero exactly when the
head is ablated. It has no "inactive" value, so the 1-bit quantiser of the information criteria
splits its range (see :mod:`prune_info.criteria.information`).

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
import itertools
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from prune_info._torch import resolve_device
from prune_info.data import Samples
from prune_info.errors import PruneInfoError
from prune_info.nn import (
    LayerInfo,
    find_read_points,
    get_module,
    input_mismatch,
    is_activation,
    prunable_layers,
)

__all__ = ['CHANNEL_REDUCTIONS', 'TOKEN_REDUCTIONS', 'CaptureOptions', 'iter_unit_batches',
           'iter_unit_outputs', 'unit_hooks', 'unit_outputs', 'unit_outputs_and_labels',
           'units_last']

#: Accepted values of :attr:`CaptureOptions.channel_reduce`.
CHANNEL_REDUCTIONS = ("mean", "max")
#: Accepted values of :attr:`CaptureOptions.token_reduce`.
TOKEN_REDUCTIONS = ("mean", "max", "cls")


@dataclass(frozen=True)
class CaptureOptions:
    """Where and how unit outputs are read.

    Parameters
    ----------
    pre_activation : bool, default False
        Read the input of the activation function instead of its output.
    channel_reduce : {"mean", "max"}, default "mean"
        How a convolutional channel's spatial map becomes one value per sample.
    token_reduce : {"mean", "max", "cls"}, default "mean"
        How a token unit (a Linear layer's output ``[batch, tokens, units]``) becomes one value
        per sample: mean or max over the tokens, or token 0 (``cls``).
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
    token_reduce: str = "mean"

    def __post_init__(self) -> None:
        if self.channel_reduce not in CHANNEL_REDUCTIONS:
            raise PruneInfoError(
                f"unknown channel reduction {self.channel_reduce!r}; fix: use one of "
                f"{', '.join(CHANNEL_REDUCTIONS)} (`channel_reduce`)"
            )
        if self.token_reduce not in TOKEN_REDUCTIONS:
            raise PruneInfoError(
                f"unknown token reduction {self.token_reduce!r}; fix: use one of "
                f"{', '.join(TOKEN_REDUCTIONS)} (`token_reduce`)"
            )
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or (
            self.batch_size < 1
        ):
            raise PruneInfoError(
                f"batch size must be a positive integer, got {self.batch_size!r}; "
                "fix: use e.g. `batch_size`=4096 (smaller if memory is short)"
            )


# --------------------------------------------------------------------------------------------
# Hooks: the one place that finds the call of an activation module holding a layer's units

#: ``fn(layer, value)`` of :func:`unit_hooks`: None keeps the value, a tensor replaces it.
UnitFn = Callable[[LayerInfo, torch.Tensor], "torch.Tensor | None"]


def _source_name(layer: LayerInfo) -> str:
    """The module whose output the layer's activation consumes: its norm, else the layer."""
    return layer.norm_module or layer.name


def _version(value: torch.Tensor) -> int | None:
    """The tensor's in-place version counter (None for inference tensors, which have none)."""
    try:
        return int(value._version)
    except (AttributeError, RuntimeError):
        return None


@dataclass
class _Tap:
    """What :func:`unit_hooks` knows of one layer during one forward pass."""

    layer: LayerInfo
    #: the source's output until its activation call (a weak reference for a layer without an
    #: activation module, which only checks that no activation module takes it as it is)
    pending: Callable[[], torch.Tensor | None] | None = None
    version: int | None = None
    armed: bool = False  # between the pre-hook and the hook of the layer's activation call

    def remember(self, out: torch.Tensor, weak: bool) -> None:
        self.pending = weakref.ref(out) if weak else (lambda: out)
        self.version = _version(out)

    def holds(self, value: object) -> bool:
        """Whether ``value`` is the remembered source output, not modified in place since."""
        return (self.pending is not None and value is self.pending()
                and isinstance(value, torch.Tensor) and _version(value) == self.version)


def _unconsumed(layer: LayerInfo) -> PruneInfoError:
    source = _source_name(layer)
    return PruneInfoError(
        f"{layer.name}: the output of {source} was not passed as it is to its activation "
        f"{layer.act_module} in the forward pass (a module or an operation between them), so "
        f"the call of {layer.act_module} that holds the layer's units is unknown; fix: call "
        f"{layer.act_module} directly on the output of {source}, or leave {layer.name} out "
        "(`layers`)"
    )


def _unassigned(layer: LayerInfo, act: str, calls: int) -> PruneInfoError:
    why = ("it ran twice in one forward pass: an activation module shared between layers"
           if calls > 1 else "it is registered before the layer, so it was not found after it")
    return PruneInfoError(
        f"{layer.name}: its output goes as it is into the activation module {act}, which is not "
        f"recognised as the layer's own ({why}); its units would be read before their "
        "activation; fix: give each layer its own activation module, registered after it"
    )


@contextlib.contextmanager
def unit_hooks(
    model: nn.Module,
    layers: Sequence[LayerInfo],
    fn: UnitFn,
    *,
    pre_activation: bool = False,
) -> Iterator[None]:
    """Hook the one call of each layer's activation module that holds its units.

    A layer's *source* is its normalisation module if it has one, else the layer itself. A
    forward hook on the source remembers its output tensor; the call of the layer's activation
    module whose input *is* that tensor (identity, and not modified in place since) is the
    layer's call, and only that call is given to ``fn``. Other calls of the same module (an
    activation applied again after a residual addition, as in torchvision's ``BasicBlock``) are
    left alone. A forward-pre-hook flags the call, so in-place activations (whose output is their
    input) work too. A layer without an activation module is given its source's output.

    Parameters
    ----------
    model : nn.Module
        The network; it must be called as a whole (``model(x)``) inside the context.
    layers : sequence of LayerInfo
        Layers from :func:`prune_info.nn.prunable_layers`.
    fn : callable
        ``fn(layer, value)``, called once per layer per forward pass with the value holding the
        layer's units: the activation's output (its input with ``pre_activation``), or the
        source's output for a layer without an activation (attention heads: the input of the
        output projection, as ``[batch, heads, *tokens, head_dim]``). A returned tensor
        replaces that value in the forward pass (an ablation mask); None leaves it as it is.
        ``value`` may be modified in place later in the pass (an in-place activation, a
        residual ``+=``): copy what is kept.
    pre_activation : bool, default False
        Give ``fn`` the input of the activation call instead of its output.

    Yields
    ------
    None
        The hooks are removed when the context exits, normally or not.

    Raises
    ------
    PruneInfoError
        During a forward pass, if a layer's source output does not reach its activation as it is
        (a module or an operation between them), so that no call can be told to be the layer's;
        or if the output of a layer without an activation module goes as it is into an
        activation module (one shared with another layer), so that it would be read before its
        activation.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> from prune_info.nn import prunable_layers
    >>> class Block(nn.Module):  # one ReLU, called twice
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.fc1, self.relu, self.fc2 = nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 2)
    ...     def forward(self, x):
    ...         return self.fc2(self.relu(self.relu(self.fc1(x)) - 1.0))
    >>> model = Block()
    >>> seen = []
    >>> with unit_hooks(model, prunable_layers(model), lambda layer, v: seen.append(layer.name)):
    ...     _ = model(torch.randn(3, 2))
    >>> seen
    ['fc1']
    """
    current = {layer.name: layer for layer in prunable_layers(model)}
    layers = [current.get(layer.name, layer) for layer in layers]  # read points found since
    handles: list[torch.utils.hooks.RemovableHandle] = []
    tapped: list[_Tap] = []  # layers with an activation module
    direct: list[_Tap] = []  # layers without one
    by_act: dict[int, list[_Tap]] = {}
    acts: dict[int, tuple[str, nn.Module]] = {}
    calls: dict[int, int] = {}

    def start(_module: nn.Module, _args: Any) -> None:
        for tap in (*tapped, *direct):
            tap.pending, tap.armed = None, False
        calls.clear()

    def finish(_module: nn.Module, _args: Any, _out: Any) -> None:
        unconsumed = [tap for tap in tapped if tap.pending is not None]
        for tap in (*tapped, *direct):
            tap.pending = None
        if unconsumed:
            raise _unconsumed(unconsumed[0].layer)

    def source_hook(tap: _Tap):
        def hook(_module: nn.Module, _args: Any, out: torch.Tensor) -> torch.Tensor | None:
            if tap.layer.act_module is not None:
                if tap.pending is not None:  # the source ran again before its activation
                    raise _unconsumed(tap.layer)
                tap.remember(out, weak=False)
                return None
            new = fn(tap.layer, out)
            if isinstance(new, torch.Tensor) or isinstance(out, torch.Tensor):
                tap.remember(new if new is not None else out, weak=True)
            return new
        return hook

    def act_pre_hook(key: int):
        def hook(_module: nn.Module, args: tuple) -> tuple | None:
            calls[key] = calls.get(key, 0) + 1
            value = args[0] if args else None
            for tap in by_act.get(key, ()):
                if tap.holds(value):
                    tap.pending = None
                    if not pre_activation:
                        tap.armed = True
                        return None
                    new = fn(tap.layer, args[0])
                    return None if new is None else (new, *args[1:])
            for tap in direct:
                if tap.holds(value):
                    raise _unassigned(tap.layer, acts[key][0], calls[key])
            return None
        return hook

    def heads_hook(layer: LayerInfo):
        def hook(_module: nn.Module, args: tuple) -> tuple | None:
            heads = args[0].unflatten(-1, (layer.n_units, -1)).movedim(-2, 1)
            new = fn(layer, heads)
            return None if new is None else (new.movedim(1, -2).flatten(-2), *args[1:])
        return hook

    def act_hook(key: int):
        def hook(_module: nn.Module, _args: Any, out: torch.Tensor) -> torch.Tensor | None:
            for tap in by_act.get(key, ()):
                if tap.armed:
                    tap.armed = False
                    return fn(tap.layer, out)
            return None
        return hook

    try:
        for name, module in model.named_modules():
            if is_activation(module):
                acts.setdefault(id(module), (name, module))
        for layer in layers:
            if layer.kind == "heads":  # read at the input of the output projection
                handles.append(get_module(model, layer.output_module).register_forward_pre_hook(
                    heads_hook(layer)))
                continue
            tap = _Tap(layer)
            handles.append(get_module(model, _source_name(layer)).register_forward_hook(
                source_hook(tap)))
            if layer.act_module is None:
                direct.append(tap)
                continue
            tapped.append(tap)
            act = get_module(model, layer.act_module)
            acts.setdefault(id(act), (layer.act_module, act))
            by_act.setdefault(id(act), []).append(tap)
        for key, (_, act) in acts.items():
            handles.append(act.register_forward_pre_hook(act_pre_hook(key)))
            if key in by_act and not pre_activation:
                handles.append(act.register_forward_hook(act_hook(key)))
        handles.append(model.register_forward_pre_hook(start))
        handles.append(model.register_forward_hook(finish))
        yield
    finally:
        for handle in handles:
            handle.remove()
        for tap in (*tapped, *direct):
            tap.pending = None


def units_last(layer: LayerInfo, value: torch.Tensor) -> bool:
    """Whether ``value`` holds the units of ``layer`` on its last axis (token units).

    True for a Linear layer's output with more than two dimensions (``[batch, tokens, units]``);
    dense outputs ``[batch, units]`` and conv maps ``[batch, channels, H, W]`` have their units
    on axis 1.
    """
    return layer.kind == "linear" and value.ndim > 2


def _to_units(value: torch.Tensor, layer: LayerInfo, reduce: str,
              token_reduce: str = "mean") -> torch.Tensor:
    """One row per sample, one column per unit: reduce conv maps and tokens, copy dense outputs.

    The result is always a new tensor, so an in-place operation later in the forward pass (an
    in-place activation, a residual ``+=``) cannot alter it.
    """
    if layer.kind == "heads":  # [batch, heads, *tokens, head_dim]: the norm per token
        norms = torch.linalg.vector_norm(value.float(), dim=-1)
        if norms.ndim == 2:
            return norms
        norms = norms.flatten(2)
        if token_reduce == "cls":
            return norms[:, :, 0].clone()
        return norms.mean(dim=2) if token_reduce == "mean" else norms.amax(dim=2)
    if layer.kind == "conv":
        if value.ndim != 4 or value.shape[1] != layer.n_units:
            raise PruneInfoError(
                f"{layer.name}: expected channel maps of shape [batch, {layer.n_units}, H, W], "
                f"got {list(value.shape)}; fix: prune-info reads Conv2d layers of image models"
            )
        value = value.float()
        # Reductions allocate a new tensor.
        return value.mean(dim=(2, 3)) if reduce == "mean" else value.amax(dim=(2, 3))
    if value.ndim >= 3 and value.shape[-1] == layer.n_units:
        # [batch, tokens, units], or [batch, H, W, units] (channels-last, a ConvNeXt block)
        value = value.float().flatten(1, -2)
        if token_reduce == "cls":
            return value[:, 0].clone()
        return value.mean(dim=1) if token_reduce == "mean" else value.amax(dim=1)
    if value.ndim != 2 or value.shape[1] != layer.n_units:
        raise PruneInfoError(
            f"{layer.name}: expected outputs of shape [batch, {layer.n_units}], [batch, "
            f"tokens, {layer.n_units}] or [batch, H, W, {layer.n_units}], got "
            f"{list(value.shape)}; fix: prune-info reads Linear layers applied to flat inputs, "
            "token sequences or channels-last maps"
        )
    out = value.float()
    return out.clone() if out is value else out


@contextlib.contextmanager
def _hooks(model: nn.Module, layers: list[LayerInfo], options: CaptureOptions, store: dict):
    def record(layer: LayerInfo, value: torch.Tensor) -> None:
        if layer.name in store:
            raise PruneInfoError(
                f"{layer.name}: the module read for its units ran twice in one forward "
                "pass (a layer or normalisation module called twice?); fix: give each "
                "call its own module"
            )
        store[layer.name] = _to_units(value, layer, options.channel_reduce,
                                      options.token_reduce)

    with unit_hooks(model, layers, record, pre_activation=options.pre_activation):
        yield


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


@torch.no_grad()
def iter_unit_outputs(
    model: nn.Module,
    layers: list[LayerInfo],
    x: torch.Tensor | Samples,
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
    x : Tensor [n_samples, ...], Split or StreamSplit
        Inputs in the layout the model takes (``[N, C, H, W]`` for images), or labelled
        samples read batch by batch (a streamed source is never held whole).
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
    for outputs, _ in iter_unit_batches(model, layers, x, options):
        yield outputs


@torch.no_grad()
def iter_unit_batches(
    model: nn.Module,
    layers: list[LayerInfo],
    data: torch.Tensor | Samples,
    options: CaptureOptions = CaptureOptions(),
) -> Iterator[tuple[dict[str, torch.Tensor], torch.Tensor | None]]:
    """:func:`iter_unit_outputs` with each batch's labels (None for a bare tensor of inputs)."""
    if not layers:
        raise PruneInfoError(
            "the model has no prunable layer (no hidden Linear or Conv2d layer before the "
            "classifier); fix: give a model with at least one hidden layer"
        )
    device = resolve_device(options.device)
    _check_model_device(model, device)
    batches: Iterator[tuple[torch.Tensor, torch.Tensor | None]]
    if isinstance(data, torch.Tensor):
        batches = ((data[s : s + options.batch_size], None)
                   for s in range(0, len(data), options.batch_size))
    else:
        batches = iter(data.batches(options.batch_size))
    first = next(batches, None)
    if first is None:
        return
    find_read_points(model, first[0][:1].to(device))
    current = {layer.name: layer for layer in prunable_layers(model)}
    layers = [current.get(layer.name, layer) for layer in layers]
    was_training = model.training
    model.eval()
    store: dict[str, torch.Tensor] = {}
    try:
        with _hooks(model, layers, options, store):
            for i, (xb, yb) in enumerate(itertools.chain([first], batches)):
                batch = xb.to(device, non_blocking=True)
                store.clear()
                try:
                    model(batch)
                except PruneInfoError:
                    raise
                except (RuntimeError, ValueError) as exc:
                    if i:
                        raise
                    raise input_mismatch(model, batch, exc) from exc
                missing = [layer.name for layer in layers if layer.name not in store]
                if missing:
                    raise PruneInfoError(
                        f"{missing[0]}: its output was not seen during the forward pass "
                        "(the module is not called by forward()); fix: score only layers the "
                        "model uses"
                    )
                yield {layer.name: store[layer.name] for layer in layers}, yb
    finally:
        store.clear()
        model.train(was_training)


def unit_outputs_and_labels(
    model: nn.Module,
    layers: list[LayerInfo],
    data: Samples,
    options: CaptureOptions = CaptureOptions(),
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """All unit outputs on labelled samples and their labels, read in one pass (a streamed
    source is read once; only the units' outputs are kept, never the inputs)."""
    parts: dict[str, list[torch.Tensor]] = {layer.name: [] for layer in layers}
    labels: list[torch.Tensor] = []
    for batch, y in iter_unit_batches(model, layers, data, options):
        for name, value in batch.items():
            parts[name].append(value)
        labels.append(torch.as_tensor(y).cpu())
    if not labels:
        raise PruneInfoError("the data hold no sample; give labelled samples")
    return {name: torch.cat(chunks) for name, chunks in parts.items()}, torch.cat(labels)


def unit_outputs(
    model: nn.Module,
    layers: list[LayerInfo],
    x: torch.Tensor | Samples,
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
