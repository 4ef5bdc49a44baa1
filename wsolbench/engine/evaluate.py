"""Evaluation of a model on one split, sharded across ranks and merged exactly.

Each rank predicts its own share of the split (`infer.shard`: every image exactly once), feeds
its evaluator, and the evaluators' integer counts are merged with `all_reduce_state`, so the
result equals a single-process run. Use it on `val` to choose thresholds and hyperparameters;
choosing is the caller's job, and `test` is only scored with what val chose.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.utils.data import Dataset

from wsolbench.engine import distributed
from wsolbench.engine.infer import predict, shard

BatchHook = Callable[[dict[str, Any]], dict[str, Any]]


def evaluate(
    model: torch.nn.Module,
    dataset: Dataset,
    evaluator: Any,
    prepare: BatchHook | None = None,
    batch_size: int = 32,
    device: str | torch.device = "cpu",
    ten_crop: bool = False,
    topk: int = 5,
    workers: int = 0,
    amp: bool = False,
    progress: bool = False,
) -> Any:
    """Accumulate this rank's shard into `evaluator`, then merge all ranks; returns the merged
    evaluator (the same on every rank). `prepare(batch)` turns `predict`'s batch into what the
    evaluator's `accumulate` reads (post-processed maps at the protocol's size, rescaled boxes,
    masks: see `wsolbench.scoring` for every protocol's inputs)."""
    for batch in predict(
        model,
        shard(dataset),
        batch_size=batch_size,
        device=device,
        ten_crop=ten_crop,
        topk=topk,
        workers=workers,
        amp=amp,
        progress=progress,
    ):
        evaluator.accumulate(prepare(batch) if prepare is not None else batch)
    return distributed.all_reduce_state(evaluator)
