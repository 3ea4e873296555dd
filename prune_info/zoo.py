"""Model specs, building, unit naming and planted units.

Two families are built from a short spec:

* MLP ``784-100-100-10``: input size, hidden widths, number of classes. Modules are named
  ``fc1, bn1, act1, drop1, fc2, ..., out``.
* CNN ``c32-c64-f128``: 3×3 convolutions (padding 1, each followed by 2×2 max-pooling) then
  fully-connected hidden layers; input shape and number of classes come from the dataset. Modules
  are named ``conv1, ..., fc1, ..., out``. Widths joined by a dot are convolutions of one stage,
  pooled once after the last: ``c8-c16-c32.32-c64.64-c64.64-f64-f64`` is the layout of VGG-11
  (Simonyan & Zisserman, Table 1, configuration A) at 1/8 of its channels.

Every hidden Linear or Conv2d layer is *prunable*; its units (neurons or channels) are named
``layer:index`` where ``layer`` is the module's qualified name, e.g. ``fc2:17``. The output layer
is never prunable.

An architecture is a plain dict (see :func:`parse_arch`) that records the actual widths, so that a
pruned model (say 784-50-50-10) is rebuilt from its checkpoint without replaying anything.
Checkpoints store that dict; :class:`ArchSpec` is its typed view (``ArchSpec.from_dict(arch)``,
``.to_dict()`` gives the dict back exactly).
"""

from __future__ import annotations

import difflib
import functools
import importlib
import inspect
import math
import re
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from prune_info._text import parse_kwargs
from prune_info._torch import memory_available, memory_ceiling
from prune_info.errors import PruneInfoError
from prune_info.huggingface import HF_PREFIX, hf_model, is_hf_class

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


