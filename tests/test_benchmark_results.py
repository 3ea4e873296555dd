"""RESULTS.md is checked against the benchmarks' result files: every quoted block is the
rendering of its file, and every result file is quoted."""

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _results_tool():
    spec = importlib.util.spec_from_file_location("results", ROOT / "benchmarks" / "results.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_block_of_results_md_equals_its_result_file():
    tool = _results_tool()
    text = (ROOT / "benchmarks" / "RESULTS.md").read_text()
    assert tool.BLOCK.search(text), "RESULTS.md quotes no result file"
    assert tool.check(text) == []


def test_a_typed_figure_a_missing_file_and_an_unquoted_file_are_caught(tmp_path):
    tool = _results_tool()
    results = tmp_path / "results"
    results.mkdir()
    doc = {"command": "python benchmarks/bench_x.py", "date": "2026-12-06 22:00",
           "machine": {"cpu": "cpu", "cores": 2, "memory_gib": 24, "python": "3.11",
                       "torch": "2.14.1", "gpu": None},
           "load": {"start": [0.5, 0.5, 0.5], "end": None},
           "config": {"n": 3}, "result": {"seconds": 1.23456, "paths": {"a": [1, 2]}}}
    (results / "x.json").write_text(json.dumps(doc))
    (results / "y.json").write_text(json.dumps(doc))
    block = tool.render(results / "x.json")
    assert "| config.n | 3 |" in block and "| seconds | 1.235 |" in block
    assert "| paths.a | `[1, 2]` |" in block and "0.5 0.5 0.5 → n/a" in block
    text = f"intro\n<!-- result: results/x.json -->\n{block}<!-- /result -->\n"
    assert tool.check(text, tmp_path, results) == ["results/y.json: not quoted in RESULTS.md"]
    typed = text.replace("| seconds | 1.235 |", "| seconds | 1.1 |")
    assert tool.check(typed, tmp_path, None) == [
        "results/x.json: the block differs from the file (run `benchmarks/results.py update`)"]
    assert tool.update(typed, tmp_path) == text
    gone = text.replace("results/x.json", "results/z.json")
    assert tool.check(gone, tmp_path, None) == ["results/z.json: no such result file"]


@pytest.mark.parametrize("script", sorted((ROOT / "benchmarks").glob("bench_*.py")),
                         ids=lambda p: p.stem)
def test_every_benchmark_script_imports(script, monkeypatch):
    """A refactoring that moves a name a benchmark uses breaks the script, not just a run."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))  # `import harness`, as when run
    spec = importlib.util.spec_from_file_location(f"_bench_{script.stem}", script)
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
