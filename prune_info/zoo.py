"""Model specs, building, unit naming and planted units.

Two families are built from a short spec:

* MLP ``784-100-100-10``: input size, hidden widths, number of classes. Modules are named
  ``fc1, bn1, act1, drop1, fc2, ..., out``.
* CNN ``c32-c64-f128``: 3×3 convolutions (padding 1, each followed by 2×2 max-pooling) then
  fully-connected hidden layers; input shape and number of classes come from the dataset. Modules
  are named ``conv1, ..., fc1, ..., out``.

Every hidden Linear or Conv2d layer is *prunable*; its units (neurons or channels) are named
``layer:index`` where ``layer`` is the module's qualified name, e.g. ``fc2:17``. The output layer
is never prunable.

An architecture is a plain dict (see :func:`parse_arch`) that records the actual widths, so that a
pruned model (say 784-50-50-10) is rebuilt from its checkpoint without replaying anything.
"""

from __future__ import annotations

import importlib
import math
import re
from collections import OrderedDict
from typing import Callable

from torch import nn

from prune_info.errors import PruneInfoError

ACTIVATIONS = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}
REGULARISERS = ("none", "l2", "dropout", "bn-dropout")


def dropout_rates(n_hidden: int) -> list[float]:
    """Dropout probabilities per hidden layer, as in Amjad et al. (Sec. V).

    0.3 / 0.4 for two hidden layers, 0.2 / 0.4 / 0.2 / 0.4 for four; other depths (not covered by
    the paper) alternate 0.2 and 0.4.
    """
    if n_hidden == 2:
        return [0.3, 0.4]
    return [0.2 if i % 2 == 0 else 0.4 for i in range(n_hidden)]


# --------------------------------------------------------------------------------------------
# Specs


def parse_arch(
    spec: str,
    input_shape: tuple[int, ...],
    n_classes: int,
    act: str = "relu",
    reg: str = "none",
    batchnorm: bool | None = None,
) -> dict:
    """Turn a spec string into an architecture dict, checked against the data.

    Parameters
    ----------
    spec : str
        ``784-100-100-10`` (MLP) or ``c32-c64-f128`` (CNN).
    input_shape : tuple
        ``(C, H, W)`` of the data.
    n_classes : int
        Number of classes of the data.
    act : {"relu", "sigmoid", "tanh"}
    reg : {"none", "l2", "dropout", "bn-dropout"}
    batchnorm : bool, optional
        BatchNorm after every hidden layer; defaults to True exactly for ``bn-dropout``.

    Examples
    --------
    >>> parse_arch("64-32-10", (1, 8, 8), 10)["hidden"]
    [32]
    """
    if act not in ACTIVATIONS:
        raise PruneInfoError(f"unknown activation {act!r}; choose one of: {', '.join(ACTIVATIONS)}")
    if reg not in REGULARISERS:
        raise PruneInfoError(
            f"unknown regularisation {reg!r}; choose one of: {', '.join(REGULARISERS)}"
        )
    spec = spec.strip().lower()
    use_bn = (reg == "bn-dropout") if batchnorm is None else batchnorm
    n_in = math.prod(input_shape)
    common = {"act": act, "reg": reg, "batchnorm": use_bn, "input_shape": list(input_shape),
              "n_classes": n_classes}
    if re.fullmatch(r"\d+(-\d+)+", spec):
        sizes = [int(s) for s in spec.split("-")]
        if any(s < 1 for s in sizes):
            raise PruneInfoError(f"--arch {spec}: every layer needs at least 1 unit")
        if sizes[0] != n_in:
            raise PruneInfoError(
                f"--arch {spec} expects {sizes[0]} inputs but the data has {n_in} "
                f"({'x'.join(map(str, input_shape))}); use --arch {n_in}-...-{n_classes}"
            )
        if sizes[-1] != n_classes:
            raise PruneInfoError(
                f"--arch {spec} has {sizes[-1]} outputs but the data has {n_classes} classes; "
                f"end the spec with -{n_classes}"
            )
        return {"kind": "mlp", "hidden": sizes[1:-1], **common}
    if re.fullmatch(r"(c\d+-)*c\d+(-f\d+)*", spec):
        parts = spec.split("-")
        conv = [int(p[1:]) for p in parts if p.startswith("c")]
        fc = [int(p[1:]) for p in parts if p.startswith("f")]
        if any(w < 1 for w in conv + fc):
            raise PruneInfoError(f"--arch {spec}: every layer needs at least 1 unit")
        if len(input_shape) != 3:
            raise PruneInfoError(f"--arch {spec} is a CNN but the data is not images")
        side = min(input_shape[1:]) >> len(conv)
        if side < 1:
            raise PruneInfoError(
                f"--arch {spec}: {len(conv)} pooling stages shrink {input_shape[1]}x"
                f"{input_shape[2]} images to nothing; use fewer conv layers"
            )
        return {"kind": "cnn", "conv": conv, "hidden": fc, **common}
    raise PruneInfoError(
        f"cannot parse --arch {spec!r}; write an MLP as 784-100-100-10 or a CNN as c32-c64-f128"
    )


