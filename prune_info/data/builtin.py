"""The built-in datasets, in memory, with seeded train / validation / test splits.

Following Amjad, Liu & Geiger (Sec. V), 80 % of a dataset's designated training set is used for
training and the other 20 % is the validation set D on which information measures are computed;
the designated test set is kept for accuracy. ``digits`` has no designated test set and is split
60 / 20 / 20. Every split is a seeded permutation, so the same seed gives the same split.

Images are kept as float32 tensors of shape ``[N, C, H, W]`` scaled to [0, 1] and standardised
with the mean and standard deviation of the *training* split (one value per channel); the same
normalisation is stored in checkpoints so that a model can be evaluated on fresh data later.
"""

from __future__ import annotations

import gzip
import io
import math
import os
import pickle
import zlib
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from prune_info.data.dataset import Dataset
from prune_info.data.splits import Split, permutation
from prune_info.errors import PruneInfoError, malformed

#: The built-in datasets (:func:`load_builtin`).
DATASETS = ("digits", "fashion-mnist", "mnist", "cifar10")

#: Where the Debian package ``dataset-fashion-mnist`` puts its files.
DEBIAN_FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")

_IDX_FILES = {
    "train_x": "train-images-idx3-ubyte",
    "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte",
    "test_y": "t10k-labels-idx1-ubyte",
}
_TORCHVISION_DIRS = {"fashion-mnist": "FashionMNIST", "mnist": "MNIST", "cifar10": ""}
_CIFAR_DIR = "cifar-10-batches-py"


# --------------------------------------------------------------------------------------------
# Splitting and normalisation


def _standardise(
    raw: dict[str, tuple[np.ndarray, np.ndarray]], scale: float
) -> tuple[dict[str, Split], dict]:
    """Scale to [0, 1] and standardise every split with the training split's channel statistics."""
    train_x = torch.from_numpy(raw["train"][0]).float() * scale
    mean = train_x.mean(dim=(0, 2, 3))
    std = train_x.std(dim=(0, 2, 3)).clamp_min(1e-8)
    splits = {}
    for key, (x, y) in raw.items():
        xt = torch.from_numpy(x).float() * scale
        xt = (xt - mean[None, :, None, None]) / std[None, :, None, None]
        splits[key] = Split(xt.contiguous(), torch.from_numpy(y).long())
    norm = {"scale": scale, "mean": mean.tolist(), "std": std.tolist()}
    return splits, norm


