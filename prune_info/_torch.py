"""PyTorch settings decided once: which device, and how many CPU threads a block runs on.

Thread policy
-------------
Small operations (batch-32 training steps, count-table updates, the few-sample forward passes of
tracing and checking) are slower on two threads than on one: waking a second OpenMP thread costs
more than the work it takes over, and on a shared machine a barrier waiting for a descheduled
thread turns a 0.05 ms matmul into tens of milliseconds. Such blocks run under
:func:`torch_threads` with ``1``; large forward passes keep the process setting.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from prune_info.errors import PruneInfoError

__all__ = ["resolve_device", "small_batch_threads", "torch_threads"]

#: Batches up to this size train on one CPU thread (see :func:`small_batch_threads`).
SMALL_BATCH = 256


def resolve_device(device: str | torch.device) -> torch.device:
    """Turn ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or ``"auto"`` into a usable ``torch.device``.

    Raises
    ------
    PruneInfoError
        If the device name is invalid or CUDA is asked for but not available.

    Examples
    --------
    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if isinstance(device, torch.device):
        resolved = device
    elif device == "auto":
        resolved = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        try:
            resolved = torch.device(device)
        except (RuntimeError, TypeError) as exc:
            raise PruneInfoError(
                f"unknown device {device!r}; fix: use cpu, cuda, cuda:N or auto"
            ) from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise PruneInfoError(
            f"device {device}: no CUDA device is available; fix: use device cpu or auto"
        )
    return resolved


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run a block with ``threads`` intra-op threads in PyTorch, then restore the setting.

    ``None`` leaves the setting as it is.

    Examples
    --------
    >>> before = torch.get_num_threads()
    >>> with torch_threads(1):
    ...     torch.get_num_threads()
    1
    >>> torch.get_num_threads() == before
    True
    """
    before = torch.get_num_threads()
    if threads is not None and threads != before:
        torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def small_batch_threads(device: torch.device, batch_size: int) -> contextlib.AbstractContextManager:
    """One CPU thread for batches of at most :data:`SMALL_BATCH` samples; unchanged otherwise.

    Measured on 2 cores, an epoch of 784-100-100-10 on FashionMNIST at batch 32 takes 4.3 s with
    two threads and 1.3 s with one (benchmarks/RESULTS.md).
    """
    small = device.type == "cpu" and batch_size <= SMALL_BATCH
    return torch_threads(1 if small else None)
