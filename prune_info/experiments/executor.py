"""Where the units of work of a multi-run command execute.

A multi-run command (``study``, ``subnetworks``, ``reproduce``, ...) splits its work into
:class:`Task` objects: a module-level function and its arguments, with the resources it needs.
A task computes and *returns* its result; it does not write into the run directory. The driver
(the process that holds the run directory's lock) stores each result the moment it arrives, so a
run can be interrupted anywhere and resumed by any executor, on any machine, with the same
numbers.

:class:`LocalExecutor` runs the tasks one after another in this process (the default, and what
every command did before executors existed). A Ray executor (``--executor ray``) runs them as Ray
tasks with the declared resources; it lives in :mod:`prune_info.experiments.ray_executor` and is
imported only when asked for.

Examples
--------
>>> def square(x):
...     return x * x
>>> done = []
>>> LocalExecutor().run([Task("a", square, (3,)), Task("b", square, (4,))],
...                     lambda task, result: done.append((task.key, result)))
>>> done
[('a', 9), ('b', 16)]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from prune_info.errors import PruneInfoError

__all__ = ["EXECUTORS", "Executor", "LocalExecutor", "Task", "make_executor"]

#: Names accepted by :func:`make_executor` (and ``--executor``).
EXECUTORS = ("local", "ray")


@dataclass(frozen=True)
class Task:
    """One unit of work: ``fn(*args, **kwargs)``, with a stable ``key`` naming it.

    ``fn`` must be a module-level function and its arguments picklable, so that the task can be
    shipped to another process. ``num_cpus`` / ``num_gpus`` are the resources it reserves on a
    cluster; the local executor ignores them.
    """

    key: str
    fn: Callable[..., Any]
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    num_cpus: float = 1.0
    num_gpus: float = 0.0

    def __call__(self) -> Any:
        return self.fn(*self.args, **self.kwargs)


class Executor(Protocol):
    """Runs tasks and hands each result to ``on_done`` in the calling (driver) process."""

    name: str

    def run(self, tasks: Sequence[Task], on_done: Callable[[Task, Any], None]) -> None:
        """Run every task; call ``on_done(task, result)`` as each finishes (any order).

        A task that raises stops the run with that error, after the results already delivered
        have been handed to ``on_done``.
        """
        ...


class LocalExecutor:
    """Runs the tasks in order, in this process."""

    name = "local"

    def run(self, tasks: Sequence[Task], on_done: Callable[[Task, Any], None]) -> None:
        for task in tasks:
            on_done(task, task())


def make_executor(name: str = "local", *, address: str | None = None) -> Executor:
    """The executor called ``name`` (one of :data:`EXECUTORS`); ``address`` is a Ray cluster's."""
    if name == "local":
        if address is not None:
            raise PruneInfoError("`ray_address` needs `executor`='ray'")
        return LocalExecutor()
    if name == "ray":
        from prune_info.experiments.ray_executor import RayExecutor  # optional extra

        return RayExecutor(address=address)
    raise PruneInfoError(f"unknown `executor` {name!r}; choose one of {', '.join(EXECUTORS)}")
