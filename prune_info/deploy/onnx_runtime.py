"""ONNX files read back and run: :func:`load_onnx` (checked, its metadata decoded), and
onnxruntime sessions (:func:`ort_session`, :func:`run_onnx`) on serialised models."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from prune_info.deploy.onnx_metadata import check_metadata, decode_metadata
from prune_info.errors import PruneInfoError


@dataclass
class OnnxModel:
    """An ONNX model read from disk, checked, with its prune-info metadata decoded.

    Attributes
    ----------
    path : str
    data : bytes
        The serialised model (what onnxruntime is given).
    metadata : dict
        Decoded prune-info metadata (see :func:`decode_metadata`); empty for foreign files.
    input_shape : tuple of int or None
        Shape of one sample, from the graph's input (None where not static).
    opset : int
    parameters : int
        Elements of the floating-point initializers (weights).
    fixed_batch : int or None
        The batch size the graph's input fixes (a foreign file exported without a dynamic batch
        axis); None when the batch axis is dynamic.
    """

    path: str
    data: bytes
    metadata: dict
    input_shape: tuple[int, ...] | None
    opset: int
    parameters: int
    fixed_batch: int | None = None

    def check_batches(self, batches: Sequence[int]) -> None:
        """Refuse batch sizes a graph with a fixed batch axis cannot run."""
        wrong = [b for b in batches if self.fixed_batch is not None and b != self.fixed_batch]
        if wrong:
            raise PruneInfoError(
                f"{self.path} fixes the batch size to {self.fixed_batch} in its graph, so "
                f"`batch` {','.join(map(str, wrong))} cannot run on it; pass `batch` "
                f"{self.fixed_batch}, or re-export the model with a dynamic batch axis "
                "(prune-info export writes one)"
            )

    @property
    def file_bytes(self) -> int:
        return len(self.data)


def default_opset(proto) -> int:
    return next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)


def check_onnx(data: bytes, what: str) -> None:
    """Run ``onnx.checker`` (full check, with shape inference) on a serialised model."""
    import onnx
    try:  # from the bytes: a ModelProto would be serialised again
        onnx.checker.check_model(data, full_check=True)
    except Exception as exc:  # noqa: BLE001 - ValidationError, DecodeError, InferenceError
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise PruneInfoError(f"{what} fails the ONNX checker: {first}") from exc


# --------------------------------------------------------------------------------------------
# onnxruntime


def ort_errors() -> tuple[type[BaseException], ...]:
    """The exception types onnxruntime raises for models it cannot load or run."""
    from onnxruntime.capi import onnxruntime_pybind11_state as state

    names = ("Fail", "InvalidGraph", "NotImplemented", "InvalidArgument", "RuntimeException",
             "InvalidProtobuf", "NoSuchFile")
    return tuple(getattr(state, n) for n in names if hasattr(state, n)) + (RuntimeError,)


def ort_session(data: bytes, providers: list[str] | None = None, threads: int | None = None,
                what: str = "the ONNX model"):
    """An onnxruntime session on a serialised model, quiet, with ``threads`` intra-op threads.

    Parameters
    ----------
    data : bytes
        Serialised ``ModelProto``.
    providers : list of str, optional
        Execution providers in order of preference; default the CPU provider only.
    threads : int, optional
        ``intra_op_num_threads``; None leaves onnxruntime's default (all physical cores).
    what : str
        How to name the model in an error message.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only
    options.inter_op_num_threads = 1
    if threads is not None:
        options.intra_op_num_threads = int(threads)
    try:
        return ort.InferenceSession(data, sess_options=options,
                                    providers=providers or ["CPUExecutionProvider"])
    except ort_errors() as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise PruneInfoError(f"onnxruntime cannot load {what}: {first}") from exc


def run_onnx(session, x: torch.Tensor | np.ndarray) -> np.ndarray:
    """Logits of an onnxruntime session on a float32 batch."""
    array = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    array = np.ascontiguousarray(array, dtype=np.float32)
    name = session.get_inputs()[0].name
    return session.run(None, {name: array})[0]


def max_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    """Largest absolute difference; any NaN or infinity counts as an infinite difference.

    NaN compares unequal to everything, itself included: two NaN logits prove nothing about
    the conversion, so they never pass a tolerance.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return math.inf
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        return math.inf
    diff = np.abs(a - b)
    return float(diff.max()) if diff.size else 0.0


# --------------------------------------------------------------------------------------------
# Reading


def looks_like_onnx(path: str | os.PathLike) -> bool:
    """Whether a file is to be read as ONNX: by its ``.onnx`` suffix, or by parsing it."""
    import onnx
    path = Path(path)
    if path.suffix.lower() == ".onnx":
        return True
    try:
        with open(path, "rb") as fh:
            head = fh.read(2)
    except OSError:
        return False
    if head[:2] == b"PK" or head[:1] == b"\x80":  # torch.save zip archive or legacy pickle
        return False

    try:
        proto = onnx.ModelProto()
        proto.ParseFromString(path.read_bytes())
    except Exception:  # noqa: BLE001 - not protobuf
        return False
    return proto.ir_version > 0 and len(proto.graph.node) > 0


def _fixed_batch(proto) -> int | None:
    dims = list(proto.graph.input[0].type.tensor_type.shape.dim) if proto.graph.input else []
    if dims and dims[0].HasField("dim_value") and dims[0].dim_value > 0:
        return int(dims[0].dim_value)
    return None


def _static_input_shape(proto) -> tuple[int, ...] | None:
    dims = proto.graph.input[0].type.tensor_type.shape.dim if proto.graph.input else []
    shape = [d.dim_value if d.HasField("dim_value") else None for d in list(dims)[1:]]
    if not shape or any(s is None or s < 1 for s in shape):
        return None
    return tuple(int(s) for s in shape if s is not None)  # none is None, checked above


def load_onnx(path: str | os.PathLike) -> OnnxModel:
    """Read an ONNX file, run ``onnx.checker`` on it, decode its prune-info metadata.

    Raises
    ------
    PruneInfoError
        Missing file, not an ONNX model, or a model that fails the checker.
    """
    import onnx
    path = Path(path)
    if not path.is_file():
        raise PruneInfoError(f"{path}: no such file; check the path")
    data = path.read_bytes()
    proto = onnx.ModelProto()
    try:
        proto.ParseFromString(data)
    except Exception as exc:  # noqa: BLE001 - protobuf DecodeError
        raise PruneInfoError(
            f"{path} is not an ONNX model (it does not parse); give a file written by "
            "prune-info export"
        ) from exc
    if proto.ir_version <= 0 or not proto.graph.node:
        raise PruneInfoError(f"{path} is not an ONNX model (no graph); give a file written by "
                             "prune-info export")
    check_onnx(data, str(path))
    opset = default_opset(proto)
    parameters = sum(
        int(np.prod(t.dims)) for t in proto.graph.initializer
        if t.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16,
                           onnx.TensorProto.DOUBLE, onnx.TensorProto.BFLOAT16)
    )
    props = {p.key: p.value for p in proto.metadata_props}
    metadata = decode_metadata(props)
    check_metadata(metadata, path)
    return OnnxModel(str(path), data, metadata, _static_input_shape(proto),
                     int(opset), parameters, _fixed_batch(proto))


