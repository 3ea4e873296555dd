"""Training: one model (:mod:`.loop`), or many seeds of one MLP stacked and batched
(:mod:`.batched`)."""

from prune_info.training.batched import batchable, train_seeds
from prune_info.training.loop import OPTIMIZERS, TrainConfig, TrainResult, fit, train_model

__all__ = ["OPTIMIZERS", "TrainConfig", "TrainResult", "batchable", "fit", "train_model",
           "train_seeds"]
