"""torch.distributed glue: launch by `torchrun`, rank-0 side effects, sharding.

Evaluation counts are merged by torchmetrics (the accumulators are `torchmetrics.Metric`s with
sum-reduced integer states), not here.

Everything here is a no-op in a single process, so the same training and evaluation code runs
alone or under `torchrun --nproc_per_node=N` (NCCL on CUDA, gloo on CPU).
"""

from __future__ import annotations

import os

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
        # torchmetrics (the evaluators) imports torch._dynamo, which keeps a process group
        # that exists at its import alive past destroy_process_group; imported first, the group
        # is freed by `shutdown` (see there).
        import torchmetrics  # noqa: F401

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
    """Leave the process group, freeing it (its gloo worker threads are joined) while Python is
    alive: a worker thread that lets go of a collective's tensors during interpreter shutdown
    aborts the process ("terminate called without an active exception")."""
    if dist.is_available() and dist.is_initialized():
        if is_distributed():
            dist.barrier()
        dist.destroy_process_group()


def shard_indices(length: int, shard: int | None = None, shards: int | None = None) -> list[int]:
    """This rank's share of a split: every `shards`-th index, no padding, no duplicates.

    (DistributedSampler pads by repeating images, which would count them twice.)
    """
    shard = rank() if shard is None else shard
    shards = world_size() if shards is None else shards
    return list(range(shard, length, shards))


def all_reduce_sum(values: torch.Tensor) -> torch.Tensor:
    """Sum a tensor over ranks (training statistics: loss sums, correct counts)."""
    if is_distributed():
        values = values.clone()
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values
