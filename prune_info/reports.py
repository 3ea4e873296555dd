"""Typed reports: what a verb of the library returns, and how it is written and read back.

A :class:`Report` is a frozen dataclass that owns its JSON ``FORMAT`` and version: :meth:`~Report.
to_dict` gives the document (its fields, by default), :meth:`~Report.from_dict` rebuilds the
report from one and refuses another format or version as a malformed file, :meth:`~Report.write`
and :meth:`~Report.read` go through a file atomically, and :meth:`~Report.table` is the text a
command prints. A field whose ``metadata`` says ``{"json": False}`` lives in memory only (the
tensors behind a plot, say).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from typing import Any, ClassVar, TypeVar

from prune_info.errors import malformed
from prune_info.io import JSON_FORMAT_VERSION, read_json, to_json_text, write_json

__all__ = ["Report"]

R = TypeVar("R", bound="Report")

#: The fix a malformed report file names.
REWRITE = "write it again with the command that made it"


@dataclass(frozen=True)
class Report:
    """Base of every typed result; subclasses set ``FORMAT`` (and ``VERSION`` when it moves)."""

    FORMAT: ClassVar[str] = ""
    VERSION: ClassVar[int] = JSON_FORMAT_VERSION

    def to_dict(self) -> dict:
        """The JSON document's content (without ``format``/``format_version``)."""
        return {f.name: getattr(self, f.name) for f in fields(self)
                if f.metadata.get("json", True)}

    @classmethod
    def from_fields(cls: type[R], doc: dict) -> R:
        """Build the report from a document already checked by :meth:`from_dict`; subclasses
        whose document is not their fields override this."""
        names = {f.name for f in fields(cls) if f.init and f.metadata.get("json", True)}
        return cls(**{k: v for k, v in doc.items() if k in names})

    @classmethod
    def from_dict(cls: type[R], doc: Any, source: object = "the document") -> R:
        """The report of a document :meth:`to_dict` (or :meth:`write`) made.

        Raises
        ------
        PruneInfoError
            Not a JSON object, another format, another version, or missing / mistyped fields:
            ``SOURCE is malformed (...)``.
        """
        if not isinstance(doc, dict):
            raise malformed(source, f"a JSON {type(doc).__name__}, not an object", REWRITE)
        if doc.get("format", cls.FORMAT) != cls.FORMAT:
            raise malformed(source, f"its format is {doc.get('format')!r}, not {cls.FORMAT!r}",
                            REWRITE)
        version = doc.get("format_version", cls.VERSION)
        if version != cls.VERSION:
            raise malformed(source, f"format version {version!r}; this prune-info reads "
                            f"version {cls.VERSION}", "upgrade prune-info, or " + REWRITE)
        try:
            return cls.from_fields(doc)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            problem = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)
            raise malformed(source, f"its fields: {problem}", REWRITE) from exc

    def write(self, path: str | os.PathLike) -> None:
        """Write the document atomically, ``format`` and ``format_version`` first."""
        write_json(self.to_dict(), path, self.FORMAT)

    @classmethod
    def read(cls: type[R], path: str | os.PathLike) -> R:
        return cls.from_dict(read_json(path, cls.FORMAT, REWRITE), path)

    def to_json(self) -> str:
        """The document as :meth:`write` writes it, as text (for ``--json`` on stdout)."""
        return to_json_text(self.to_dict(), self.FORMAT)

    def table(self) -> str:
        """The text a command prints for this report."""
        raise NotImplementedError(f"{type(self).__name__} has no table")
