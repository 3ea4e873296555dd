"""The one exception type a user can cause.

The CLI turns a :class:`PruneInfoError` into a one-line message and exit status 2; every other
exception is a bug and keeps its traceback.
"""


class PruneInfoError(ValueError):
    """A problem with the user's input: the message names the problem and the fix.

    A ``ValueError`` too (as scikit-learn's input errors are), so code that guards a call with
    ``except ValueError`` keeps working."""


def malformed(path: object, problem: str, fix: str) -> PruneInfoError:
    """The one error of a loader given a file it cannot use: ``PATH is malformed (...); FIX``.

    Every file reader (checkpoints, IDX and ONNX files) reports a structurally broken file with
    this, naming the file, what is wrong with it and what to do.
    """
    return PruneInfoError(f"{path} is malformed ({problem}); {fix}")


class PruneInfoNote(UserWarning):
    """Something the user should know but need not act on (a renumbering of classes, a wrapper
    taken off a state_dict). The CLI shows it as ``note: ...``; in the library it is a warning
    of this category, which ``warnings.filterwarnings`` can silence."""
