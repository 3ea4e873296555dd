"""Command line interface: click commands only, every computation lives in the library.

Each command module registers itself on :data:`prune_info.cli.app.cli` when imported.
"""

from prune_info.cli.app import cli, main
from prune_info.cli import train as _train  # noqa: F401  (registers train, info)

__all__ = ["cli", "main"]
