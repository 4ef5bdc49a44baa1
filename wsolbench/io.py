"""The one writer: every file wsolbench writes goes through this module (docs/bad-input.md,
rule 3; `tests/test_writer.py` walks the package's source and fails on a write elsewhere).

- **Claims.** Before any work, a command claims each output: a folder (``claim_folder``) or a
  single file (``claim_file``). A folder may be claimed when it is new, empty, or wsolbench's
  own: a ``.wsolbench`` marker (written with its first file) says which kind of output it
  holds, so a folder holding someone else's files, or another kind of wsolbench output, is
  refused. A file may be claimed when it is absent, or a regular file that the caller
  recognizes as its own kind of output. Claiming checks that the place is writable (a probe
  file: permission bits do not tell for root or read-only mounts) and creates nothing.
- **Inside.** Every write resolves its path inside the claim that covers it: relative parts
  only (no ``..``, no absolute labels; names.relative_path_problem), and no symlinked
  component that leaves the claimed folder. Under the CLI (``session``) a write that no claim
  covers is a bug, reported as an internal error.
- **Never over what is not ours.** A write replaces only a regular file: never a folder,
  symlink, FIFO, device or socket, and never one of the command's own inputs
  (``declare_inputs``) unless the new bytes are the same.
- **Atomic and validated.** Bytes go to a temporary file beside the target, then replace it in
  one rename; ``validate`` runs on the temporary file first, so nothing good is replaced by
  something worse; a group of files (a metadata split) is staged and validated together
  (``write_files``).
- **One error line.** Any failure (any OSError, torch's serializer errors, a full disk, a
  quota) is one WsolbenchError naming the file; the previous file stays intact.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wsolbench.errors import WsolbenchError
from wsolbench.names import relative_path_problem

_UMASK = os.umask(0)
os.umask(_UMASK)

MARKER = ".wsolbench"
_TEMP_PREFIX = ".wsolbench-"

# An older release's output has no marker: a folder of one of these kinds is recognized as
# wsolbench's when it holds only what such a folder holds (names, and whether each is a
# folder) and every name that it always writes. Datasets and metadata are never
# recognized this way: a user's own look just the same.
_LEGACY: dict[str, tuple[Callable[[str, bool], bool], frozenset[str]]] = {
    "leaderboard": (
        lambda name, is_dir: (
            (name == "figures")
            if is_dir
            else name
            in {
                "leaderboard.md",
                "report.html",
                "results.csv",
                "results.json",
                "curves.json",
                "per_image.npz",
            }
        ),
        frozenset({"leaderboard.md", "report.html"}),
    ),
    "runs": (lambda name, is_dir: is_dir and _is_run_folder_name(name), frozenset()),
    "run": (
        lambda name, is_dir: (
            not is_dir
            and (
                name in {"last.pt", "config.json", "history.json", "overlays.npz"}
                or name.startswith(("scores-", "per_image-"))
            )
        ),
        frozenset({"last.pt", "config.json"}),
    ),
}


def _is_run_folder_name(name: str) -> bool:
    label, _, digest = name.rpartition("-")
    return bool(label) and len(digest) == 12 and all(c in "0123456789abcdef" for c in digest)


@dataclass
class _Claim:
    path: Path  # as named (absolute)
    resolved: Path  # symlinks resolved, at claim time
    what: str
    kind: str | None  # a folder's kind; None for a file claim
    marked: bool = False  # the folder holds its marker (or is covered by a marked folder)


@dataclass
class _State:
    claims: list[_Claim] = field(default_factory=list)
    inputs: dict[tuple[int, int], Path] = field(default_factory=dict)
    input_folders: set[Path] = field(default_factory=set)
    strict: bool = False  # under the CLI: every write must be covered by a claim


_STATE = _State()


class UnclaimedWrite(RuntimeError):
    """A write that no claim covers, under the CLI: a bug in wsolbench, not a user error."""


@contextmanager
def session() -> Iterator[None]:
    """One command's writes: claims and inputs start empty, and every write must lie inside a
    claim (the CLI runs each command in one)."""
    global _STATE
    previous, _STATE = _STATE, _State(strict=True)
    try:
        yield
    finally:
        _STATE = previous


# ----------------------------------------------------------------------------- claims


def declare_inputs(*paths: str | Path | None) -> None:
    """The command's inputs: files it will never replace (unless with the same bytes) and
    folders it will never claim as output."""
    for path in paths:
        if path is None:
            continue
        path = Path(path)
        try:
            info = path.stat()
        except OSError:
            continue
        if stat.S_ISDIR(info.st_mode):
            _STATE.input_folders.add(path.resolve())
        else:
            _STATE.inputs[(info.st_dev, info.st_ino)] = path


def claim_folder(
    path: str | Path,
    what: str = "output folder",
    kind: str | None = None,
    within: str | Path | None = None,
) -> Path:
    """Claim ``path`` as an output folder of ``kind`` before any work (see the module's doc);
    ``within``: a folder the user named that ``path`` (a subfolder wsolbench names, such as
    ``<runs>/<suite>``) must stay inside, symlinks resolved. Returns ``path``; creates
    nothing."""
    path = Path(path)
    absolute = Path(os.path.abspath(path))
    for claim in _STATE.claims:
        if claim.kind is not None and _under(absolute, claim.path):
            _check_folder_place(path, absolute, what, within)
            if not _under(absolute.resolve(), claim.resolved):
                raise WsolbenchError(
                    f"the {what} would be outside {claim.path} (through a symlink)", path
                )
            return path  # a folder inside one of ours is ours
    _check_folder_place(path, absolute, what, within)
    if absolute.resolve() in _STATE.input_folders:
        raise WsolbenchError(f"the {what} is one of the command's inputs", path)
    marked = _owned(absolute, kind, what, path)
    if absolute.is_dir():
        _check_contents(absolute, what)
    _probe(_nearest_existing(absolute), path, what)  # last: a refused claim leaves no trace
    _STATE.claims.append(_Claim(absolute, absolute.resolve(), what, kind or "output", marked))
    return path


def claim_file(
    path: str | Path,
    what: str = "output file",
    recognize: Callable[[Path], bool] | None = None,
) -> Path:
    """Claim ``path`` as an output file before any work: absent, or a regular file (not a
    folder, symlink, FIFO or device, not one of the command's inputs) that ``recognize``
    says is this kind of wsolbench output. Returns ``path``; creates nothing."""
    path = Path(path)
    absolute = Path(os.path.abspath(path))
    problem = relative_path_problem(absolute.name)
    if problem is not None:
        raise WsolbenchError(f"the {what}'s name {problem}", path)
    _check_replaceable(absolute, what, path)
    if _is_input(absolute) is not None:
        raise WsolbenchError(f"the {what} is one of the command's inputs", path)
    if os.path.lexists(absolute):
        if recognize is not None and not _recognized(recognize, absolute):
            raise WsolbenchError(
                f"the {what} exists and is not a file wsolbench wrote: choose another path "
                "(nothing is replaced that wsolbench did not write)",
                path,
            )
    parent = absolute.parent
    if os.path.lexists(parent) and not parent.is_dir():
        raise WsolbenchError(f"cannot create the folder of the {what}: it is not a folder", path)
    _probe(_nearest_existing(parent), path, f"folder of the {what}")
    _STATE.claims.append(_Claim(absolute, absolute.parent.resolve() / absolute.name, what, None))
    return path


def check_writable_dir(path: str | Path, what: str = "output folder") -> Path:
    """``claim_folder`` under its earlier name."""
    return claim_folder(path, what)


def check_writable_file(path: str | Path, what: str = "output file") -> Path:
    """``claim_file`` under its earlier name."""
    return claim_file(path, what)


def inside(root: str | Path, path: str | Path, what: str = "file") -> Path:
    """`path` if its folder, symlinks resolved, lies inside `root`: wsolbench writes nothing
    outside the folders it was given, not even through a symlinked subfolder."""
    root, path = Path(root), Path(path)
    if not _under(Path(os.path.abspath(path.parent)).resolve(), Path(root).resolve()):
        raise WsolbenchError(
            f"{what} would be written outside {root} (through a symlink or '..')", path
        )
    return path


def is_ours(path: str | Path, kind: str) -> bool:
    """Whether ``path`` is a folder of ``kind`` that wsolbench wrote (its marker, or, for an
    older release's output, only the entries such a folder holds)."""
    path = Path(path)
    if not path.is_dir():
        return False
    marker = _read_marker(path)
    if marker is not None:
        return marker == kind
    if kind not in _LEGACY:
        return False
    allowed, required = _LEGACY[kind]
    try:
        entries = [(e.name, e.is_dir(follow_symlinks=False)) for e in os.scandir(path)]
    except OSError:
        return False
    names = {name for name, _ in entries}
    return (
        bool(entries)
        and all(allowed(name, is_dir) for name, is_dir in entries)
        and required <= names
    )


def _check_folder_place(path: Path, absolute: Path, what: str, within) -> None:
    if os.path.lexists(absolute) and not absolute.is_dir():
        raise WsolbenchError(f"the {what} exists and is not a folder", path)
    if within is not None:
        root = Path(os.path.abspath(within))
        if not _under(absolute, root) or not _under(absolute.resolve(), root.resolve()):
            raise WsolbenchError(
                f"the {what} would be outside {within} (through a symlink or '..')", path
            )
    existing = _nearest_existing(absolute)
    if not existing.is_dir():
        raise WsolbenchError(f"cannot create the {what}: {existing} is not a folder", path)


def _owned(folder: Path, kind: str | None, what: str, shown: Path) -> bool:
    """Whether ``folder`` holds its marker; refuses a folder holding someone else's files."""
    if not folder.is_dir():
        return False
    marker = _read_marker(folder)
    if marker is not None:
        if kind is not None and marker not in (kind, "output"):
            raise WsolbenchError(
                f"the {what} holds wsolbench's {marker} output, not a {kind}: choose another "
                "folder",
                shown,
            )
        return True
    try:
        entries = list(os.scandir(folder))
    except OSError as error:
        raise WsolbenchError(f"cannot read the {what}: {error.strerror or error}", shown) from None
    if not entries:
        return False
    if kind is not None and is_ours(folder, kind):
        return False  # an older release's output: the marker is added with the next write
    raise WsolbenchError(
        f"the {what} holds files wsolbench did not write (no {MARKER} marker): choose a new or "
        f"empty folder (if an older wsolbench wrote it, create an empty {MARKER} file in it)",
        shown,
    )


def _read_marker(folder: Path) -> str | None:
    marker = folder / MARKER
    if not marker.is_file() or marker.is_symlink():
        return None
    try:
        text = marker.read_text(encoding="utf-8")[:1000]
    except (OSError, UnicodeDecodeError):
        return "unknown"
    if not text.strip():
        return "output"  # an empty marker made by hand: any kind
    try:
        value = json.loads(text)
        return str(value["kind"]) if isinstance(value, dict) else "unknown"
    except (ValueError, KeyError, RecursionError):
        return "unknown"


def _check_contents(folder: Path, what: str, limit: int = 200_000) -> None:
    """Up front: nothing in an output folder is a symlink leaving it or a special file where
    wsolbench writes (checked again at each write)."""
    root = folder.resolve()
    seen = 0
    for current, folders, files in os.walk(folder):
        for name in folders + files:
            seen += 1
            entry = Path(current) / name
            if entry.is_symlink():
                if not _under(entry.resolve(), root):
                    raise WsolbenchError(
                        f"the {what} holds a symlink leaving it: {entry} -> {os.readlink(entry)} "
                        "(wsolbench writes nothing outside the folders it was given)",
                        folder,
                    )
            elif name in files and not entry.is_file():
                raise WsolbenchError(f"the {what} holds a special file: {entry}", folder)
        if seen > limit:
            return


def _nearest_existing(path: Path) -> Path:
    existing = path
    while not os.path.lexists(existing) and existing.parent != existing:
        existing = existing.parent
    return existing


def _probe(folder: Path, path: Path, what: str) -> None:
    """Create and remove a file: permission bits alone do not tell (root, read-only mounts)."""
    if not folder.is_dir():
        raise WsolbenchError(f"cannot create the {what}: {folder} is not a folder", path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=_TEMP_PREFIX + "probe.", dir=folder)
        os.close(fd)
        os.unlink(tmp)
    except OSError as error:
        raise WsolbenchError(f"cannot write the {what}: {error.strerror or error}", path) from None


def can_write_in(folder: str | Path) -> bool:
    """Whether files could be created in ``folder`` (or, if it is missing, in its nearest
    existing ancestor, where it would be made); probed without leaving anything behind."""
    existing = _nearest_existing(Path(os.path.abspath(folder)))
    try:
        _probe(existing, existing, "folder")
    except WsolbenchError:
        return False
    return True


def _recognized(recognize: Callable[[Path], bool], path: Path) -> bool:
    try:
        return bool(recognize(path))
    except Exception:  # noqa: BLE001  (any failure to read it means: not recognized)
        return False


def _under(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


# ----------------------------------------------------------------------------- writing


def _covering(absolute: Path) -> _Claim | None:
    """The innermost claim that covers ``absolute`` (a file claim covers only its file)."""
    best = None
    for claim in _STATE.claims:
        covers = absolute == claim.path if claim.kind is None else _under(absolute, claim.path)
        if covers and (best is None or len(claim.path.parts) > len(best.path.parts)):
            best = claim
    return best


def _check_replaceable(absolute: Path, what: str, shown: Path) -> None:
    """The target may be replaced: absent, or a regular file that is not an input."""
    try:
        info = os.lstat(absolute)
    except FileNotFoundError:
        return
    except OSError as error:
        raise WsolbenchError(f"cannot write: {error.strerror or error}", shown) from None
    if stat.S_ISDIR(info.st_mode):
        raise WsolbenchError(f"the {what} is a folder, not a file", shown)
    if stat.S_ISLNK(info.st_mode):
        raise WsolbenchError(f"the {what} is a symlink: wsolbench replaces only files", shown)
    if not stat.S_ISREG(info.st_mode):
        raise WsolbenchError(
            f"the {what} is a special file (FIFO, device or socket), not a file to replace", shown
        )


def _target(path: Path) -> tuple[Path, _Claim | None]:
    """Check where ``path`` may be written (see the module's doc); returns it absolute."""
    _check_climbing(path)
    absolute = Path(os.path.abspath(path))
    claim = _covering(absolute)
    if claim is None and _STATE.strict:
        raise UnclaimedWrite(f"write to {path} outside every claimed output")
    if claim is not None:
        relative = absolute.relative_to(claim.path).as_posix()
        if relative != ".":
            problem = relative_path_problem(relative)
            if problem is not None:
                raise WsolbenchError(f"cannot write: the path {problem}", path)
        # The deepest existing folder on the way, if inside the claim, must resolve inside it.
        folder = claim.path if claim.kind is not None else claim.path.parent
        root = claim.resolved if claim.kind is not None else claim.resolved.parent
        parent = _nearest_existing(absolute.parent)
        if _under(parent, folder) and not _under(parent.resolve(), root):
            raise WsolbenchError(
                f"file would be written outside {claim.path} (through a symlink)", path
            )
    else:
        problem = relative_path_problem(absolute.name)
        if problem is not None:
            raise WsolbenchError(f"cannot write: the file name {problem}", path)
    _check_replaceable(absolute, "file to write", path)
    return absolute, claim


def _check_climbing(path: Path) -> None:
    """A path that names a claimed folder and then climbs out of it with '..' is refused as
    such (a label that slipped past the name rule), not resolved away."""
    raw = Path(os.getcwd(), path)
    for claim in _STATE.claims:
        parts = claim.path.parts
        if raw.parts[: len(parts)] == parts and ".." in raw.parts[len(parts) :]:
            raise WsolbenchError(
                f"cannot write: the path climbs out of {claim.path} with '..'", path
            )


def _mark(claim: _Claim | None) -> None:
    """Write the claimed folder's marker with its first file."""
    if claim is None or claim.kind is None or claim.marked:
        return
    claim.marked = True
    with _failures_as_errors(claim.path):
        os.makedirs(claim.path, exist_ok=True)
    if _read_marker(claim.path) is None:
        text = json.dumps({"kind": claim.kind}) + "\n"
        _replace_with(
            claim.path / MARKER,
            lambda tmp: tmp.write_text(text, encoding="utf-8"),
            claim.path / MARKER,
        )


def _is_input(absolute: Path) -> Path | None:
    try:
        info = os.stat(absolute)
    except OSError:
        return None
    return _STATE.inputs.get((info.st_dev, info.st_ino))


def _same_bytes(a: Path, b: Path) -> bool:
    try:
        if a.stat().st_size != b.stat().st_size:
            return False
        with open(a, "rb") as first, open(b, "rb") as second:
            while True:
                x, y = first.read(1 << 20), second.read(1 << 20)
                if x != y:
                    return False
                if not x:
                    return True
    except OSError:
        return False


def _new_temp(absolute: Path, shown: Path) -> Path:
    """A temporary file beside ``absolute`` (its folder created as needed)."""
    try:
        os.makedirs(absolute.parent, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=_TEMP_PREFIX, suffix=".tmp", dir=absolute.parent)
        os.close(fd)
    except OSError as error:
        raise WsolbenchError(f"cannot write: {error.strerror or error}", shown) from None
    return Path(name)


def _commit(tmp: Path, absolute: Path, validate: Callable[[Path], Any] | None, shown: Path) -> None:
    """Validate ``tmp``, then let it replace ``absolute`` in one rename (or leave an input
    that it equals untouched)."""
    if validate is not None:
        validate(tmp)
    if _is_input(absolute) is not None:
        if _same_bytes(tmp, absolute):
            return  # the input, rewritten as it is: nothing to replace
        raise WsolbenchError(
            "would replace one of the command's own inputs: write to another folder", shown
        )
    _check_replaceable(absolute, "file to write", shown)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the usual file mode
    os.replace(tmp, absolute)


@contextmanager
def _failures_as_errors(shown: Path, *temporaries: Path) -> Iterator[None]:
    """Every failure of a write is one WsolbenchError naming the file; temporaries go."""
    try:
        yield
    except WsolbenchError as error:
        if error.path is None:
            raise WsolbenchError(error.message, shown) from None
        raise
    except (OSError, RuntimeError) as error:  # disk full, quota, torch's serializer
        reason = getattr(error, "strerror", None) or (str(error).splitlines() or [""])[0][:200]
        raise WsolbenchError(f"cannot write: {reason or type(error).__name__}", shown) from None
    finally:
        for tmp in temporaries:
            if os.path.lexists(tmp):
                try:
                    os.unlink(tmp)
                except OSError:
                    pass


def _replace_with(absolute: Path, produce: Callable[[Path], Any], shown: Path) -> None:
    tmp = _new_temp(absolute, shown)
    with _failures_as_errors(shown, tmp):
        produce(tmp)
        _commit(tmp, absolute, None, shown)


@contextmanager
def atomic_path(path: str | Path, validate: Callable[[Path], Any] | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block ends it is validated and
    replaces ``path`` atomically (see the module's doc for every rule it applies)."""
    path = Path(path)
    absolute, claim = _target(path)
    _mark(claim)
    tmp = _new_temp(absolute, path)
    with _failures_as_errors(path, tmp):
        yield tmp
        _commit(tmp, absolute, validate, path)


def write_bytes(
    path: str | Path, data: bytes, validate: Callable[[Path], Any] | None = None
) -> Path:
    with atomic_path(path, validate) as tmp:
        with open(tmp, "wb") as handle:
            handle.write(data)
    return Path(path)


def write_text(path: str | Path, text: str, validate: Callable[[Path], Any] | None = None) -> Path:
    return write_bytes(path, text.encode("utf-8"), validate)


def write_json(path: str | Path, obj: Any) -> Path:
    return write_text(
        path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n"
    )


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):  # numpy / torch scalars and arrays
        return value.tolist()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def write_npy(path: str | Path, array) -> Path:
    """One array in NumPy's ``.npy`` format (``np.save`` on a path would append ``.npy``)."""
    import numpy as np

    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.save(handle, array)
    return Path(path)


def write_npz(path: str | Path, arrays: Mapping[str, Any]) -> Path:
    """Arrays in a compressed ``.npz`` archive."""
    import numpy as np

    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(handle, **arrays)
    return Path(path)


def save_torch(path: str | Path, obj: Any) -> Path:
    """``torch.save`` (a checkpoint), atomically; its serializer's errors are one line."""
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
    return Path(path)


def write_files(
    folder: str | Path, files: Mapping[str, str], validate: Callable[[Path], Any] | None = None
) -> Path:
    """Several text files of one folder: first all are written to a private temporary folder
    and ``validate(that_folder)`` runs on them (a metadata split is read back), so an invalid
    set replaces nothing and leaves no trace; then each replaces its target atomically."""
    folder = Path(folder)
    targets = {name: _target(folder / name) for name in files}
    if validate is not None:
        with tempfile.TemporaryDirectory(prefix=_TEMP_PREFIX) as name:
            stage = Path(name)
            with _failures_as_errors(folder):
                for file_name, text in files.items():
                    (stage / file_name).write_text(text, encoding="utf-8")
            validate(stage)
    _mark(next((claim for _, claim in targets.values() if claim is not None), None))
    for file_name, text in files.items():
        absolute, _ = targets[file_name]
        data = text.encode("utf-8")
        _replace_with(absolute, lambda tmp, data=data: tmp.write_bytes(data), folder / file_name)
    return folder


@contextmanager
def scratch_folder() -> Iterator[Path]:
    """A private temporary folder, claimed for the block and removed after it (a library's
    cache laid out for one call)."""
    with tempfile.TemporaryDirectory(prefix=_TEMP_PREFIX) as name:
        folder = Path(name)
        claim = _Claim(folder, folder.resolve(), "scratch folder", "scratch", marked=True)
        _STATE.claims.append(claim)
        try:
            yield folder
        finally:
            _STATE.claims.remove(claim)


def symlink(target: str | Path, link: str | Path) -> Path:
    """A symlink at ``link`` (inside a claimed folder) to ``target``."""
    absolute, _ = _target(Path(link))
    with _failures_as_errors(Path(link)):
        os.makedirs(absolute.parent, exist_ok=True)
        os.symlink(target, absolute)
    return Path(link)


def write_crash_report(text: str) -> Path | None:
    """The traceback of an internal error, in the temporary folder (the one file written
    outside the named folders: it reports a bug, not a result). None if it cannot be written."""
    try:
        fd, name = tempfile.mkstemp(prefix="wsolbench-internal-error-", suffix=".txt")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        return Path(name)
    except OSError:
        return None


def format_traceback(error: BaseException) -> str:
    return "".join(traceback.format_exception(error))


def remove_stale(paths: Iterable[str | Path]) -> None:
    """Remove files wsolbench wrote that are no longer valid (a corrupt cache), inside a claim."""
    for path in paths:
        absolute, _ = _target(Path(path))
        try:
            if os.path.lexists(absolute):
                os.unlink(absolute)
        except OSError as error:
            raise WsolbenchError(f"cannot remove: {error.strerror or error}", path) from None
