"""The identity hashes, one owner: a configuration's (sha256 of its canonical JSON) and a
model's weights' (sha256 of its state dict's tensors in a fixed order).

Checkpoints, result rows and cached scores record the full hash; folder and file names show its
first ``SHORT`` hex digits (``short_hash``), and nothing reads a hash back out of a name. The
weights hash is that of the tensors, not of a checkpoint file (which also stores the optimizer,
RNG states and per-epoch wall times), so two trainings that give the same weights hash alike.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
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


def weights_hash(state: Mapping[str, Any]) -> str:
    """sha256 (64 hex digits) of a state dict's tensors: for each entry in sorted name order,
    its name, dtype, shape and little-endian bytes (read on the CPU, contiguous)."""
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        header = json.dumps([name, str(tensor.dtype), list(tensor.shape)], separators=(",", ":"))
        digest.update(header.encode("utf-8") + b"\0")
        # bytes through a uint8 view: every dtype (bf16 included) without a numpy round trip
        digest.update(tensor.reshape(-1).view(_uint8()).numpy().tobytes())
    return digest.hexdigest()


def _uint8():
    import torch  # only when weights are hashed: `wsolbench --help` stays light

    return torch.uint8
