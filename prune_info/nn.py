"""What prune-info reads off any ``nn.Module``: layers, units, accuracy and cost.

A *prunable layer* (:class:`LayerInfo`) is a hidden Linear or Conv2d layer whose outputs are the
units; :func:`prunable_layers` finds them with the activation and normalisation modules that
follow each, which say where a unit's activity is read (see :mod:`prune_info.capture`).
:func:`count_correct` / :func:`accuracy` evaluate a classifier, :func:`layer_costs` /
:func:`total_macs` count its parameters and multiply-accumulates.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import nn

from prune_info._torch import torch_threads
from prune_info.data import Dataset, Samples, as_samples, note
from prune_info.errors import PruneInfoError

#: Layers whose outputs are units: their weights' first dimension indexes the units.
WEIGHT_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


# --------------------------------------------------------------------------------------------
# Prunable layers and unit names


@dataclass(frozen=True)
class LayerInfo:
    """A prunable layer: its module, its units, and the modules around them.

    Attributes
    ----------
    name : str
        Qualified module name of the Linear / Conv2d layer (``fc1``, ``conv2``), or of the
        attention module whose heads are the units (``blocks.0.attn``, kind ``heads``).
    kind : {"linear", "conv", "heads"}
    n_units : int
        Output features or channels; heads for kind ``heads``.
    activation : str or None
        ``relu`` / ``sigmoid`` / ``tanh`` / other lower-case class name, None if not found.
    act_module : str or None
        Qualified name of the activation module whose output is the unit's post-activation.
    norm_module : str or None
        Qualified name of a BatchNorm between the layer and its activation.
    heads_read : str or None
        Kind ``heads``: qualified name of the attention's output projection, whose input holds
        the heads' outputs (see :func:`attention_heads`).
    """

    name: str
    kind: str
    n_units: int
    activation: str | None
    act_module: str | None
    norm_module: str | None
    heads_read: str | None = None

    @property
    def output_module(self) -> str:
        """The module whose output holds the units, as the next layer reads them.

        The activation after the layer when there is one, else the normalisation, else the layer
        itself. Ablation masks are applied there, and the information measures quantise it.
        Attention heads are read at the *input* of the output projection (see
        :func:`attention_heads`), which is the module named here.
        """
        if self.heads_read is not None:
            return self.heads_read
        return self.act_module or self.norm_module or self.name

    def read_point(self, pre_activation: bool = False) -> tuple[str, str]:
        """``(module name, "input" | "output")``: where the units' values are read.

        Post-activation (default) reads :attr:`output_module`; ``pre_activation`` reads the input
        of the activation (after the normalisation, if any).
        """
        if self.kind == "heads":
            return self.output_module, "input"
        if self.act_module is not None:
            return self.act_module, "input" if pre_activation else "output"
        return self.output_module, "output"

    def unit_names(self) -> list[str]:
        return [f"{self.name}:{i}" for i in range(self.n_units)]


#: Activation modules of torch (others are recognised by name, see :func:`is_activation`).
ACTIVATION_TYPES = (nn.ReLU, nn.Sigmoid, nn.Tanh, nn.GELU, nn.LeakyReLU, nn.ELU, nn.SiLU,
                    nn.ReLU6, nn.Hardswish, nn.Hardsigmoid, nn.Mish, nn.PReLU, nn.SELU, nn.CELU,
                    nn.Hardtanh, nn.Softplus)
#: Class-name fragments of the activation modules of other libraries (timm's ``GELU``,
#: ``Swish``, ``HardSwish``, ``QuickGELU``, ...): elementwise, without submodules.
_ACTIVATION_NAMES = ("relu", "gelu", "silu", "swish", "sigmoid", "tanh", "mish", "elu")
_NORM_TYPES = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm)


def is_activation(module: nn.Module) -> bool:
    """Whether ``module`` is an elementwise activation: torch's, or one named like one
    (a leaf module whose class name holds ``relu``, ``gelu``, ``silu``, ``swish``, ...).

    Examples
    --------
    >>> is_activation(nn.Hardswish()), is_activation(nn.Linear(2, 2))
    (True, False)
    """
    if isinstance(module, ACTIVATION_TYPES):
        return True
    name = type(module).__name__.lower()
    return (not isinstance(module, (*WEIGHT_TYPES, *_NORM_TYPES)) and next(module.children(), None)
            is None and any(fragment in name for fragment in _ACTIVATION_NAMES))


def is_norm(module: nn.Module) -> bool:
    """Whether ``module`` normalises its input: BatchNorm, LayerNorm (timm's ``LayerNorm2d``
    too) or GroupNorm."""
    return isinstance(module, _NORM_TYPES)


# --------------------------------------------------------------------------------------------
# Read points found by data flow

#: Attribute of a model that holds where its layers' units are read (:func:`find_read_points`).
#: A plain attribute, so that a copy of the model (``copy.deepcopy``) keeps it.
READS_ATTRIBUTE = "_prune_info_read_points"


@dataclass(frozen=True)
class ReadPoints:
    """Where each weight layer's output is normalised and activated, as one forward pass showed.

    Attributes
    ----------
    layers : tuple of str
        The weight layers of the model when it was traced: a model whose layers changed since
        (not their widths: pruning keeps the data flow) is traced again.
    points : dict
        ``{layer: (norm module or None, activation module or None)}``.
    unused : frozenset of str
        Layers the forward pass never called (GoogLeNet's auxiliary classifiers in eval mode):
        nothing the model outputs depends on them, so they are not prunable layers.
    folded : frozenset of str
        Layers whose output does not keep the batch as its first dimension (MobileViT folds
        image patches into it; Swin V2's position-bias MLP computes one table for the whole
        model): their outputs are not one row of units per sample, so they are not prunable
        layers either.
    """

    layers: tuple[str, ...]
    points: dict[str, tuple[str | None, str | None]]
    unused: frozenset[str] = frozenset()
    folded: frozenset[str] = frozenset()


def _weight_layer_names(model: nn.Module) -> tuple[str, ...]:
    return tuple(n for n, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d)))


@torch.no_grad()
def find_read_points(model: nn.Module, example_input: torch.Tensor) -> ReadPoints:
    """Find, by one forward pass, which norm and activation *calls* take each layer's output.

    A layer's output is followed as it is, by tensor identity: the first normalisation module
    called on it (its norm), then the first activation module called on that (its activation),
    whatever the order the modules were registered in and however often a module is called
    (ResNet-50's Bottleneck registers one ReLU first and calls it three times; a
    squeeze-excitation block registers its activation after both of its layers). An operation in
    between (a permutation, a residual addition, a functional activation) ends the chain: the
    units are then read at what came before it. The result is kept on the model
    (:data:`READS_ATTRIBUTE`), so :func:`prunable_layers` returns it from then on; a second call
    on the same model returns it at once.

    Parameters
    ----------
    model : nn.Module
    example_input : Tensor
        A batch the model takes (zeros are fine); it runs once, in eval mode.

    Examples
    --------
    >>> import torchvision
    >>> model = torchvision.models.resnet50(num_classes=10)
    >>> reads = find_read_points(model, torch.zeros(1, 3, 32, 32))
    >>> reads.points["layer1.0.conv1"]
    ('layer1.0.bn1', 'layer1.0.relu')
    >>> [(l.norm_module, l.act_module) for l in prunable_layers(model)][1]
    ('layer1.0.bn1', 'layer1.0.relu')
    """
    names = _weight_layer_names(model)
    known = getattr(model, READS_ATTRIBUTE, None)
    if isinstance(known, ReadPoints) and known.layers == names:
        return known
    outputs: dict[str, tuple[torch.Tensor, int | None]] = {}
    # kind, name, input, its version, (output, its version) once the call returned
    calls: list[tuple[str, str, Any, int | None, Any]] = []
    handles = []

    def version(t: Any) -> int | None:
        try:
            return int(t._version)
        except (AttributeError, RuntimeError):
            return None

    def on_weight(name: str):
        def hook(_m: nn.Module, _args: Any, out: Any) -> None:
            if isinstance(out, torch.Tensor) and name not in outputs:
                outputs[name] = (out, version(out))
        return hook

    def on_call(kind: str, name: str):
        def pre(_m: nn.Module, args: tuple) -> None:
            value = args[0] if args else None
            calls.append((kind, name, value, version(value), None))

        def post(_m: nn.Module, _args: Any, out: Any) -> None:
            for i in range(len(calls) - 1, -1, -1):  # this module's latest call
                if calls[i][1] == name and calls[i][4] is None:
                    calls[i] = (*calls[i][:4], (out, version(out)))  # before any in-place op
                    break
        return pre, post

    for name, module in model.named_modules():
        if not name:
            continue
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            handles.append(module.register_forward_hook(on_weight(name)))
        elif is_norm(module) or is_activation(module):
            pre, post = on_call("norm" if is_norm(module) else "act", name)
            handles.append(module.register_forward_pre_hook(pre))
            handles.append(module.register_forward_hook(post))
    was_training = model.training
    model.eval()
    # two rows: a layer whose output has another first dimension (a per-model table, such as
    # Swin V2's position-bias MLP, or tokens folded into the batch) is told from a per-sample one
    rows = example_input[:2] if len(example_input) >= 2 else example_input[:1].repeat(
        2, *[1] * (example_input.dim() - 1))
    try:
        with torch_threads(1):
            model(rows)
    except (RuntimeError, ValueError) as exc:
        raise input_mismatch(model, example_input, exc) from exc
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)

    def taker(kind: str, value: torch.Tensor, seen: int | None):
        return next((c for c in calls if c[0] == kind and c[2] is value and c[3] == seen), None)

    points: dict[str, tuple[str | None, str | None]] = {}
    unused = frozenset(name for name in names if name not in outputs)
    folded = frozenset(name for name, (value, _) in outputs.items()
                       if value.ndim == 0 or value.shape[0] != len(rows))
    for name in names:
        if name not in outputs:
            continue
        value, seen = outputs[name]
        norm = taker("norm", value, seen)
        if norm is not None and norm[4] is not None and isinstance(norm[4][0], torch.Tensor):
            value, seen = norm[4]
        act = taker("act", value, seen)
        points[name] = (norm[1] if norm else None, act[1] if act else None)
    reads = ReadPoints(names, points, unused, folded)
    left = [(unused, "the model's forward (in eval mode) never calls them"),
            (folded, "their outputs do not keep the batch as their first dimension (something "
                     "else folded into it, or one table for the whole model), so they are not "
                     "one row of units per sample")]
    for which, why in left:
        if which:
            shown = ", ".join(sorted(which)[:4]) + (f" and {len(which) - 4} more"
                                                    if len(which) > 4 else "")
            note(f"left out {shown}: {why}")
    setattr(model, READS_ATTRIBUTE, reads)
    return reads


@dataclass(frozen=True)
class AttentionHeads:
    """Where the heads of a multi-head attention module live, as :func:`attention_heads` found.

    Attributes
    ----------
    n_heads, head_dim : int
    inputs : tuple of str
        The projections computing queries, keys and values, as child names: one fused Linear
        (``("qkv",)``, timm: queries, keys, values one after another, each head's ``head_dim``
        features consecutive) or three (``("q_proj", "k_proj", "v_proj")``, HuggingFace).
    output : str
        The Linear reading the heads' concatenated outputs (``proj``, ``o_proj``).
    count_attribute : str
        The module's attribute holding the number of heads (``num_heads``,
        ``num_attention_heads``), lowered when heads are removed.
    """

    n_heads: int
    head_dim: int
    inputs: tuple[str, ...]
    output: str
    count_attribute: str

    def columns(self, heads: Sequence[int]) -> torch.Tensor:
        """The features of ``heads`` in a concatenation of every head's ``head_dim`` values."""
        return torch.tensor([h * self.head_dim + d for h in heads for d in range(self.head_dim)],
                            dtype=torch.long)

    def input_rows(self, heads: Sequence[int]) -> torch.Tensor:
        """The rows of heads ``heads`` in each input projection's weight: their q, k and v rows
        of a fused projection, their rows of each of three separate ones."""
        cols = self.columns(heads)
        if len(self.inputs) == 1:
            return torch.cat([cols + part * self.n_heads * self.head_dim for part in range(3)])
        return cols

    def incoming_weights(self, module: nn.Module) -> torch.Tensor:
        """``[n_heads, ...]``: every weight computing a head's queries, keys and values."""
        parts = [cast(torch.Tensor, module.get_submodule(name).weight).detach()
                 for name in self.inputs]
        per_head = [w.unflatten(0, (-1, self.n_heads, self.head_dim)).transpose(0, 1)
                    for w in parts]
        return torch.cat([w.flatten(1) for w in per_head], dim=1)


