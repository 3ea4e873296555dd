"""Self-describing checkpoints that load safely.

A prune-info checkpoint is one ``torch.save`` file holding a plain dict (no pickled classes), so
it loads with ``torch.load(weights_only=True)``::

    {
      "format": "prune-info-checkpoint", "format_version": 1,
      "arch": {...} or None,            # see prune_info.zoo.parse_arch; None for a factory
      "factory": "pkg.mod:fn" or None,  # how a user model is rebuilt (or "timm:NAME")
      "factory_kwargs": {...},          # keyword arguments of the factory, plain values
      "state_dict": {...}, "init_state_dict": {...} or None,
      "rewind_state_dicts": {"K": {...}},   # weights after K training steps, when saved
      "train_config": {...}, "dataset": {...}, "metrics": {...}, "seed": int or None,
      "pruning_history": [...],
    }

What else a user may bring (see :func:`load_checkpoint`): a plain ``state_dict`` together with
``arch`` or ``factory``; a whole pickled ``nn.Module`` only with ``trust_pickle=True``, because
unpickling runs arbitrary code.
"""

from __future__ import annotations

import copy
import os
import pickle
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from prune_info.data import (
    Dataset,
    load_dataset,
    load_dataset_like,
    match_classes,
    note,
    parse_data_spec,
    recorded_classes,
)
from prune_info.errors import PruneInfoError, malformed
from prune_info.io import atomic_write, cpu_state_dict
from prune_info.nn import LayerInfo, prunable_layers
from prune_info.surgery import replay_history
from prune_info.zoo import (
    arch_spec,
    authorise_recorded_factory,
    build_factory_model,
    build_model,
    factory_spec,
)

CHECKPOINT_FORMAT = "prune-info-checkpoint"
CHECKPOINT_VERSION = 1


@dataclass
class Checkpoint:
    """A model together with everything known about how it was made."""

    model: nn.Module
    arch: dict | None = None
    factory: str | None = None
    factory_kwargs: dict = field(default_factory=dict)
    dataset: dict = field(default_factory=dict)
    train_config: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    seed: int | None = None
    init_state_dict: dict | None = None
    rewind_state_dicts: dict = field(default_factory=dict)
    pruning_history: list = field(default_factory=list)
    source: str | None = None

    @property
    def layers(self) -> list[LayerInfo]:
        return prunable_layers(self.model)

    @property
    def rebuildable(self) -> bool:
        """Whether a load can build the model again: it records an architecture or a factory."""
        return self.arch is not None or bool(self.factory)

    @property
    def dataset_name(self) -> str | None:
        return self.dataset.get("name")

    @property
    def spec(self) -> str:
        """Architecture spec reflecting the current widths, or the factory for user models."""
        if self.arch is not None:
            return arch_spec(self.arch)
        widths = "-".join(str(layer.n_units) for layer in self.layers)
        name = factory_spec(self.factory, self.factory_kwargs) if self.factory else "custom"
        return f"{name} [{widths}]"

    def replace(self, **changes: Any) -> Checkpoint:
        return replace(self, **changes)

    def to_dict(self) -> dict:
        return {
            "format": CHECKPOINT_FORMAT,
            "format_version": CHECKPOINT_VERSION,
            "arch": self.arch,
            "factory": self.factory,
            "factory_kwargs": self.factory_kwargs,
            "state_dict": cpu_state_dict(self.model.state_dict()),
            "init_state_dict": self.init_state_dict,
            "rewind_state_dicts": {str(k): v for k, v in self.rewind_state_dicts.items()},
            "train_config": self.train_config,
            "dataset": self.dataset,
            "metrics": self.metrics,
            "seed": self.seed,
            "pruning_history": self.pruning_history,
        }


def as_checkpoint(model: Any) -> Checkpoint:
    """``model`` as a :class:`Checkpoint`: a checkpoint as it is, an ``nn.Module`` wrapped (it
    then records no architecture or factory, so it prunes and trains but cannot be saved:
    build ``Checkpoint(model, factory=...)`` for that)."""
    if isinstance(model, Checkpoint):
        return model
    if isinstance(model, nn.Module):
        return Checkpoint(model=model)
    raise PruneInfoError(
        f"`model` must be an nn.Module or a Checkpoint, got {type(model).__name__}")


