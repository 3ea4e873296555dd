"""Training and evaluation on in-memory tensors.

Defaults follow Amjad et al. (Sec. V): RMSprop, learning rate 1e-3, momentum 0.01, batch 32,
weight decay 1e-4 for ``l2``. ``optimizer="sgd", lr=0.01`` gives the set-up of Clauw et al.
(Sec. 3.1). The model kept is the epoch with the best *validation* accuracy; the test set is only
evaluated at the end, never used for selection.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import torch
from torch import nn
from tqdm.auto import tqdm

from prune_info.data import Dataset
from prune_info.errors import PruneInfoError
from prune_info.io import cpu_state_dict

if TYPE_CHECKING:
    from prune_info.checkpoint import Checkpoint
from prune_info._torch import small_batch_threads
from prune_info.checkpoint import Checkpoint
from prune_info.nn import accuracy
from prune_info.zoo import build_model, parse_arch

OPTIMIZERS = ("rmsprop", "sgd", "adam")


@dataclass
class TrainConfig:
    """Optimisation settings; ``weight_decay=None`` means 1e-4 for ``l2`` and 0 otherwise."""

    epochs: int = 20
    batch_size: int = 32
    optimizer: str = "rmsprop"
    lr: float = 1e-3
    momentum: float = 0.01
    weight_decay: float | None = None
    seed: int = 0
    save_rewind_steps: tuple[int, ...] = ()

    def validate(self) -> None:
        if self.epochs < 1:
            raise PruneInfoError(f"`epochs` must be at least 1, got {self.epochs}")
        if self.batch_size < 1:
            raise PruneInfoError(f"`batch_size` must be at least 1, got {self.batch_size}")
        if not self.lr > 0:
            raise PruneInfoError(f"`lr` must be positive, got {self.lr}")
        if self.optimizer not in OPTIMIZERS:
            raise PruneInfoError(
                f"unknown optimizer {self.optimizer!r}; choose one of: {', '.join(OPTIMIZERS)}"
            )
        if any(k < 0 for k in self.save_rewind_steps):
            raise PruneInfoError("`save_rewind_steps` must be 0 or more")

    def to_dict(self) -> dict:
        out = asdict(self)
        out["save_rewind_steps"] = list(self.save_rewind_steps)
        return out


@dataclass
class TrainResult:
    """What training produced: best-on-validation weights and the curve that led there."""

    best_epoch: int
    best_val_acc: float
    history: list[dict] = field(default_factory=list)
    init_state_dict: dict = field(default_factory=dict)
    rewind_state_dicts: dict[int, dict] = field(default_factory=dict)


def weight_decay_for(reg: str, config: TrainConfig) -> float:
    if config.weight_decay is not None:
        return config.weight_decay
    return 1e-4 if reg == "l2" else 0.0


def make_optimizer(params, config: TrainConfig, weight_decay: float) -> torch.optim.Optimizer:
    if config.optimizer == "rmsprop":
        return torch.optim.RMSprop(
            params, lr=config.lr, momentum=config.momentum, weight_decay=weight_decay
        )
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, weight_decay=weight_decay)
    return torch.optim.Adam(params, lr=config.lr, weight_decay=weight_decay)


def _state_copy(model: nn.Module) -> dict:
    return cpu_state_dict(model.state_dict())


def fit(
    model: nn.Module,
    data: Dataset,
    config: TrainConfig,
    reg: str = "none",
    device: torch.device | str = "cpu",
    progress: bool = True,
    params: list[nn.Parameter] | None = None,
    after_step: Callable[[], None] | None = None,
) -> TrainResult:
    """Train ``model`` on ``data.train``, keep the epoch with the best validation accuracy.

    The model is left holding the best weights. ``params`` restricts which parameters the
    optimiser updates; ``after_step`` runs after every optimiser step (e.g. to re-apply masks).
    Determinism: initialisation is the caller's; shuffling and dropout are seeded from
    ``config.seed``, so the same seed on the same machine gives the same weights.
    """
    config.validate()
    if len(data.train) == 0 or len(data.val) == 0:
        raise PruneInfoError("training needs non-empty train and validation splits")
    device = torch.device(device)
    torch.manual_seed(config.seed)  # dropout masks
    shuffle = torch.Generator().manual_seed(config.seed)
    model.to(device)
    result = TrainResult(best_epoch=0, best_val_acc=-1.0, init_state_dict=_state_copy(model))
    rewind_at = set(config.save_rewind_steps)
    if 0 in rewind_at:
        result.rewind_state_dicts[0] = _state_copy(model)
    optimiser = make_optimizer(
        params if params is not None else model.parameters(), config,
        weight_decay_for(reg, config),
    )
    loss_fn = nn.CrossEntropyLoss()
    x_all, y_all = data.train.x.to(device), data.train.y.to(device)
    n, bs = len(data.train), config.batch_size
    best_state, step = _state_copy(model), 0
    bar = tqdm(range(1, config.epochs + 1), desc="train", unit="epoch", disable=not progress,
               leave=False)
    with small_batch_threads(device, bs):
        for epoch in bar:
            model.train()
            perm = torch.randperm(n, generator=shuffle).to(device)
            xs, ys = x_all[perm], y_all[perm]  # one gather per epoch; batches are views
            total = torch.zeros((), device=device)
            for start in range(0, n, bs):
                optimiser.zero_grad(set_to_none=True)
                loss = loss_fn(model(xs[start : start + bs]), ys[start : start + bs])
                loss.backward()
                optimiser.step()
                if after_step is not None:
                    after_step()
                total += loss.detach() * min(bs, n - start)
                step += 1
                if step in rewind_at:
                    result.rewind_state_dicts[step] = _state_copy(model)
            val_acc = accuracy(model, data.val, device)
            train_loss = float(total) / n
            result.history.append({"epoch": epoch, "train_loss": train_loss, "val_acc": val_acc})
            bar.set_postfix(loss=f"{train_loss:.4f}", val_acc=f"{val_acc:.4f}")
            if val_acc > result.best_val_acc:
                result.best_epoch, result.best_val_acc = epoch, val_acc
                best_state = _state_copy(model)
    missing = rewind_at - set(result.rewind_state_dicts)
    if missing:
        raise PruneInfoError(
            f"`save_rewind_steps`={min(missing)} is beyond the {step} steps of training; "
            "choose a smaller step"
        )
    model.load_state_dict(best_state)
    model.eval()
    return result


def train_model(
    data: Dataset,
    spec: str,
    act: str = "relu",
    reg: str = "none",
    config: TrainConfig | None = None,
    batchnorm: bool | None = None,
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> Checkpoint:
    """Build a model from ``spec``, train it on ``data`` and return a complete checkpoint.

    Examples
    --------
    >>> from prune_info.data import load_dataset
    >>> cfg = TrainConfig(epochs=2)
    >>> ckpt = train_model(load_dataset("digits"), "64-32-10", config=cfg)  # doctest: +SKIP
    >>> ckpt.spec, round(ckpt.metrics["test_acc"], 2)                    # doctest: +SKIP
    ('64-32-10', 0.93)
    """
    config = config or TrainConfig()
    config.validate()
    arch = parse_arch(spec, data.input_shape, data.n_classes, act, reg, batchnorm)
    torch.manual_seed(config.seed)
    model = build_model(arch)
    result = fit(model, data, config, reg=reg, device=device, progress=progress)
    metrics = {
        "val_acc": result.best_val_acc,
        "test_acc": accuracy(model, data.test, device),
        "best_epoch": result.best_epoch,
        "history": result.history,
    }
    return Checkpoint(
        model=model.cpu(),
        arch=arch,
        dataset=data.describe(),
        train_config={**config.to_dict(), "weight_decay": weight_decay_for(reg, config)},
        metrics=metrics,
        seed=config.seed,
        init_state_dict=result.init_state_dict,
        rewind_state_dicts=result.rewind_state_dicts,
    )
