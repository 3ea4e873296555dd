"""Many seeds of one MLP trained at once, as one batched model.

A multi-seed study trains S networks that differ only in their seed. :class:`StackedMLP` holds
their weights stacked (``[S, in, out]``) and runs all of them with batched matrix products; one
optimiser steps all of them (RMSprop, SGD and Adam update every weight independently, so a step
on the stacked tensors is S separate steps). Each seed reproduces what
:func:`prune_info.training.loop.train_model` does with that seed:

* initialisation: the seed's model is built by :func:`prune_info.zoo.build_model` after
  ``torch.manual_seed(seed)`` and its weights are copied into the stack;
* shuffling: one ``torch.Generator`` per seed, seeded like :func:`~prune_info.training.loop.fit`,
  draws
  the same epoch permutations;
* dropout: one more generator per seed draws the same Bernoulli masks, in the same order, that
  :class:`torch.nn.Dropout` draws from the global generator in ``fit`` (so dropout training is
  reproduced too, not only its distribution);
* the loss of each seed is the mean cross-entropy over its own mini-batch; the stacked loss is
  their sum, so each seed's gradient is its own;
* model selection: each seed keeps the epoch with its best validation accuracy.

Results equal single-seed training up to float reassociation in the matrix products (batched
and unbatched kernels add in different orders). In float64 the two agree to 1e-14 after 500
FashionMNIST steps, dropout included: the arithmetic is the same. In float32 the last-bit
differences stay tiny for a while (digits, 270 steps: weights within 1e-5, identical
predictions) but training amplifies them, as it amplifies any change of BLAS library: RMSprop
divides by the root of tiny squared gradients and ReLU units switch, so on FashionMNIST the
weights of a seed drift apart after a few hundred steps (relative difference 2e-6 after 100
steps, about 0.1-0.2 after 500) while the networks stay equally good (seed 0 after one epoch:
84.85 % vs 84.95 % test accuracy). Each batched seed is as valid a sample of "a network trained
with this seed's initialisation and data order" as the single-seed run.

BatchNorm (``bn-dropout`` or ``batchnorm=True``) is batched too: each seed normalises its own
mini-batch with its own statistics and keeps its own running averages, as
:class:`torch.nn.BatchNorm1d` does (the same formulas; its fused kernels round differently, so in
float64 a seed agrees with its single-seed run to about 3e-10 after 270 digits steps rather than
to the last digits).

Not batched (:func:`train_seeds` falls back to training seed after seed): CNNs and rewind steps.

Training is resumable: with ``state_path``, the full state (weights, optimiser, generators,
best-so-far weights, history) is written atomically after every epoch, and a later call with the
same path continues from the last finished epoch and ends with the same weights as an
uninterrupted run. The state file stays until the caller has stored the models and removes it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import cast

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from prune_info._torch import small_batch_threads
from prune_info.checkpoint import Checkpoint, quiet_torch_load
from prune_info.data import Dataset, in_memory
from prune_info.errors import PruneInfoError, malformed
from prune_info.io import atomic_write
from prune_info.nn import accuracy
from prune_info.training.freeze import FrozenEntries
from prune_info.training.loop import TrainConfig, make_optimizer, train_model, weight_decay_for
from prune_info.zoo import ACTIVATIONS, build_model, dropout_rates, parse_arch

__all__ = ['BlockedRMSprop', 'StackedMLP', 'batchable', 'train_seeds', 'train_stacked']

TRAIN_STATE_FORMAT = "prune-info-stacked-train-state"


def batchable(arch: dict, config: TrainConfig | None = None) -> str | None:
    """Why ``arch`` cannot be trained as a stack, or None when it can."""
    if arch.get("kind") != "mlp":
        return "only MLPs are trained batched; CNNs are trained seed after seed"
    if config is not None and config.save_rewind_steps:
        return "rewind steps are not batched; those models are trained seed after seed"
    return None


class StackedMLP(nn.Module):
    """S MLPs of one architecture with stacked weights.

    Parameters
    ----------
    arch : dict
        An MLP architecture from :func:`prune_info.zoo.parse_arch` (no BatchNorm).
    seeds : sequence of int
        One model per seed, initialised exactly as ``torch.manual_seed(seed); build_model(arch)``.

    Attributes
    ----------
    weights_t, biases : nn.ParameterList
        ``weights_t[i]`` is ``[S, in, out]`` (transposed), ``biases[i]`` is ``[S, out]``; the
        last pair is the classifier ``out``.
    norm_weights, norm_biases : nn.ParameterList
        With BatchNorm, its affine parameters per hidden layer, ``[S, units]`` (else empty);
        the running statistics are the buffers ``norm_mean_i``, ``norm_var_i`` (``[S, units]``)
        and ``norm_batches_i`` (``[S]``).

    Examples
    --------
    >>> arch = parse_arch("64-16-10", (1, 8, 8), 10)
    >>> stack = StackedMLP(arch, seeds=[0, 1, 2])
    >>> stack(torch.zeros(3, 5, 64)).shape       # one mini-batch of 5 per seed
    torch.Size([3, 5, 10])
    >>> torch.equal(stack.seed_model(1).fc1.weight, stack.weights_t[0][1].t())
    True
    """

    def __init__(self, arch: dict, seeds: Sequence[int]):
        super().__init__()
        reason = batchable(arch)
        if reason:
            raise PruneInfoError(reason)
        if len(seeds) == 0:
            raise PruneInfoError("a stack needs at least one seed")
        self.arch = arch
        self.seeds = [int(s) for s in seeds]
        models = []
        for seed in self.seeds:
            torch.manual_seed(seed)
            models.append(build_model(arch))
        self.names = [f"fc{i}" for i in range(1, len(arch["hidden"]) + 1)] + ["out"]
        # stored transposed, [S, in, out], so that the gradients of the batched products come
        # out in the parameters' own layout (no copy when autograd accumulates them)
        self.weights_t = nn.ParameterList(
            nn.Parameter(torch.stack([cast(nn.Linear, m.get_submodule(n)).weight.detach().t()
                                      for m in models])
                         .contiguous())
            for n in self.names)
        self.biases = nn.ParameterList(
            nn.Parameter(torch.stack([cast(nn.Linear, m.get_submodule(n)).bias.detach()
                                      for m in models]))
            for n in self.names)
        n_hidden = len(arch["hidden"])
        per_layer = [[cast(nn.BatchNorm1d, m.get_submodule(f"bn{i}")) for m in models]
                     for i in range(1, n_hidden + 1)] if arch.get("batchnorm") else []

        def stacked(layer: list[nn.BatchNorm1d], name: str) -> Tensor:
            return torch.stack([cast(Tensor, getattr(bn, name)).detach() for bn in layer])

        self.norm_weights = nn.ParameterList(nn.Parameter(stacked(layer, "weight"))
                                             for layer in per_layer)
        self.norm_biases = nn.ParameterList(nn.Parameter(stacked(layer, "bias"))
                                            for layer in per_layer)
        for i, layer in enumerate(per_layer):
            self.register_buffer(f"norm_mean_{i}", stacked(layer, "running_mean"))
            self.register_buffer(f"norm_var_{i}", stacked(layer, "running_var"))
            self.register_buffer(f"norm_batches_{i}", stacked(layer, "num_batches_tracked"))
        first = per_layer[0][0] if per_layer else None
        self.norm_eps = first.eps if first is not None else 0.0
        self.norm_momentum = float(first.momentum or 0.1) if first is not None else 0.0
        self.act = ACTIVATIONS[arch["act"]]()
        self.dropout = dropout_rates(n_hidden) if arch["reg"] in ("dropout", "bn-dropout") \
            else [0.0] * n_hidden

    @property
    def n_seeds(self) -> int:
        return len(self.seeds)

    def forward(self, x: Tensor, generators: Sequence[torch.Generator] | None = None) -> Tensor:
        """Logits ``[S, B, classes]`` of one mini-batch per seed.

        ``x`` is ``[S, B, ...]``. In training mode dropout masks are drawn from ``generators``
        (one per seed); without generators, from the global generator.
        """
        if x.dim() < 3 or x.shape[0] != self.n_seeds:
            raise PruneInfoError(
                f"a stack of {self.n_seeds} seeds needs inputs [S={self.n_seeds}, B, ...], got "
                f"shape {list(x.shape)}; use forward_shared for one batch shared by all seeds")
        return self._run(x.reshape(self.n_seeds, x.shape[1], -1), generators)

    def forward_shared(self, x: Tensor) -> Tensor:
        """Logits ``[S, B, classes]`` of every seed on the same samples ``x`` (``[B, ...]``)."""
        flat = x.reshape(x.shape[0], -1)
        first_t, first_b = self.weights_t[0], self.biases[0]
        n_in, n_out = first_t.shape[1], first_t.shape[2]
        # one product for every seed: [B, in] @ [in, S * out], no copy of x per seed
        h = flat @ first_t.permute(1, 0, 2).reshape(n_in, self.n_seeds * n_out)
        h = h.view(flat.shape[0], self.n_seeds, n_out).transpose(0, 1) + first_b.unsqueeze(1)
        return self._run(h, None, start=1)

    def _run(self, h: Tensor, generators, start: int = 0) -> Tensor:
        """Layers ``start..``: ``h`` is the output of layer ``start - 1`` before its activation."""
        last = len(self.weights_t) - 1
        for i, (weight_t, bias) in enumerate(zip(self.weights_t, self.biases)):
            if i >= start:
                h = torch.baddbmm(bias.unsqueeze(1), h, weight_t)
            if i == last:
                break
            if len(self.norm_weights):
                h = self._norm(i, h)
            h = self.act(h)
            p = self.dropout[i]
            if self.training and p > 0:
                h = h * self._dropout_noise(h, p, generators)
        return h

    def _norm(self, i: int, h: Tensor) -> Tensor:
        """BatchNorm of hidden layer ``i`` for every seed (``h``: ``[S, B, units]``): in training
        mode each seed's mini-batch statistics, with its running averages updated as
        :class:`torch.nn.BatchNorm1d` updates them (the unbiased variance); in eval mode those
        averages."""
        mean_buf, var_buf = getattr(self, f"norm_mean_{i}"), getattr(self, f"norm_var_{i}")
        if self.training:
            mean = h.mean(1, keepdim=True)
            var = (h - mean).square().sum(1, keepdim=True) / h.shape[1]
            with torch.no_grad():
                m, n = self.norm_momentum, h.shape[1]
                mean_buf.mul_(1 - m).add_(mean.squeeze(1), alpha=m)
                var_buf.mul_(1 - m).add_(var.squeeze(1) * (n / max(n - 1, 1)), alpha=m)
                getattr(self, f"norm_batches_{i}").add_(1)
        else:
            mean, var = mean_buf.unsqueeze(1), var_buf.unsqueeze(1)
        # as torch's kernel applies it: x * alpha + beta, alpha = weight / sqrt(var + eps)
        alpha = self.norm_weights[i].unsqueeze(1) / torch.sqrt(var + self.norm_eps)
        return h * alpha + (self.norm_biases[i].unsqueeze(1) - mean * alpha)

    def _dropout_noise(self, h: Tensor, p: float, generators) -> Tensor:
        # nn.Dropout on the CPU draws empty_like(x).bernoulli_(1 - p) and divides by 1 - p;
        # drawing the same per seed from that seed's generator reproduces it exactly.
        noise = torch.empty_like(h)
        for s in range(self.n_seeds):
            gen = generators[s] if generators is not None else None
            noise[s].bernoulli_(1 - p, generator=gen)
        return noise.div_(1 - p)

    def seed_state_dict(self, index: int) -> dict[str, Tensor]:
        """The state dict of seed number ``index`` as an ordinary model would hold it."""
        state = {}
        for name, weight_t, bias in zip(self.names, self.weights_t, self.biases):
            state[f"{name}.weight"] = weight_t[index].detach().t().contiguous()
            state[f"{name}.bias"] = bias[index].detach().clone()
        for i, (weight, bias) in enumerate(zip(self.norm_weights, self.norm_biases)):
            state[f"bn{i + 1}.weight"] = weight[index].detach().clone()
            state[f"bn{i + 1}.bias"] = bias[index].detach().clone()
            for key, buffer in (("running_mean", "norm_mean"), ("running_var", "norm_var"),
                                ("num_batches_tracked", "norm_batches")):
                state[f"bn{i + 1}.{key}"] = getattr(self, f"{buffer}_{i}")[index].clone()
        return state

    def seed_model(self, index: int) -> nn.Sequential:
        """An ordinary :class:`~torch.nn.Sequential` holding seed number ``index``'s weights."""
        model = build_model(self.arch)
        model.load_state_dict(self.seed_state_dict(index))
        model.eval()
        return model

    @torch.no_grad()
    def count_correct(self, x: Tensor, y: Tensor, batch_size: int = 4096) -> Tensor:
        """Correct predictions of every seed on the same samples (eval mode), int64 ``[S]``."""
        was_training = self.training
        self.eval()
        correct = torch.zeros(self.n_seeds, dtype=torch.int64)
        for start in range(0, x.shape[0], batch_size):
            logits = self.forward_shared(x[start : start + batch_size])
            correct += (logits.argmax(-1) == y[start : start + batch_size]).sum(1).cpu()
        self.train(was_training)
        return correct