def check_savable(ckpt: Checkpoint) -> None:
    """Refuse a checkpoint that no load could rebuild: one whose model records neither an
    architecture nor a factory (a bare ``Checkpoint(model)``, or a model unpickled whole)."""
    if not ckpt.rebuildable:
        raise PruneInfoError(
            "the checkpoint records neither an architecture nor a factory, so its file could "
            "not be loaded again: build it as Checkpoint(model, factory='package.module:function', "
            "factory_kwargs={...}) naming the function that builds the model")


def save_checkpoint(ckpt: Checkpoint, path: str | os.PathLike) -> None:
    """Write a checkpoint atomically (temporary file, then rename); refused when the file
    could not be loaded again (:func:`check_savable`)."""
    check_savable(ckpt)
    with atomic_write(path) as tmp:
        torch.save(ckpt.to_dict(), tmp)


def _read(path: Path, trust_pickle: bool) -> Any:
    if not path.exists():
        raise PruneInfoError(f"{path}: no such file; check the path")
    if path.is_dir():
        raise PruneInfoError(f"{path} is a directory; give the checkpoint file inside it")
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except OSError as exc:
        raise PruneInfoError(f"cannot read {path}: {exc.strerror}; check its permissions") from exc
    if not head:
        raise malformed(path, "truncated or corrupt: the file is empty", RECREATE)
    if not (head.startswith(b"PK") or head.startswith(b"\x80")):
        # neither a torch zip archive nor a legacy pickle
        raise PruneInfoError(
            f"{path} is not a PyTorch checkpoint; give a file saved by prune-info train or "
            "torch.save(model.state_dict(), ...)"
        )
    try:
        return quiet_torch_load(path, weights_only=True)
    except pickle.UnpicklingError as exc:
        reason = _unpickler_reason(exc)
        if not _needs_full_unpickler(reason):
            raise malformed(path, f"it does not unpickle: {reason}", RECREATE) from exc
        if not trust_pickle:
            raise PruneInfoError(
                f"{path} holds pickled Python objects (e.g. a whole nn.Module); unpickling runs "
                "arbitrary code, so it is refused. If you trust the file, pass `trust_pickle`; "
                "better, save model.state_dict() and pass `arch` or `factory`"
            ) from exc
        return _trusted_load(path)
    except Exception as exc:  # noqa: BLE001 - a parser of the file's bytes: any failure is the file's
        raise malformed(path, f"truncated or corrupt: {_first_line(exc)}", RECREATE) from exc


def quiet_torch_load(path: str | os.PathLike, *, weights_only: bool = True) -> Any:
    """``torch.load`` on CPU without the warnings torch prints about the file's bytes.

    On a foreign or corrupt file torch warns before it fails (for instance "Detected pickle
    protocol 34 in the checkpoint"); the failure becomes one :class:`PruneInfoError` line and
    the warning would only stand in front of it. Warnings of a load that succeeds are about the
    file's encoding, not about anything the user can act on, so they are dropped too.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.load(path, map_location="cpu", weights_only=weights_only)


def _unpickler_reason(exc: BaseException) -> str:
    """What torch's weights-only unpickler objected to, without its page of advice."""
    text = str(exc)
    if "WeightsUnpickler error:" in text:
        text = text.split("WeightsUnpickler error:", 1)[1]
    return _first_line(text)


def _needs_full_unpickler(reason: str) -> bool:
    """Whether the weights-only unpickler stopped at a class it may not build (a pickled
    module, say) rather than at bytes that are no pickle at all (``Unsupported operand``)."""
    lowered = reason.lower()
    return "global" in lowered or "allowlisted" in lowered


#: The fix every malformed checkpoint names.
RECREATE = ("re-create it with prune-info train, or save torch.save(model.state_dict(), ...) "
            "and pass `arch` or `factory`")


def _first_line(exc: BaseException | str, limit: int = 200) -> str:
    """The first sentence of a message (torch's run on with advice), at most ``limit`` chars."""
    text = str(exc).strip()
    line = next((part.strip() for part in text.splitlines() if part.strip()), "")
    if not line:
        return type(exc).__name__ if isinstance(exc, BaseException) else "no detail"
    line = line.split(". ", 1)[0].rstrip(".")
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _trusted_load(path: Path) -> Any:
    """Unpickle a whole file (``trust_pickle``): any failure is the file's, not a bug."""
    try:
        return quiet_torch_load(path, weights_only=False)
    except Exception as exc:  # noqa: BLE001 - unpickling runs the file's code; it may raise anything
        raise malformed(path, f"it does not unpickle: {type(exc).__name__}: {_first_line(exc)}",
                        RECREATE) from exc


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
    )


