"""MaxBoxAcc and MaxBoxAccV2 (wsolevaluation protocol, docs/protocols.md sec. 2) as integer counts.

``BoxAccumulator`` keeps, for every CAM threshold and IoU threshold, how many images are
correct with the V1 box (largest contour) and with the V2 boxes (all contours), so the result is
independent of batch size, order, sharding and device, and merged halves equal the whole.
CPU maps are quantized and range-checked by the contour step itself (``level_sets``, one pass
over the floats); maps on another device are quantized there. The contour step runs on CPU and
decides the ties of the largest contour area as OpenCV does.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import numba
import numpy as np
import torch

from wsolbench import defaults
from wsolbench.errors import WsolbenchError
from wsolbench.evaluation.boxes import as_tensor, check_unit_range, quantize
from wsolbench.evaluation.level_sets import batch_level_hits
from wsolbench.evaluation.per_image import CountMetric


def cam_thresholds(interval: float) -> np.ndarray:
    """The CAM thresholds ``arange(0, 1, interval)`` (exact numpy values, as upstream)."""
    if not 0 < interval <= 1:
        raise WsolbenchError(f"cam curve interval must be in (0, 1], got {interval}")
    return np.arange(0, 1, interval)


@contextlib.contextmanager
def torch_threads_kept():
    """numba's parallel launch resets the OpenMP thread count it shares with torch; CPU float
    sums (convolutions) depend on that count, so a network run after scoring would give other
    bits than one run before it. Torch's count is put back after every launch."""
    threads = torch.get_num_threads()
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class BoxAccumulator(CountMetric):
    """Correct-image counts per (CAM threshold, IoU threshold) for V1 and V2 boxes; ``compute``
    returns MaxBoxAcc, MaxBoxAccV2 (in %), their curves and best thresholds (a dict).

    ``update(scoremaps, gt_boxes)``: (N, H, W) maps in [0, 1] and N (k, 4) arrays of inclusive
    ``(x0, y0, x1, y1)`` boxes in the map's pixels. ``cam_curve_interval``: the CAM thresholds'
    step; ``iou_thresholds``: MaxBoxAccV2's IoU thresholds in %."""

    higher_is_better = True
    record_fields = {"correct_v1": np.uint8, "correct_v2": np.uint8}

    def __init__(
        self,
        cam_curve_interval: float = defaults.CAM_CURVE_INTERVAL,
        iou_thresholds: Sequence[int] = defaults.IOU_THRESHOLDS,
        thresholds=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.thresholds = (
            cam_thresholds(cam_curve_interval)
            if thresholds is None
            else np.asarray(thresholds, np.float64)
        )
        self.iou_thresholds = [int(d) for d in iou_thresholds]
        # V1's MaxBoxAcc is defined at IoU 50 whatever V2 uses.
        self.deltas = np.array(sorted(set(self.iou_thresholds) | {50}), np.int64)
        shape = (len(self.thresholds), len(self.deltas))
        self.add_count("correct_v1", shape)
        self.add_count("correct_v2", shape)
        self.add_count("count")

    def settings(self) -> dict:
        return {"thresholds": self.thresholds.tolist(), "deltas": self.deltas.tolist()}

    def keep_per_image(self) -> BoxAccumulator:
        """Also keep each image's outcome: ``correct_v1`` / ``correct_v2`` as bits packed along
        the CAM thresholds, ``(N, len(deltas), ceil(T / 8))`` uint8 (``per_image_arrays``); their
        sums over images are the pooled counts."""
        return super().keep_per_image()

    def update(self, scoremaps, gt_boxes: Sequence) -> None:
        """``scoremaps``: (N, H, W) in [0, 1] (tensor on any device, array, or a list of maps of
        any sizes); ``gt_boxes``: N arrays ``(k, 4)`` of inclusive boxes in map pixels."""
        if isinstance(scoremaps, (list, tuple)):
            if len(scoremaps) != len(gt_boxes):
                raise WsolbenchError(f"{len(scoremaps)} score maps but {len(gt_boxes)} box lists")
            if not scoremaps:
                return
            shapes = {tuple(m.shape) for m in scoremaps}
            if len(shapes) > 1:  # maps of different sizes: one pass per size, then input order
                hits = [None] * len(scoremaps)
                for shape in shapes:
                    idx = [i for i, m in enumerate(scoremaps) if tuple(m.shape) == shape]
                    v1, v2 = self._hits([scoremaps[i] for i in idx], [gt_boxes[i] for i in idx])
                    for row, i in enumerate(idx):
                        hits[i] = (v1[row], v2[row])
                self._add(np.stack([h[0] for h in hits]), np.stack([h[1] for h in hits]))
                return
        self._add(*self._hits(scoremaps, gt_boxes))

    def _hits(self, scoremaps, gt_boxes: Sequence) -> tuple[np.ndarray, np.ndarray]:
        """Per image, CAM threshold and IoU threshold: is the V1 / V2 box correct (N, T, D)."""
        maps = as_tensor(scoremaps)
        if maps.dim() == 2:
            maps = maps[None]
        if maps.dim() != 3 or maps.shape[0] != len(gt_boxes):
            raise WsolbenchError(
                f"score maps must be (N, H, W) with N = {len(gt_boxes)} box "
                f"lists, got shape {tuple(maps.shape)}"
            )
        if maps.device.type == "cpu" and maps.dtype in (torch.float32, torch.float64):
            levels = maps.detach().numpy()  # quantized and checked by the kernel, in one pass
        else:  # another device or dtype: quantized there (a 1/8 of the bytes to copy)
            check_unit_range(maps)
            levels = quantize(maps).cpu().numpy()
        gt = [np.asarray(b, np.int64).reshape(-1, 4) for b in gt_boxes]
        if any(len(b) == 0 for b in gt):
            raise WsolbenchError("every image needs at least one GT box")
        offsets = np.concatenate([[0], np.cumsum([len(b) for b in gt])]).astype(np.int64)
        with torch_threads_kept():
            v1, v2, tops = batch_level_hits(
                np.ascontiguousarray(levels),
                np.concatenate(gt),
                offsets,
                self.deltas,
                min(numba.get_num_threads(), len(levels)),
            )
        if (tops < 0).any():
            check_unit_range(maps)  # raises, with the values found
        max_levels = tops.astype(np.float64)
        # Threshold tau keeps ``u > int(tau * max(u))`` (float64 product, as upstream).
        cut = (self.thresholds[None, :] * max_levels[:, None]).astype(np.int64)
        rows = np.arange(len(levels))[:, None]
        return v1[rows, cut], v2[rows, cut]

    def _add(self, hits_v1: np.ndarray, hits_v2: np.ndarray) -> None:
        self.add_counts("correct_v1", hits_v1.sum(0, dtype=np.int64))
        self.add_counts("correct_v2", hits_v2.sum(0, dtype=np.int64))
        self.add_counts("count", len(hits_v1))
        self.add_record(
            {
                "correct_v1": np.packbits(hits_v1.transpose(0, 2, 1).astype(bool), axis=-1),
                "correct_v2": np.packbits(hits_v2.transpose(0, 2, 1).astype(bool), axis=-1),
            }
        )

    def compute(self) -> dict:
        count = int(self.count)
        if count == 0:
            raise WsolbenchError("no score map was accumulated for box metrics")
        correct_v1 = self.correct_v1.cpu().numpy()
        correct_v2 = self.correct_v2.cpu().numpy()
        acc_v1 = 100.0 * correct_v1 / count
        acc_v2 = 100.0 * correct_v2 / count
        column = {int(d): j for j, d in enumerate(self.deltas)}
        per_iou_v2 = {str(d): float(acc_v2[:, column[d]].max()) for d in self.iou_thresholds}
        per_iou_v1 = {str(d): float(acc_v1[:, column[d]].max()) for d in self.deltas}
        best_v1 = {
            str(d): float(self.thresholds[acc_v1[:, column[d]].argmax()]) for d in self.deltas
        }
        best_v2 = {
            str(d): float(self.thresholds[acc_v2[:, column[d]].argmax()])
            for d in self.iou_thresholds
        }
        return {
            "MaxBoxAcc": per_iou_v1["50"],
            "MaxBoxAccV2": float(np.mean(list(per_iou_v2.values()))),
            "MaxBoxAccV2_per_iou": [per_iou_v2[str(d)] for d in self.iou_thresholds],
            "iou_thresholds": list(self.iou_thresholds),
            "MaxBoxAcc_per_iou": per_iou_v1,
            "box_best_threshold_v1": best_v1,
            "box_best_threshold_v2": best_v2,
            "box_cam_thresholds": self.thresholds.tolist(),
            "box_acc_curve_v1": {str(d): acc_v1[:, column[d]].tolist() for d in self.deltas},
            "box_acc_curve_v2": {
                str(d): acc_v2[:, column[d]].tolist() for d in self.iou_thresholds
            },
            "box_correct_counts_v1": {
                str(d): correct_v1[:, column[d]].tolist() for d in self.deltas
            },
            "box_correct_counts_v2": {
                str(d): correct_v2[:, column[d]].tolist() for d in self.iou_thresholds
            },
            "box_num_images": count,
            **self.computed_records(),
        }
