"""The third hostile pass: no input file chooses the code that runs, and nothing is silent.

One test per class of failure, at its root: a forged checkpoint naming a dangerous factory, a
lock file that is a link or a FIFO, a rounding that empties a prune, damaged artefacts of a
resumed run, ``sys.exit`` and Ctrl-C, unsupported tracking stores, memory and disk limits, and
a library function given arguments of the wrong type.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from helpers import assert_refused

from prune_info.checkpoint import CHECKPOINT_FORMAT, CHECKPOINT_VERSION, load_checkpoint
from prune_info.errors import PruneInfoError

# --------------------------------------------------------------------------------------------
# 1. A checkpoint never chooses the code


def forged_checkpoint(path: Path, factory: str, kwargs: dict) -> Path:
    """A file in the prune-info format whose record asks to run ``factory(**kwargs)``."""
    torch.save({"format": CHECKPOINT_FORMAT, "format_version": CHECKPOINT_VERSION,
                "arch": None, "factory": factory, "factory_kwargs": kwargs,
                "state_dict": {"w": torch.zeros(1)}}, path)
    return path


def dangerous_factories(tmp_path: Path, sentinel: Path) -> dict[str, dict]:
    """Each factory the hostile pass used, with arguments that create ``sentinel`` if run."""
    script = tmp_path / "payload.py"
    script.write_text(f"open({str(sentinel)!r}, 'w').close()\n")
    pickled = tmp_path / "payload.pt"
    torch.save({"x": 1}, pickled)
    return {
        "os:system": {"command": f"touch {sentinel}"},
        "subprocess:run": {"args": ["touch", str(sentinel)]},
        "runpy:run_path": {"path_name": str(script)},
        "torch:load": {"f": str(pickled), "weights_only": False},
        "builtins:exec": {"source": f"open({str(sentinel)!r}, 'w').close()"},
    }


def test_a_forged_factory_is_refused_with_nothing_executed(tmp_path, run_cli):
    sentinel = tmp_path / "PWNED"
    for factory, kwargs in dangerous_factories(tmp_path, sentinel).items():
        evil = forged_checkpoint(tmp_path / "evil.pt", factory, kwargs)
        with pytest.raises(PruneInfoError) as caught:
            load_checkpoint(evil)
        assert factory in str(caught.value) or "path" in str(caught.value) \
            or "weights" in str(caught.value), str(caught.value)
        for command in (["info", str(evil)], ["score", str(evil), "--criteria", "magnitude",
                                              "--input-shape", "1,8,8"],
                        ["bench", str(evil)]):
            assert_refused(run_cli, tmp_path, command)
        assert not sentinel.exists(), factory


def test_the_refusal_says_what_the_file_asks_to_run_and_how_to_allow_it(tmp_path, run_cli):
    evil = forged_checkpoint(tmp_path / "evil.pt", "os:system", {"command": "true"})
    line = assert_refused(run_cli, tmp_path, ["info", str(evil)])
    assert "os:system(command='true')" in line
    assert "--model os:system" in line and "--trust-factory" in line


def test_recorded_arguments_never_name_a_file_or_weights(tmp_path):
    for kwargs, match in (({"checkpoint_path": "/tmp/x.pt"}, "would download weights"),
                          ({"pretrained": True}, "would download weights"),
                          ({"act_layer": "../evil"}, "names a path"),
                          ({"block": object.__name__, "nested": {"f": "/etc/passwd"}},
                           "names a path")):
        evil = forged_checkpoint(tmp_path / "evil.pt", "torchvision.models:resnet18", kwargs)
        with pytest.raises(PruneInfoError, match=match):
            load_checkpoint(evil, trust_factory=True)  # refused even when factories are trusted


@pytest.fixture()
def user_factory(tmp_path, monkeypatch):
    """A user's module ``usernets`` with a factory ``tiny`` (importable from ``tmp_path``)."""
    (tmp_path / "usernets.py").write_text(
        "import torch.nn as nn\n"
        "def tiny(width=12):\n"
        "    return nn.Sequential(nn.Flatten(), nn.Linear(64, width), nn.ReLU(),\n"
        "                         nn.Linear(width, 10))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "usernets", raising=False)
    return "usernets:tiny"


def test_a_users_own_factory_runs_when_named_again_or_trusted(tmp_path, user_factory, run_cli):
    import usernets

    from prune_info.checkpoint import Checkpoint, save_checkpoint

    path = tmp_path / "own.pt"
    save_checkpoint(Checkpoint(usernets.tiny(width=6), factory=user_factory,
                               factory_kwargs={"width": 6}, dataset={"input_shape": [1, 8, 8]}),
                    path)
    with pytest.raises(PruneInfoError, match="not a builder of a known model zoo"):
        load_checkpoint(path)
    assert load_checkpoint(path, factory=user_factory).layers[0].n_units == 6
    assert load_checkpoint(path, trust_factory=True).layers[0].n_units == 6
    with pytest.raises(PruneInfoError, match="records the factory usernets:tiny"):
        load_checkpoint(path, factory="usernets:other")
    assert_refused(run_cli, tmp_path, ["info", str(path)], "--trust-factory")
    for extra in (["--model", user_factory], ["--trust-factory"]):
        code, out, err = run_cli("info", str(path), *extra)
        assert code == 0, err


def test_zoo_factories_load_without_being_named(tmp_path, resnet_like_checkpoint):
    assert load_checkpoint(resnet_like_checkpoint).factory == "torchvision.models:resnet18"


@pytest.fixture()
def resnet_like_checkpoint(tmp_path):
    import torchvision

    from prune_info.checkpoint import Checkpoint, save_checkpoint

    path = tmp_path / "resnet.pt"
    save_checkpoint(Checkpoint(torchvision.models.resnet18(num_classes=3),
                               factory="torchvision.models:resnet18",
                               factory_kwargs={"num_classes": 3}), path)
    return path


def test_a_factory_argument_the_builder_does_not_take_is_refused_before_the_call(
        user_factory):
    from prune_info.zoo import build_factory_model

    with pytest.raises(PruneInfoError, match="takes no argument depth; it takes: width"):
        build_factory_model(user_factory, {"depth": 3})


def test_a_resumed_run_directory_cannot_smuggle_a_factory(tmp_path, run_cli):
    """A run directory received from elsewhere: its model.pt names os:system."""
    out = tmp_path / "run"
    code, _, err = run_cli("run", "--data", "digits", "--arch", "64-8-10", "--epochs", "1",
                           "--random", "1", "--max-size", "2", "--max-exhaustive", "2",
                           "--retrain-epochs", "1", "--bench-repeat", "1", "--bench-batch", "1",
                           "--quiet", "--out", str(out))
    assert code == 0, err
    sentinel = tmp_path / "PWNED"
    forged_checkpoint(out / "pruned.pt", "os:system", {"command": f"touch {sentinel}"})
    code, _, err = run_cli("run", "--data", "digits", "--arch", "64-8-10", "--epochs", "1",
                           "--random", "1", "--max-size", "2", "--max-exhaustive", "2",
                           "--retrain-epochs", "1", "--bench-repeat", "2", "--bench-batch", "1",
                           "--quiet", "--out", str(out))  # bench reruns: it reads pruned.pt
    assert not sentinel.exists()
    assert code in (0, 2), err


# --------------------------------------------------------------------------------------------
# 2. Lock files and temporaries that cannot hurt


@pytest.mark.parametrize("kind", ["symlink", "dangling", "fifo", "garbage", "devnull",
                                  "hardlink"])
def test_a_lock_path_that_is_not_a_lock_file_is_refused_and_left_alone(tmp_path, run_cli, kind,
                                                                       mlp_path):
    import os

    from prune_info.io import LOCK_NAME, run_lock

    victim = tmp_path / "bashrc"
    victim.write_text("export KEEP=1\n")
    out = tmp_path / "rounds"
    out.mkdir()
    lock = out / LOCK_NAME
    if kind == "symlink":
        lock.symlink_to(victim)
    elif kind == "dangling":
        lock.symlink_to(tmp_path / "created-outside")
    elif kind == "fifo":
        os.mkfifo(lock)
    elif kind == "garbage":
        lock.write_bytes(bytes(range(256)) * 4)
    elif kind == "devnull":
        lock.symlink_to("/dev/null")
    else:
        os.link(victim, lock)
    with pytest.raises(PruneInfoError, match="cannot lock"):
        with run_lock(out):
            pass
    assert_refused(run_cli, tmp_path, ["prune-retrain", str(mlp_path), "--rounds", "1",
                                       "--epochs", "1", "--quiet", "-o", str(out)],
                   "cannot lock", LOCK_NAME)  # one line, in well under the test's time
    assert victim.read_text() == "export KEEP=1\n"
    assert not (tmp_path / "created-outside").exists()


def test_only_temporaries_carrying_a_dead_pid_are_deleted(tmp_path):
    from prune_info.io import atomic_write

    users = tmp_path / ".p.pt.abcdefgh.tmp"  # named like an old-style temporary: the user's
    users.write_text("mine")
    dead = tmp_path / ".p.pt.999999999.0123abcd.tmp"
    dead.write_text("half")
    with atomic_write(tmp_path / "p.pt") as tmp:
        tmp.write_text("new")
    assert users.read_text() == "mine" and not dead.exists()


def test_an_output_directory_that_is_a_dangling_link_is_one_line(tmp_path, run_cli, mlp_path):
    out = tmp_path / "rounds"
    out.symlink_to(tmp_path / "missing")
    assert_refused(run_cli, tmp_path, ["prune-retrain", str(mlp_path), "--rounds", "1",
                                       "--epochs", "1", "--quiet", "-o", str(out)],
                   "symbolic link", "does not exist")


# --------------------------------------------------------------------------------------------
# 3. Every check after the transformation it guards


def test_a_rounding_that_leaves_nothing_to_remove_is_refused(tmp_path, run_cli, cnn_path):
    out = str(tmp_path / "p.pt")
    assert_refused(run_cli, tmp_path, ["prune", str(cnn_path), "--amount", "0.5",
                                       "--round-to", "16", "-o", out],
                   "would remove nothing", "--round-to 16")
    code, _, err = run_cli("prune", str(cnn_path), "--amount", "0.5", "--round-to", "2",
                           "-o", out)
    assert code == 0, err


# --------------------------------------------------------------------------------------------
# 5. Exits: sys.exit in user code, Ctrl-C from the first instruction


def test_sys_exit_in_a_factory_is_one_line_and_exit_2(tmp_path, monkeypatch, run_cli):
    (tmp_path / "quitter.py").write_text("import sys\ndef net():\n    sys.exit(0)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "quitter", raising=False)
    assert_refused(run_cli, tmp_path, ["train", "--model", "quitter:net", "--epochs", "1",
                                       "-o", str(tmp_path / "m.pt")], "sys.exit(0)")


def test_sys_exit_in_a_forward_pass_is_one_line_and_exit_2(tmp_path, monkeypatch, run_cli):
    (tmp_path / "quitnet.py").write_text(
        "import sys, torch.nn as nn\n"
        "class Net(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.fc, self.out = nn.Linear(64, 4), nn.Linear(4, 10)\n"
        "    def forward(self, x):\n"
        "        sys.exit(3)\n"
        "def net():\n"
        "    return Net()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "quitnet", raising=False)
    assert_refused(run_cli, tmp_path, ["train", "--model", "quitnet:net", "--epochs", "1",
                                       "-o", str(tmp_path / "m.pt")], "sys.exit(3)")


@pytest.mark.parametrize("delay", [0.15, 0.6, 1.2])
def test_ctrl_c_at_any_moment_of_start_up_exits_130_in_one_line(mlp_path, delay):
    """SIGINT while torch and the commands import (the first ~2 s), and once they have."""
    import signal
    import subprocess
    import time

    proc = subprocess.Popen([sys.executable, "-m", "prune_info", "info", str(mlp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    if proc.returncode == 0 and "architecture" in out:
        pytest.skip("the command finished before the signal (a fast machine)")
    assert proc.returncode == 130, (proc.returncode, err)
    assert err.strip() == "interrupted", err


# --------------------------------------------------------------------------------------------
# 7. Resource guards: memory, disk


def test_an_architecture_larger_than_memory_is_refused_before_allocation(tmp_path, run_cli):
    assert_refused(run_cli, tmp_path, ["train", "--arch", "64-100000000000-10", "-o",
                                       str(tmp_path / "m.pt")],
                   "7,500,000,000,010 parameters", "GiB of memory available", "narrower")


def test_a_factory_that_outgrows_memory_fails_in_one_line_instead_of_being_killed(
        tmp_path, run_cli, monkeypatch):
    import prune_info._torch

    (tmp_path / "hogs.py").write_text(
        "import torch.nn as nn\n"
        "def hog(blocks=10**6):\n"
        "    keep = [bytearray(1 << 16) for _ in range(blocks)]  # 64 GiB in small pieces\n"
        "    return nn.Linear(1, 1)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "hogs", raising=False)
    monkeypatch.setattr(prune_info._torch, "memory_available", lambda: 256 << 20)
    assert_refused(run_cli, tmp_path, ["train", "--model", "hogs:hog", "-o",
                                       str(tmp_path / "m.pt")], "out of memory")
    import resource
    assert resource.getrlimit(resource.RLIMIT_AS)[0] == resource.RLIM_INFINITY  # lifted again


@pytest.mark.parametrize("command", [["train", "--arch", "64-100-10", "--epochs", "1",
                                      "--quiet", "-o", "OUT.pt"],
                                     ["export", "MODEL", "-o", "OUT.onnx"]])
def test_a_write_that_finds_no_room_is_one_line_naming_the_file(tmp_path, mlp_path, command):
    """A file-size limit (``ulimit -f``) stands in for a full disk: the same errors."""
    limit = 2 << 10
    import resource
    import subprocess

    args = [a.replace("OUT", str(tmp_path / "out")).replace("MODEL", str(mlp_path))
            for a in command]
    proc = subprocess.run(
        [sys.executable, "-m", "prune_info", *args], capture_output=True, text=True,
        timeout=120,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit)))
    out = args[-1]
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()], proc.stderr
    assert proc.stderr.startswith(f"error: cannot write {out}: ") and "ulimit -f" in proc.stderr
    assert not Path(out).exists() and not list(tmp_path.glob(".*.tmp"))


# --------------------------------------------------------------------------------------------
# 8. Every loader validates every field it reads


@pytest.mark.parametrize("damage", [
    lambda d: d["arch"].update(hidden=[-5, 24]),
    lambda d: d["arch"].update(act="swish"),
    lambda d: d.update(init_state_dict={k: v[:1] for k, v in d["state_dict"].items()}),
    lambda d: d.update(rewind_state_dicts={"5": {"fc1.weight": torch.zeros(2)}}),
    lambda d: d["metrics"].update(test_acc="97 %"),
    lambda d: d["train_config"].update(epochs="ten"),
    lambda d: d["dataset"].update(input_shape=[1, -8, 8]),
    lambda d: d.update(metrics=[0.9]),
    lambda d: d.update(seed="0"),
    lambda d: d.update(pruning_history={"step": 1}),
])
def test_a_damaged_field_is_refused_as_malformed(tmp_path, mlp_path, run_cli, damage):
    raw = torch.load(mlp_path, weights_only=True)
    damage(raw)
    bad = tmp_path / "bad.pt"
    torch.save(raw, bad)
    with pytest.raises(PruneInfoError, match="is malformed"):
        load_checkpoint(bad)
    for command in (["info", str(bad)], ["score", str(bad)],
                    ["prune", str(bad), "--amount", "0.5", "-o", str(tmp_path / "p.pt")]):
        assert_refused(run_cli, tmp_path, command, "is malformed")


def test_a_stored_result_of_the_right_format_but_missing_keys_is_one_line(tmp_path, run_cli):
    import json

    study = ["study", "--data", "digits", "--arch", "64-8-10", "--seeds", "2", "--epochs", "1",
             "--random", "1", "--quiet", "--out", str(tmp_path / "s")]
    code, _, err = run_cli(*study)
    assert code == 0, err
    record = next((tmp_path / "s").rglob("seed-0001/curves.json"))
    document = json.loads(record.read_text())
    del document["curves"]
    record.write_text(json.dumps(document))
    (tmp_path / "s" / "results.json").unlink()
    code, _, err = run_cli(*study)
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert f"{record} is malformed (it lacks curves.layerwise.counts)" in err


# --------------------------------------------------------------------------------------------
# 8b. One validation layer for the library


def _required(fn) -> list:
    import inspect

    return [p for p in inspect.signature(fn).parameters.values()
            if p.default is inspect.Parameter.empty
            and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def _public_functions():
    """Every function of ``pi`` that takes an argument (``available_criteria`` takes none)."""
    import inspect

    import prune_info as pi

    return [(name, getattr(pi, name)) for name in pi.__all__
            if inspect.isfunction(getattr(pi, name)) and _required(getattr(pi, name))]


class _Stranger:
    """An argument of a type no public function takes."""


@pytest.mark.parametrize("name,fn", _public_functions())
def test_every_public_function_refuses_wrong_types_in_parameter_vocabulary(name, fn):
    required = _required(fn)
    args = [_Stranger() for p in required if p.kind is not p.KEYWORD_ONLY]
    kwargs = {p.name: _Stranger() for p in required if p.kind is p.KEYWORD_ONLY}
    with pytest.raises(PruneInfoError) as caught:
        fn(*args, **kwargs)
    assert "_Stranger" in str(caught.value) and f"{name}(" in str(caught.value) \
        or "must be" in str(caught.value), str(caught.value)


@pytest.mark.parametrize("call,match", [
    (lambda pi, d: pi.load_checkpoint(None), "`path` must be str or os.PathLike"),
    (lambda pi, d: pi.plan_layerwise([1, 2], amounts=0.5), "`scores` must be Mapping"),
    (lambda pi, d: pi.plan_layerwise({"fc1": torch.ones(4)}, amounts="half"), "`amounts`"),
    (lambda pi, d: pi.apply_plan(d.model, {"fc1": [0]}, torch.zeros(2, 64)), "`plan`"),
    (lambda pi, d: pi.accuracy("model.pt", None), "`model` must be nn.Module"),
    (lambda pi, d: pi.train_model("digits", "64-8-10"), "`data` must be Dataset"),
    (lambda pi, d: pi.prune_checkpoint(d.model, None, None), "`ckpt` must be Checkpoint"),
    (lambda pi, d: pi.export_onnx(d, 3), "`path` must be str or os.PathLike"),
    (lambda pi, d: pi.run_pipeline("out", {"data": "digits"}), "`options` must be RunOptions"),
    (lambda pi, d: pi.total_macs(d.model, "1,8,8"), r"`input_shape` must be Sequence\[int\]"),
    (lambda pi, d: pi.score(d.model, None, "mi", layers=5), "`layers`"),
    (lambda pi, d: pi.save_checkpoint(d, None), "`path` must be str or os.PathLike"),
])
def test_wrong_types_name_the_parameter(digits_mlp, call, match):
    import prune_info as pi

    with pytest.raises(pi.PruneInfoError, match=match):
        call(pi, digits_mlp)
