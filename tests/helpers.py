"""Helpers shared by the tests: planted units and tasks with known answers, refusal checks."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from prune_info.data import Dataset, Split
from prune_info.errors import PruneInfoError
from prune_info.nn import get_module

# --------------------------------------------------------------------------------------------
# Planted units (for tests and demonstrations where the right answer is known)


@torch.no_grad()
def plant_units(
    model: nn.Module,
    layer: str,
    x: torch.Tensor | None = None,
    y: torch.Tensor | None = None,
    dead: tuple[int, ...] = (),
    always_active: tuple[int, ...] = (),
    duplicates: tuple[tuple[int, int], ...] = (),
    selective: dict[int, int] | None = None,
) -> nn.Module:
    """Plant units with known information content into a Linear hidden layer (ReLU), in place.

    * ``dead``: zero incoming weights, bias −1, so the ReLU output is always 0 (entropy 0).
    * ``always_active``: zero incoming weights, bias +1, so the output is always 1 (entropy 0).
    * ``duplicates``: pairs ``(src, dst)``; unit ``dst`` gets ``src``'s incoming weights and bias
      (identical outputs, so identical scores). Outgoing weights are left as they are.
    * ``selective``: ``{unit: class}``; the unit becomes a linear detector of that class on this
      layer's inputs ``(x, y)``: weights along the difference of class means, threshold halfway
      between the two projected means. It fires (almost) only for that class.

    ``x`` and ``y`` (the data) are needed for ``selective`` only; they are fed through the model
    up to ``layer`` to get the layer's inputs.
    """
    target = get_module(model, layer)
    if not isinstance(target, nn.Linear):
        raise PruneInfoError(
            f"plant_units needs a Linear layer; {layer} is {type(target).__name__}")
    w, b = target.weight, target.bias
    for j in dead:
        w[j].zero_()
        b[j] = -1.0
    for j in always_active:
        w[j].zero_()
        b[j] = 1.0
    for src, dst in duplicates:
        w[dst].copy_(w[src])
        b[dst] = b[src]
    if selective:
        if x is None or y is None:
            raise PruneInfoError("plant_units(selective=...) needs the data x and y")
        captured = {}
        handle = target.register_forward_pre_hook(lambda m, inp: captured.setdefault("x", inp[0]))
        was_training = model.training
        model.eval()
        model(x)
        model.train(was_training)
        handle.remove()
        inputs = captured["x"].flatten(1)
        for j, cls in selective.items():
            mask = y == cls
            direction = inputs[mask].mean(0) - inputs[~mask].mean(0)
            direction = direction / direction.norm().clamp_min(1e-12)
            proj = inputs @ direction
            threshold = 0.5 * (proj[mask].mean() + proj[~mask].mean())
            w[j].copy_(direction * 10.0)
            b[j] = -10.0 * threshold
    return model


# --------------------------------------------------------------------------------------------
# Planted tasks, where the right answer is known


def xor_task(n: int = 4000, n_noise: int = 2, noise: float = 0.1, seed: int = 0) -> Dataset:
    """Example 4 of Amjad et al.: two binary features, each independent of the class, whose XOR
    decides it.

    Features 0 and 1 are ±1 signs plus Gaussian jitter; the class is 1 when their signs differ.
    ``n_noise`` further features are pure noise. Splits are 60 / 20 / 20, seeded.
    """
    gen = torch.Generator().manual_seed(seed)
    signs = torch.randint(0, 2, (n, 2), generator=gen) * 2 - 1
    y = (signs[:, 0] != signs[:, 1]).long()
    x = torch.cat(
        [signs.float() + noise * torch.randn(n, 2, generator=gen),
         torch.randn(n, n_noise, generator=gen)],
        dim=1,
    )
    x = x[:, None, None, :]  # [N, 1, 1, F]: same layout as images
    perm = torch.randperm(n, generator=gen)
    a, b = int(0.6 * n), int(0.8 * n)
    parts = [perm[:a], perm[a:b], perm[b:]]
    s = [Split(x[idx].contiguous(), y[idx]) for idx in parts]
    return Dataset("xor", s[0], s[1], s[2], 2, {"scale": 1.0, "mean": [0.0], "std": [1.0]}, seed)


def tiny_resnet(n_classes: int = 10, width: int = 8) -> torch.nn.Module:
    """A two-block residual CNN in torchvision's style (one ReLU module used twice per block)."""
    from torch import nn

    class Block(nn.Module):
        def __init__(self, c: int):
            super().__init__()
            self.conv1, self.bn1 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
            self.relu = nn.ReLU(inplace=True)  # registered where torchvision's BasicBlock has it
            self.conv2, self.bn2 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)

        def forward(self, x):
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            out += x
            return self.relu(out)

    return nn.Sequential(nn.Conv2d(1, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
                         Block(width), Block(width), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(width, n_classes))


# --------------------------------------------------------------------------------------------
# Optional extras


def import_extra(name: str):
    """Import an optional extra (ray, mlflow), or skip the test when it is not installed.

    Under ``PRUNE_INFO_REQUIRE_EXTRAS=1`` (CI, which installs every extra) a missing extra fails
    the test instead, so the tests that need it cannot silently stop running.
    """
    import importlib
    import os

    import pytest

    if os.environ.get("PRUNE_INFO_REQUIRE_EXTRAS") == "1":
        return importlib.import_module(name)
    return pytest.importorskip(name)


# --------------------------------------------------------------------------------------------
# Refusals: exit 2, one line, nothing written


def snapshot(root: Path) -> dict[str, tuple[int, int, int]]:
    """Every file under ``root`` with its size, mtime and mode (links as links)."""
    stats = {str(p.relative_to(root)): p.lstat() for p in sorted(root.rglob("*"))}
    return {name: (st.st_size, st.st_mtime_ns, st.st_mode) for name, st in stats.items()}


def assert_refused(run_cli, root: Path, args: list[str], *expected: str) -> str:
    """Exit 2, one error line (after ``run``'s stage lines, if any), nothing written."""
    before = snapshot(root)
    code, stdout, stderr = run_cli(*args)
    assert code == 2, (args, stdout, stderr)
    lines = [line for line in stderr.strip().splitlines() if not line.startswith("stage ")]
    assert len(lines) == 1 and lines[0].startswith("error: "), (args, stderr)
    assert "Traceback" not in stderr
    for text in expected:
        assert text in lines[0], (args, lines[0])
    assert snapshot(root) == before, args
    return lines[0]


# --------------------------------------------------------------------------------------------
# Models trained briefly


def adam_steps(model: nn.Module, train: Split, steps: int, lr: float = 1e-2,
               batch: int = 128) -> nn.Module:
    """``model`` after ``steps`` seeded Adam steps on random batches of ``train``, in eval mode:
    enough for its predictions to depend on its units, in about a second."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    gen = torch.Generator().manual_seed(0)
    for _ in range(steps):
        idx = torch.randint(len(train), (batch,), generator=gen)
        opt.zero_grad()
        nn.functional.cross_entropy(model(train.x[idx]), train.y[idx]).backward()
        opt.step()
    return model.eval()


def zero_heads_at(model: nn.Module, projection: str, heads, head_dim: int) -> None:
    """Zero the outputs of ``heads`` where the output projection ``projection`` reads them
    (their ``head_dim`` columns of its input), by hand, for a masked reference."""
    cols = torch.tensor([h * head_dim + d for h in heads for d in range(head_dim)])
    model.get_submodule(projection).register_forward_pre_hook(
        lambda m, args: (args[0].index_fill(-1, cols, 0.0),))


def zero_units_at(model: nn.Module, module: str, units) -> None:
    """Zero units ``units`` (last axis) of ``module``'s output, by hand."""
    index = torch.tensor(list(units))
    model.get_submodule(module).register_forward_hook(
        lambda m, i, o: o.index_fill(-1, index, 0.0))

