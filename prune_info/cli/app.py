"""The click group and the error policy shared by every command.

A :class:`~prune_info.errors.PruneInfoError` (or a click usage error) becomes one line on stderr
and exit status 2; with ``--debug`` the traceback is shown instead. The library names parameters
in backticks (`` `max_drop` ``); here they become the flags of the command being run
(``--max-drop``).
"""

from __future__ import annotations

import re
import sys
import warnings
from typing import cast

import click

from prune_info._torch import fixed_threads, out_of_memory
from prune_info._version import __version__
from prune_info.errors import PruneInfoError, PruneInfoNote

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

#: Library parameter names (written `name` in a PruneInfoError) that reach a command under
#: another click parameter name; the first candidate the command has wins. A candidate spelled as
#: a flag is used as is when the command has that flag (the --global of --layerwise/--global).
PARAM_ALIASES: dict[str, tuple[str, ...]] = {
    "amounts": ("amount",),
    "amount": ("amount_per_round", "amounts"),
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
    "at_k": ("at_k_text",),
    "null": ("n_null",),
    "save_rewind_steps": ("rewind_steps",),
    "factory_kwargs": ("model_kwargs",),
    "allocation='global'": ("--global",),
    "batch_size": ("batch_text", "n_samples", "max_samples"),
}

_BACKTICKED = re.compile(r"`([^`]+)`(=?)")


@click.group(context_settings=CONTEXT)
@click.version_option(__version__, prog_name="prune-info")
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="CPU threads of the long computations (default: the cores free when each "
                   "starts); small operations keep one.")
@click.pass_context
def cli(ctx: click.Context, debug: bool, threads: int | None) -> None:
    """Understand and prune neural networks with information theory.

    \b
    Example:
      prune-info train --data digits --arch 64-100-100-10 -o model.pt
      prune-info info model.pt
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    ctx.with_resource(fixed_threads(threads))  # restored when the command ends
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
    """Entry point of the ``prune-info`` console script.

    Warnings raised while the command runs (by torch, by a user's model, by the library) are
    held back: a command that fails prints only its ``error:`` line, one that succeeds prints
    each distinct warning once at the end as ``warning: ...``, and a crash shows them before
    its traceback. ``--debug`` shows them as they come.
    """
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    if debug:
        _dispatch(args, debug)
        return
    command = next((cli.commands[a] for a in args if a in cli.commands), None)
    with warnings.catch_warnings(record=True) as held:
        try:
            _dispatch(args, debug)
        except SystemExit as exc:
            if exc.code in (0, None):
                _show_warnings(held, command)
            raise
        except BaseException:
            _show_warnings(held, command)
            raise
    _show_warnings(held, command)


def _show_warnings(held: list[warnings.WarningMessage], command: click.Command | None) -> None:
    """Each distinct warning once, in the command's flags; a :class:`PruneInfoNote` (something
    done as documented, said so) as ``note:``, anything else as ``warning:``."""
    seen: set[str] = set()
    for caught in held:
        text = (str(caught.message).strip().splitlines() or [caught.category.__name__])[0]
        if text not in seen:
            seen.add(text)
            kind = "note" if issubclass(caught.category, PruneInfoNote) else "warning"
            click.echo(f"{kind}: {flag_message(text, command)}", err=True)


def _dispatch(args: list[str], debug: bool) -> None:
    """Run the command under the error policy of the module docstring."""
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
        _fail(_memory_error(exc, state.get("command")) or exc, state.get("command"))
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except SystemExit as exc:
        # Commands return, or raise the errors above: a SystemExit comes from the user's code
        # (a model or data factory, a forward pass) and is no success of the command's.
        if debug:
            raise
        _fail(PruneInfoError(f"the model's or data's own code called sys.exit({exc.code!r}) "
                             "during the command; nothing was finished: fix that code"),
              state.get("command"))
    except Exception as exc:
        # Running out of memory is the size of the work, not a bug: one line naming what to
        # lower (also when a library error wrapped it, above). Anything else keeps its traceback.
        memory = None if debug else _memory_error(exc, state.get("command"))
        if memory is None:
            raise
        _fail(memory, state.get("command"))


def _memory_error(exc: BaseException, command: click.Command | None) -> PruneInfoError | None:
    """:func:`~prune_info._torch.out_of_memory` naming the command's flags that size the work
    (batch size first, then input shape and bins) and its device flag, where it has them."""
    def has(name: str) -> str | None:
        return name if flag_message(f"`{name}`", command) != name else None

    sizes = [n for n in ("batch_size", "input_shape", "bins") if has(n)]
    return out_of_memory(exc, lower=sizes, device=has("device"))


def _fail(exc: PruneInfoError, command: click.Command | None) -> None:
    click.echo(f"error: {flag_message(str(exc), command)}", err=True)
    sys.exit(2)
