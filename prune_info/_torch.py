"""PyTorch settings decided once: which device, and how many CPU threads a block runs on.

Thread policy
-------------
Small operations (batch-32 training steps, count-table updates, the few-sample forward passes of
tracing and checking) are slower on two threads than on one: waking a second OpenMP thread costs
more than the work it takes over, and on a shared machine a barrier waiting for a descheduled
thread turns a 0.05 ms matmul into tens of milliseconds. Such blocks run under
:func:`torch_threads` with ``1``; large forward passes keep the process setting.

Long computations made of many medium-sized operations (ablation curves, batched multi-seed
training) run on the cores that are free when they start (:func:`shared_threads`): every core
when the machine is idle, one when other processes keep the others busy. Measured on the 2-core
machine with other jobs running (load 9): 8 ablation curves of a 100-unit layer took 10-13 s on
one thread and 52-113 s on two (benchmarks/RESULTS.md). ``prune-info --threads N`` (or
:func:`fixed_threads`) sets the number for a whole command instead.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from prune_info.errors import PruneInfoError

__all__ = ["fixed_threads", "free_cores", "memory_available", "memory_ceiling", "out_of_memory",
           "resolve_device", "shared_threads", "small_batch_threads", "time_interleaved",
           "timing_input", "torch_threads", "torch_timer"]

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
    """One CPU thread for batches of at most :data:`SMALL_BATCH` samples; the free cores
    (:func:`shared_threads`) for larger ones.

    Measured on 2 cores, an epoch of 784-100-100-10 on FashionMNIST at batch 32 takes 4.3 s with
    two threads and 1.3 s with one (benchmarks/RESULTS.md).
    """
    if _FIXED_THREADS is not None:
        return torch_threads(None)
    if device.type == "cpu" and batch_size <= SMALL_BATCH:
        return torch_threads(1)
    return shared_threads(device)


#: Threads fixed by the user (:func:`fixed_threads`); None: the adaptive policy.
_FIXED_THREADS: int | None = None


@contextlib.contextmanager
def fixed_threads(threads: int | None) -> Iterator[None]:
    """Use ``threads`` intra-op threads for every long computation of the block instead of the
    free cores (None: the policy), then restore the previous setting and policy.

    Small operations the library runs on one thread on purpose (:func:`torch_threads` with 1:
    tracing, count tables) keep that.
    """
    global _FIXED_THREADS
    if threads is not None and threads < 1:
        raise PruneInfoError(f"`threads` must be at least 1, got {threads}")
    before, fixed_before = torch.get_num_threads(), _FIXED_THREADS
    if threads is not None:
        torch.set_num_threads(int(threads))
        _FIXED_THREADS = int(threads)
    try:
        yield
    finally:
        _FIXED_THREADS = fixed_before
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def _runnable_tasks() -> int | None:
    """Tasks the kernel has runnable now, this one included (``/proc/loadavg``), or None."""
    try:
        return int(Path("/proc/loadavg").read_text().split()[3].split("/")[0])
    except (OSError, ValueError, IndexError):
        return None


def free_cores(samples: int = 3, interval: float = 0.005) -> int:
    """CPU cores of this process that no other task keeps busy right now (at least 1).

    The cores this process may run on, less the other runnable tasks of the system, at the
    quietest of ``samples`` readings ``interval`` seconds apart; all of them where the kernel
    does not say (no ``/proc``).
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
        os.cpu_count() or 1)
    readings = []
    for i in range(samples):
        if i:
            time.sleep(interval)
        running = _runnable_tasks()
        if running is None:
            return cores
        readings.append(running - 1)  # the reading thread is one of them
    return max(1, min(cores, cores - min(readings)))


def shared_threads(device: torch.device | str = "cpu") -> contextlib.AbstractContextManager:
    """Run a long CPU block on the cores free when it starts (see the module docstring).

    Never more than the process setting; unchanged for other devices, and when the user fixed
    the threads (:func:`fixed_threads`).
    """
    if _FIXED_THREADS is not None or torch.device(device).type != "cpu":
        return torch_threads(None)
    return torch_threads(min(torch.get_num_threads(), free_cores()))


