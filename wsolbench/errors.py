"""One error type for every user-facing failure: the CLI prints it as one clear line."""

from __future__ import annotations

from pathlib import Path


class WsolbenchError(Exception):
    """A problem with the user's input or environment, reported without a traceback.

    ``path`` and ``line`` (1-based) locate the offending file and line when there is one.
    """

    def __init__(self, message: str, path: str | Path | None = None, line: int | None = None):
        self.message = _unwrap_worker_message(message)
        self.path = None if path is None else str(path)
        self.line = line
        super().__init__(str(self))

    def __str__(self) -> str:
        where = ""
        if self.path is not None:
            where = self.path if self.line is None else f"{self.path}:{self.line}"
            where += ": "
        return where + self.message


def _unwrap_worker_message(message: str) -> str:
    """An error raised in a DataLoader worker comes back as the same class built from
    "Caught X in DataLoader worker process N. Original Traceback ... module.X: <text>":
    keep <text>, the one line the user should see (it already names the file)."""
    if not (message.startswith("Caught ") and "Original Traceback" in message):
        return message
    last = next((line for line in reversed(message.splitlines()) if line.strip()), message)
    prefix, sep, text = last.partition(": ")
    return text if sep and prefix.rsplit(".", 1)[-1].endswith("Error") else last


class MissingWeights(WsolbenchError):
    """Pretrained weights that cannot be had (the backbone has none, or the download failed).

    The message names the settings that give weights another way, in the terms of the command
    at hand: ``flags`` by default (``train``, the Python API), ``in_terms_of`` for another
    (``bench``: ``--set train.weights=PATH``)."""

    FLAGS = ("--weights PATH (weights=PATH)", "--pretrained false (pretrained=False)")

    def __init__(self, problem: str, url: str | None = None, cache: str | None = None):
        self.problem, self.url, self.cache = problem, url, cache
        super().__init__(self.advice(*self.FLAGS))

    def advice(self, weights: str, no_pretrained: str) -> str:
        """The message, with ``weights`` and ``no_pretrained`` naming the two settings."""
        if self.url is None:
            return f"{self.problem}: use {no_pretrained} for random initialization, or {weights}"
        cache = f", put it in the torch hub cache ({self.cache})" if self.cache else ""
        return (
            f"{self.problem}. Download {self.url} on a machine with internet and pass it with "
            f"{weights}{cache}, or use {no_pretrained} for random initialization"
        )

    def in_terms_of(
        self, weights: str, no_pretrained: str, path: str | Path | None = None
    ) -> WsolbenchError:
        return WsolbenchError(self.advice(weights, no_pretrained), path)


class MetadataError(WsolbenchError):
    """Malformed or inconsistent metadata (file and line always given when known)."""


class ScoreMapError(WsolbenchError):
    """A score map that cannot be scored: NaN/Inf, out of range, wrong shape, missing, unsafe."""
