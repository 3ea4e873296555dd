"""prune-info: understand and prune neural networks with information theory."""

from prune_info.errors import PruneInfoError

__version__ = "0.1.0"
__all__ = ["PruneInfoError", "__version__"]