#: The layouts :func:`attention_heads` recognises: (inputs, output, head-count attributes).
HEAD_LAYOUTS = ((("qkv",), "proj", ("num_heads",)),
                 (("q_proj", "k_proj", "v_proj"), "o_proj", ("num_attention_heads", "num_heads")))


def attention_heads(module: nn.Module) -> AttentionHeads | None:
    """The heads of a multi-head attention module whose heads can be units, else None.

    Recognised: a module with an integer head count (``num_heads`` / ``num_attention_heads``)
    and ``head_dim``, whose queries, keys and values come from a fused ``qkv`` Linear (timm's
    ``Attention`` of its ViTs) or from ``q_proj``, ``k_proj``, ``v_proj`` Linears (HuggingFace's
    ViT family), each head's ``head_dim`` features consecutive, and whose heads' concatenated
    outputs are read by one Linear (``proj``, ``o_proj``), with nothing between them that mixes
    heads (no normalisation over the concatenation, no gate). A head's output (``softmax(q k^T)
    v``, for every token) is what the output projection reads from it; removing the head drops
    its rows of the input projections and its columns of the output one.

    Examples
    --------
    >>> import timm
    >>> vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32,
    ...                         patch_size=8, depth=1)
    >>> heads = attention_heads(vit.blocks[0].attn)
    >>> heads.n_heads, heads.head_dim, heads.inputs, heads.output
    (3, 64, ('qkv',), 'proj')
    """
    head_dim = getattr(module, "head_dim", None)
    if not isinstance(head_dim, int) or head_dim <= 0:
        return None
    for inputs, output, counts in HEAD_LAYOUTS:
        count = next((c for c in counts if isinstance(getattr(module, c, None), int)), None)
        parts = [getattr(module, name, None) for name in (*inputs, output)]
        if count is None or not all(isinstance(p, nn.Linear) for p in parts):
            continue
        layout = AttentionHeads(getattr(module, count), head_dim, inputs, output, count)
        width = layout.n_heads * head_dim
        *ins, out = cast(list[nn.Linear], parts)
        if (layout.n_heads <= 0 or out.in_features != width
                or any(p.out_features != width * (3 if len(ins) == 1 else 1) for p in ins)):
            return None
        norm, gate = getattr(module, "norm", None), getattr(module, "gate", None)
        if (norm is not None and not isinstance(norm, nn.Identity)) or gate is not None:
            return None
        return layout
    return None


