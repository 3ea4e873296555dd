"""Training and evaluation on in-memory tensors.

Defaults follow Amjad et al. (Sec. V): RMSprop, learning rate 1e-3, momentum 0.01, batch 32,
weight decay 1e-4 for ``l2``. ``optimizer="sgd", lr=0.01`` gives the set-up of Clauw et al.
(Sec. 3.1). Models from a factory (torchvision, timm, your own) train by default as such models
usually do (:meth:`TrainConfig.for_factory_models`): SGD with momentum 0.9 and a cosine schedule,
weight decay 5e-4, batch 128, light augmentation (random 2-pixel shifts and horizontal flips).
The model kept is the epoch with the best *validation* accuracy; the test set is only evaluated
at the end, never used for selection.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from prune_info._torch import small_batch_threads
from prune_info.checkpoint import Checkpoint, check_finite
from prune_info.data import Dataset, Split
from prune_info.errors import PruneInfoError
from prune_info.io import cpu_state_dict
from prune_info.nn import accuracy, logits_of
from prune_info.training.freeze import FrozenEntries
from prune_info.zoo import build_factory_model, build_model, parse_arch

#: ``sgd`` is plain SGD (Clauw et al.); ``sgd-momentum`` uses ``momentum``.
OPTIMIZERS = ("rmsprop", "sgd", "sgd-momentum", "adam", "adamw")
#: Learning-rate schedules: constant, or cosine decay to 0 over all steps.
SCHEDULES = ("constant", "cosine")
#: Bounds of ``epochs`` and ``seed``: beyond them a number no longer fits the C integers of
#: torch's generators and the progress bar, and no run could finish anyway.
MAX_EPOCHS = 1_000_000
MAX_SEED = 2**32 - 1


@dataclass(frozen=True)
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
    schedule: str = "constant"
    augment: bool = False

    @classmethod
    def for_factory_models(cls, **changes: Any) -> TrainConfig:
        """The usual recipe for torchvision / timm classifiers, with ``changes`` applied."""
        recipe: dict[str, Any] = dict(epochs=10, batch_size=128, optimizer="sgd-momentum",
                                      lr=0.05, momentum=0.9, weight_decay=5e-4,
                                      schedule="cosine", augment=True)
        return cls(**{**recipe, **changes})

    def validate(self) -> None:
        if not 1 <= self.epochs <= MAX_EPOCHS:
            raise PruneInfoError(f"`epochs` must be between 1 and {MAX_EPOCHS:,}, got "
                                 f"{self.epochs}")
        if not 0 <= self.seed <= MAX_SEED:
            raise PruneInfoError(f"`seed` must be between 0 and {MAX_SEED} (2**32 - 1), got "
                                 f"{self.seed}")
        if self.batch_size < 1:
            raise PruneInfoError(f"`batch_size` must be at least 1, got {self.batch_size}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise PruneInfoError(f"`lr` must be a positive finite number, got {self.lr}")
        if self.optimizer not in OPTIMIZERS:
            raise PruneInfoError(
                f"unknown optimizer {self.optimizer!r}; choose one of: {', '.join(OPTIMIZERS)}"
            )
        if any(k < 0 for k in self.save_rewind_steps):
            raise PruneInfoError("`save_rewind_steps` must be 0 or more")
        if self.schedule not in SCHEDULES:
            raise PruneInfoError(
                f"unknown `schedule` {self.schedule!r}; choose one of: {', '.join(SCHEDULES)}"
            )

    def to_dict(self) -> dict:
        out = asdict(self)
        out["save_rewind_steps"] = list(self.save_rewind_steps)
        return out

    def settings(self, always: Sequence[str]) -> dict[str, Any]:
        """The fields ``always`` names, then every other one that differs from its default: how
        a config containing this one records it (flat, and unchanged while the rest keep
        their defaults).

        >>> TrainConfig(epochs=3, momentum=0.9).settings(("epochs", "lr"))
        {'epochs': 3, 'lr': 0.001, 'momentum': 0.9}
        """
        default, mine = TrainConfig().to_dict(), self.to_dict()
        return {**{k: mine[k] for k in always},
                **{k: v for k, v in mine.items() if k not in always and v != default[k]}}


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
    if config.optimizer == "sgd-momentum":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum,
                               weight_decay=weight_decay)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=weight_decay)
    return torch.optim.Adam(params, lr=config.lr, weight_decay=weight_decay)


def augment_batch(x: torch.Tensor, generator: torch.Generator, shift: int = 2) -> torch.Tensor:
    """Random shifts of up to ``shift`` pixels (zero padding) and horizontal flips, per sample.

    The light augmentation usual for small images; ``generator`` (on the CPU) decides everything.
    Inputs that are not image batches ``[N, C, H, W]`` are returned as they are.
    """
    if x.dim() != 4:
        return x
    n, _, h, w = x.shape
    offsets = torch.randint(0, 2 * shift + 1, (2, n), generator=generator).to(x.device)
    flips = (torch.rand(n, generator=generator) < 0.5).to(x.device)
    padded = torch.nn.functional.pad(x, (shift, shift, shift, shift))
    rows = (offsets[0][:, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (offsets[1][:, None] + torch.arange(w, device=x.device))[:, None, None, :]
    index = torch.arange(n, device=x.device)[:, None, None, None]
    channels = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
    shifted = padded[index, channels, rows, cols]
    return torch.where(flips[:, None, None, None], shifted.flip(3), shifted)


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
    allow_nonfinite: bool = False,
    trainable: Mapping[str, torch.Tensor] | None = None,
) -> TrainResult:
    """Train ``model`` on ``data.train``, keep the epoch with the best validation accuracy.

    The model is left holding the best weights. ``params`` restricts which parameters the
    optimiser updates; ``after_step`` runs after every optimiser step (e.g. to re-apply masks).
    ``trainable`` maps parameter names to bool masks (``True`` = trained): the other entries
    stay bit-identical to their values at the start (see
    :class:`prune_info.training.freeze.FrozenEntries`).
    Determinism: initialisation is the caller's; shuffling and dropout are seeded from
    ``config.seed``, so the same seed on the same machine gives the same weights. After every
    epoch the weights are checked for NaN and infinity (a diverged run stops there, naming the
    epoch) unless ``allow_nonfinite``.
    """
    config.validate()
    if len(data.train) == 0 or len(data.val) == 0:
        raise PruneInfoError("training needs non-empty train and validation splits")
    device = torch.device(device)
    torch.manual_seed(config.seed)  # dropout masks
    shuffle = torch.Generator().manual_seed(config.seed)
    model.to(device)
    freeze = (FrozenEntries(dict(model.named_parameters()), trainable)
              if trainable else None)
    result = TrainResult(best_epoch=0, best_val_acc=-1.0, init_state_dict=_state_copy(model))
    rewind_at = set(config.save_rewind_steps)
    if 0 in rewind_at:
        result.rewind_state_dicts[0] = _state_copy(model)
    optimiser = make_optimizer(
        params if params is not None else model.parameters(), config,
        weight_decay_for(reg, config),
    )
    total_steps = config.epochs * -(-len(data.train) // config.batch_size)
    beyond = [k for k in config.save_rewind_steps if k > total_steps]
    if beyond:  # refused before training, not after it
        raise PruneInfoError(
            f"`save_rewind_steps`={min(beyond)} is beyond the {total_steps} steps of training; "
            "choose a smaller step"
        )
    scheduler = (torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=total_steps)
                 if config.schedule == "cosine" else None)
    augment = torch.Generator().manual_seed(config.seed + 1) if config.augment else None
    loss_fn = nn.CrossEntropyLoss()
    # in memory: moved to the device once, shuffled there; streamed: batch by batch
    train = (Split(data.train.x.to(device), data.train.y.to(device))
             if isinstance(data.train, Split) else data.train)
    n, bs = len(data.train), config.batch_size
    best_state, step = _state_copy(model), 0
    bar = tqdm(range(1, config.epochs + 1), desc="train", unit="epoch", disable=not progress,
               leave=False)
    with small_batch_threads(device, bs):
        for epoch in bar:
            model.train()
            total = torch.zeros((), device=device)
            for xb, yb in train.epoch(bs, shuffle):
                optimiser.zero_grad(set_to_none=True)
                xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
                if augment is not None:
                    xb = augment_batch(xb, augment)
                loss = loss_fn(logits_of(model(xb)), yb)
                loss.backward()
                if freeze is not None:
                    freeze.mask_grads()
                optimiser.step()
                if freeze is not None:
                    freeze.restore()
                if scheduler is not None:
                    scheduler.step()
                if after_step is not None:
                    after_step()
                total += loss.detach() * len(yb)
                step += 1
                if step in rewind_at:
                    result.rewind_state_dicts[step] = _state_copy(model)
            if not allow_nonfinite:
                check_finite(model, f"training diverged: the model after epoch {epoch}",
                             "lower `lr`, or pass `allow_nonfinite` to keep going")
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
    spec: str | None = None,
    act: str = "relu",
    reg: str = "none",
    config: TrainConfig | None = None,
    batchnorm: bool | None = None,
    device: torch.device | str = "cpu",
    progress: bool = True,
    *,
    factory: str | None = None,
    factory_kwargs: dict[str, Any] | None = None,
    allow_nonfinite: bool = False,
) -> Checkpoint:
    """Build a model from ``spec`` (or ``factory``), train it on ``data``, return a checkpoint.

    ``spec`` is prune-info's MLP/CNN spec (``784-100-100-10``); ``factory`` a model factory
    (``torchvision.models:resnet18``, ``timm:vit_tiny_patch16_224``, ``pkg.mod:fn``) called with
    ``factory_kwargs``, whose checkpoint records both so that it rebuilds. The seed decides the
    initial weights, the shuffling, dropout and augmentation. Initial weights are kept, so
    lottery-ticket rewinding works for every model.

    Examples
    --------
    >>> from prune_info.data import load_dataset
    >>> cfg = TrainConfig(epochs=2)
    >>> ckpt = train_model(load_dataset("digits"), "64-32-10", config=cfg, progress=False)
    >>> ckpt.spec, ckpt.metrics["test_acc"] > 0.5, ckpt.init_state_dict is not None
    ('64-32-10', True, True)
    """
    if (spec is None) == (factory is None):
        raise PruneInfoError("give exactly one of `spec` (an MLP/CNN spec) and `factory`")
    config = config or (TrainConfig() if factory is None else TrainConfig.for_factory_models())
    config.validate()
    arch = None
    if factory is not None:
        torch.manual_seed(config.seed)
        model = build_factory_model(factory, factory_kwargs)
        check_model_takes(model, data)
    else:
        assert spec is not None  # exactly one of the two, checked above
        arch = parse_arch(spec, data.input_shape, data.n_classes, act, reg, batchnorm)
        torch.manual_seed(config.seed)
        model = build_model(arch)
    result = fit(model, data, config, reg=reg, device=device, progress=progress,
                 allow_nonfinite=allow_nonfinite)
    metrics = {
        "val_acc": result.best_val_acc,
        "test_acc": accuracy(model, data.test, device),
        "best_epoch": result.best_epoch,
        "history": result.history,
    }
    return Checkpoint(
        model=model.cpu(),
        arch=arch,
        factory=factory,
        factory_kwargs=dict(factory_kwargs or {}),
        dataset=data.describe(),
        train_config={**config.to_dict(), "weight_decay": weight_decay_for(reg, config)},
        metrics=metrics,
        seed=config.seed,
        init_state_dict=result.init_state_dict,
        rewind_state_dicts=result.rewind_state_dicts,
    )


@torch.no_grad()
def check_model_takes(model: nn.Module, data: Dataset) -> None:
    """Refuse, with the fix, a model that cannot take the data's samples or classes."""
    was_training = model.training
    model.eval()
    try:
        out = logits_of(model(data.train.head(2).x))
    except Exception as exc:  # the user's model: any failure is a mismatch to explain
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise PruneInfoError(
            f"the model cannot take {data.name} samples of shape "
            f"{'x'.join(map(str, data.input_shape))} ({type(exc).__name__}: {detail}); fix: "
            "adapt the data with `input_shape` (e.g. 3,32,32: channels repeated, images "
            "resized) or build the model for them with `factory_kwargs` (e.g. in_chans=1)"
        ) from exc
    finally:
        model.train(was_training)
    if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[1] != data.n_classes:
        got = list(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise PruneInfoError(
            f"the model gives outputs {got} for a batch of 2 but {data.name} has "
            f"{data.n_classes} classes; fix: pass num_classes={data.n_classes} in "
            "`factory_kwargs`"
        )