class BlockedRMSprop:
    """RMSprop for big stacked tensors: torch's update, in place, in cache-sized blocks.

    The arithmetic is that of :class:`torch.optim.RMSprop` (its single-tensor code path, the
    CPU default): the same element-wise operations in the same order, so every element gets
    the same value. What differs is the memory traffic: no temporaries (torch allocates the
    decayed gradient and ``sqrt(square_avg)`` afresh at every step, megabytes for a stack) and
    blocks of ``block`` elements that stay in cache through all the operations.

    Parameters
    ----------
    params : list of Tensor
        Contiguous leaf tensors.
    lr, alpha, eps, weight_decay, momentum : float
        As in :class:`torch.optim.RMSprop`.
    block : int
        Elements per block.
    """

    def __init__(self, params, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0, block: int = 1 << 18):
        self.params = list(params)
        if any(not p.is_contiguous() for p in self.params):
            raise PruneInfoError("BlockedRMSprop needs contiguous parameters")
        self.lr, self.alpha, self.eps = lr, alpha, eps
        self.weight_decay, self.momentum, self.block = weight_decay, momentum, block
        self.square_avg = [torch.zeros_like(p) for p in self.params]
        self.momentum_buffer = [torch.zeros_like(p) for p in self.params] if momentum > 0 \
            else []
        self.steps = 0
        self._scratch = torch.empty(0)

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        self.steps += 1
        if self._scratch.numel() < self.block:
            self._scratch = torch.empty(self.block, dtype=self.params[0].dtype,
                                        device=self.params[0].device)
        for i, param in enumerate(self.params):
            if param.grad is None:
                continue
            flat_p, flat_g = param.view(-1), param.grad.view(-1)
            flat_s = self.square_avg[i].view(-1)
            flat_m = self.momentum_buffer[i].view(-1) if self.momentum > 0 else None
            for a in range(0, flat_p.numel(), self.block):
                b = min(a + self.block, flat_p.numel())
                p, g, sq = flat_p[a:b], flat_g[a:b], flat_s[a:b]
                avg = self._scratch[: b - a]
                if self.weight_decay != 0:
                    g.add_(p, alpha=self.weight_decay)  # the gradient is ours to overwrite
                sq.mul_(self.alpha).addcmul_(g, g, value=1 - self.alpha)
                torch.sqrt(sq, out=avg)
                avg.add_(self.eps)
                if flat_m is not None:
                    m = flat_m[a:b]
                    m.mul_(self.momentum).addcdiv_(g, avg)
                    p.add_(m, alpha=-self.lr)
                else:
                    p.addcdiv_(g, avg, value=-self.lr)

    def state_dict(self) -> dict:
        return {"steps": self.steps, "square_avg": [t.clone() for t in self.square_avg],
                "momentum_buffer": [t.clone() for t in self.momentum_buffer]}

    def load_state_dict(self, state: dict) -> None:
        self.steps = int(state["steps"])
        for mine, saved in zip(self.square_avg, state["square_avg"]):
            mine.copy_(saved)
        for mine, saved in zip(self.momentum_buffer, state["momentum_buffer"]):
            mine.copy_(saved)


