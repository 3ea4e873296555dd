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

import torch
from torch import nn

from prune_info._torch import torch_threads
from prune_info.data import Split
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
    """

    name: str
    kind: str
    n_units: int
    activation: str | None
    act_module: str | None
    norm_module: str | None

    @property
    def output_module(self) -> str:
        """The module whose output holds the units, as the next layer reads them.

        The activation after the layer when there is one, else the normalisation, else the layer
        itself. Ablation masks are applied there, and the information measures quantise it.
        Attention heads are read at the *input* of the output projection (see
        :func:`attention_heads`), which is the module named here.
        """
        if self.kind == "heads":
            return f"{self.name}.proj"
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


#: Activation modules :func:`prunable_layers` recognises after a layer.
ACTIVATION_TYPES = (nn.ReLU, nn.Sigmoid, nn.Tanh, nn.GELU, nn.LeakyReLU, nn.ELU, nn.SiLU,
                    nn.ReLU6)
_NORM_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm)


def attention_heads(module: nn.Module) -> tuple[int, int] | None:
    """``(num_heads, head_dim)`` of a multi-head attention module whose heads can be units.

    Recognised: a module with integer ``num_heads`` and ``head_dim``, a fused ``qkv`` Linear
    producing ``3 x num_heads x head_dim`` features (queries, keys, values, each head's
    ``head_dim`` consecutive) and a ``proj`` Linear reading the heads' concatenated outputs,
    with nothing between them that mixes heads (no normalisation over the concatenation, no
    gate) — timm's ``Attention`` of its ViTs. A head's output (``softmax(q k^T) v``, for every
    token) is what ``proj`` reads from it; removing the head drops its ``q``, ``k`` and ``v``
    rows of ``qkv`` and its columns of ``proj``. Anything else gives None.
    """
    heads, head_dim = getattr(module, "num_heads", None), getattr(module, "head_dim", None)
    qkv, proj = getattr(module, "qkv", None), getattr(module, "proj", None)
    if not (isinstance(heads, int) and isinstance(head_dim, int) and heads > 0 and head_dim > 0
            and isinstance(qkv, nn.Linear) and isinstance(proj, nn.Linear)):
        return None
    if qkv.out_features != 3 * heads * head_dim or proj.in_features != heads * head_dim:
        return None
    norm, gate = getattr(module, "norm", None), getattr(module, "gate", None)
    if (norm is not None and not isinstance(norm, nn.Identity)) or gate is not None:
        return None
    return heads, head_dim


def prunable_layers(model: nn.Module) -> list[LayerInfo]:
    """The hidden Linear and Conv2d layers of a model, in registration order.

    The last Linear layer is the classifier and is not prunable. For each layer, the activation
    is the first activation module registered after it (skipping one BatchNorm / LayerNorm)
    before the next weight layer, among the layer's *siblings* (children of the same parent
    module: ``conv1, bn1, relu`` of a ResNet block, ``fc1, act`` of a timm ``Mlp``), so that a
    norm of another module (a ViT block's ``norm1``, after the residual addition) is never
    taken for the layer's own; models that call activations functionally get ``None`` and
    their units are read at the layer's output.

    The fused ``qkv`` projection of an attention module :func:`attention_heads` recognises is
    replaced by the module itself, kind ``heads``: its units are the attention heads.
    """
    modules = [(n, m) for n, m in model.named_modules() if n]
    weights = [i for i, (_, m) in enumerate(modules) if isinstance(m, (nn.Linear, nn.Conv2d))]
    last_linear = max(
        (i for i in weights if isinstance(modules[i][1], nn.Linear)), default=None
    )
    layers = []
    for pos, i in enumerate(weights):
        if i == last_linear:
            continue
        name, module = modules[i]
        parent, _, leaf = name.rpartition(".")
        if leaf == "qkv":
            heads = attention_heads(model.get_submodule(parent) if parent else model)
            if heads is not None:
                layers.append(LayerInfo(parent, "heads", heads[0], None, None, None))
                continue
        stop = weights[pos + 1] if pos + 1 < len(weights) else len(modules)
        act_name = act = norm_name = None
        for n, m in modules[i + 1 : stop]:
            if n.rpartition(".")[0] != parent:
                continue  # not a sibling: another module's norm (a ViT block's norm1)
            if isinstance(m, _NORM_TYPES) and norm_name is None and act_name is None:
                norm_name = n
            elif isinstance(m, ACTIVATION_TYPES):
                act_name, act = n, type(m).__name__.lower()
                break
        is_conv = isinstance(module, nn.Conv2d)
        n_units = module.out_channels if is_conv else module.out_features
        layers.append(
            LayerInfo(name, "conv" if is_conv else "linear", n_units, act, act_name, norm_name)
        )
    return layers


def resolve_layers(
    model: nn.Module,
    layers: str | Sequence[str | LayerInfo] | None = None,
    *,
    order: str = "given",
) -> list[LayerInfo]:
    """The prunable layers named in ``layers``: the one lookup of layer names.

    ``layers`` is None (every prunable layer), a comma-separated string, or a sequence of layer
    names or :class:`LayerInfo` objects; ``order="model"`` returns them in model order instead of
    the order given.

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
    model: nn.Module, split: Split, batch_size: int = 8192, device: torch.device | str = "cpu"
) -> int:
    """Number of correctly classified samples (model in eval mode, batched)."""
    was_training = model.training
    model.eval()
    correct = 0
    for start in range(0, len(split), batch_size):
        xb = split.x[start : start + batch_size].to(device)
        yb = split.y[start : start + batch_size].to(device)
        correct += int((model(xb).argmax(1) == yb).sum())
    model.train(was_training)
    return correct


def accuracy(model: nn.Module, split: Split, device: torch.device | str = "cpu") -> float:
    """Fraction of correctly classified samples."""
    if len(split) == 0:
        raise PruneInfoError("cannot compute accuracy on an empty split")
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
    own name (its parameters live in ``qkv`` and ``proj``, so ``params`` is 0 there): ``q k^T``
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

    def attention_hook(name, heads: int, head_dim: int):
        def record(module, inputs, output):
            tokens = inputs[0].shape[1] if inputs and inputs[0].dim() == 3 else 1
            costs[name]["macs"] += 2 * tokens * tokens * heads * head_dim
        return record

    for name, module in model.named_modules():
        if isinstance(module, WEIGHT_TYPES):
            costs[name] = {"params": sum(p.numel() for p in module.parameters(recurse=False)),
                           "macs": 0}
            handles.append(module.register_forward_hook(hook(name)))
        elif (heads := attention_heads(module)) is not None:
            costs[name] = {"params": 0, "macs": 0}
            handles.append(module.register_forward_hook(attention_hook(name, *heads)))
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


def example_input(model: nn.Module, input_shape: Sequence[int]) -> torch.Tensor:
    """A batch of two zero inputs of ``input_shape`` on the model's device, for tracing."""
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    return torch.zeros(2, *[int(s) for s in input_shape], device=device)