def _load_state(model: nn.Module, state: dict, what: str) -> None:
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).splitlines()[1].strip() if "\n" in str(exc) else str(exc)
        head, sep, keys = first.partition(": ")
        listed = keys.rstrip(". ").split(", ")
        if head.endswith("key(s) in state_dict") and len(listed) > 3:
            # a list of missing / unexpected keys runs to hundreds of names on a real model
            first = f"{head}: {', '.join(listed[:3])} and {len(listed) - 3} more"
        raise PruneInfoError(
            f"the weights do not fit {what}: {first.rstrip('. ')}; check `arch` / `factory`"
        ) from exc


def load_checkpoint(
    path: str | os.PathLike,
    *,
    arch: dict | None = None,
    factory: str | None = None,
    factory_kwargs: dict | None = None,
    trust_pickle: bool = False,
    trust_factory: bool = False,
    allow_nonfinite: bool = False,
    state_dict_key: str | None = None,
) -> Checkpoint:
    """Load a prune-info checkpoint, a plain state_dict, or (opt-in) a pickled module.

    A training checkpoint that wraps the weights (``{"model": state_dict, "epoch": ...,
    "optimizer": ...}``, Lightning's ``state_dict`` with ``model.`` before every key,
    DataParallel's ``module.``) is unwrapped, with a note; ``state_dict_key`` names the key
    when it is none of the usual ones.

    A file never chooses the code that runs: a checkpoint that records a ``factory`` outside the
    known model zoos (:func:`prune_info.zoo.zoo_builder`) is refused unless the caller names
    that factory again (``factory``) or passes ``trust_factory``; a pickled module needs
    ``trust_pickle``.

    Parameters
    ----------
    path : path
        The file.
    arch : dict, optional
        Architecture (from :func:`prune_info.zoo.parse_arch`) for a plain state_dict.
    factory : str, optional
        ``package.module:function`` (or ``timm:NAME``) building the user's ``nn.Module``, for a
        plain state_dict (see :func:`prune_info.zoo.build_factory_model`); for a checkpoint that
        records a factory, naming the same one allows it to run.
    factory_kwargs : dict, optional
        Keyword arguments of ``factory`` (plain state_dict only).
    trust_pickle : bool
        Allow unpickling a whole ``nn.Module`` (runs arbitrary code from the file).
    trust_factory : bool
        Allow a checkpoint to build its model with any factory it records.
    allow_nonfinite : bool
        Load weights holding NaN or infinity; by default such a file is refused (see
        :func:`check_finite`).
    state_dict_key : str, optional
        Where a training checkpoint keeps the weights (dotted for nesting: ``ema.module``).
    """
    ckpt = _load(Path(path), arch, factory, factory_kwargs, trust_pickle, trust_factory,
                 state_dict_key)
    if not allow_nonfinite:
        check_finite(ckpt.model, str(path))
    return ckpt


def nonfinite_tensors(model: nn.Module) -> list[str]:
    """Names of the parameters and buffers of ``model`` holding NaN or infinity."""
    named = [*model.named_parameters(), *model.named_buffers()]
    return [name for name, t in named
            if t.is_floating_point() and not bool(torch.isfinite(t).all())]


def check_finite(model: nn.Module, what: str, fix: str | None = None) -> None:
    """Refuse a model whose weights hold NaN or infinity (a diverged training, a broken file).

    ``what`` names the model in the message; ``fix`` replaces the default advice. Every place
    that takes weights in (checkpoint loading, each training epoch) calls this; the escape is
    ``allow_nonfinite``.
    """
    bad = nonfinite_tensors(model)
    if bad:
        shown = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
        raise PruneInfoError(
            f"{what} holds non-finite weights (NaN or inf in {shown}); "
            + (fix or "re-create it, or pass `allow_nonfinite` to use it anyway")
        )


