"""``prune-info oinfo``: table, JSON, figure, and one-line errors and notes."""

from __future__ import annotations

import json

from helpers import plant_units

from prune_info.checkpoint import clone_model, save_checkpoint


def test_oinfo_writes_json_and_plot_and_prints_the_table(run_cli, mlp_path, tmp_path):
    out, plot = tmp_path / "oinfo.json", tmp_path / "oinfo.png"
    code, stdout, stderr = run_cli("oinfo", str(mlp_path), "--max-exhaustive", "3",
                                   "--max-size", "30", "--out", str(out), "--plot", str(plot))
    assert code == 0, stderr
    # fc2 has 24 units: --max-size is clipped there, with exactly one note
    assert stderr.strip() == ("note: fc2: max_size 30 exceeds the layer's 24 units; searched "
                              "up to 24")
    doc = json.loads(out.read_text())
    assert doc["format"] == "prune-info-oinfo" and doc["reading"] == "pre-activation"
    assert [layer["layer"] for layer in doc["layers"]] == ["fc1", "fc2"]
    fc1, fc2 = doc["layers"]
    assert [r["size"] for r in fc1["sizes"]] == list(range(2, 31))
    assert [r["size"] for r in fc2["sizes"]] == list(range(2, 25))
    assert {r["synergy_method"] for r in fc1["sizes"][:2]} == {"exhaustive"}
    assert {r["synergy_method"] for r in fc1["sizes"][2:]} == {"greedy"}
    for layer in doc["layers"]:
        for r in layer["sizes"]:
            assert r["synergy_omega"] <= r["redundancy_omega"] + 1e-9
            assert len(r["synergy_units"]) == r["size"]
    assert "NaN" not in out.read_text()
    assert plot.read_bytes()[:4] == b"\x89PNG"
    lines = stdout.splitlines()
    assert lines[1].split()[:4] == ["layer", "k", "min", "Omega"]
    first = lines[2].split()
    assert first[:2] == ["fc1", "2"]
    assert float(first[2]) == round(fc1["sizes"][0]["synergy_omega"], 4)
    assert first[3] == "exh"
    assert any(line.strip().startswith("fc2: 24 units") and "dominated" in line
               for line in lines)
    assert lines[-2:] == [f"wrote {plot}", f"wrote {out}"]


def test_oinfo_json_on_stdout(run_cli, mlp_path):
    code, stdout, _ = run_cli("oinfo", str(mlp_path), "--layers", "fc2", "--max-size", "3",
                              "--post-activation", "--seed", "1", "--json")
    assert code == 0
    doc = json.loads(stdout)
    assert doc["format"] == "prune-info-oinfo" and doc["reading"] == "post-activation"
    assert [layer["layer"] for layer in doc["layers"]] == ["fc2"]
    assert [r["size"] for r in doc["layers"][0]["sizes"]] == [2, 3]


def test_quiet_changes_nothing_but_the_progress_bar(run_cli, mlp_path, monkeypatch):
    import types

    import prune_info.analysis.oinfo as oinfo
    import prune_info.cli.oinfo as cli_oinfo

    # a terminal on stderr, where the bar would be shown; record what the search is asked for
    monkeypatch.setattr(cli_oinfo, "sys", types.SimpleNamespace(
        stderr=types.SimpleNamespace(isatty=lambda: True)))
    asked = []
    real = oinfo.layer_oinfo

    def spy(*args, **kwargs):
        asked.append(kwargs["progress"])
        return real(*args, **kwargs)

    monkeypatch.setattr(oinfo, "layer_oinfo", spy)
    args = ["oinfo", str(mlp_path), "--layers", "fc2", "--max-size", "3", "--seed", "1"]
    code, loud, _ = run_cli(*args)
    code_quiet, quiet, _ = run_cli(*args, "--quiet")
    assert code == code_quiet == 0
    assert asked == [True, False]
    assert quiet == loud


def test_duplicated_units_give_one_note_line(run_cli, digits_mlp, tmp_path):
    model = plant_units(clone_model(digits_mlp.model), "fc2", duplicates=((0, 3),))
    path = tmp_path / "dup.pt"
    save_checkpoint(digits_mlp.replace(model=model), path)
    code, stdout, stderr = run_cli("oinfo", str(path), "--layers", "fc2",
                                   "--max-exhaustive", "3", "--max-size", "6")
    assert code == 0
    notes = stderr.strip().splitlines()
    assert len(notes) == 1
    assert notes[0].startswith("note: fc2: singular covariance (duplicated unit 3 (= 0))")
    assert "nan" not in stdout.lower()


def test_bad_input_is_one_line_and_exit_2(run_cli, mlp_path, tmp_path):
    code, _, stderr = run_cli("oinfo", str(mlp_path), "--layers", "fc7")
    assert code == 2
    assert stderr.count("\n") == 1 and "'fc7' is not a prunable layer" in stderr
    code, _, stderr = run_cli("oinfo", str(mlp_path), "--max-size", "1")
    assert code == 2 and stderr.startswith("error: fc1: max_size must be at least 2")
    code, _, stderr = run_cli("oinfo", str(mlp_path), "--plot", str(tmp_path / "a.xyz"))
    assert code == 2 and "image format" in stderr
