"""Studies on a real local Ray cluster: a local run's numbers, retried workers, resumed drivers.

One cluster of 2 CPUs serves the whole module (Ray takes seconds to start). Skipped when the
``ray`` extra is not installed; the refusals that need no cluster run either way.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from helpers import import_extra

from prune_info.cli.common import make_executor
from prune_info.errors import PruneInfoError
from prune_info.experiments.executor import LocalExecutor, Progress, Task
from prune_info.experiments.study import StudyConfig, run_study
from prune_info.training.loop import TrainConfig

CONFIG = StudyConfig(data="digits", arch="64-16-12-10", acts=("relu", "sigmoid"),
                     seeds=(0, 1, 2, 3), train=TrainConfig(epochs=2), random=3, criteria=("mi",))
SEED_BATCH = 2  # two training tasks per scenario, whatever the executor

pytestmark = pytest.mark.usefixtures("one_thread")  # Ray workers run on one thread too


@pytest.fixture(scope="module")
def cluster():
    """A local Ray cluster of 2 CPUs for this module; yields its address."""
    ray = import_extra("ray")
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    yield ray.get_runtime_context().gcs_address
    if started:
        ray.shutdown()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    root = tmp_path_factory.mktemp("local") / "study"
    return run_study(CONFIG, root, seed_batch=SEED_BATCH, progress=False), root


def _numbers(results) -> dict:
    """The document without the figures' file names (a study result, or one read as JSON)."""
    doc = results if isinstance(results, dict) else results.to_dict()
    return {k: v for k, v in doc.items() if k != "figures"}


def _seed_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("curves.json"))}


def _die_once(marker: str, fn, *args, **kwargs):
    """Kill this worker process (SIGKILL) the first time; run ``fn`` when retried."""
    if not os.path.exists(marker):
        Path(marker).write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)
    return fn(*args, **kwargs)


class KillOnce:
    """An executor that runs on Ray, where the tasks named ``victims`` first kill their worker."""

    name = "ray"
    in_process = False

    def __init__(self, inner, victims: dict[str, Path]):
        self.inner, self.victims = inner, victims
        self.shared_filesystem = inner.shared_filesystem

    def run(self, tasks, on_done, on_progress=None):
        original = {t.key: t for t in tasks}
        wrapped = [replace(t, fn=_die_once, args=(str(self.victims[t.key]), t.fn, *t.args))
                   if t.key in self.victims else t for t in tasks]
        self.inner.run(wrapped, lambda task, result: on_done(original[task.key], result),
                       on_progress)


@pytest.fixture(scope="module")
def by_value(cluster):
    """Ship this module's helpers to the workers by value (they cannot import tests/)."""
    from ray import cloudpickle  # the pickler Ray ships tasks with

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield
    cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


@pytest.mark.slow
def test_a_study_on_ray_gives_the_numbers_of_a_local_run(cluster, reference, run_cli, tmp_path):
    expected, local_root = reference
    root = tmp_path / "study"
    code, out, err = run_cli(
        "study", "--data", "digits", "--arch", "64-16-12-10", "--act", "relu,sigmoid",
        "--seeds", "4", "--epochs", "2", "--random", "3", "--criteria", "mi",
        "--seed-batch", str(SEED_BATCH), "--quiet", "--json", "--executor", "ray",
        "--ray-address", cluster, "--out", str(root))
    assert code == 0, err
    saved = json.loads((root / "results.json").read_text())
    assert _numbers(saved) == _numbers(json.loads((local_root / "results.json").read_text()))
    assert _seed_files(root) == _seed_files(local_root)
    assert json.loads(out)["scenarios"] == expected.to_dict()["scenarios"]


@pytest.mark.slow
def test_subnetworks_on_ray_give_the_results_of_a_local_run(cluster, run_cli, tmp_path):
    args = ["subnetworks", "--data", "digits", "--arch", "64-12-12-10", "--criteria",
            "random,magnitude", "--keep", "4", "--seeds", "2", "--epochs", "1",
            "--retrain-epochs", "1", "--quiet"]
    for name, extra in (("local", []), ("ray", ["--executor", "ray", "--ray-address", cluster])):
        code, _, err = run_cli(*args, *extra, "-o", str(tmp_path / name))
        assert code == 0, err
    local, ray = (json.loads((tmp_path / n / "results.json").read_text())
                  for n in ("local", "ray"))
    assert ray == local and [row["seed"] for row in local["rows"]][0] == 0
    assert (tmp_path / "ray" / "table.txt").read_text() == (
        tmp_path / "local" / "table.txt").read_text()


def test_ray_tasks_run_in_worker_processes_and_report_progress(cluster):
    executor = make_executor("ray")
    results, progress = {}, []
    tasks = [Task(f"pid-{i}", os.getpid) for i in range(4)]
    executor.run(tasks, lambda task, pid: results.update({task.key: pid}), progress.append)
    assert set(results) == {t.key for t in tasks}
    assert os.getpid() not in results.values()
    assert progress[0] == Progress(4, done=0, running=4)
    assert progress[-1] == Progress(4, done=4, running=0)
    assert [p.done for p in progress] == [0, 1, 2, 3, 4]
    assert executor.shared_filesystem  # every node of a local cluster is this machine


