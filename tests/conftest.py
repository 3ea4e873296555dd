"""Shared fixtures: small trained models on the bundled digits data, dataset availability."""

from __future__ import annotations

import os

import pytest
import torch

from prune_info._torch import torch_threads
from prune_info.data import DEBIAN_FASHION_DIR, load_dataset
from prune_info.training.loop import TrainConfig, train_model


def _require_data() -> bool:
    return os.environ.get("PRUNE_INFO_REQUIRE_DATA") == "1"


@pytest.fixture(scope="module")
def one_thread():
    """Run a test module on one intra-op thread (ask for it with ``usefixtures``)."""
    with torch_threads(1):
        yield


@pytest.fixture(scope="session")
def fashion_dir():
    """Directory of the FashionMNIST files; skip (or fail under PRUNE_INFO_REQUIRE_DATA=1)."""
    for candidate in (os.environ.get("PRUNE_INFO_DATA"), str(DEBIAN_FASHION_DIR)):
        if candidate and os.path.isfile(os.path.join(candidate, "train-images-idx3-ubyte.gz")):
            return candidate
    message = "FashionMNIST not found: apt-get install dataset-fashion-mnist"
    if _require_data():
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def fashion(fashion_dir):
    return load_dataset("fashion-mnist", fashion_dir)


@pytest.fixture(scope="session")
def digits():
    return load_dataset("digits", seed=0)


@pytest.fixture(scope="session")
def digits_mlp(digits):
    """A 64-32-24-10 ReLU MLP trained for a few epochs on digits (checkpoint object)."""
    torch.manual_seed(0)
    return train_model(digits, "64-32-24-10", "relu", "l2", TrainConfig(epochs=8, seed=0),
                       progress=False)


@pytest.fixture(scope="session")
def digits_cnn(digits):
    """A small CNN with BatchNorm (c6-c8-f16) trained briefly on digits."""
    return train_model(digits, "c6-c8-f16", "relu", "none", TrainConfig(epochs=4, seed=0),
                       batchnorm=True, progress=False)


@pytest.fixture()
def mlp_path(digits_mlp, tmp_path):
    """The trained digits MLP saved as a checkpoint file in a fresh temporary directory."""
    from prune_info.checkpoint import save_checkpoint

    path = tmp_path / "model.pt"
    save_checkpoint(digits_mlp, path)
    return path


@pytest.fixture()
def cnn_path(digits_cnn, tmp_path):
    from prune_info.checkpoint import save_checkpoint

    path = tmp_path / "cnn.pt"
    save_checkpoint(digits_cnn, path)
    return path


@pytest.fixture()
def run_cli():
    """Run the CLI in-process; returns (exit_code, stdout, stderr)."""
    from click.testing import CliRunner

    from prune_info.cli.app import main

    def run(*args: str):
        runner = CliRunner()
        result = runner.invoke(_as_command(main), list(args), catch_exceptions=False)
        return result.exit_code, result.stdout, result.stderr

    return run


def _as_command(main):
    import click

    @click.command(context_settings={"ignore_unknown_options": True,
                                     "allow_extra_args": True, "help_option_names": []})
    @click.pass_context
    def wrapper(ctx):
        main(list(ctx.args))

    return wrapper
