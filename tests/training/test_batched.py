"""Many seeds trained as one batched model reproduce single-seed training."""

from __future__ import annotations

import pytest
import torch

from prune_info.errors import PruneInfoError
from prune_info.training.batched import BlockedRMSprop, StackedMLP, train_seeds, train_stacked
from prune_info.training.loop import TrainConfig, train_model
from prune_info.zoo import build_model, parse_arch

# Tiny tensors: a second intra-op thread only adds wake-up latency on a loaded machine.
pytestmark = pytest.mark.usefixtures("one_thread")


def _max_difference(a: dict, b: dict) -> float:
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def test_stack_initialisation_equals_build_model_for_each_seed(digits):
    arch = parse_arch("64-16-12-10", digits.input_shape, 10, "relu", "l2")
    stack = StackedMLP(arch, [3, 0, 11])
    for index, seed in enumerate([3, 0, 11]):
        torch.manual_seed(seed)
        reference = build_model(arch).state_dict()
        state = stack.seed_state_dict(index)
        assert state.keys() == reference.keys()
        assert all(torch.equal(state[k], reference[k]) for k in reference)


@pytest.mark.parametrize("reg", ["l2", "dropout", "bn-dropout"])
def test_batched_training_matches_single_seed_training(digits, reg):
    # batch 8: 135 steps per epoch, 270 optimiser steps in all
    config = TrainConfig(epochs=2, batch_size=8)
    seeds = [0, 1, 2]
    batched = train_seeds(digits, "64-16-12-10", seeds, "relu", reg, config, progress=False)
    for ckpt in batched:
        alone = train_model(digits, "64-16-12-10", "relu", reg,
                            TrainConfig(epochs=2, batch_size=8, seed=ckpt.seed),
                            progress=False)
        assert ckpt.metrics["trained"] == "batched"
        assert _max_difference(ckpt.init_state_dict, alone.init_state_dict) == 0.0
        if reg == "bn-dropout":
            # BatchNorm of 8 samples amplifies float32 rounding within these 270 steps (the
            # float64 test below shows the arithmetic is the same): equally good networks
            with torch.no_grad():
                agree = (ckpt.model(digits.test.x).argmax(1)
                         == alone.model(digits.test.x).argmax(1)).float().mean()
            assert float(agree) > 0.9  # measured 0.93-0.96 (networks at 62-77 %)
            assert abs(ckpt.metrics["test_acc"] - alone.metrics["test_acc"]) < 0.02
            continue
        assert _max_difference(ckpt.model.state_dict(), alone.model.state_dict()) < 1e-4
        assert ckpt.metrics["best_epoch"] == alone.metrics["best_epoch"]
        assert [h["val_acc"] for h in ckpt.metrics["history"]] == \
            [h["val_acc"] for h in alone.metrics["history"]]
        with torch.no_grad():
            assert torch.equal(ckpt.model(digits.test.x).argmax(1),
                               alone.model(digits.test.x).argmax(1))
        assert ckpt.metrics["test_acc"] == alone.metrics["test_acc"]
        assert ckpt.train_config["seed"] == ckpt.seed


@pytest.mark.parametrize("reg, tolerance", [("l2", 1e-12), ("dropout", 1e-12),
                                            ("bn-dropout", 1e-8)])
def test_in_float64_batched_training_is_single_seed_training(digits, reg, tolerance):
    """Without float32 rounding to amplify, the two agree to the last digits: same arithmetic
    (BatchNorm: the same formulas, which torch's fused kernels round differently)."""
    from dataclasses import replace

    from prune_info.data import Split
    from prune_info.training.loop import fit

    data = replace(digits, **{name: Split(getattr(digits, name).x.double(),
                                          getattr(digits, name).y)
                              for name in ("train", "val", "test")})
    arch = parse_arch("64-16-12-10", digits.input_shape, 10, "relu", reg)
    config = TrainConfig(epochs=2, batch_size=8)
    stack = StackedMLP(arch, [0, 5]).double()
    train_stacked(stack, data, config, progress=False)
    for index, seed in enumerate([0, 5]):
        torch.manual_seed(seed)
        alone = build_model(arch).double()
        fit(alone, data, TrainConfig(epochs=2, batch_size=8, seed=seed), reg=reg,
            progress=False)
        mine, theirs = stack.seed_state_dict(index), alone.state_dict()
        assert mine.keys() == theirs.keys()
        assert _max_difference(mine, theirs) < tolerance


