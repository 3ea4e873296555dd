"""Panels and verdicts: each finding's paired comparisons over seeds, judged by :data:`RULE`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from prune_info.analysis.stats import (
    ks_gap,
    mean_gap,
)

#: p-value below which a directional panel agrees (and at or above which a ``≈`` panel does).
ALPHA = 0.05
RULE = (
    "Each finding is a set of panels, each a paired comparison over seeds (Wilcoxon signed-rank, "
    "normal approximation; two-sample Kolmogorov-Smirnov where the paper uses it) with the "
    "paper's direction (+ or -) or a claim of similarity (≈). A directional panel agrees when "
    "our mean has the paper's sign and p < 0.05, leans when the sign holds but p >= 0.05 or no "
    "p-value exists (fewer than 6 seeds), and disagrees otherwise; a ≈ panel agrees when "
    "p >= 0.05 and disagrees otherwise (stricter than the paper, which also calls a small gap "
    "similar). Verdict: reproduced "
    "when every panel agrees; partly when at least one panel agrees or leans; not reproduced "
    "otherwise. Statuses use each panel's own p-value, as the papers test each comparison; the "
    "Benjamini-Hochberg q-value over a finding's panels is reported beside it (p_adjusted), so "
    "a reader can see which agreements survive control of the false discovery rate.")
VERDICTS = ("reproduced", "partly", "not reproduced")




def panel_status(expect: str, mean: float, p_value: float | None) -> str:
    """``agrees`` / ``leans`` / ``disagrees`` of one panel under :data:`RULE`.

    Examples
    --------
    >>> panel_status("+", 3.2, 0.001), panel_status("+", 3.2, 0.3), panel_status("-", 3.2, 0.001)
    ('agrees', 'leans', 'disagrees')
    >>> panel_status("≈", 0.4, 0.6), panel_status("≈", 8.0, 1e-4)
    ('agrees', 'disagrees')
    """
    if expect == "≈":
        return "agrees" if p_value is not None and p_value >= ALPHA else "disagrees"
    sign = 1.0 if expect == "+" else -1.0
    if mean * sign > 0:
        return "agrees" if p_value is not None and p_value < ALPHA else "leans"
    return "disagrees"


def verdict(statuses: Sequence[str]) -> str:
    """The one-word verdict of a finding from its panels' statuses (:data:`RULE`).

    Examples
    --------
    >>> verdict(["agrees", "agrees"]), verdict(["agrees", "leans"]), verdict(["disagrees"])
    ('reproduced', 'partly', 'not reproduced')
    """
    if statuses and all(s == "agrees" for s in statuses):
        return "reproduced"
    if any(s in ("agrees", "leans") for s in statuses):
        return "partly"
    return "not reproduced"


def seed_std(values: np.ndarray) -> float:
    return float(values.std(ddof=1)) if values.size > 1 else 0.0


def make_panel(name: str, expect: str, paper: dict, a: Sequence[float], b: Sequence[float], *,
           unit: str, k: int = 0, test: str = "wilcoxon", **extra: Any) -> dict:
    """One paired comparison: per-seed ``a - b`` in ``unit`` (pp: ×100), its test and status."""
    a_arr = np.asarray(a, dtype=np.float64)
    b_arr = np.asarray(b, dtype=np.float64)
    scale = 100.0 if unit == "pp" else 1.0
    values = scale * (a_arr - b_arr)
    if test == "ks":
        result = ks_gap(a_arr, b_arr, k)
    else:
        result = mean_gap(a_arr, b_arr, k)
    mean = float(values.mean())
    ours = {"unit": unit, "n": int(values.size), "mean": mean, "std": seed_std(values),
            "values": values.tolist(), "a": a_arr.tolist(), "b": b_arr.tolist(), "k": k,
            "test": test, "p_value": result.p_value, "note": result.note}
    return {"name": name, "expect": expect, "paper": paper, "ours": ours,
            "status": panel_status(expect, mean, result.p_value), **extra}


def cited(text: str, cite: str, value: float | None = None, p: float | None = None) -> dict:
    return {"value": value, "p_value": p, "text": text, "cite": cite}