def prunable_layers(model: nn.Module) -> list[LayerInfo]:
    """The hidden Linear and Conv2d layers of a model, in registration order.

    The classifier (the last Linear layer; in a model without one, the last convolution) is
    not prunable. Each layer's norm and
    activation are those :func:`find_read_points` saw take its output in a forward pass, once it
    has run on the model (every command and library call that has data runs it first). Before
    that, they are guessed from the registration order: the first activation module registered
    after the layer (skipping one normalisation) before the next weight layer, among the layer's
    *siblings* (``conv1, bn1, relu`` of a ResNet block, ``fc1, act`` of a timm ``Mlp``), so that
    a norm of another module (a ViT block's ``norm1``) is never taken for the layer's own. A
    layer whose output no activation module takes as it is (an activation called as a function)
    gets ``None`` and its units are read at the layer's (or its norm's) output.

    The query, key and value projections of an attention module :func:`attention_heads`
    recognises are replaced by the module itself, kind ``heads``: its units are the heads.
    """
    modules = [(n, m) for n, m in model.named_modules() if n]
    reads = getattr(model, READS_ATTRIBUTE, None)
    if not isinstance(reads, ReadPoints) or reads.layers != _weight_layer_names(model):
        reads = None
    weights = [i for i, (_, m) in enumerate(modules) if isinstance(m, (nn.Linear, nn.Conv2d))]
    classifier = classifier_index(modules, weights)
    layers = []
    left_out = reads.unused | reads.folded if reads is not None else frozenset()
    for pos, i in enumerate(weights):
        if i == classifier or modules[i][0] in left_out:
            continue
        name, module = modules[i]
        parent, _, leaf = name.rpartition(".")
        heads = attention_heads(model.get_submodule(parent) if parent else model)
        if heads is not None and leaf in heads.inputs:  # the heads are the units
            if leaf == heads.inputs[0]:
                layers.append(LayerInfo(parent, "heads", heads.n_heads, None, None, None,
                                        f"{parent}.{heads.output}"))
            continue
        act_name = act = norm_name = None
        if reads is not None:
            norm_name, act_name = reads.points.get(name, (None, None))
            if act_name is not None:
                act = type(model.get_submodule(act_name)).__name__.lower()
        else:
            stop = weights[pos + 1] if pos + 1 < len(weights) else len(modules)
            for n, m in modules[i + 1 : stop]:
                if n.rpartition(".")[0] != parent:
                    continue  # not a sibling: another module's norm (a ViT block's norm1)
                if is_norm(m) and norm_name is None and act_name is None:
                    norm_name = n
                elif is_activation(m):
                    act_name, act = n, type(m).__name__.lower()
                    break
        is_conv = isinstance(module, nn.Conv2d)
        n_units = module.out_channels if is_conv else module.out_features
        layers.append(
            LayerInfo(name, "conv" if is_conv else "linear", n_units, act, act_name, norm_name)
        )
    return layers


