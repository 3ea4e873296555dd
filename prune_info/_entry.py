"""The ``prune-info`` console script: Ctrl-C is honoured from its first instruction.

The command line imports torch and the rest (seconds) before it parses anything. A SIGINT that
lands inside an import is not reliably a ``KeyboardInterrupt`` there: raised in the middle of a
C extension's initialisation it can surface as another error, or be lost so that the command
runs on and exits 0. So the handler is installed here, before any heavy import, and *notes*
the interrupt while the imports run; once they are done the command is not started. While the
command runs, Ctrl-C raises ``KeyboardInterrupt`` as usual, and whatever becomes of it (another
exception, a library that swallows it), the exit status is 130 with one line, ``interrupted``,
and no traceback; a Ctrl-C after a finished command, while the process ends, gives 130 too.
Only the standard library is imported before the handler is in place.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys

#: Exit status of a command interrupted by Ctrl-C (128 + SIGINT), as shells report it.
INTERRUPTED = 130


class _Interrupts:
    """The SIGINT handler: remembers every interrupt; raises only once ``armed``."""

    def __init__(self) -> None:
        self.seen = False
        self.armed = False

    def __call__(self, signum: int, frame: object) -> None:
        self.seen = True
        if self.armed:
            raise KeyboardInterrupt


def _leave(code: int) -> None:
    """Exit with ``code`` now, and so that a Ctrl-C from here on exits 130 at once.

    The interpreter's own shutdown (seconds of torch teardown) restores the default SIGINT
    disposition before it ends, so a Ctrl-C then would kill the process by the signal (status
    -2). Nothing is left to clean up (every file is written atomically), so the exit handlers
    run, the streams are flushed, and the process ends without that teardown.
    """
    signal.signal(signal.SIGINT, lambda signum, frame: os._exit(INTERRUPTED))
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def main(argv: list[str] | None = None) -> None:
    """Run ``prune-info`` with ``argv`` (default ``sys.argv[1:]``)."""
    interrupts = _Interrupts()
    signal.signal(signal.SIGINT, interrupts)
    try:
        from prune_info.cli.app import main as run_command  # imports torch: seconds

        if interrupts.seen:
            raise KeyboardInterrupt
        interrupts.armed = True
        run_command(argv)  # ends in SystemExit, 130 (said) for a Ctrl-C it caught
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if exc.code is not None and not isinstance(exc.code, int):
            print(exc.code, file=sys.stderr)
    except BaseException:
        if not interrupts.seen:
            raise  # a bug: its traceback is wanted
        code = 0  # the interrupt became another error (or none): said below
    interrupts.armed = False
    if interrupts.seen and code != INTERRUPTED:
        print("interrupted", file=sys.stderr)
        code = INTERRUPTED
    _leave(code)
