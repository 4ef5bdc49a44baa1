"""Where the libraries wsolbench runs keep their caches, one owner, decided before they are
imported (``wsolbench.evaluation`` imports this first): a read-only installation with an
unwritable HOME, the usual container setup, works, quietly.

- numba (the metric kernels): ``cache=True`` looks for a writable folder (``NUMBA_CACHE_DIR``,
  the package's ``__pycache__``, the user's cache folder) and raises at import when there is
  none. Then the kernels are cached in a private folder under the system's temporary folder,
  or, when even that cannot be written, not cached at all (compiled once per process).
- matplotlib (imported by torchmetrics and the report's figures) warns on every run when its
  config folder cannot be written: then it gets a private folder under the temporary folder.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def _writable(folder: Path) -> bool:
    """Whether numba could create ``folder`` and files in it (``wsolbench.io.can_write_in``:
    a probe file, since permission bits do not tell on read-only mounts or for root)."""
    from wsolbench.io import can_write_in

    return can_write_in(folder)


def configure_matplotlib() -> str:
    """``MPLCONFIGDIR`` when matplotlib's own folder cannot be written; returns the folder used."""
    if os.environ.get("MPLCONFIGDIR"):
        return os.environ["MPLCONFIGDIR"]
    home = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    default = Path(home) / "matplotlib"
    if _writable(default):
        return str(default)
    private = Path(tempfile.gettempdir()) / f"wsolbench-matplotlib-{os.getuid()}"
    if _writable(private):
        os.environ["MPLCONFIGDIR"] = str(private)
    return os.environ.get("MPLCONFIGDIR", str(default))


def candidate_folders() -> list[Path]:
    """numba's own choices, in its order (user-provided, in-tree, user-wide)."""
    import numba
    from numba.misc.appdirs import AppDirs

    folders = [Path(numba.config.CACHE_DIR)] if numba.config.CACHE_DIR else []
    from importlib.util import find_spec

    kernels = find_spec("wsolbench.evaluation")  # where the kernels' sources are (numba's in-tree)
    if kernels is not None and kernels.origin:
        folders.append(Path(kernels.origin).resolve().parent / "__pycache__")
    folders.append(Path(AppDirs(appname="numba", appauthor=False).user_cache_dir))
    return folders


def configure(candidates: list[Path] | None = None) -> str:
    """Make numba's ``cache=True`` work here; returns where kernels are cached ("numba" for
    numba's own choice, a folder, or "none")."""
    import numba

    if any(_writable(folder) for folder in (candidates or candidate_folders())):
        return "numba"
    private = Path(tempfile.gettempdir()) / f"wsolbench-numba-{os.getuid()}"
    if _writable(private):
        numba.config.CACHE_DIR = str(private)
        return str(private)
    from numba.core.dispatcher import Dispatcher

    Dispatcher.enable_caching = lambda self: None  # keeps its NullCache: compile, do not cache
    return "none"


MATPLOTLIB = configure_matplotlib()
CACHE = configure()
