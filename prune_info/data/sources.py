"""Where data come from: the one entry point :func:`load_dataset` and the sources it reads.

``--data`` (and ``load_dataset(spec)``) names a source:

``digits``, ``fashion-mnist``, ``mnist``, ``cifar10``
    The built-in datasets (:mod:`prune_info.data.builtin`), in memory.
``imagefolder:DIR``
    torchvision's ``ImageFolder`` layout: one sub-folder of images per class, named after it.
    With ``DIR/train`` (and optionally ``DIR/val``, ``DIR/test``) those are the splits (a missing
    validation or test split is a seeded 20 % of ``train``); otherwise ``DIR`` itself is split
    60 / 20 / 20, seeded. Classes are the folder names in alphabetical order. Images are read
    batch by batch (constant memory), converted to grey or RGB for ``input_shape``'s channels,
    resized (the shorter side, then a centre crop to ``H x W``; a plain resize when the aspect
    ratios agree) and normalised. An image that cannot be read stops the command, naming the
    file.
``npz:FILE``
    Arrays ``x`` and ``y`` (and optionally ``x_test``/``y_test``, ``classes``): images
    ``[N, H, W]``, ``[N, C, H, W]`` or ``[N, H, W, C]`` (C of 1 or 3), or features ``[N, D]``;
    ``uint8`` values are scaled to [0, 1]. Held in memory (an ``.npz`` is read whole). Without a
    test set the arrays are split 60 / 20 / 20, with one 80 / 20 into train and validation.
``PKG.MODULE:FN[,K=V...]``
    A function of yours returning a ``torch.utils.data.Dataset`` of ``(x, y)`` (split 60 / 20 /
    20, seeded), or a dict of such datasets under ``train``, ``val``/``validation``, ``test``
    (a missing validation split is a seeded 20 % of ``train``). Its items must be tensors in the
    model's input shape; ``classes`` are the dataset's ``.classes`` when it has them. The same
    rule as for model factories holds: a factory recorded in a checkpoint runs only when you
    name it again or pass ``trust_factory``.

Preprocessing (``input_shape``, ``normalize``) is recorded in the checkpoint by
:meth:`~prune_info.data.dataset.Dataset.describe`, and :func:`load_dataset_like` re-applies it.
"""

from __future__ import annotations

import importlib
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from prune_info._text import parse_kwargs
from prune_info.data.builtin import DATASETS, load_builtin
from prune_info.data.dataset import Dataset, adapt_inputs
from prune_info.data.splits import Split, StreamSplit, permutation
from prune_info.errors import PruneInfoError, malformed

__all__ = ["IMAGENET", "NORMALIZE_HELP", "DataSpec", "load_dataset", "load_dataset_like",
           "parse_data_spec"]

#: ImageNet's per-channel mean and standard deviation (torchvision's pretrained models').
IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))

#: What ``normalize`` takes, for messages and ``--help``.
NORMALIZE_HELP = ("auto (the training split's per-channel mean and std), imagenet, none, "
                  "M,S (every channel), or M1,..,MC,S1,..,SC")

#: Images read to estimate ``normalize="auto"`` of a streamed source (a seeded sample of train).
AUTO_SAMPLES = 2000

_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm",
                   ".pgm")


@dataclass(frozen=True)
class DataSpec:
    """A parsed ``--data`` value: ``kind`` in builtin, imagefolder, npz, factory."""

    kind: str
    target: str
    kwargs: dict

    @property
    def text(self) -> str:
        if self.kind == "builtin":
            return self.target
        if self.kind == "factory":
            args = ",".join(f"{k}={v!r}" for k, v in self.kwargs.items())
            return self.target + (f",{args}" if args else "")
        return f"{self.kind}:{self.target}"


