"""Command line interface: click commands only, every computation lives in the library.

Each command module registers itself on :data:`prune_info.cli.app.cli` when imported.
"""

from prune_info.cli import (  # noqa: F401  (importing a command module registers it)
    ablate,
    bench,
    export,
    oinfo,
    prune,
    reproduce,
    retrain,
    run,
    score,
    study,
    train,
)
from prune_info.cli.app import cli, main

__all__ = ["cli", "main"]
