"""How many loading workers a loader really starts: the one owner of that rule.

A suite or flag names the workers it wants (`train.workers = 8`, `--workers N`); a machine with
fewer CPUs gets one per CPU this process may run on, silently: more would only compete for the
same cores (PyTorch warns about it twice per loader). Training records the count it used, so a
run's configuration hash says which augmentation stream it had (each loading process has its
own random stream).
"""

from __future__ import annotations

import os


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity where the OS has one), as PyTorch's
    DataLoader counts them for its worker warning."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def loader_workers(requested: int) -> int:
    """The worker count a loader uses for ``requested``: at most one per available CPU
    (0, loading in the calling process, stays 0)."""
    return min(int(requested), available_cpus())
