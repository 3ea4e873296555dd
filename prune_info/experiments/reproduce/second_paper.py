"""The second paper's units of work (C1 searches, C2 retrainings; run anywhere), their
storage, and their panels."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from prune_info.analysis.oinfo import average_over_seeds, dominance, layer_oinfo
from prune_info.checkpoint import Checkpoint, load_checkpoint
from prune_info.criteria.context import compute_scores
from prune_info.criteria.options import ScoreOptions
from prune_info.data import load_dataset
from prune_info.experiments.executor import Executor, Task
from prune_info.experiments.reproduce.protocols import C2_CRITERIA, C2_REST, ConvProtocol
from prune_info.experiments.reproduce.verdicts import cited, make_panel, seed_std
from prune_info.experiments.subnetworks import SubnetCell, retrain_subnetworks, top_units
from prune_info.io import missing_keys, write_json
from prune_info.nn import prunable_layers
from prune_info.training.loop import TrainConfig, train_model


def conv_net_task(dataset: str, data_dir: str | None, net: ConvProtocol, seed: int,
                  device: str = "cpu") -> Checkpoint:
    """One network of the convolutional family, trained (returned, not stored)."""
    data = load_dataset(dataset, data_dir, input_shape=net.input_shape)
    return train_model(data, net.spec, "relu", "none", replace(net.train, seed=seed),
                       batchnorm=True, device=device, progress=False)

C1_FORMAT = "prune-info-reproduce-c1"
C2_FORMAT = "prune-info-reproduce-c2"


def c1_seed_task(model_path: str, dataset: str, data_dir: str | None,
                 max_exhaustive: int | None, seed: int, device: str = "cpu",
                 conv_only: bool = False, input_shape: Sequence[int] | None = None) -> dict:
    """The C1 search of one network: every hidden layer (or every convolutional one), every
    multiplet size, on the test set (resized to ``input_shape`` when given)."""
    data = load_dataset(dataset, data_dir, input_shape=input_shape)
    ckpt = load_checkpoint(model_path)
    layers = [layer.name for layer in prunable_layers(ckpt.model)
              if layer.kind == "conv"] if conv_only else None
    res = layer_oinfo(ckpt, data.test, layers, max_exhaustive=max_exhaustive, seed=seed,
                      device=device)
    return {"seed": seed, "layers": {name: {**r.to_dict(), "dominance": dominance(r)}
                                     for name, r in res.items()}}


def _c2_cells(search: dict, scores: dict, sizes: Sequence[int]) -> list[tuple[dict, SubnetCell]]:
    cells = []
    for rest in C2_REST:
        for k in sizes:
            for criterion in C2_CRITERIA:
                if criterion == "synergy":
                    units = {}
                    for layer, res in search["layers"].items():
                        row = next(r for r in res["sizes"] if r["size"] == k)
                        units[layer] = tuple(row["synergy_units"])
                else:
                    units = {layer: top_units(s, k) for layer, s in scores[criterion].items()}
                cells.append(({"rest": rest, "size": k, "criterion": criterion,
                               "units": {n: list(u) for n, u in units.items()}},
                              SubnetCell(units, rest)))
    return cells


def c2_seed_task(model_path: str, dataset: str, data_dir: str | None, search: dict,
                 sizes: Sequence[int], train: TrainConfig, seed: int, device: str = "cpu"
                 ) -> dict:
    """Every C2 cell of one network (criteria x sizes x rest), retrained as one stack."""
    data = load_dataset(dataset, data_dir)
    ckpt = load_checkpoint(model_path)
    # the quantiser these runs were specified and stored with
    options = ScoreOptions(seed=seed, channel_quantiser="threshold")
    scores = {c: compute_scores(ckpt.model, data.test, [c], n_classes=data.n_classes,
                                options=options)[c]
              for c in C2_CRITERIA if c != "synergy"}
    cells = _c2_cells(search, scores, sizes)
    config = replace(train, seed=seed)
    outcomes = retrain_subnetworks(ckpt, data, [c for _, c in cells], config, device=device)
    dense = float(ckpt.metrics["test_acc"])
    rows = [{**label, **out, "drop_pp": 100.0 * (dense - out["test_acc"])}
            for (label, _), out in zip(cells, outcomes)]
    return {"seed": seed, "dense_test_acc": dense, "rows": rows}


#: The keys of a stored per-seed result that the findings read, by its format.
_STORED_KEYS = {C1_FORMAT: ("seed", "layers"), C2_FORMAT: ("seed", "dense_test_acc", "rows")}


def read_stored(path: Path, kind: str) -> dict | None:
    """A stored task result, or None when it must be computed (again): missing, damaged, of
    another format or lacking a key the findings read."""
    if not path.exists():
        return None
    try:
        document = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None  # half-written by nothing (writes are atomic) or damaged: recompute
    if not isinstance(document, dict) or document.get("format") != kind \
            or missing_keys(document, _STORED_KEYS.get(kind, ())):
        return None
    return document


def run_tasks(executor: Executor, tasks: list[tuple[Task, Path, str]]) -> None:
    """Run the tasks whose result file is missing; store each result as it arrives."""
    todo = [(t, p, kind) for t, p, kind in tasks if read_stored(p, kind) is None]
    where = {t.key: (p, kind) for t, p, kind in todo}

    def store(task: Task, result: Any) -> None:
        path, kind = where[task.key]
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(result, path, kind)

    if todo:
        executor.run([t for t, _, _ in todo], store)


def c1_panels(seeds: list[dict], family: str) -> tuple[list[dict], dict]:
    layers = list(seeds[0]["layers"])
    first, last = layers[0], layers[-1]
    cite = "Fig. 1, Sec. 4.1 (line 77)"
    panels = []
    for layer, expect, text in ((first, "+", "the first layer is redundancy-dominated"),
                                (last, "-", "the last layer is synergy-dominated")):
        red = [s["layers"][layer]["dominance"]["redundancy"] for s in seeds]
        syn = [s["layers"][layer]["dominance"]["synergy"] for s in seeds]
        panels.append(make_panel(f"{family} {layer}: redundancy - synergy (sum over sizes)", expect,
                             cited(text, cite), red, syn, unit="bits"))
    by_size = average_over_seeds([{n: r for n, r in s["layers"].items()} for s in seeds])
    return panels, by_size


def c2_panels(seeds: list[dict], rest: str, sizes: Sequence[int], family: str) -> list[dict]:
    cite = "Fig. 2, Sec. 4.2 (line 90)"
    panels = []

    def acc(criterion: str, k: int) -> list[float]:
        return [next(r["test_acc"] for r in s["rows"] if r["rest"] == rest and r["size"] == k
                     and r["criterion"] == criterion) for s in seeds]

    for k in sizes:
        syn = acc("synergy", k)
        for base in ("random", "gcmi-mixture", "gcmi-model"):
            panels.append(make_panel(
                f"{family} rest {rest}, k={k}: synergy vs {base} (accuracy)", "+",
                cited("the synergistic sub-network loses the least accuracy", cite),
                syn, acc(base, k), unit="pp", k=k, size=k, rest=rest))
        for base in ("gcmi-mixture", "gcmi-model"):
            panels.append(make_panel(
                f"{family} rest {rest}, k={k}: {base} vs random (accuracy)", "≈",
                cited("both MI methods perform like random", cite),
                acc(base, k), acc("random", k), unit="pp", k=k, size=k, rest=rest))
    return panels


def c2_summary(seeds: list[dict], sizes: Sequence[int]) -> list[dict]:
    """Accuracy drop by criterion, size and rest: mean ± std over seeds (pp)."""
    out = []
    for rest in C2_REST:
        for k in sizes:
            for criterion in C2_CRITERIA:
                drops = np.asarray([next(r["drop_pp"] for r in s["rows"] if r["rest"] == rest
                                         and r["size"] == k and r["criterion"] == criterion)
                                    for s in seeds])
                out.append({"rest": rest, "size": k, "criterion": criterion,
                            "n": int(drops.size), "drop_pp_mean": float(drops.mean()),
                            "drop_pp_std": seed_std(drops)})
    return out
