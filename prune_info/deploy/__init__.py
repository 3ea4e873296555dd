"""Deployment: ONNX export checked against PyTorch (:mod:`.onnx`), and accuracy / size / latency
benchmarks of checkpoints and ONNX files (:mod:`.bench`, timed as :mod:`.timing` says,
reported by :mod:`.bench_report`).
onnxruntime is imported on first use."""

from prune_info.deploy.bench import benchmark_models, open_bench_model
from prune_info.deploy.bench_report import BenchReport
from prune_info.deploy.onnx import ExportReport, export_onnx
from prune_info.deploy.onnx_runtime import load_onnx

__all__ = ["BenchReport", "ExportReport", "benchmark_models", "export_onnx", "load_onnx",
           "open_bench_model"]
