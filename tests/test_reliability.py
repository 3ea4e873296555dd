"""The failure guarantees of the README's "Errors" section, one test per class of failure.

Each refusal is checked the same way (:func:`assert_refused`): exit status 2, one line on stderr
starting ``error:`` with the expected text and no traceback, and no file created or changed.
"""

from __future__ import annotations

import copy
import gzip
import json
import os
import pickle
import random
import re
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from helpers import assert_refused, snapshot

from prune_info._torch import torch_threads
from prune_info.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from prune_info.data import load_dataset
from prune_info.errors import PruneInfoError
from prune_info.experiments.pipeline import RunOptions, Stage, check_out_dir, run_pipeline
from prune_info.io import LOCK_NAME, run_lock

DEAD_PID = 999_999_999  # above any pid_max, so never a live process


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

    # a killed run's temporaries are removed at the next start of the same output (a file named
    # like one without a pid may be the user's: tests/test_security.py); the file gets the
    # umask's mode, not mkstemp's 0600
    target = tmp_path / "pruned.pt"
    stale = [tmp_path / f".pruned.pt.{DEAD_PID}.0123abcd.tmp"]
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
    out = str(tmp_path / "pruned.pt")
    assert_refused(run_cli, tmp_path,
                   ["prune", str(mlp_path), "--global", "--amount", "0.5", "--min-units", "500",
                    "-o", out],
                   "--min-units 500 keeps every unit", "would remove nothing")
    # layer-wise: a zero fraction, one that rounds down to no unit, keeping every unit; and
    # the commands that prune on the way (checked before they train anything)
    assert_refused(run_cli, tmp_path, ["prune", str(mlp_path), "--amount", "0", "-o", out],
                   "--amount 0 would remove nothing")
    assert_refused(run_cli, tmp_path, ["prune", str(mlp_path), "--amount", "0.03", "-o", out],
                   "--amount 0.03 of fc2's 24 units rounds down to 0", "raise --amount")
    assert_refused(run_cli, tmp_path, ["prune", str(mlp_path), "--keep", "32,24", "-o", out],
                   "--keep asks for every unit of every layer")
    assert_refused(run_cli, tmp_path, ["prune-retrain", str(mlp_path), "--amount-per-round",
                                       "0", "-o", str(tmp_path / "rounds")],
                   "--amount-per-round 0 would remove nothing")
    assert_refused(run_cli, tmp_path, ["run", "--arch", "64-8-10", "--amount", "0", "--out",
                                       str(tmp_path / "run")], "--amount 0 would remove nothing")


# --------------------------------------------------------------------------------------------
# 7. Every loader, fed random and truncated bytes: a PruneInfoError naming the file, no warning


