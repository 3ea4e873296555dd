"""The click group and the error policy shared by every command.

A :class:`~prune_info.errors.PruneInfoError` (or a click usage error) becomes one line on stderr
and exit status 2; with ``--debug`` the traceback is shown instead.
"""

from __future__ import annotations

import sys

import click

from prune_info._version import __version__
from prune_info.errors import PruneInfoError

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(context_settings=CONTEXT)
@click.version_option(__version__, prog_name="prune-info")
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Understand and prune neural networks with information theory.

    \b
    Example:
      prune-info train --data digits --arch 64-100-100-10 -o model.pt
      prune-info info model.pt
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``prune-info`` console script."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    try:
        cli.main(args=args, prog_name="prune-info", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        if debug:
            raise
        click.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(2)
    except PruneInfoError as exc:
        if debug:
            raise
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