def classifier_index(modules: Sequence[tuple[str, nn.Module]], weights: Sequence[int]
                     ) -> int | None:
    """Index in ``modules`` of the classifier: the last Linear layer, or, in a model without one
    (a fully convolutional classifier: SqueezeNet, DLA), the last convolution."""
    linear = [i for i in weights if isinstance(modules[i][1], nn.Linear)]
    if linear:
        return linear[-1]
    return weights[-1] if weights else None


def classifier_width(model: nn.Module) -> int | None:
    """Outputs of the model's classifier (see :func:`classifier_index`), if it has one."""
    modules = [(n, m) for n, m in model.named_modules() if n]
    weights = [i for i, (_, m) in enumerate(modules) if isinstance(m, (nn.Linear, nn.Conv2d))]
    index = classifier_index(modules, weights)
    if index is None:
        return None
    module = modules[index][1]
    return module.out_features if isinstance(module, nn.Linear) else int(module.out_channels)


def resolve_layers(
    model: nn.Module,
    layers: str | Sequence[str | LayerInfo] | None = None,
    *,
    order: str = "given",
    example: torch.Tensor | None = None,
) -> list[LayerInfo]:
    """The prunable layers named in ``layers``: the one lookup of layer names.

    ``layers`` is None (every prunable layer), a comma-separated string, or a sequence of layer
    names or :class:`LayerInfo` objects; ``order="model"`` returns them in model order instead of
    the order given. With ``example`` (a batch of inputs; the first sample is used) the read
    points are found by data flow first (:func:`find_read_points`), so the layers returned say
    where their units are read; layers given as :class:`LayerInfo` are looked up by name.

    Raises
    ------
    PruneInfoError
        If the model has no prunable layer, a name is not one of them (the message lists them),
        a name repeats, or ``layers`` names none.

    Examples
    --------
    >>> from prune_info.zoo import build_model, parse_arch
    >>> model = build_model(parse_arch("64-8-8-10", (1, 8, 8), 10))
    >>> [layer.name for layer in resolve_layers(model, "fc2,fc1", order="model")]
    ['fc1', 'fc2']
    """
    if example is not None and len(example):
        find_read_points(model, example)
    found = prunable_layers(model)
    if not found:
        raise PruneInfoError(
            "the model has no prunable layer (no hidden Linear or Conv2d layer before the "
            "classifier); fix: give a model with at least one hidden layer"
        )
    if layers is None:
        return found
    if isinstance(layers, str):
        layers = [name.strip() for name in layers.split(",") if name.strip()]
    by_name = {layer.name: layer for layer in found}
    names = [layer.name if isinstance(layer, LayerInfo) else layer for layer in layers]
    for name in names:
        if name not in by_name:
            raise PruneInfoError(
                f"{name!r} is not a prunable layer of the model; fix: use one of "
                f"{', '.join(by_name)}"
            )
    if not names:
        raise PruneInfoError(f"no layer given; fix: name at least one of {', '.join(by_name)}")
    if len(set(names)) != len(names):
        raise PruneInfoError(f"layer names repeat in {names}; fix: give each layer once")
    if order == "model":
        return [layer for layer in found if layer.name in set(names)]
    return [by_name[name] for name in names]


