"""The prune-info metadata of an ONNX file: what :func:`~prune_info.deploy.onnx.export_onnx`
writes into its metadata props, and how it is read back and checked.

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
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from prune_info._version import __version__
from prune_info.checkpoint import Checkpoint
from prune_info.errors import malformed
from prune_info.nn import count_parameters

#: Prefix of every metadata key written by prune-info.
META_PREFIX = "prune_info."
_JSON_KEYS = ("arch", "dataset", "metrics", "pruning", "input_shape")
_INT_KEYS = ("parameters", "macs", "pruning_steps", "format_version")


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


def set_metadata(proto, metadata: dict[str, str], doc: str) -> None:
    """Replace a ``ModelProto``'s prune-info metadata props and set its doc string, in place."""
    kept = [p for p in proto.metadata_props if not p.key.startswith(META_PREFIX)]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.doc_string = doc


#: The JSON type each decoded metadata key must have (what :func:`onnx_metadata` writes).
_METADATA_TYPES: dict[str, type | tuple[type, ...]] = {
    "arch": dict, "dataset": dict, "metrics": dict, "pruning": list, "input_shape": list,
    "parameters": int, "macs": int, "pruning_steps": int, "format_version": int,
}


def check_metadata(metadata: dict, path: Path) -> None:
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