@pytest.mark.slow
def test_a_killed_worker_is_retried_and_the_study_keeps_its_numbers(cluster, by_value,
                                                                    reference, tmp_path):
    from prune_info.experiments.ray_executor import RayExecutor

    expected, local_root = reference
    victims = {"train/relu-l2/seeds-0-1": tmp_path / "killed-train",
               "curves/sigmoid-l2/seed-0002": tmp_path / "killed-curves"}
    root = tmp_path / "study"
    results = run_study(CONFIG, root, seed_batch=SEED_BATCH, progress=False,
                        executor=KillOnce(RayExecutor(max_retries=2), victims))
    for marker in victims.values():  # each victim did die once, in a worker
        assert marker.exists() and int(marker.read_text()) != os.getpid()
    assert _numbers(results) == _numbers(expected)
    assert _seed_files(root) == _seed_files(local_root)
    assert not list(root.rglob("train-state-*"))


def test_a_worker_that_keeps_dying_fails_the_run_after_its_retries(cluster, by_value, tmp_path):
    from prune_info.experiments.ray_executor import RayExecutor

    marker = tmp_path / "killed"
    done = []
    tasks = [Task("fine", abs, (-1,)), Task("doomed", _die_once, (str(marker), abs, -2))]
    start = time.perf_counter()
    with pytest.raises(PruneInfoError, match=r"task doomed failed 1 times on Ray"):
        RayExecutor(max_retries=0).run(tasks, lambda task, r: done.append(task.key))
    assert time.perf_counter() - start < 60
    assert marker.exists()  # it died once, and was not run again


def test_a_task_error_stops_a_ray_run_with_that_error(cluster):
    tasks = [Task("bad", int, ("not a number",))]
    with pytest.raises(ValueError, match="invalid literal"):
        make_executor("ray").run(tasks, lambda task, r: None)


@pytest.mark.slow
def test_a_driver_killed_mid_study_resumes_with_the_same_numbers(cluster, reference, run_cli,
                                                                tmp_path):
    _, local_root = reference
    root = tmp_path / "study"
    args = ["study", "--data", "digits", "--arch", "64-16-12-10", "--act", "relu,sigmoid",
            "--seeds", "4", "--epochs", "2", "--random", "3", "--criteria", "mi",
            "--seed-batch", str(SEED_BATCH), "--quiet", "--executor", "ray",
            "--ray-address", cluster, "--out", str(root)]
    driver = subprocess.Popen([sys.executable, "-m", "prune_info", *args],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not list(root.rglob("curves.json")) and driver.poll() is None:
        assert time.monotonic() < deadline, "the study stored no curves in 120 s"
        time.sleep(0.02)
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    assert driver.returncode == -signal.SIGKILL, driver.stderr.read().decode()
    assert not (root / "results.json").exists()
    before = _seed_files(root)
    assert 1 <= len(before) < 8

    code, _, err = run_cli(*args)
    assert code == 0, err
    assert f"stale lock of {root}" in err  # the dead driver's lock, taken over
    after = _seed_files(root)
    assert all(after[name] == data for name, data in before.items())  # kept, not recomputed
    assert after == _seed_files(local_root)
    assert _numbers(json.loads((root / "results.json").read_text())) == \
        _numbers(json.loads((local_root / "results.json").read_text()))


def test_an_unreachable_ray_address_is_refused_within_seconds(run_cli, tmp_path):
    import_extra("ray")
    start = time.perf_counter()
    code, _, err = run_cli("study", "--data", "digits", "--seeds", "2", "--executor", "ray",
                           "--ray-address", "127.0.0.1:9", "--out", str(tmp_path / "s"))
    assert time.perf_counter() - start < 10
    assert code == 2
    assert err.startswith("error: no Ray cluster answers at --ray-address 127.0.0.1:9")
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "s").exists()


def test_a_listener_that_is_not_ray_is_refused_by_the_handshake(run_cli, tmp_path,
                                                                 monkeypatch):
    """A web server at the address accepts the connection, then never answers as Ray."""
    import socketserver
    import threading

    import_extra("ray")
    from prune_info.experiments import ray_executor

    monkeypatch.setattr(ray_executor, "HANDSHAKE_TIMEOUT", 3.0)

    class Silent(socketserver.BaseRequestHandler):
        def handle(self):
            self.request.recv(1024)
            time.sleep(5)

    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), Silent) as server:
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        address = f"127.0.0.1:{server.server_address[1]}"
        start = time.perf_counter()
        code, _, err = run_cli("study", "--data", "digits", "--seeds", "2", "--executor", "ray",
                               "--ray-address", address, "--out", str(tmp_path / "s"))
        server.shutdown()
    assert time.perf_counter() - start < 10
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "does not answer as a Ray cluster" in err
    assert not (tmp_path / "s").exists()


def test_the_handshake_passes_a_real_cluster(cluster):
    from prune_info.experiments.ray_executor import _check_reachable

    _check_reachable(cluster, 5.0)  # raises if the real GCS were taken for a stranger


def test_the_ray_executor_without_ray_says_how_to_install_it(run_cli, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    code, _, err = run_cli("study", "--data", "digits", "--seeds", "2", "--executor", "ray",
                           "--out", str(tmp_path / "s"))
    assert code == 2
    assert err.strip() == ("error: --executor ray needs Ray, which is not installed: "
                           "pip install 'prune-info[ray]'")
    assert not (tmp_path / "s").exists()


def test_a_ray_address_without_the_ray_executor_is_refused():
    with pytest.raises(PruneInfoError, match="`ray_address` needs `executor`=ray"):
        make_executor("local", address="127.0.0.1:6379")
    assert isinstance(make_executor("local"), LocalExecutor)
