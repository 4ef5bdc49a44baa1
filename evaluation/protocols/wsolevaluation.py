"""The wsolevaluation protocol: MaxBoxAcc, MaxBoxAccV2 and PxAP (clovaai/wsolevaluation @ 96f4b88,
docs/protocols.md sec. 2-3).

The GT class's map bicubic-resized to ``map_size`` and min-max normalized; GT boxes rescaled to
the map by truncation; foreground = any instance > 0.5, ignore = ignore PNG > 0.5 outside it,
both nearest-resized to the map; the best CAM threshold per IoU threshold on the split.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from wsolbench import defaults
from wsolbench.evaluation.box_metrics import BoxAccumulator
from wsolbench.evaluation.boxes import rescale_boxes
from wsolbench.evaluation.mask_metrics import PxAPAccumulator
from wsolbench.evaluation.per_image import CountMetric
from wsolbench.evaluation.protocols.base import (
    ColumnSpec,
    MapBatch,
    MetricSpec,
    Protocol,
    TableSpec,
    resize_nearest,
    stacked,
)
from wsolbench.evaluation.resampling import (
    Statistic,
    distinct_columns,
    max_percent,
    pxap,
    split_pair,
)
from wsolbench.evaluation.scoremaps import minmax_normalize
from wsolbench.registry import register_protocol


@register_protocol("wsolevaluation")
class WsolEvaluation(Protocol):
    """MaxBoxAcc and MaxBoxAccV2 from boxes, PxAP from masks (wsolevaluation, Choe et al. 2020).

    clovaai/wsolevaluation: maps bicubic-resized to map_size and min-max normalized."""

    name = "wsolevaluation"
    rules = {
        "frame": "Resize 224, no crop; GT int(x * 224 / W)",
        "preparation": "bicubic 224, then min-max in float64 (NaN / constant -> 0)",
        "box": "largest contour (V1) or every contour (V2) of uint8(255 s) > int(t * max), "
        "clipped to 223; empty: [0, 0, 0, 0]",
        "iou": ">= delta, +1 areas, any GT box",
        "averaging": "images",
        "threshold": "best of arange(0, 1, interval) on the evaluated split, per IoU threshold",
    }

    def __init__(
        self,
        map_size: int = defaults.MAP_SIZE,
        cam_curve_interval: float = defaults.CAM_CURVE_INTERVAL,
        iou_thresholds: Sequence[int] = defaults.IOU_THRESHOLDS,
    ):
        self.map_size = int(map_size)
        self.cam_curve_interval = float(cam_curve_interval)
        self.iou_thresholds = tuple(int(d) for d in iou_thresholds)

    def specs(self) -> tuple[MetricSpec, ...]:
        return (
            MetricSpec("MaxBoxAcc", "MaxBoxAcc"),
            MetricSpec("MaxBoxAccV2", "MaxBoxAccV2", headline=5, quantity="MaxBoxAccV2"),
            *(MetricSpec(f"MaxBoxAccV2@{d}", f"IoU {d}") for d in self.iou_thresholds),
            MetricSpec("PxAP", "PxAP", headline=6, quantity="PxAP"),
        )

    # map preparation
    def prepare(self, source) -> np.ndarray:
        """One map prepared as wsolevaluation's CAM computer does: bicubic resize to map_size x
        map_size, then min-max in float64 (NaN or constant -> zeros)."""
        return minmax_normalize(source, (self.map_size, self.map_size))

    def scoremaps(self, sources: Sequence[torch.Tensor]) -> torch.Tensor:
        """(N, map_size, map_size) float64 score maps from raw maps of any sizes; tensors go
        through float64 first, as upstream's ``t2n`` casts the CAM before resizing."""
        return torch.from_numpy(
            np.stack([self.prepare(torch.as_tensor(m).double().cpu().numpy()) for m in sources])
        )

    # ground-truth rules
    @staticmethod
    def gt_boxes(boxes: np.ndarray, image_size: tuple[int, int], map_shape) -> np.ndarray:
        """Boxes from the original (width, height) to a map of ``map_shape`` (H, W), truncating."""
        height, width = map_shape[-2:]
        return rescale_boxes(boxes, image_size, (width, height))

    @staticmethod
    def gt_masks(mask: np.ndarray, ignore: np.ndarray | None, map_shape) -> tuple:
        """Foreground (any instance > 0.5) and ignore (ignore PNG > 0.5, not foreground), both
        resized to the map by nearest neighbour."""
        shape = tuple(map_shape[-2:])
        foreground = resize_nearest(np.asarray(mask) > 0.5, shape)
        if ignore is None:
            return foreground, np.zeros(shape, bool)
        return foreground, resize_nearest(np.asarray(ignore) > 0.5, shape) & ~foreground

    def create_metrics(self, boxes: bool, masks: bool) -> dict[str, CountMetric]:
        metrics: dict[str, CountMetric] = {}
        if boxes:
            metrics["box"] = BoxAccumulator(self.cam_curve_interval, self.iou_thresholds)
        if masks:
            metrics["pxap"] = PxAPAccumulator(self.cam_curve_interval)
        return metrics

    def update(self, metrics: Mapping[str, CountMetric], batch: MapBatch) -> None:
        scoremaps = batch.scoremaps
        if scoremaps is None:
            scoremaps = self.scoremaps(batch.sources)
        gt = batch.gt
        if "box" in metrics:
            boxes = [
                self.gt_boxes(b, size, m.shape) for b, size, m in zip(gt.boxes, gt.sizes, scoremaps)
            ]
            metrics["box"].update(scoremaps, boxes)
        if "pxap" in metrics:
            ignores = gt.ignore if gt.ignore is not None else [None] * len(gt.masks)
            masks = [
                self.gt_masks(*pair, m.shape) for m, pair in zip(scoremaps, zip(gt.masks, ignores))
            ]
            metrics["pxap"].update(
                stacked(scoremaps),
                np.stack([fg for fg, _ in masks]),
                np.stack([ignore for _, ignore in masks]),
            )

    def results(self, computed: Mapping[str, dict], choice: Mapping | None = None) -> dict:
        out = {}
        if "box" in computed:
            box = computed["box"]
            out["MaxBoxAcc"] = box["MaxBoxAcc"]
            out["MaxBoxAccV2"] = box["MaxBoxAccV2"]
            for delta, value in zip(box["iou_thresholds"], box["MaxBoxAccV2_per_iou"]):
                out[f"MaxBoxAccV2@{delta}"] = value
        if "pxap" in computed:
            out["PxAP"] = computed["pxap"]["PxAP"]
        return out

    def curves(self, computed: Mapping[str, dict]) -> list[tuple[str, list, list]]:
        out = []
        if "box" in computed:
            box = computed["box"]
            for delta, ys in box["box_acc_curve_v2"].items():
                out.append((f"box_acc_v2@{delta}", box["box_cam_thresholds"], ys))
        if "pxap" in computed:
            pxap = computed["pxap"]
            out.append(("pxap_pr", pxap["pxap_recall"], pxap["pxap_precision"]))
        return out

    # -- per-image records ----------------------------------------------------------------------
    def record_meta(self, metrics: Mapping[str, CountMetric], choice: Mapping | None) -> dict:
        meta: dict = {}
        if "box" in metrics:
            box = metrics["box"]
            meta.update(
                cam_thresholds=[float(t) for t in box.thresholds],
                deltas=[int(d) for d in box.deltas],
                iou_thresholds=list(box.iou_thresholds),
            )
        if "pxap" in metrics:
            meta["pxap_edges"] = [float(e) for e in metrics["pxap"].edges]
        return meta

    def statistics(self, arrays: Mapping[str, np.ndarray], meta: Mapping) -> dict[str, Statistic]:
        out: dict[str, Statistic] = {}
        if "box.correct_v1" in arrays:
            deltas, count = list(meta["deltas"]), len(meta["cam_thresholds"])
            v1 = distinct_columns(arrays["box.correct_v1"][:, deltas.index(50)], count)
            out["MaxBoxAcc"] = Statistic(v1, max_percent)
            for delta in meta["iou_thresholds"]:
                columns = distinct_columns(arrays["box.correct_v2"][:, deltas.index(delta)], count)
                out[f"MaxBoxAccV2@{delta}"] = Statistic(columns, max_percent)
            out["MaxBoxAccV2"] = Statistic(
                None, parts=tuple(out[f"MaxBoxAccV2@{d}"] for d in meta["iou_thresholds"])
            )
        if "pxap.foreground" in arrays:
            fg, bg = arrays["pxap.foreground"], arrays["pxap.background"]
            out["PxAP"] = Statistic(
                np.concatenate([fg, bg], 1).astype(np.float64), split_pair(pxap, fg.shape[1])
            )
        return out

    # -- report ---------------------------------------------------------------------------------
    def tables(self) -> tuple[TableSpec, ...]:
        return (
            TableSpec(
                "wsolevaluation",
                "MaxBoxAcc, MaxBoxAccV2 and PxAP (wsolevaluation, Choe et al. 2020)",
                "wsolevaluation protocol: best threshold per IoU on the split; "
                "MaxBoxAccV2 = mean over IoU 30/50/70 with all contours; PxAP from masks.",
                tuple(ColumnSpec(self.name, spec.name) for spec in self.specs()),
                order=60,
            ),
        )
