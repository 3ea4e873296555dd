"""prune-info criteria as a torch-pruning ``Importance``.

torch-pruning asks an importance estimator for one score per channel of a *group* (a layer's
output channels together with everything that must shrink with them). A prune-info criterion
already scores the output units of each prunable layer, so :class:`CriterionImportance` answers
with the scores of the group's root layer and lets any torch-pruning pruner remove, say, the
units with the lowest mutual information.

Examples
--------
>>> import copy, torch_pruning as tp
>>> from prune_info.data import load_dataset
>>> from prune_info.training import TrainConfig, train_model
>>> data = load_dataset("digits")
>>> model = train_model(data, "64-16-10", config=TrainConfig(epochs=2), progress=False).model
>>> importance = CriterionImportance(model, criterion="mi", split=data.val)
>>> pruner = tp.pruner.BasePruner(model, data.val.x[:1], importance, pruning_ratio=0.25,
...                               ignored_layers=[model.out])
>>> pruner.step()
>>> model.fc1.out_features
12
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch_pruning as tp
from torch import nn

from prune_info.criteria.context import compute_scores
from prune_info.criteria.options import ScoreOptions
from prune_info.criteria.registry import get_criterion
from prune_info.data import Split
from prune_info.errors import PruneInfoError

__all__ = ['CriterionImportance']

_OUT_CHANNEL_FNS = (tp.prune_conv_out_channels, tp.prune_linear_out_channels,
                    tp.prune_depthwise_conv_out_channels)


class CriterionImportance(tp.importance.Importance):
    """A torch-pruning importance serving prune-info scores (higher = keep).

    Give either precomputed ``scores`` or a ``criterion`` with the data to compute it on. With a
    criterion, scores are computed on first use and again whenever a layer's width has changed
    since (iterative pruning), so every step ranks the units the model has *now*.

    Parameters
    ----------
    model : nn.Module
        The model being pruned (used to name the modules torch-pruning hands over).
    scores : mapping of str to Tensor, optional
        ``{layer name: scores [n_units]}``, e.g. ``compute_scores(...)["mi"]``.
    criterion : str, optional
        A registered criterion name (see :func:`prune_info.criteria.registry.available_criteria`).
    split : Split, optional
        Labelled data for a criterion that needs data.
    n_classes : int, optional
        Number of classes (default: the model's classifier width).
    options : ScoreOptions, optional

    Notes
    -----
    Every group torch-pruning yields is served, depthwise-rooted ones included: a group channel
    scores the mean of its scored members' scores (the layers whose outputs the group prunes,
    as :func:`prune_info.pruning.workflow.reduce_group` does). A group with no scored member
    (only the classifier, or ignored layers) gets ``None``, which torch-pruning's pruners skip.

    Examples
    --------
    Precomputed scores of a layer with four units; the group of ``fc1`` asks for all of them:

    >>> import torch_pruning as tp
    >>> model = nn.Sequential(nn.Flatten(), nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    >>> imp = CriterionImportance(model, scores={"1": torch.tensor([0.3, 0.0, 0.9, 0.1])})
    >>> graph = tp.DependencyGraph().build_dependency(model, example_inputs=torch.randn(1, 3))
    >>> group = graph.get_pruning_group(model[1], tp.prune_linear_out_channels, idxs=[0, 1, 2, 3])
    >>> imp(group)
    tensor([0.3000, 0.0000, 0.9000, 0.1000], dtype=torch.float64)
    """

    def __init__(
        self,
        model: nn.Module,
        scores: Mapping[str, torch.Tensor] | None = None,
        *,
        criterion: str | None = None,
        split: Split | None = None,
        n_classes: int | None = None,
        options: ScoreOptions = ScoreOptions(),
    ) -> None:
        if (scores is None) == (criterion is None):
            raise PruneInfoError(
                "CriterionImportance needs exactly one of scores= (precomputed) or criterion= "
                "(computed on the model); fix: pass one of them"
            )
        if criterion is not None:
            crit = get_criterion(criterion)
            if crit.needs_data and split is None:
                raise PruneInfoError(
                    f"criterion {criterion} needs data; fix: pass split= (the validation set)"
                )
        self.model = model
        self.criterion = criterion
        self.split = split
        self.n_classes = n_classes
        self.options = options
        self._scores = None if scores is None else {
            name: torch.as_tensor(v).detach().to("cpu", torch.float64)
            for name, v in scores.items()
        }

    def _widths(self) -> dict[str, int]:
        widths = {}
        for name, module in self.model.named_modules():
            if isinstance(module, nn.Linear):
                widths[name] = module.out_features
            elif isinstance(module, nn.Conv2d):
                widths[name] = module.out_channels
        return widths

    def scores(self) -> dict[str, torch.Tensor]:
        """The current ``{layer: scores}``, recomputed by the criterion after width changes."""
        widths = self._widths()
        stale = self._scores is None or any(
            widths.get(name) != len(values) for name, values in self._scores.items()
        )
        if stale and self.criterion is not None:
            self._scores = compute_scores(self.model, self.split, [self.criterion],
                                          n_classes=self.n_classes,
                                          options=self.options)[self.criterion]
        elif stale:
            assert self._scores is not None  # no criterion, so __init__ had scores=
            name = next(n for n, v in self._scores.items() if widths.get(n) != len(v))
            raise PruneInfoError(
                f"the scores of {name} are for {len(self._scores[name])} units but the layer "
                f"now has {widths.get(name)}; fix: recompute the scores after each pruning "
                "step, or pass criterion= so that CriterionImportance does it"
            )
        assert self._scores is not None  # given to __init__, or computed above when stale
        return self._scores

    @torch.no_grad()
    def __call__(self, group) -> torch.Tensor | None:
        """Scores of the group's channels, in the order of the root's indices."""
        names = {m: n for n, m in self.model.named_modules()}
        scores = self.scores()
        n_channels = len(group[0].idxs)
        found = []
        for dep, idxs in group:
            name = names.get(dep.target.module)
            if dep.handler not in _OUT_CHANNEL_FNS or name not in scores:
                continue
            values = scores[name][torch.as_tensor(list(idxs), dtype=torch.long)]
            if len(values) == n_channels:
                found.append(values)
        if not found:
            return None
        return torch.stack(found).mean(0)
