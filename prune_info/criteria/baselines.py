"""Baseline criteria: ``random``, ``magnitude``, ``magnitude-l1`` and ``taylor``.

``random`` gives uniform scores seeded by ``(seed, layer name)``; ``magnitude`` and
``magnitude-l1`` the L2 / L1 norm of a unit's incoming weights; ``taylor`` the first-order Taylor
importance of Molchanov et al. (2017), ``mean_n |sum_p a_{n,p} dL_n/da_{n,p}|``, computed with
forward hooks and one backward pass per batch.
"""

from __future__ import annotations

import zlib
from typing import cast

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from prune_info.capture import resolve_device, unit_hooks, units_last
from prune_info.criteria.context import ScoringContext
from prune_info.criteria.registry import register_criterion
from prune_info.data import Samples
from prune_info.errors import PruneInfoError
from prune_info.nn import AttentionHeads, LayerInfo, attention_heads, get_module, logits_of

__all__ = ['taylor_scores']


@register_criterion("random", description="uniform random scores (seeded baseline)",
                    needs_data=False, needs_labels=False)
def _random_criterion(ctx: ScoringContext) -> dict[str, torch.Tensor]:
    # Seeded by (seed, layer name), so a layer's scores do not depend on which other layers
    # are scored with it.
    out = {}
    for layer in ctx.layers:
        rng = np.random.default_rng([ctx.options.seed, zlib.crc32(layer.name.encode())])
        out[layer.name] = torch.from_numpy(rng.random(layer.n_units))
    return out


def _incoming_weight_norm(ctx: ScoringContext, p: int) -> dict[str, torch.Tensor]:
    # Equal to torch-pruning's MagnitudeImportance(p, group_reduction="first",
    # normalizer=None) to the power 1/p (same ranking); computed directly because that class
    # needs a dependency graph, i.e. a traced forward pass, while this criterion needs no data.
    out = {}
    for layer in ctx.layers:
        module = get_module(ctx.model, layer.name)
        if layer.kind == "heads":  # a head's incoming weights: its q, k and v rows
            weights = cast(AttentionHeads, attention_heads(module)).incoming_weights(module)
        else:  # a Linear or Conv: its weight is a Tensor, not a submodule
            weights = cast(torch.Tensor, module.weight).detach().flatten(1)
        out[layer.name] = torch.linalg.vector_norm(weights.to(torch.float64), ord=p, dim=1)
    return out


@register_criterion("magnitude", description="L2 norm of the unit's incoming weights",
                    needs_data=False, needs_labels=False)
def _magnitude_l2_criterion(ctx: ScoringContext) -> dict[str, torch.Tensor]:
    return _incoming_weight_norm(ctx, 2)


@register_criterion("magnitude-l1", description="L1 norm of the unit's incoming weights",
                    needs_data=False, needs_labels=False)
def _magnitude_l1_criterion(ctx: ScoringContext) -> dict[str, torch.Tensor]:
    return _incoming_weight_norm(ctx, 1)


# --------------------------------------------------------------------------------------------
# Taylor


def taylor_scores(
    model: nn.Module,
    split: Samples,
    layers: list[LayerInfo],
    *,
    pre_activation: bool = False,
    batch_size: int = 4096,
    device: str = "cpu",
) -> dict[str, torch.Tensor]:
    """First-order Taylor importance ``mean_n |sum_p a * dL/da|`` of every unit (Molchanov 2017).

    Parameters
    ----------
    model : nn.Module
        The network, on ``device``; put in eval mode for the passes and restored afterwards.
        Its parameters' ``.grad`` are not touched.
    split : Split or StreamSplit
        Labelled data; the loss is the cross-entropy of each sample (summed over the batch, so
        every sample's gradient is its own).
    layers : list of LayerInfo
        Layers to score.
    pre_activation : bool, default False
        Read the input of the activation function instead of its output.
    batch_size : int, default 4096
    device : str, default "cpu"

    Returns
    -------
    dict of str to Tensor
        ``{layer: float64 tensor [n_units]}``; a unit whose output is constant 0 (a dead ReLU)
        scores exactly 0.
    """
    dev = resolve_device(device)
    if len(split) == 0:
        raise PruneInfoError("the split is empty; fix: score on a split with labelled samples")
    store: dict[str, torch.Tensor] = {}

    def keep(layer: LayerInfo, value: torch.Tensor) -> torch.Tensor:
        store[layer.name] = value
        # The forward pass goes on with a copy, so that an in-place operation after the read
        # point (an in-place activation, a residual +=) leaves the kept tensor as it was.
        return value.clone()

    totals = {layer.name: torch.zeros(layer.n_units, dtype=torch.float64) for layer in layers}
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad(), unit_hooks(model, layers, keep, pre_activation=pre_activation):
            for xb, yb in split.batches(batch_size):
                x = xb.to(dev).requires_grad_(True)
                y = yb.to(dev)
                store.clear()
                logits = logits_of(model(x))
                loss = F.cross_entropy(logits, y, reduction="sum")
                names = [layer.name for layer in layers]
                missing = [name for name in names if name not in store]
                if missing:
                    raise PruneInfoError(
                        f"{missing[0]}: its output was not seen during the forward pass; fix: "
                        "score only layers the model uses"
                    )
                grads = torch.autograd.grad(loss, [store[name] for name in names],
                                            allow_unused=True)
                for layer, grad in zip(layers, grads):
                    name = layer.name
                    act = store[name].detach()
                    if grad is None:  # the unit does not reach the loss
                        continue
                    prod = act * grad
                    if units_last(layer, prod):  # token unit: sum over the tokens
                        prod = prod.flatten(1, -2).sum(dim=1)
                    elif prod.ndim > 2:  # conv channel: sum over the spatial positions
                        prod = prod.flatten(2).sum(dim=2)
                    totals[name] += prod.abs().sum(dim=0).to("cpu", torch.float64)
    finally:
        store.clear()
        model.train(was_training)
    return {name: total / len(split) for name, total in totals.items()}


@register_criterion("taylor",
                    description="first-order Taylor |activation x gradient| (Molchanov 2017), "
                                "mean over samples",
                    needs_data=True, needs_labels=True, needs_gradients=True)
def _taylor_criterion(ctx: ScoringContext) -> dict[str, torch.Tensor]:
    opts = ctx.options
    assert ctx.split is not None  # needs_data=True: ScoringContext.scores checked it
    return taylor_scores(ctx.model, ctx.split, ctx.layers, pre_activation=opts.pre_activation,
                         batch_size=opts.batch_size, device=opts.device)
