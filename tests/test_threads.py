"""The thread policy: long CPU computations run on the cores other processes leave free."""

import os

import torch


def test_free_cores_counts_the_cores_other_tasks_leave(monkeypatch):
    from prune_info import _torch

    cores = len(os.sched_getaffinity(0))
    monkeypatch.setattr(_torch, "_runnable_tasks", lambda: 1)  # only this process
    assert _torch.free_cores() == cores
    monkeypatch.setattr(_torch, "_runnable_tasks", lambda: 1 + cores)  # every core taken
    assert _torch.free_cores() == 1
    readings = iter([1 + cores, 1, 1 + cores])  # the quietest reading counts
    monkeypatch.setattr(_torch, "_runnable_tasks", lambda: next(readings))
    assert _torch.free_cores(interval=0) == cores
    monkeypatch.setattr(_torch, "_runnable_tasks", lambda: None)  # no /proc
    assert _torch.free_cores() == cores


def test_long_computations_run_on_the_free_cores_unless_the_user_fixed_them(monkeypatch):
    from prune_info import _torch

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        monkeypatch.setattr(_torch, "free_cores", lambda: 1)
        with _torch.shared_threads("cpu"):
            assert torch.get_num_threads() == 1
        with _torch.small_batch_threads(torch.device("cpu"), 4096):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
        with _torch.fixed_threads(2), _torch.shared_threads("cpu"), \
                _torch.small_batch_threads(torch.device("cpu"), 32):
            assert torch.get_num_threads() == 2
        with _torch.fixed_threads(1):
            assert torch.get_num_threads() == 1 and _torch._FIXED_THREADS == 1
        assert torch.get_num_threads() == 2 and _torch._FIXED_THREADS is None
    finally:
        torch.set_num_threads(before)


def test_cli_threads_fixes_the_threads_of_the_run_and_restores_them(run_cli, tmp_path,
                                                                     monkeypatch):
    from prune_info import _torch
    from prune_info.training import loop

    seen = []
    real_fit = loop.fit

    def spy(*args, **kwargs):
        seen.append((torch.get_num_threads(), _torch._FIXED_THREADS))
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(loop, "fit", spy)
    before = torch.get_num_threads()
    code, stdout, stderr = run_cli("--threads", "1", "train", "--data", "digits", "--arch",
                                   "64-8-10", "--epochs", "1", "-o", str(tmp_path / "m.pt"))
    assert code == 0, stderr
    assert seen == [(1, 1)]  # during the command
    assert torch.get_num_threads() == before and _torch._FIXED_THREADS is None  # after it
    code, _, stderr = run_cli("--threads", "0", "info", str(tmp_path / "m.pt"))
    assert code == 2 and "--threads" in stderr and stderr.count("\n") == 1
