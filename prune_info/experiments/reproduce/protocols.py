"""The protocols of ``prune-info reproduce`` as data: what each finding trains, at which scale,
and the options that choose them."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from prune_info.analysis.stats import (
    MIN_WILCOXON_SEEDS,
)
from prune_info.data import DATASETS, Dataset
from prune_info.errors import PruneInfoError
from prune_info.experiments.study import (
    StudyConfig,
)
from prune_info.training.loop import TrainConfig

#: Every finding ``prune-info reproduce`` knows (``all`` asks for each of them).
FINDINGS = ("A1", "A2", "A3", "C1", "C2", "C1-wide", "C2-wide", "C1-conv")
SCALES = ("paper", "toy")

AMJAD = "Amjad, Liu & Geiger"
CLAUW = "Clauw, Marinazzo & Stramaglia"
AMJAD_FILE = "amjad-liu-geiger-information-ordered-cumulative-ablation.txt"
CLAUW_FILE = "clauw-marinazzo-stramaglia-o-information-synergistic-subnetworks.md"




@dataclass(frozen=True)
class ReproduceOptions:
    """What to reproduce, at which scale, on which data.

    Parameters
    ----------
    findings : tuple of str
        Names from :data:`FINDINGS`, or ``("all",)``.
    scale : {"paper", "toy"}
        ``paper``: the papers' architectures, seeds and epochs (see :func:`protocol_table`);
        ``toy``: digits-sized layers, 6 seeds, 1 epoch, for tests and a quick look.
    data : str, optional
        Dataset (default ``fashion-mnist`` at paper scale, ``digits`` at toy scale).
    data_dir : str, optional
    seeds : int, optional
        Networks per setting, overriding the scale's (at least
        :data:`~prune_info.analysis.stats.MIN_WILCOXON_SEEDS`).
    epochs : int, optional
        Training epochs of every network, overriding the scale's.
    device : str
    """

    findings: tuple[str, ...] = ("all",)
    scale: str = "paper"
    data: str | None = None
    data_dir: str | None = None
    seeds: int | None = None
    epochs: int | None = None
    device: str = "cpu"

    @property
    def dataset(self) -> str:
        return self.data or ("digits" if self.scale == "toy" else "fashion-mnist")

    def expanded(self) -> list[str]:
        """The findings asked for, in :data:`FINDINGS` order."""
        wanted = set(FINDINGS) if "all" in self.findings else set(self.findings)
        return [f for f in FINDINGS if f in wanted]

    def validate(self) -> None:
        if not self.findings:
            raise PruneInfoError(f"name at least one finding: {', '.join(FINDINGS)} or all")
        unknown = [f for f in self.findings if f != "all" and f not in FINDINGS]
        if unknown:
            raise PruneInfoError(f"unknown finding {unknown[0]!r}; choose from: "
                                 f"{', '.join(FINDINGS)}, all")
        if self.scale not in SCALES:
            raise PruneInfoError(f"unknown `scale` {self.scale!r}; choose paper or toy")
        if self.dataset not in DATASETS:
            raise PruneInfoError(f"unknown dataset {self.dataset!r}; choose one of: "
                                 f"{', '.join(DATASETS)}")
        if self.seeds is not None and self.seeds < MIN_WILCOXON_SEEDS:
            raise PruneInfoError(
                f"`seeds`={self.seeds} is too few: the Wilcoxon signed-rank test over seeds "
                f"needs at least {MIN_WILCOXON_SEEDS} to reach p < 0.05; use `seeds`="
                f"{MIN_WILCOXON_SEEDS} or more")
        if self.epochs is not None and self.epochs < 1:
            raise PruneInfoError(f"`epochs` must be at least 1, got {self.epochs}")

    def identity(self) -> dict:
        """What a run directory must agree on (findings may be added to a directory)."""
        return {"scale": self.scale, "data": self.dataset, "seeds": self.seeds,
                "epochs": self.epochs}


@dataclass(frozen=True)
class NetProtocol:
    """One family of networks trained with one protocol (a study directory)."""

    name: str
    hidden: tuple[int, ...]
    acts: tuple[str, ...]
    regs: tuple[str, ...]
    seeds: int
    train: TrainConfig
    modes: tuple[str, ...] = ("layerwise",)
    ablate_to: str = "zero"
    criteria: tuple[str, ...] = ("entropy", "mi", "kl")
    random: int = 20

    def study_config(self, data: Dataset, dataset: str) -> StudyConfig:
        arch = "-".join(str(w) for w in (data.n_features, *self.hidden, data.n_classes))
        return StudyConfig(
            data=dataset, arch=arch, acts=self.acts, regs=self.regs,
            seeds=tuple(range(self.seeds)), train=self.train, criteria=self.criteria,
            orders=("low", "high") if self.criteria else ("low",), random=self.random,
            modes=self.modes, ablate_to=self.ablate_to)


def _sgd(epochs: int) -> TrainConfig:
    """The second paper's optimiser: plain SGD, learning rate 0.01, batch 32."""
    return TrainConfig(epochs=epochs, optimizer="sgd", lr=0.01, momentum=0.0)


