"""The one exception type a user can cause.

The CLI turns a :class:`PruneInfoError` into a one-line message and exit status 2; every other
exception is a bug and keeps its traceback.
"""


class PruneInfoError(Exception):
    """A problem with the user's input: the message names the problem and the fix."""