def _mangled(blob: bytes, rng: random.Random, n: int = 10) -> Iterator[tuple[str, bytes, bool]]:
    """Damaged copies of a valid file: ``(label, bytes, must_fail)``.

    Empty, random bytes (some behind the file's real magic), cut at random offsets: all must be
    refused. Bit flips may go unnoticed (a flipped weight is still a weight), so those may load.
    """
    yield "empty", b"", True
    for i in range(n):
        noise = rng.randbytes(rng.choice([1, 3, 17, 300, 3000]))
        yield f"random #{i}", blob[:rng.choice([0, 2, 4, 16])] + noise, True
    for cut in sorted(rng.sample(range(1, len(blob)), n)):
        yield f"cut at {cut} of {len(blob)}", blob[:cut], True
    for i in range(n // 2):
        flipped = bytearray(blob)
        for _ in range(rng.choice([1, 8])):
            flipped[rng.randrange(len(flipped))] ^= 1 << rng.randrange(8)
        yield f"bit flips #{i}", bytes(flipped), False


def _loader_cases(root: Path, digits_mlp, digits) -> dict[str, tuple[Path, bytes, Callable]]:
    """Each loader of a file the tool reads: (where the file goes, a valid file, the reader)."""
    import numpy as np

    from prune_info.data import load_dataset, read_idx
    from prune_info.deploy.onnx import export_onnx
    from prune_info.deploy.onnx_runtime import load_onnx, ort_session

    cases: dict[str, tuple[Path, bytes, Callable]] = {}
    ckpt_path = root / "model.pt"
    save_checkpoint(digits_mlp, ckpt_path)
    cases["checkpoint"] = (root / "ckpt.pt", ckpt_path.read_bytes(), load_checkpoint)
    legacy = root / "legacy.pt"
    torch.save(digits_mlp.model.state_dict(), legacy, _use_new_zipfile_serialization=False)
    cases["legacy state_dict + arch"] = (root / "sd.pt", legacy.read_bytes(),
                                         lambda p: load_checkpoint(p, arch=digits_mlp.arch))
    cases["legacy state_dict, trusted"] = (root / "sd2.pt", legacy.read_bytes(),
                                           lambda p: load_checkpoint(p, trust_pickle=True,
                                                                     arch=digits_mlp.arch))
    header = bytes([0, 0, 8, 3]) + b"".join(v.to_bytes(4, "big") for v in (3, 4, 4))
    raw_idx = header + bytes(range(48))
    cases["IDX"] = (root / "images-idx3-ubyte", raw_idx, lambda p: read_idx(p, 3))
    cases["IDX gzipped"] = (root / "images-idx3-ubyte.gz", gzip.compress(raw_idx),
                            lambda p: read_idx(p, 3))
    cifar = root / "cifar"
    cifar.mkdir()
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8),
                 b"labels": [0, 1, 2, 3], b"batch_label": b"x"}
        (cifar / name).write_bytes(pickle.dumps(batch, protocol=2))
    cases["CIFAR-10 batch"] = (cifar / "test_batch", (cifar / "test_batch").read_bytes(),
                               lambda p: load_dataset("cifar10", p.parent))
    onnx_path = root / "model.onnx"
    export_onnx(digits_mlp, onnx_path, sample=digits.val.x[:8])
    cases["ONNX"] = (root / "m.onnx", onnx_path.read_bytes(),
                     lambda p: ort_session(load_onnx(p).data, what=str(p)))
    manifest = {"format": "prune-info-run", "format_version": 1,
                "identity": RunOptions(arch="64-8-10").identity(),
                "stages": {"train": {"fingerprint": "0" * 16, "artefacts": ["model.pt"]}}}
    run_dir = root / "run"
    run_dir.mkdir()
    cases["run manifest"] = (run_dir / "run.json", json.dumps(manifest).encode(),
                             lambda p: check_out_dir(p.parent, RunOptions(arch="64-8-10")))
    return cases


def test_every_loader_turns_random_and_truncated_bytes_into_one_error(tmp_path, digits_mlp,
                                                                      digits):
    rng = random.Random(17)
    cases = _loader_cases(tmp_path, digits_mlp, digits)
    tried = 0
    for kind, (path, valid, load) in cases.items():
        path.write_bytes(valid)
        load(path)  # the valid file loads
        for label, data, must_fail in _mangled(valid, rng):
            path.write_bytes(data)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    load(path)
                except PruneInfoError as exc:
                    # a flip in a manifest may make it another run's: then the run is named
                    named = path if must_fail or kind != "run manifest" else path.parent
                    assert str(named) in str(exc), (kind, label, str(exc))
                    assert "\n" not in str(exc), (kind, label, str(exc))
                else:
                    assert not must_fail, f"{kind} ({label}) loaded without an error"
            assert not caught, (kind, label, [str(w.message) for w in caught])
            tried += 1
    assert tried == len(cases) * 26

    # an ONNX file whose prune-info metadata another tool rewrote
    import onnx

    from prune_info.deploy.onnx_runtime import load_onnx
    path, valid, _ = cases["ONNX"]
    for key, text in (("input_shape", "[abc"), ("input_shape", "[1, -8, 8]"),
                      ("dataset", '"digits"'), ("parameters", "many")):
        proto = onnx.load_from_string(valid)
        for prop in proto.metadata_props:
            if prop.key == f"prune_info.{key}":
                prop.value = text
        path.write_bytes(proto.SerializeToString())
        with pytest.raises(PruneInfoError, match=re.escape(f"{path} is malformed (its "
                                                           f"prune-info metadata {key!r}")):
            load_onnx(path)

    # the training state a study resumes from, likewise
    from prune_info.training.batched import StackedMLP, train_stacked
    from prune_info.training.loop import TrainConfig
    from prune_info.zoo import parse_arch
    state = tmp_path / "train-state.pt"
    state.write_bytes(b"\x80\x02" + rng.randbytes(200))
    stack = StackedMLP(parse_arch("64-8-10", (1, 8, 8), 10), seeds=[0, 1])
    with pytest.raises(PruneInfoError, match=re.escape(f"{state} is malformed")):
        train_stacked(stack, digits, TrainConfig(epochs=1), progress=False, state_path=state)


