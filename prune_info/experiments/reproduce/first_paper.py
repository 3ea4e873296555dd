"""The first paper's findings (A1, A2, A3) read off the studies' stored records."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from prune_info.experiments.reproduce.verdicts import cited, make_panel
from prune_info.experiments.study import (
    SEED_FORMAT,
    StudyConfig,
    StudyPaths,
    record_keys,
    scenario_name,
)
from prune_info.io import read_json


def _records(root: Path, config: StudyConfig, scenario: str) -> list[dict]:
    paths = StudyPaths(root)
    return [read_json(paths.curves(scenario, s), SEED_FORMAT, "delete it and run the command "
                      "again to recompute it", record_keys(config)) for s in config.seeds]


def _acc(record: dict, mode: str, scope: str, label: str, k: int) -> float:
    curves = record["curves"][mode]
    counts = np.asarray(curves["counts"][scope][label], dtype=np.float64)
    return float(counts[:, k].mean() / curves["n_samples"])


def _layer_k(units: int) -> int:
    """The paper's MG@80 point: 80 % of a layer (80 of 100, 16 of 20)."""
    return max(1, int(round(0.8 * units)))


def _net_k(total: int, paper_k: int) -> int:
    """The paper's whole-network point (of 200 units) scaled to ``total`` units."""
    return max(1, min(total, int(round(paper_k / 200 * total))))


def _ablation_panels(records: list[dict], name: str, spec: Sequence[tuple]) -> list[dict]:
    """Layer-wise MG@80 panels ``(layer, label, expect, paper)`` of one scenario."""
    out = []
    units = records[0]["curves"]["layerwise"]["units"]
    for layer, label, expect, paper in spec:
        k = _layer_k(units[layer])
        a = [_acc(r, "layerwise", layer, label, k) for r in records]
        b = [_acc(r, "layerwise", layer, "random", k) for r in records]
        out.append(make_panel(f"{name} {layer} {label} vs random, MG@{k}", expect, paper, a, b,
                          unit="pp", k=k))
    return out


def _ks_panel(records: list[dict], name: str, paper: dict) -> dict:
    units = records[0]["curves"]["layerwise"]["units"]
    k = _layer_k(min(units.values()))
    a = [_acc(r, "layerwise", "fc1", "random", k) for r in records]
    b = [_acc(r, "layerwise", "fc2", "random", k) for r in records]
    return make_panel(f"{name} random fc1 vs fc2, MG@{k}", "-", paper, a, b, unit="pp", k=k,
                  test="ks")


def finding_a1(studies: dict) -> list[dict]:
    root, config = studies["relu"]
    panels = []
    cite = "Fig. 1 caption (line 125), Sec. V-A (lines 131-133)"
    for reg in ("l2", "dropout"):
        records = _records(root, config, scenario_name("relu", reg))
        for criterion in ("entropy", "mi", "kl"):
            fc1 = [float(np.mean(r["scores"][criterion]["fc1"])) for r in records]
            fc2 = [float(np.mean(r["scores"][criterion]["fc2"])) for r in records]
            text = ("grows towards deeper layers" if criterion != "kl" else
                    "grows towards deeper layers (on FashionMNIST the paper confirms it for "
                    "entropy and MI only, line 133)")
            panels.append(make_panel(f"relu-{reg} {criterion}: mean fc2 - mean fc1", "+",
                                 cited(text, cite), fc2, fc1, unit="bits"))
    return panels


