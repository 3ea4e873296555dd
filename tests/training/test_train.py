import pytest
import torch

from prune_info._torch import resolve_device
from prune_info.errors import PruneInfoError
from prune_info.nn import accuracy
from prune_info.training.loop import TrainConfig, train_model


def test_same_seed_gives_the_same_weights(digits):
    cfg = TrainConfig(epochs=2, seed=7)
    a = train_model(digits, "64-16-10", config=cfg, progress=False)
    b = train_model(digits, "64-16-10", config=cfg, progress=False)
    c = train_model(digits, "64-16-10", config=TrainConfig(epochs=2, seed=8), progress=False)
    for key, value in a.model.state_dict().items():
        assert torch.equal(value, b.model.state_dict()[key])
    assert not torch.equal(a.model.state_dict()["fc1.weight"], c.model.state_dict()["fc1.weight"])


def test_model_selection_uses_validation_only(digits):
    ckpt = train_model(digits, "64-16-10", config=TrainConfig(epochs=4), progress=False)
    history = ckpt.metrics["history"]
    best = max(history, key=lambda h: h["val_acc"])
    assert ckpt.metrics["best_epoch"] == best["epoch"]
    assert ckpt.metrics["val_acc"] == pytest.approx(accuracy(ckpt.model, digits.val))
    assert ckpt.metrics["test_acc"] == pytest.approx(accuracy(ckpt.model, digits.test))


def test_defaults_follow_the_first_paper(digits):
    ckpt = train_model(digits, "64-8-10", reg="l2", config=TrainConfig(epochs=1), progress=False)
    cfg = ckpt.train_config
    assert (cfg["optimizer"], cfg["lr"], cfg["momentum"], cfg["batch_size"]) == (
        "rmsprop", 1e-3, 0.01, 32)
    assert cfg["weight_decay"] == 1e-4


def test_digits_mlp_learns(digits_mlp):
    assert digits_mlp.metrics["test_acc"] > 0.85


def test_rewind_steps_are_kept(digits):
    ckpt = train_model(digits, "64-8-10", config=TrainConfig(epochs=1, save_rewind_steps=(0, 5)),
                       progress=False)
    assert sorted(ckpt.rewind_state_dicts) == [0, 5]
    assert torch.equal(ckpt.rewind_state_dicts[0]["fc1.weight"], ckpt.init_state_dict["fc1.weight"])
    with pytest.raises(PruneInfoError, match="beyond"):
        train_model(digits, "64-8-10", config=TrainConfig(epochs=1, save_rewind_steps=(10**6,)),
                    progress=False)


def test_cuda_request_without_cuda_is_explained():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(PruneInfoError, match="no CUDA device"):
        resolve_device("cuda")
    assert resolve_device("auto").type == "cpu"


@pytest.mark.fashion
def test_fashion_mnist_trains_fast_enough_to_be_useful(fashion):
    ckpt = train_model(fashion, "784-100-100-10", "relu", "l2", TrainConfig(epochs=1),
                       progress=False)
    assert ckpt.metrics["test_acc"] > 0.8
