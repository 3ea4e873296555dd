"""Options and helpers shared by commands: parsing only, no computation."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import click

from prune_info.checkpoint import Checkpoint, data_for, load_checkpoint
from prune_info.data import DATASETS, Dataset, Samples, bounded, load_dataset, note
from prune_info.data.sources import NORMALIZE_HELP
from prune_info.errors import PruneInfoError
from prune_info.experiments.executor import EXECUTORS, Executor, LocalExecutor
from prune_info.io import check_writable, remove_stale_temporaries, to_json_text
from prune_info.pruning.budget import ALLOCATIONS_UNDER_TARGET
from prune_info.training.loop import MAX_SEED
from prune_info.zoo import ACTIVATIONS, REGULARISERS, parse_arch, parse_model_kwargs

DEVICES = click.Choice(["cpu", "cuda", "auto"])


def device_option(f: Callable) -> Callable:
    return click.option("--device", type=DEVICES, default="cpu", show_default=True,
                        help="Where to compute; auto picks CUDA when available.")(f)


def seed_option(f: Callable) -> Callable:
    return click.option("--seed", type=click.IntRange(min=0, max=MAX_SEED), default=0,
                        show_default=True,
                        help="Seed of every random choice.")(f)


def json_option(f: Callable) -> Callable:
    return click.option("--json", "as_json", is_flag=True,
                        help="Print machine-readable JSON instead of the table.")(f)


def model_kwargs_option(f: Callable) -> Callable:
    return click.option("--model-kwargs", "model_kwargs", default=None, metavar="K=V,...",
                        help="Keyword arguments of the --model factory, e.g. "
                             "num_classes=10,in_chans=1.")(f)


def input_shape_option(f: Callable) -> Callable:
    return click.option("--input-shape", "input_shape", default=None, metavar="C,H,W",
                        help="Input shape the model expects; the data are adapted to it "
                             "(channel repeat, bilinear resize), e.g. 3,32,32.")(f)


def executor_options(f: Callable) -> Callable:
    """``--executor local|ray`` and ``--ray-address`` of the multi-run commands."""
    f = click.option("--ray-address", default=None, metavar="ADDR",
                     help="Address of a running Ray cluster (e.g. 10.0.0.1:6379); default: "
                          "start a local one.")(f)
    return click.option("--executor", type=click.Choice(EXECUTORS), default="local",
                        show_default=True,
                        help="Where the units of work run: in this process, or as Ray tasks "
                             "(needs the extra: pip install 'prune-info[ray]').")(f)


def track_option(f: Callable) -> Callable:
    """``--track mlflow[:URI]``: log the finished run to an experiment tracker."""
    return click.option("--track", default=None, metavar="mlflow[:URI]",
                        help="Log the run's parameters, metrics and artefacts to MLflow: "
                             "./mlruns, or the URI given (a directory, file:, http(s)://); "
                             "needs the extra: pip install 'prune-info[mlflow]'.")(f)


def make_executor(name: str = "local", *, address: str | None = None) -> Executor:
    """The executor called ``name`` (one of ``EXECUTORS``); ``address`` is a Ray cluster's."""
    if name == "local":
        if address is not None:
            raise PruneInfoError("`ray_address` needs `executor`=ray")
        return LocalExecutor()
    if name == "ray":
        from prune_info.experiments.ray_executor import RayExecutor  # optional extra

        return RayExecutor(address=address)
    raise PruneInfoError(f"unknown `executor` {name!r}; choose one of {', '.join(EXECUTORS)}")


#: The forms ``--data`` takes, for its help.
DATA_METAVAR = "NAME|imagefolder:DIR|npz:FILE|PKG.MOD:FN"