@dataclass(frozen=True)
class ArchSpec:
    """Typed view of an architecture dict (what :func:`parse_arch` returns, checkpoints store).

    Checkpoints keep storing the plain dict; :meth:`from_dict` reads one and :meth:`to_dict`
    writes it back exactly (same keys, same order, lists for the sequences).

    Attributes
    ----------
    kind : {"mlp", "cnn"}
    hidden : tuple of int
        Widths of the fully-connected hidden layers ``fc1, fc2, ...``.
    act : {"relu", "sigmoid", "tanh"}
    reg : {"none", "l2", "dropout", "bn-dropout"}
    batchnorm : bool
        BatchNorm after every hidden layer.
    input_shape : tuple of int
        ``(C, H, W)`` of one input.
    n_classes : int
    conv : tuple of int
        Channels of the convolutions ``conv1, conv2, ...`` (CNN only; empty for an MLP).
    stages : tuple of int
        Convolutions per pooling stage, summing to ``len(conv)``; empty means one each (a pool
        after every convolution). Stored as ``conv_stages`` only when some stage has more.

    Examples
    --------
    >>> spec = ArchSpec.from_dict(parse_arch("64-32-10", (1, 8, 8), 10))
    >>> spec.hidden, spec.spec
    ((32,), '64-32-10')
    >>> spec.to_dict() == parse_arch("64-32-10", (1, 8, 8), 10)
    True
    """

    kind: str
    hidden: tuple[int, ...]
    act: str
    reg: str
    batchnorm: bool
    input_shape: tuple[int, ...]
    n_classes: int
    conv: tuple[int, ...] = ()
    stages: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        def positive(values: tuple) -> bool:
            return all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values)

        for name, values in (("hidden", self.hidden), ("conv", self.conv),
                             ("input_shape", self.input_shape), ("n_classes", (self.n_classes,))):
            if not positive(values):
                raise PruneInfoError(f"the architecture's `{name}` {list(values)} must be "
                                     "positive integers; rebuild it with parse_arch")
        if self.act not in ACTIVATIONS or self.reg not in REGULARISERS \
                or not isinstance(self.batchnorm, bool):
            raise PruneInfoError(f"the architecture's act / reg / batchnorm ({self.act!r}, "
                                 f"{self.reg!r}, {self.batchnorm!r}) are not "
                                 f"{'/'.join(ACTIVATIONS)}, {'/'.join(REGULARISERS)} and a bool; "
                                 "rebuild it with parse_arch")
        if self.stages and (sum(self.stages) != len(self.conv) or min(self.stages) < 1):
            raise PruneInfoError(f"`conv_stages`={list(self.stages)} does not split the "
                                 f"{len(self.conv)} convolutions into stages; rebuild the "
                                 "architecture with parse_arch")

    @property
    def conv_stages(self) -> tuple[int, ...]:
        """Convolutions per pooling stage (one each unless the spec groups them)."""
        return self.stages or (1,) * len(self.conv)

    @property
    def pooled(self) -> tuple[bool, ...]:
        """Per convolution: whether a 2×2 max-pooling follows it (the last of each stage)."""
        out: list[bool] = []
        for n in self.conv_stages:
            out += [False] * (n - 1) + [True]
        return tuple(out)

    @classmethod
    def from_dict(cls, arch: dict | ArchSpec) -> ArchSpec:
        """Read an architecture dict (an :class:`ArchSpec` is returned as is).

        ``batchnorm`` defaults to False and ``conv`` to none when absent; other keys are
        required, and keys this version does not know are ignored.
        """
        if isinstance(arch, ArchSpec):
            return arch
        if not isinstance(arch, dict):
            raise PruneInfoError(
                f"an architecture is a dict from parse_arch, got {type(arch).__name__}"
            )
        missing = [k for k in ("kind", "hidden", "act", "reg", "input_shape", "n_classes")
                   if k not in arch]
        if missing:
            raise PruneInfoError(
                f"the architecture dict lacks {', '.join(missing)}; rebuild it with parse_arch"
            )
        if arch["kind"] not in ("mlp", "cnn"):
            raise PruneInfoError(f"unknown architecture kind {arch['kind']!r}; expected mlp or cnn")
        return cls(kind=arch["kind"], hidden=tuple(arch["hidden"]), act=arch["act"],
                   reg=arch["reg"], batchnorm=arch.get("batchnorm", False),
                   input_shape=tuple(arch["input_shape"]), n_classes=arch["n_classes"],
                   conv=tuple(arch.get("conv", ())),
                   stages=tuple(arch.get("conv_stages", ())))

    def to_dict(self) -> dict:
        """The architecture dict, as :func:`parse_arch` returns it and checkpoints store it."""
        head: dict = {"kind": self.kind}
        if self.kind == "cnn":
            head["conv"] = list(self.conv)
            if any(n > 1 for n in self.conv_stages):
                head["conv_stages"] = list(self.conv_stages)
        return {**head, "hidden": list(self.hidden), "act": self.act, "reg": self.reg,
                "batchnorm": self.batchnorm, "input_shape": list(self.input_shape),
                "n_classes": self.n_classes}

    @property
    def spec(self) -> str:
        """The spec string (``784-100-100-10`` or ``c32-c64-f128``), with the current widths."""
        if self.kind == "mlp":
            return "-".join(map(str, [math.prod(self.input_shape), *self.hidden,
                                      self.n_classes]))
        widths, stages = iter(self.conv), []
        for n in self.conv_stages:
            stages.append("c" + ".".join(str(next(widths)) for _ in range(n)))
        return "-".join(stages + [f"f{w}" for w in self.hidden])


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
        ``784-100-100-10`` (MLP) or ``c32-c64-f128`` (CNN; ``c32.32`` is two convolutions
        before one pooling).
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
    common: dict[str, Any] = {"act": act, "reg": reg, "batchnorm": use_bn,
                              "input_shape": tuple(input_shape), "n_classes": n_classes}
    if re.fullmatch(r"\d+(-\d+)+", spec):
        sizes = [int(s) for s in spec.split("-")]
        if any(s < 1 for s in sizes):
            raise PruneInfoError(f"`spec`={spec}: every layer needs at least 1 unit")
        if sizes[0] != n_in:
            raise PruneInfoError(
                f"`spec`={spec} expects {sizes[0]} inputs but the data has {n_in} "
                f"({'x'.join(map(str, input_shape))}); use `spec`={n_in}-...-{n_classes}"
            )
        if sizes[-1] != n_classes:
            raise PruneInfoError(
                f"`spec`={spec} has {sizes[-1]} outputs but the data has {n_classes} classes; "
                f"end the spec with -{n_classes}"
            )
        return ArchSpec(kind="mlp", hidden=tuple(sizes[1:-1]), **common).to_dict()
    if re.fullmatch(r"(c\d+(\.\d+)*-)*c\d+(\.\d+)*(-f\d+)*", spec):
        parts = spec.split("-")
        stages = [[int(w) for w in p[1:].split(".")] for p in parts if p.startswith("c")]
        conv = [w for stage in stages for w in stage]
        fc = [int(p[1:]) for p in parts if p.startswith("f")]
        if any(w < 1 for w in conv + fc):
            raise PruneInfoError(f"`spec`={spec}: every layer needs at least 1 unit")
        if len(input_shape) != 3:
            raise PruneInfoError(f"`spec`={spec} is a CNN but the data is not images")
        side = min(input_shape[1:]) >> len(stages)
        if side < 1:
            raise PruneInfoError(
                f"`spec`={spec}: {len(stages)} pooling stages shrink {input_shape[1]}x"
                f"{input_shape[2]} images to nothing; use fewer stages (join convolutions of "
                "one stage with a dot: c32.32)"
            )
        return ArchSpec(kind="cnn", conv=tuple(conv), hidden=tuple(fc),
                        stages=tuple(len(stage) for stage in stages), **common).to_dict()
    raise PruneInfoError(
        f"cannot parse `spec`={spec!r}; write an MLP as 784-100-100-10 or a CNN as c32-c64-f128 "
        "(c32.32: two convolutions before one pooling)"
    )


