"""The running-sum (``prefix``) path of layer-wise curves: ablating unit ``j`` removes
``W[:, j] (h_j - a_j)`` from the next layer's input, so every ``k`` is one running sum; each
prediction is checked against a bound on its rounding difference to the masked product."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import torch
from torch import Tensor, nn

from prune_info.analysis.curves.masked import _apply_mask, _eval_mode, _on_free_cores, _segments
from prune_info.analysis.curves.points import _K_BLOCK, _MIN_ROWS, _PREFIX_CHUNK_BYTES, _bar
from prune_info.data import Split, as_split
from prune_info.nn import LayerInfo

# --------------------------------------------------------------------------------------------
# The prefix-sum path for layer-wise curves, verified against rounding


#: Modules the prefix-sum path can carry its rounding-error bound through (in eval mode).
_BOUNDED = (nn.Linear, nn.ReLU, nn.Sigmoid, nn.Tanh, nn.LeakyReLU, nn.Dropout, nn.Identity,
            nn.Flatten, nn.BatchNorm1d)
#: Rows recomputed exactly at a time by the prefix-sum path.
_RECHECK_CHUNK = 4096


def _gamma(n: int, u: float) -> float:
    """The classic bound on the relative rounding error of an n-term sum: n u / (1 - n u)."""
    return n * u / (1.0 - n * u)


@dataclass
class _PrefixPlan:
    prefix: nn.Sequential
    suffix: nn.Sequential
    first: nn.Linear
    rest: list[nn.Module]


def _prefix_plan(model: nn.Module, info: LayerInfo,
                 x1: Tensor | None = None) -> _PrefixPlan | None:
    """Where the cut is followed by a Linear layer (MLP layers), the prefix-sum path applies.

    Not to token units: with a sample ``x1``, a cut whose output is not ``[batch, units]`` is
    refused.
    """
    segments = _segments(model, [info.output_module])
    if segments is None or info.kind != "linear":
        return None
    prefix, suffix = segments
    if x1 is not None:
        param = next(model.parameters(), None)
        with _eval_mode(model), torch.no_grad():
            shape = prefix(x1.to(param.device if param is not None else "cpu")).shape
        if len(shape) != 2:
            return None
    modules = list(suffix)
    while modules and isinstance(modules[0], (nn.Dropout, nn.Identity, nn.Flatten)):
        modules.pop(0)
    if not modules or not isinstance(modules[0], nn.Linear):
        return None
    if not all(isinstance(m, _BOUNDED) for m in modules[1:]):
        return None
    for m in modules:
        if isinstance(m, nn.LeakyReLU) and abs(m.negative_slope) > 1:
            return None
        if isinstance(m, nn.BatchNorm1d) and (m.running_var is None or m.running_mean is None):
            return None
    if any(p.dtype != torch.float32 for p in model.parameters()):
        return None
    return _PrefixPlan(prefix, suffix, modules[0], modules[1:])


def _later_masks(model: nn.Module, plan: _PrefixPlan, infos: Sequence[LayerInfo],
                 fills: Sequence[Tensor | None], device: torch.device) -> list[_LaterMask] | None:
    """The masks of a whole-network ordering's layers after the first (``infos[1:]``), placed
    after their output modules in the rest of the network; None when one is not there (the
    batched path then runs)."""
    steps = [m for m in plan.rest if not isinstance(m, (nn.Dropout, nn.Identity, nn.Flatten))]
    out, offset = [], infos[0].n_units
    for info, fill in zip(infos[1:], fills[1:]):
        module = model.get_submodule(info.output_module)
        index = next((i for i, m in enumerate(steps) if m is module), None)
        if info.kind != "linear" or index is None or steps.count(module) != 1:
            return None
        out.append(_LaterMask(index, module, offset, info.n_units,
                              None if fill is None else fill.to(device).reshape(-1)))
        offset += info.n_units
    return out


@dataclass
class _RestStep:
    """One module after the cut's Linear layer: its values, and its effect on a rounding bound.

    Activations are held as ``[k, units, samples]``. The values run on a block of ``k`` at a
    time (:meth:`forward`); the bound runs afterwards for all ``k`` at once (:meth:`bound`), from
    a-priori magnitudes: ``err[k, sample]`` bounds ``max_unit |x_fast - x_naive|`` and
    ``size[k, sample]`` bounds ``max_unit |x|`` of both. Both sides round on their own, so each
    module adds its own rounding twice.
    """

    module: nn.Module
    kind: str  # "relu", "linear", "bn", "squash" (sigmoid, tanh) or "leaky"
    norm: float = 0.0   # largest row sum of |W| (linear), largest |scale| (bn)
    shift: float = 0.0  # largest |bias| (linear), largest |shift| (bn)
    gamma: float = 0.0

    def forward(self, x: Tensor, out: Tensor) -> Tensor:
        """The module on ``x`` (``[k, units, samples]``), into ``out``."""
        if self.kind == "linear":
            linear = cast(nn.Linear, self.module)
            weight = linear.weight.expand(x.shape[0], -1, -1)
            if linear.bias is None:
                return torch.bmm(weight, x, out=out)
            return torch.baddbmm(linear.bias[None, :, None], weight, x, out=out)
        if self.kind == "relu":
            return torch.clamp_min(x, 0, out=out)
        # BatchNorm1d reads [N, C, L] with the units as C: here N is k and L the samples
        return out.copy_(self.module(x))

    def bound(self, err: Tensor, size: Tensor, u: float) -> tuple[Tensor, Tensor]:
        """``(err, size)`` after the module from ``(err, size)`` before it."""
        if self.kind == "relu":
            return err, size  # 1-Lipschitz and exact
        if self.kind == "linear":
            out = self.norm * size + self.shift
            return self.norm * err + self.gamma * out, out * (1 + self.gamma)
        if self.kind == "bn":
            out = (self.norm * size + self.shift) * (1 + 16 * u)
            return self.norm * err + 16 * u * (self.norm * size + out + 1e-30), out
        # sigmoid, tanh, leaky relu (|slope| <= 1): at most 1-Lipschitz, a few ulp of their own
        out = size.clamp_max(1.0) if self.kind == "squash" else size
        return err + 8 * u * out, out


def _rest_steps(modules: Sequence[nn.Module], u: float) -> list[_RestStep]:
    """The steps of ``modules`` (pass-through modules dropped), their constants computed once."""
    steps: list[_RestStep] = []
    for module in modules:
        if isinstance(module, (nn.Dropout, nn.Identity, nn.Flatten)):
            continue
        if isinstance(module, nn.ReLU):
            steps.append(_RestStep(module, "relu"))
        elif isinstance(module, nn.Linear):
            steps.append(_RestStep(
                module, "linear", norm=float(module.weight.detach().abs().sum(1).max()),
                shift=float(module.bias.detach().abs().max()) if module.bias is not None
                else 0.0,
                gamma=2 * _gamma(module.in_features + 2, u)))
        elif isinstance(module, nn.BatchNorm1d):
            assert module.running_var is not None and module.running_mean is not None
            scale = torch.ones_like(module.running_var) if module.weight is None \
                else module.weight.detach()
            scale = scale / torch.sqrt(module.running_var + module.eps)
            shift = -module.running_mean * scale
            if module.bias is not None:
                shift = shift + module.bias.detach()
            steps.append(_RestStep(module, "bn", norm=float(scale.abs().max()),
                                   shift=float(shift.abs().max())))
        else:
            kind = "leaky" if isinstance(module, nn.LeakyReLU) else "squash"
            steps.append(_RestStep(module, kind))
    return steps


def _running_sum_bound(h_abs_t: Tensor, delta_abs_t: Tensor, p0: Tensor, order: Tensor,
                       c: Tensor, fill_abs: Tensor, u: float) -> tuple[Tensor, Tensor]:
    """Bounds ``[K + 1, samples]`` on ``max_j |z_k[j] - naive_k[j]|`` for the running sum of
    :func:`_prefix_sum_counts` (``K = len(order)``), and on ``max_j |z_k[j]|`` of both.

    ``order[k]`` is the unit the ``k``-th update ablates and ``c[k]`` its ``c_i`` below (0 for an
    update that changes nothing: a later layer's unit in a whole-network ordering).

    With ``c_i = max_j |W_ji|`` and ``x_k`` the layer output with the first ``k`` units of
    ``order`` ablated, ``P_k = sum_i c_i |x_k,i| + max |b|`` bounds ``|z_k|`` and every partial
    sum of its product (``p0`` is ``P_0``). A float32 product over ``n`` terms is off by at most
    ``gamma_{n+2} P_k`` whatever the summation order (the naive loop's ``z_k``, and the
    running sum's start ``z_K``); each update of the running sum adds at most
    ``2u c_i |h_i - a_i|`` (rounding of the difference and of the product) and
    ``u |z_i| <= u P_i`` (the addition). A 1 % margin covers the second-order terms and the
    rounding of the bound's own arithmetic (Higham, *Accuracy and Stability of Numerical
    Algorithms*, 2nd ed., Sec. 3.1 and 4.2). ``h_abs_t`` and ``delta_abs_t`` are ``|h|`` and
    ``|h - a|`` transposed, ``[units, samples]``.
    """
    k_max = order.numel()
    gamma = _gamma(h_abs_t.shape[0] + 2, u)
    p = p0.expand(k_max + 1, -1).clone()
    steps = torch.zeros_like(p)
    if k_max:
        c = c[:, None]
        p[1:] += (c * (fill_abs[order, None] - h_abs_t[order])).cumsum(0)
        # the sum of the update terms from k to K: their total less the first k
        terms = c * (2 * u) * delta_abs_t[order] + u * p[:k_max]
        steps[1:] = terms.cumsum(0)
        steps = steps[k_max] - steps
    err = 1.01 * (gamma * (p + p[k_max]) + steps)
    return err, p + err


@dataclass
class _LaterMask:
    """A later layer of a whole-network ordering: its units are masked after ``step`` of the
    rest of the network, where ``position[u]`` (the unit's place in the ordering) ``< k``."""

    step: int
    module: nn.Module     # the layer's output module, where the naive loop masks it
    offset: int           # its first global unit index
    n_units: int
    fill: Tensor | None   # [units] (None: zero)
    position: Tensor | None = None  # set per ordering

    def apply(self, x: Tensor, ks: Tensor) -> None:
        """Mask ``x`` (``[len(ks), units, samples]``) in place for ablation counts ``ks``."""
        assert self.position is not None
        ablated = (self.position[None, :] < ks[:, None]).unsqueeze(2)
        if self.fill is None:
            x.masked_fill_(ablated, 0.0)
        else:
            x.copy_(torch.where(ablated, self.fill[None, :, None], x))


def _outputs_by_k(z_max: Tensor, columns: Tensor, factors: Tensor, steps: list[_RestStep],
                  buffers: list[Tensor], outputs: Tensor,
                  later: Sequence[_LaterMask] = ()) -> None:
    """Fill ``outputs[k]`` (``[classes, samples]``) for ``k = K..0`` by the running sum
    ``z_k = z_{k+1} + columns[k] factors[k]^T`` from ``z_max = z_K``, each ``z_k`` through
    ``steps`` (and the masks of ``later`` layers after theirs).

    The steps run on blocks of ``len(buffers[0])`` consecutive ``k`` at once (``buffers``:
    the block's running sums, then one per step but the last), so the products are batched and
    few.
    """
    k_max = columns.shape[0]
    if not steps:  # the cut feeds the output layer: the running sum is the logits
        outputs[k_max].copy_(z_max)
        for k in range(k_max - 1, -1, -1):
            torch.addr(outputs[k + 1], columns[k], factors[k], out=outputs[k])
        return
    sums, block = buffers[0], buffers[0].shape[0]
    for top in range(k_max, -1, -block):
        low = max(0, top - block + 1)
        z = sums[: top - low + 1]  # z[i] is z_{low + i}; sums[0] still holds z_{top + 1}
        if top == k_max:
            z[-1].copy_(z_max)
        elif len(z) == 1:
            z[0].addr_(columns[top], factors[top])
        else:
            torch.addr(sums[0], columns[top], factors[top], out=z[-1])
        for i in range(top - low - 1, -1, -1):
            torch.addr(z[i + 1], columns[low + i], factors[low + i], out=z[i])
        x = z
        ks = torch.arange(low, top + 1, device=z.device)
        outs = [b[: len(z)] for b in buffers[1:]] + [outputs[low : top + 1]]
        for i, (step, out) in enumerate(zip(steps, outs)):
            x = step.forward(x, out=out)
            for mask in later:
                if mask.step == i:
                    mask.apply(x, ks)


@dataclass
class _Block:
    """A block of samples' layer outputs, prepared for :meth:`_RunningSums.logits`."""

    h: Tensor            # [rows, n]
    delta_t: Tensor      # (h - a) transposed, [n, rows]
    h_abs_t: Tensor      # |h| transposed
    p0: Tensor           # P_0 of :func:`_running_sum_bound`, [rows]
    outputs: Tensor      # [K + 1, classes, rows], overwritten by every ordering
    buffers: list[Tensor]


class _RunningSums:
    """The running-sum evaluation of one layer's curves: the model's constants, computed once.

    Parameters
    ----------
    plan : _PrefixPlan
    fill : Tensor, optional
        The ablated units' value (``None``: zero).
    max_k : int
    device : torch.device
    later : sequence of _LaterMask
        Whole-network orderings: the later layers (their units numbered after the cut layer's).
    """

    def __init__(self, plan: _PrefixPlan, fill: Tensor | None, max_k: int,
                 device: torch.device, later: Sequence[_LaterMask] = ()):
        self.plan, self.max_k, self.device = plan, max_k, device
        self.later = list(later)
        self.u = float(torch.finfo(torch.float32).eps) / 2
        weight = plan.first.weight.detach().to(device)
        n, m = weight.shape[1], weight.shape[0]
        self.weight_t = weight.t().contiguous()
        self.col_max = weight.abs().amax(0)
        bias = plan.first.bias
        self.bias_max = float(bias.detach().abs().max()) if bias is not None else 0.0
        self.fill = torch.zeros(n, device=device) if fill is None \
            else fill.to(device).reshape(n)
        self.steps = _rest_steps(plan.rest, self.u)
        self.widths = [m]  # of z and of every step's output
        for step in self.steps:
            self.widths.append(cast(nn.Linear, step.module).out_features
                               if step.kind == "linear" else self.widths[-1])

    def samples_per_block(self, memory_mb: float, batch_size: int) -> int:
        """Samples whose outputs at every k, and running sums and activations at _K_BLOCK of
        them, stay cache-sized (and within the memory budget)."""
        per_sample = 4 * ((self.max_k + 1) * (self.widths[-1] + 2)
                          + _K_BLOCK * sum(self.widths[:-1]))
        sub = int(min(_PREFIX_CHUNK_BYTES, memory_mb * 2**20) // per_sample)
        return max(1, min(batch_size, sub))

    def block(self, h: Tensor) -> _Block:
        delta_t = (h - self.fill).t().contiguous()
        h_abs_t = h.abs().t().contiguous()
        rows = h.shape[0]
        return _Block(
            h, delta_t, h_abs_t, h_abs_t.t() @ self.col_max + self.bias_max,
            torch.empty(self.max_k + 1, self.widths[-1], rows, device=self.device),
            [torch.empty(_K_BLOCK, w, rows, device=self.device) for w in self.widths[:-1]])

    def logits(self, block: _Block, order: Tensor) -> tuple[Tensor, Tensor]:
        """The outputs ``[K + 1, classes, rows]`` after ablating the first ``k`` units of
        ``order`` (``K`` of them), by the running sum, and a bound ``[K + 1, rows]`` on their
        largest difference from the naive loop's outputs. The outputs are the block's buffer:
        the next call overwrites them."""
        n = block.h.shape[1]
        own = order < n  # whole-network orderings: the positions that ablate this layer's units
        units = torch.where(own, order, 0)
        columns = self.weight_t[units] * own[:, None]  # a later layer's position: no update
        ablated = block.h.clone()
        ablated[:, order[own]] = self.fill[order[own]]
        z_max = _first_layer(self.plan, ablated).t()  # z_K, [m, rows]
        if self.later:
            position = torch.full((n + sum(m.n_units for m in self.later),), self.max_k + 1,
                                  dtype=torch.int64, device=self.device)
            position[order] = torch.arange(order.numel(), device=self.device)
            for mask in self.later:
                mask.position = position[mask.offset : mask.offset + mask.n_units]
        _outputs_by_k(z_max, columns, block.delta_t[units], self.steps, block.buffers,
                      block.outputs, self.later)
        err, size = _running_sum_bound(block.h_abs_t, block.delta_t.abs(), block.p0, units,
                                       self.col_max[units] * own, self.fill.abs(), self.u)
        for i, step in enumerate(self.steps):
            err, size = step.bound(err, size, self.u)
            for mask in self.later:  # masked units hold their fill, exactly, in both
                if mask.step == i and mask.fill is not None:
                    size = size.clamp_min(float(mask.fill.abs().max()))
        return block.outputs, err


@_on_free_cores
@torch.no_grad()
def _prefix_sum_counts(
    plan: _PrefixPlan,
    split: Split,
    orders: Tensor,
    max_k: int,
    fill: Tensor | None,
    *,
    device: torch.device,
    batch_size: int,
    memory_mb: float,
    progress: bool = False,
    desc: str = "ablate",
    later: Sequence[_LaterMask] = (),
) -> tuple[Tensor, int]:
    """Layer-wise counts by running sums of outgoing contributions, verified per prediction.

    The next Linear layer's input after ablating the first ``k`` units of an ordering is
    ``z_k = z_{k+1} + W[:, o_k] (h_{o_k} - a_{o_k})``: a rank-1 update per ``k`` (``m``
    multiply-adds per sample) instead of a product over all ``n`` units, and only the layers
    after that one run per ``k``. The sum runs down from ``z_K`` (all ``K`` units ablated, one
    product), in place on a cache-sized block of samples, so its rounding error is smallest
    where the most units are ablated and the logits' margins are thinnest. The float32 result
    differs from the naive masked product by rounding only, and that difference is bounded
    (:func:`_running_sum_bound`, carried through the rest of the network). A prediction whose
    top-two logit margin exceeds twice the bound has the naive prediction's class; the few
    others are recomputed exactly as the naive loop computes them. The counts are therefore the
    naive loop's, exactly.

    With ``later`` (whole-network orderings), the positions of an ordering that ablate a later
    layer's unit leave the running sum as it is and mask that unit after its module in the rest
    of the network, as the naive loop does.

    Returns the counts ``[R, max_k + 1]`` and the number of predictions recomputed.
    """
    sums = _RunningSums(plan, fill, max_k, device, later)
    sub = sums.samples_per_block(memory_mb, batch_size)
    counts = torch.zeros(orders.shape[0], max_k + 1, dtype=torch.int64)
    rechecked = 0
    orders_dev = orders[:, :max_k].to(device)
    bar = _bar(orders.shape[0] * len(split), desc, progress, unit="curve-sample")
    for start in range(0, len(split), batch_size):
        xb = split.x[start : start + batch_size].to(device)
        yb = split.y[start : start + batch_size].to(device)
        h_all = plan.prefix(xb)
        for s0 in range(0, h_all.shape[0], sub):
            block = sums.block(h_all[s0 : s0 + sub])
            for r, order in enumerate(orders_dev):
                outputs, err = sums.logits(block, order)
                top, pred = outputs.max(1)
                # safe: no other class within twice the bound of the top one
                unsafe = (outputs >= (top - 2 * err).unsqueeze(1)).sum(1) > 1
                if bool(unsafe.any()):
                    ks, samples = unsafe.nonzero(as_tuple=True)
                    pred[ks, samples] = _exact_rows(plan, block.h, samples, ks, order, max_k,
                                                    fill, later)
                    rechecked += int(ks.numel())
                counts[r] += (pred == yb[None, s0 : s0 + pred.shape[1]]).sum(1).cpu()
                bar.update(pred.shape[1])
    bar.close()
    return counts, rechecked


def _first_layer(plan: _PrefixPlan, h: Tensor) -> Tensor:
    """The next Linear layer on the unablated units, computed as the naive forward does."""
    x = h
    for module in plan.suffix:
        x = module(x)
        if module is plan.first:
            return x
    raise AssertionError("the plan's Linear layer is not in its suffix")


def _exact_rows(plan: _PrefixPlan, h: Tensor, samples: Tensor, ks: Tensor, order: Tensor,
                max_k: int, fill: Tensor | None, later: Sequence[_LaterMask] = ()) -> Tensor:
    """Predictions of samples ``samples`` (rows of ``h``) with the first ``ks`` units of
    ``order`` ablated, exactly as the naive loop computes them (``later``: the masks of a
    whole-network ordering's later layers, applied after their modules)."""
    out = torch.empty(samples.numel(), dtype=torch.int64, device=h.device)
    n = h.shape[1]
    # position of each unit in the ordering; units beyond max_k are never ablated
    position = torch.full((n + sum(m.n_units for m in later),), max_k + 1, dtype=torch.int64,
                          device=h.device)
    position[order] = torch.arange(order.numel(), device=h.device)
    at = {id(m.module): m for m in later}
    for a in range(0, samples.numel(), _RECHECK_CHUNK):
        rows, k = samples[a : a + _RECHECK_CHUNK], ks[a : a + _RECHECK_CHUNK]
        if rows.numel() < _MIN_ROWS:  # tiny products take other BLAS kernels: pad with row 0
            pad = _MIN_ROWS - rows.numel()
            rows, k = torch.cat([rows, rows[:1].expand(pad)]), torch.cat([k, k[:1].expand(pad)])
        ablated = position[None, :n] < k[:, None]
        x = _apply_mask(h[rows].unsqueeze(1), ablated, fill).squeeze(1)
        for module in plan.suffix:
            x = module(x)
            mask = at.get(id(module))
            if mask is not None:
                lost = position[None, mask.offset : mask.offset + mask.n_units] < k[:, None]
                x = _apply_mask(x.unsqueeze(1), lost, mask.fill).squeeze(1)
        count = min(_RECHECK_CHUNK, samples.numel() - a)
        out[a : a + count] = x[:count].argmax(1)
    return out


def _prefix_masks(orders: Tensor, ks: Tensor) -> Tensor:
    """Bool ``[R * K, n]`` for the ``K`` values ``ks``: row ``r * K + i`` ablates
    ``orders[r, :ks[i]]``. Only the requested ``k`` are built."""
    n_orders, n = orders.shape
    position = torch.empty_like(orders)
    position.scatter_(1, orders, torch.arange(n).expand(n_orders, n).contiguous())
    return (position[:, None, :] < ks[None, :, None]).reshape(n_orders * ks.numel(), n)


def _check_split(split: Split) -> Split:
    return as_split(split, "the split of ablation curves")


