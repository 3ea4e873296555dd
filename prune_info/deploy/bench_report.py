"""The report of a benchmark (``prune-info bench``): its JSON document and its tables."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from prune_info._text import human_bytes
from prune_info.deploy.bench import BenchResult, LatencyEntry, _as_result, slower_than_parent
from prune_info.reports import Report

__all__ = ["BenchReport"]


@dataclass(frozen=True)
class BenchReport(Report):
    """What a benchmark measured: each model (:class:`~prune_info.deploy.bench.BenchResult`),
    the ``settings`` it ran with (batches, threads, repeat, ...), the library ``versions``, and
    ``notes`` on pruned models slower than the first model (the parent)."""

    FORMAT = "prune-info-bench"

    models: tuple[BenchResult, ...]
    settings: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @classmethod
    def of(cls, results: Sequence[BenchResult | dict], **settings: Any) -> BenchReport:
        """The report of ``results`` (dicts are read as :meth:`BenchResult.to_dict` wrote
        them), with the versions of this process."""
        import onnxruntime as ort

        models = tuple(_as_result(r) for r in results)
        return cls(models, settings,
                   {"torch": torch.__version__, "onnxruntime": ort.__version__},
                   tuple(slower_than_parent(models)))

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"settings": self.settings, "versions": self.versions,
                               "models": [m.to_dict() for m in self.models]}
        if self.notes:
            doc["notes"] = list(self.notes)
        return doc

    @classmethod
    def from_fields(cls, doc: dict) -> BenchReport:
        return cls(tuple(BenchResult.from_dict(m) for m in doc["models"]), doc["settings"],
                   doc["versions"], tuple(doc.get("notes", ())))

    def table(self) -> str:
        """Accuracy and size per model, then latency per model, runtime and batch: median
        (p90) in ms, and the speed-up over the first model."""
        models = self.models
        lines = _table(
            ["model", "format", "arch", "dataset", "test acc", "params", "MACs", "MAC ratio",
             "file", "onnx"],
            [[r.name, r.format, r.arch or "-", r.dataset,
              _fmt(None if r.test_acc is None else 100 * r.test_acc, ".2f") + " %",
              _fmt(r.parameters, ","), _fmt(r.macs, ","), _fmt(r.mac_ratio, ".2f"),
              human_bytes(r.file_bytes), human_bytes(r.onnx_bytes)] for r in models])
        entries = [e for r in models for e in r.latency]
        batches = self.settings.get("batches") or sorted({e.batch for e in entries})
        threads = self.settings.get("threads") or next((e.threads for e in entries), None)
        lines += ["", f"latency in ms, median (p90), {threads} thread(s); speed-up is "
                      f"relative to {models[0].name}"]
        rows = []
        for r in models:
            groups: dict[tuple[str, str], dict[int, LatencyEntry]] = {}
            for entry in r.latency:
                groups.setdefault((entry.runtime, entry.device), {})[entry.batch] = entry
            for (runtime, device), by_batch in groups.items():
                cells = []
                for b in batches:
                    e = by_batch.get(b)
                    if e is None:
                        cells.append("-")
                        continue
                    speed = "" if e.speedup is None else f" x{e.speedup:.2f}"
                    cells.append(f"{e.median_ms:.3f} ({e.p90_ms:.3f}){speed}")
                rows.append([r.name, f"{runtime} {device}", *cells])
        if rows:
            lines += _table(["model", "runtime", *(f"batch {b}" for b in batches)], rows)
        return "\n".join(lines)


def _fmt(value: Any, spec: str, none: str = "-") -> str:
    return none if value is None else format(value, spec)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    return ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip()
            for row in (header, *rows)]