def arch_spec(arch: dict | ArchSpec) -> str:
    """The spec string of an architecture dict (reflects pruned widths)."""
    return ArchSpec.from_dict(arch).spec


# --------------------------------------------------------------------------------------------
# Building


def build_model(arch: dict | ArchSpec) -> nn.Sequential:
    """Build a freshly initialised model from an architecture dict (or :class:`ArchSpec`).

    Raises
    ------
    PruneInfoError
        If the weights would not fit in the memory available (counted on the ``meta`` device
        first, so nothing is allocated for a spec such as ``64-100000000000-10``).
    """
    arch = ArchSpec.from_dict(arch)
    with torch.device("meta"):
        n_params = sum(p.numel() for p in _build(arch).parameters())
    available = memory_available()
    if available is not None and 4 * n_params > available:
        raise PruneInfoError(
            f"the architecture {arch.spec} has {n_params:,} parameters ("
            f"{4 * n_params / 2**30:.1f} GiB in float32), more than the "
            f"{available / 2**30:.1f} GiB of memory available; use narrower layers")
    return _build(arch)


def _build(arch: ArchSpec) -> nn.Sequential:
    act_cls = ACTIVATIONS[arch.act]
    use_bn = arch.batchnorm
    n_fc = len(arch.hidden)
    drops = dropout_rates(len(arch.conv) + n_fc) if arch.reg in (
        "dropout", "bn-dropout") else None
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    depth = 0
    if arch.kind == "cnn":
        channels, (height, width) = arch.input_shape[0], arch.input_shape[1:]
        for i, (out_ch, pooled) in enumerate(zip(arch.conv, arch.pooled), start=1):
            layers[f"conv{i}"] = nn.Conv2d(channels, out_ch, 3, padding=1)
            if use_bn:
                layers[f"cbn{i}"] = nn.BatchNorm2d(out_ch)
            layers[f"cact{i}"] = act_cls()
            if pooled:
                layers[f"pool{i}"] = nn.MaxPool2d(2)
                height, width = height // 2, width // 2
            if drops:
                layers[f"cdrop{i}"] = nn.Dropout(drops[depth])
            depth += 1
            channels = out_ch
        n_in = channels * height * width
    else:
        n_in = math.prod(arch.input_shape)
    layers["flatten"] = nn.Flatten()
    for i, width_i in enumerate(arch.hidden, start=1):
        layers[f"fc{i}"] = nn.Linear(n_in, width_i)
        if use_bn:
            layers[f"bn{i}"] = nn.BatchNorm1d(width_i)
        layers[f"act{i}"] = act_cls()
        if drops:
            layers[f"drop{i}"] = nn.Dropout(drops[depth])
        depth += 1
        n_in = width_i
    layers["out"] = nn.Linear(n_in, arch.n_classes)
    return nn.Sequential(layers)


# --------------------------------------------------------------------------------------------
# Loading