def _load(path: Path, arch: dict | None, factory: str | None, factory_kwargs: dict | None,
          trust_pickle: bool, trust_factory: bool, state_dict_key: str | None = None
          ) -> Checkpoint:
    obj = _read(path, trust_pickle)
    recorded = isinstance(obj, nn.Module) or (isinstance(obj, dict)
                                              and obj.get("format") == CHECKPOINT_FORMAT)
    names_its_factory = (factory is not None and arch is None and not factory_kwargs
                         and isinstance(obj, dict) and bool(obj.get("factory")))
    if recorded and (arch is not None or factory is not None) and not names_its_factory:
        given = "`arch`" if arch is not None else "`factory`"
        kind = "pickled model" if isinstance(obj, nn.Module) else "prune-info checkpoint"
        raise PruneInfoError(f"{path} is a {kind}, which carries its own architecture; {given} "
                             "is for a plain state_dict only: leave it out")
    if isinstance(obj, nn.Module):
        obj.eval()
        return Checkpoint(model=obj, source=str(path))
    if isinstance(obj, dict) and obj.get("format") == CHECKPOINT_FORMAT:
        return _from_dict(obj, path, factory, trust_factory)
    state = _unwrap(obj, state_dict_key, path)
    if state is not None:
        model: nn.Module
        if arch is not None:
            model = build_model(arch)
            _load_state(model, _strip_prefix(state, model, path), f"`arch`={arch_spec(arch)}")
        elif factory is not None:
            model = build_factory_model(factory, factory_kwargs)
            _load_state(model, _strip_prefix(state, model, path),
                        f"`factory`={factory_spec(factory, factory_kwargs)}")
        else:
            raise PruneInfoError(
                f"{path} is a plain state_dict with no architecture; pass `arch` (see "
                "prune_info.zoo.parse_arch) or `factory`=package.module:factory"
            )
        model.eval()
        return Checkpoint(model=model, arch=arch, factory=factory,
                          factory_kwargs=dict(factory_kwargs or {}), source=str(path))
    raise PruneInfoError(
        f"{path} is not a prune-info checkpoint or a state_dict; give a file saved by "
        "prune-info train or torch.save(model.state_dict(), ...)"
    )


#: Keys under which training scripts keep a model's weights (PyTorch Lightning: state_dict; the
#: ImageNet example and many others: state_dict or model; others: model_state_dict, net), in the
#: order they are tried.
WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "net", "network", "module")


def _unwrap(obj: Any, key: str | None, path: Path) -> dict | None:
    """The state_dict in ``obj``: ``obj`` itself, the one under ``key`` (dotted for nesting), or
    the one under the first of :data:`WRAPPER_KEYS` that holds one (with a note)."""
    if key is not None:
        node = obj
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                keys = ", ".join(map(str, obj)) if isinstance(obj, dict) else type(obj).__name__
                raise PruneInfoError(f"{path} has no `state_dict_key` {key!r} (its keys: "
                                     f"{keys[:200]}); name the key that holds the weights")
            node = node[part]
        if not _is_state_dict(node):
            raise PruneInfoError(f"{path}: `state_dict_key` {key!r} holds a "
                                 f"{type(node).__name__}, not a state_dict of tensors")
        return node
    if _is_state_dict(obj):
        return obj
    if not isinstance(obj, dict) or obj.get("format") == CHECKPOINT_FORMAT:
        return None
    for wrapper in WRAPPER_KEYS:
        if _is_state_dict(obj.get(wrapper)):
            others = [str(k) for k in obj if k != wrapper]
            note(f"{path} is a training checkpoint: took the weights under {wrapper!r}"
                 + (f" (it also holds {', '.join(others[:5])})" if others else "")
                 + "; name another with `state_dict_key`")
            return obj[wrapper]
    return None


#: Prefixes wrappers add to every key: DataParallel / DistributedDataParallel, Lightning,
#: torch.compile.
_KEY_PREFIXES = ("module.", "model.", "_orig_mod.")


def _strip_prefix(state: dict, model: nn.Module, path: Path) -> dict:
    """``state`` without a prefix that every one of its keys has and the model's keys lack."""
    wanted = set(model.state_dict())
    for _ in range(len(_KEY_PREFIXES)):
        if set(state) == wanted:
            break
        prefix = next((p for p in _KEY_PREFIXES if all(k.startswith(p) for k in state)
                       and not all(k.startswith(p) for k in wanted)), None)
        if prefix is None:
            break
        note(f"{path}: its weights' names start with {prefix!r} (a training wrapper's); taken "
             "off")
        state = {k[len(prefix):]: v for k, v in state.items()}
    return state


