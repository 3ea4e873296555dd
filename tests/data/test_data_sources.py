"""A user's own data: image folders, arrays and factories, through every command.

The tests write their own data: the bundled digits as PNG files in class folders (named so that
the alphabetical order of an image folder is not the digits' order), as an ``.npz`` of arrays,
and a factory module returning a ``TensorDataset``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import assert_refused
from PIL import Image

from prune_info.checkpoint import data_for, load_checkpoint, save_checkpoint
from prune_info.data import (
    StreamSplit,
    in_memory,
    load_dataset,
    match_classes,
    parse_data_spec,
)
from prune_info.errors import PruneInfoError, PruneInfoNote
from prune_info.nn import accuracy

#: Class names whose alphabetical order (eight, five, four, nine, one, ...) is not 0..9.
NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return (bunch.images * 255 / 16).astype(np.uint8), bunch.target.astype(np.int64)


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory) -> Path:
    """The digits as 8x8 grey PNGs: ``train/`` (all but 300) and ``test/`` (300), per class."""
    root = tmp_path_factory.mktemp("imgs") / "digits"
    images, labels = _digits_arrays()
    for i, (image, label) in enumerate(zip(images, labels)):
        part = "test" if i < 300 else "train"
        folder = root / part / NAMES[label]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image, mode="L").save(folder / f"{i:04d}.png")
    return root


@pytest.fixture(scope="module")
def npz_file(tmp_path_factory) -> Path:
    images, labels = _digits_arrays()
    path = tmp_path_factory.mktemp("npz") / "digits.npz"
    np.savez(path, x=images, y=labels, classes=np.array(NAMES))
    return path


def test_an_image_folder_is_read_in_batches_with_alphabetical_classes(image_folder):
    data = load_dataset(f"imagefolder:{image_folder}")
    assert data.classes == tuple(sorted(NAMES))
    assert isinstance(data.train, StreamSplit) and data.input_shape == (1, 8, 8)
    assert (len(data.train), len(data.val), len(data.test)) == (1198, 299, 300)
    x, y = next(iter(data.test.batches(16)))
    assert x.shape == (16, 1, 8, 8) and x.dtype == torch.float32
    # normalised by the training images' statistics (auto): near zero mean, unit spread
    whole = in_memory(data.train).x
    assert abs(float(whole.mean())) < 0.1 and abs(float(whole.std()) - 1) < 0.1
    # every image under its folder's label: the test split's labels count as the digits do
    images, labels = _digits_arrays()
    y_test = data.test.targets()
    want = torch.bincount(torch.as_tensor(labels[:300]), minlength=10)
    got = torch.bincount(y_test, minlength=10)
    assert [int(got[data.classes.index(NAMES[d])]) for d in range(10)] == want.tolist()
    # resized and repeated for a model that takes 3x16x16, batch by batch
    wide = load_dataset(f"imagefolder:{image_folder}", input_shape=(3, 16, 16))
    assert next(iter(wide.val.batches(4)))[0].shape == (4, 3, 16, 16)


def test_a_folder_without_splits_is_cut_60_20_20_seeded(image_folder):
    data = load_dataset(f"imagefolder:{image_folder / 'train'}", seed=3)
    again = load_dataset(f"imagefolder:{image_folder / 'train'}", seed=3)
    assert (len(data.train), len(data.val), len(data.test)) == (899, 299, 299)
    assert data.val.indices == again.val.indices


def test_an_npz_of_arrays_is_split_and_normalised(npz_file):
    data = load_dataset(f"npz:{npz_file}")
    assert data.classes == NAMES and data.n_classes == 10
    assert (len(data.train), len(data.val), len(data.test)) == (1079, 359, 359)
    assert data.train.x.shape[1:] == (1, 8, 8)
    assert abs(float(data.train.x.mean())) < 1e-4


def _factory_module(tmp_path: Path, monkeypatch, body: str) -> str:
    (tmp_path / "userdata.py").write_text(body)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "userdata", raising=False)
    return "userdata:build"


DIGITS_FACTORY = '''
import torch
from sklearn.datasets import load_digits
from torch.utils.data import TensorDataset

class Digits(TensorDataset):
    classes = [str(i) for i in range(10)]

def build(scale=1.0):
    bunch = load_digits()
    x = torch.tensor(bunch.images, dtype=torch.float32)[:, None] / 16 * scale
    return Digits(x, torch.tensor(bunch.target))
'''


def test_a_factory_dataset_streams_with_its_classes(tmp_path, monkeypatch):
    spec = _factory_module(tmp_path, monkeypatch, DIGITS_FACTORY)
    assert parse_data_spec(f"{spec},scale=2.0").kwargs == {"scale": 2.0}
    data = load_dataset(f"{spec},scale=2.0")
    assert data.classes == tuple(str(i) for i in range(10))
    assert (len(data.train), len(data.val), len(data.test)) == (1079, 359, 359)
    x, _ = next(iter(data.val.batches(8)))
    assert float(x.max()) > 1.0  # scaled by the factory's argument


def test_a_class_order_mismatch_is_renumbered_and_other_classes_refused(image_folder,
                                                                          npz_file):
    folder = load_dataset(f"imagefolder:{image_folder}")
    with pytest.warns(PruneInfoNote, match="numbers its classes in another order"):
        matched = match_classes(folder, NAMES, "model.pt")
    assert matched.classes == NAMES
    # each test image gets its digit back (files are read class folder by class folder)
    want = [NAMES.index(c) for c in sorted(NAMES)
            for _ in sorted((image_folder / "test" / c).iterdir())]
    y = torch.cat([yy for _, yy in matched.test.batches(100)])
    assert y.tolist() == want
    with pytest.raises(PruneInfoError, match="model.pt's 3 classes .* are not the data's 10"):
        match_classes(folder, ["cat", "dog", "bird"], "model.pt")


def test_a_model_trained_on_arrays_is_evaluated_on_the_folder_with_its_classes(
        npz_file, image_folder, tmp_path):
    from prune_info.training.loop import TrainConfig, train_model

    arrays = load_dataset(f"npz:{npz_file}")
    ckpt = train_model(arrays, "64-16-10", config=TrainConfig(epochs=2), progress=False)
    assert ckpt.dataset["classes"] == list(NAMES)
    path = tmp_path / "m.pt"
    save_checkpoint(ckpt, path)
    loaded = load_checkpoint(path)
    with pytest.warns(PruneInfoNote, match="another order"):
        folder = data_for(loaded, f"imagefolder:{image_folder}")
    # the folder's images, read as the model was trained (same normalisation), score as the
    # same images of the npz do: the class order was put right
    images, labels = _digits_arrays()
    x = torch.tensor(images[:300], dtype=torch.float32)[:, None] / 255.0
    norm = arrays.normalisation
    x = (x - norm["mean"][0]) / norm["std"][0]
    want = float((loaded.model(x).argmax(1) == torch.as_tensor(labels[:300])).double().mean())
    assert accuracy(loaded.model, folder.test) == pytest.approx(want)
    assert want > 0.5


def test_a_wrapped_training_checkpoint_is_unwrapped(tmp_path, digits_mlp):
    sd = digits_mlp.model.state_dict()
    for name, wrapped in (("plain", {"model": sd, "epoch": 3, "optimizer": {"lr": 0.1}}),
                          ("lightning", {"state_dict": {f"model.{k}": v for k, v in sd.items()},
                                         "epoch": 7}),
                          ("ddp", {f"module.{k}": v for k, v in sd.items()})):
        path = tmp_path / f"{name}.pt"
        torch.save(wrapped, path)
        with pytest.warns(PruneInfoNote):
            ckpt = load_checkpoint(path, arch=digits_mlp.arch)
        assert torch.equal(ckpt.model.fc1.weight, digits_mlp.model.fc1.weight), name
    nested = tmp_path / "nested.pt"
    torch.save({"ema": {"weights": sd}, "step": 1}, nested)
    with pytest.raises(PruneInfoError, match="is not a prune-info checkpoint or a state_dict"):
        load_checkpoint(nested, arch=digits_mlp.arch)
    assert torch.equal(load_checkpoint(nested, arch=digits_mlp.arch,
                                       state_dict_key="ema.weights").model.fc2.weight,
                       digits_mlp.model.fc2.weight)
    with pytest.raises(PruneInfoError, match="has no `state_dict_key` 'ema.w'"):
        load_checkpoint(nested, arch=digits_mlp.arch, state_dict_key="ema.w")


@pytest.mark.parametrize("source", ["imagefolder", "npz", "factory"])
def test_every_source_goes_through_every_command(source, image_folder, npz_file, tmp_path,
                                                 monkeypatch, run_cli):
    spec = {"imagefolder": f"imagefolder:{image_folder}", "npz": f"npz:{npz_file}",
            "factory": _factory_module(tmp_path, monkeypatch, DIGITS_FACTORY)}[source]
    model, pruned, retrained = (str(tmp_path / n) for n in ("m.pt", "p.pt", "r.pt"))
    steps = [
        ["train", "--data", spec, "--arch", "64-24-10", "--epochs", "2", "--quiet", "-o", model],
        ["score", model, "--criteria", "mi,kl", "--max-samples", "200",
         "--out", str(tmp_path / "s.json")],
        ["ablate", model, "--criteria", "mi", "--random", "1", "--max-samples", "100"],
        ["prune", model, "--amount", "0.5", "-o", pruned],
        ["retrain", pruned, "--epochs", "1", "--quiet", "-o", retrained],
        ["export", retrained, "-o", str(tmp_path / "r.onnx")],
        ["bench", model, retrained, "--batch", "1", "--repeat", "2", "--quiet"],
    ]
    for args in steps:
        if source == "factory" and args[0] != "train":
            args = [*args[:2], "--data", spec, *args[2:]]  # a recorded factory is named again
        code, out, err = run_cli(*args)
        assert code == 0, (args, err)
    recorded = torch.load(model, weights_only=True)["dataset"]
    assert recorded["name"] == (spec if source != "imagefolder"
                                else f"imagefolder:{image_folder}")
    assert len(recorded["classes"]) == 10
    scores = json.loads((tmp_path / "s.json").read_text())
    assert scores["dataset"] == recorded["name"]
    if source == "factory":  # recorded, but not run again unless named or trusted
        assert_refused(run_cli, tmp_path, ["score", model], "records the data factory",
                       "--trust-factory")


def test_data_dir_for_a_source_that_reads_no_files_is_refused(run_cli, tmp_path, mlp_path):
    assert_refused(run_cli, tmp_path, ["train", "--data-dir", str(tmp_path), "-o",
                                       str(tmp_path / "m.pt")], "--data-dir", "imagefolder:DIR")
    assert_refused(run_cli, tmp_path, ["score", str(mlp_path), "--data-dir", str(tmp_path)],
                   "--data-dir", "leave it out")


def _write_png(path: Path, size=(8, 8)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros(size[::-1], dtype=np.uint8), mode="L").save(path)


def test_bad_image_folders_are_one_line_naming_the_problem(tmp_path, run_cli):
    out = str(tmp_path / "m.pt")
    empty = tmp_path / "empty"
    empty.mkdir()
    bare = tmp_path / "bare"
    _write_png(bare / "a" / "1.png")
    (bare / "b").mkdir()
    broken = tmp_path / "broken"
    for c in "ab":
        for i in range(6):
            _write_png(broken / c / f"{i}.png")
    (broken / "b" / "5.png").write_bytes(b"not a png at all")
    mixed = tmp_path / "mixed"
    for c in "ab":
        for i in range(6):
            _write_png(mixed / c / f"{i}.png", size=(8, 8) if i < 3 else (9, 7))
    for folder, expected in ((empty, "holds no class folder"),
                             (bare, "class folder"),
                             (tmp_path / "missing", "no such folder"),
                             (broken, "5.png cannot be read"),
                             (mixed, "--input-shape")):
        assert_refused(run_cli, tmp_path, ["train", "--data", f"imagefolder:{folder}",
                                           "--arch", "64-4-2", "--epochs", "1", "--quiet",
                                           "-o", out], expected)


@pytest.mark.parametrize("arrays,expected", [
    ({"y": np.zeros(4, dtype=np.int64)}, "no array 'x'"),
    ({"x": np.zeros((4, 8)), "y": np.array([0, 1, 2, 5]), "classes": np.array(["a", "b"])},
     "label 5, outside the 2 classes"),
    ({"x": np.full((4, 8), np.nan), "y": np.array([0, 1, 0, 1])}, "NaN"),
    ({"x": np.zeros((4, 8)), "y": np.array([0, 1, 0])}, "3 labels for 4 samples"),
    ({"x": np.zeros((4, 8)), "y": np.array([0.0, 1.0, 0.0, 1.0])}, "integer labels"),
])
def test_bad_npz_files_are_malformed_naming_the_array(tmp_path, run_cli, arrays, expected):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    assert_refused(run_cli, tmp_path, ["train", "--data", f"npz:{path}", "--arch", "8-4-2",
                                       "--epochs", "1", "--quiet", "-o",
                                       str(tmp_path / "m.pt")], "is malformed", expected)


@pytest.mark.parametrize("body,expected", [
    ("def build():\n    raise RuntimeError('no such bucket')\n", "raised RuntimeError: no such"),
    ("def build():\n    return [1, 2, 3]\n", "returned list"),
    ("import sys\ndef build():\n    sys.exit(4)\n", "sys.exit(4)"),
    ("import torch\nfrom torch.utils.data import TensorDataset\n"
     "def build():\n    return {'training': TensorDataset(torch.zeros(4, 2), torch.zeros(4))}\n",
     "use the keys train"),
])
def test_a_factory_that_fails_or_returns_something_else_is_one_line(tmp_path, monkeypatch,
                                                                    run_cli, body, expected):
    spec = _factory_module(tmp_path, monkeypatch, body)
    assert_refused(run_cli, tmp_path, ["train", "--data", spec, "--arch", "2-4-2", "--epochs",
                                       "1", "--quiet", "-o", str(tmp_path / "m.pt")], expected)
