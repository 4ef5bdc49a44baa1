"""torch.distributed glue: launch by `torchrun`, rank-0 side effects, exact evaluator merges.

Everything here is a no-op in a single process, so the same training and evaluation code runs
alone or under `torchrun --nproc_per_node=N` (NCCL on CUDA, gloo on CPU).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from typing import Any

import torch
import torch.distributed as dist


def init_from_env(backend: str | None = None) -> torch.device | None:
    """Join the process group described by torchrun's environment variables, if any.

    Returns this rank's CUDA device when one is used, else None. Safe to call twice.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or not dist.is_available():
        return None
    use_cuda = torch.cuda.is_available() and backend in (None, "nccl")
    device = None
    if use_cuda:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend or ("nccl" if use_cuda else "gloo"))
    return device


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    return rank() == 0


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def shard_indices(length: int, shard: int | None = None, shards: int | None = None) -> list[int]:
    """This rank's share of a split: every `shards`-th index, no padding, no duplicates.

    (DistributedSampler pads by repeating images, which would count them twice.)
    """
    shard = rank() if shard is None else shard
    shards = world_size() if shards is None else shards
    return list(range(shard, length, shards))


def all_gather_objects(obj: Any) -> list[Any]:
    """Every rank's `obj`, in rank order (one element in a single process)."""
    if not is_distributed():
        return [obj]
    gathered: list[Any] = [None] * world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def _from_state(evaluator: Any, state: Any) -> Any:
    """An evaluator like `evaluator` holding `state` (`from_state_dict` or `load_state_dict`)."""
    if hasattr(type(evaluator), "from_state_dict"):
        part = type(evaluator).from_state_dict(state)
        if hasattr(evaluator, "protocol"):
            part.protocol = evaluator.protocol
        return part
    part = copy.deepcopy(evaluator)
    part.load_state_dict(state)
    return part


def merge_states(evaluator: Any, states: Sequence[Any]) -> Any:
    """A fresh evaluator holding the exact sum of the given states (via its own `merge`)."""
    merged = None
    for state in states:
        part = _from_state(evaluator, state)
        if merged is None:
            merged = part
        else:
            merged.merge(part)
    return merged if merged is not None else copy.deepcopy(evaluator)


def all_reduce_state(evaluator: Any) -> Any:
    """Merge every rank's evaluator counts; every rank gets the merged evaluator back.

    The states are integer counts and histograms, so the merge is an exact sum: the result is
    the one a single process would compute over the whole split. Gathering whole states (rather
    than all-reducing each tensor) leaves the state's layout to the evaluator.
    """
    if not is_distributed():
        return evaluator
    return merge_states(evaluator, all_gather_objects(evaluator.state_dict()))


def all_reduce_sum(values: torch.Tensor) -> torch.Tensor:
    """Sum a tensor over ranks (training statistics: loss sums, correct counts)."""
    if is_distributed():
        values = values.clone()
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values
