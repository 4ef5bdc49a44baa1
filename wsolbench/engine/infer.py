"""Inference: a generator of batch dicts (predictions, class maps, feature taps, dataset fields).

The caller post-processes (identity, SCG, ...) and feeds an evaluator or writes score maps;
nothing is written here. Classification follows the spa protocol: with `ten_crop`, softmax per
crop then the mean over the ten crops; localization uses the single resized view.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Subset

from wsolbench.engine import distributed
from wsolbench.engine.progress import make_progress
from wsolbench.engine.workers import loader_workers
from wsolbench.errors import WsolbenchError


def tap_names(model: torch.nn.Module) -> tuple[str, ...]:
    """The taps SCG fuses by default, as the model's backbone lists them."""
    backbone = getattr(model, "backbone", model)
    return tuple(getattr(backbone, "scg_taps", ()))


def gather_classes(cams: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """(N, C, h, w) maps and (N, k) classes -> (N, k, h, w) maps of those classes."""
    index = classes.long()[:, :, None, None].expand(-1, -1, *cams.shape[2:])
    return cams.gather(1, index)


def class_maps(
    model: torch.nn.Module, outputs: dict[str, Any], classes: torch.Tensor
) -> torch.Tensor:
    """(N, k) classes -> (N, k, h, w) raw maps as the model's reference computes them at
    evaluation (ACoL erases by each class itself): the method's ``class_maps`` hook, else the
    classes' channels of ``cams``."""
    hook = getattr(model, "class_maps", None)
    if hook is None:
        return gather_classes(outputs["cams"], classes)
    return hook(outputs, classes)


def shard(dataset: Dataset) -> Dataset:
    """This rank's share of an evaluation split (every image exactly once over all ranks)."""
    if distributed.world_size() == 1:
        return dataset
    return Subset(dataset, distributed.shard_indices(len(dataset)))


def _collate():
    from wsolbench.data.datasets import collate_eval

    return collate_eval


@torch.no_grad()
def predict(
    model: torch.nn.Module,
    dataset: Dataset,
    batch_size: int = 32,
    device: str | torch.device = "cpu",
    ten_crop: bool = True,
    topk: int = 5,
    workers: int = 0,
    amp: bool = False,
    to_cpu: bool = True,
    progress: bool = False,
    explainer=None,
) -> Iterator[dict[str, Any]]:
    """Yield one dict per batch of an `EvalDataset` (build it with `ten_crop=True` for ten-crop).

    Keys: `logits` (N, C) of the single view; `probs` (N, C) (ten-crop mean when `ten_crop`);
    `topk` (N, k) classes by `probs`; `cams_gt` (N, h, w) and `cams_topk` (N, k, h, w) raw class
    maps at feature resolution, each computed for its own class (`class_maps`: ACoL erases by
    that class, as the reference's inference erases by the GT label); `taps` (list, in `tap_names` order) and `tap_names`; plus every
    field of the dataset's batch (`image_id`, `label`, `size`, `boxes`, masks, ...) except the
    image tensors. Tensors are float32. `cams_gt`, `cams_topk` and `taps` stay on the model's
    device (the post-processor's inputs: SCG runs where the model ran); `logits`, `probs` and
    `topk` are moved to the CPU unless `to_cpu=False`.
    An `explainer` (`wsolbench.explainers`) makes `cams_gt` / `cams_topk` instead of the
    model's own maps.
    """
    device = torch.device(device)
    model = model.to(device).eval()
    names = tap_names(model)
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=loader_workers(workers),
        collate_fn=_collate(),
        pin_memory=device.type == "cuda",
    )
    use_amp = amp and device.type == "cuda"
    bar = make_progress(enabled=progress and distributed.is_main())
    with bar:
        task = bar.add_task(
            "infer" if explainer is None else f"infer ({explainer.name})", total=len(dataset)
        )
        for batch in loader:
            yield _predict_batch(
                model, batch, device, ten_crop, topk, names, use_amp, to_cpu, explainer
            )
            bar.advance(task, len(batch["label"]))


def _autocast(enabled: bool):
    return torch.autocast("cuda", dtype=torch.bfloat16) if enabled else contextlib.nullcontext()


def _predict_batch(
    model, batch, device, ten_crop, topk, names, use_amp, to_cpu, explainer=None
) -> dict:
    images = batch["image"].to(device, non_blocking=True)
    labels = torch.as_tensor(batch["label"]).to(device)
    with _autocast(use_amp):
        outputs = model(images)
    logits = outputs["logits"].float()
    if ten_crop:
        crops = batch.get("crops")
        if crops is None:
            raise WsolbenchError("ten-crop inference needs an EvalDataset built with ten_crop=True")
        crops = crops.to(device, non_blocking=True)
        n, views = crops.shape[:2]
        with _autocast(use_amp):
            crop_logits = model(crops.flatten(0, 1))["logits"].float()
        probs = crop_logits.softmax(dim=1).view(n, views, -1).mean(dim=1)
    else:
        probs = logits.softmax(dim=1)
    k = min(topk, probs.shape[1])
    top = probs.topk(k, dim=1).indices
    classes = torch.cat([labels[:, None], top], dim=1)
    if explainer is not None and not explainer.model_maps:  # post-hoc maps, not the model's own
        maps = explainer(model, images, classes, outputs).float()
    else:  # the GT class and the top-k classes in one call (ACoL runs classifier B per column)
        with _autocast(use_amp):
            maps = class_maps(model, outputs, classes).float()
    result = {key: value for key, value in batch.items() if key not in ("image", "crops")}
    result.update(
        logits=logits,
        probs=probs,
        topk=top,
        cams_gt=maps[:, 0],
        cams_topk=maps[:, 1:],
        taps=[outputs["taps"][name].float() for name in names],
        tap_names=names,
    )
    if to_cpu:
        for key in ("logits", "probs", "topk"):
            result[key] = result[key].cpu()
    return result
