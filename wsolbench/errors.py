"""One error type for every user-facing failure: the CLI prints it as one clear line."""
from __future__ import annotations

from pathlib import Path


class WsolbenchError(Exception):
    """A problem with the user's input or environment, reported without a traceback.

    ``path`` and ``line`` (1-based) locate the offending file and line when there is one.
    """

    def __init__(self, message: str, path: str | Path | None = None, line: int | None = None):
        self.message = message
        self.path = None if path is None else str(path)
        self.line = line
        super().__init__(str(self))

    def __str__(self) -> str:
        where = ""
        if self.path is not None:
            where = self.path if self.line is None else f"{self.path}:{self.line}"
            where += ": "
        return where + self.message


class MetadataError(WsolbenchError):
    """Malformed or inconsistent metadata (file and line always given when known)."""


class ScoreMapError(WsolbenchError):
    """A score map that cannot be scored: NaN/Inf, out of range, wrong shape, missing, unsafe."""