#: Prefix of a factory spec that names a timm model (``timm:vit_tiny_patch16_224``).
TIMM_PREFIX = "timm:"

#: The torchvision package whose registered builders count as a model zoo.
TORCHVISION_MODELS = "torchvision.models"

# Keyword arguments that would make a factory download weights or read them from a file; a
# model's weights come from its checkpoint only, so any of them set to something other than
# None / False is refused (a file named here could be unpickled, running its code).
_WEIGHT_SOURCE_KWARGS = ("pretrained", "weights", "pretrained_cfg", "pretrained_cfg_overlay",
                         "checkpoint_path", "cache_dir", "weights_only", "pretrained_strict")


def import_factory(spec: str) -> Callable[..., nn.Module]:
    """Resolve ``package.module:function`` to a callable that builds an ``nn.Module``.

    This imports (runs) the module named: call it only for a factory the user named or a
    known zoo's (:func:`zoo_builder`), never for one read from a file.
    """
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise PruneInfoError(
            f"`factory`={spec!r} is not of the form package.module:function (a function that "
            "returns your nn.Module) or timm:MODEL_NAME"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise PruneInfoError(
            f"`factory`={spec}: cannot import {module_name} ({exc}); make it importable "
            "(install it, or run from the directory that holds it)"
        ) from exc
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise PruneInfoError(f"`factory`={spec}: {module_name} has no function {attr!r}")
    return factory


def zoo_builder(factory: str) -> Callable[..., nn.Module] | None:
    """The model builder ``factory`` names in a known model zoo, else None.

    Known zoos: ``timm:NAME`` for a model timm lists (:func:`timm.list_models`),
    ``torchvision.models[.SUB]:NAME`` where the attribute is one of the builders torchvision
    registers (:func:`torchvision.models.list_models`), and ``hf:CLASS`` for a HuggingFace image
    classifier (:mod:`prune_info.huggingface`). Their builders only construct modules
    (weights are refused, see :func:`check_factory_kwargs`), so a checkpoint may name them. Only
    those packages are imported to decide: a module named by anything else is never imported.

    Examples
    --------
    >>> zoo_builder("torchvision.models:resnet18") is not None
    True
    >>> zoo_builder("os:system") is None, zoo_builder("torchvision.models:get_weight") is None
    (True, True)
    """
    module_name, sep, attr = factory.partition(":")
    if not sep or not attr:
        return None
    if module_name == TIMM_PREFIX[:-1]:
        import timm  # heavy: imports torchvision and torch._dynamo

        if attr not in timm.list_models():
            return None
        return functools.partial(timm.create_model, attr, pretrained=False)
    if module_name == HF_PREFIX[:-1]:
        return functools.partial(hf_model, attr) if is_hf_class(attr) else None
    if module_name == TORCHVISION_MODELS or module_name.startswith(TORCHVISION_MODELS + "."):
        import torchvision.models

        try:
            module = importlib.import_module(module_name)
        except ImportError:
            return None
        found = getattr(module, attr, None)
        builders = (torchvision.models.get_model_builder(name)
                    for name in torchvision.models.list_models())
        if found is not None and any(found is builder for builder in builders):
            return found
    return None


def _is_plain(value: Any) -> bool:
    """None, bool, int, float, str, or lists / tuples / str-keyed dicts of those."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_is_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_plain(v) for k, v in value.items())
    return False


def check_factory_kwargs(factory: str, kwargs: Mapping[str, Any], *,
                         recorded_in: str | None = None) -> None:
    """Refuse keyword arguments a factory must not get; they are the factory's only input.

    Every value must be a plain literal (:func:`parse_model_kwargs` gives only those), no
    argument may ask for weights from a download or a file (``pretrained``, ``weights``,
    ``checkpoint_path``, ...), and the arguments must fit the builder's signature where it has
    no ``**kwargs``. Arguments read from a file (``recorded_in``) must also name no path: a
    string holding a path separator is refused there.

    Raises
    ------
    PruneInfoError
        Naming the argument and, for a recorded one, the file.
    """
    where = f"{recorded_in} records " if recorded_in else ""
    fix = ("re-create the file" if recorded_in else
           "drop it (train with prune-info train, or load your own state_dict)")
    if not isinstance(kwargs, Mapping) or not all(isinstance(k, str) for k in kwargs):
        raise PruneInfoError(f"{where}`factory_kwargs` of {factory} are not a dict of names to "
                             f"values; {fix}")
    for key, value in kwargs.items():
        if not _is_plain(value):
            raise PruneInfoError(
                f"{where}`factory_kwargs` {key}= a {type(value).__name__} for {factory}; only "
                f"plain values (numbers, strings, booleans, None, lists of them) are passed "
                f"to a factory; {fix}")
        if key in _WEIGHT_SOURCE_KWARGS and value not in (None, False):
            raise PruneInfoError(
                f"{where}`model_kwargs` {key}={value!r} for {factory} would download weights "
                f"(or read them from a file); prune-info never downloads at run time and takes "
                f"weights only from the checkpoint: {fix}")
        if recorded_in and any(isinstance(v, str) and ("/" in v or "\\" in v)
                               for v in _leaves(value)):
            raise PruneInfoError(
                f"{recorded_in} records `factory_kwargs` {key}={value!r} for {factory}, which "
                "names a path; a recorded argument never names a file: re-create the file")


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, (list, tuple)):
        return [leaf for v in value for leaf in _leaves(v)]
    if isinstance(value, dict):
        return [leaf for v in value.values() for leaf in _leaves(v)]
    return [value]


def _check_signature(factory: str, builder: Callable, kwargs: Mapping[str, Any]) -> None:
    """Refuse keyword arguments a builder without ``**kwargs`` does not take, before calling."""
    try:
        signature = inspect.signature(builder)
    except (TypeError, ValueError):  # a builtin without a signature: the call will tell
        return
    params = signature.parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return
    try:
        signature.bind_partial(**kwargs)
    except TypeError:
        known = [p.name for p in params if p.kind in (inspect.Parameter.KEYWORD_ONLY,
                                                      inspect.Parameter.POSITIONAL_OR_KEYWORD)]
        unknown = [k for k in kwargs if k not in known]
        raise PruneInfoError(
            f"`factory`={factory} takes no argument {', '.join(unknown) or 'of those given'}; "
            f"it takes: {', '.join(known) or 'none'} (check `model_kwargs`)") from None


def authorise_recorded_factory(factory: Any, kwargs: Any, path: str, *, named: str | None = None,
                               trust: bool = False) -> None:
    """Decide whether the factory a checkpoint records may run: a file never chooses the code.

    Allowed are a known zoo's builders (:func:`zoo_builder`), a factory the user names again
    (``named`` equal to the record, e.g. ``--model`` on the command line), and any factory with
    ``trust`` (``--trust-factory``). Recorded arguments are checked in every case
    (:func:`check_factory_kwargs`). Nothing the record names is imported before this passes.

    Raises
    ------
    PruneInfoError
        Saying what the file asks to run and how to allow it.
    """
    if not isinstance(factory, str) or not factory.strip():
        raise PruneInfoError(f"{path} is malformed (its `factory` is not a "
                             "package.module:function string); re-create it")
    check_factory_kwargs(factory, kwargs if kwargs is not None else {}, recorded_in=path)
    if named is not None and named != factory:
        raise PruneInfoError(
            f"{path} records the factory {factory}, not `factory`={named}; a checkpoint carries "
            "its own architecture: leave `factory` out, or give that checkpoint's own factory")
    if trust or named == factory or zoo_builder(factory) is not None:
        return
    raise PruneInfoError(
        f"{path} asks to run {factory_spec(factory, kwargs)} to build its model, which is not a "
        f"builder of a known model zoo (timm:NAME, {TORCHVISION_MODELS}:NAME, hf:CLASS); a "
        f"file never chooses the code that runs: if you trust the file, pass `trust_factory`, "
        f"or name its factory yourself (`factory`={factory})")


def parse_model_kwargs(text: str | None) -> dict[str, Any]:
    """``"num_classes=10,img_size=28"`` -> ``{"num_classes": 10, "img_size": 28}``.

    Values are Python literals (numbers, strings, True/False/None, tuples); anything else is
    kept as a string (see :func:`prune_info._text.parse_kwargs`).

    Examples
    --------
    >>> parse_model_kwargs("num_classes=10, in_chans=1, act_layer=gelu, drop=0.1")
    {'num_classes': 10, 'in_chans': 1, 'act_layer': 'gelu', 'drop': 0.1}
    >>> parse_model_kwargs("patch_size=(4, 4)")
    {'patch_size': (4, 4)}
    """
    return parse_kwargs(text, "model_kwargs")


def _timm_model(name: str, **kwargs: Any) -> nn.Module:
    import timm  # heavy: imports torchvision and torch._dynamo

    known = timm.list_models()
    if name not in known:
        stem = name.split("_")[0]
        close = difflib.get_close_matches(name, known, n=5, cutoff=0.6) or [
            known_name for known_name in known if known_name.startswith(stem)][:5]
        hint = f"; close names: {', '.join(close)}" if close else ""
        raise PruneInfoError(f"timm has no model {name!r}{hint}")
    return timm.create_model(name, pretrained=False, **kwargs)


def build_factory_model(factory: str, kwargs: Mapping[str, Any] | None = None) -> nn.Module:
    """Build a user model: ``package.module:function``, ``timm:NAME`` or ``hf:CLASS``, called
    with ``kwargs``.

    ``torchvision.models:resnet18`` with ``{"num_classes": 10}`` gives a torchvision ResNet-18
    for 10 classes; ``timm:vit_tiny_patch16_224`` with ``{"img_size": 28, "patch_size": 4,
    "in_chans": 1, "num_classes": 10}`` a small ViT; ``hf:ViTForImageClassification`` with
    ``{"image_size": 28, "num_channels": 1, "num_labels": 10}`` HuggingFace's ViT built from
    that configuration (:func:`prune_info.huggingface.hf_model`). Weights are never
    downloaded.

    Raises
    ------
    PruneInfoError
        The factory cannot be imported, does not exist, raises, or returns something that is not
        an ``nn.Module``; ``kwargs`` ask for pretrained weights.

    Examples
    --------
    >>> model = build_factory_model("torchvision.models:resnet18", {"num_classes": 10})
    >>> type(model).__name__, model.fc.out_features
    ('ResNet', 10)
    """
    kwargs = dict(kwargs or {})
    check_factory_kwargs(factory, kwargs)
    builder: Callable[..., Any]
    try:
        if factory.startswith(TIMM_PREFIX):
            builder = functools.partial(_timm_model, factory[len(TIMM_PREFIX):])
        elif factory.startswith(HF_PREFIX):
            builder = functools.partial(hf_model, factory[len(HF_PREFIX):])
        else:
            builder = zoo_builder(factory) or import_factory(factory)
            _check_signature(factory, builder, kwargs)
        with memory_ceiling():  # a build too large for the machine fails, not the process
            model = builder(**kwargs)
    except PruneInfoError:
        raise
    except SystemExit as exc:  # sys.exit() in the user's code is not a success of ours
        raise PruneInfoError(
            f"`factory`={factory} called sys.exit({exc.code!r}) instead of returning a model; "
            "fix the factory, or check `model_kwargs`") from None
    except Exception as exc:  # the user's code: any failure becomes one clear line
        detail = (str(exc).strip().splitlines() or [""])[0]
        raise PruneInfoError(
            f"`factory`={factory} raised {type(exc).__name__}: {detail}; check `model_kwargs` "
            f"({', '.join(f'{k}={v!r}' for k, v in kwargs.items()) or 'none given'})"
        ) from exc
    if not isinstance(model, nn.Module):
        raise PruneInfoError(
            f"`factory`={factory} returned {type(model).__name__}, not an nn.Module"
        )
    return model


def is_factory_spec(text: str) -> bool:
    """Whether ``text`` names a factory (``pkg.mod:fn``, ``timm:NAME``) rather than a file.

    An existing file always wins; otherwise a ``:`` between two non-empty parts marks a factory.

    Examples
    --------
    >>> is_factory_spec("torchvision.models:resnet18"), is_factory_spec("model.pt")
    (True, False)
    """
    module, sep, attr = text.partition(":")
    return bool(sep and module and attr and "/" not in module) and not Path(text).is_file()


def factory_spec(factory: str, kwargs: Mapping[str, Any] | None = None) -> str:
    """One line naming a factory model: ``torchvision.models:resnet18(num_classes=10)``."""
    args = ", ".join(f"{k}={v!r}" for k, v in (kwargs or {}).items())
    return f"{factory}({args})" if args else factory
