"""The bas protocol: BAS's evaluation (wpy1999/BAS @ 54c395e, docs/protocols.md sec. 10).

``CUB/BAS_inference.py`` and ``ILSVRC/BAS_inference.py``: the GT class's map min-max without
eps in float32 then cv2 bilinear to 224 (``normalize_map``); ``s > t``, the 8-connected
component with most pixels (``measure.label``, ``count_max``: the first on ties) and its box
``[x0, y0, x1 + 1, y1 + 1]`` (``regionprops``), [0, 0, 224, 224] without one; GT boxes through
Resize 256 + CenterCrop 224 (``ResizedBBoxCrop``: ``x * (256 / W)``; ``CenterBBoxCrop``: clipped
to [16, 240], minus 16, over 224, times 224), kept as floats; IoU with +1 areas, the best GT box,
correct when > 0.5 (``utils/IoU.py``); the mean over classes of each class's share; a fixed
threshold per backbone: CUB 0.15 (0.1 for InceptionV3), ILSVRC 0.45 for ResNet50 (its default
backbone; 0.5 VGG16 / MobileNetV1, 0.3 InceptionV3: give --box-threshold).
"""

from __future__ import annotations

import cv2
import numpy as np

from wsolbench.evaluation.family_loc import iou_plus_one, largest_component_boxes
from wsolbench.evaluation.protocols.base import MapBatch, raw_array
from wsolbench.evaluation.protocols.family import FamilyProtocol, LocMetric, in_topk
from wsolbench.registry import register_protocol

CROP, RESIZE = 224, 256


def bas_scores(raw) -> np.ndarray:
    """``normalize_map``: min-max (float32, no eps: a constant map is NaN, so empty), then
    cv2 bilinear to 224."""
    cam = raw_array(raw)
    with np.errstate(invalid="ignore", divide="ignore"):
        cam = (cam - np.min(cam)) / (np.max(cam) - np.min(cam))
    return cv2.resize(cam, dsize=(CROP, CROP))


def bas_gt_boxes(boxes, image_size) -> np.ndarray:
    """GT boxes in the Resize 256 + CenterCrop 224 frame, as floats (BAS's two box crops)."""
    width, height = image_size
    rate_w, rate_h = RESIZE / width, RESIZE / height
    shift = int(round((RESIZE - CROP) / 2.0))
    out = []
    for x0, y0, x1, y1 in np.asarray(boxes, np.float64).reshape(-1, 4).tolist():
        box = [
            max(shift, x0 * rate_w),
            max(shift, y0 * rate_h),
            min(shift + CROP, x1 * rate_w),
            min(shift + CROP, y1 * rate_h),
        ]
        out.append([(v - shift) / CROP * CROP for v in box])
    return np.asarray(out, np.float64)


@register_protocol("bas")
class Bas(FamilyProtocol):
    """BAS's Top-1 / Top-5 / GT-known Loc, class-averaged (Wu et al., CVPR 2022)."""

    name = "bas"
    per_class = True
    metrics = (
        LocMetric("GTKnownLoc", "GT-known Loc", "GT-known Loc"),
        LocMetric("Top1Loc", "Top-1 Loc", "Top-1 Loc", predictions=True),
        LocMetric("Top5Loc", "Top-5 Loc", "Top-5 Loc", predictions=True),
    )
    fixed = {"cub": 0.15, "ilsvrc": 0.45}
    rules = {
        "frame": "Resize 256 + CenterCrop 224; GT x * (256 / W) clipped to [16, 240], minus 16, "
        "as floats",
        "preparation": "min-max in float32 without eps, then cv2 bilinear to 224",
        "box": "largest 8-connected component of s > t by pixel count, [x0, y0, x1 + 1, y1 + 1]; "
        "empty: [0, 0, 224, 224]",
        "iou": "> 0.5 on float GT boxes, +1 areas, best GT box",
        "averaging": "mean of the classes' accuracies",
        "threshold": "fixed per backbone: CUB 0.15, ILSVRC 0.45 (ResNet50)",
    }

    def image_hits(self, batch: MapBatch, index: int, label: int, topk) -> np.ndarray:
        boxes = largest_component_boxes(bas_scores(batch.sources[index]), self.thresholds)
        boxes[boxes[:, 0] < 0] = (0, 0, CROP, CROP)
        gt = bas_gt_boxes(batch.gt.boxes[index], batch.gt.sizes[index])
        hit = iou_plus_one(boxes, gt).max(1) > 0.5
        return np.stack(
            [hit, hit & (topk is not None and int(topk[0]) == label), hit & in_topk(label, topk, 5)]
        )
