"""The tscam protocol: TS-CAM's evaluation (vasgaowei/TS-CAM @ 25aece4, docs/protocols.md sec. 10).

``tools_cam/test_cam.py`` -> ``lib/cams_deit.py`` ``evaluate_cls_loc``: the GT class's map
(and each top-5 class's: only the GT class's can be correct) resized by cv2 bilinear to 224 in
float32, min-max without eps (``resize_cam``); ``uint8(255 s) > int(t * max)``, the largest
contour's ``[x, y, x + w, y + h]`` unclipped, [0, 0, 1, 1] without one (``get_bboxes``); GT
boxes in the resized frame, ``int(max(x0 / W * 224, 0))`` .. ``int(min(x1 / W * 224, 223))``
(``lib/datasets/cub.py``, ``imagenet.py``); IoU with +1 areas, the best over GT boxes
(``cal_iou``); GT-known >= 0.5, Top-1 / Top-5 > 0.5 (``cls_loc_err``); the share of images
(``list2acc``); one fixed threshold, ``MODEL.CAM_THR`` of its configs: CUB 0.1, ILSVRC 0.12.
A constant map gives NaN after the min-max, cast to uint8 as 0 (x86): no contour.
"""

from __future__ import annotations

import cv2
import numpy as np

from wsolbench import defaults
from wsolbench.evaluation.family_loc import iou_plus_one, largest_contour_boxes
from wsolbench.evaluation.protocols.base import MapBatch, raw_array
from wsolbench.evaluation.protocols.family import FamilyProtocol, LocMetric, in_topk
from wsolbench.registry import register_protocol


def tscam_levels(raw, size: int = 224) -> np.ndarray:
    """``resize_cam`` then ``(cam * 255.).astype(np.uint8)``: bilinear in float32, min-max
    without eps; a constant map (NaN after the min-max) gives zeros, as it casts on x86."""
    cam = cv2.resize(raw_array(raw), (size, size))
    low, high = cam.min(), cam.max()
    if not high > low:
        return np.zeros((size, size), np.uint8)
    return ((cam - low) / (high - low) * 255.0).astype(np.uint8)


def tscam_gt_boxes(boxes, image_size, size: int = 224) -> np.ndarray:
    """GT boxes in the frame of the image resized to ``size`` (no crop), truncated, clipped to
    [0, size - 1] as TS-CAM's test datasets write them."""
    width, height = image_size
    out = []
    for x0, y0, x1, y1 in np.asarray(boxes, np.float64).reshape(-1, 4):
        out.append(
            [
                int(max(x0 / width * size, 0)),
                int(max(y0 / height * size, 0)),
                int(min(x1 / width * size, size - 1)),
                int(min(y1 / height * size, size - 1)),
            ]
        )
    return np.asarray(out, np.int64)


@register_protocol("tscam")
class TsCam(FamilyProtocol):
    """TS-CAM's Top-1 / Top-5 / GT-known Loc at its fixed threshold (Gao et al., ICCV 2021)."""

    name = "tscam"
    metrics = (
        LocMetric("GTKnownLoc", "GT-known Loc", "GT-known Loc"),
        LocMetric("Top1Loc", "Top-1 Loc", "Top-1 Loc", predictions=True),
        LocMetric("Top5Loc", "Top-5 Loc", "Top-5 Loc", predictions=True),
    )
    fixed = {"cub": 0.1, "ilsvrc": 0.12}
    rules = {
        "frame": "Resize 224, no crop; GT int(max(x0 / W * 224, 0)) .. int(min(x1 / W * 224, 223))",
        "preparation": "cv2 bilinear to 224 in float32, min-max without eps",
        "box": "largest contour of uint8(255 s) > int(t * max), [x, y, x + w, y + h] unclipped; "
        "empty: [0, 0, 1, 1]",
        "iou": "GT-known >= 0.5, Top-1 / Top-5 > 0.5; +1 areas, best GT box",
        "averaging": "images",
        "threshold": "fixed: CUB 0.1, ILSVRC 0.12",
    }

    def __init__(
        self,
        dataset: str = defaults.FAMILY_DATASET,
        box_threshold: float | None = None,
        map_size: int = 224,
    ):
        self.map_size = int(map_size)  # 224; GenPromp's copy of this code runs it at 512
        super().__init__(dataset, box_threshold)

    def image_hits(self, batch: MapBatch, index: int, label: int, topk) -> np.ndarray:
        levels = tscam_levels(batch.sources[index], self.map_size)
        peak = np.max(levels)
        cuts = [int(t * peak) for t in self.thresholds]
        boxes = largest_contour_boxes(levels, cuts, clip=False)
        boxes[boxes[:, 0] < 0] = (0, 0, 1, 1)
        gt = tscam_gt_boxes(batch.gt.boxes[index], batch.gt.sizes[index], self.map_size)
        best = np.maximum(iou_plus_one(boxes, gt).max(1), 0.0)
        hit = best > 0.5
        return np.stack(
            [
                best >= 0.5,
                hit & (topk is not None and int(topk[0]) == label),
                hit & in_topk(label, topk, 5),
            ]
        )