def test_blocked_rmsprop_equals_torch_rmsprop_bit_for_bit():
    gen = torch.Generator().manual_seed(0)
    mine = [torch.randn(3, 70, 50, generator=gen), torch.randn(3, 50, generator=gen)]
    theirs = [p.clone() for p in mine]
    optimiser = BlockedRMSprop(mine, lr=1e-3, momentum=0.01, weight_decay=1e-4, block=1000)
    reference = torch.optim.RMSprop(theirs, lr=1e-3, momentum=0.01, weight_decay=1e-4)
    for _ in range(5):
        grads = [torch.randn(p.shape, generator=gen) for p in mine]
        for p, q, g in zip(mine, theirs, grads):
            p.grad, q.grad = g.clone(), g.clone()
        optimiser.step()
        reference.step()
    assert all(torch.equal(p, q) for p, q in zip(mine, theirs))


@pytest.mark.parametrize("reg", ["dropout", "bn-dropout"])
def test_interrupted_batched_training_resumes_to_the_same_weights(digits, tmp_path, reg):
    arch = parse_arch("64-16-10", digits.input_shape, 10, "relu", reg)
    config = TrainConfig(epochs=3)
    whole = StackedMLP(arch, [4, 5])
    train_stacked(whole, digits, config, progress=False)

    state = tmp_path / "state.pt"

    def stop_after_first(epoch):
        if epoch == 1:
            raise KeyboardInterrupt

    first = StackedMLP(arch, [4, 5])
    with pytest.raises(KeyboardInterrupt):
        train_stacked(first, digits, config, progress=False, state_path=state,
                      on_epoch=stop_after_first)
    assert state.exists()
    epochs_run = []
    resumed = StackedMLP(arch, [4, 5])
    result = train_stacked(resumed, digits, config, progress=False, state_path=state,
                           on_epoch=epochs_run.append)
    assert epochs_run == [2, 3]
    assert [len(h) for h in result.history] == [3, 3]
    for a, b in zip(resumed.state_dict().values(), whole.state_dict().values()):
        assert torch.equal(a, b)
    # the final state stays until the caller removes it; using it again trains nothing
    epochs_run.clear()
    again = StackedMLP(arch, [4, 5])
    train_stacked(again, digits, config, progress=False, state_path=state,
                  on_epoch=epochs_run.append)
    assert epochs_run == []
    for a, b in zip(again.state_dict().values(), whole.state_dict().values()):
        assert torch.equal(a, b)


def test_models_that_cannot_be_stacked_are_trained_seed_after_seed(digits):
    config = TrainConfig(epochs=1, save_rewind_steps=(2,))
    ckpts = train_seeds(digits, "64-8-10", [0, 1], "relu", "l2", config, progress=False)
    alone = train_model(digits, "64-8-10", "relu", "l2",
                        TrainConfig(epochs=1, seed=1, save_rewind_steps=(2,)), progress=False)
    assert "trained" not in ckpts[1].metrics
    assert _max_difference(ckpts[1].model.state_dict(), alone.model.state_dict()) == 0.0


def test_bad_stack_inputs_are_refused(digits):
    arch = parse_arch("64-8-10", digits.input_shape, 10)
    stack = StackedMLP(arch, [0, 1])
    with pytest.raises(PruneInfoError, match="needs inputs"):
        stack(torch.zeros(5, 64))
    with pytest.raises(PruneInfoError, match="seeds repeat"):
        train_seeds(digits, "64-8-10", [1, 1], progress=False)
    with pytest.raises(PruneInfoError, match="only MLPs"):
        StackedMLP(parse_arch("c4-f8", digits.input_shape, 10), [0])
