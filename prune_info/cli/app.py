"""The click group and the error policy shared by every command.

A :class:`~prune_info.errors.PruneInfoError` (or a click usage error) becomes one line on stderr
and exit status 2; with ``--debug`` the traceback is shown instead. The library names parameters
in backticks (`` `max_drop` ``); here they become the flags of the command being run
(``--max-drop``).
"""

from __future__ import annotations

import re
import sys
from typing import cast

import click

from prune_info._version import __version__
from prune_info.errors import PruneInfoError

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

#: Library parameter names (written `name` in a PruneInfoError) that reach a command under
#: another click parameter name; the first candidate the command has wins. A candidate spelled as
#: a flag is used as is when the command has that flag (the --global of --layerwise/--global).
PARAM_ALIASES: dict[str, tuple[str, ...]] = {
    "amounts": ("amount",),
    "batch": ("batch_text", "n_samples"),
    "data": ("data_name",),
    "sample": ("data_name",),
    "spec": ("arch_spec",),
    "arch": ("arch_spec", "spec"),
    "model": ("model_path",),
    "out": ("out_dir",),
    "random": ("n_random",),
    "seeds": ("n_seeds",),
    "at": ("at_text",),
    "save_rewind_steps": ("rewind_steps",),
    "factory_kwargs": ("model_kwargs",),
    "allocation='global'": ("--global",),
}

_BACKTICKED = re.compile(r"`([^`]+)`(=?)")


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
    if ctx.invoked_subcommand is not None:  # for the flags in error messages
        group = cast(click.Group, ctx.command)  # this callback's command is the `cli` group
        ctx.obj["command"] = group.get_command(ctx, ctx.invoked_subcommand)


def flag_message(message: str, command: click.Command | None) -> str:
    """A library message in the command's vocabulary: `` `max_drop`=2 `` -> ``--max-drop 2``.

    A backticked name that is (or, through :data:`PARAM_ALIASES`, reaches) an option of
    ``command`` becomes its long flag, and a ``=`` right after it a space; any other backticked
    name loses its backticks.
    """
    params = [p for p in (command.params if command is not None else [])
              if any(o.startswith("--") for o in p.opts)]
    by_name = {p.name: next(o for o in p.opts if o.startswith("--")) for p in params}
    flags = {o for p in params for o in (*p.opts, *p.secondary_opts)}

    def flag(name: str) -> str | None:
        for candidate in (name, *PARAM_ALIASES.get(name, ())):
            if candidate.startswith("--"):
                if candidate in flags:
                    return candidate
            elif candidate in by_name:
                return by_name[candidate]
        return None

    def replace(match: re.Match) -> str:
        name, equals = match.groups()
        found = flag(name)
        return found + (" " if equals else "") if found else name + equals

    return _BACKTICKED.sub(replace, message)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``prune-info`` console script."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    state: dict = {}
    try:
        cli.main(args=args, prog_name="prune-info", standalone_mode=False, obj=state)
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
        click.echo(f"error: {flag_message(str(exc), state.get('command'))}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