def finding_a2(studies: dict) -> list[dict]:
    panels = []
    root, config = studies["relu"]
    rec = _records(root, config, "relu-l2")
    c4a = "Fig. 4(a), Sec. V-D (lines 199-201)"
    panels += _ablation_panels(rec, "relu-l2", [
        ("fc1", "kl:low", "+", cited("MG@80 = 15.2", c4a, 15.2, 3.56e-9)),
        ("fc1", "kl:high", "-", cited("MG@80 = -30.7", c4a, -30.7, 7.55e-10)),
        ("fc1", "mi:low", "+", cited("positive, strongest for MI", c4a)),
        ("fc1", "mi:high", "-", cited("negative, strongest for MI", c4a)),
    ])
    panels.append(_ks_panel(rec, "relu-l2", cited("MG@80 = -23.2 (KS)", c4a, -23.2, 3.68e-18)))
    rec = _records(root, config, "relu-dropout")
    c3a = "Fig. 3(a) (MNIST), Sec. V-C (lines 157-159)"
    panels += _ablation_panels(rec, "relu-dropout", [
        ("fc1", "mi:low", "+", cited("MG@80 = 21.9", c3a, 21.9, 7.55e-10)),
        ("fc1", "mi:high", "-", cited("MG@80 = -47.4", c3a, -47.4, 7.55e-10)),
        ("fc2", "mi:low", "≈", cited("the effect is missing in layer 2", c3a)),
    ])
    panels.append(_ks_panel(rec, "relu-dropout",
                            cited("MG@80 = -28.9 (KS)", c3a, -28.9, 1.98e-29)))
    root, config = studies["relu-bn"]
    c3b = "Fig. 3(b) (MNIST), Sec. V-C (line 179)"
    panels += _ablation_panels(_records(root, config, "relu-bn-dropout"), "relu-bn-dropout", [
        ("fc1", "kl:high", "-", cited("-13 pp", c3b, -13.0, 9.63e-10)),
        ("fc1", "kl:low", "≈", cited("MG@80 = 0.3, on par with random", c3b, 0.3, 0.82)),
    ])
    root, config = studies["sigmoid-mean"]
    c3c = "Fig. 3(c) (MNIST, ablated to the mean), Sec. V-C (line 159)"
    panels += _ablation_panels(_records(root, config, "sigmoid-l2"), "sigmoid-l2 (mean)", [
        ("fc1", "mi:low", "+", cited("MG@80 = 10", c3c, 10.0, 1.6e-5)),
        ("fc1", "mi:high", "-", cited("MG@80 = -11", c3c, -11.0, 9e-7)),
    ])
    root, config = studies["sigmoid"]
    c3d = "Fig. 3(d) (MNIST), Sec. V-C (line 159; printed p = 7.55e10)"
    panels += _ablation_panels(_records(root, config, "sigmoid-dropout"), "sigmoid-dropout", [
        ("fc1", "entropy:low", "-", cited("MG@80 = -42.8", c3d, -42.8, 7.55e-10)),
    ])
    root, config = studies["small"]
    c4b = "Fig. 4(b), Sec. V-D (line 201)"
    c4c = "Fig. 4(c), Sec. V-D (line 203)"
    panels += _ablation_panels(_records(root, config, "relu-l2"), "small relu-l2", [
        ("fc1", "mi:low", "+", cited("correlation weaker but still positive", c4b)),
        ("fc1", "mi:high", "-", cited("correlation weaker but still positive", c4b)),
    ])
    panels += _ablation_panels(_records(root, config, "relu-dropout"), "small relu-dropout", [
        ("fc1", "kl:low", "-", cited("low KL first performs worse than random", c4c)),
        ("fc1", "kl:high", "+", cited("high KL first performs better than random", c4c)),
    ])
    return panels


def finding_a3(studies: dict) -> list[dict]:
    root, config = studies["relu"]
    panels = []
    c2 = "Fig. 2, Sec. V-B (lines 139, 147)"
    for reg, label, paper_k, expect, paper in (
        ("dropout", "entropy:low", 101, "-", cited("MG@101 = -51.2 (Fig. 2(c))", c2, -51.2,
                                                     7.55e-10)),
        ("dropout", "mi:low", 101, "-", cited("worse than random (Fig. 2(c)-(f))", c2)),
        ("dropout", "kl:low", 125, "≈", cited("MG@125 = 0.3 (Fig. 2(d))", c2, 0.3, 0.78)),
        ("l2", "entropy:low", 101, "≈", cited("MG@101 = -0.19 (Fig. 2(a))", c2, -0.19, 0.93)),
    ):
        records = _records(root, config, scenario_name("relu", reg))
        total = records[0]["curves"]["network"]["units"]["network"]
        k = _net_k(total, paper_k)
        a = [_acc(r, "network", "network", label, k) for r in records]
        b = [_acc(r, "network", "network", "random", k) for r in records]
        panels.append(make_panel(f"relu-{reg} whole network {label} vs random, MG@{k}", expect,
                             paper, a, b, unit="pp", k=k))
    records = _records(root, config, "relu-dropout")
    panels += _ablation_panels(records, "relu-dropout layer-wise", [
        ("fc1", "mi:low", "+", cited("MG@80 = 21.9 (Fig. 3(a), MNIST)",
                                      "Fig. 3(a), Sec. V-C (line 159)", 21.9, 7.55e-10)),
    ])
    return panels
