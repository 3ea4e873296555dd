"""What ``prune-info score`` prints and writes: per-unit tables, summaries, JSON and CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
from torch import nn

from prune_info.criteria.context import make_context
from prune_info.criteria.information import LayerInformation
from prune_info.criteria.options import FDR_Q, ScoreOptions
from prune_info.criteria.ranking import tie_warnings
from prune_info.criteria.registry import parse_criteria
from prune_info.data import Split
from prune_info.io import atomic_write
from prune_info.nn import LayerInfo

__all__ = ['ScoreReport', 'score_report', 'summarise']


# --------------------------------------------------------------------------------------------
# Reports: what `prune-info score` prints and writes


def summarise(values: torch.Tensor) -> dict[str, float]:
    """``{"min", "median", "mean", "max"}`` of a 1-D tensor (median: midpoint for even sizes)."""
    v = torch.as_tensor(values, dtype=torch.float64).flatten()
    return {"min": float(v.min()), "median": float(torch.quantile(v, 0.5)),
            "mean": float(v.mean()), "max": float(v.max())}


@dataclass
class ScoreReport:
    """Scores and information of every unit, ready to print and write.

    Attributes
    ----------
    layers : list of LayerInfo
    criteria : list of str
    scores : dict
        ``{criterion: {layer: float64 tensor [n_units]}}``.
    information : dict of str to LayerInformation
    n_classes, n_samples : int
    options : ScoreOptions
    """

    layers: list[LayerInfo]
    criteria: list[str]
    scores: dict[str, dict[str, torch.Tensor]]
    information: dict[str, LayerInformation]
    n_classes: int
    n_samples: int
    options: ScoreOptions

    @property
    def quantiser(self) -> str:
        """How the units were quantised (the channel quantiser named if channels were)."""
        return self.options.describe(any(layer.kind == "conv" for layer in self.layers))

    @property
    def warnings(self) -> list[str]:
        """Rankings that are mostly a tie-break (:func:`~prune_info.criteria.ranking.
        tie_warnings`)."""
        return tie_warnings({c: self.scores[c] for c in self.criteria})

    def layer_summary(self, layer: LayerInfo) -> dict:
        """Statistics of each criterion, zero-entropy units split by activity and, with a
        null, how many units beat chance (BH q-value at most :data:`FDR_Q`)."""
        info = self.information[layer.name]
        zero = info.zero_entropy
        out = {
            "n_units": layer.n_units,
            "measures": {c: summarise(self.scores[c][layer.name]) for c in self.criteria},
            "zero_entropy": int(zero.sum()),
            "zero_entropy_dead": int((zero & info.dead).sum()),
            "zero_entropy_always_active": int((zero & info.always_active).sum()),
        }
        if info.mi_q is not None and info.kl_q is not None:
            out["above_chance"] = {"q": FDR_Q, "mi": int((info.mi_q <= FDR_Q).sum()),
                                   "kl": int((info.kl_q <= FDR_Q).sum())}
        return out

    def to_dict(self) -> dict:
        """The JSON document (without the ``format`` keys, added by the writer)."""
        layers = []
        for layer in self.layers:
            info = self.information[layer.name]
            layers.append({
                "name": layer.name,
                "kind": layer.kind,
                "activation": layer.activation,
                "n_units": layer.n_units,
                "threshold": info.threshold,
                "edges": info.edges,
                "summary": self.layer_summary(layer),
                "scores": {c: self.scores[c][layer.name] for c in self.criteria},
                "kl_class": info.kl_class,
                "dead": info.dead,
                "always_active": info.always_active,
                "spectrum": info.spectrum,
                **({"null": {"mi_p": info.mi_p, "mi_q": info.mi_q, "kl_p": info.kl_p,
                             "kl_q": info.kl_q}} if info.mi_p is not None else {}),
            })
        return {
            "criteria": self.criteria,
            "n_samples": self.n_samples,
            "n_classes": self.n_classes,
            "quantiser": self.quantiser,
            "options": asdict(self.options),
            "layers": layers,
            "warnings": self.warnings,
        }

    @property
    def _tested(self) -> bool:
        return any(info.mi_p is not None for info in self.information.values())

    def csv_header(self) -> list[str]:
        return (["layer", "unit", *self.criteria, "kl_class", "dead", "always_active"]
                + [f"spectrum_{c}" for c in range(self.n_classes)]
                + (["mi_p", "mi_q", "kl_p", "kl_q"] if self._tested else []))

    def csv_rows(self) -> list[list]:
        """One row per unit; floats as ``repr`` so that the file round-trips exactly."""
        rows = []
        for layer in self.layers:
            info = self.information[layer.name]
            columns = [self.scores[c][layer.name].tolist() for c in self.criteria]
            kl_class, dead = info.kl_class.tolist(), info.dead.tolist()
            active, spectrum = info.always_active.tolist(), info.spectrum.tolist()
            tests = ([t.tolist() for t in (info.mi_p, info.mi_q, info.kl_p, info.kl_q)
                      if t is not None] if self._tested else [])
            for u in range(layer.n_units):
                rows.append([layer.name, u, *(repr(col[u]) for col in columns), kl_class[u],
                             int(dead[u]), int(active[u]), *map(repr, spectrum[u]),
                             *(repr(t[u]) for t in tests)])
        return rows

    def csv_text(self) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(self.csv_header())
        writer.writerows(self.csv_rows())
        return buffer.getvalue()

    def write_csv(self, path) -> None:
        """Write :meth:`csv_text` atomically."""
        with atomic_write(path) as tmp:
            tmp.write_text(self.csv_text())


def score_report(
    model: nn.Module,
    split: Split,
    criteria: str | Sequence[str] = ("entropy", "mi", "kl"),
    *,
    n_classes: int | None = None,
    layers: Sequence[LayerInfo | str] | None = None,
    options: ScoreOptions = ScoreOptions(),
) -> ScoreReport:
    """Scores of ``criteria`` plus the full information table, sharing one pass over the data.

    This is what ``prune-info score`` computes; its numbers equal :func:`compute_scores` and
    :func:`unit_information` called with the same arguments.
    """
    names = parse_criteria(criteria)
    ctx = make_context(model, split, n_classes=n_classes, layers=layers, options=options)
    information = ctx.information()
    scores = ctx.scores(names)
    return ScoreReport(layers=ctx.layers, criteria=names, scores=scores,
                       information=information, n_classes=ctx.n_classes,
                       n_samples=len(split), options=options)
