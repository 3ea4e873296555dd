"""RESULTS.md from the result files: render a benchmark's result file as the block RESULTS.md
quotes, check every quoted block against its file, or rewrite the blocks from the files.

A block in RESULTS.md is delimited by ``<!-- result: PATH -->`` and ``<!-- /result -->`` (PATH
relative to the repository root, a file :func:`harness.record` wrote); its text between the
markers is :func:`render` of that file, never typed by hand.

    .venv/bin/python benchmarks/results.py show benchmarks/results/bench_train-....json
    .venv/bin/python benchmarks/results.py check      # every block equals its file (make test)
    .venv/bin/python benchmarks/results.py update     # rewrite every block from its file
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS_MD = ROOT / "benchmarks" / "RESULTS.md"
RESULTS_DIR = ROOT / "benchmarks" / "results"
BLOCK = re.compile(r"<!-- result: (?P<path>\S+) -->\n(?P<body>.*?)<!-- /result -->", re.S)


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (dict, list)):
        return "`" + json.dumps(value, separators=(", ", ": ")) + "`"
    return str(value)


def _rows(prefix: str, values: dict[str, Any]) -> list[tuple[str, str]]:
    """``(dotted key, shown value)`` of a nested dict, one row per leaf (lists stay whole)."""
    rows = []
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            rows += _rows(name + ".", value)
        else:
            rows.append((name, _value(value)))
    return rows


def render(path: Path) -> str:
    """The block of one result file: command, date, machine and load, then its configuration
    and figures as a two-column table."""
    doc = json.loads(path.read_text())
    machine = doc["machine"]
    load = doc["load"]
    start = " ".join(map(str, load["start"])) if load.get("start") else "n/a"
    end = " ".join(map(str, load["end"])) if load.get("end") else "n/a"
    gpu = f", GPU {machine['gpu']}" if machine.get("gpu") else ", no GPU"
    lines = [f"`{doc['command']}` · {doc['date']} · {machine['cpu']}, {machine['cores']} cores, "
             f"{machine['memory_gib']} GiB, Python {machine['python']}, torch "
             f"{machine['torch']}{gpu} · load average (1, 5, 15 min) {start} → {end}",
             "", "| setting or figure | value |", "| --- | --- |"]
    lines += [f"| {key} | {value} |" for key, value in
              _rows("config.", doc["config"]) + _rows("", doc["result"])]
    return "\n".join(lines) + "\n"


def check(text: str, root: Path = ROOT, results_dir: Path | None = RESULTS_DIR) -> list[str]:
    """The problems of a RESULTS.md text: a block whose file is missing or whose text is not
    the file's rendering, and (with ``results_dir``) a result file no block quotes."""
    problems, quoted = [], set()
    for match in BLOCK.finditer(text):
        path = root / match["path"]
        quoted.add(path.resolve())
        if not path.is_file():
            problems.append(f"{match['path']}: no such result file")
        elif match["body"] != render(path):
            problems.append(f"{match['path']}: the block differs from the file (run "
                            "`benchmarks/results.py update`)")
    if results_dir is not None and results_dir.is_dir():
        problems += [f"{p.relative_to(root)}: not quoted in RESULTS.md"
                     for p in sorted(results_dir.glob("*.json")) if p.resolve() not in quoted]
    return problems


def update(text: str, root: Path = ROOT) -> str:
    """``text`` with every block rewritten from its file."""
    return BLOCK.sub(lambda m: f"<!-- result: {m['path']} -->\n{render(root / m['path'])}"
                               "<!-- /result -->", text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    show = sub.add_parser("show", help="print the block of result files")
    show.add_argument("paths", nargs="+", type=Path)
    sub.add_parser("check", help="every block of RESULTS.md equals its file")
    sub.add_parser("update", help="rewrite every block of RESULTS.md from its file")
    args = parser.parse_args(argv)
    if args.command == "show":
        for path in args.paths:
            rel = path.resolve().relative_to(ROOT)
            print(f"<!-- result: {rel} -->\n{render(path)}<!-- /result -->")
        return 0
    text = RESULTS_MD.read_text()
    if args.command == "update":
        RESULTS_MD.write_text(update(text))
    problems = check(RESULTS_MD.read_text())
    for problem in problems:
        print(f"RESULTS.md: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