def _with_epochs(net: Any, epochs: int) -> Any:
    """A network protocol (or the convolutional one) training ``epochs`` epochs."""
    return replace(net, train=replace(net.train, epochs=epochs))


#: The first paper's networks: RMSprop (learning rate 1e-3, batch 32), 20 epochs.
_RMSPROP = TrainConfig(epochs=20)
#: The networks behind each finding, at paper scale. The first paper trains "between 8 and 30
#: epochs" per setting without listing them; 20 is our choice inside that range. Its 50
#: networks per setting would take about 2.5 hours per 50-seed setting family on 2 cores, so the
#: default is 20 networks (``--seeds 50`` gives the paper's count); the second paper's 20 are
#: kept. The wide second-paper family (beyond the paper) uses 10 networks of 20 epochs.
_PAPER_NETS = {
    "relu": NetProtocol("relu", (100, 100), ("relu",), ("l2", "dropout"), 20, _RMSPROP,
                        modes=("layerwise", "network")),
    "relu-bn": NetProtocol("relu-bn", (100, 100), ("relu",), ("bn-dropout",), 20, _RMSPROP),
    "sigmoid-mean": NetProtocol("sigmoid-mean", (100, 100), ("sigmoid",), ("l2",), 20,
                                _RMSPROP, ablate_to="mean"),
    "sigmoid": NetProtocol("sigmoid", (100, 100), ("sigmoid",), ("dropout",), 20, _RMSPROP),
    "small": NetProtocol("small", (20, 20), ("relu",), ("l2", "dropout"), 20, _RMSPROP),
    "c": NetProtocol("c", (20, 20, 20), ("relu",), ("none",), 20, _sgd(50), criteria=(),
                     random=1),
    "c-wide": NetProtocol("c-wide", (100, 100), ("relu",), ("none",), 10, _sgd(20), criteria=(),
                          random=1),
}
#: The papers' own numbers of networks, to say where a run differs.
PAPER_SEEDS = {"A": 50, "C": 20}
#: Toy scale: the same protocols on digits-sized layers, 6 seeds, 1 epoch, 2 random orders.
_TOY = {"relu": (16, 16), "relu-bn": (16, 16), "sigmoid-mean": (16, 16), "sigmoid": (16, 16),
        "small": (8, 8), "c": (8, 8, 8), "c-wide": (12, 12)}
_TOY_NETS = {name: _with_epochs(replace(net, hidden=_TOY[name], seeds=MIN_WILCOXON_SEEDS,
                                         random=min(net.random, 2)), 1)
             for name, net in _PAPER_NETS.items()}
