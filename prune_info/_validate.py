"""One validation layer for the public library: arguments checked against the annotations.

Every function ``import prune_info as pi`` offers is wrapped by :func:`checked` when it is first
looked up, so a wrong type (a path where a model belongs, ``None`` for a file) raises
:class:`~prune_info.errors.PruneInfoError` naming the parameter, as scikit-learn's
``validate_params`` does, instead of an ``AttributeError`` deep inside. The annotations are the
constraints: written once, read by mypy and by this check alike. What an annotation cannot say
(a range, a layer name) stays with the function.
"""

from __future__ import annotations

import collections.abc
import functools
import inspect
import numbers
import sys
import types
import typing
from collections.abc import Callable
from typing import Any, TypeVar

from prune_info.errors import PruneInfoError

__all__ = ["checked"]

F = TypeVar("F", bound=Callable[..., Any])

#: An annotation that cannot be resolved (a name imported for type checking only, from a
#: module not loaded yet) is not checked.
_UNRESOLVED = object()


def checked(fn: F) -> F:
    """``fn`` with every argument checked against its annotation before the call.

    Examples
    --------
    >>> @checked
    ... def halve(width: int, name: str | None = None) -> int:
    ...     return width // 2
    >>> halve(8)
    4
    >>> halve("8")
    Traceback (most recent call last):
    ...
    prune_info.errors.PruneInfoError: halve(): `width` must be int, got str ('8')
    """
    signature = inspect.signature(fn)
    resolved: dict[str, Any] = {}

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise PruneInfoError(f"{fn.__name__}(): {exc}") from None
        for name, value in bound.arguments.items():
            param = signature.parameters[name]
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                continue
            if name not in resolved:
                resolved[name] = _resolve(fn, param.annotation)
            expected = resolved[name]
            if expected is not _UNRESOLVED and not _matches(value, expected):
                shown = repr(value) if isinstance(value, (str, int, float)) else None
                raise PruneInfoError(
                    f"{fn.__name__}(): `{name}` must be {_describe(param.annotation)}, got "
                    f"{type(value).__name__}" + (f" ({shown[:40]})" if shown else ""))
        return fn(*args, **kwargs)

    return typing.cast(F, wrapper)


def _resolve(fn: Callable, annotation: Any) -> Any:
    if annotation is inspect.Parameter.empty:
        return Any
    if not isinstance(annotation, str):
        return annotation
    names = dict(fn.__globals__)
    for module_name, module in list(sys.modules.items()):
        if module_name.startswith("prune_info") and module is not None:
            for key, value in vars(module).items():
                names.setdefault(key, value)
    try:
        return eval(annotation, names)  # noqa: S307  (the package's own annotations)
    except Exception:  # noqa: BLE001  a name known to the type checker only
        return _UNRESOLVED


def _describe(annotation: Any) -> str:
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__",
                                                                    str(annotation))
    return text.replace(" | None", " or None").replace(" | ", " or ")


def _matches(value: Any, expected: Any) -> bool:
    if expected is Any or expected is object or isinstance(expected, TypeVar):
        return True
    if expected is None or expected is type(None):
        return value is None
    origin = typing.get_origin(expected)
    if origin is typing.Union or origin is types.UnionType:
        return any(_matches(value, option) for option in typing.get_args(expected))
    if origin is typing.Literal:
        return value in typing.get_args(expected)
    if origin is not None:
        if origin is collections.abc.Callable:
            return callable(value)
        if isinstance(value, str) and origin is not str and issubclass(
                origin, collections.abc.Iterable):
            return False  # "3,32,32" is no Sequence[int]
        return isinstance(origin, type) and isinstance(value, origin)
    if expected is float:
        return isinstance(value, numbers.Real) and not isinstance(value, bool)
    if expected is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if isinstance(expected, type):
        if getattr(expected, "_is_protocol", False) and not getattr(
                expected, "_is_runtime_protocol", False):
            return True
        return isinstance(value, expected)
    return True
