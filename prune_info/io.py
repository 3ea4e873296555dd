"""Atomic file output and JSON with a format key.

Every file prune-info writes goes through :func:`atomic_write`: the content lands in a temporary
file beside the target and is renamed over it only once complete, so an interrupted command never
leaves a half-written checkpoint, table or figure behind.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prune_info.errors import PruneInfoError

#: Version of every JSON document prune-info writes; bump on an incompatible change.
JSON_FORMAT_VERSION = 1


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path; on success rename it to ``path``, on failure delete it.

    The temporary file sits in the target's directory so the final ``os.replace`` is atomic.

    Examples
    --------
    >>> with atomic_write("out.txt") as tmp:          # doctest: +SKIP
    ...     tmp.write_text("done")
    """
    target = Path(path)
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise PruneInfoError(
            f"cannot write {target}: directory {parent} does not exist; create it first"
        )
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def _jsonable(obj: Any) -> Any:
    """Turn tensors, numpy values and non-finite floats into plain JSON values."""
    if hasattr(obj, "tolist"):  # torch.Tensor, numpy array or scalar
        obj = obj.tolist()
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj


def write_json(data: dict, path: str | os.PathLike, kind: str) -> None:
    """Write ``data`` atomically as JSON with ``{"format": kind, "format_version": N}`` first."""
    document = {"format": kind, "format_version": JSON_FORMAT_VERSION, **_jsonable(data)}
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(document, indent=2) + "\n")


def to_json_text(data: dict, kind: str) -> str:
    """The same document as :func:`write_json`, as a string (for ``--json`` on stdout)."""
    document = {"format": kind, "format_version": JSON_FORMAT_VERSION, **_jsonable(data)}
    return json.dumps(document, indent=2)


def cpu_state_dict(state: dict) -> dict:
    """A detached CPU copy of a state_dict (for checkpoints and best-epoch snapshots)."""
    return {k: v.detach().to("cpu", copy=True) for k, v in state.items()}
