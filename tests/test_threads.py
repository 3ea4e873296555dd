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
        _torch.fix_threads(2)
        with _torch.shared_threads("cpu"), _torch.small_batch_threads(torch.device("cpu"), 32):
            assert torch.get_num_threads() == 2
    finally:
        _torch.fix_threads(None)
        torch.set_num_threads(before)


def test_cli_threads_fixes_the_threads_of_the_run(run_cli, tmp_path):
    from prune_info import _torch

    before = torch.get_num_threads()
    try:
        code, stdout, stderr = run_cli("--threads", "1", "train", "--data", "digits", "--arch",
                                       "64-8-10", "--epochs", "1", "-o",
                                       str(tmp_path / "m.pt"))
        assert code == 0, stderr
        assert _torch._FIXED_THREADS == 1 and torch.get_num_threads() == 1
        code, _, stderr = run_cli("--threads", "0", "info", str(tmp_path / "m.pt"))
        assert code == 2 and "--threads" in stderr and stderr.count("\n") == 1
    finally:
        _torch.fix_threads(None)
        torch.set_num_threads(before)