def parse_data_spec(text: str) -> DataSpec:
    """Read a ``--data`` value (see the module docstring).

    Examples
    --------
    >>> parse_data_spec("imagefolder:photos/").kind
    'imagefolder'
    >>> parse_data_spec("mypkg.data:build,size=32").kwargs
    {'size': 32}
    >>> parse_data_spec("digitz")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    prune_info.errors.PruneInfoError: unknown dataset `data`=digitz; choose one of: digits, ...
    """
    if not isinstance(text, str) or not text.strip():
        raise PruneInfoError("`data` names no dataset; choose one of: " + _FORMS)
    text = text.strip()
    if text in DATASETS:
        return DataSpec("builtin", text, {})
    kind, sep, rest = text.partition(":")
    if sep and kind in ("imagefolder", "npz"):
        if not rest:
            what = "folder" if kind == "imagefolder" else "file"
            raise PruneInfoError(f"`data`={text} names no {what}; write {kind}:PATH")
        return DataSpec(kind, str(Path(rest).expanduser().resolve()), {})
    if sep and rest and "/" not in kind and all(p.isidentifier() for p in kind.split(".")):
        target, comma, args = text.partition(",")
        return DataSpec("factory", target, parse_kwargs(args, "data") if comma else {})
    raise PruneInfoError(f"unknown dataset `data`={text}; choose one of: {_FORMS}")


_FORMS = (f"{', '.join(DATASETS)}, imagefolder:DIR, npz:FILE or PKG.MODULE:FUNCTION[,K=V...] "
          "(a function returning a torch Dataset)")


# --------------------------------------------------------------------------------------------
# Normalisation and preprocessing


def parse_normalize(value: str | Sequence[float] | None, channels: int) -> Any:
    """``auto``, ``none``, or the ``(mean, std)`` per channel a ``normalize`` value asks for."""
    if value is None or value == "auto":
        return "auto"
    if value == "none":
        return "none"
    if value == "imagenet":
        if channels != 3:
            raise PruneInfoError(f"`normalize`=imagenet is for 3-channel images, these have "
                                 f"{channels}; use auto or M,S")
        return IMAGENET
    try:
        numbers = ([float(v) for v in value.split(",")] if isinstance(value, str)
                   else [float(v) for v in value])
    except (TypeError, ValueError):
        numbers = []
    if len(numbers) == 2:
        numbers = [numbers[0]] * channels + [numbers[1]] * channels
    if len(numbers) != 2 * channels or any(not math.isfinite(v) for v in numbers) \
            or any(v <= 0 for v in numbers[channels:]):
        raise PruneInfoError(f"`normalize`={value!r} must be {NORMALIZE_HELP}, with positive "
                             f"std ({channels} channels here)")
    return tuple(numbers[:channels]), tuple(numbers[channels:])


def _normalisation(mean: Sequence[float], std: Sequence[float], scale: float) -> dict:
    return {"scale": scale, "mean": [float(m) for m in mean], "std": [float(s) for s in std]}


def _standardise_batch(x: torch.Tensor, norm: dict) -> torch.Tensor:
    if not norm:
        return x
    shape = (1, -1) + (1,) * (x.ndim - 2)
    mean = torch.tensor(norm["mean"], dtype=x.dtype).view(shape)
    std = torch.tensor(norm["std"], dtype=x.dtype).view(shape)
    return (x - mean) / std


def _check_shape(shape: Sequence[int] | None) -> tuple[int, int, int] | None:
    if shape is None:
        return None
    try:
        values = tuple(int(v) for v in shape)
    except (TypeError, ValueError):
        values = ()
    if len(values) != 3 or min(values) < 1 or values[0] not in (1, 3):
        raise PruneInfoError(f"`input_shape`={shape!r} must be C,H,W with C of 1 or 3, e.g. "
                             "3,32,32")
    return values[0], values[1], values[2]


# --------------------------------------------------------------------------------------------
# Image folders


class _ImageFiles(torch.utils.data.Dataset):
    """``(file, label)`` pairs read as preprocessed image tensors."""

    def __init__(self, files: Sequence[tuple[str, int]], shape: tuple[int, int, int],
                 normalisation: dict, resize: bool = True) -> None:
        self.files = list(files)
        self.shape = shape
        self.normalisation = normalisation
        self.resize = resize
        # per-channel mean and std as tensors once, not two new tensors per image
        self._mean_std = ((torch.tensor(normalisation["mean"]).view(-1, 1, 1),
                           torch.tensor(normalisation["std"]).view(-1, 1, 1))
                          if normalisation else None)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        path, label = self.files[i]
        image = _read_image(path, self.shape, self.resize)
        if self._mean_std is None:
            return image, label
        mean, std = self._mean_std
        return (image - mean) / std, label


