"""How prune-info times a model: per-call timers for PyTorch and onnxruntime, timed
round-robin, summarised by their median.

How latency is measured
-----------------------
* Inputs are seeded standard-normal batches of the model's input shape (the data are
  standardised, so this is their scale; dense kernels do not depend on the values).
* Each (model, runtime, device, batch) is called ``warmup`` times untimed, then ``repeat``
  times, each call timed on its own: with ``time.perf_counter_ns`` on the CPU, with CUDA events
  after a synchronisation on the GPU (PyTorch), and with ``perf_counter_ns`` around an
  onnxruntime ``run_with_iobinding`` whose input and output stay on the GPU (onnxruntime's CUDA
  provider). The median and the 90th percentile are reported in milliseconds.
* The models are timed round-robin, one call each in turn, so that a busy phase of a shared
  machine slows them all alike and their ratios stay meaningful.
* Both runtimes use the same number of intra-op threads (``threads``, default PyTorch's current
  setting); PyTorch's setting is restored afterwards.
* A checkpoint is converted to ONNX in memory (verified against PyTorch, as by
  ``prune-info export``) for its onnxruntime figures; an ONNX file has no PyTorch figures.
* onnxruntime always runs on the CPU; with ``device="cuda"`` it also runs on its CUDA provider
  when that is installed (``onnxruntime-gpu``).

The PyTorch timer and the round-robin loop live in :mod:`prune_info._torch` (the budget search of
:mod:`prune_info.pruning.budget` uses them too); this module adds onnxruntime's.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import numpy as np

from prune_info._torch import Timer

__all__ = ["latency_stats", "onnx_cuda_available", "onnx_timer"]


def latency_stats(times_ms: Sequence[float] | np.ndarray, batch: int) -> dict:
    """Median, 90th percentile and minimum of per-call times (ms), and throughput."""
    t = np.asarray(times_ms, dtype=np.float64)
    median = float(np.median(t))
    return {
        "median_ms": median,
        "p90_ms": float(np.percentile(t, 90)),
        "min_ms": float(t.min()),
        "repeat": int(t.size),
        "samples_per_s": batch / (median / 1e3) if median > 0 else math.inf,
    }


def onnx_timer(session, x: np.ndarray, device: str = "cpu") -> Timer:
    """A function that runs an onnxruntime session on ``x`` once and returns its time in ms.

    On ``device="cuda"`` the input is copied to the GPU once and bound with an IO binding, the
    output stays on the GPU, and the time (``perf_counter_ns``, the call is synchronous) excludes
    host-device copies, as PyTorch's does.
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    in_name, out_name = session.get_inputs()[0].name, session.get_outputs()[0].name
    if device == "cuda":
        import onnxruntime as ort

        binding = session.io_binding()
        binding.bind_ortvalue_input(in_name, ort.OrtValue.ortvalue_from_numpy(x, "cuda", 0))
        binding.bind_output(out_name, "cuda")

        def timed_cuda() -> float:
            binding.synchronize_inputs()
            t0 = time.perf_counter_ns()
            session.run_with_iobinding(binding)
            binding.synchronize_outputs()
            return (time.perf_counter_ns() - t0) / 1e6

        return timed_cuda
    feed = {in_name: x}

    def timed_cpu() -> float:
        t0 = time.perf_counter_ns()
        session.run(None, feed)
        return (time.perf_counter_ns() - t0) / 1e6

    return timed_cpu


def onnx_cuda_available() -> bool:
    """Whether onnxruntime has its CUDA execution provider (``onnxruntime-gpu``)."""
    import onnxruntime as ort

    return "CUDAExecutionProvider" in ort.get_available_providers()


# --------------------------------------------------------------------------------------------
# The benchmark