def _from_dict(obj: dict, path: Path, named_factory: str | None,
               trust_factory: bool) -> Checkpoint:
    version = obj.get("format_version")
    if version != CHECKPOINT_VERSION:
        raise PruneInfoError(
            f"{path} has checkpoint format version {version}; this prune-info reads version "
            f"{CHECKPOINT_VERSION}; upgrade prune-info"
        )
    if not _is_state_dict(obj.get("state_dict")):
        raise malformed(path, "no `state_dict` of tensors", RECREATE)
    _check_fields(obj, path)
    try:
        return _decode(obj, path, named_factory, trust_factory)
    except PruneInfoError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        # a dict that claims the format but lacks or mistypes a field (e.g. an arch of only
        # {"kind": "mlp"}): the file's fault, reported as such
        what = f"missing field {exc}" if isinstance(exc, KeyError) else _first_line(exc)
        raise malformed(path, f"checkpoint fields: {what}", RECREATE) from exc


# What a checkpoint's plain-data fields must hold, where prune-info reads them: the type of each
# known key (a tuple: any of them; None allowed where listed). Unknown keys are kept as they are.
_NUMBER = (int, float)
_FIELDS: dict[str, dict[str, tuple]] = {
    "metrics": {"val_acc": (*_NUMBER, type(None)), "test_acc": (*_NUMBER, type(None)),
                "best_epoch": (int, type(None)), "train_seconds": _NUMBER,
                "history": (list,), "trained": (str,), "before_pruning": (dict,),
                "retrain": (dict,)},
    "train_config": {"epochs": (int,), "batch_size": (int,), "optimizer": (str,),
                     "lr": _NUMBER, "momentum": _NUMBER, "weight_decay": (*_NUMBER, type(None)),
                     "seed": (int,)},
    "dataset": {"name": (str,), "input_shape": (list,), "n_classes": (int,),
                "normalisation": (dict,), "split_seed": (int,), "sizes": (dict,),
                "native_input_shape": (list,), "classes": (list,)},
}


def _check_fields(obj: dict, path: Path) -> None:
    """Refuse a checkpoint whose plain-data fields have the wrong types (before any use)."""
    for field_name, known in _FIELDS.items():
        value = obj.get(field_name)
        if value is None:
            continue
        if not isinstance(value, dict):
            raise malformed(path, f"its {field_name} is a {type(value).__name__}, not a dict",
                            RECREATE)
        for key, types in known.items():
            if key in value and (not isinstance(value[key], types)
                                 or isinstance(value[key], bool) and bool not in types):
                raise malformed(path, f"its {field_name}.{key} is {value[key]!r}, not "
                                f"{' or '.join(t.__name__ for t in types)}", RECREATE)
    shape = (obj.get("dataset") or {}).get("input_shape")
    if shape is not None and not _positive_ints(shape):
        raise malformed(path, f"its dataset.input_shape {shape!r} is not positive integers",
                        RECREATE)
    seed = obj.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise malformed(path, f"its seed is {seed!r}, not an integer", RECREATE)
    history = obj.get("pruning_history")
    if history is not None and (not isinstance(history, list)
                                or not all(isinstance(e, dict) for e in history)):
        raise malformed(path, "its pruning_history is not a list of steps", RECREATE)
    rewinds = obj.get("rewind_state_dicts")
    if rewinds is not None and (not isinstance(rewinds, dict) or not all(
            str(k).isdigit() and _is_state_dict(v) for k, v in rewinds.items())):
        raise malformed(path, "its rewind_state_dicts are not {step: state_dict}", RECREATE)
    init = obj.get("init_state_dict")
    if init is not None and not _is_state_dict(init):
        raise malformed(path, "its init_state_dict is not a state_dict of tensors", RECREATE)


def _positive_ints(values: Any) -> bool:
    return isinstance(values, (list, tuple)) and all(
        isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values)


