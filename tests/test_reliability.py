"""The failure guarantees of the README's "Errors" section, one test per class of failure.

Each refusal is checked the same way (:func:`assert_refused`): exit status 2, one line on stderr
starting ``error:`` with the expected text and no traceback, and no file created or changed.
"""

from __future__ import annotations

import copy
import gzip
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from prune_info.checkpoint import Checkpoint, save_checkpoint
from prune_info.errors import PruneInfoError
from prune_info.experiments.pipeline import RunOptions, Stage, check_out_dir, run_pipeline
from prune_info.io import LOCK_NAME, run_lock

DEAD_PID = 999_999_999  # above any pid_max, so never a live process


def snapshot(root: Path) -> dict[str, tuple[int, int, int]]:
    """Every file under ``root`` with its size, mtime and mode."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns, p.stat().st_mode)
            for p in sorted(root.rglob("*"))}


def assert_refused(run_cli, root: Path, args: list[str], *expected: str) -> str:
    """Exit 2, one error line (after ``run``'s stage lines, if any), nothing written."""
    before = snapshot(root)
    code, stdout, stderr = run_cli(*args)
    assert code == 2, (args, stdout, stderr)
    lines = [line for line in stderr.strip().splitlines() if not line.startswith("stage ")]
    assert len(lines) == 1 and lines[0].startswith("error: "), (args, stderr)
    assert "Traceback" not in stderr
    for text in expected:
        assert text in lines[0], (args, lines[0])
    assert snapshot(root) == before, args
    return lines[0]


# --------------------------------------------------------------------------------------------
# 1. Malformed inputs: one loader error naming the file and the fix


def _idx(path: Path, dims: list[int], body: bytes, ndim: int | None = None) -> None:
    header = bytes([0, 0, 8, len(dims) if ndim is None else ndim])
    header += b"".join(int(d).to_bytes(4, "big") for d in dims)
    with gzip.open(path, "wb") as fh:
        fh.write(header + body)


def _fashion_dir(root: Path, broken: str) -> Path:
    d = root / broken
    d.mkdir()
    n = 12
    files = {
        "train-images-idx3-ubyte.gz": ([n, 28, 28], bytes(n * 784)),
        "train-labels-idx1-ubyte.gz": ([n], bytes(range(n))[:n]),
        "t10k-images-idx3-ubyte.gz": ([n, 28, 28], bytes(n * 784)),
        "t10k-labels-idx1-ubyte.gz": ([n], bytes([i % 10 for i in range(n)])),
    }
    files["train-labels-idx1-ubyte.gz"] = ([n], bytes([i % 10 for i in range(n)]))
    for name, (dims, body) in files.items():
        _idx(d / name, dims, body)
    target = d / "train-images-idx3-ubyte.gz"
    if broken == "header-only":
        with gzip.open(target, "wb") as fh:
            fh.write(bytes([0, 0, 8, 3]))
    elif broken == "255-dims":
        _idx(target, [n, 28, 28], bytes(n * 784), ndim=255)
    elif broken == "label-200":
        target = d / "train-labels-idx1-ubyte.gz"
        _idx(target, [n], bytes([200] + [i % 10 for i in range(1, n)]))
    return target


def test_malformed_inputs_get_one_loader_error(run_cli, tmp_path, digits_mlp):
    state = digits_mlp.model.state_dict()
    base = {"format": "prune-info-checkpoint", "format_version": 1}
    torch.save({**base, "arch": digits_mlp.arch}, tmp_path / "no-state.pt")
    torch.save({**base, "arch": {"kind": "mlp"}, "state_dict": state}, tmp_path / "bare-arch.pt")
    (tmp_path / "not-a-pickle.pt").write_bytes(b"\x80\x02 not a pickle at all")
    for name, extra in (("no-state.pt", []), ("bare-arch.pt", []),
                        ("not-a-pickle.pt", ["--trust-pickle"])):
        assert_refused(run_cli, tmp_path, ["info", *extra, str(tmp_path / name)],
                       name, "is malformed", "re-create it")

    for broken in ("header-only", "255-dims", "label-200"):
        target = _fashion_dir(tmp_path, broken)
        assert_refused(run_cli, tmp_path,
                       ["train", "--data", "fashion-mnist", "--data-dir", str(target.parent),
                        "--epochs", "1", "--quiet", "-o", str(tmp_path / "out.pt")],
                       str(target), "is malformed", "re-download it")

    # a foreign ONNX file whose graph fixes the batch to 1
    onnx_path = tmp_path / "fixed.onnx"
    from prune_info.deploy.onnx import quiet_export
    with quiet_export():
        torch.onnx.export(digits_mlp.model.eval(), torch.zeros(1, 1, 8, 8), str(onnx_path),
                          dynamo=False)
    assert_refused(run_cli, tmp_path,
                   ["bench", str(onnx_path), "--data", "digits", "--batch", "64", "--repeat", "1",
                    "--warmup", "0", "--quiet", "--csv", str(tmp_path / "b.csv")],
                   str(onnx_path), "fixes the batch size to 1", "--batch 1")


# --------------------------------------------------------------------------------------------
# 2. Outputs: writability checked first, the umask's mode, no temporaries left


def test_outputs_are_checked_first_written_with_umask_mode_and_leave_no_temporaries(
        run_cli, tmp_path, mlp_path, monkeypatch):
    locked = tmp_path / "read-only"
    locked.mkdir()
    real_access = os.access
    # also as root (where chmod does not stop writes): the directory reads as not writable
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if Path(p) == locked
                        else real_access(p, mode, **kw))
    model = str(mlp_path)
    out = str(locked / "out")
    for args in (["prune", model, "--amount", "0.5", "-o", out],
                 ["score", model, "--out", out + ".json"],
                 ["retrain", model, "--epochs", "1", "-o", out],
                 ["export", model, "-o", out + ".onnx"],
                 ["train", "--epochs", "1", "-o", out],
                 ["bench", model, "--csv", out + ".csv"],
                 ["prune-retrain", model, "--rounds", "1", "-o", out]):
        assert_refused(run_cli, tmp_path, args, str(locked), "not writable")

    # a killed run's temporaries (this format, and mkstemp's of older versions) are removed at
    # the next start of the same output; the file gets the umask's mode, not mkstemp's 0600
    target = tmp_path / "pruned.pt"
    stale = [tmp_path / f".pruned.pt.{DEAD_PID}.0123abcd.tmp", tmp_path / ".pruned.pt.k2j3h4g5.tmp"]
    for leftover in stale:
        leftover.write_bytes(b"half")
    old = os.umask(0o027)
    try:
        code, _, stderr = run_cli("prune", model, "--amount", "0.5", "-o", str(target))
    finally:
        os.umask(old)
    assert code == 0, stderr
    assert target.stat().st_mode & 0o777 == 0o640
    assert not any(p.exists() for p in stale)
    assert not list(tmp_path.glob(".*.tmp"))


