"""Classic Top-1 / Top-5 / GT-known localization and the five-way error analysis (spa protocol,
docs/protocols.md sec. 4 and 5), kept as integer counts per box threshold so that a threshold can be
chosen on val."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from wsolbench import defaults
from wsolbench.errors import WsolbenchError
from wsolbench.evaluation.boxes import as_tensor, overlap_ratios
from wsolbench.evaluation.per_image import CountMetric

ERROR_TYPES = ("cls", "m-ins", "part", "more", "ot")
OUTCOMES = ("correct",) + ERROR_TYPES  # per-image outcome codes 0..5 (``keep_per_image``)


def union_boxes(maps, threshold: float) -> torch.Tensor:
    """Tight inclusive box ``(x0, y0, x1, y1)`` around ALL pixels ``>= threshold`` of each map
    ``(N, H, W)`` (no connected components); an empty map gives ``(0, 0, 0, 0)``. Runs on the
    maps' device and returns int64 boxes there."""
    return union_boxes_at(maps, [threshold])[0]


def union_boxes_at(maps, thresholds: Sequence[float]) -> torch.Tensor:
    """``union_boxes`` for several thresholds at once: ``(T, N, 4)``.

    A column holds a pixel ``>= t`` exactly when its maximum is ``>= t``, so the row and column
    maxima (computed once) give the boxes of every threshold without touching the map again."""
    maps = as_tensor(maps)
    if maps.dim() == 2:
        maps = maps[None]
    height, width = maps.shape[1], maps.shape[2]
    levels = torch.as_tensor(thresholds, dtype=maps.dtype, device=maps.device).reshape(-1, 1, 1)
    cols = maps.amax(1)[None] >= levels  # (T, N, W)
    rows = maps.amax(2)[None] >= levels  # (T, N, H)
    x_index = torch.arange(width, device=maps.device)
    y_index = torch.arange(height, device=maps.device)
    big = max(width, height)
    x0 = torch.where(cols, x_index, big).amin(2)
    x1 = torch.where(cols, x_index, -1).amax(2)
    y0 = torch.where(rows, y_index, big).amin(2)
    y1 = torch.where(rows, y_index, -1).amax(2)
    boxes = torch.stack([x0, y0, x1, y1], 2)
    empty = ~cols.any(2)
    return torch.where(empty[..., None], torch.zeros_like(boxes), boxes)


def localization_error_type(pred_label: int, pred_box, gt_label: int, gt_boxes) -> str:
    """Classify the top-1 prediction: "correct", "cls", "m-ins", "part", "more" or "ot".

    Checks in the spa supplementary's order (first match wins): wrong class; IoU > 0.5 with any
    GT box; several GT boxes of which more than one is covered with IoG > 0.3; then, against the
    GT box of highest IoU (the first on ties): IoP > 0.5 (part), IoG >= 0.7 (more), other.
    """
    if int(pred_label) != int(gt_label):
        return "cls"
    gt = np.asarray(gt_boxes, np.int64).reshape(-1, 4)
    iou, iog, iop = overlap_ratios(pred_box, gt)
    if iou.max() > 0.5:
        return "correct"
    if len(gt) > 1 and int((iog > 0.3).sum()) > 1:
        return "m-ins"
    best = int(iou.argmax())
    if iop[best] > 0.5:
        return "part"
    if iog[best] >= 0.7:
        return "more"
    return "ot"


def _correct(box, gt: np.ndarray) -> bool:
    return bool(overlap_ratios(box, gt)[0].max() > 0.5)


