"""Deterministic parity weights, keyed by the REFERENCE code's state-dict names.

The reference outputs in tests/data/*_parity.npz were computed (outside the repository) with
the reference models holding exactly these tensors: each one is seeded by the crc32 of its
reference key, so wsolbench's model gets the same weights through ``reference_names()``
without shipping megabytes of weights. Convolutions are He-scaled so activations stay O(1).
"""

import math
import zlib

import torch


def seeded_tensor(name: str, like: torch.Tensor) -> torch.Tensor:
    g = torch.Generator().manual_seed(zlib.crc32(name.encode()))
    shape = tuple(like.shape)
    if name.endswith("num_batches_tracked"):
        return like.clone()
    if name.endswith("running_var"):
        return 0.5 + torch.rand(shape, generator=g, dtype=torch.float64)
    if name.endswith("running_mean"):
        return 0.1 * torch.randn(shape, generator=g, dtype=torch.float64)
    if len(shape) == 1:
        base = 1.0 if name.endswith("bn.weight") else 0.0
        return base + 0.1 * torch.randn(shape, generator=g, dtype=torch.float64)
    fan_in = math.prod(shape[1:])
    return torch.randn(shape, generator=g, dtype=torch.float64) * math.sqrt(2.0 / fan_in)


def seeded_state(state: dict) -> dict:
    return {
        k: seeded_tensor(k, v).to(v.dtype) if v.is_floating_point() else v.clone()
        for k, v in state.items()
    }


def inputs(size: int, n: int = 2) -> torch.Tensor:
    g = torch.Generator().manual_seed(20210619)
    return torch.randn(n, 3, size, size, generator=g, dtype=torch.float64)


def reference_state(keys, shapes, prefix: str = "", dtype=torch.float64) -> dict:
    """A state dict in a reference's own naming (DataParallel's ``module.`` with ``prefix``):
    every key's seeded tensor, as the parity generators assigned them."""
    return {
        prefix + key: seeded_tensor(key, torch.empty(shape, dtype=dtype))
        if not key.endswith("num_batches_tracked")
        else torch.tensor(0)
        for key, shape in zip(keys, shapes)
    }
