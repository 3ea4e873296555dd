"""Where the units of work of a multi-run command execute.

A multi-run command (``study``, ``subnetworks``, ``reproduce``, ...) splits its work into
:class:`Task` objects: a module-level function and its arguments, with the resources it needs.
A task computes and *returns* its result; it does not write into the run directory. The driver
(the process that holds the run directory's lock) stores each result the moment it arrives, so a
run can be interrupted anywhere and resumed by any executor, on any machine, with the same
numbers.

:class:`LocalExecutor` runs the tasks one after another in this process (the default, and what
every command did before executors existed). A Ray executor (``--executor ray``) runs them as Ray
tasks with the declared resources; it lives in :mod:`prune_info.experiments.ray_executor` (which
builds on this module) and is imported only when asked for, by
:func:`prune_info.cli.common.make_executor`.

How the work is cut into tasks is the command's decision, fixed by its configuration, never the
executor's: the same command gives the same numbers on every executor.

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

from tqdm.auto import tqdm

__all__ = ["EXECUTORS", "Executor", "LocalExecutor", "Progress", "ProgressBar", "Task",
           "gpus_for"]

#: Names accepted by ``--executor`` (:func:`prune_info.cli.common.make_executor`).
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


@dataclass(frozen=True)
class Progress:
    """Where a run of tasks stands: ``done`` + ``running`` + ``failed`` + queued = ``total``.

    ``running`` counts the tasks submitted and not finished (on a cluster some of them may still
    wait for a free worker); ``failed`` the tasks that failed for good (after their retries).
    """

    total: int
    done: int = 0
    running: int = 0
    failed: int = 0

    def __str__(self) -> str:
        return (f"{self.done}/{self.total} done, {self.running} running, "
                f"{self.failed} failed")


#: ``on_progress(progress)``, called by an executor whenever a task starts or ends.
ProgressCallback = Callable[[Progress], None]


def gpus_for(device: object) -> float:
    """GPUs a task on ``device`` reserves: one on CUDA (a task is one CPU thread's or one GPU's
    work), else none. A Ray task that reserves no GPU sees none (``CUDA_VISIBLE_DEVICES``)."""
    return 1.0 if str(device).startswith("cuda") else 0.0


class Executor(Protocol):
    """Runs tasks and hands each result to ``on_done`` in the calling (driver) process."""

    name: str
    #: The tasks run in the driver process: they may be given callbacks and progress bars.
    in_process: bool
    #: The tasks see the driver's files (so they may write resumable state next to the results).
    shared_filesystem: bool

    def run(self, tasks: Sequence[Task], on_done: Callable[[Task, Any], None],
            on_progress: ProgressCallback | None = None) -> None:
        """Run every task; call ``on_done(task, result)`` as each finishes (any order).

        A task that raises stops the run with that error, after the results already delivered
        have been handed to ``on_done``.
        """
        ...


class LocalExecutor:
    """Runs the tasks in order, in this process."""

    name = "local"
    in_process = True
    shared_filesystem = True

    def run(self, tasks: Sequence[Task], on_done: Callable[[Task, Any], None],
            on_progress: ProgressCallback | None = None) -> None:
        report = on_progress or (lambda progress: None)
        for index, task in enumerate(tasks):
            report(Progress(len(tasks), done=index, running=1))
            try:
                result = task()
            except Exception:
                report(Progress(len(tasks), done=index, failed=1))
                raise
            on_done(task, result)
            report(Progress(len(tasks), done=index + 1))


class ProgressBar:
    """An ``on_progress`` callback drawing a tqdm bar (stderr) with running and failed tasks.

    Examples
    --------
    >>> with ProgressBar("curves", enabled=False) as bar:
    ...     LocalExecutor().run([Task("a", abs, (-2,))], lambda task, result: None, bar)
    ...     str(bar.last)
    '1/1 done, 0 running, 0 failed'
    """

    def __init__(self, desc: str, *, enabled: bool = True) -> None:
        self.desc = desc
        self.enabled = enabled
        self.last: Progress | None = None
        self._bar: Any = None

    def __call__(self, progress: Progress) -> None:
        self.last = progress
        if not self.enabled:
            return
        if self._bar is None:
            self._bar = tqdm(total=progress.total, desc=self.desc, unit="task", leave=False)
        self._bar.n = progress.done
        self._bar.set_postfix(running=progress.running, failed=progress.failed, refresh=False)
        self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
