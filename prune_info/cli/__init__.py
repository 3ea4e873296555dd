"""Command line interface: click commands only, every computation lives in the library.

Each command module registers itself on :data:`prune_info.cli.app.cli` when imported.
"""

from prune_info.cli.app import cli, main
from prune_info.cli import train as _train  # noqa: F401  (registers train, info)
from prune_info.cli import score as _score  # noqa: F401
from prune_info.cli import prune as _prune  # noqa: F401
from prune_info.cli import bench as _bench, export as _export  # noqa: F401
from prune_info.cli import retrain as _retrain  # noqa: F401
from prune_info.cli import oinfo as _oinfo  # noqa: F401
from prune_info.cli import run as _run  # noqa: F401
from prune_info.cli import ablate as _ablate, study as _study  # noqa: F401

__all__ = ["cli", "main"]
