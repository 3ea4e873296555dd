"""Ray tasks as the executor of the multi-run commands (``--executor ray``).

Each :class:`~prune_info.experiments.executor.Task` becomes one Ray task reserving the task's
``num_cpus`` / ``num_gpus``, so a cluster with GPUs runs the GPU work on GPUs. Results come back to
the driver (the process holding the run directory's lock) as they complete (``ray.wait``) and are
handed to ``on_done`` there, so the run directory is written by one process only, exactly as with
the local executor.

Fault tolerance is Ray's: a task whose worker process dies (``kill -9``, out of memory, a node
lost) is run again, at most ``max_retries`` times; an exception *raised* by a task is not retried
(it would raise again) and stops the run, as it does locally. A driver that dies takes its
unfinished tasks with it; running the command again resumes from the run directory.

An argument shared by several tasks (the dataset, the configuration) is put into Ray's object store
once, and each worker process deserialises it once (it keeps the last few it read), rather than
once per task.

Ray is an optional extra (``pip install 'prune-info[ray]'``), imported when a :class:`RayExecutor`
is made, never by ``import prune_info``.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from prune_info.errors import PruneInfoError
from prune_info.experiments.executor import Progress, ProgressCallback, Task

__all__ = ["RayExecutor"]

#: Seconds to wait for a cluster's address to answer before giving up.
CONNECT_TIMEOUT = 5.0
#: Shared arguments a worker process keeps deserialised (the newest ones): more than the large
#: arguments one run's tasks share (a dataset, a configuration), so none is fetched twice.
_WORKER_CACHE_SIZE = 8
_worker_cache: OrderedDict[str, Any] = OrderedDict()

_INSTALL = "pip install 'prune-info[ray]'"


@dataclass(frozen=True)
class _Shared:
    """An argument put once into the object store (a reference to it travels with each task)."""

    ref: Any  # ray.ObjectRef


def _resolve(value: Any) -> Any:
    """In a worker: the value of a shared argument, deserialised once per process."""
    if not isinstance(value, _Shared):
        return value
    import ray

    key = value.ref.hex()
    if key in _worker_cache:
        _worker_cache.move_to_end(key)
        return _worker_cache[key]
    obj = ray.get(value.ref)
    _worker_cache[key] = obj
    while len(_worker_cache) > _WORKER_CACHE_SIZE:
        _worker_cache.popitem(last=False)
    return obj


def _run_task(fn: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
    """The body of every Ray task: ``fn(*args, **kwargs)`` with shared arguments resolved."""
    return fn(*(_resolve(a) for a in args), **{k: _resolve(v) for k, v in kwargs.items()})


def _plain(value: Any) -> bool:
    """Small values that travel with each task instead of through the object store."""
    import torch

    return value is None or isinstance(value, (bool, int, float, str, bytes, torch.device))


def _check_reachable(address: str, timeout: float) -> None:
    """Refuse an address where no Ray cluster answers (``ray.init`` would hang there).

    First a TCP connection within ``timeout`` s (a closed port is refused at once), then a Ray
    handshake with the cluster's GCS in a child process, killed after
    :data:`HANDSHAKE_TIMEOUT` s: a program that is not Ray but listens at the port (a web
    server, say) accepts the connection and then never answers as Ray does. A cluster that
    refuses this process's authentication token still answered as Ray, so it passes here and
    ``ray.init`` names the token. (``ray://`` addresses of Ray Client get the TCP check only.)
    """
    target = address.removeprefix("ray://")
    host, sep, port = target.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise PruneInfoError(f"`ray_address`={address} is not HOST:PORT (e.g. 10.0.0.1:6379, "
                             "as printed by ray start --head) nor auto")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise PruneInfoError(
            f"no Ray cluster answers at `ray_address`={address} ({reason}, waited at most "
            f"{timeout:g} s); start one with ray start --head and give the address it prints, "
            "or leave out `ray_address` to start a local cluster") from None
    if not address.startswith("ray://"):
        _handshake(address, target)


#: Seconds a Ray cluster's GCS has to answer the handshake of :func:`_check_reachable`.
HANDSHAKE_TIMEOUT = 10.0

# Exit statuses of the handshake child: answered as Ray; not Ray; this Ray has no GcsClient
# (its private API moved: the TCP check stands alone).
_PROBE = """
import sys
try:
    from ray._raylet import GcsClient
except ImportError:
    sys.exit(4)
try:
    GcsClient(address=sys.argv[1]).internal_kv_get(b"prune-info-probe", None, timeout=5)
except Exception as exc:
    if "Authentication" in type(exc).__name__:
        sys.exit(0)
    print(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
    sys.exit(3)
"""


def _handshake(address: str, target: str) -> None:
    try:
        done = subprocess.run([sys.executable, "-c", _PROBE, target], capture_output=True,
                              text=True, timeout=HANDSHAKE_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise PruneInfoError(
            f"something listens at `ray_address`={address} but does not answer as a Ray cluster "
            f"(no handshake within {HANDSHAKE_TIMEOUT:g} s); give the address ray start --head "
            "prints (its GCS port, 6379 by default), or leave out `ray_address`") from None
    if done.returncode == 3:
        reason = (done.stdout.strip().splitlines() or ["no reason given"])[-1]
        raise PruneInfoError(f"the Ray cluster at `ray_address`={address} does not answer "
                             f"({reason}); check that it is running (ray status)")


def _single_host(ray: Any) -> bool:
    """Whether every node of the cluster runs on this machine (so they all see its files)."""
    here = socket.gethostname()
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    return bool(nodes) and all(n.get("NodeManagerHostname") == here for n in nodes)


class RayExecutor:
    """Runs tasks on a Ray cluster: the one at ``address``, or a local one started here.

    Parameters
    ----------
    address : str, optional
        ``HOST:PORT`` of a running cluster's head (as ``ray start --head`` prints it),
        ``ray://HOST:PORT`` for Ray Client, or ``auto`` (the cluster started on this machine).
        Default: start a local cluster. A process already connected to Ray (``ray.init``)
        keeps its session.
    max_retries : int
        Times a task whose worker died is run again before the run fails.
    num_cpus : int, optional
        CPUs of a local cluster started here (default: all of them).
    shared_filesystem : bool, optional
        Whether every worker sees the driver's files. Default: true when every node of the
        cluster is this machine. Commands then let tasks keep resumable state (a study's
        per-epoch training state) in the run directory.

    Raises
    ------
    PruneInfoError
        Ray is not installed, or no cluster answers at ``address`` within a few seconds.
    """

    name = "ray"
    in_process = False

    def __init__(self, address: str | None = None, *, max_retries: int = 3,
                 num_cpus: int | None = None, shared_filesystem: bool | None = None) -> None:
        try:
            import ray
        except ImportError:
            raise PruneInfoError(f"`executor`=ray needs Ray, which is not installed: "
                                 f"{_INSTALL}") from None
        if max_retries < 0:
            raise PruneInfoError(f"`max_retries` must be 0 or more, got {max_retries}")
        self._ray = ray
        self.max_retries = max_retries
        self.address = address
        if not ray.is_initialized():
            self._connect(address, num_cpus)
        elif address is not None and address != "auto":
            _check_reachable(address, CONNECT_TIMEOUT)  # then this process's session is used
        self.shared_filesystem = (_single_host(ray) if shared_filesystem is None
                                  else shared_filesystem)
        self._remote = ray.remote(_run_task)

    def _connect(self, address: str | None, num_cpus: int | None) -> None:
        ray = self._ray
        if address is not None and address != "auto":
            _check_reachable(address, CONNECT_TIMEOUT)
        try:
            if address is None:
                ray.init(num_cpus=num_cpus, include_dashboard=False,
                         logging_level=logging.WARNING)
            else:
                ray.init(address=address, logging_level=logging.WARNING)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = "start a local Ray cluster" if address is None else \
                f"connect to the Ray cluster at `ray_address`={address}"
            hint = ("" if address is None or os.environ.get("RAY_AUTH_MODE") == "token" else
                    "; a cluster with token authentication (the default of ray start) needs "
                    "RAY_AUTH_MODE=token in this process's environment, and its token in "
                    "~/.ray/auth_token or RAY_AUTH_TOKEN")
            raise PruneInfoError(f"cannot {where}: {str(exc).splitlines()[0]}{hint}") from None

    def resources(self) -> dict[str, float]:
        """The cluster's total resources (``CPU``, ``GPU``, memory, ...)."""
        return dict(self._ray.cluster_resources())

    def _share(self, tasks: Sequence[Task]) -> dict[int, _Shared]:
        """Arguments that several tasks pass (by identity), each put into the store once."""
        seen: dict[int, int] = {}
        objects: dict[int, Any] = {}
        for task in tasks:
            for value in (*task.args, *task.kwargs.values()):
                if not _plain(value):
                    seen[id(value)] = seen.get(id(value), 0) + 1
                    objects[id(value)] = value
        return {key: _Shared(self._ray.put(objects[key]))
                for key, count in seen.items() if count > 1}

    def run(self, tasks: Sequence[Task], on_done: Callable[[Task, Any], None],
            on_progress: ProgressCallback | None = None) -> None:
        """Submit every task, then hand each result to ``on_done`` as it completes.

        Raises
        ------
        Exception
            The first error a task raised (the task's own exception), or
            :class:`PruneInfoError` for a task whose worker died more than ``max_retries``
            times. The tasks still running are cancelled first.
        """
        ray = self._ray
        report = on_progress or (lambda progress: None)
        shared = self._share(tasks)

        def arg(value: Any) -> Any:
            return shared.get(id(value), value) if not _plain(value) else value

        pending: dict[Any, Task] = {}
        for task in tasks:
            ref = self._remote.options(
                num_cpus=task.num_cpus, num_gpus=task.num_gpus, max_retries=self.max_retries,
                retry_exceptions=False, name=task.key,
            ).remote(task.fn, tuple(arg(a) for a in task.args),
                     {k: arg(v) for k, v in task.kwargs.items()})
            pending[ref] = task
        done = 0
        report(Progress(len(tasks), running=len(pending)))
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    task = pending.pop(ref)
                    try:
                        result = ray.get(ref)
                    except ray.exceptions.RayTaskError as exc:
                        report(Progress(len(tasks), done, len(pending), failed=1))
                        cause = getattr(exc, "cause", None)
                        if isinstance(cause, BaseException):
                            raise cause from exc
                        raise
                    except ray.exceptions.RayError as exc:
                        report(Progress(len(tasks), done, len(pending), failed=1))
                        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                        raise PruneInfoError(
                            f"task {task.key} failed {self.max_retries + 1} times on Ray "
                            f"({type(exc).__name__}: {first}); the results stored so far are "
                            "kept: run the command again to resume") from exc
                    on_done(task, result)
                    done += 1
                    report(Progress(len(tasks), done, len(pending)))
        finally:
            for ref in pending:  # a failure, or Ctrl-C: nothing keeps computing for nobody
                try:
                    ray.cancel(ref, force=True)
                except Exception:  # noqa: BLE001  finished meanwhile, or its node is gone
                    pass
