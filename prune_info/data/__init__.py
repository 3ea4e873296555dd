"""The data seam: every source of labelled samples, read the same way by every command.

A dataset (:class:`Dataset`) has named classes, a seeded train / validation / test split and a
recorded preprocessing; its splits are in memory (:class:`Split`, the built-ins' fast path) or
read in batches (:class:`StreamSplit`: an image folder, a user's dataset), so memory does not
grow with the data. :func:`load_dataset` opens any source (:mod:`prune_info.data.sources`);
:func:`match_classes` puts a dataset's labels in a model's class order.
"""

from prune_info.data.builtin import DATASETS, DEBIAN_FASHION_DIR, read_idx
from prune_info.data.coerce import as_dataset, as_samples, as_split
from prune_info.data.dataset import (
    Dataset,
    MappedSplit,
    adapt_inputs,
    match_classes,
    note,
)
from prune_info.data.sources import (
    DataSpec,
    load_dataset,
    load_dataset_like,
    parse_data_spec,
    recorded_classes,
)
from prune_info.data.splits import (
    LoaderSplit,
    Samples,
    Split,
    StreamSplit,
    bounded,
    in_memory,
    permutation,
)

__all__ = ["DATASETS", "DEBIAN_FASHION_DIR", "DataSpec", "Dataset", "LoaderSplit",
           "MappedSplit", "Samples", "Split", "StreamSplit", "adapt_inputs", "as_dataset",
           "as_samples", "as_split", "bounded", "in_memory", "load_dataset", "load_dataset_like",
           "match_classes", "note", "parse_data_spec", "permutation", "read_idx",
           "recorded_classes"]