def _meminfo_bytes(field: str, path: str = "/proc/meminfo") -> int | None:
    """A ``kB`` field of ``/proc/meminfo`` (or ``/proc/self/status``) in bytes, or None."""
    try:
        for line in Path(path).read_text().splitlines():
            name, _, value = line.partition(":")
            if name == field:
                return int(value.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def memory_available() -> int | None:
    """Bytes of memory the system can give without swapping (``MemAvailable``), or None."""
    return _meminfo_bytes("MemAvailable")


@contextlib.contextmanager
def memory_ceiling(extra: int | None = None) -> Iterator[None]:
    """Make the block's allocations fail rather than let the system kill the process.

    Building a model from a user's arguments (``depth=100000000``) can ask for more memory than
    the machine has, in millions of small allocations that no size check sees coming; Linux then
    kills the process (no message, status -9). Inside this block the address space is capped at
    what the process uses now plus the memory available (``MemAvailable``; at most ``extra``
    bytes, for a step that should need far less), so such a build raises ``MemoryError``
    instead, which :func:`out_of_memory` turns into one line. The cap is lifted when the block
    ends; where the kernel does not say (no ``/proc``), or a stricter cap is already set,
    nothing changes.
    """
    try:
        import resource
    except ImportError:  # not a POSIX system
        yield
        return
    available = memory_available()
    in_use = _meminfo_bytes("VmSize", "/proc/self/status")
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if available is None or in_use is None:
        yield
        return
    ceiling = in_use + (available if extra is None else min(available, extra))
    if hard != resource.RLIM_INFINITY:
        ceiling = min(ceiling, hard)
    if soft != resource.RLIM_INFINITY and soft <= ceiling:
        yield
        return
    resource.setrlimit(resource.RLIMIT_AS, (ceiling, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


#: What an allocator says when it runs out: torch's CUDA and CPU allocators, the OS (errno 12).
_OOM_TEXT = re.compile(r"out of memory|can't allocate memory|cannot allocate memory|"
                       r"not enough memory|std::bad_alloc", re.IGNORECASE)
_TRIED = re.compile(r"tried to allocate (\d+ bytes|[0-9.]+ ?[KMGTP]i?B)", re.IGNORECASE)


def _is_oom(exc: BaseException) -> bool:
    if isinstance(exc, (torch.cuda.OutOfMemoryError, MemoryError)):
        return True
    return isinstance(exc, RuntimeError) and bool(_OOM_TEXT.search(str(exc)))


def _size(text: str) -> str | None:
    found = _TRIED.search(text)
    if found is None:
        return None
    amount = found.group(1)
    if amount.endswith("bytes"):
        value = float(amount.split()[0])
        for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
            if value < 1024 or unit == "PiB":
                return f"{value:.1f} {unit}" if unit != "B" else f"{int(value)} B"
            value /= 1024
    return amount


def out_of_memory(exc: BaseException | None, lower: str | Sequence[str] | None = "batch_size",
                  device: str | None = "device") -> PruneInfoError | None:
    """The one-line error for a failed allocation anywhere in ``exc``'s chain, else ``None``.

    A ``torch.cuda.OutOfMemoryError``, the CPU allocator's "can't allocate memory"
    ``RuntimeError`` and Python's ``MemoryError`` all mean the same to a user: the work did not
    fit. The message says how much was asked for and what to lower: the parameter ``lower``
    (in backticks, so that the CLI names the command's flag; several: the first, then the others
    that also size the work; ``None`` when the caller has no such parameter), else a smaller
    model; on a GPU also the parameter ``device`` (to run on the CPU), unless it is ``None``.
    The chain (``__cause__``, ``__context__``) is searched, so a failure that another error
    wrapped is still recognised.

    Examples
    --------
    >>> err = RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate "
    ...                    "25599999999744 bytes. Error code 12 (Cannot allocate memory)")
    >>> print(out_of_memory(err))
    out of memory on the CPU (tried to allocate 23.3 TiB); lower `batch_size` or use a smaller model
    >>> out_of_memory(ValueError("bad")) is None
    True
    """
    names = [lower] if isinstance(lower, str) else list(lower or ())
    advice = "; use a smaller model"
    if names:
        advice = f"; lower `{names[0]}`"
        if len(names) > 1:
            advice += f" (or {', '.join(f'`{n}`' for n in names[1:])})"
        advice += " or use a smaller model"
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if _is_oom(exc):
            text = str(exc)
            cuda = isinstance(exc, torch.cuda.OutOfMemoryError) or "cuda" in text.lower()
            size = _size(text)
            return PruneInfoError(
                f"out of memory on {'the GPU' if cuda else 'the CPU'}"
                + (f" (tried to allocate {size})" if size else "")
                + advice
                + (f" or `{device}`=cpu" if cuda and device else "")
            )
        exc = exc.__cause__ or exc.__context__
    return None


# --------------------------------------------------------------------------------------------
# Timing

#: A function that runs something once and returns its time in milliseconds.
Timer = Callable[[], float]


def torch_timer(model: nn.Module, x: torch.Tensor, device: torch.device | str = "cpu") -> Timer:
    """A function that runs PyTorch eager inference on ``x`` once and returns its time in ms.

    ``model`` and ``x`` must already be on ``device``. On CUDA the call is bracketed by CUDA
    events after a synchronisation; on the CPU by ``time.perf_counter_ns``.
    """
    device = torch.device(device)
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

        def timed_cuda() -> float:
            with torch.inference_mode():
                torch.cuda.synchronize(device)
                start.record()
                model(x)
                end.record()
                end.synchronize()
            return float(start.elapsed_time(end))

        return timed_cuda

    def timed_cpu() -> float:
        with torch.inference_mode():
            t0 = time.perf_counter_ns()
            model(x)
            return (time.perf_counter_ns() - t0) / 1e6

    return timed_cpu


def time_interleaved(timers: Sequence[Timer], repeat: int, warmup: int) -> list[np.ndarray]:
    """Warm every timer up, then call them round-robin ``repeat`` times; times in ms.

    Interleaving spreads slow phases of a shared machine (another process waking up, frequency
    changes) over all models alike, so their medians stay comparable.
    """
    for timer in timers:
        for _ in range(warmup):
            timer()
    times = np.empty((len(timers), repeat))
    for r in range(repeat):
        for i, timer in enumerate(timers):
            times[i, r] = timer()
    return list(times)


def timing_input(input_shape: Sequence[int], batch: int, seed: int = 0) -> torch.Tensor:
    """The seeded standard-normal batch every model of that input shape is timed on."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, *input_shape, generator=generator)
