"""The dawsol protocol: DA-WSOL's evaluation (zh460045050/DA-WSOL_CVPR2022 @ d60e8ea, a fork of
wsolevaluation; docs/protocols.md sec. 10).

``libs/inference.py`` ``CAMComputer``: the GT class's map min-max normalized per map at feature
resolution in float32 by the classifier (``normalize_tensor``, libs/wsol/util.py; NaN when
constant), cast to float64 (``t2n``), cv2 bicubic to 224, then ``normalize_scoremap`` (NaN or
constant -> 0); ``libs/evaluation.py`` ``BoxEvaluator`` with every contour's box (the released
scripts' ``--box_v2_metric True``), clipped to 223, GT ``int(x * 224 / W)``, IoU >= delta with +1
areas: ``GTKnownLoc`` = the best of arange(0, 1, 0.001) at IoU 50 (``compute``), ``Top1Loc`` the
same over the images whose top-1 class is right (``compute_top1``), ``MaxBoxAccV2`` the mean
over IoU 30 / 50 / 70 (libs/solver.py); with masks (CUB: its CUBMask metadata) ``PxAP`` and
``pIoU``, the best pixel IoU over the thresholds (``MaskEvaluator``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from wsolbench.evaluation.box_metrics import BoxAccumulator
from wsolbench.evaluation.mask_metrics import PxAPAccumulator
from wsolbench.evaluation.per_image import CountMetric
from wsolbench.evaluation.protocols.base import (
    MapBatch,
    MetricSpec,
    Protocol,
    raw_array,
    stacked,
    threshold_key,
)
from wsolbench.evaluation.protocols.wsolevaluation import WsolEvaluation
from wsolbench.evaluation.resampling import (
    Statistic,
    distinct_columns,
    max_percent,
    pixel_iou,
    pxap,
    split_pair,
)
from wsolbench.evaluation.scoremaps import minmax_normalize
from wsolbench.registry import register_protocol


def dawsol_scoremap(raw, size: int = 224) -> np.ndarray:
    """``normalize_tensor`` (float32, per map) -> float64 -> bicubic -> ``normalize_scoremap``."""
    cam = torch.from_numpy(raw_array(raw))
    cam = torch.div(cam - cam.min(), cam.max() - cam.min())
    return minmax_normalize(cam.numpy().astype(np.float64), (size, size))


class DawsolBoxAccumulator(BoxAccumulator):
    """wsolevaluation's box counts, plus the counts over the images whose top-1 class is right
    (``BoxEvaluator.num_correct_top1``) and each image's ``top1_correct``."""

    record_fields = {**BoxAccumulator.record_fields, "top1_correct": bool}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.add_count("correct_v2_top1", (len(self.thresholds), len(self.deltas)))
        self.add_count("predicted")

    def update(self, scoremaps, gt_boxes: Sequence, top1_correct=None) -> None:
        v1, v2 = self._hits(scoremaps, gt_boxes)
        self._add(v1, v2)
        correct = np.zeros(len(v2), bool) if top1_correct is None else np.asarray(top1_correct)
        self.add_counts("correct_v2_top1", v2[correct].sum(0, dtype=np.int64))
        self.add_counts("predicted", 0 if top1_correct is None else len(v2))
        if self.keeps_per_image:
            self.per_image_top1_correct.append(torch.from_numpy(correct))

    def add_record(self, record) -> None:  # the box records; top1_correct is added in update
        if self.keeps_per_image:
            for field in BoxAccumulator.record_fields:
                value = np.asarray(record[field], self.record_fields[field])
                getattr(self, "per_image_" + field).append(torch.from_numpy(value))

    def compute(self) -> dict:
        out = super().compute()
        count = out["box_num_images"]
        column = list(self.deltas).index(50)
        top1 = 100.0 * self.correct_v2_top1.cpu().numpy()[:, column] / count
        out["top1_curve"] = top1.tolist()
        out["predicted"] = int(self.predicted) == count
        return out


class DawsolMaskAccumulator(PxAPAccumulator):
    """PxAP and pIoU (``MaskEvaluator.compute``: the best of ``tp / (fp + fn + tp)``)."""

    def compute(self) -> dict:
        out = super().compute()
        fg = self.foreground.cpu().numpy()[None].astype(np.float64)
        bg = self.background.cpu().numpy()[None].astype(np.float64)
        out["pIoU"] = float(pixel_iou(fg, bg)[0])
        return out