def _read_image(path: str, shape: tuple[int, int, int], resize: bool = True) -> torch.Tensor:
    """One image as ``[C, H, W]`` in [0, 1]: grey or RGB, resized and centre-cropped (or, with
    ``resize`` off, refused unless it has the shape already)."""
    from PIL import Image, UnidentifiedImageError

    channels, height, width = shape
    try:
        with Image.open(path) as image:
            image = image.convert("L" if channels == 1 else "RGB")
            w, h = image.size
            if (w, h) != (width, height) and not resize:
                raise PruneInfoError(
                    f"image {path} is {w}x{h} but the first training image is {width}x"
                    f"{height}; images of different sizes need `input_shape`=C,H,W, to which "
                    "every image is resized")
            if (w, h) != (width, height):
                if w * height != h * width:  # another aspect ratio: shorter side, centre crop
                    scale = max(width / w, height / h)
                    w, h = max(width, round(w * scale)), max(height, round(h * scale))
                    image = image.resize((w, h), Image.Resampling.BILINEAR)
                    left, top = (w - width) // 2, (h - height) // 2
                    image = image.crop((left, top, left + width, top + height))
                else:
                    image = image.resize((width, height), Image.Resampling.BILINEAR)
            array = np.asarray(image, dtype=np.float32) / 255.0
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as exc:
        raise PruneInfoError(f"image {path} cannot be read ({type(exc).__name__}: "
                             f"{str(exc).splitlines()[0] if str(exc) else 'unreadable'}); "
                             "remove or replace it") from None
    if array.ndim == 2:
        array = array[None]
    else:
        array = array.transpose(2, 0, 1)
    return torch.from_numpy(np.ascontiguousarray(array))


def _class_folders(root: Path) -> dict[str, list[str]]:
    """``{class: [image files]}`` of one folder of class sub-folders."""
    if not root.is_dir():
        raise PruneInfoError(f"`data`=imagefolder:{root}: no such folder; give the folder that "
                             "holds one sub-folder of images per class")
    found: dict[str, list[str]] = {}
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = sorted(str(f) for f in sub.rglob("*")
                       if f.is_file() and f.suffix.lower() in _IMAGE_SUFFIXES)
        if not files:
            raise PruneInfoError(f"class folder {sub} holds no image ({', '.join(_IMAGE_SUFFIXES)}"
                                 "); add images or remove the folder")
        found[sub.name] = files
    if not found:
        raise PruneInfoError(f"{root} holds no class folder; give a folder with one sub-folder "
                             "of images per class (ImageFolder layout)")
    if len(found) < 2:
        raise PruneInfoError(f"{root} holds one class ({next(iter(found))}); a classifier needs "
                             "at least 2 class folders")
    return found