# --------------------------------------------------------------------------------------------
# 3. Non-finite values


def test_non_finite_values_are_refused(run_cli, tmp_path, digits_mlp):
    broken = copy.deepcopy(digits_mlp.model)
    with torch.no_grad():
        broken.fc1.weight[0, 0] = float("nan")
    nan_path = tmp_path / "nan.pt"
    save_checkpoint(Checkpoint(model=broken, arch=digits_mlp.arch, dataset=digits_mlp.dataset),
                    nan_path)
    out = str(tmp_path / "out")
    assert_refused(run_cli, tmp_path, ["info", str(nan_path)], "non-finite weights",
                   "fc1.weight", "--allow-nonfinite")
    assert_refused(run_cli, tmp_path, ["export", str(nan_path), "-o", out + ".onnx"],
                   "non-finite weights")
    # let through, the NaN logits are never "max abs diff 0.00e+00": nothing is written
    assert_refused(run_cli, tmp_path,
                   ["export", str(nan_path), "--allow-nonfinite", "-o", out + ".onnx"],
                   "not finite", "nothing is written")
    for lr in ("inf", "nan"):
        assert_refused(run_cli, tmp_path, ["train", "--lr", lr, "-o", out], "--lr",
                       "positive finite")
    # a diverging training stops at the epoch it produced NaN / inf weights
    assert_refused(run_cli, tmp_path,
                   ["train", "--arch", "64-8-10", "--epochs", "2", "--optimizer", "sgd",
                    "--lr", "1e30", "--quiet", "-o", out],
                   "training diverged", "after epoch 1", "--allow-nonfinite")
    code, _, stderr = run_cli("info", "--allow-nonfinite", str(nan_path))
    assert code == 0, stderr