def _split_designated(
    train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray, seed: int
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """80 % / 20 % of the designated training set (seeded), the designated test set as is."""
    perm = permutation(len(train_y), seed).numpy()
    n_train = int(round(0.8 * len(train_y)))
    tr, va = perm[:n_train], perm[n_train:]
    return {
        "train": (train_x[tr], train_y[tr]),
        "val": (train_x[va], train_y[va]),
        "test": (test_x, test_y),
    }


# --------------------------------------------------------------------------------------------
# digits (inside scikit-learn, offline)


def _load_digits(seed: int) -> Dataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = bunch.images.astype(np.float32)[:, None, :, :]  # [1797, 1, 8, 8], values 0..16
    y = bunch.target.astype(np.int64)
    perm = permutation(len(y), seed).numpy()
    n_train, n_val = int(round(0.6 * len(y))), int(round(0.2 * len(y)))
    parts = {
        "train": perm[:n_train],
        "val": perm[n_train : n_train + n_val],
        "test": perm[n_train + n_val :],
    }
    splits, norm = _standardise({k: (x[idx], y[idx]) for k, idx in parts.items()}, 1.0 / 16.0)
    return Dataset("digits", splits["train"], splits["val"], splits["test"], 10, norm, seed)


# --------------------------------------------------------------------------------------------
# IDX files (MNIST, FashionMNIST)


#: The fix every malformed IDX file names.
_REDOWNLOAD = "re-download it (or reinstall the dataset package)"


def read_idx(path: Path, ndim: int | None = None) -> np.ndarray:
    """Read an IDX file (optionally gzipped) into a numpy array of unsigned bytes.

    ``ndim``: the number of dimensions the file must have (3 for images, 1 for labels). A file
    that is not IDX, whose header is cut short, claims other dimensions or whose body does not
    match its header raises :class:`PruneInfoError` naming the file.
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise PruneInfoError(f"cannot read {path}: {exc.strerror}; check its permissions, or "
                             "re-download it") from exc
    if path.suffix == ".gz":
        try:
            data = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:  # not gzip, cut short, corrupt stream
            raise malformed(path, f"not a complete gzip file: {exc}", _REDOWNLOAD) from exc
    else:
        data = raw
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise malformed(path, "not an IDX file of unsigned bytes", _REDOWNLOAD)
    n_dims = data[3]
    if n_dims < 1 or (ndim is not None and n_dims != ndim):
        raise malformed(path, f"its header claims {n_dims} dimensions"
                        + (f", not {ndim}" if ndim is not None else ""), _REDOWNLOAD)
    if len(data) < 4 + 4 * n_dims:
        raise malformed(path, f"header cut short: {n_dims} dimensions need "
                        f"{4 + 4 * n_dims} bytes, the file has {len(data)}", _REDOWNLOAD)
    dims = [int(d) for d in np.frombuffer(data, dtype=">u4", count=n_dims, offset=4)]
    expected = math.prod(dims)  # Python ints: a forged header cannot overflow
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * n_dims)
    if body.size != expected:
        raise malformed(path, f"truncated: header says {expected} values, file has "
                        f"{body.size}", _REDOWNLOAD)
    if expected == 0:
        raise malformed(path, f"it holds no samples (dimensions {dims})", _REDOWNLOAD)
    return body.reshape(tuple(dims)).copy()  # frombuffer is read-only


def _find_idx(directory: Path) -> dict[str, Path] | None:
    """The four IDX files in ``directory`` (gzipped or not), or None if any is missing."""
    found = {}
    for key, stem in _IDX_FILES.items():
        for candidate in (directory / f"{stem}.gz", directory / stem):
            if candidate.is_file():
                found[key] = candidate
                break
        else:
            return None
    return found


def _candidate_roots(name: str, data_dir: str | os.PathLike | None) -> list[Path]:
    """Directories to search, in the documented order.

    A directory given explicitly is the only one searched: data from elsewhere would silently
    stand in for the files the user named.
    """
    if data_dir is not None:
        return [Path(data_dir)]
    roots: list[Path] = []
    if os.environ.get("PRUNE_INFO_DATA"):
        roots.append(Path(os.environ["PRUNE_INFO_DATA"]))
    if name == "fashion-mnist":
        roots.append(DEBIAN_FASHION_DIR)
    return roots


def _subdirs(name: str, root: Path) -> list[Path]:
    """A root is searched as is, as ``<root>/<name>`` and torchvision-style."""
    tv = _TORCHVISION_DIRS[name]
    if name == "cifar10":
        return [root, root / _CIFAR_DIR]
    return [root, root / name, root / tv / "raw"]


def _not_found(name: str, roots: list[Path]) -> PruneInfoError:
    tv = _TORCHVISION_DIRS[name] or _CIFAR_DIR
    looked = ", ".join(str(r) for r in roots) or "nowhere"
    hint = (
        "install the Debian package dataset-fashion-mnist, "
        if name == "fashion-mnist"
        else ""
    )
    return PruneInfoError(
        f"dataset {name} not found (looked in: {looked}); fix: pass `data_dir`=DIR or set "
        f"PRUNE_INFO_DATA to a directory holding the files (or a torchvision root with "
        f"{tv}/){', or ' + hint.rstrip(', ') if hint else ''}; nothing is downloaded"
    )


def _locate(name: str, data_dir: str | os.PathLike | None):
    roots = _candidate_roots(name, data_dir)
    finder = _find_cifar if name == "cifar10" else _find_idx
    for root in roots:
        for directory in _subdirs(name, root):
            found = finder(directory)
            if found:
                return found
    raise _not_found(name, roots)


def _load_idx_dataset(name: str, data_dir, seed: int) -> Dataset:
    files = _locate(name, data_dir)
    arrays = {key: read_idx(path, 1 if key.endswith("_y") else 3) for key, path in files.items()}
    for key in ("train_y", "test_y"):
        labels = arrays[key]
        if labels.size and int(labels.max()) >= 10:
            raise malformed(files[key], f"it holds label {int(labels.max())}, outside 0..9 of "
                            f"the 10 classes of {name}", _REDOWNLOAD)
    train_x, test_x = arrays["train_x"][:, None], arrays["test_x"][:, None]
    train_y, test_y = arrays["train_y"].astype(np.int64), arrays["test_y"].astype(np.int64)
    if train_x.shape[0] != train_y.shape[0] or test_x.shape[0] != test_y.shape[0]:
        split = "train" if train_x.shape[0] != train_y.shape[0] else "test"
        raise PruneInfoError(
            f"{files[split + '_x']} holds {arrays[split + '_x'].shape[0]} images but "
            f"{files[split + '_y']} {arrays[split + '_y'].shape[0]} labels; re-download them")
    raw = _split_designated(train_x, train_y, test_x, test_y, seed)
    splits, norm = _standardise(raw, 1.0 / 255.0)
    return Dataset(name, splits["train"], splits["val"], splits["test"], 10, norm, seed)


# --------------------------------------------------------------------------------------------
# CIFAR-10 (python pickle batches)


def _find_cifar(directory: Path) -> dict[str, list[Path]] | None:
    train = [directory / f"data_batch_{i}" for i in range(1, 6)]
    test = directory / "test_batch"
    if all(p.is_file() for p in train) and test.is_file():
        return {"train": train, "test": [test]}
    return None


class _CifarUnpickler(pickle.Unpickler):
    """The CIFAR-10 batches hold a dict of lists, bytes and numpy arrays (or scalars): only
    numpy's array and scalar reconstruction is let in, so a forged file cannot run code."""

    _ALLOWED = {(f"numpy{core}.multiarray", name) for core in (".core", "._core")
                for name in ("_reconstruct", "scalar")} | {
                ("numpy", "ndarray"), ("numpy", "dtype"),
                ("_codecs", "encode")}  # bytes pickled by Python 3 at protocol 2

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"it names {module}.{name}, which a CIFAR-10 batch "
                                         "never holds")
        return super().find_class(module, name)


