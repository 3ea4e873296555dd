"""The one registry of importance criteria.

A criterion is a function of a :class:`~prune_info.criteria.context.ScoringContext` that returns
``{layer name: float64 tensor [n_units]}``, higher = more important. It is registered under a
name with :func:`register_criterion` and declares what it needs (data, labels, gradients), so
that callers can check before running it. The built-in criteria register when
:mod:`prune_info.criteria` is imported; other packages add theirs through the entry-point group
``prune_info.criteria`` (see the README, "Adding a criterion").

Examples
--------
>>> import prune_info.criteria
>>> get_criterion("mi").needs_labels
True
>>> "magnitude" in available_criteria()
True
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points

from prune_info.errors import PruneInfoError

__all__ = [
    "CRITERIA", "Criterion", "available_criteria", "get_criterion", "parse_criteria",
    "register_criterion",
]


# --------------------------------------------------------------------------------------------
# Registry


@dataclass(frozen=True)
class Criterion:
    """A registered importance criterion.

    Attributes
    ----------
    name : str
        Registry key, as given to ``criteria``.
    description : str
        One line for help texts.
    needs_data, needs_labels, needs_gradients : bool
        What ``fn`` uses from the context.
    fn : callable
        ``fn(ctx: ScoringContext) -> {layer name: tensor [n_units]}``, higher = more important.
    """

    name: str
    description: str
    needs_data: bool
    needs_labels: bool
    needs_gradients: bool
    fn: Callable


#: Every known criterion by name; fill it through :func:`register_criterion`.
CRITERIA: dict[str, Criterion] = {}


def register_criterion(
    name: str,
    *,
    description: str,
    needs_data: bool,
    needs_labels: bool,
    needs_gradients: bool = False,
) -> Callable[[Callable], Callable]:
    """Decorator adding a scoring function to :data:`CRITERIA` under ``name``.

    Raises
    ------
    ValueError
        If ``name`` is already registered (a programming error, not a user error).
    """
    if name in CRITERIA:
        raise ValueError(f"criterion {name!r} is already registered")

    def decorate(fn: Callable) -> Callable:
        CRITERIA[name] = Criterion(name, description, needs_data, needs_labels,
                                   needs_gradients, fn)
        return fn

    return decorate


def available_criteria() -> list[str]:
    """Names of all registered criteria (plugins included), sorted."""
    _load_entry_points()
    return sorted(CRITERIA)


def get_criterion(name: str) -> Criterion:
    """The criterion registered as ``name``.

    Raises
    ------
    PruneInfoError
        If no criterion has that name; the message lists the known ones.
    """
    _load_entry_points()
    try:
        return CRITERIA[name]
    except KeyError:
        raise PruneInfoError(
            f"unknown criterion {name!r}; fix: use one of {', '.join(sorted(CRITERIA))}"
        ) from None


def parse_criteria(criteria: str | Sequence[str]) -> list[str]:
    """Criterion names from ``"entropy,mi"`` or a list, checked and de-duplicated in order."""
    if isinstance(criteria, str):
        criteria = criteria.split(",")
    names = list(dict.fromkeys(c.strip() for c in criteria if c and c.strip()))
    if not names:
        raise PruneInfoError(
            f"no criterion given; fix: name at least one of {', '.join(available_criteria())}"
        )
    for name in names:
        get_criterion(name)
    return names


# --------------------------------------------------------------------------------------------
# Third-party criteria
#
# A package adds criteria by naming, in its own metadata, a module that registers them:
#
#     [project.entry-points."prune_info.criteria"]
#     my-criteria = "my_package.criteria"
#
# Those modules are imported once, the first time a criterion is looked up. A module that fails
# to import is reported as a PruneInfoError naming its package, not skipped silently.

ENTRY_POINT_GROUP = "prune_info.criteria"

_entry_points_loaded = False


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            point.load()
        except Exception as exc:  # a broken plugin must not look like an unknown criterion
            raise PruneInfoError(
                f"the criteria plugin {point.name!r} ({point.value}) failed to load: "
                f"{type(exc).__name__}: {exc}; fix or uninstall the package that provides it"
            ) from exc