# --------------------------------------------------------------------------------------------
# 4. One writer per output directory


def test_output_directories_take_a_run_lock(run_cli, tmp_path, mlp_path, capsys):
    out = tmp_path / "rounds"
    out.mkdir()
    with run_lock(out):
        before = snapshot(tmp_path)
        proc = subprocess.run(
            [sys.executable, "-m", "prune_info", "prune-retrain", str(mlp_path), "--rounds", "1",
             "--epochs", "1", "--quiet", "-o", str(out)],
            capture_output=True, text=True, timeout=120)
        assert snapshot(tmp_path) == before
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert f"in use by another prune-info process (pid {os.getpid()})" in lines[0]

    # the lock of a process that died is taken over, with a note
    (out / LOCK_NAME).write_text(f"{DEAD_PID}\n")
    capsys.readouterr()
    with run_lock(out):
        assert (out / LOCK_NAME).read_text().strip() == str(os.getpid())
    assert f"stale lock of {out} left by process {DEAD_PID}" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# 5. `run` validates every option before the first stage


def test_run_validates_options_before_the_first_stage(run_cli, tmp_path):
    out = tmp_path / "run"
    for extra, text in ((["--max-exhaustive", "1"], "--max-exhaustive must be at least 2"),
                        (["--max-size", "2", "--max-exhaustive", "3"],
                         "--max-exhaustive 3 exceeds --max-size 2"),
                        (["--criterion", "bogus"], "unknown criterion 'bogus'")):
        assert_refused(run_cli, tmp_path, ["run", "--arch", "64-8-10", "--epochs", "1",
                                           "--quiet", *extra, "--out", str(out)], text)
        assert not out.exists()
    assert_refused(run_cli, tmp_path, ["run", "--arch", "100-8-10", "--quiet", "--out",
                                       str(out)], "--arch 100-8-10 expects 100 inputs")

    # a run that failed in its first stage leaves nothing behind to refuse the corrected rerun
    def fail(ctx):
        raise PruneInfoError("no luck")

    failing = [Stage("train", lambda o: {}, (), ("model.pt",), fail)]
    with pytest.raises(PruneInfoError, match="stage train failed: no luck"):
        run_pipeline(out, RunOptions(arch="64-8-10", progress=False), stages=failing)
    assert not out.exists()
    out.mkdir()  # nor does a manifest without a finished stage count as another run
    (out / "run.json").write_text('{"format": "prune-info-run", "format_version": 1, '
                                  '"identity": {"arch": "100-8-10"}, "stages": {}}')
    assert check_out_dir(out, RunOptions(arch="64-8-10")) is None


# --------------------------------------------------------------------------------------------
# 6. A prune that would remove nothing


def test_prune_that_would_remove_nothing_is_an_error(run_cli, tmp_path, mlp_path):
    assert_refused(run_cli, tmp_path,
                   ["prune", str(mlp_path), "--global", "--amount", "0.5", "--min-units", "500",
                    "-o", str(tmp_path / "pruned.pt")],
                   "--min-units 500 keeps every unit", "would remove nothing")
