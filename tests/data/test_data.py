import gzip
import pickle

import numpy as np
import pytest
import torch
from helpers import xor_task

from prune_info.data import load_dataset, read_idx
from prune_info.errors import PruneInfoError


def test_digits_split_is_60_20_20_and_disjoint(digits):
    assert (len(digits.train), len(digits.val), len(digits.test)) == (1078, 359, 360)
    assert digits.input_shape == (1, 8, 8)
    rows = torch.cat([digits.train.x, digits.val.x, digits.test.x]).flatten(1)
    # every image of the 1,797 appears once (digits has a few exact duplicates, so compare counts)
    assert rows.shape[0] == 1797
    assert digits.train.y.unique().numel() == 10


def test_digits_is_standardised_on_the_training_split(digits):
    assert digits.train.x.mean().item() == pytest.approx(0.0, abs=1e-5)
    assert digits.train.x.std().item() == pytest.approx(1.0, abs=1e-3)


def test_same_seed_same_split_other_seed_other_split():
    a, b = load_dataset("digits", seed=3), load_dataset("digits", seed=3)
    c = load_dataset("digits", seed=4)
    assert torch.equal(a.val.y, b.val.y) and torch.equal(a.val.x, b.val.x)
    assert not torch.equal(a.val.x, c.val.x)


def test_unknown_dataset_lists_the_known_ones():
    with pytest.raises(PruneInfoError, match="choose one of: digits, fashion-mnist"):
        load_dataset("imagenet")


def _write_idx(path, array):
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape
    )
    with gzip.open(path, "wb") as fh:
        fh.write(header + array.astype(np.uint8).tobytes())


def _fake_mnist(root, n_train=50, n_test=20):
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    _write_idx(root / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (n_train, 28, 28)))
    _write_idx(root / "train-labels-idx1-ubyte.gz", np.arange(n_train) % 10)
    _write_idx(root / "t10k-images-idx3-ubyte.gz", rng.integers(0, 256, (n_test, 28, 28)))
    _write_idx(root / "t10k-labels-idx1-ubyte.gz", np.arange(n_test) % 10)


def test_mnist_from_a_torchvision_style_root(tmp_path):
    _fake_mnist(tmp_path / "MNIST" / "raw")
    ds = load_dataset("mnist", tmp_path)
    assert (len(ds.train), len(ds.val), len(ds.test)) == (40, 10, 20)
    assert ds.input_shape == (1, 28, 28)


def test_data_dir_wins_over_environment(tmp_path, monkeypatch):
    _fake_mnist(tmp_path / "a", n_train=30)
    _fake_mnist(tmp_path / "b", n_train=60)
    monkeypatch.setenv("PRUNE_INFO_DATA", str(tmp_path / "b"))
    assert len(load_dataset("mnist", tmp_path / "a").train) == 24
    assert len(load_dataset("mnist").train) == 48


def test_missing_dataset_names_every_option(tmp_path, monkeypatch):
    monkeypatch.delenv("PRUNE_INFO_DATA", raising=False)
    with pytest.raises(PruneInfoError) as err:
        load_dataset("mnist", tmp_path)
    message = str(err.value)
    for option in ("`data_dir`", "PRUNE_INFO_DATA", "torchvision", str(tmp_path)):
        assert option in message


def test_truncated_idx_file_is_reported(tmp_path):
    _fake_mnist(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    data = gzip.open(path).read()
    with gzip.open(path, "wb") as fh:
        fh.write(data[:1000])
    with pytest.raises(PruneInfoError, match="truncated"):
        read_idx(path)


def test_cifar10_pickle_batches(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()
    for name, n in [*((f"data_batch_{i}", 10) for i in range(1, 6)), ("test_batch", 8)]:
        batch = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                 b"labels": list(rng.integers(0, 10, n))}
        with open(root / name, "wb") as fh:
            pickle.dump(batch, fh)
    ds = load_dataset("cifar10", tmp_path)
    assert ds.input_shape == (3, 32, 32)
    assert (len(ds.train), len(ds.val), len(ds.test)) == (40, 10, 8)
    assert len(ds.normalisation["mean"]) == 3


@pytest.mark.fashion
def test_fashion_mnist_follows_the_paper_split(fashion):
    assert (len(fashion.train), len(fashion.val), len(fashion.test)) == (48000, 12000, 10000)
    assert fashion.input_shape == (1, 28, 28)
    assert torch.bincount(fashion.test.y).tolist() == [1000] * 10


def test_xor_features_are_individually_uninformative():
    ds = xor_task(n=20000, seed=1)
    f0 = ds.train.x[:, 0, 0, 0] > 0
    y = ds.train.y.bool()
    # P(y=1 | f0) is one half either way, but y is the XOR of the two signs
    assert y[f0].float().mean().item() == pytest.approx(0.5, abs=0.03)
    assert y[~f0].float().mean().item() == pytest.approx(0.5, abs=0.03)
    f1 = ds.train.x[:, 0, 0, 1] > 0
    assert torch.equal(f0 ^ f1, y)


def test_an_explicit_data_dir_is_the_only_place_searched(tmp_path, monkeypatch):
    # The Debian copy may be installed on this machine; it must not stand in for the directory
    # the user named, and nothing may be downloaded.
    monkeypatch.setenv("PRUNE_INFO_DATA", str(tmp_path))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(PruneInfoError, match=rf"not found \(looked in: {empty}\).*nothing is "
                                             "downloaded"):
        load_dataset("fashion-mnist", data_dir=empty)