def _optimiser(params: list[Tensor], config: TrainConfig, weight_decay: float):
    if config.optimizer == "rmsprop":
        return BlockedRMSprop(params, lr=config.lr, momentum=config.momentum,
                              weight_decay=weight_decay)
    return make_optimizer(params, config, weight_decay)


@dataclass
class StackedResult:
    """Per-seed outcome of :func:`train_stacked`."""

    best_epoch: list[int]
    best_val_acc: list[float]
    history: list[list[dict]]
    init_state_dicts: list[dict]


def _state_payload(stack, optimiser, shuffles, drops, best, best_epoch, best_acc, history,
                   init, epoch, fingerprint) -> dict:
    return {
        "format": TRAIN_STATE_FORMAT,
        "fingerprint": fingerprint,
        "epoch": epoch,
        "model": {k: v.detach().cpu().clone() for k, v in stack.state_dict().items()},
        "optimiser": optimiser.state_dict(),
        "shuffle_states": [g.get_state() for g in shuffles],
        "dropout_states": [g.get_state() for g in drops],
        "best": {k: v.clone() for k, v in best.items()},
        "best_epoch": list(best_epoch),
        "best_acc": list(best_acc),
        "history": history,
        "init": init,
    }


def train_stacked(
    stack: StackedMLP,
    data: Dataset,
    config: TrainConfig,
    *,
    device: torch.device | str = "cpu",
    progress: bool = True,
    state_path: str | os.PathLike | None = None,
    on_epoch: Callable[[int], None] | None = None,
    trainable: Mapping[str, Tensor] | None = None,
) -> StackedResult:
    """Train every seed of ``stack`` on ``data.train`` at once; keep each seed's best epoch.

    Parameters
    ----------
    stack : StackedMLP
        Freshly built (or as left by an interrupted call, see ``state_path``).
    data : Dataset
    config : TrainConfig
        ``config.seed`` is ignored: every seed of the stack uses its own.
    device : str or torch.device
    progress : bool
        tqdm bar over epochs on stderr.
    state_path : path, optional
        Where the training state is saved after every epoch; when the file exists training
        resumes from it (a state saved after the last epoch returns at once). The file is left
        in place: the caller removes it once the trained models are safely stored.
    on_epoch : callable, optional
        Called with the epoch number after each epoch's state is saved (tests use it to
        interrupt training).
    trainable : mapping of str to bool Tensor, optional
        Masks of the entries to train, by parameter name of the stack (``weights_t.0`` is
        ``[S, in, out]``, ``biases.0`` is ``[S, out]``); the other entries stay bit-identical
        (:class:`prune_info.training.freeze.FrozenEntries`). Not saved in the training state:
        pass the same masks when resuming.

    Returns
    -------
    StackedResult
        The stack holds each seed's best-on-validation weights afterwards.
    """
    config.validate()
    if len(data.train) == 0 or len(data.val) == 0:
        raise PruneInfoError("training needs non-empty train and validation splits")
    device = torch.device(device)
    stack.to(device)
    reg = stack.arch["reg"]
    optimiser = _optimiser(list(stack.parameters()), config, weight_decay_for(reg, config))
    shuffles = [torch.Generator().manual_seed(s) for s in stack.seeds]
    drops = [torch.Generator().manual_seed(s) for s in stack.seeds]
    n_seeds = stack.n_seeds
    init = [stack.seed_state_dict(i) for i in range(n_seeds)]
    best = {k: v.detach().clone() for k, v in stack.state_dict().items()}
    best_epoch, best_acc = [0] * n_seeds, [-1.0] * n_seeds
    history: list[list[dict]] = [[] for _ in range(n_seeds)]
    first_epoch = 1
    fingerprint = {"seeds": stack.seeds, "arch": stack.arch, "config": config.to_dict(),
                   "n_train": len(data.train), "n_val": len(data.val)}
    if state_path is not None and os.path.exists(state_path):
        try:
            saved = quiet_torch_load(state_path)
        except Exception as exc:  # noqa: BLE001 - the file's bytes, whatever torch makes of them
            raise malformed(state_path, f"not a readable training state ({type(exc).__name__})",
                            "delete it; the training then restarts from its first epoch") from exc
        if not isinstance(saved, dict) or saved.get("format") != TRAIN_STATE_FORMAT \
                or saved.get("fingerprint") != fingerprint:
            raise PruneInfoError(
                f"{state_path} holds the training state of another configuration; delete it "
                "or use another directory")
        stack.load_state_dict(saved["model"])
        optimiser.load_state_dict(saved["optimiser"])
        for g, s in zip(shuffles, saved["shuffle_states"]):
            g.set_state(s)
        for g, s in zip(drops, saved["dropout_states"]):
            g.set_state(s)
        best = saved["best"]
        best_epoch, best_acc = saved["best_epoch"], saved["best_acc"]
        history, init = saved["history"], saved["init"]
        first_epoch = saved["epoch"] + 1
    freeze = (FrozenEntries(dict(stack.named_parameters()), trainable)
              if trainable else None)
    train, val = in_memory(data.train), in_memory(data.val)  # S networks read every sample
    x_all = train.x.reshape(len(train), -1).to(device)
    y_all = train.y.to(device)
    x_val = val.x.reshape(len(val), -1).to(device)
    y_val = val.y.to(device)
    n, bs = len(data.train), config.batch_size
    bar = tqdm(range(first_epoch, config.epochs + 1), desc=f"train {n_seeds} seeds",
               unit="epoch", disable=not progress, leave=False)
    # the stack multiplies S mini-batches at once: big enough for every intra-op thread when
    # S x batch is large (the rule of single-seed training, applied to the whole stack)
    with small_batch_threads(device, bs * n_seeds):
        for epoch in bar:
            stack.train()
            perms = torch.stack([torch.randperm(n, generator=g) for g in shuffles]).to(device)
            totals = torch.zeros(n_seeds, dtype=torch.float32, device=device)
            for start in range(0, n, bs):
                index = perms[:, start : start + bs]
                flat = index.reshape(-1)
                xb = x_all.index_select(0, flat).view(n_seeds, -1, x_all.shape[1])
                logits = stack(xb, generators=drops)
                target = y_all.index_select(0, flat).view(n_seeds, -1)
                losses = F.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                         target.reshape(-1), reduction="none")
                per_seed = losses.view(n_seeds, -1).mean(1)
                optimiser.zero_grad(set_to_none=True)
                per_seed.sum().backward()
                if freeze is not None:
                    freeze.mask_grads()
                optimiser.step()
                if freeze is not None:
                    freeze.restore()
                totals += per_seed.detach() * index.shape[1]
            val_acc = (stack.count_correct(x_val, y_val).double() / len(data.val)).tolist()
            state = stack.state_dict()
            improved = []
            for s in range(n_seeds):
                history[s].append({"epoch": epoch, "train_loss": float(totals[s]) / n,
                                   "val_acc": val_acc[s]})
                if val_acc[s] > best_acc[s]:
                    best_acc[s], best_epoch[s] = val_acc[s], epoch
                    improved.append(s)
            if improved:
                rows = torch.tensor(improved, device=device)
                for key, value in state.items():
                    best[key][rows] = value.detach()[rows].to(best[key].device)
            bar.set_postfix(val_acc=f"{sum(val_acc) / n_seeds:.4f}")
            if state_path is not None:
                payload = _state_payload(stack, optimiser, shuffles, drops, best, best_epoch,
                                         best_acc, history, init, epoch, fingerprint)
                with atomic_write(state_path) as tmp:
                    torch.save(payload, tmp)
            if on_epoch is not None:
                on_epoch(epoch)
    stack.load_state_dict(best)
    stack.eval()
    return StackedResult(best_epoch, best_acc, history, init)


