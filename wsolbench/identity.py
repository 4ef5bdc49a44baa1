"""The configuration hash, one owner: sha256 of the canonical JSON of a configuration.

Checkpoints, result rows and cached scores record the full hash; folder and file names show its
first ``SHORT`` hex digits (``short_hash``), and nothing reads a hash back out of a name.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

SHORT = 12  # hex digits of a hash in a folder or file name


def config_hash(values: Any) -> str:
    """sha256 (64 hex digits) of ``values`` as canonical JSON (sorted keys, no spaces;
    non-JSON values by their ``str``)."""
    canonical = json.dumps(values, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def short_hash(full_hash: str) -> str:
    """The name form of a configuration hash."""
    return full_hash[:SHORT]
