"""The small texts shared by several layers: ``K=V,...`` of the command line parsed, byte
counts shown."""

from __future__ import annotations

import ast
from typing import Any

from prune_info.errors import PruneInfoError

__all__ = ["human_bytes", "parse_kwargs"]


def human_bytes(n: int | None) -> str:
    """``12345`` -> ``12.1 kB`` (powers of 1024).

    >>> human_bytes(12345), human_bytes(None)
    ('12.1 kB', '-')
    """
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def parse_kwargs(text: str | None, what: str = "model_kwargs") -> dict[str, Any]:
    """``"num_classes=10,img_size=28"`` -> ``{"num_classes": 10, "img_size": 28}``.

    Values are Python literals (numbers, strings, True/False/None, tuples); anything else is
    kept as a string.

    Examples
    --------
    >>> parse_kwargs("num_classes=10, in_chans=1, act_layer=gelu, drop=0.1")
    {'num_classes': 10, 'in_chans': 1, 'act_layer': 'gelu', 'drop': 0.1}
    >>> parse_kwargs("patch_size=(4, 4)")
    {'patch_size': (4, 4)}
    """
    if text is None or not text.strip():
        return {}
    out: dict[str, Any] = {}
    # Split on commas outside brackets and quotes, so tuples and strings survive.
    depth, start, parts, quote = 0, 0, [], ""
    for i, ch in enumerate(text):
        if quote:
            quote = "" if ch == quote else quote
            continue
        quote = ch if ch in "'\"" else ""
        depth += ch in "([{"
        depth -= ch in ")]}"
        if ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    if depth != 0:
        raise PruneInfoError(f"`{what}`: unbalanced brackets in {text!r}; close every "
                             "( [ { it opens, e.g. patch_size=(4,4)")
    for part in (p.strip() for p in parts):
        key, sep, raw = part.partition("=")
        key = key.strip()
        if not part or not sep or not key.isidentifier():
            raise PruneInfoError(
                f"`{what}`: cannot read {part!r}; write NAME=VALUE pairs separated by "
                "commas, e.g. num_classes=10,in_chans=1"
            )
        if key in out:
            raise PruneInfoError(f"`{what}`: {key} is given twice; give each name once")
        try:
            out[key] = ast.literal_eval(raw.strip())
        except (ValueError, SyntaxError):
            out[key] = raw.strip()
    return out