def get_module(model: nn.Module, name: str) -> nn.Module:
    """The submodule with qualified name ``name``."""
    try:
        return model.get_submodule(name)
    except AttributeError as exc:
        raise PruneInfoError(f"the model has no layer {name!r}") from exc


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def count_correct(
    model: nn.Module, split: Samples, batch_size: int = 8192, device: torch.device | str = "cpu"
) -> int:
    """Number of correctly classified samples (model in eval mode, read in batches)."""
    was_training = model.training
    model.eval()
    correct = 0
    try:
        for xb, yb in split.batches(batch_size):
            correct += int((logits_of(model(xb.to(device))).argmax(1) == yb.to(device)).sum())
    finally:
        model.train(was_training)
    return correct


def logits_of(output: Any) -> torch.Tensor:
    """The class scores of a model's output: the tensor itself, or the ``logits`` of a
    HuggingFace-style output object, or the first element of a tuple."""
    if isinstance(output, torch.Tensor):
        return output
    logits = getattr(output, "logits", None)
    if isinstance(logits, torch.Tensor):
        return logits
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    raise PruneInfoError(f"the model returned {type(output).__name__}, not class scores; make "
                         "its forward return a tensor of logits")


def accuracy(model: nn.Module, split: Any, device: torch.device | str = "cpu") -> float:
    """Fraction of correctly classified samples of ``split``: a :class:`Split`, a
    :class:`StreamSplit`, a :class:`Dataset` (its test split), a pair ``(x, y)`` or a
    ``DataLoader`` of ``(x, y)`` batches.

    Examples
    --------
    >>> from prune_info.data import load_dataset
    >>> from prune_info.zoo import build_model, parse_arch
    >>> model = build_model(parse_arch("64-8-10", (1, 8, 8), 10))
    >>> 0.0 <= accuracy(model, load_dataset("digits")) <= 1.0
    True
    """
    if isinstance(split, Dataset):
        split = split.test
    split = as_samples(split, "the data of `accuracy`")
    return count_correct(model, split, device=device) / len(split)


