"""The peak protocol: Peak-IoU and Peak-T of the LID challenge as SEM and SPA use it
(MsterDC/SPA2Net @ 445f981 ``utils/val_mask``, docs/protocols.md sec. 6).

The GT class's map at the original size against foreground = any instance > 128 at the mask's
own size; the best pooled IoU over the 256 map levels.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from wsolbench.evaluation.peak import LEVELS, PeakAccumulator
from wsolbench.evaluation.per_image import CountMetric
from wsolbench.evaluation.protocols.base import (
    ColumnSpec,
    MapBatch,
    MetricSpec,
    Protocol,
    TableSpec,
)
from wsolbench.evaluation.resampling import Statistic, peak_curve, split_pair
from wsolbench.registry import register_protocol


@register_protocol("peak")
class Peak(Protocol):
    """Peak-IoU and Peak-T: the best pooled IoU over 256 map levels (SEM, SPA2Net).

    MsterDC/SPA2Net's val_mask: the map at the original size against masks > 128."""

    name = "peak"
    rules = {
        "frame": "the mask's own size",
        "preparation": "uint8(255 (s - min) / (max - min + 1e-10)), bilinear as uint8",
        "box": "none (pixels: GT = mask > 128)",
        "iou": "pooled pixel IoU tp / (fg + fp)",
        "averaging": "pixels pooled over the split",
        "threshold": "best of the 256 levels on the evaluated split",
    }
    mask_threshold = 128  # foreground: any instance > 128 (SPA2Net's val_mask)

    def specs(self) -> tuple[MetricSpec, ...]:
        return (
            MetricSpec("PeakIoU", "Peak-IoU", headline=4, quantity="Peak-IoU"),
            MetricSpec("PeakT", "Peak-T", better=0, decimals=0),
        )

    def gt_mask(self, mask: np.ndarray) -> np.ndarray:
        return np.asarray(mask) > self.mask_threshold

    def create_metrics(self, boxes: bool, masks: bool) -> dict[str, CountMetric]:
        return {"peak": PeakAccumulator()} if masks else {}

    def update(self, metrics: Mapping[str, CountMetric], batch: MapBatch) -> None:
        if "peak" in metrics:
            metrics["peak"].update(batch.gt_maps(), [self.gt_mask(m) for m in batch.gt.masks])

    def results(self, computed: Mapping[str, dict], choice: Mapping | None = None) -> dict:
        if "peak" not in computed:
            return {}
        return {"PeakIoU": computed["peak"]["PeakIoU"], "PeakT": computed["peak"]["PeakT"]}

    def curves(self, computed: Mapping[str, dict]) -> list[tuple[str, list, list]]:
        if "peak" not in computed:
            return []
        return [("peak_iou", list(range(LEVELS)), computed["peak"]["peak_iou_curve"])]

    def statistics(self, arrays: Mapping[str, np.ndarray], meta: Mapping) -> dict[str, Statistic]:
        if "peak.foreground" not in arrays:
            return {}
        fg, bg = arrays["peak.foreground"], arrays["peak.background"]
        rows = np.concatenate([fg, bg], 1).astype(np.float64)
        width = fg.shape[1]
        return {
            "PeakIoU": Statistic(
                rows, split_pair(lambda f, b: 100.0 * peak_curve(f, b).max(1), width)
            ),
            "PeakT": Statistic(
                rows, split_pair(lambda f, b: peak_curve(f, b).argmax(1).astype(float), width)
            ),
        }

    def tables(self) -> tuple[TableSpec, ...]:
        return (
            TableSpec(
                "peak",
                "Peak-IoU, Peak-T and GT-known Loc, plain and + SCG (SPA Table 3 style)",
                "Peak-IoU / Peak-T: peak protocol (pooled IoU over 256 levels); "
                "GT-known Loc: spa protocol (IoU > 0.5).",
                (
                    ColumnSpec(self.name, "PeakIoU"),
                    ColumnSpec(self.name, "PeakT"),
                    ColumnSpec("spa", "GTKnownLoc"),
                ),
                order=10,
                requires=("PeakIoU", "PeakT"),
            ),
        )
