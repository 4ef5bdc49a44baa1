"""Turn inference batches into evaluator inputs for every protocol, and results into rows.

One `Scorer` per post-processor. For each batch it builds, from the raw class maps and taps:
- spa protocol: the top-5 classes' and the GT class's maps at the ORIGINAL image size;
- wsolevaluation protocol: the GT class's map at `map_size` (plain maps exactly as
  wsolevaluation's CAM computer prepares them: bicubic resize of the raw CAM, then min-max;
  post-processed maps are produced at `map_size` directly), GT boxes rescaled with truncation,
  masks resized nearest;
- peak protocol: the GT class's map at the original size against the mask.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import cv2
import numpy as np
import torch

from wsolbench.data.datasets import resize_mask
from wsolbench.engine import distributed
from wsolbench.evaluation import (
    BoxAccumulator,
    ClassicLocAccumulator,
    Evaluator,
    PeakAccumulator,
    PxAPAccumulator,
    rescale_boxes,
)
from wsolbench.evaluation.scoremaps import minmax_normalize

ERROR_METRICS = {
    "cls": "err_cls",
    "m-ins": "err_mins",
    "part": "err_part",
    "more": "err_more",
    "ot": "err_ot",
}


class Scorer:
    def __init__(self, evaluation: dict[str, Any]):
        self.map_size = int(evaluation["map_size"])
        self.iou_thresholds = [int(d) for d in evaluation["iou_thresholds"]]
        interval = float(evaluation["cam_curve_interval"])
        self.evaluator = Evaluator(
            box=BoxAccumulator(interval, self.iou_thresholds),
            pxap=PxAPAccumulator(interval),
            peak=PeakAccumulator(),
            classic=ClassicLocAccumulator(evaluation["box_thresholds"]),
        )
        self.has_boxes = self.has_masks = False
        self.per_image: dict[str, list] | None = None

    def keep_per_image(self, thumbnails: Callable[[int], bool] = lambda index: False) -> Scorer:
        """Also keep every image's outcome under every protocol (``per_image_arrays``) and, for
        the images ``thumbnails(dataset index)`` selects, a small picture of its top-1 map."""
        for accumulator in self.evaluator.accumulators.values():
            accumulator.keep_per_image()
        self.per_image = {"index": [], "thumb_index": [], "thumbs": []}
        self._thumbnails = thumbnails
        return self

    # -- accumulation ------------------------------------------------------------------------
    def accumulate(self, batch: dict[str, Any], postprocessor: Callable) -> None:
        sizes = original_sizes(batch)
        top5 = batch["topk"]
        # One call per batch for the GT class and the top-k classes (SCG's self-correlation is
        # computed once for all of them); the metric kernels read the maps on the CPU.
        classes = torch.cat([batch["cams_gt"][:, None], batch["cams_topk"]], dim=1)
        maps = [m.cpu() for m in postprocessor(classes, batch["taps"], sizes)]
        gt_maps = [m[0] for m in maps]
        inputs: dict[str, Any] = {}
        boxes = [np.asarray(b, np.int64).reshape(-1, 4) for b in batch["boxes"]]
        if all(len(b) for b in boxes):
            self.has_boxes = True
            inputs.update(
                labels=batch["label"],
                top5=top5,
                loc_maps=[m[1:] for m in maps],
                gt_loc_maps=gt_maps,
                gt_boxes_original=boxes,
                gt_boxes=[
                    rescale_boxes(b, (w, h), (self.map_size, self.map_size))
                    for b, (h, w) in zip(boxes, sizes)
                ],
            )
        inputs["scoremaps"] = wsolevaluation_scoremaps(batch, postprocessor, self.map_size, gt_maps)
        if "mask" in batch:
            self.has_masks = True
            size = (self.map_size, self.map_size)
            inputs.update(
                gt_masks=np.stack([resize_mask(m, size) for m in batch["mask"]]),
                gt_ignore=np.stack([resize_mask(m, size) for m in batch["ignore"]]),
                peak_maps=gt_maps,
                peak_masks=list(batch["peak_mask"]),
            )
        self.evaluator.accumulate(inputs)
        if self.per_image is not None:
            self._keep_thumbnails(batch["index"], [m[1] for m in maps])  # the top-1 class

    def _keep_thumbnails(self, indices, top1_maps) -> None:
        indices = [int(i) for i in indices]
        self.per_image["index"].extend(indices)
        for index, top1 in zip(indices, top1_maps):
            if self._thumbnails(index):
                self.per_image["thumb_index"].append(index)
                self.per_image["thumbs"].append(map_thumbnail(top1.float().cpu().numpy()))

    def per_image_arrays(self) -> dict[str, np.ndarray]:
        """Per-image records in dataset order: ``index``; ``<accumulator>.<field>`` (see each
        accumulator's ``keep_per_image``); ``thumb_index`` with ``thumbs`` (M, 32, 32) uint8."""
        if self.per_image is None:
            return {}
        if "gathered" in self.per_image:
            return self.per_image["gathered"]
        arrays = {
            "index": np.asarray(self.per_image["index"], np.int64),
            "thumb_index": np.asarray(self.per_image["thumb_index"], np.int64),
            "thumbs": np.asarray(self.per_image["thumbs"], np.uint8).reshape(-1, THUMB, THUMB),
        }
        for name, accumulator in self.evaluator.accumulators.items():
            for key, value in accumulator.per_image_arrays().items():
                arrays[f"{name}.{key}"] = value
        order, thumb_order = (
            np.argsort(arrays["index"], kind="stable"),
            np.argsort(arrays["thumb_index"], kind="stable"),
        )
        return {
            key: value[thumb_order if key.startswith("thumb") else order]
            for key, value in arrays.items()
        }

    def all_reduce(self) -> Scorer:
        """Merge every rank's counts (exact: integer sums)."""
        if distributed.world_size() > 1:
            if self.per_image is not None:  # the counts' merge below drops per-image records
                parts = distributed.all_gather_objects(self.per_image_arrays())
                gathered = {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}
                order = np.argsort(gathered["index"], kind="stable")
                thumb_order = np.argsort(gathered["thumb_index"], kind="stable")
                self.per_image["gathered"] = {
                    key: value[thumb_order if key.startswith("thumb") else order]
                    for key, value in gathered.items()
                }
            states = distributed.all_gather_objects(self.evaluator.state_dict())
            merged = Evaluator.from_state_dict(states[0])
            for state in states[1:]:
                merged.merge(Evaluator.from_state_dict(state))
            self.evaluator = merged
            flags = distributed.all_gather_objects((self.has_boxes, self.has_masks))
            self.has_boxes = any(f[0] for f in flags)
            self.has_masks = any(f[1] for f in flags)
        return self

    # -- results -----------------------------------------------------------------------------
    def _computed(self) -> dict[str, dict]:
        accs = self.evaluator.accumulators
        out = {}
        if self.has_boxes:
            out["classic"] = accs["classic"].compute()
            out["box"] = accs["box"].compute()
        if self.has_masks:
            out["pxap"] = accs["pxap"].compute()
            out["peak"] = accs["peak"].compute()
        return out

    def best_box_threshold(self) -> float:
        """The spa protocol's box threshold with the best GT-known Loc (call on val)."""
        if not self.has_boxes:
            return float(self.evaluator.accumulators["classic"].thresholds[0])
        per = self.evaluator.accumulators["classic"].compute()["classic_per_threshold"]
        return float(max(per, key=lambda t: (per[t]["GTKnownLoc"], -float(t))))

    def rows(self, common: dict[str, Any], box_threshold: float) -> list[dict[str, Any]]:
        computed = self._computed()
        rows = []

        def add(protocol: str, metric: str, value: float) -> None:
            rows.append({**common, "protocol": protocol, "metric": metric, "value": float(value)})

        if "classic" in computed:
            classic = computed["classic"]
            at = classic["classic_per_threshold"][f"{box_threshold:g}"]
            add("spa", "top1_loc", at["Top1Loc"])
            add("spa", "top5_loc", at["Top5Loc"])
            add("spa", "gt_known_loc", at["GTKnownLoc"])
            add("spa", "top1_cls", classic["Top1Cls"])
            add("spa", "top5_cls", classic["Top5Cls"])
            for kind, metric in ERROR_METRICS.items():
                add("spa", metric, at[f"error_{kind}"])
            add("spa", "box_threshold", box_threshold)
            box = computed["box"]
            add("wsolevaluation", "MaxBoxAcc", box["MaxBoxAcc"])
            add("wsolevaluation", "MaxBoxAccV2", box["MaxBoxAccV2"])
            for delta, value in zip(box["iou_thresholds"], box["MaxBoxAccV2_per_iou"]):
                add("wsolevaluation", f"MaxBoxAccV2@{delta}", value)
        if "pxap" in computed:
            add("wsolevaluation", "PxAP", computed["pxap"]["PxAP"])
            add("peak", "PeakIoU", computed["peak"]["PeakIoU"])
            add("peak", "PeakT", computed["peak"]["PeakT"])
        return rows

    def curves(self, common: dict[str, Any]) -> list[dict[str, Any]]:
        computed = self._computed()
        curves = []
        if "box" in computed:
            box = computed["box"]
            for delta, ys in box["box_acc_curve_v2"].items():
                curves.append(
                    {
                        **common,
                        "curve": f"box_acc_v2@{delta}",
                        "x": box["box_cam_thresholds"],
                        "y": ys,
                    }
                )
        if "peak" in computed:
            curves.append(
                {
                    **common,
                    "curve": "peak_iou",
                    "x": list(range(256)),
                    "y": computed["peak"]["peak_iou_curve"],
                }
            )
            pxap = computed["pxap"]
            curves.append(
                {
                    **common,
                    "curve": "pxap_pr",
                    "x": pxap["pxap_recall"],
                    "y": pxap["pxap_precision"],
                }
            )
        return curves


THUMB = 32  # side of the map thumbnails kept for the report's failure browser


def map_thumbnail(score_map: np.ndarray) -> np.ndarray:
    """A map in [0, 1] as a THUMB x THUMB uint8 picture (area average; the browser stretches it
    over the image, whose aspect it had)."""
    small = cv2.resize(
        np.asarray(score_map, np.float32), (THUMB, THUMB), interpolation=cv2.INTER_AREA
    )
    return np.clip(np.rint(small * 255), 0, 255).astype(np.uint8)


def original_sizes(batch: dict[str, Any]) -> list[tuple[int, int]]:
    """(H, W) per image (datasets give (W, H), as PIL does)."""
    return [(int(h), int(w)) for (w, h) in batch["size"]]


def wsolevaluation_scoremaps(
    batch: dict[str, Any], postprocessor: Callable, map_size: int, originals=None
) -> torch.Tensor:
    """GT-class maps prepared as wsolevaluation's CAM computer does: bicubic resize to
    map_size x map_size, then min-max (NaN or constant -> zeros). Plain maps start from the raw
    CAM as upstream does; post-processed maps from their original-size output (`originals`,
    computed here when not given), so SCG's resize round trip goes through the original size;
    the post-processor says which (`scoremap_source`)."""
    size = (map_size, map_size)
    if originals is None:
        originals = postprocessor(batch["cams_gt"], batch["taps"], original_sizes(batch))
    sources = postprocessor.scoremap_source(batch["cams_gt"], originals)
    return torch.from_numpy(
        np.stack([minmax_normalize(m.double().cpu().numpy(), size) for m in sources])
    )
