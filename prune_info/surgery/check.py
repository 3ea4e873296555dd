"""The check of every pruning step: the pruned model against the original with the removed
units ablated (see :class:`AblationCheck`)."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from prune_info.capture import unit_hooks, units_last
from prune_info.nn import (
    LayerInfo,
)
from prune_info.surgery.graph import LayerPruneError


class AblationCheck:
    """Checks, layer after layer, that a pruned model equals the original with units ablated.

    The reference is a copy of the original model in which the removed units' post-activation
    outputs are zero, masked where :func:`prune_info.capture.unit_hooks` reads them: at the call
    of the activation module that consumes the layer's output when there is one (not at other
    calls of a shared module, such as the ReLU after a residual addition); otherwise at the
    BatchNorm or the layer itself, where either 0 (right for ReLU, tanh, GELU) or a large
    negative value (right for ReLU and sigmoid) makes the activation output zero. This catches
    the cases where torch-pruning runs but removes the wrong inputs downstream (e.g. after a
    ``torch.roll`` or a permutation it does not model).

    A LayerNorm over a layer's units renormalises the units that survive, so removing units is
    *not* zeroing them. There the reference normalises over the kept units only (what the
    pruned model computes), and the difference to plain zeroing is measured and reported in
    :attr:`renormalised` instead of raising a false alarm.
    """

    FILLS = (0.0, -1e4)

    def __init__(self, model: nn.Module, example_input: torch.Tensor,
                 layers: Mapping[str, LayerInfo], remove: bool = True):
        self.ref = copy.deepcopy(model).eval()
        self.remove = remove
        gen = torch.Generator().manual_seed(0)
        shape = (8, *example_input.shape[1:])
        self.x = torch.randn(shape, generator=gen).to(example_input.device)
        self.info = dict(layers)  # the copy's layers are the model's
        self.fill: dict[str, tuple[torch.Tensor, float]] = {}
        self.layers: dict[str, LayerInfo] = {}
        #: ``{layer: max |pruned - plainly zeroed|}`` for layers followed by a LayerNorm.
        self.renormalised: dict[str, float] = {}
        self._renormalised_norms: set[str] = set()
        self._norm_hooks: dict[str, list[tuple[str, Any]]] = {}
        self._kept_only = True  # LayerNorm references normalise over the kept units

    def _renormalise(self, norm_name: str, removed: Sequence[int], layer: str) -> None:
        """Make the reference's LayerNorm ``norm_name`` normalise over the kept units only
        (removal), or over all units with the masked ones at zero (masking: the masked model's
        LayerNorm still counts them). ``removed`` are the indices torch-pruning removes from
        the norm (its dependency group says which norms lose the units, wherever they sit:
        after a permutation, in a residual stream); ``layer`` is reported as renormalised."""
        norm = self.ref.get_submodule(norm_name)
        if not isinstance(norm, nn.LayerNorm) or len(norm.normalized_shape) != 1 \
                or norm_name in self._renormalised_norms:
            return
        self._renormalised_norms.add(norm_name)
        width = int(norm.normalized_shape[0])
        gone = set(int(i) for i in removed)
        keep = torch.tensor([i for i in range(width) if i not in gone], dtype=torch.long)
        gone_index = torch.tensor(sorted(gone), dtype=torch.long)

        def kept_only(module: nn.LayerNorm, args: tuple, out: torch.Tensor) -> torch.Tensor | None:
            if not self._kept_only:
                return None
            # a LayerNorm2d (ConvNeXt) normalises channels-first maps over axis 1
            axis = 1 if _channels_first(module, args[0], width) else -1
            x = args[0].movedim(axis, -1)
            if not self.remove:  # masked units enter the statistics as zeros
                x = x.index_fill(-1, gone_index.to(out.device), 0.0)
                return torch.nn.functional.layer_norm(
                    x, module.normalized_shape, module.weight, module.bias, module.eps
                ).movedim(-1, axis)
            k = keep.to(out.device)
            weight = None if module.weight is None else module.weight[k]
            bias = None if module.bias is None else module.bias[k]
            y = torch.zeros_like(x)
            y[..., k] = torch.nn.functional.layer_norm(x[..., k], (len(k),), weight, bias,
                                                       module.eps)
            return y.movedim(-1, axis)

        self._norm_hooks.setdefault(layer, []).append(
            (norm_name, norm.register_forward_hook(kept_only)))
        self.renormalised[layer] = float("nan")  # measured in check()

    def forget(self, layers: Sequence[str], root: str) -> None:
        """Drop what :meth:`check` set up for a step that was put back (its layers' masks, the
        renormalisation of its norms)."""
        for layer in layers:
            self.fill.pop(layer, None)
            self.layers.pop(layer, None)
        for norm_name, handle in self._norm_hooks.pop(root, []):
            handle.remove()
            self._renormalised_norms.discard(norm_name)
        self.renormalised.pop(root, None)

    def _layer(self, layer: str) -> LayerInfo:
        """The layer's read point; a layer that is not prunable is masked at its own output
        (a Linear one on its last axis, as its units are)."""
        info = self.info.get(layer)
        if info is not None:
            return info
        module = self.ref.get_submodule(layer)
        return LayerInfo(layer, "linear" if isinstance(module, nn.Linear) else "other", 0, None,
                         None, None)

    def _mask(self, info: LayerInfo, output: torch.Tensor) -> torch.Tensor:
        idxs, value = self.fill[info.name]
        axis = -1 if units_last(info, output) else 1  # token units: the last axis
        return output.index_fill(axis, idxs.to(output.device), value)

    def reset(self) -> None:
        """Forget every mask and renormalisation (the reference is the original again)."""
        for root in list(self._norm_hooks):
            self.forget([], root)
        self.fill.clear()
        self.layers.clear()

    @torch.no_grad()
    def jointly(self, model: nn.Module, removed: Mapping[str, Sequence[int]],
                norms: Mapping[str, Mapping[str, Sequence[int]]]) -> bool:
        """Whether ``model`` equals the reference with every unit of ``removed`` ablated at
        once, each masked with 0 where it is read (``norms``: per step's root, the LayerNorms it
        prunes). One comparison for a whole prune; on False the state is reset, and the steps
        are checked one by one (:meth:`check`), which also tries other fill values."""
        for layer in removed:
            self.layers.setdefault(layer, self._layer(layer))
        for root, by_norm in norms.items():
            for norm_name, idxs in by_norm.items():
                self._renormalise(norm_name, idxs, root)
        got = self._run(model)
        for layer, idxs in removed.items():
            self.fill[layer] = (torch.as_tensor(list(idxs), dtype=torch.long), 0.0)
        with unit_hooks(self.ref, list(self.layers.values()), self._mask):
            want = self.ref(self.x)
        if _close(got, want):
            self._measure_renormalisation(got, removed)
            return True
        self.reset()
        return False

    def _run(self, model: nn.Module) -> torch.Tensor:
        was_training = model.training
        model.eval()
        try:
            return model(self.x)
        finally:
            model.train(was_training)

    @torch.no_grad()
    def check(self, model: nn.Module, removed: Mapping[str, Sequence[int]], root: str,
              norms: Mapping[str, Sequence[int]] | None = None) -> None:
        """Compare ``model`` (pruned so far) with the reference with ``removed`` ablated;
        ``norms``: the LayerNorms this step's group prunes, with the indices they lose."""
        pending = {k: v for k, v in removed.items() if k not in self.fill}
        for layer in pending:
            self.layers.setdefault(layer, self._layer(layer))
        for norm_name, idxs in (norms or {}).items():
            self._renormalise(norm_name, idxs, root)
        got = self._run(model)
        # A layer with an activation module is masked after it (0); one without is masked at
        # its output, where 0 or a large negative value zeroes what follows. The members of a
        # group share that, so two assignments are tried, not every combination (2**members
        # forward passes on a ViT's residual stream).
        free = any(self.layers[layer].act_module is None for layer in pending)
        choices = self.FILLS if free else self.FILLS[:1]
        worst = float("inf")
        with unit_hooks(self.ref, list(self.layers.values()), self._mask):
            for fill in choices:
                values = [0.0 if self.layers[layer].act_module is not None else fill
                          for layer in pending]
                for layer, value in zip(pending, values):
                    self.fill[layer] = (torch.as_tensor(list(pending[layer]), dtype=torch.long),
                                        value)
                want = self.ref(self.x)
                if _close(got, want):
                    self._measure_renormalisation(got, pending)
                    return
                worst = min(worst, float((got - want).abs().max()))
        raise LayerPruneError(
            root,
            f"torch-pruning removed the wrong inputs downstream of layer {root}: the pruned "
            f"model differs from the original with those units ablated by {worst:.3g}; leave "
            f"it out with `ignore`={root}"
        )

    def _measure_renormalisation(self, got: torch.Tensor, pending: Mapping) -> None:
        """How far the pruned model is from plain zeroing where a LayerNorm renormalises."""
        todo = [root for root, value in self.renormalised.items() if value != value]  # NaN
        if not todo:
            return
        self._kept_only = False
        try:
            with unit_hooks(self.ref, list(self.layers.values()), self._mask):
                plain = float((got - self.ref(self.x)).abs().max())
        finally:
            self._kept_only = True
        for root in todo:
            self.renormalised[root] = plain


def _close(got: torch.Tensor, want: torch.Tensor) -> bool:
    """The check's tolerance: float32 rounding of the same computation in another order."""
    return float((got - want).abs().max()) <= 1e-4 * max(1.0, float(want.abs().max()))


def _channels_first(norm: nn.Module, value: torch.Tensor, n_units: int) -> bool:
    """Whether a LayerNorm takes ``value`` channels-first (``LayerNorm2d`` of ConvNeXt: units on
    axis 1 of ``[B, C, H, W]``) rather than over its last axis."""
    return (value.ndim == 4 and value.shape[1] == n_units
            and (value.shape[-1] != n_units or type(norm).__name__.lower().endswith("2d")))