def data_source_options(f: Callable, default: str | None = None,
                        help_text: str = "Dataset (default: the one the checkpoint records)."
                        ) -> Callable:
    """``--data``, ``--data-dir``, ``--workers`` and ``--normalize``: where samples come from."""
    f = click.option("--normalize", default=None, metavar="auto|imagenet|none|M,S",
                     help="Normalisation of images you bring (imagefolder, npz): "
                          f"{NORMALIZE_HELP} [default: auto, or the model's record].")(f)
    f = click.option("--workers", type=click.IntRange(min=0), default=0, show_default=True,
                     help="DataLoader worker processes reading a streamed source.")(f)
    f = click.option("--data-dir", type=click.Path(file_okay=False), default=None,
                     help="Where the files of fashion-mnist, mnist or cifar10 are, searched "
                          "alone (else $PRUNE_INFO_DATA, then the Debian FashionMNIST "
                          "directory).")(f)
    return click.option("--data", "data_name", default=default, metavar=DATA_METAVAR,
                        help=help_text + f" One of {', '.join(DATASETS)}, imagefolder:DIR, "
                             "npz:FILE or PKG.MODULE:FUNCTION[,K=V...] (your torch Dataset).")(f)


def data_options(f: Callable) -> Callable:
    """The data options of a command that reads a model (default: the checkpoint's data)."""
    return data_source_options(f)


@dataclass
class DataArgs:
    """The data options of a model command, opened against its checkpoint by :meth:`load`."""

    name: str | None
    data_dir: str | None
    workers: int = 0
    normalize: str | None = None
    trust_factory: bool = False

    def load(self, ckpt: Checkpoint) -> Dataset:
        """The data for ``ckpt`` (recorded or named), classes checked (:func:`data_for`)."""
        return data_for(ckpt, self.name, self.data_dir, workers=self.workers,
                        normalize=self.normalize, trust_factory=self.trust_factory)

    @property
    def given(self) -> bool:
        return self.name is not None


def target_options(f: Callable) -> Callable:
    """``--target``, ``--allocation`` and ``--latency-batch``: prune to a budget."""
    f = click.option("--latency-batch", type=click.IntRange(min=1), default=1,
                     show_default=True,
                     help="Batch size a latency= or speedup= target is timed at.")(f)
    f = click.option("--allocation", type=click.Choice(ALLOCATIONS_UNDER_TARGET), default=None,
                     help="How --target is met: uniform (one fraction for every layer), global "
                          "(one ranking across layers) or curves (each layer's ablation curve: "
                          "units go where they cost least accuracy per MAC or ms saved) "
                          "[default: uniform].")(f)
    return click.option("--target", default=None, metavar="KIND=VALUE",
                        help="Prune to a budget instead of an amount: macs=0.5 or macs=x2 "
                             "(share kept, or N times fewer), params=..., latency=MS (per "
                             "batch, PyTorch on --device), speedup=N.")(f)


def target_allocation(target: str | None, allocation: str | None, default: str) -> str:
    """The allocation a command runs: ``--allocation`` under ``--target``, else ``default``.

    Raises :class:`PruneInfoError` for ``--allocation`` without ``--target``.
    """
    if allocation is None:
        return "uniform" if target is not None and default == "layerwise" else default
    if target is None:
        raise PruneInfoError(f"--allocation {allocation} chooses how a --target is met; give "
                             "one, e.g. --target macs=x2")
    return allocation


def max_samples_option(f: Callable) -> Callable:
    """``--max-samples M``: work on the first M samples of the split (a deterministic subset)."""
    return click.option("--max-samples", type=int, default=None, metavar="M",
                        help="Use the first M samples of the split (a seeded, deterministic "
                             "subset) [default: all; a streamed source gives engines that "
                             "hold samples in memory at most 10,000].")(f)


def samples_of(split: Samples, max_samples: int | None, what: str) -> Samples:
    """``split`` itself, or its first ``max_samples`` (with a note when that cuts it)."""
    check_max_samples(max_samples)
    return split if max_samples is None else bounded(split, max_samples, what, note)


def check_max_samples(max_samples: int | None) -> None:
    """Refuse ``--max-samples`` below 1 before any work."""
    if max_samples is not None and max_samples < 1:
        raise PruneInfoError(f"--max-samples must be at least 1, got {max_samples}")