def test_commands_given_damaged_files_print_one_error_line(run_cli, tmp_path, mlp_path):
    rng = random.Random(3)
    valid = {"pt": mlp_path.read_bytes()}
    code, _, stderr = run_cli("export", str(mlp_path), "-o", str(tmp_path / "valid.onnx"))
    assert code == 0, stderr
    valid["onnx"] = (tmp_path / "valid.onnx").read_bytes()
    out = str(tmp_path / "out")
    commands = {"pt": [["info"], ["score"], ["prune", "--amount", "0.5", "-o", out + ".pt"],
                       ["export", "-o", out + ".onnx"], ["retrain", "-o", out + ".pt"],
                       ["ablate", "--random", "1"], ["oinfo"],
                       ["bench", "--data", "digits", "--repeat", "1"]],
                "onnx": [["bench", "--data", "digits", "--repeat", "1"]]}
    for suffix, blob in valid.items():
        damaged = [data for _, data, must_fail in _mangled(blob, rng, n=2) if must_fail]
        for i, data in enumerate(damaged):
            path = tmp_path / f"damaged{i}.{suffix}"
            path.write_bytes(data)
            for command in commands[suffix]:
                assert_refused(run_cli, tmp_path, [command[0], str(path), *command[1:]],
                               str(path))
            if suffix == "pt":
                assert_refused(run_cli, tmp_path, ["run", "--model", str(path), "--out",
                                                   str(tmp_path / "run")], str(path))
            path.unlink()

    # dataset files: an IDX file of a FashionMNIST directory, a CIFAR-10 batch
    target = _fashion_dir(tmp_path, "valid")
    good = target.read_bytes()
    cifar = tmp_path / "cifar"
    cifar.mkdir()
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (cifar / name).write_bytes(pickle.dumps({b"data": bytes(2 * 3072), b"labels": [0, 1]}))
    for data in (b"", good[: len(good) // 2], rng.randbytes(100),
                 gzip.compress(rng.randbytes(50))):
        for name, batch in (("fashion-mnist", target), ("cifar10", cifar / "data_batch_3")):
            batch.write_bytes(data)
            assert_refused(run_cli, tmp_path,
                           ["train", "--data", name, "--data-dir", str(batch.parent),
                            "--epochs", "1", "--quiet", "-o", out + ".pt"], str(batch))


def test_run_directory_documents_that_are_not_json_objects_are_refused(tmp_path):
    from prune_info.experiments.study import StudyConfig, study_directory
    from prune_info.experiments.subnetworks import CompareConfig, run_comparison
    from prune_info.training.loop import TrainConfig

    config = StudyConfig(data="digits", arch="64-8-10", seeds=(0,), train=TrainConfig(epochs=1),
                         random=1)
    for text in ("[1, 2]", '{"format": "prune-info-study-config", "config": 5}', "\x00\xff"):
        root = tmp_path / f"study{len(text)}"
        root.mkdir()
        (root / "config.json").write_text(text, errors="surrogateescape")
        with pytest.raises(PruneInfoError, match=r"config\.json is malformed .*delete the "):
            study_directory(root).check(config.identity())
    out = tmp_path / "compare"
    out.mkdir()
    (out / "results.json").write_text("[]")
    compare = CompareConfig(spec="64-8-10", criteria=("random",), seeds=(0,), keep=(4,),
                            train=TrainConfig(epochs=1), retrain_epochs=1)
    with pytest.raises(PruneInfoError, match=r"results\.json is malformed \(a JSON list"):
        run_comparison(load_dataset("digits"), compare, out, progress=False)
    (out / "results.json").write_text('{"format": "prune-info-comparison", "config": 5}')
    with pytest.raises(PruneInfoError, match=r"results\.json is malformed \(the identity of its "
                                             r"run is not a JSON object"):
        run_comparison(load_dataset("digits"), compare, out, progress=False)
    with pytest.raises(PruneInfoError, match=r"`amount`=1\.5 is outside \[0, 1\)"):
        CompareConfig(spec="64-8-10", criteria=("mi",), seeds=(0,), amounts=(1.5,)).validate()


def test_random_bytes_give_exactly_one_stderr_line_and_no_torch_warning(tmp_path):
    """torch warns about a foreign pickle protocol before it fails; nothing but the error shows."""
    path = tmp_path / "random.pt"
    path.write_bytes(b"\x80\x22\xf5" + random.Random(1).randbytes(300))  # protocol 34, op 245
    for extra in ([], ["--trust-pickle"]):
        proc = subprocess.run([sys.executable, "-m", "prune_info", "info", *extra, str(path)],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2
        assert proc.stderr.splitlines() == [
            f"error: {path} is malformed (it does not unpickle: Unsupported operand 245); "
            "re-create it with prune-info train, or save torch.save(model.state_dict(), ...) "
            "and pass --arch or --model"], proc.stderr


# --------------------------------------------------------------------------------------------
# 8. Out of memory: one line naming what to lower


def test_a_dependency_graph_that_outgrows_memory_is_one_line_not_a_kill(run_cli, tmp_path,
                                                                         mlp_path, monkeypatch):
    """Swin-T's torch-pruning graph grew past 24 GB and the system killed the process: the
    graph is built under the memory ceiling, so the allocation fails instead, in one line."""
    import resource

    import torch_pruning as tp

    limits = []

    def outgrows(self, *args, **kwargs):
        limits.append(resource.getrlimit(resource.RLIMIT_AS)[0])
        raise MemoryError()

    monkeypatch.setattr(tp.DependencyGraph, "build_dependency", outgrows)
    out = tmp_path / "p.pt"
    assert_refused(run_cli, tmp_path, ["prune", str(mlp_path), "--amount", "0.5", "-o", str(out)],
                   "torch-pruning ran out of memory tracing the model's dependency graph (on an "
                   "input of shape [1, 8, 8]); prune-info prunes through that graph, so this "
                   "model cannot be pruned on this machine")
    assert limits and limits[0] != resource.RLIM_INFINITY  # the ceiling was on
    assert resource.getrlimit(resource.RLIMIT_AS)[0] == resource.RLIM_INFINITY  # and lifted


def test_out_of_memory_names_the_batch_size_flag(run_cli, tmp_path, mlp_path, monkeypatch):
    import prune_info.analysis.score
    import prune_info.cli.train
    import prune_info.experiments.pipeline

    def cuda_oom(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError(
            "CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of "
            "79.19 GiB of which 1.06 GiB is free. Of the allocated memory 76.5 GiB is ...")

    def cpu_oom(*args, **kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: "
                           "can't allocate memory: you tried to allocate 25599999999744 bytes. "
                           "Error code 12 (Cannot allocate memory)")

    monkeypatch.setattr(prune_info.cli.train, "train_model", cuda_oom)
    assert_refused(run_cli, tmp_path, ["train", "--epochs", "1", "-o", str(tmp_path / "t.pt")],
                   "out of memory on the GPU (tried to allocate 2.00 GiB); lower --batch-size "
                   "(or --input-shape) or use a smaller model or --device cpu")
    monkeypatch.setattr(prune_info.analysis.score, "score_report", cpu_oom)
    line = assert_refused(run_cli, tmp_path, ["score", str(mlp_path)],
                          "out of memory on the CPU (tried to allocate 23.3 TiB); lower "
                          "--batch-size")
    # the other flags that size the work are named too (a huge --input-shape, many --bins)
    assert "(or --input-shape, --bins) or use a smaller model" in line
    # wrapped by the pipeline's "stage train failed", and a command with no batch-size flag
    monkeypatch.setattr(prune_info.experiments.pipeline, "train_model", cuda_oom)
    line = assert_refused(run_cli, tmp_path, ["run", "--arch", "64-8-10", "--quiet", "--out",
                                              str(tmp_path / "run")], "out of memory on the GPU")
    # no batch-size or device flag there: the input shape is what it has to lower
    assert line.endswith("(tried to allocate 2.00 GiB); lower --input-shape or use a smaller "
                         "model")
    # anything else is still a bug with its traceback
    monkeypatch.setattr(prune_info.analysis.score, "score_report",
                        lambda *a, **k: (_ for _ in ()).throw(RuntimeError("a bug")))
    with pytest.raises(RuntimeError, match="a bug"):
        run_cli("score", str(mlp_path))


# --------------------------------------------------------------------------------------------
# 9. kill -9 in the middle of a resumable command, then the same command again: the outputs of
# a clean run, no temporaries left (`study` has its own test in test_cli_ablate.py)


def _kill_when(args: list[str], ready: Callable[[], bool], timeout: float = 120) -> None:
    """Start ``prune-info ARGS`` and SIGKILL it as soon as ``ready()``; it must not have ended."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "prune_info", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and proc.poll() is None and not ready():
            time.sleep(0.005)
    finally:
        proc.send_signal(signal.SIGKILL)
        _, stderr = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, f"it ended before the kill: {stderr.decode()}"


def _json(path: Path, drop: tuple[str, ...] = ()) -> dict:
    return {k: v for k, v in json.loads(path.read_text()).items() if k not in drop}


def _stage_done(out: Path, stage: str) -> bool:
    try:
        return stage in json.loads((out / "run.json").read_text())["stages"]
    except (OSError, ValueError, KeyError):
        return False


RUN_TINY = ["run", "--arch", "64-12-10", "--epochs", "1", "--random", "2", "--max-size", "3",
            "--max-exhaustive", "2", "--retrain-epochs", "1", "--bench-repeat", "1",
            "--bench-batch", "1", "--quiet"]


def test_run_killed_mid_stage_resumes_to_the_outputs_of_a_clean_run(run_cli, tmp_path):
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    with torch_threads(1):
        code, _, stderr = run_cli(*RUN_TINY, "--out", str(clean))
        assert code == 0, stderr
        _kill_when([*RUN_TINY, "--out", str(killed)], lambda: _stage_done(killed, "train"))
        assert not _stage_done(killed, "report")
        code, stdout, stderr = run_cli(*RUN_TINY, "--out", str(killed))
    assert code == 0, stderr
    reran = stdout.splitlines()[0].removeprefix("stages run: ").split(", ")
    assert "train ... reused" in stderr and "train" not in reran and reran[-1] == "report"
    for name in ("scores.json", "curves.json"):
        assert _json(killed / name, ("model",)) == _json(clean / name, ("model",)), name
    oinfo = [[{k: v for k, v in layer.items() if k != "seconds"}
              for layer in _json(d / "oinfo.json")["layers"]] for d in (clean, killed)]
    assert oinfo[0] == oinfo[1]
    a, b = (_json(d / "run.json")["stages"] for d in (clean, killed))
    for stage in ("train", "score", "ablate", "oinfo", "prune", "retrain", "export"):
        assert a[stage]["fingerprint"] == b[stage]["fingerprint"]
        if stage != "export":  # its summary times the conversion
            assert a[stage]["summary"] == b[stage]["summary"], stage
    bench = [_json(d / "bench.json")["models"] for d in (clean, killed)]
    assert [[m["test_acc"], m["parameters"]] for m in bench[0]] == \
        [[m["test_acc"], m["parameters"]] for m in bench[1]]
    assert not list(killed.rglob("*.tmp")), list(killed.rglob("*.tmp"))


SUBNET_TINY = ["subnetworks", "--arch", "64-8-8-10", "--criteria", "mi,random", "--keep", "3",
               "--seeds", "3", "--epochs", "2", "--retrain-epochs", "1", "--quiet"]


def test_subnetworks_killed_after_a_seed_resumes_to_the_results_of_a_clean_run(run_cli,
                                                                              tmp_path):
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    with torch_threads(1):
        code, _, stderr = run_cli(*SUBNET_TINY, "-o", str(clean))
        assert code == 0, stderr
        _kill_when([*SUBNET_TINY, "-o", str(killed)], lambda: (killed / "results.json").exists())
        partial = json.loads((killed / "results.json").read_text())["rows"]
        assert partial and {row["seed"] for row in partial} != {0, 1, 2}
        code, _, stderr = run_cli(*SUBNET_TINY, "-o", str(killed))
    assert code == 0, stderr
    assert _json(killed / "results.json") == _json(clean / "results.json")
    assert (killed / "table.txt").read_text() == (clean / "table.txt").read_text()
    assert not list(killed.rglob("*.tmp")), list(killed.rglob("*.tmp"))


# --------------------------------------------------------------------------------------------
# 10. The second hostile pass: numbers too large for C integers, malformed --model-kwargs,
# warnings in front of the error line


def test_numbers_beyond_c_integers_are_refused(run_cli, tmp_path, mlp_path):
    out = str(tmp_path / "t.pt")
    assert_refused(run_cli, tmp_path, ["train", "--epochs", "99999999999999999999999", "-o",
                                       out], "--epochs must be between 1 and 1,000,000")
    for command in (["train", "-o", out], ["score", str(mlp_path)],
                    ["prune", str(mlp_path), "--amount", "0.5", "-o", out]):
        assert_refused(run_cli, tmp_path, [*command, "--seed", str(2**70)], "--seed",
                       "4294967295")
    from prune_info.training.loop import TrainConfig
    with pytest.raises(PruneInfoError, match="`seed` must be between 0 and 4294967295"):
        TrainConfig(seed=2**64).validate()
    # a count of work that would run for days is refused, not started
    assert_refused(run_cli, tmp_path, ["ablate", str(mlp_path), "--random", str(10**11)],
                   "--random 100000000000 random orderings is more than 100,000")


def test_an_architecture_given_for_a_checkpoint_that_records_one_is_refused(run_cli, tmp_path,
                                                                           mlp_path):
    for extra in (["--model", "torchvision.models:resnet18"],
                  ["--arch", "64-8-10", "--data", "digits"]):
        assert_refused(run_cli, tmp_path, ["info", str(mlp_path), *extra],
                       "carries its own architecture", "plain state_dict only")


def test_malformed_model_kwargs_are_refused_before_the_factory_runs(run_cli, tmp_path):
    from prune_info.zoo import parse_model_kwargs
    for text, message in (("num_classes=10,num_classes=5", "num_classes is given twice"),
                          ("patch_size=(4,4", "unbalanced brackets"),
                          ("sizes=[1,2]]", "unbalanced brackets")):
        assert_refused(run_cli, tmp_path, ["train", "--model", "torchvision.models:resnet18",
                                           "--model-kwargs", text, "-o",
                                           str(tmp_path / "t.pt")], "--model-kwargs", message)
    # brackets and commas inside quotes are a string's
    assert parse_model_kwargs('name="a,(b", size=(1, 2)') == {"name": "a,(b", "size": (1, 2)}


def test_warnings_are_held_back_one_line_on_error_each_once_at_the_end_on_success(
        run_cli, tmp_path, monkeypatch):
    (tmp_path / "warnmodels.py").write_text(
        "import warnings\n"
        "from torch import nn\n\n\n"
        "def model(classes=10):\n"
        "    warnings.warn('this layer is deprecated', UserWarning)\n"
        "    return nn.Sequential(nn.Flatten(), nn.Linear(64, classes))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    out = str(tmp_path / "t.pt")
    assert_refused(run_cli, tmp_path, ["train", "--model", "warnmodels:model", "--model-kwargs",
                                       "classes=3", "-o", out], "outputs [2, 3]", "10 classes")
    code, stdout, stderr = run_cli("train", "--model", "warnmodels:model", "--epochs", "1",
                                   "--quiet", "-o", out)
    assert code == 0, stderr
    assert stderr.splitlines().count("warning: this layer is deprecated") == 1
    assert stderr.splitlines()[-1] == "warning: this layer is deprecated"


def test_interrupted_commands_leave_no_temporaries_and_no_directory_they_created(
        run_cli, tmp_path, mlp_path, monkeypatch):
    import prune_info.checkpoint
    import prune_info.cli.retrain
    import prune_info.experiments.pipeline

    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt

    def half_then_ctrl_c(obj, path, *args, **kwargs):
        Path(path).write_bytes(b"half a checkpoint")
        raise KeyboardInterrupt

    before = snapshot(tmp_path)
    monkeypatch.setattr(prune_info.checkpoint.torch, "save", half_then_ctrl_c)
    monkeypatch.setattr(prune_info.cli.retrain, "iterative_prune", ctrl_c)
    monkeypatch.setattr(prune_info.cli.retrain, "run_comparison", ctrl_c)
    monkeypatch.setattr(prune_info.experiments.pipeline, "train_model", ctrl_c)
    for args in (["prune", str(mlp_path), "--amount", "0.5", "-o", str(tmp_path / "p.pt")],
                 ["prune-retrain", str(mlp_path), "--rounds", "1", "-o", str(tmp_path / "pr")],
                 ["subnetworks", "--seeds", "1", "-o", str(tmp_path / "sn")],
                 ["run", "--arch", "64-8-10", "--quiet", "--out", str(tmp_path / "run")]):
        code, _, stderr = run_cli(*args)
        assert code == 130 and stderr.strip().splitlines()[-1] == "aborted", (args, stderr)
        assert snapshot(tmp_path) == before, args


def test_output_paths_that_name_no_file_or_a_read_only_one_are_refused(run_cli, tmp_path,
                                                                       mlp_path):
    read_only = tmp_path / "kept.pt"
    read_only.write_bytes(b"the user's file")
    read_only.chmod(0o444)
    model = str(mlp_path)
    for out, text in ((str(read_only), "the file is read-only"),
                      (str(tmp_path / "newdir") + "/", "ends with a slash"),
                      ("", "it is empty")):
        for args in (["prune", model, "--amount", "0.5", "-o", out],
                     ["score", model, "--out", out], ["export", model, "-o", out]):
            assert_refused(run_cli, tmp_path, args, "cannot write", text)
    assert read_only.read_bytes() == b"the user's file"


def test_a_run_directory_is_claimed_once_and_resumed_only_by_the_same_run(tmp_path):
    from prune_info.io import LOCK_NAME, RunDirectory

    def run_dir(path):
        return RunDirectory(path, "config.json", "prune-info-test-config", what="a test run")

    root = tmp_path / "run"
    assert run_dir(root).check({"epochs": 2}) is None and not root.exists()
    with run_dir(root).owned({"epochs": 2}) as record:
        assert record is None and (root / LOCK_NAME).exists()  # a new run
        (root / "result.txt").write_text("done")
    saved = json.loads((root / "config.json").read_text())
    assert saved["format"] == "prune-info-test-config" and saved["config"] == {"epochs": 2}
    assert run_dir(root).check({"epochs": 2}) == saved  # the same run: resumed
    with run_dir(root).owned({"epochs": 2}) as record:
        assert record == saved
    with pytest.raises(PruneInfoError, match=r"holds another configuration \(epochs: 2 there, "
                                             r"3 here\); delete the directory"):
        run_dir(root).check({"epochs": 3})
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "mine.txt").write_text("mine")
    with pytest.raises(PruneInfoError, match=r"non-empty directory that holds no config.json "
                                             r"\(a test run\)"):
        run_dir(tmp_path / "notes").check({})
    (tmp_path / "file").write_text("x")
    with pytest.raises(PruneInfoError, match="`out_dir`=.*file is a file"):
        run_dir(tmp_path / "file").check({})
    with pytest.raises(PruneInfoError, match="directory .*missing does not exist"):
        run_dir(tmp_path / "missing" / "run").check({})
