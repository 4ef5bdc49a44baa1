"""Atomic writes: results appear whole or not at all (write to a temp file, then rename).

A failed write (read-only folder, disk full) is one WsolbenchError naming the file, and the
previous file stays intact. `check_writable_*` find such problems before the work starts.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from wsolbench.errors import WsolbenchError

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` atomically."""
    path = Path(path)
    if path.is_dir():
        raise WsolbenchError("is a folder, not a file to write", path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
    except OSError as error:
        raise WsolbenchError(f"cannot write: {error.strerror or error}", path) from None
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the usual file mode
        os.replace(tmp, path)
    except OSError as error:
        raise WsolbenchError(f"cannot write: {error.strerror or error}", path) from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def check_writable_dir(path: str | Path, what: str = "output folder") -> Path:
    """Before the work starts: `path` is (or can be created as) a folder we can write in.
    Nothing is created: the nearest existing ancestor must be a writable folder."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise WsolbenchError(f"the {what} exists and is not a folder", path)
    existing = path
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if not existing.is_dir():
        raise WsolbenchError(f"cannot create the {what}: {existing} is not a folder", path)
    _probe(existing, path, what)
    return path


def check_writable_file(path: str | Path, what: str = "output file") -> Path:
    """Before the work starts: `path` names a file (not a folder) in a writable place."""
    path = Path(path)
    if path.is_dir():
        raise WsolbenchError(f"the {what} is a folder, not a file", path)
    check_writable_dir(path.parent, f"folder of the {what}")
    return path


def _probe(folder: Path, path: Path, what: str) -> None:
    """Create and remove a file: permission bits alone do not tell (root, read-only mounts)."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=".wsolbench-probe.", dir=folder)
        os.close(fd)
        os.unlink(tmp)
    except OSError as error:
        raise WsolbenchError(f"cannot write the {what}: {error.strerror or error}", path) from None


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_json(path: str | Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):  # numpy / torch scalars and arrays
        return value.tolist()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def inside(root: str | Path, path: str | Path, what: str = "file") -> Path:
    """`path` if its folder, symlinks resolved, lies inside `root`: wsolbench writes nothing
    outside the folders it was given, not even through a symlinked subfolder (docs/bad-input.md)."""
    root, path = Path(root), Path(path)
    resolved_root = root.resolve()
    parent = path.parent.resolve()
    if parent != resolved_root and resolved_root not in parent.parents:
        raise WsolbenchError(
            f"{what} would be written outside {root} (through a symlink or '..')", path
        )
    return path