def model_options(f: Callable) -> Callable:
    """How to read a model file that is not a prune-info checkpoint."""
    f = trust_options(f)
    f = click.option("--state-dict-key", default=None, metavar="KEY",
                     help="Where a training checkpoint keeps the model's weights (e.g. "
                          "model, or ema.module); found by itself for the usual keys "
                          "(state_dict, model, model_state_dict, ...).")(f)
    f = allow_nonfinite_option(f)
    f = input_shape_option(f)
    f = model_kwargs_option(f)
    f = click.option("--model", "factory", default=None, metavar="PKG.MODULE:FN|timm:NAME",
                     help="Function building your nn.Module (torchvision.models:resnet18, "
                          "timm:vit_tiny_patch16_224), for a plain state_dict.")(f)
    f = click.option("--arch", "arch_spec", default=None, metavar="SPEC",
                     help="Architecture of a plain state_dict, e.g. 784-100-100-10.")(f)
    f = click.option("--act", type=click.Choice(list(ACTIVATIONS)), default="relu",
                     show_default=True, help="Activation of a plain state_dict's --arch.")(f)
    f = click.option("--reg", type=click.Choice(REGULARISERS), default="none",
                     show_default=True, help="Regularisation of a plain state_dict's --arch.")(f)
    return f


def trust_factory_option(f: Callable) -> Callable:
    return click.option("--trust-factory", is_flag=True,
                        help="Allow a checkpoint to build its model with the factory it "
                             "records even outside the known zoos (timm, torchvision.models); "
                             "runs that code.")(f)


def trust_options(f: Callable) -> Callable:
    """``--trust-pickle`` and ``--trust-factory``: the two ways a file may run code."""
    return click.option("--trust-pickle", is_flag=True,
                        help="Allow loading a whole pickled nn.Module (runs code from the "
                             "file).")(trust_factory_option(f))


def allow_nonfinite_option(f: Callable) -> Callable:
    return click.option("--allow-nonfinite", is_flag=True,
                        help="Use weights holding NaN or inf (refused by default), and keep "
                             "training when an epoch produces them.")(f)


def open_dataset(name: str, data_dir: str | None, *, seed: int = 0, workers: int = 0,
                 normalize: str | None = None, input_shape: str | None = None) -> Dataset:
    """A dataset named on the command line (to train on, or to compare models on)."""
    return load_dataset(name, data_dir, seed=seed, input_shape=parse_shape(input_shape),
                        normalize=normalize, workers=workers)


def parse_shape(text: str | None) -> tuple[int, ...] | None:
    """``"3,32,32"`` -> ``(3, 32, 32)``."""
    return None if text is None else tuple(parse_int_list(text, "--input-shape"))


def open_model(path: str, arch_spec: str | None, act: str, reg: str, factory: str | None,
               trust_pickle: bool, data: DataArgs,
               model_kwargs: str | None = None, input_shape: str | None = None,
               allow_nonfinite: bool = False, trust_factory: bool = False,
               state_dict_key: str | None = None) -> Checkpoint:
    """Load a checkpoint, a state_dict with --arch / --model, or a trusted pickle."""
    arch = None
    shape = parse_shape(input_shape)
    if model_kwargs is not None and factory is None:
        raise PruneInfoError("--model-kwargs are the arguments of --model; pass --model too")
    opened = None
    if arch_spec is not None:
        if data.name is None:
            raise PruneInfoError("--arch needs --data to know the input shape and classes")
        opened = open_dataset(data.name, data.data_dir, workers=data.workers,
                              normalize=data.normalize, input_shape=input_shape)
        arch = parse_arch(arch_spec, opened.input_shape, opened.n_classes, act, reg)
    ckpt = load_checkpoint(path, arch=arch, factory=factory,
                           factory_kwargs=(None if model_kwargs is None
                                           else parse_model_kwargs(model_kwargs)),
                           trust_pickle=trust_pickle, trust_factory=trust_factory,
                           allow_nonfinite=allow_nonfinite, state_dict_key=state_dict_key)
    if not ckpt.dataset and data.name is not None:
        opened = opened or open_dataset(data.name, data.data_dir, workers=data.workers,
                                        normalize=data.normalize, input_shape=input_shape)
        ckpt.dataset = opened.describe()
    elif not ckpt.dataset and shape is not None:  # data-free criteria need the shape only
        ckpt.dataset = {"input_shape": list(shape)}
    elif shape is not None:
        raise PruneInfoError("--input-shape is for a plain state_dict; the checkpoint records "
                             "the input shape it was trained on")
    return ckpt