@register_protocol("dawsol")
class DaWsol(Protocol):
    """DA-WSOL's GT-known / Top-1 Loc, MaxBoxAccV2, PxAP and pIoU (Zhu et al., CVPR 2022)."""

    name = "dawsol"
    rules = {
        "frame": "Resize 224, no crop; GT int(x * 224 / W)",
        "preparation": "min-max per map at feature resolution (float32), bicubic 224, min-max "
        "(NaN / constant -> 0)",
        "box": "every contour's box (V2) of uint8(255 s) > int(t * max), clipped to 223",
        "iou": ">= 0.5, +1 areas, any GT box",
        "averaging": "images",
        "threshold": "best of arange(0, 1, 0.001) on the evaluated split, per metric",
    }

    def __init__(self, cam_curve_interval: float = 0.001, iou_thresholds=(30, 50, 70)):
        self.cam_curve_interval = float(cam_curve_interval)
        self.iou_thresholds = tuple(int(d) for d in iou_thresholds)

    def specs(self) -> tuple[MetricSpec, ...]:
        return (
            MetricSpec("GTKnownLoc", "GT-known Loc", quantity="GT-known Loc"),
            MetricSpec("Top1Loc", "Top-1 Loc", quantity="Top-1 Loc"),
            MetricSpec("MaxBoxAccV2", "MaxBoxAccV2", quantity="MaxBoxAccV2"),
            MetricSpec("PxAP", "PxAP", quantity="PxAP"),
            MetricSpec("pIoU", "pIoU"),
        )

    def create_metrics(self, boxes: bool, masks: bool) -> dict[str, CountMetric]:
        out: dict[str, CountMetric] = {}
        if boxes:
            out["dawsol"] = DawsolBoxAccumulator(self.cam_curve_interval, self.iou_thresholds)
        if masks:
            out["dawsol_mask"] = DawsolMaskAccumulator(self.cam_curve_interval)
        return out

    def update(self, metrics: Mapping[str, CountMetric], batch: MapBatch) -> None:
        scoremaps = [dawsol_scoremap(m) for m in batch.sources]
        gt = batch.gt
        if "dawsol" in metrics:
            boxes = [
                WsolEvaluation.gt_boxes(b, size, m.shape)
                for b, size, m in zip(gt.boxes, gt.sizes, scoremaps)
            ]
            correct = None
            if batch.topk is not None:
                labels = np.asarray(batch.labels).reshape(-1)
                top1 = np.asarray(batch.topk).reshape(len(labels), -1)[:, 0]
                correct = top1 == labels
            metrics["dawsol"].update(stacked(scoremaps), boxes, correct)
        if "dawsol_mask" in metrics:
            ignores = gt.ignore if gt.ignore is not None else [None] * len(gt.masks)
            masks = [
                WsolEvaluation.gt_masks(*pair, m.shape)
                for m, pair in zip(scoremaps, zip(gt.masks, ignores))
            ]
            metrics["dawsol_mask"].update(
                stacked(scoremaps),
                np.stack([fg for fg, _ in masks]),
                np.stack([ignore for _, ignore in masks]),
            )

    def results(self, computed: Mapping[str, dict], choice: Mapping | None = None) -> dict:
        out = {}
        if "dawsol" in computed:
            box = computed["dawsol"]
            out["GTKnownLoc"] = box["MaxBoxAccV2_per_iou"][box["iou_thresholds"].index(50)]
            if box["predicted"]:
                out["Top1Loc"] = max(box["top1_curve"])
            out["MaxBoxAccV2"] = box["MaxBoxAccV2"]
        if "dawsol_mask" in computed:
            out["PxAP"] = computed["dawsol_mask"]["PxAP"]
            out["pIoU"] = computed["dawsol_mask"]["pIoU"]
        return out

    def per_threshold(self, computed: Mapping[str, dict]) -> dict[str, dict[str, float]]:
        if "dawsol" not in computed:
            return {}
        box = computed["dawsol"]
        keys = [threshold_key(t) for t in box["box_cam_thresholds"]]
        out = {"GTKnownLoc": dict(zip(keys, box["box_acc_curve_v2"]["50"]))}
        if box["predicted"]:
            out["Top1Loc"] = dict(zip(keys, box["top1_curve"]))
        return out

    # -- per-image records ----------------------------------------------------------------------
    def record_meta(self, metrics: Mapping[str, CountMetric], choice: Mapping | None) -> dict:
        if "dawsol" not in metrics:
            return {}
        box = metrics["dawsol"]
        return {
            "dawsol.thresholds": [float(t) for t in box.thresholds],
            "dawsol.deltas": [int(d) for d in box.deltas],
            "dawsol.iou_thresholds": list(box.iou_thresholds),
        }

    def statistics(self, arrays: Mapping[str, np.ndarray], meta: Mapping) -> dict[str, Statistic]:
        out: dict[str, Statistic] = {}
        if "dawsol.correct_v2" in arrays:
            deltas, count = list(meta["dawsol.deltas"]), len(meta["dawsol.thresholds"])
            per_iou = {
                d: distinct_columns(arrays["dawsol.correct_v2"][:, deltas.index(d)], count)
                for d in meta["dawsol.iou_thresholds"]
            }
            out["GTKnownLoc"] = Statistic(per_iou[50], max_percent)
            out["MaxBoxAccV2"] = Statistic(
                None, parts=tuple(Statistic(columns, max_percent) for columns in per_iou.values())
            )
            bits = np.unpackbits(
                arrays["dawsol.correct_v2"][:, deltas.index(50)], axis=-1, count=count
            )
            bits &= arrays["dawsol.top1_correct"].astype(np.uint8)[:, None]
            out["Top1Loc"] = Statistic(
                distinct_columns(np.packbits(bits, axis=-1), count), max_percent
            )
        if "dawsol_mask.foreground" in arrays:
            fg, bg = arrays["dawsol_mask.foreground"], arrays["dawsol_mask.background"]
            rows = np.concatenate([fg, bg], 1).astype(np.float64)
            out["PxAP"] = Statistic(rows, split_pair(pxap, fg.shape[1]))
            out["pIoU"] = Statistic(rows, split_pair(pixel_iou, fg.shape[1]))
        return out
