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
Every key starts with ``prune_info.``; values are strings, JSON where marked:

=============================  =============================================================
``prune_info.spec``            architecture spec, e.g. ``784-50-50-10``
``prune_info.arch``            JSON architecture dict (absent for user models)
``prune_info.factory``         ``package.module:function`` of a user model
``prune_info.input_shape``     JSON shape of one sample, e.g. ``[1, 28, 28]``
``prune_info.dataset``         JSON: name, input_shape, n_classes, normalisation, split_seed
``prune_info.metrics``         JSON: val_acc, test_acc recorded in the checkpoint
``prune_info.pruning``         JSON list, one compact dict per pruning step
``prune_info.pruning_steps``   number of pruning steps (0 for a dense model)
``prune_info.parameters``      number of parameters of the PyTorch model
``prune_info.macs``            multiply-accumulates of one sample's forward pass
``prune_info.version``         prune-info version that wrote the file
``prune_info.format_version``  version of this layout (1)
=============================  =============================================================

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
import json
import logging
import math
import os
import re
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from prune_info._version import __version__
from prune_info.checkpoint import Checkpoint, as_checkpoint, clone_model
from prune_info.errors import PruneInfoError, malformed
from prune_info.io import atomic_write
from prune_info.nn import count_parameters, total_macs

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
#: Prefix of every metadata key written by prune-info.
META_PREFIX = "prune_info."
_JSON_KEYS = ("arch", "dataset", "metrics", "pruning", "input_shape")
_INT_KEYS = ("parameters", "macs", "pruning_steps", "format_version")
_NOISY_LOGGERS = ("torch.onnx", "torch.export", "torch._export", "torch._dynamo", "torch.fx",
                  "torch.__trace", "onnxscript", "onnx_ir")


# --------------------------------------------------------------------------------------------
# Results


@dataclass
class ExportReport:
    """What :func:`export_onnx` wrote and how well it matches PyTorch.

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

    def to_dict(self) -> dict:
        return asdict(self)


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
# Metadata


def _plain(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _dumps(value: Any) -> str:
    def clean(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {str(k): clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        if hasattr(v, "tolist"):
            return clean(v.tolist())
        return v

    return json.dumps(clean(value), separators=(",", ":"), default=_plain)


def summarise_pruning(history: list[dict], max_chars: int = 400) -> list[dict]:
    """One compact dict per pruning step: the entries that are short when written as JSON.

    Scalars (criterion, allocation, summary ...) and short lists or dicts (amounts, widths
    before and after) are kept; the removed unit indices and anything long (per-unit scores)
    are dropped, so the summary stays small whatever the pruning code records.

    Examples
    --------
    >>> summarise_pruning([{"criterion": "mi", "amount": 0.5, "scores": list(range(1000))}])
    [{'criterion': 'mi', 'amount': 0.5}]
    """
    summary = []
    for step in history:
        compact = {}
        for key, value in dict(step).items():
            if key == "removed":
                continue
            try:
                text = _dumps(value)
            except (TypeError, ValueError):
                continue
            if len(text) <= max_chars:
                compact[str(key)] = json.loads(text)
        summary.append(compact)
    return summary


def onnx_metadata(ckpt: Checkpoint, input_shape: tuple[int, ...],
                  macs: int | None = None) -> dict[str, str]:
    """The metadata props describing a checkpoint (all values strings; see the module doc)."""
    meta: dict[str, Any] = {
        "format_version": 1,
        "version": __version__,
        "spec": ckpt.spec,
        "input_shape": list(input_shape),
        "parameters": count_parameters(ckpt.model),
        "pruning": summarise_pruning(ckpt.pruning_history),
        "pruning_steps": len(ckpt.pruning_history),
    }
    if ckpt.arch is not None:
        meta["arch"] = ckpt.arch
    if ckpt.factory:
        meta["factory"] = ckpt.factory
    if ckpt.dataset:
        keys = ("name", "input_shape", "n_classes", "normalisation", "split_seed")
        meta["dataset"] = {k: ckpt.dataset[k] for k in keys if k in ckpt.dataset}
    metrics = {k: ckpt.metrics[k] for k in ("val_acc", "test_acc")
               if isinstance(ckpt.metrics.get(k), (int, float))}
    meta["metrics"] = metrics
    if macs is not None:
        meta["macs"] = macs
    return {META_PREFIX + k: (v if isinstance(v, str) else _dumps(v)) for k, v in meta.items()}


def decode_metadata(props: dict[str, str]) -> dict:
    """prune-info metadata props -> values (JSON decoded, integers parsed), prefix removed.

    Keys without the ``prune_info.`` prefix are ignored; undecodable values are kept as text.
    """
    out: dict[str, Any] = {}
    for key, text in props.items():
        if not key.startswith(META_PREFIX):
            continue
        name = key[len(META_PREFIX):]
        try:
            if name in _JSON_KEYS:
                out[name] = json.loads(text)
            elif name in _INT_KEYS:
                out[name] = int(text)
            else:
                out[name] = text
        except ValueError:
            out[name] = text
    return out


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
    written = _default_opset(proto)
    if written != opset:  # the dynamo exporter keeps 18 where it cannot convert down
        raise _ExporterFailed(f"wrote opset {written}, not the {opset} asked")
    if metadata is not None or doc:
        _set_metadata(proto, metadata or {}, doc)
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


def _default_opset(proto) -> int:
    return next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)


def _set_metadata(proto, metadata: dict[str, str], doc: str) -> None:
    """Replace a ``ModelProto``'s prune-info metadata props and set its doc string, in place."""
    kept = [p for p in proto.metadata_props if not p.key.startswith(META_PREFIX)]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.doc_string = doc


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
    report.path = str(path)
    report.seconds = time.perf_counter() - start
    return report


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
    opset = _default_opset(proto)
    parameters = sum(
        int(np.prod(t.dims)) for t in proto.graph.initializer
        if t.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16,
                           onnx.TensorProto.DOUBLE, onnx.TensorProto.BFLOAT16)
    )
    props = {p.key: p.value for p in proto.metadata_props}
    metadata = decode_metadata(props)
    _check_metadata(metadata, path)
    return OnnxModel(str(path), data, metadata, _static_input_shape(proto),
                     int(opset), parameters, _fixed_batch(proto))


#: The JSON type each decoded metadata key must have (what :func:`onnx_metadata` writes).
_METADATA_TYPES: dict[str, type | tuple[type, ...]] = {
    "arch": dict, "dataset": dict, "metrics": dict, "pruning": list, "input_shape": list,
    "parameters": int, "macs": int, "pruning_steps": int, "format_version": int,
}


def _check_metadata(metadata: dict, path: Path) -> None:
    """Refuse prune-info metadata that another tool or a damaged file left in a wrong shape."""
    for key, kind in _METADATA_TYPES.items():
        value = metadata.get(key)
        if value is None:
            continue
        shape_ok = key != "input_shape" or (
            isinstance(value, list) and all(isinstance(v, int) and v > 0 for v in value))
        if not isinstance(value, kind) or isinstance(value, bool) or not shape_ok:
            raise malformed(path, f"its prune-info metadata {key!r} is {str(value)[:40]!r}",
                            "re-export it with prune-info export")
