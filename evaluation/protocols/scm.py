"""The scm protocol: SCM's evaluation (JiaweiGuo/SCM @ be5bdfa, docs/protocols.md sec. 10).

``tools_cam/test_cam.py`` ``val_loc_one_epoch`` -> ``count``: the top-5 predicted classes' maps
(``cams.tolist()``: float64) bilinear to 224 and min-max without eps (``resizeNorm``; a constant
map's NaN stops it in ``check_scoremap_validity``); ``uint8(255 s) > int(t * max)``, the
largest contour's box clipped to 223, [0, 0, 0, 0] without one (its copy of wsolevaluation's
``compute_bboxes_from_scoremaps``); GT boxes as TS-CAM's test datasets write them; IoU >= 0.5
with +1 areas (``calculate_multiple_iou``); the share of images; every metric at its own best
threshold of arange(0, 1, 0.01) on the evaluated split (``evaluate``).

Its "GT-Known" (``GT-Known_top-1``) is the box of the top-1 predicted class's map, right class
or not: ``GTKnownLoc`` here (needs predictions, and the top-1 class's map where it is not the
GT class). ``GTKnownLocGTMap`` is the same rule on the GT class's map (the GT-known of every
other family). Top-1 / Top-5 Loc need the right class, whose map is the GT class's.
"""

from __future__ import annotations

import cv2
import numpy as np

from wsolbench.errors import ScoreMapError
from wsolbench.evaluation.family_loc import largest_contour_boxes, wsolevaluation_iou
from wsolbench.evaluation.protocols.base import MapBatch, raw_array
from wsolbench.evaluation.protocols.family import FamilyProtocol, LocMetric, in_topk
from wsolbench.evaluation.protocols.tscam import tscam_gt_boxes
from wsolbench.registry import register_protocol

SIZE = 224  # RESHAPE_SIZE of test_cam.py


def scm_levels(raw) -> np.ndarray:
    """``resizeNorm`` then ``(scoremap * 255).astype(np.uint8)`` (float64: the network's
    float32 maps through ``tolist``); a constant map is refused as SCM's code refuses it."""
    cam = cv2.resize(raw_array(raw).astype(np.float64), (SIZE, SIZE))
    low, high = cam.min(), cam.max()
    if not high > low:
        raise ScoreMapError(
            "the scm protocol cannot score a constant map: its min-max is NaN, which SCM's "
            "test_cam.py refuses (check_scoremap_validity)"
        )
    return ((cam - low) / (high - low) * 255).astype(np.uint8)


@register_protocol("scm")
class Scm(FamilyProtocol):
    """SCM's Top-1 / Top-5 / GT-known Loc, each at its best threshold (Bai et al., ECCV 2022)."""

    name = "scm"
    metrics = (
        LocMetric(
            "GTKnownLoc",
            "GT-known Loc (top-1 class's map, SCM's rule)",
            "",
            predictions=True,
            top1_map=True,
        ),
        LocMetric("GTKnownLocGTMap", "GT-known Loc (GT class's map)", "GT-known Loc"),
        LocMetric("Top1Loc", "Top-1 Loc", "Top-1 Loc", predictions=True),
        LocMetric("Top5Loc", "Top-5 Loc", "Top-5 Loc", predictions=True),
    )
    rules = {
        "frame": "Resize 224, no crop; GT as tscam",
        "preparation": "bilinear to 224 in float64, min-max without eps (constant: refused)",
        "box": "largest contour of uint8(255 s) > int(t * max), clipped to 223; empty: "
        "[0, 0, 0, 0]",
        "iou": ">= 0.5, +1 areas, best GT box; GT-known reads the top-1 class's map",
        "averaging": "images",
        "threshold": "best of arange(0, 1, 0.01) on the evaluated split, per metric",
    }

    def scan(self) -> np.ndarray:
        return np.arange(0, 1, 0.01)  # cam_curve_interval = .01, as list(np.arange(...))

    def _hits(self, raw, gt) -> np.ndarray:
        levels = scm_levels(raw)
        peak = np.max(levels)
        boxes = largest_contour_boxes(levels, [int(t * peak) for t in self.thresholds], clip=True)
        boxes[boxes[:, 0] < 0] = 0
        return wsolevaluation_iou(boxes, gt).max(1) >= 50 / 100

    def image_hits(self, batch: MapBatch, index: int, label: int, topk) -> np.ndarray:
        gt = tscam_gt_boxes(batch.gt.boxes[index], batch.gt.sizes[index], SIZE)
        on_gt = self._hits(batch.sources[index], gt)
        top1 = None if topk is None else int(topk[0])
        if top1 == label:
            on_top1 = on_gt
        elif top1 is not None and batch.top1_sources is not None:
            source = batch.top1_sources[index]
            on_top1 = on_gt & False if source is None else self._hits(source, gt)
        else:
            on_top1 = on_gt & False  # undefined: the metric is dropped (``available``)
        return np.stack([on_top1, on_gt, on_gt & (top1 == label), on_gt & in_topk(label, topk, 5)])