def arch_spec(arch: dict) -> str:
    """The spec string of an architecture dict (reflects pruned widths)."""
    if arch["kind"] == "mlp":
        sizes = [math.prod(arch["input_shape"]), *arch["hidden"], arch["n_classes"]]
        return "-".join(map(str, sizes))
    return "-".join([f"c{w}" for w in arch["conv"]] + [f"f{w}" for w in arch["hidden"]])


# --------------------------------------------------------------------------------------------
# Building


def build_model(arch: dict) -> nn.Sequential:
    """Build a freshly initialised model from an architecture dict."""
    act_cls = ACTIVATIONS[arch["act"]]
    use_bn = arch.get("batchnorm", False)
    n_fc = len(arch["hidden"])
    drops = dropout_rates(len(arch.get("conv", [])) + n_fc) if arch["reg"] in (
        "dropout", "bn-dropout") else None
    layers: "OrderedDict[str, nn.Module]" = OrderedDict()
    depth = 0
    if arch["kind"] == "cnn":
        channels, (height, width) = arch["input_shape"][0], arch["input_shape"][1:]
        for i, out_ch in enumerate(arch["conv"], start=1):
            layers[f"conv{i}"] = nn.Conv2d(channels, out_ch, 3, padding=1)
            if use_bn:
                layers[f"cbn{i}"] = nn.BatchNorm2d(out_ch)
            layers[f"cact{i}"] = act_cls()
            layers[f"pool{i}"] = nn.MaxPool2d(2)
            if drops:
                layers[f"cdrop{i}"] = nn.Dropout(drops[depth])
            depth += 1
            channels, height, width = out_ch, height // 2, width // 2
        n_in = channels * height * width
    else:
        n_in = math.prod(arch["input_shape"])
    layers["flatten"] = nn.Flatten()
    for i, width_i in enumerate(arch["hidden"], start=1):
        layers[f"fc{i}"] = nn.Linear(n_in, width_i)
        if use_bn:
            layers[f"bn{i}"] = nn.BatchNorm1d(width_i)
        layers[f"act{i}"] = act_cls()
        if drops:
            layers[f"drop{i}"] = nn.Dropout(drops[depth])
        depth += 1
        n_in = width_i
    layers["out"] = nn.Linear(n_in, arch["n_classes"])
    return nn.Sequential(layers)


# --------------------------------------------------------------------------------------------
# Loading


def import_factory(spec: str) -> Callable[[], nn.Module]:
    """Resolve ``package.module:function`` to a callable that builds an ``nn.Module``."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise PruneInfoError(
            f"--model {spec!r} is not of the form package.module:factory (a function that "
            "returns your nn.Module)"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise PruneInfoError(
            f"--model {spec}: cannot import {module_name} ({exc}); make it importable "
            "(install it, or run from the directory that holds it)"
        ) from exc
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise PruneInfoError(f"--model {spec}: {module_name} has no function {attr!r}")
    return factory


def _build_from_factory(spec: str) -> nn.Module:
    model = import_factory(spec)()
    if not isinstance(model, nn.Module):
        raise PruneInfoError(f"--model {spec} returned {type(model).__name__}, not an nn.Module")
    return model
