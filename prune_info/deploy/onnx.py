"""ONNX export, checked by ``onnx.checker`` and by onnxruntime against PyTorch.

:func:`export_onnx` converts a checkpoint's model to ONNX with a dynamic batch axis, stores what
is known about the model in the ONNX *metadata props*, validates the file with
``onnx.checker`` (full check, with shape inference), runs it in onnxruntime on a batch and on a
single sample, and compares the logits with PyTorch's. Only when every check passes is the file
written, atomically: nothing is left behind on failure.

Which exporter
--------------
PyTorch ships two ONNX exporters, and ``exporter="auto"`` (the default) uses both: it converts
with the TorchScript tracer (``torch.onnx.export(..., dynamo=False)`` with ``dynamic_axes``)
and, when that fails or its model does not pass the checks below (checker, onnxruntime, logits
within ``tolerance`` of PyTorch's), with the ``torch.export``-based exporter (``dynamo=True``,
PyTorch's default since 2.9). The report says which exporter wrote the file and, after a
fallback, why in one line (:attr:`ExportReport.fallback`).

The tracer comes first because it is several times faster: on torch 2.14 (2 shared CPU cores)
0.1 to 1 s where dynamo takes 2 to 10 s (ResNet-18 0.7 s against 3 s, MobileNetV2 0.2-2 s
against 5-10 s, a timm ViT-Tiny 0.8-1.1 s against 5 s; the first ``torch.export`` conversion of
a process adds about 2 s), which matters because ``bench`` converts every checkpoint it times;
and it writes the requested opset directly (9 to 20) where dynamo builds opset 18 and keeps it
when it cannot convert down (that is refused here: the file must have the opset asked for).
Dynamo decomposes more operators (``torch.special.erfcx``; ``AdaptiveAvgPool2d`` to an output
size that does not divide its input, as in torchvision's VGG on 32x32 images), handles models
whose ``forward`` branches on values, writes opsets up to 23, and is the one to use once the
deprecated tracer is removed. It is given ``dynamic_shapes`` and a sample of at least two rows
(``torch.export`` would fix a batch of one as a constant). Above opset 20 ``auto`` goes straight
to dynamo.

An explicit ``exporter`` that fails is not replaced, but the other exporter is tried so that the
error can say whether it works (and name it), in one line.

The whole file is built in memory; ``external_data`` is never used (our models are far below
protobuf's 2 GB limit), so one ``.onnx`` file is all there is to ship.

Both exporters are noisy (deprecation and version-conversion warnings, log records, and a dump
of the TorchScript graph printed from C++ on failure); :func:`export_model` silences all of it,
including native output, for the duration of the conversion.

Metadata
--------
What is known about the model is stored in the file's metadata props: see
:mod:`prune_info.deploy.onnx_metadata`. Reading files and running them in onnxruntime is
:mod:`prune_info.deploy.onnx_runtime`.

Examples
--------
>>> from prune_info.checkpoint import load_checkpoint      # doctest: +SKIP
>>> report = export_onnx(load_checkpoint("pruned.pt"), "pruned.onnx")  # doctest: +SKIP
>>> report.max_abs_diff < 1e-4, report.metadata["prune_info.spec"]      # doctest: +SKIP
(True, '784-50-50-10')
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from prune_info._text import human_bytes
from prune_info._version import __version__
from prune_info.checkpoint import Checkpoint, as_checkpoint, clone_model
from prune_info.deploy.onnx_metadata import (
    META_PREFIX,
    onnx_metadata,
    set_metadata,
)
from prune_info.deploy.onnx_runtime import (
    check_onnx,
    default_opset,
    max_abs_diff,
    ort_errors,
    ort_session,
    run_onnx,
)
from prune_info.errors import PruneInfoError
from prune_info.io import atomic_write
from prune_info.nn import count_parameters, total_macs
from prune_info.reports import Report

#: Opset written when none is asked for: native to both exporters, run by onnxruntime >= 1.14.
DEFAULT_OPSET = 18
#: Lowest opset accepted (Flatten, Gemm, BatchNormalization in their current form).
MIN_OPSET = 9
#: The exporter choices of :func:`export_model`; the first is the default, the others are the
#: exporters ``auto`` tries, in order.
EXPORTERS = ("auto", "torchscript", "dynamo")
#: Largest max-abs difference between onnxruntime and PyTorch logits that passes ...
TOLERANCE = 1e-4
#: ... unless the logits are large: the limit is then this share of the largest |logit|
#: (numpy.allclose's default relative tolerance; float32 rounding grows with the values, and an
#: untrained Inception-v3's logits of 2e8 differed by 4e-6 of them between the runtimes).
RELATIVE_TOLERANCE = 1e-5
#: Names of the graph's input and output; axis 0 of both is the dynamic ``batch`` axis.
INPUT_NAME, OUTPUT_NAME, BATCH_AXIS = "input", "logits", "batch"
_NOISY_LOGGERS = ("torch.onnx", "torch.export", "torch._export", "torch._dynamo", "torch.fx",
                  "torch.__trace", "onnxscript", "onnx_ir")


# --------------------------------------------------------------------------------------------
# Results


@dataclass(frozen=True)
class ExportReport(Report):
    """What :func:`export_onnx` wrote and how well it matches PyTorch (``prune-info export``:
    :meth:`table` what it prints, :meth:`to_dict` its ``--json``).

    Attributes
    ----------
    path : str
        The ONNX file.
    opset : int
        Default-domain opset of the file.
    exporter : {"torchscript", "dynamo"}
        The exporter that wrote the file.
    max_abs_diff : float
        Largest absolute difference between onnxruntime and PyTorch logits over every batch
        compared.
    tolerance : float
        The bound ``max_abs_diff`` had to stay under.
    batch_sizes : list of int
        Batch sizes run through both (the sample's, and 1 to exercise the dynamic axis).
    file_bytes : int
        Size of the ONNX file.
    parameters : int
        Parameters of the PyTorch model.
    macs : int or None
        Multiply-accumulates of one sample's forward pass.
    metadata : dict
        The metadata props written, as strings.
    seconds : float
        Wall time of conversion and checks.
    fallback : str or None
        With ``exporter="auto"``, one line saying why the TorchScript exporter was not used;
        None when it was.
    """

    path: str
    opset: int
    exporter: str
    max_abs_diff: float
    tolerance: float
    batch_sizes: list[int]
    file_bytes: int
    parameters: int
    macs: int | None
    metadata: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    fallback: str | None = None

    FORMAT = "prune-info-export"

    def to_dict(self) -> dict:
        return asdict(self)

    def table(self) -> str:
        """Architecture (from the metadata written), size, MACs, exporter, the checks and the
        largest difference from PyTorch."""
        steps = int(self.metadata.get(META_PREFIX + "pruning_steps", "0"))
        pruned = f" (pruned in {steps} step{'s' if steps != 1 else ''})" if steps else " (dense)"
        rows = [
            ("architecture", f"{self.metadata.get(META_PREFIX + 'spec', '?')}{pruned}"),
            ("parameters", f"{self.parameters:,}"),
            ("MACs", "-" if self.macs is None else f"{self.macs:,}"),
            ("opset / exporter", f"{self.opset} / {self.exporter}"),
            ("file size", human_bytes(self.file_bytes)),
            ("checked", f"onnx.checker passed; onnxruntime vs PyTorch at batch "
                        f"{self.batch_sizes[0]} and 1"),
            ("max abs diff", f"{self.max_abs_diff:.2e} (limit {self.tolerance:g})"),
        ]
        width = max(len(k) for k, _ in rows)
        return "\n".join(f"{key:<{width}}  {value}" for key, value in rows)


# --------------------------------------------------------------------------------------------
# MACs


def count_macs(model: nn.Module, input_shape: tuple[int, ...]) -> int | None:
    """Multiply-accumulates of one sample's forward pass (:func:`prune_info.nn.total_macs`).

    Linear and convolution layers are counted; None when the model cannot be run on
    ``input_shape`` for counting.
    """
    try:
        return int(total_macs(clone_model(model).cpu().eval(), tuple(input_shape)))
    except (RuntimeError, PruneInfoError):
        return None


# --------------------------------------------------------------------------------------------
# Conversion


@contextlib.contextmanager
def _native_output_silenced() -> Iterator[None]:
    """Send file descriptors 1 and 2 to a scratch file while the block runs.

    The TorchScript exporter prints its graph from C++ when it fails, which no Python-level
    redirection can catch. Without usable descriptors (a daemon) nothing is redirected.
    """
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        if stream is not None:
            with contextlib.suppress(Exception):
                stream.flush()
    try:
        saved = (os.dup(1), os.dup(2))
    except OSError:
        yield
        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
                if stream is not None:
                    with contextlib.suppress(Exception):
                        stream.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


@contextlib.contextmanager
def quiet_export() -> Iterator[None]:
    """Silence warnings, log records and native output of the ONNX exporters."""
    loggers = [logging.getLogger(name) for name in _NOISY_LOGGERS]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings(), _native_output_silenced():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _opset_range(exporter: str) -> tuple[int, int]:
    import onnx
    try:
        from torch.onnx import _constants as const

        top_torchscript, top = const.ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET, const.ONNX_MAX_OPSET
    except (ImportError, AttributeError):  # private module moved: the values of torch 2.13
        top_torchscript, top = 20, 23

    top = min(top, onnx.defs.onnx_opset_version())
    return MIN_OPSET, (top_torchscript if exporter == "torchscript" else top)


def check_opset(opset: int | None, exporter: str = "auto") -> int:
    """Validate an opset for an exporter; None gives :data:`DEFAULT_OPSET`.

    ``auto`` accepts what either exporter writes (above the TorchScript exporter's range it
    uses the dynamo exporter alone).
    """
    if exporter not in EXPORTERS:
        raise PruneInfoError(
            f"unknown `exporter` {exporter!r}; choose one of: {', '.join(EXPORTERS)}"
        )
    if opset is None:
        return DEFAULT_OPSET
    low, high = _opset_range(exporter)
    if not low <= opset <= high:
        which = "either exporter writes" if exporter == "auto" else \
            f"the {exporter} exporter writes"
        hint = ""
        if exporter == "torchscript" and low <= opset <= _opset_range("dynamo")[1]:
            hint = f", or pass `exporter`=dynamo (it writes up to {_opset_range('dynamo')[1]})"
        raise PruneInfoError(
            f"`opset`={opset} is outside what {which}; choose {low} to {high} "
            f"(default {DEFAULT_OPSET}){hint}"
        )
    return opset


def _operator_named(exc: BaseException | None) -> str | None:
    """The operator an exporter error is about, searched along the exception chain."""
    patterns = (r"operator '([^']+)'", r"OpOverload\(op='([^']+)'", r"torch\.ops\.([\w.]+)")
    seen = 0
    while exc is not None and seen < 10:
        for pattern in patterns:
            found = re.search(pattern, str(exc))
            if found:
                return found.group(1)
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


def _first_line(exc: BaseException, limit: int = 240) -> str:
    """The first line of an error, without PyTorch's boilerplate, at most ``limit`` chars."""
    line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    line = re.split(r"\s*(?:Please feel free to request support|\[Caused by)", line)[0]
    line = line.strip().rstrip(".") or type(exc).__name__
    return line if len(line) <= limit else line[:limit - 3] + "..."


class _ExporterFailed(Exception):
    """One exporter did not give a faithful model; ``reason`` completes "the X exporter ..."."""

    def __init__(self, reason: str, operator: str | None = None):
        super().__init__(reason)
        self.reason, self.operator = reason, operator


def _run_exporter(model: nn.Module, sample: torch.Tensor, opset: int, exporter: str) -> bytes:
    """One exporter's serialised model (eval-mode CPU ``model``, float32 ``sample``, N >= 2).

    Raises :class:`_ExporterFailed` when the exporter fails.
    """
    try:
        with quiet_export(), torch.no_grad():
            if exporter == "torchscript":
                buffer = io.BytesIO()
                # the TorchScript exporter writes to a file-like object too; the annotation
                # of `f` only names paths
                torch.onnx.export(
                    model, (sample,), cast(Any, buffer), dynamo=False, opset_version=opset,
                    dynamic_axes={INPUT_NAME: {0: BATCH_AXIS}, OUTPUT_NAME: {0: BATCH_AXIS}},
                    input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                )
                return buffer.getvalue()
            program = torch.onnx.export(
                model, (sample,), dynamo=True, opset_version=opset, verbose=False,
                dynamic_shapes=({0: torch.export.Dim(BATCH_AXIS)},),
                input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
            )
            assert program is not None  # dynamo=True always returns an ONNXProgram
            return program.model_proto.SerializeToString()
    except Exception as exc:  # noqa: BLE001 - every exporter failure is the model's, reported
        op = _operator_named(exc)
        if op is not None:
            raise _ExporterFailed(f"does not support operator {op} at opset {opset}",
                                  operator=op) from exc
        raise _ExporterFailed(f"fails: {_first_line(exc)}") from exc


@dataclass
class Conversion:
    """A model converted by :func:`convert_model`, checked and compared with PyTorch.

    Attributes
    ----------
    data : bytes
        The serialised ``ModelProto`` (with the metadata asked for).
    exporter : {"torchscript", "dynamo"}
        The exporter that wrote it.
    max_abs_diff : float
        Largest absolute logit difference from PyTorch over the batches compared.
    limit : float
        The largest difference that passed (:func:`difference_limit`).
    batch_sizes : list of int
        The sample's batch size, and 1.
    fallback : str or None
        With ``exporter="auto"``, why the TorchScript exporter was not used (one line); None
        when it was.
    """

    data: bytes
    exporter: str
    max_abs_diff: float
    limit: float
    batch_sizes: list[int]
    fallback: str | None = None


def _attempt(model: nn.Module, sample: torch.Tensor, expected: list[np.ndarray], opset: int,
             exporter: str, limit: float, metadata: dict[str, str] | None,
             doc: str) -> tuple[bytes, float]:
    """Convert with one exporter and verify; raises :class:`_ExporterFailed`."""
    export_sample = sample if sample.shape[0] >= 2 else torch.cat([sample, sample])
    # torch.export specialises a batch of 1 to a constant, hence at least two rows
    import onnx
    proto = onnx.ModelProto()
    proto.ParseFromString(_run_exporter(model, export_sample, opset, exporter))
    written = default_opset(proto)
    if written != opset:  # the dynamo exporter keeps 18 where it cannot convert down
        raise _ExporterFailed(f"wrote opset {written}, not the {opset} asked")
    if metadata is not None or doc:
        set_metadata(proto, metadata or {}, doc)
    data = proto.SerializeToString()  # once: a VGG-11 is 490 MiB, each pass takes a second
    try:
        check_onnx(data, "the exported model")
    except PruneInfoError as exc:
        raise _ExporterFailed("wrote a model that fails the ONNX checker: "
                              f"{_first_line(exc.__cause__ or exc)}") from exc
    try:
        session = ort_session(data, what="the exported model")
    except PruneInfoError as exc:
        raise _ExporterFailed("wrote a model onnxruntime cannot load: "
                              f"{_first_line(exc.__cause__ or exc)}") from exc
    try:
        got = [run_onnx(session, sample), run_onnx(session, sample[:1])]
    except ort_errors() as exc:
        raise _ExporterFailed(f"wrote a model onnxruntime cannot run: {_first_line(exc)}") \
            from exc
    diff = max(max_abs_diff(e, g) for e, g in zip(expected, got))
    if not diff <= limit:
        raise _ExporterFailed(f"wrote a model whose logits differ from PyTorch's by up to "
                              f"{diff:.3g} (limit {limit:.2g})")
    return data, diff


def difference_limit(expected: Sequence[np.ndarray], tolerance: float) -> float:
    """The largest difference of the logits that passes: ``tolerance``, or
    :data:`RELATIVE_TOLERANCE` of the largest PyTorch logit when that is more."""
    scale = max((float(np.abs(e).max()) for e in expected if e.size), default=0.0)
    return max(tolerance, RELATIVE_TOLERANCE * scale)


def convert_model(model: nn.Module, sample: torch.Tensor, opset: int | None = None,
                  exporter: str = "auto", tolerance: float = TOLERANCE,
                  metadata: dict[str, str] | None = None, doc: str = "") -> Conversion:
    """Convert a model to ONNX with a dynamic batch axis, check it, compare it with PyTorch.

    Every conversion is checked with ``onnx.checker``, run in onnxruntime on ``sample`` and on
    its first row, and compared with PyTorch's logits.

    Parameters
    ----------
    model : nn.Module
        Exported in eval mode on the CPU (a copy; the model is not changed).
    sample : Tensor
        Example input ``[N, ...]``; only its shape after the batch axis is fixed in the graph.
    opset : int, optional
        Default :data:`DEFAULT_OPSET`.
    exporter : {"auto", "torchscript", "dynamo"}
        ``auto`` tries the TorchScript exporter (fast) and, when it fails or its model does not
        match PyTorch within ``tolerance``, the dynamo exporter; the result says which was used
        and why it fell back. An explicit exporter that fails is reported with what the other
        one does (it is tried), so the error can name the exporter that works.
    tolerance : float
        Largest max-abs difference of the logits that passes, or :data:`RELATIVE_TOLERANCE` of
        the largest logit when that is more (:func:`difference_limit`).
    metadata : dict, optional
        Metadata props to write into the file (see :func:`onnx_metadata`).
    doc : str
        The model's ``doc_string``.

    Raises
    ------
    PruneInfoError
        The model does not run on ``sample``, or no exporter tried gives a faithful model.
    """
    opset = check_opset(opset, exporter)
    if not tolerance > 0:
        raise PruneInfoError(f"`tolerance` must be positive, got {tolerance}")
    if sample.ndim < 2 or sample.shape[0] < 1:
        raise PruneInfoError(f"the sample must be a batch [N, ...] with N >= 1, got "
                             f"{tuple(sample.shape)}")
    model = clone_model(model).cpu().eval()
    sample = sample.detach().to("cpu", torch.float32)
    try:
        with torch.no_grad():
            expected = [model(sample).numpy(), model(sample[:1]).numpy()]
    except RuntimeError as exc:
        raise PruneInfoError(
            f"the model does not accept inputs of shape {list(sample.shape[1:])}: "
            f"{str(exc).splitlines()[0]}; check that `sample` is from the model's dataset"
        ) from exc
    if not all(np.isfinite(e).all() for e in expected):
        raise PruneInfoError(
            "the model's logits on the sample are not finite (NaN or inf), so the conversion "
            "cannot be checked against PyTorch and nothing is written; check the weights for "
            "NaN (re-create the model) or the sample"
        )

    def fits(name: str) -> bool:
        low, high = _opset_range(name)
        return low <= opset <= high

    if exporter == "auto":
        order = [name for name in EXPORTERS[1:] if fits(name)]
    else:
        order = [exporter, *(n for n in EXPORTERS[1:] if n != exporter and fits(n))]
    skipped = ["the {} exporter writes opset {} to {}".format(n, *_opset_range(n))
               for n in EXPORTERS[1:] if n not in order]
    failures: list[tuple[str, _ExporterFailed]] = []
    limit = difference_limit(expected, tolerance)
    for name in order:
        try:
            data, diff = _attempt(model, sample, expected, opset, name, limit, metadata, doc)
        except _ExporterFailed as exc:
            failures.append((name, exc))
            continue
        told = [f"the {n} exporter {e.reason}" for n, e in failures] + skipped
        if exporter == name:
            return Conversion(data, name, diff, limit, [int(sample.shape[0]), 1])
        if exporter == "auto":
            fallback = f"{'; '.join(told)}; used the {name} exporter" if told else None
            return Conversion(data, name, diff, limit, [int(sample.shape[0]), 1], fallback)
        raise PruneInfoError(
            f"ONNX export failed: {'; '.join(told)}; the {name} exporter converts this model "
            f"faithfully: pass `exporter`={name} (or `exporter`=auto)"
        )
    told = [f"the {n} exporter {e.reason}" for n, e in failures] + skipped
    hints = []
    if any(e.operator for _, e in failures):
        hints.append("replace the operator in the model")
    hints.append("try another `opset`")
    if any("differ from PyTorch" in e.reason for _, e in failures):
        hints.append("a larger `tolerance`")
    raise PruneInfoError(f"ONNX export failed: {'; '.join(told)}; {', or '.join(hints)}") \
        from failures[-1][1]


def export_model(model: nn.Module, sample: torch.Tensor, opset: int | None = None,
                 exporter: str = "auto", tolerance: float = TOLERANCE) -> bytes:
    """Convert a model to a serialised ONNX model with a dynamic batch axis, quietly.

    The model is checked and compared with PyTorch as :func:`convert_model` does (which also
    says which exporter was used); this returns the bytes alone, without metadata.

    Parameters
    ----------
    model : nn.Module
        Exported in eval mode on the CPU (a copy; the model is not changed).
    sample : Tensor
        Example input ``[N, ...]``; only its shape after the batch axis is fixed in the graph.
    opset : int, optional
        Default :data:`DEFAULT_OPSET`.
    exporter : {"auto", "torchscript", "dynamo"}
        See the module documentation for the choice.
    tolerance : float
        Largest max-abs difference of the logits that passes (more for large logits: see
        :func:`difference_limit`).

    Returns
    -------
    bytes
        The checked ``ModelProto``, without metadata.

    Raises
    ------
    PruneInfoError
        When no exporter gives a faithful model; the message names the unsupported operator
        when there is one, and the exporter that works when the one asked for does not.
    """
    return convert_model(model, sample, opset, exporter, tolerance).data


# --------------------------------------------------------------------------------------------
# The export command's work


def model_input_shape(ckpt: Checkpoint) -> tuple[int, ...] | None:
    """Shape of one input sample, from the architecture or the dataset record."""
    for source in (ckpt.arch or {}, ckpt.dataset or {}):
        if source.get("input_shape"):
            return tuple(int(s) for s in source["input_shape"])
    return None


def default_sample(input_shape: tuple[int, ...], n: int = 16, seed: int = 0) -> torch.Tensor:
    """A seeded standard-normal batch: the inputs are standardised, so this is their scale."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n, *input_shape, generator=generator)


def convert_checkpoint(ckpt: Checkpoint, sample: torch.Tensor | None = None,
                       opset: int | None = None, exporter: str = "auto",
                       tolerance: float = TOLERANCE) -> tuple[bytes, ExportReport]:
    """Convert and verify a checkpoint in memory: the work of :func:`export_onnx` but the write.

    Returns
    -------
    data : bytes
        The checked, verified ``ModelProto`` with its metadata.
    report : ExportReport
        With ``path`` empty.
    """
    start = time.perf_counter()
    opset = check_opset(opset, exporter)
    if not tolerance > 0:
        raise PruneInfoError(f"`tolerance` must be positive, got {tolerance}")
    if sample is None:
        shape = model_input_shape(ckpt)
        if shape is None:
            raise PruneInfoError(
                "the model records no input shape; pass a sample batch as `sample`"
            )
        sample = default_sample(shape)
    if sample.ndim < 2 or sample.shape[0] < 1:
        raise PruneInfoError(f"the sample must be a batch [N, ...] with N >= 1, got "
                             f"{tuple(sample.shape)}")
    input_shape = tuple(sample.shape[1:])
    macs = count_macs(ckpt.model, input_shape)
    metadata = onnx_metadata(ckpt, input_shape, macs)
    doc = f"prune-info {__version__}: {ckpt.spec}" + (
        f" on {ckpt.dataset_name}" if ckpt.dataset_name else "")
    done = convert_model(ckpt.model, sample, opset, exporter, tolerance, metadata, doc)
    report = ExportReport(
        path="", opset=opset, exporter=done.exporter, max_abs_diff=done.max_abs_diff,
        tolerance=done.limit, batch_sizes=done.batch_sizes, file_bytes=len(done.data),
        parameters=count_parameters(ckpt.model), macs=macs, metadata=metadata,
        seconds=time.perf_counter() - start, fallback=done.fallback,
    )
    return done.data, report


def export_onnx(ckpt: Checkpoint | nn.Module, path: str | os.PathLike, opset: int | None = None,
                sample: torch.Tensor | None = None, exporter: str = "auto",
                tolerance: float = TOLERANCE) -> ExportReport:
    """Export a checkpoint to ONNX, check it, compare it with PyTorch, then write it.

    Parameters
    ----------
    ckpt : Checkpoint or nn.Module
        Dense or pruned; MLP, CNN or a user model (a bare module needs ``sample``).
    path : path
        The ONNX file to write (atomically; nothing is written when a check fails).
    opset : int, optional
        Default :data:`DEFAULT_OPSET`.
    sample : Tensor, optional
        Batch ``[N, ...]`` compared between onnxruntime and PyTorch (the command line passes a
        validation batch). Default: 16 seeded standard-normal inputs of the model's shape.
    exporter : {"auto", "torchscript", "dynamo"}
        ``auto`` (default): TorchScript, or dynamo when TorchScript fails or does not match
        PyTorch (``report.exporter`` and ``report.fallback`` say which and why). An explicit
        exporter that fails names the other when that one works (see :func:`convert_model`).
    tolerance : float
        Largest max-abs difference of the logits that passes (more for large logits: see
        :func:`difference_limit`).

    Returns
    -------
    ExportReport

    Raises
    ------
    PruneInfoError
        Unknown input shape, or no exporter tried gives a model that passes the checker, runs
        in onnxruntime and matches PyTorch within ``tolerance`` (the message says why for each,
        naming an unsupported operator).

    Examples
    --------
    >>> report = export_onnx(ckpt, "model.onnx")               # doctest: +SKIP
    >>> report.batch_sizes, report.max_abs_diff < 1e-4          # doctest: +SKIP
    ([16, 1], True)
    """
    start = time.perf_counter()
    data, report = convert_checkpoint(as_checkpoint(ckpt), sample, opset, exporter, tolerance)
    with atomic_write(path) as tmp:
        tmp.write_bytes(data)
    return replace(report, path=str(path), seconds=time.perf_counter() - start)


