"""The name rules, one owner each: what may become a path.

- ``check_label``: a label that becomes one folder or file name (a suite's name; the labels of
  its methods, explainers, classifiers and post-processors): one plain path component, refused
  (never rewritten) otherwise.
- ``check_relative_paths``: paths read from data (image ids, mask paths) that are joined to a
  root: relative, no ``..``, every component short enough to name a file with a suffix added
  (``<id>.npy``). The writer (``wsolbench.io``) applies the same rule to every path it resolves.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from wsolbench.errors import MetadataError, WsolbenchError

LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,99}")
# Bytes per path component: the usual file-name limit (255) less room for a suffix (".npy").
MAX_COMPONENT = 240
MAX_PATH = 1024  # bytes of a relative path read from data

_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:")
# Any absolute path, drive letter, '..' component or NUL in a newline-joined list of paths.
_UNSAFE = re.compile(r"(^|\n)([/\\]|[A-Za-z]:)|(^|[\n/\\])\.\.($|[\n/\\])|\x00")
# A component that may be over MAX_COMPONENT bytes (a UTF-8 character is at most 4 bytes).
_MAYBE_LONG = re.compile(rf"[^/\\\n]{{{MAX_COMPONENT // 4 + 1},}}")


def check_label(value: Any, key: str, source: str | Path | None = None) -> str:
    """``value`` if it may name a folder: letters, digits and ``. _ + -``, starting with a
    letter or digit, at most 100 characters; else one error naming ``key``."""
    if not isinstance(value, str) or not LABEL.fullmatch(value):
        shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
        raise WsolbenchError(
            f"{key} = {shown} is not allowed: expected a folder name of letters, digits and "
            ". _ + - (starting with a letter or digit, at most 100 characters)",
            source,
        )
    return value


def relative_path_problem(text: str) -> str | None:
    """Why ``text`` may not be joined to a root, or None when it may."""
    if not text.strip():
        return "is empty"
    if "\x00" in text:
        return "holds a NUL character"
    if text.startswith(("/", "\\")) or _WINDOWS_DRIVE.match(text):
        return "must be relative to its root"
    parts = re.split(r"[/\\]", text)
    if ".." in parts:
        return "climbs out of its root with '..'"
    if len(text.encode("utf-8", "surrogatepass")) > MAX_PATH:
        return f"is longer than {MAX_PATH} bytes"
    for part in parts:
        if len(part.encode("utf-8", "surrogatepass")) > MAX_COMPONENT:
            return f"has a name longer than {MAX_COMPONENT} bytes (the file-name limit)"
    return None


def check_relative_paths(paths: list[str], file: Path, what: str) -> None:
    """Refuse unsafe paths read from data (one regex pass over all, then locate), naming the
    file and line."""
    text = "\n".join(paths)
    if all(paths) and not _UNSAFE.search(text) and not _MAYBE_LONG.search(text):
        return
    for i, path_text in enumerate(paths):
        problem = relative_path_problem(path_text)
        if problem is not None:
            shown = path_text if len(path_text) <= 80 else path_text[:77] + "..."
            raise MetadataError(f"{what} '{shown}' {problem}", file, i + 1)
