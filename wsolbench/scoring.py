"""Score ``predict`` batches under every protocol, with one post-processor; results as rows.

A ``Scorer`` calls its post-processor once per batch on the GT class's and the top-k classes'
raw maps (SCG's self-correlation is computed once for all of them), then hands the maps at the
original image size, with the batch's predictions and native ground truth, to the protocols
(``wsolbench.evaluation.protocols``), which prepare maps and ground truth by their own rules and
accumulate. Under torchrun every rank scores its shard and ``finish`` merges the counts and the
per-image records of all ranks through torchmetrics (exact: integer sums, concatenation).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import cv2
import numpy as np
import torch

from wsolbench.evaluation import Evaluator, GroundTruth, MapBatch, Protocol
from wsolbench.evaluation.per_image import CountMetric


class Scorer:
    """One post-processor's scores of one split under the given protocols."""

    def __init__(self, protocols: Mapping[str, Protocol], boxes: bool, masks: bool):
        self.evaluator = Evaluator(protocols.values(), boxes=boxes, masks=masks)
        self.images: ImageRecords | None = None

    def keep_per_image(self, thumbnails: Callable[[int], bool] = lambda index: False) -> Scorer:
        """Also keep every image's outcome under every protocol (``per_image_arrays``) and, for
        the images ``thumbnails(dataset index)`` selects, a small picture of its top-1 map."""
        self.evaluator.keep_per_image()
        self.images = ImageRecords(thumbnails)
        return self

    def update(self, batch: dict[str, Any], postprocessor: Callable) -> None:
        """Post-process one ``predict`` batch (GT class + top-k in one call) and accumulate it
        under every protocol; the metric kernels read the maps on the CPU."""
        classes = torch.cat([batch["cams_gt"][:, None], batch["cams_topk"]], dim=1)
        maps = [m.cpu() for m in postprocessor(classes, batch["taps"], original_sizes(batch))]
        self.evaluator.update(
            MapBatch(
                gt=ground_truth(batch),
                maps=maps,
                sources=postprocessor.scoremap_source(batch["cams_gt"], [m[0] for m in maps]),
                labels=batch["label"],
                topk=batch["topk"],
                top1_sources=postprocessor.scoremap_source(
                    batch["cams_topk"][:, 0], [m[1] for m in maps]
                ),
            )
        )
        if self.images is not None:
            self.images.update(batch["index"], [m[1] for m in maps])  # the top-1 class

    # -- results (collective under torchrun: every rank calls them in the same order) ---------
    def choose(self) -> dict[str, dict]:
        """What each protocol chooses on this split (call on val): the spa box threshold."""
        return self.evaluator.choose()

    def rows(self, common: dict[str, Any], choices: Mapping[str, Mapping]) -> list[dict]:
        """One results row per (protocol, metric), at the settings chosen on val."""
        return [
            {**common, "protocol": protocol, "metric": metric, "value": float(value)}
            for protocol, values in self.evaluator.results(choices).items()
            for metric, value in values.items()
        ]

    def curves(self, common: dict[str, Any]) -> list[dict[str, Any]]:
        return [{**common, "curve": name, "x": x, "y": y} for name, x, y in self.evaluator.curves()]

    def per_image_arrays(self) -> dict[str, np.ndarray]:
        """Per-image records of every rank in dataset order: ``index``, ``<accumulator>.<field>``
        (see each accumulator's ``keep_per_image``), ``thumb_index`` with ``thumbs`` (M, 32, 32)
        uint8 ({} unless ``keep_per_image``)."""
        if self.images is None:
            return {}
        images = self.images.compute()
        order = np.argsort(images["index"], kind="stable")
        arrays = {"index": images["index"][order]}
        for name, computed in self.evaluator.compute().items():
            for field, value in computed.get("per_image", {}).items():
                arrays[f"{name}.{field}"] = value[order]
        thumb_order = np.argsort(images["thumb_index"], kind="stable")
        arrays["thumb_index"] = images["thumb_index"][thumb_order]
        arrays["thumbs"] = images["thumbs"][thumb_order]
        return arrays


class ImageRecords(CountMetric):
    """Which dataset image each per-image record is (``index``, in accumulation order like the
    accumulators' records) and small pictures of the selected images' top-1 maps, as
    torchmetrics ``cat`` states, gathered over ranks with the records."""

    record_fields = {"index": np.int64, "thumb_index": np.int64, "thumbs": np.uint8}

    def __init__(self, thumbnails: Callable[[int], bool]):
        super().__init__()
        self.thumbnails = thumbnails
        self.keep_per_image()

    def update(self, indices, top1_maps) -> None:
        indices = [int(i) for i in indices]
        chosen = [(i, m) for i, m in zip(indices, top1_maps) if self.thumbnails(i)]
        thumbs = [map_thumbnail(m.float().cpu().numpy()) for _, m in chosen]
        self.add_record(
            {
                "index": indices,
                "thumb_index": [i for i, _ in chosen],
                "thumbs": np.asarray(thumbs, np.uint8).reshape(-1, THUMB, THUMB),
            }
        )

    def compute(self) -> dict[str, np.ndarray]:
        arrays = self.per_image_arrays()
        arrays["thumbs"] = arrays["thumbs"].reshape(-1, THUMB, THUMB)
        return arrays


THUMB = 32  # side of the map thumbnails kept for the report's failure browser


def map_thumbnail(score_map: np.ndarray) -> np.ndarray:
    """A map in [0, 1] as a THUMB x THUMB uint8 picture (area average; the browser stretches it
    over the image, whose aspect it had)."""
    small = cv2.resize(
        np.asarray(score_map, np.float32), (THUMB, THUMB), interpolation=cv2.INTER_AREA
    )
    return np.clip(np.rint(small * 255), 0, 255).astype(np.uint8)


def original_sizes(batch: dict[str, Any]) -> list[tuple[int, int]]:
    """(H, W) per image of the maps at the original size: the size the SPA code reads with
    ``cv2.imread`` (EXIF orientation applied: ``EvalDataset``'s ``oriented_size``), else the
    stored one (datasets give (W, H), as PIL does). wsolevaluation's ground truth keeps the stored
    size of ``image_sizes.txt`` (``ground_truth``)."""
    sizes = batch.get("oriented_size", batch["size"])
    return [(int(h), int(w)) for (w, h) in sizes]


def ground_truth(batch: dict[str, Any]) -> GroundTruth:
    """A ``predict`` batch's annotations in native form (``EvalDataset``'s fields)."""
    return GroundTruth(
        sizes=[(int(w), int(h)) for (w, h) in batch["size"]],
        boxes=[np.asarray(b, np.int64).reshape(-1, 4) for b in batch["boxes"]],
        masks=[np.asarray(m) for m in batch["mask"]] if "mask" in batch else None,
        ignore=[np.asarray(m) for m in batch["ignore"]] if "ignore" in batch else None,
    )