def _checkpoint_for(stack: StackedMLP, index: int, result: StackedResult, data: Dataset,
                    config: TrainConfig, device) -> Checkpoint:
    model = stack.seed_model(index)
    seed = stack.seeds[index]
    metrics = {
        "val_acc": result.best_val_acc[index],
        "test_acc": accuracy(model, data.test, device),
        "best_epoch": result.best_epoch[index],
        "history": result.history[index],
        "trained": "batched",
    }
    cfg = TrainConfig(**{**config.to_dict(), "seed": seed,
                         "save_rewind_steps": tuple(config.save_rewind_steps)})
    return Checkpoint(
        model=model.cpu(),
        arch=stack.arch,
        dataset=data.describe(),
        train_config={**cfg.to_dict(), "weight_decay": weight_decay_for(stack.arch["reg"], cfg)},
        metrics=metrics,
        seed=seed,
        init_state_dict=result.init_state_dicts[index],
    )


def train_seeds(
    data: Dataset,
    spec: str,
    seeds: Sequence[int],
    act: str = "relu",
    reg: str = "none",
    config: TrainConfig | None = None,
    *,
    batchnorm: bool | None = None,
    device: torch.device | str = "cpu",
    progress: bool = True,
    batched: bool = True,
    state_path: str | os.PathLike | None = None,
    on_epoch: Callable[[int], None] | None = None,
) -> list[Checkpoint]:
    """Train one model per seed; batched when the architecture allows it.

    Parameters
    ----------
    data : Dataset
    spec : str
        Architecture spec, e.g. ``784-100-100-10``.
    seeds : sequence of int
    act, reg, batchnorm
        As in :func:`prune_info.training.loop.train_model`.
    config : TrainConfig, optional
        Shared settings; its ``seed`` is replaced by each seed.
    device : str or torch.device
    progress : bool
    batched : bool
        Train as one :class:`StackedMLP` (default) or seed after seed.
    state_path : path, optional
        Resumable training state (batched only), see :func:`train_stacked`.
    on_epoch : callable, optional
        Passed on to :func:`train_stacked`.

    Returns
    -------
    list of Checkpoint
        One per seed, in the order of ``seeds``, as :func:`~prune_info.training.loop.train_model`
        makes
        them (``metrics["trained"]`` says ``"batched"`` for stacked training).

    Examples
    --------
    >>> from prune_info.data import load_dataset
    >>> ckpts = train_seeds(load_dataset("digits"), "64-16-10", [0, 1, 2],
    ...                     config=TrainConfig(epochs=1), progress=False)
    >>> [c.seed for c in ckpts]
    [0, 1, 2]
    """
    config = config or TrainConfig()
    config.validate()
    seeds = [int(s) for s in seeds]
    if len(set(seeds)) != len(seeds):
        raise PruneInfoError(f"seeds repeat in {seeds}; give each seed once")
    arch = parse_arch(spec, data.input_shape, data.n_classes, act, reg, batchnorm)
    if not batched or batchable(arch, config) is not None or not seeds:
        return [
            train_model(data, spec, act, reg,
                        TrainConfig(**{**config.to_dict(), "seed": s,
                                       "save_rewind_steps": tuple(config.save_rewind_steps)}),
                        batchnorm=batchnorm, device=device, progress=progress)
            for s in seeds
        ]
    stack = StackedMLP(arch, seeds)
    result = train_stacked(stack, data, config, device=device, progress=progress,
                           state_path=state_path, on_epoch=on_epoch)
    return [_checkpoint_for(stack, i, result, data, config, device) for i in range(len(seeds))]