# --------------------------------------------------------------------------------------------
# Cost


@torch.no_grad()
def layer_costs(model: nn.Module, input_shape: Sequence[int]) -> dict[str, dict[str, int]]:
    """Parameters and multiply-accumulates (one sample) of every Linear / Conv layer.

    MACs are counted from the shapes seen in one forward pass: a Linear layer costs
    ``in_features × out_features`` per output row, a convolution ``(in / groups) × kernel`` per
    output element. Activations, pooling and BatchNorm (foldable into the previous layer) are not
    counted.

    The attention of a module :func:`attention_heads` recognises is counted under the module's
    own name (its parameters live in its projections, so ``params`` is 0 there): ``q k^T``
    and the weighted sum of the values, ``2 x tokens^2 x heads x head_dim``.

    Returns
    -------
    dict
        ``{layer: {"params": int, "macs": int}}`` in registration order.

    Examples
    --------
    >>> from prune_info.zoo import build_model, parse_arch
    >>> m = build_model(parse_arch("64-100-100-10", (1, 8, 8), 10))
    >>> layer_costs(m, (1, 8, 8))["fc2"]
    {'params': 10100, 'macs': 10000}
    """
    costs: dict[str, dict[str, int]] = {}
    handles = []

    def hook(name):
        def record(module, inputs, output):
            if isinstance(module, nn.Linear):
                macs = output.numel() * module.in_features
            else:
                kernel = math.prod(module.kernel_size)
                macs = output.numel() * (module.in_channels // module.groups) * kernel
            costs[name]["macs"] += int(macs)  # batch of one
        return record

    def attention_hook(name, heads: AttentionHeads):
        def record(module, args, kwargs, output):
            x = next((a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)), None)
            tokens = x.shape[1] if x is not None and x.dim() == 3 else 1
            costs[name]["macs"] += 2 * tokens * tokens * heads.n_heads * heads.head_dim
        return record

    for name, module in model.named_modules():
        if isinstance(module, WEIGHT_TYPES):
            costs[name] = {"params": sum(p.numel() for p in module.parameters(recurse=False)),
                           "macs": 0}
            handles.append(module.register_forward_hook(hook(name)))
        elif (heads := attention_heads(module)) is not None:
            costs[name] = {"params": 0, "macs": 0}
            handles.append(module.register_forward_hook(attention_hook(name, heads),
                                                        with_kwargs=True))
    was_training = model.training
    model.eval()
    try:
        with torch_threads(1):
            model(example_input(model, input_shape)[:1])
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return costs


def total_macs(model: nn.Module, input_shape: Sequence[int]) -> int:
    """Multiply-accumulates of one forward pass of one sample (see :func:`layer_costs`)."""
    return sum(c["macs"] for c in layer_costs(model, input_shape).values())


def _first_weight_layer(model: nn.Module) -> tuple[str, nn.Module] | None:
    for name, module in model.named_modules():
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            return name, module
    return None


def input_mismatch(model: nn.Module, x: torch.Tensor, exc: Exception) -> PruneInfoError:
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


def first_sample(model: nn.Module, split: Samples | None) -> torch.Tensor | None:
    """The first sample of ``split`` as a batch of one on the model's device (None without
    data): the input on which :func:`resolve_layers` finds where units are read."""
    if split is None or len(split) == 0:
        return None
    param = next(model.parameters(), None)
    return split.head(1).x.to(param.device if param is not None else "cpu")


def example_input(model: nn.Module, input_shape: Sequence[int]) -> torch.Tensor:
    """A batch of two zero inputs of ``input_shape`` on the model's device, for tracing."""
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    return torch.zeros(2, *[int(s) for s in input_shape], device=device)