def model_command_args(f: Callable) -> Callable:
    """Decorator bundling the model argument with its options into ``ckpt``.

    ``--allow-nonfinite`` is passed on to ``f`` too when it takes ``allow_nonfinite`` (a command
    that trains the model further).
    """
    takes_allow = "allow_nonfinite" in inspect.signature(f).parameters

    @functools.wraps(f)
    def wrapper(model_path, arch_spec, act, reg, factory, model_kwargs, input_shape,
                trust_pickle, trust_factory, allow_nonfinite, state_dict_key, **kwargs):
        data = DataArgs(kwargs.pop("data_name", None), kwargs.pop("data_dir", None),
                        kwargs.pop("workers", 0), kwargs.pop("normalize", None), trust_factory)
        ckpt = open_model(model_path, arch_spec, act, reg, factory, trust_pickle, data,
                          model_kwargs, input_shape, allow_nonfinite, trust_factory,
                          state_dict_key)
        if takes_allow:
            kwargs["allow_nonfinite"] = allow_nonfinite
        return f(ckpt=ckpt, data_args=data, **kwargs)

    with_options = model_options(wrapper)
    return click.argument("model_path", metavar="MODEL.pt", type=click.Path())(with_options)


def echo_json(data: dict, kind: str) -> None:
    click.echo(to_json_text(data, kind))


def parse_int_list(text: str, what: str, minimum: int = 1) -> list[int]:
    """``"1,32,256"`` -> ``[1, 32, 256]``, each at least ``minimum``."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise PruneInfoError(f"{what} must be comma-separated integers, got {text!r}") from None
    if not values or any(v < minimum for v in values):
        raise PruneInfoError(f"{what} must be integers of at least {minimum}, got {text!r}")
    return values


def parse_float_list(text: str, what: str) -> list[float]:
    """``"0.5,0.8"`` -> ``[0.5, 0.8]``."""
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise PruneInfoError(f"{what} must be comma-separated numbers, got {text!r}") from None
    if not values:
        raise PruneInfoError(f"{what} is empty")
    return values


def check_checkpoint_output(path: str, ckpt: Checkpoint) -> None:
    """:func:`check_output` for a command that writes the checkpoint it read, changed."""
    check_output(path, *([ckpt.source] if ckpt.source else []))
    check_rebuildable(ckpt)


def check_rebuildable(ckpt: Checkpoint) -> None:
    """Refuse, before any work, a model whose changed checkpoint could not be loaded again."""
    if not ckpt.rebuildable:
        raise PruneInfoError(
            f"{ckpt.source or 'the model'} is a pickled module, which records no architecture "
            "or factory, so the checkpoint written could not be loaded again: save "
            "torch.save(model.state_dict(), ...) and pass --model FACTORY (or --arch) instead")


def check_output(path: str, *inputs: str) -> None:
    """Refuse an output path that cannot be written, is a directory, or is one of the inputs.

    Checked before any work starts, so a long command never fails at the very end; the
    temporaries a killed earlier run left beside it are removed here.
    """
    out = Path(path)
    if path and out.is_dir():
        raise PruneInfoError(f"output {path} is a directory; give a file name")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise PruneInfoError(f"output directory {parent} does not exist; create it first")
    for given in inputs:
        if Path(given).exists() and out.exists() and out.resolve() == Path(given).resolve():
            raise PruneInfoError(f"output {path} is the input file; choose another output path")
    check_writable(path)  # as given: Path() would drop a trailing slash
    remove_stale_temporaries(out)
