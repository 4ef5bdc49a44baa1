"""Score a model on one split: the one evaluation path of the bench, alone or under torchrun.

Each rank predicts its own share of the split (`infer.shard`: every image exactly once), every
post-processor's maps feed its own `Scorer`, and the scorers' torchmetrics states (integer
counts, per-image records) are merged over ranks when they are computed, so the result equals a
single-process run. Use it on `val` to choose thresholds (`Scorer.choose`); `test` is only
scored with what val chose.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

import torch

from wsolbench.data.datasets import EvalDataset
from wsolbench.engine.infer import predict, shard
from wsolbench.evaluation import Protocol
from wsolbench.scoring import Scorer


def score_split(
    model: torch.nn.Module,
    dataset: EvalDataset,
    postprocessors: Mapping[str, Callable],
    protocols: Mapping[str, Protocol],
    *,
    batch_size: int = 32,
    device: str | torch.device = "cpu",
    ten_crop: bool = False,
    workers: int = 0,
    progress: bool = False,
    thumbnails: Callable[[int], bool] | None = None,
    explainer=None,
    timings: dict[str, float] | None = None,
    description: str | None = None,
) -> dict[str, Scorer]:
    """One inference pass over this rank's shard; post-processor name -> its `Scorer`.

    `thumbnails` (a predicate on dataset indices) turns on per-image records, with pictures of
    the top-1 maps of the images it selects. `timings`, when given, receives each
    post-processor's seconds (post-processing + scoring) and the count of images."""
    boxes = dataset.split.boxes is not None
    masks = dataset.mask_root is not None
    scorers = {name: Scorer(protocols, boxes=boxes, masks=masks) for name in postprocessors}
    if thumbnails is not None:
        for scorer in scorers.values():
            scorer.keep_per_image(thumbnails)
    for batch in predict(
        model,
        shard(dataset),
        batch_size=batch_size,
        device=device,
        ten_crop=ten_crop,
        workers=workers,
        progress=progress,
        explainer=explainer,
        description=description,
    ):
        for name, postprocessor in postprocessors.items():
            started = time.perf_counter()
            scorers[name].update(batch, postprocessor)
            if timings is not None:
                timings[name] = timings.get(name, 0.0) + time.perf_counter() - started
        if timings is not None:
            timings["images"] = timings.get("images", 0) + len(batch["label"])
    return scorers