#: The fix every malformed CIFAR-10 batch names.
_REDOWNLOAD_CIFAR = "re-download the python version (cifar-10-python.tar.gz)"


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 batch: images ``[N, 3, 32, 32]`` uint8 and labels in 0..9, checked."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise PruneInfoError(f"cannot read CIFAR-10 batch {path}: {exc.strerror}; check its "
                             "permissions") from exc
    try:
        batch = _CifarUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except Exception as exc:  # noqa: BLE001 - a parser of the file's bytes: any failure is the file's
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:120]
        raise malformed(path, f"not a CIFAR-10 batch: {detail}", _REDOWNLOAD_CIFAR) from exc
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise malformed(path, "not a CIFAR-10 batch: no data and labels", _REDOWNLOAD_CIFAR)
    data, labels = batch[b"data"], batch[b"labels"]
    try:
        if isinstance(data, (bytes, bytearray)):
            data = np.frombuffer(data, dtype=np.uint8)
        x = np.asarray(data, dtype=np.uint8).reshape(-1, 3, 32, 32)
        y = np.asarray(labels, dtype=np.int64).reshape(-1)
    except (TypeError, ValueError, OverflowError) as exc:
        raise malformed(path, f"its data ({type(data).__name__}) and labels "
                        f"({type(labels).__name__}) are not 3x32x32 images and integers",
                        _REDOWNLOAD_CIFAR) from exc
    if len(x) != len(y) or len(y) == 0:
        raise malformed(path, f"it holds {len(x)} images and {len(y)} labels",
                        _REDOWNLOAD_CIFAR)
    if int(y.min()) < 0 or int(y.max()) >= 10:
        bad = int(y.min()) if int(y.min()) < 0 else int(y.max())
        raise malformed(path, f"it holds label {bad}, outside 0..9 of the 10 classes",
                        _REDOWNLOAD_CIFAR)
    return x, y


def _read_cifar_batches(paths: list[Path]) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = zip(*(_read_cifar_batch(path) for path in paths))
    return np.concatenate(xs), np.concatenate(ys)


def _load_cifar10(data_dir, seed: int) -> Dataset:
    files = _locate("cifar10", data_dir)
    train_x, train_y = _read_cifar_batches(files["train"])
    test_x, test_y = _read_cifar_batches(files["test"])
    raw = _split_designated(train_x, train_y, test_x, test_y, seed)
    splits, norm = _standardise(raw, 1.0 / 255.0)
    return Dataset("cifar10", splits["train"], splits["val"], splits["test"], 10, norm, seed)


# --------------------------------------------------------------------------------------------
# Entry point


#: Class names of the built-in datasets, in label order.
CLASSES = {
    "digits": tuple(str(i) for i in range(10)),
    "mnist": tuple(str(i) for i in range(10)),
    "fashion-mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                      "Sneaker", "Bag", "Ankle boot"),
    "cifar10": ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                "truck"),
}


def load_builtin(name: str, data_dir: str | os.PathLike | None = None, seed: int = 0) -> Dataset:
    """A built-in dataset, in memory, with its seeded split (see the module docstring)."""
    if name == "digits":
        data = _load_digits(seed)
    elif name in ("fashion-mnist", "mnist"):
        data = _load_idx_dataset(name, data_dir, seed)
    elif name == "cifar10":
        data = _load_cifar10(data_dir, seed)
    else:
        raise PruneInfoError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}")
    return replace(data, classes=CLASSES[name])