def _load_imagefolder(spec: DataSpec, seed: int, input_shape: tuple[int, int, int] | None,
                      normalize: Any, workers: int) -> Dataset:
    root = Path(spec.target)
    parts = {name: root / name for name in ("train", "val", "test")}
    if not (root / "val").is_dir() and (root / "validation").is_dir():
        parts["val"] = root / "validation"
    has_train = parts["train"].is_dir()
    folders = {k: _class_folders(p) for k, p in parts.items() if p.is_dir()} if has_train else {
        "all": _class_folders(root)}
    classes = tuple(sorted(folders["train" if has_train else "all"]))
    for split_name, by_class in folders.items():
        extra = sorted(set(by_class) - set(classes))
        if extra:
            raise PruneInfoError(f"{parts[split_name]} has classes the training folder lacks "
                                 f"({', '.join(extra[:5])}); give every split the same classes")
    label = {name: i for i, name in enumerate(classes)}

    def pairs(by_class: Mapping[str, list[str]]) -> list[tuple[str, int]]:
        return [(f, label[c]) for c in sorted(by_class) for f in by_class[c]]

    if has_train:
        train = pairs(folders["train"])
        carved = _carve(len(train), seed, val="val" not in folders, test="test" not in folders)
        chosen = {"train": [train[i] for i in carved["train"]]}
        for name in ("val", "test"):
            chosen[name] = (pairs(folders[name]) if name in folders
                            else [train[i] for i in carved[name]])
    else:
        every = pairs(folders["all"])
        carved = _carve(len(every), seed, val=True, test=True)
        chosen = {name: [every[i] for i in idx] for name, idx in carved.items()}
    for name, files in chosen.items():
        if not files:
            raise PruneInfoError(f"imagefolder:{root} leaves the {name} split empty; add images")
    shape = input_shape or _native_image_shape(chosen["train"][0][0])
    asked = parse_normalize(normalize, shape[0])
    normalisation = _image_normalisation(asked, chosen["train"], shape, seed,
                                         resize=input_shape is not None)
    splits = {}
    for name, files in chosen.items():
        source = _ImageFiles(files, shape, normalisation, resize=input_shape is not None)
        splits[name] = StreamSplit(source, workers=workers,
                                   targets=torch.tensor([y for _, y in files], dtype=torch.long),
                                   name=f"imagefolder:{root} ({name})")
    return Dataset(spec.text, splits["train"], splits["val"], splits["test"], len(classes),
                   normalisation, seed, classes=classes,
                   source={"kind": "imagefolder", "input_shape": list(shape),
                           "normalize": _recorded_normalize(asked)})