#: Which networks each finding needs (``C1-conv`` its own, :class:`ConvProtocol`).
NEEDS = {
    "A1": ("relu",), "A2": ("relu", "relu-bn", "sigmoid-mean", "sigmoid", "small"),
    "A3": ("relu",), "C1": ("c",), "C2": ("c",), "C1-wide": ("c-wide",),
    "C2-wide": ("c-wide",), "C1-conv": (),
}
#: VGG-11's layout (Simonyan & Zisserman, Table 1, configuration "A": 64, M, 128, M, 256, 256,
#: M, 512, 512, M, 512, 512, M) at 1/8 of its channels, with a 64-64 classifier; BatchNorm
#: follows every layer (prune-info's ``batchnorm``; VGG-11-bn has none in its classifier).
VGG11_BN_EIGHTH = "c8-c16-c32.32-c64.64-c64.64-f64-f64"


@dataclass(frozen=True)
class ConvProtocol:
    """The convolutional family of ``C1-conv``: a CNN spec trained network by network with the
    second paper's optimiser, on images resized to ``input_shape`` (None: as they are)."""

    spec: str
    input_shape: tuple[int, int, int] | None
    seeds: int
    train: TrainConfig
    max_exhaustive: int


#: 6 networks (the fewest that reach p < 0.05) of 5 epochs: a 1/8-width VGG-11-bn epoch of
#: 48,000 images at batch 32 takes about 25 s on the 2-core machine. The search goes
#: exhaustively to 4 channels (C(64, 4) = 635,376 quadruplets), then greedy.
_PAPER_CONV = ConvProtocol(VGG11_BN_EIGHTH, (1, 32, 32), MIN_WILCOXON_SEEDS, _sgd(5),
                           max_exhaustive=4)
_TOY_CONV = ConvProtocol("c4-c6.6-f8", None, MIN_WILCOXON_SEEDS, _sgd(1), max_exhaustive=3)


def conv_protocol(options: ReproduceOptions) -> ConvProtocol:
    net = _PAPER_CONV if options.scale == "paper" else _TOY_CONV
    if options.seeds is not None:
        net = replace(net, seeds=options.seeds)
    if options.epochs is not None:
        net = _with_epochs(net, options.epochs)
    return net


#: C1 search and C2 sub-network sizes per scale and family.
SEARCH: dict[tuple[str, str], dict[str, Any]] = {
    ("paper", "c"): {"max_exhaustive": 6, "sizes": (5, 10), "retrain_epochs": 10},
    ("paper", "c-wide"): {"max_exhaustive": None, "sizes": (10, 50), "retrain_epochs": 10},
    ("toy", "c"): {"max_exhaustive": 3, "sizes": (2, 4), "retrain_epochs": 1},
    ("toy", "c-wide"): {"max_exhaustive": 3, "sizes": (3, 6), "retrain_epochs": 1},
}
#: The C2 selections compared (``synergy`` is the best synergistic multiplet of C1's search).
C2_CRITERIA = ("synergy", "random", "gcmi-mixture", "gcmi-model")
C2_REST = ("frozen", "removed")


def paper_nets(options: ReproduceOptions) -> dict[str, NetProtocol]:
    table = _PAPER_NETS if options.scale == "paper" else _TOY_NETS
    out = {}
    for name, net in table.items():
        if options.seeds is not None:
            net = replace(net, seeds=options.seeds)
        if options.epochs is not None:
            net = _with_epochs(net, options.epochs)
        out[name] = net
    return out


def protocol_table(options: ReproduceOptions) -> dict[str, dict]:
    """Every network family of ``options``: architecture, training, seeds (JSON-ready)."""
    nets: dict[str, Any] = {**paper_nets(options), "c-conv": conv_protocol(options)}
    table = {}
    for name, net in nets.items():
        row: dict[str, Any] = {}
        for key, value in asdict(net).items():
            if key == "train":  # the settings the protocols choose, as top-level keys
                row.update({k: value[k] for k in ("epochs", "optimizer", "lr", "momentum")})
            else:
                row[key] = list(value) if isinstance(value, tuple) else value
        table[name] = row
    return table
