"""``prune-info run``: artefacts, report, resumption, invalidation and refusals."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from prune_info.errors import PruneInfoError
from prune_info.experiments.pipeline import MANIFEST, STAGES, RunOptions, run_pipeline
from prune_info.viz.html import SECTIONS

TINY = RunOptions(data="digits", arch="64-16-16-10", epochs=2, random=2, max_exhaustive=2,
                  max_size=3, retrain_epochs=1, bench_repeat=2, bench_batches=(1,),
                  progress=False)
ALL = [s.name for s in STAGES]
ARTEFACTS = [a for s in STAGES for a in s.artefacts]


def _boom(ctx):
    raise AssertionError("this stage must have been reused")


def _stages(reused: set[str], failing: dict | None = None):
    """STAGES with the functions of ``reused`` stages made to fail the test if called."""
    failing = failing or {}
    return [replace(s, fn=failing.get(s.name, _boom if s.name in reused else s.fn))
            for s in STAGES]


@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "results"
    manifest = run_pipeline(out, TINY)
    return out, manifest


@pytest.fixture
def run_copy(base_run, tmp_path):
    out = tmp_path / "results"
    shutil.copytree(base_run[0], out)
    return out


def test_run_writes_every_artefact_and_a_report_with_every_section(base_run):
    out, manifest = base_run
    assert manifest["reran"] == ALL
    for name in ARTEFACTS + [MANIFEST]:
        assert (out / name).is_file(), name
    text = (out / "report.html").read_text()
    for heading in SECTIONS:
        assert f"<h2>{heading}</h2>" in text
    assert text.count("data:image/png;base64,") == 4  # scores, curves, oinfo, bench
    for command in ("prune-info score", "prune-info oinfo", "prune-info prune",
                    "prune-info retrain", "prune-info export", "prune-info bench",
                    "prune-info run --data digits --arch 64-16-16-10"):
        assert command in text, command
    assert "http://" not in text and "https://" not in text  # self-contained
    stored = json.loads((out / MANIFEST).read_text())
    assert stored["format"] == "prune-info-run"
    assert set(stored["stages"]) == set(ALL)


def test_second_identical_run_reuses_every_stage(run_copy):
    manifest = run_pipeline(run_copy, TINY, stages=_stages(set(ALL)))
    assert manifest["reran"] == []


def test_changed_amount_reruns_prune_and_later_stages_only(run_copy):
    before = json.loads((run_copy / MANIFEST).read_text())["stages"]
    upstream = {"train", "score", "ablate", "oinfo"}
    manifest = run_pipeline(run_copy, replace(TINY, amount=0.25), stages=_stages(upstream))
    assert manifest["reran"] == ["prune", "retrain", "export", "bench", "report"]
    after = json.loads((run_copy / MANIFEST).read_text())["stages"]
    for name in upstream:
        assert after[name]["fingerprint"] == before[name]["fingerprint"]
    assert after["prune"]["summary"]["arch_after"] == "64-12-12-10"


def test_missing_artefact_reruns_its_stage_and_dependants(run_copy):
    (run_copy / "curves.png").unlink()
    manifest = run_pipeline(run_copy, TINY, stages=_stages(set(ALL) - {"ablate", "report"}))
    assert manifest["reran"] == ["ablate", "report"]


def _damage(out: Path, name: str, how: str) -> None:
    path = out / name
    if how == "random bytes":
        path.write_bytes(os.urandom(path.stat().st_size))
    elif how == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif how == "another format":
        path.write_text(json.dumps({"format": "prune-info-scores", "format_version": 1}))
    else:  # another model of the same architecture and size
        shutil.copyfile(out / "retrained.pt", path)


@pytest.mark.parametrize("name,how,first", [
    ("model.pt", "random bytes", "train"), ("pruned.pt", "truncated", "prune"),
    ("scores.json", "random bytes", "score"), ("bench.json", "truncated", "bench"),
    ("curves.json", "another format", "ablate"), ("pruned.pt", "another model", "prune"),
])
def test_a_damaged_artefact_reruns_its_stage_instead_of_being_reused(run_copy, name, how, first):
    _damage(run_copy, name, how)
    downstream = {first}
    for stage in STAGES:  # every stage that reads one that reruns reruns too
        if set(stage.deps) & downstream:
            downstream.add(stage.name)
    manifest = run_pipeline(run_copy, TINY, stages=_stages(set(ALL) - downstream))
    assert manifest["reran"][0] == first and set(manifest["reran"]) == downstream
    recorded = manifest["stages"][first]["sha256"][name]
    assert recorded == hashlib.sha256((run_copy / name).read_bytes()).hexdigest()


def test_a_manifest_without_checksums_reruns_every_stage(run_copy):
    manifest = json.loads((run_copy / MANIFEST).read_text())
    for entry in manifest["stages"].values():
        del entry["sha256"]
    (run_copy / MANIFEST).write_text(json.dumps(manifest))
    assert run_pipeline(run_copy, TINY)["reran"] == ALL


def test_failing_stage_names_itself_and_keeps_earlier_artefacts(run_copy):
    def broken(ctx):
        raise PruneInfoError("disk on fire")

    options = replace(TINY, amount=0.25)
    with pytest.raises(PruneInfoError, match=r"^stage retrain failed: disk on fire"):
        run_pipeline(run_copy, options, stages=_stages({"train", "score", "ablate", "oinfo"},
                                                        {"retrain": broken}))
    stages = json.loads((run_copy / MANIFEST).read_text())["stages"]
    assert "retrain" not in stages and "prune" in stages
    assert (run_copy / "pruned.pt").is_file()
    # resuming starts at the stage that failed
    manifest = run_pipeline(run_copy, options, stages=_stages({"train", "score", "ablate",
                                                               "oinfo", "prune"}))
    assert manifest["reran"] == ["retrain", "export", "bench", "report"]


def test_unexpected_error_also_names_the_stage(run_copy):
    def buggy(ctx):
        raise ValueError("bad value")

    with pytest.raises(PruneInfoError, match="stage export failed: ValueError: bad value"):
        run_pipeline(run_copy, TINY, stages=_with_export_rerun(buggy))
    assert (run_copy / "retrained.pt").is_file()


def _with_export_rerun(fn):
    """STAGES whose export stage has new options (so it reruns) and runs ``fn``."""
    return [replace(s, fn=fn, options=lambda o: {"forced": True}) if s.name == "export"
            else replace(s, fn=_boom) if s.name in {"train", "score", "ablate", "oinfo",
                                                     "prune", "retrain"} else s
            for s in STAGES]


def _cli(*args):
    from prune_info.cli import main

    with pytest.raises(SystemExit) as info:
        main(["run", *args])
    return info.value.code


def _snapshot(directory: Path) -> dict:
    return {p.name: p.stat().st_mtime_ns for p in directory.iterdir()}


def test_cli_refuses_out_that_is_a_file(tmp_path, capsys):
    target = tmp_path / "results"
    target.write_text("not a directory")
    assert _cli("--out", str(target), "--quiet") == 2
    assert "is a file" in capsys.readouterr().err
    assert target.read_text() == "not a directory"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results"]


def test_cli_refuses_directory_of_a_different_run(run_copy, capsys):
    before = _snapshot(run_copy)
    assert _cli("--arch", "64-20-10", "--epochs", "2", "--out", str(run_copy), "--quiet") == 2
    err = capsys.readouterr().err
    assert "holds a different run" in err and "arch" in err
    assert _snapshot(run_copy) == before


def test_cli_refuses_non_empty_directory_without_manifest(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    assert _cli("--out", str(tmp_path), "--quiet") == 2
    assert "holds no run.json" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists(
    "/usr/bin/chromium") else None)


def test_report_renders_in_headless_chromium(base_run, tmp_path):
    if CHROMIUM is None:
        if os.environ.get("PRUNE_INFO_REQUIRE_BROWSER"):
            pytest.fail("chromium is required here (PRUNE_INFO_REQUIRE_BROWSER is set); "
                        "apt-get install chromium")
        pytest.skip("chromium is not installed")
    import numpy as np
    from PIL import Image

    shot = tmp_path / "shot.png"
    profile = tempfile.mkdtemp(dir=tmp_path)
    subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--disable-component-update", "--no-first-run",
         f"--user-data-dir={profile}", f"--screenshot={shot}", "--window-size=1200,3000",
         (base_run[0] / "report.html").resolve().as_uri()],
        check=True, timeout=120, capture_output=True,
    )
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.shape == (3000, 1200)
    assert pixels.std() > 20  # text and figures, not a blank page
    # the figures render: many rows deep into the page are not plain white
    assert (pixels[1500:] < 200).mean() > 0.01


def test_run_trains_a_factory_model_and_prunes_its_groups(run_cli, tmp_path):
    out = tmp_path / "run"
    code, stdout, stderr = run_cli(
        "run", "--data", "digits", "--model", "helpers:tiny_resnet", "--model-kwargs",
        "width=8", "--epochs", "1", "--random", "1", "--max-exhaustive", "2", "--max-size", "3",
        "--retrain-epochs", "1", "--bench-repeat", "1", "--bench-batch", "1", "--out", str(out),
        "--quiet")
    assert code == 0, stderr
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["options"]["factory"] == "helpers:tiny_resnet"
    pruned = torch.load(out / "pruned.pt", weights_only=True)
    assert pruned["factory"] == "helpers:tiny_resnet" and pruned["factory_kwargs"] == {"width": 8}
    groups = manifest["stages"]["prune"]["summary"]["groups"]
    assert ["0", "3.conv2", "4.conv2"] in groups  # the stem and both blocks' residual outputs
    # the same command again reuses every stage
    code, stdout, _ = run_cli(
        "run", "--data", "digits", "--model", "helpers:tiny_resnet", "--model-kwargs",
        "width=8", "--epochs", "1", "--random", "1", "--max-exhaustive", "2", "--max-size", "3",
        "--retrain-epochs", "1", "--bench-repeat", "1", "--bench-batch", "1", "--out", str(out),
        "--quiet")
    assert code == 0 and "none (all reused)" in stdout