def _native_image_shape(path: str) -> tuple[int, int, int]:
    """The shape the first training image has, as every image must without ``input_shape``."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            channels = 1 if image.mode in ("L", "1", "I", "F", "I;16") else 3
            return channels, image.size[1], image.size[0]
    except OSError as exc:
        raise PruneInfoError(f"image {path} cannot be read ({exc}); remove or replace it") from None


def _image_normalisation(asked: Any, train: Sequence[tuple[str, int]],
                         shape: tuple[int, int, int], seed: int, resize: bool) -> dict:
    if asked == "none":
        return {}
    if asked != "auto":
        return _normalisation(asked[0], asked[1], 1 / 255)
    # auto: the per-channel mean and std of a seeded sample of the training images
    order = permutation(len(train), seed)[:AUTO_SAMPLES].tolist()
    total = torch.zeros(shape[0], dtype=torch.float64)
    squares = torch.zeros(shape[0], dtype=torch.float64)
    count = 0
    for i in order:
        x = _read_image(train[i][0], shape, resize).double()
        total += x.sum(dim=(1, 2))
        squares += (x * x).sum(dim=(1, 2))
        count += x[0].numel()
    mean = total / count
    std = (squares / count - mean * mean).clamp_min(0).sqrt().clamp_min(1e-8)
    return _normalisation(mean.tolist(), std.tolist(), 1 / 255)


def _recorded_normalize(asked: Any) -> Any:
    """The ``normalize`` to record: the values themselves, so a reload needs no recomputation."""
    return asked if isinstance(asked, str) else [list(asked[0]), list(asked[1])]


def _carve(n: int, seed: int, *, val: bool, test: bool) -> dict[str, list[int]]:
    """Indices of a seeded split of ``n`` samples: 20 % each for the splits asked for."""
    perm = permutation(n, seed).tolist()
    sizes = {"val": int(round(0.2 * n)) if val else 0, "test": int(round(0.2 * n)) if test else 0}
    out = {"val": perm[: sizes["val"]], "test": perm[sizes["val"] : sizes["val"] + sizes["test"]]}
    out["train"] = perm[sizes["val"] + sizes["test"] :]
    return out


# --------------------------------------------------------------------------------------------
# Arrays (.npz)


def _load_npz(spec: DataSpec, seed: int, normalize: Any) -> Dataset:
    path = Path(spec.target)
    fix = "write it with numpy.savez(FILE, x=..., y=...), optionally x_test, y_test, classes"
    if not path.is_file():
        raise PruneInfoError(f"`data`=npz:{path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {k: archive[k] for k in archive.files}
    except (OSError, ValueError, EOFError) as exc:
        raise malformed(path, f"not a readable .npz archive ({exc})", fix) from exc
    for key in ("x", "y"):
        if key not in arrays:
            raise malformed(path, f"it has no array {key!r} (it has: "
                            f"{', '.join(arrays) or 'none'})", fix)
    if ("x_test" in arrays) != ("y_test" in arrays):
        raise malformed(path, "it has only one of x_test and y_test", fix)
    classes = None
    if "classes" in arrays:
        classes = tuple(str(c) for c in np.asarray(arrays["classes"]).reshape(-1).tolist())
    xs = {"x": _npz_inputs(arrays["x"], path, "x", fix)}
    ys = {"y": _npz_labels(arrays["y"], path, "y", fix, len(xs["x"]))}
    if "x_test" in arrays:
        xs["x_test"] = _npz_inputs(arrays["x_test"], path, "x_test", fix)
        ys["y_test"] = _npz_labels(arrays["y_test"], path, "y_test", fix, len(xs["x_test"]))
        if xs["x_test"].shape[1:] != xs["x"].shape[1:]:
            raise malformed(path, f"x_test's samples are {list(xs['x_test'].shape[1:])}, x's "
                            f"{list(xs['x'].shape[1:])}", fix)
    top = max(int(y.max()) for y in ys.values()) + 1
    n_classes = len(classes) if classes is not None else top
    if top > n_classes:
        raise malformed(path, f"it holds label {top - 1}, outside the {n_classes} classes", fix)
    if n_classes < 2:
        raise malformed(path, "its labels name one class; a classifier needs at least 2", fix)
    x, y = xs["x"], ys["y"]
    if "x_test" in xs:
        perm = permutation(len(y), seed)
        n_val = int(round(0.2 * len(y)))
        parts = {"train": perm[n_val:], "val": perm[:n_val]}
        raw = {k: (x[idx], y[idx]) for k, idx in parts.items()}
        raw["test"] = (xs["x_test"], ys["y_test"])
    else:
        carved = _carve(len(y), seed, val=True, test=True)
        raw = {k: (x[torch.tensor(idx, dtype=torch.long)], y[torch.tensor(idx, dtype=torch.long)])
               for k, idx in carved.items()}
    for name, (xx, _) in raw.items():
        if len(xx) == 0:
            raise malformed(path, f"it leaves the {name} split empty; give more samples", fix)
    channels = raw["train"][0].shape[1] if raw["train"][0].ndim == 4 else 1
    asked = parse_normalize(normalize, channels)
    train_x = raw["train"][0]
    if asked == "none":
        norm: dict = {}
    elif asked == "auto":
        dims = (0, 2, 3) if train_x.ndim == 4 else (0, 1)
        mean = train_x.mean(dim=dims).reshape(-1)
        std = train_x.std(dim=dims).reshape(-1).clamp_min(1e-8)
        if train_x.ndim == 2:  # features: one mean and std for all
            mean, std = train_x.mean().reshape(1), train_x.std().clamp_min(1e-8).reshape(1)
        norm = _normalisation(mean.tolist(), std.tolist(), 1.0)
    else:
        norm = _normalisation(asked[0], asked[1], 1.0)
    splits = {k: Split(_standardise_features(xx, norm).contiguous(), yy)
              for k, (xx, yy) in raw.items()}
    return Dataset(spec.text, splits["train"], splits["val"], splits["test"], n_classes, norm,
                   seed, classes=classes or tuple(str(i) for i in range(n_classes)),
                   source={"kind": "npz", "normalize": _recorded_normalize(asked)})


def _standardise_features(x: torch.Tensor, norm: dict) -> torch.Tensor:
    if not norm:
        return x
    if x.ndim == 2:
        return (x - norm["mean"][0]) / norm["std"][0]
    return _standardise_batch(x, norm)


def _npz_inputs(array: np.ndarray, path: Path, key: str, fix: str) -> torch.Tensor:
    if array.dtype.kind not in "uif" or array.ndim not in (2, 3, 4) or len(array) == 0:
        raise malformed(path, f"{key} must be a non-empty array of numbers [N, D], [N, H, W], "
                        f"[N, C, H, W] or [N, H, W, C], got {array.dtype} {list(array.shape)}",
                        fix)
    x = torch.from_numpy(np.asarray(array, dtype=np.float32))
    if array.dtype == np.uint8:
        x = x / 255.0
    if not bool(torch.isfinite(x).all()):
        raise malformed(path, f"{key} holds NaN or infinite values", fix)
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4 and x.shape[1] not in (1, 3) and x.shape[-1] in (1, 3):
        x = x.permute(0, 3, 1, 2)  # channels last -> first
    return x


def _npz_labels(array: np.ndarray, path: Path, key: str, fix: str, n: int) -> torch.Tensor:
    if array.dtype.kind not in "iu" or array.ndim != 1:
        raise malformed(path, f"{key} must be integer labels [N], got {array.dtype} "
                        f"{list(array.shape)}", fix)
    if len(array) != n:
        raise malformed(path, f"{key} holds {len(array)} labels for {n} samples", fix)
    if len(array) and int(array.min()) < 0:
        raise malformed(path, f"{key} holds the negative label {int(array.min())}", fix)
    return torch.from_numpy(array.astype(np.int64))


# --------------------------------------------------------------------------------------------
# A user's factory


def _load_factory(spec: DataSpec, seed: int, input_shape: tuple[int, int, int] | None,
                  normalize: Any, workers: int) -> Dataset:
    module_name, _, attr = spec.target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise PruneInfoError(f"`data`={spec.target}: cannot import {module_name} ({exc}); make it "
                             "importable (install it, or run from the folder that holds it)"
                             ) from exc
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise PruneInfoError(f"`data`={spec.target}: {module_name} has no function {attr!r}")
    try:
        made = fn(**spec.kwargs)
    except PruneInfoError:
        raise
    except SystemExit as exc:
        raise PruneInfoError(f"`data`={spec.target} called sys.exit({exc.code!r}) instead of "
                             "returning a dataset; fix the factory") from None
    except Exception as exc:  # the user's code: any failure is one line
        detail = (str(exc).strip().splitlines() or [""])[0]
        raise PruneInfoError(f"`data`={spec.text} raised {type(exc).__name__}: {detail}") from exc
    parts = _factory_parts(made, spec.target)
    train = parts["train"]
    chosen: dict[str, tuple[Any, list[int] | None]]
    if "test" in parts and "val" in parts:
        chosen = {name: (parts[name], None) for name in ("train", "val", "test")}
    elif "test" in parts:
        carved = _carve(len(train), seed, val=True, test=False)
        chosen = {"train": (train, carved["train"]), "val": (train, carved["val"]),
                  "test": (parts["test"], None)}
    else:
        carved = _carve(len(train), seed, val=True, test=True)
        chosen = {name: (train, carved[name]) for name in ("train", "val", "test")}
    splits = {}
    for name, (dataset, idx) in chosen.items():
        if (idx is not None and not idx) or len(dataset) == 0:
            raise PruneInfoError(f"`data`={spec.target} leaves the {name} split empty; give more "
                                 "samples")
        splits[name] = StreamSplit(_Checked(dataset, spec.target), idx, workers=workers,
                                   targets=_known_targets(dataset, idx),
                                   name=f"{spec.target} ({name})")
    first_x, _ = splits["train"].source[splits["train"].indices[0]]
    shape = tuple(torch.as_tensor(first_x).shape)
    if input_shape is not None and shape != input_shape:
        raise PruneInfoError(f"`data`={spec.target} gives samples of shape "
                             f"{'x'.join(map(str, shape))}, not `input_shape`="
                             f"{','.join(map(str, input_shape))}; make the factory resize them")
    classes = getattr(train, "classes", None)
    targets = splits["train"].targets()
    n_classes = len(classes) if classes else int(targets.max()) + 1
    if parse_normalize(normalize, shape[0] if len(shape) == 3 else 1) not in ("auto", "none"):
        raise PruneInfoError(f"`data`={spec.target}: a factory's samples are used as it gives "
                             "them; normalise them in the factory (leave out `normalize`)")
    return Dataset(spec.text, splits["train"], splits["val"], splits["test"], n_classes, {}, seed,
                   classes=tuple(str(c) for c in classes) if classes else (),
                   source={"kind": "factory"})


def _factory_parts(made: Any, target: str) -> dict[str, Any]:
    from torch.utils.data import DataLoader
    from torch.utils.data import Dataset as TorchDataset

    def dataset_of(value: Any, what: str) -> Any:
        if isinstance(value, DataLoader):
            value = value.dataset
        if not isinstance(value, TorchDataset) or not hasattr(value, "__len__"):
            raise PruneInfoError(
                f"`data`={target} returned {type(value).__name__} for {what}; return a "
                "torch.utils.data.Dataset of (x, y) (map-style, with a length), or a dict of them "
                "under train / val / test")
        return value

    if isinstance(made, Mapping):
        names = {"validation": "val", "valid": "val"}
        parts = {names.get(str(k), str(k)): dataset_of(v, str(k)) for k, v in made.items()}
        unknown = sorted(set(parts) - {"train", "val", "test"})
        if unknown or "train" not in parts:
            raise PruneInfoError(f"`data`={target} returned a dict with "
                                 f"{sorted(map(str, made))}; use the keys train (needed), val "
                                 "and test")
        return parts
    return {"train": dataset_of(made, "its dataset")}


def _known_targets(dataset: Any, idx: Sequence[int] | None) -> torch.Tensor | None:
    """The labels of ``idx`` when the dataset lists them (``targets``, as torchvision's do)."""
    targets = getattr(dataset, "targets", None)
    if targets is None:
        return None
    try:
        all_targets = torch.as_tensor(targets).long().reshape(-1)
    except (TypeError, ValueError, RuntimeError):
        return None
    return all_targets if idx is None else all_targets[torch.as_tensor(idx, dtype=torch.long)]


class _Checked(torch.utils.data.Dataset):
    """A user's dataset whose items are checked to be ``(tensor, integer)`` as they are read."""

    def __init__(self, dataset: Any, target: str) -> None:
        self.dataset, self.target = dataset, target

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        item = self.dataset[i]
        if not isinstance(item, (tuple, list)) or len(item) < 2:
            raise PruneInfoError(f"`data`={self.target}: item {i} is {type(item).__name__}, not "
                                 "(x, y)")
        x, y = item[0], item[1]
        if not isinstance(x, torch.Tensor):
            raise PruneInfoError(f"`data`={self.target}: item {i}'s input is "
                                 f"{type(x).__name__}; give tensors (add a ToTensor transform)")
        try:
            label = int(y)
        except (TypeError, ValueError):
            raise PruneInfoError(f"`data`={self.target}: item {i}'s label {y!r} is not an "
                                 "integer") from None
        return x.float(), label


# --------------------------------------------------------------------------------------------
# Entry points


def load_dataset(
    name: str,
    data_dir: str | os.PathLike | None = None,
    seed: int = 0,
    input_shape: Sequence[int] | None = None,
    *,
    normalize: str | Sequence[float] | None = None,
    workers: int = 0,
) -> Dataset:
    """Open a dataset with a seeded split: a built-in one by name, or a source of yours.

    Parameters
    ----------
    name : str
        ``digits``, ``fashion-mnist``, ``mnist``, ``cifar10``, ``imagefolder:DIR``,
        ``npz:FILE`` or ``PKG.MODULE:FUNCTION[,K=V...]`` (see the module docstring).
    data_dir : path, optional
        Directory holding a built-in dataset's files (searched before ``$PRUNE_INFO_DATA`` and
        the Debian FashionMNIST directory); for the built-ins read from files only.
    seed : int
        Seed of the split.
    input_shape : (C, H, W), optional
        The shape the model takes: images are converted, resized and cropped to it (see
        :func:`prune_info.data.dataset.adapt_inputs` for the built-ins).
    normalize : str or sequence of float, optional
        How images are normalised: ``auto`` (default), ``imagenet``, ``none``, ``M,S`` or
        per-channel means then stds. The built-ins keep their own (``auto``).
    workers : int
        ``DataLoader`` worker processes of a streamed source.

    Examples
    --------
    >>> ds = load_dataset("digits")
    >>> len(ds.train), len(ds.val), len(ds.test), ds.input_shape
    (1078, 359, 360, (1, 8, 8))
    >>> load_dataset("digits", input_shape=(3, 16, 16)).describe()["input_shape"]
    [3, 16, 16]
    """
    spec = parse_data_spec(name)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise PruneInfoError(f"`workers` must be 0 or more, got {workers!r}")
    if data_dir is not None and (spec.kind != "builtin" or spec.target == "digits"):
        raise PruneInfoError(
            f"`data_dir` is where the files of fashion-mnist, mnist or cifar10 are; "
            f"`data`={spec.text} does not read it: leave it out (a folder of your own images is "
            "`data`=imagefolder:DIR)")
    if spec.kind == "builtin":
        if normalize not in (None, "auto"):
            raise PruneInfoError(f"`normalize`: {spec.target} is standardised by its training "
                                 "split's statistics (auto); leave it out")
        data = load_builtin(spec.target, data_dir, seed)
        return data if input_shape is None else adapt_inputs(data, input_shape)
    shape = _check_shape(input_shape)
    if spec.kind == "imagefolder":
        return _load_imagefolder(spec, seed, shape, normalize, workers)
    if spec.kind == "npz":
        data = _load_npz(spec, seed, normalize)
        return data if shape is None else adapt_inputs(data, shape)
    return _load_factory(spec, seed, shape, normalize, workers)


def load_dataset_like(described: dict, data_dir: str | os.PathLike | None = None,
                      name: str | None = None, *, trust_factory: bool = False,
                      workers: int = 0, normalize: Any = None) -> Dataset:
    """The dataset a checkpoint records (``Checkpoint.dataset``): same split, same input shape,
    same normalisation.

    ``name`` overrides the recorded source (evaluating a model on other data). A data factory
    the record names runs only when ``name`` names it again or with ``trust_factory``: a file
    never chooses the code that runs.
    """
    recorded = described.get("name")
    named = name
    name = name or recorded
    if name is None:
        raise PruneInfoError("the model does not record its dataset; pass `data`")
    spec = parse_data_spec(name)
    if spec.kind == "factory" and named is None and not trust_factory:
        raise PruneInfoError(
            f"the checkpoint records the data factory {spec.text}; a file never chooses the "
            f"code that runs: name it yourself (`data`={spec.text}) or pass `trust_factory`")
    seed = int(described.get("split_seed", 0))
    source = described.get("source") or {}
    same = name == recorded
    if spec.kind == "builtin":
        shape = described.get("input_shape") if described.get("native_input_shape") else None
        return load_dataset(name, data_dir, seed=seed, input_shape=shape)
    shape = described.get("input_shape") or source.get("input_shape")
    if normalize is None and same:
        normalize = source.get("normalize")
        if isinstance(normalize, list):
            normalize = [*normalize[0], *normalize[1]]
    if spec.kind == "factory" or (spec.kind == "npz" and not described.get("native_input_shape")):
        shape = None  # the source gives the shape itself
    return load_dataset(name, data_dir, seed=seed, input_shape=shape, normalize=normalize,
                        workers=workers)


def recorded_classes(described: Mapping[str, Any]) -> tuple[str, ...] | None:
    """The class names a checkpoint records, in output order (None for an older checkpoint)."""
    classes = described.get("classes")
    return tuple(str(c) for c in classes) if isinstance(classes, list) and classes else None


def with_recorded_shape(data: Dataset, described: Mapping[str, Any]) -> Dataset:
    """Built-in ``data`` adapted to the input shape a checkpoint records, when it differs."""
    shape = described.get("input_shape")
    if shape and data.in_memory and tuple(shape) != data.input_shape:
        return adapt_inputs(data, shape)
    return data


def describe_source(data: Dataset) -> str:
    """One line naming a dataset for tables: its source, splits and classes."""
    sizes = f"{len(data.train)}/{len(data.val)}/{len(data.test)}"
    return f"{data.name} ({sizes} train/val/test, {data.n_classes} classes)"