class ClassicLocAccumulator(CountMetric):
    """Counts per box threshold: Top-1/Top-5/GT-known Loc and the error types of Top-1;
    ``compute`` returns them per threshold and at the best Top-1 Loc threshold (a dict)."""

    higher_is_better = True
    record_fields = {
        "outcome": np.uint8,
        "top5_loc": bool,
        "gt_known_loc": bool,
        "top1_box": np.int32,
        "top1_cls": bool,
        "top5_cls": bool,
        "top1_class": np.int32,
    }

    def __init__(self, thresholds: Sequence[float] = defaults.BOX_THRESHOLDS, **kwargs):
        super().__init__(**kwargs)
        self.thresholds = np.asarray(thresholds, np.float64).reshape(-1)
        t = len(self.thresholds)
        for name in ("top1_loc", "top5_loc", "gt_known_loc"):
            self.add_count(name, [t])
        self.add_count("errors", [t, len(ERROR_TYPES)])
        for name in ("top1_cls", "top5_cls", "count"):
            self.add_count(name)

    def settings(self) -> dict:
        return {"thresholds": self.thresholds.tolist()}

    def keep_per_image(self) -> ClassicLocAccumulator:
        """Also keep, per image: ``outcome`` (N, T) uint8 index into ``OUTCOMES`` (correct or
        the error type of the top-1 prediction), ``top5_loc`` / ``gt_known_loc`` (N, T) bool,
        ``top1_box`` (N, T, 4) int32 original pixels, ``top1_cls`` / ``top5_cls`` (N,) bool and
        ``top1_class`` (N,) int32 (``per_image_arrays``); T = number of box thresholds."""
        return super().keep_per_image()

    def update(
        self, labels, top5, loc_maps: Sequence, gt_loc_maps: Sequence, gt_boxes_original: Sequence
    ) -> None:
        """``labels`` (N,), ``top5`` (N, 5) predicted classes best first, ``loc_maps`` N maps
        (5, H, W) of the top-5 classes at the original size, ``gt_loc_maps`` N maps (H, W) of the
        GT class, ``gt_boxes_original`` N arrays (k, 4) in original pixels."""
        labels = np.asarray(torch.as_tensor(labels).cpu()).reshape(-1)
        top5 = np.asarray(torch.as_tensor(top5).cpu()).reshape(len(labels), -1)
        if not (len(loc_maps) == len(gt_loc_maps) == len(gt_boxes_original) == len(labels)):
            raise WsolbenchError("classic localization inputs must all have one entry per image")
        count, t_count = len(labels), len(self.thresholds)
        record = {
            "outcome": np.zeros((count, t_count), np.uint8),
            "top5_loc": np.zeros((count, t_count), bool),
            "gt_known_loc": np.zeros((count, t_count), bool),
            "top1_box": np.zeros((count, t_count, 4), np.int32),
            "top1_cls": top5[:, 0] == labels,
            "top5_cls": (top5 == labels[:, None]).any(1),
            "top1_class": top5[:, 0].astype(np.int32),
        }
        for i, label in enumerate(labels):
            gt = np.asarray(gt_boxes_original[i], np.int64).reshape(-1, 4)
            hit5 = top5[i] == label
            boxes_at = union_boxes_at(loc_maps[i], self.thresholds).cpu().numpy()
            known_at = union_boxes_at(gt_loc_maps[i], self.thresholds).cpu().numpy()[:, 0]
            for t in range(len(self.thresholds)):
                boxes, known = boxes_at[t], known_at[t]
                kind = localization_error_type(top5[i, 0], boxes[0], label, gt)
                record["outcome"][i, t] = OUTCOMES.index(kind)
                record["gt_known_loc"][i, t] = _correct(known, gt)
                record["top5_loc"][i, t] = any(
                    hit5[j] and _correct(boxes[j], gt) for j in range(min(len(boxes), len(hit5)))
                )
                record["top1_box"][i, t] = boxes[0]
        outcome = record["outcome"]
        self.add_counts("top1_loc", (outcome == 0).sum(0))
        self.add_counts("top5_loc", record["top5_loc"].sum(0))
        self.add_counts("gt_known_loc", record["gt_known_loc"].sum(0))
        self.add_counts(
            "errors", np.stack([(outcome == k + 1).sum(0) for k in range(len(ERROR_TYPES))], 1)
        )
        self.add_counts("top1_cls", record["top1_cls"].sum())
        self.add_counts("top5_cls", record["top5_cls"].sum())
        self.add_counts("count", count)
        self.add_record(record)

    def compute(self) -> dict:
        count = int(self.count)
        if count == 0:
            raise WsolbenchError("no image was accumulated for classic localization")
        top1_loc, top5_loc, gt_known_loc, errors = (
            getattr(self, name).cpu().numpy()
            for name in ("top1_loc", "top5_loc", "gt_known_loc", "errors")
        )
        pct = 100.0 / count
        per_threshold = {}
        for t, threshold in enumerate(self.thresholds):
            row = {
                "Top1Loc": top1_loc[t] * pct,
                "Top5Loc": top5_loc[t] * pct,
                "GTKnownLoc": gt_known_loc[t] * pct,
            }
            row.update({f"error_{kind}": errors[t, k] * pct for k, kind in enumerate(ERROR_TYPES)})
            per_threshold[f"{threshold:g}"] = {k: float(v) for k, v in row.items()}
        best = f"{self.thresholds[int(top1_loc.argmax())]:g}"
        result = dict(per_threshold[best])
        result.update(
            {
                "Top1Cls": 100.0 * int(self.top1_cls) / count,
                "Top5Cls": 100.0 * int(self.top5_cls) / count,
                "classic_best_threshold": float(best),
                "classic_per_threshold": per_threshold,
                **self.computed_records(),
            }
        )
        return result