def _check_fits(model: nn.Module, state: dict, what: str, path: Path) -> None:
    """Refuse stored weights (initial, rewind) whose names or shapes are not the model's."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items()}
    if got != expected:
        wrong = sorted(set(got) ^ set(expected)) or sorted(
            k for k in got if got[k] != expected[k])
        raise malformed(path, f"its {what} do not fit the model (e.g. {wrong[0]})", RECREATE)


def _decode(obj: dict, path: Path, named_factory: str | None,
            trust_factory: bool) -> Checkpoint:
    history = list(obj.get("pruning_history") or [])
    model: nn.Module
    if obj.get("arch") is not None:
        try:
            model = build_model(obj["arch"])
        except PruneInfoError as exc:  # the record, not the user's spec: name the file
            raise malformed(path, f"its arch record: {str(exc).split(';')[0]}",
                            RECREATE) from exc
    elif obj.get("factory"):
        authorise_recorded_factory(obj["factory"], obj.get("factory_kwargs"), str(path),
                                   named=named_factory, trust=trust_factory)
        model = build_factory_model(obj["factory"], obj.get("factory_kwargs"))
        if history:
            # A user model is rebuilt by replaying its pruning on a fresh instance.

            replay_history(model, history)
    else:
        raise PruneInfoError(f"{path} records neither an architecture nor a factory; re-create it")
    _load_state(model, obj["state_dict"], str(path))
    if obj.get("init_state_dict") is not None:
        _check_fits(model, obj["init_state_dict"], "initial weights", path)
    for step, state in (obj.get("rewind_state_dicts") or {}).items():
        _check_fits(model, state, f"weights after step {step}", path)
    model.eval()
    return Checkpoint(
        model=model,
        arch=obj.get("arch"),
        factory=obj.get("factory"),
        factory_kwargs=dict(obj.get("factory_kwargs") or {}),
        dataset=dict(obj.get("dataset") or {}),
        train_config=dict(obj.get("train_config") or {}),
        metrics=dict(obj.get("metrics") or {}),
        seed=obj.get("seed"),
        init_state_dict=obj.get("init_state_dict"),
        rewind_state_dicts={int(k): v for k, v in (obj.get("rewind_state_dicts") or {}).items()},
        pruning_history=history,
        source=str(path),
    )


def data_for(ckpt: Checkpoint, name: str | None = None,
             data_dir: str | os.PathLike | None = None, *, workers: int = 0,
             normalize: str | Sequence[float] | None = None,
             trust_factory: bool = False) -> Dataset:
    """The data to evaluate a checkpoint's model on, its labels in the model's class order.

    Without ``name``, the dataset the checkpoint records, split, shaped and normalised as it was
    for training; with ``name`` (any ``--data`` source) that source, adapted to the model's input
    shape and, for images, normalised with the model's recorded statistics unless ``normalize``
    says otherwise. The classes are then checked (:func:`prune_info.data.match_classes`): the
    same names in another order are renumbered with a note, other names refused. A checkpoint
    that records no classes takes the data's, with a note when the data are not the ones it
    records. A checkpoint with no dataset record gets one (``ckpt.dataset``).
    """
    described = dict(ckpt.dataset or {})
    if name is None and not described.get("name"):
        raise PruneInfoError("the model does not record its dataset; pass `data`")
    if name is not None and normalize is None and described.get("normalisation"):
        normalize = _recorded_normalize(described, name)
    if described.get("name") or described.get("input_shape"):
        data = load_dataset_like(described if described.get("name") else
                                 {**described, "name": name}, data_dir, name=name,
                                 trust_factory=trust_factory, workers=workers,
                                 normalize=normalize)
    else:
        data = load_dataset(str(name), data_dir, workers=workers, normalize=normalize)
    classes = recorded_classes(described)
    if classes is None:
        if described.get("name") not in (None, data.name):
            note(f"{ckpt.source or 'the model'} records no class names; it is taken to number "
                 f"its outputs as {data.name} numbers its classes")
        ckpt.dataset = ({**described, "classes": list(data.classes)} if described.get("name")
                        else data.describe())
        return data
    return match_classes(data, classes, ckpt.source or "the model")


def _recorded_normalize(described: dict, name: str) -> str | list | None:
    """The model's own image statistics, to read other images of ``name`` as it was trained."""
    if parse_data_spec(name).kind == "builtin":
        return None  # a built-in standardises itself (bench re-expresses it in the record)
    norm = described.get("normalisation") or {}
    mean, std = norm.get("mean"), norm.get("std")
    if isinstance(mean, list) and isinstance(std, list) and len(mean) == len(std):
        return [*mean, *std]
    return None


def clone_model(model: nn.Module) -> nn.Module:
    """A deep copy of a model (the input checkpoint is never modified)."""
    return copy.deepcopy(model)
