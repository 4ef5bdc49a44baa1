"""Peak-IoU / Peak-T (peak protocol, docs/protocols.md sec. 6), from pooled 256-level histograms."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch

from wsolbench.errors import WsolbenchError
from wsolbench.evaluation.boxes import as_tensor
from wsolbench.evaluation.per_image import CountMetric, image_histograms

LEVELS = 256


def peak_levels(raw_map) -> torch.Tensor:
    """``uint8(255 * (s - min) / (max - min + 1e-10))`` (truncation) on the map's device."""
    s = as_tensor(raw_map).double()
    normalized = (s - s.min()) / (s.max() - s.min() + 1e-10)
    return (normalized * 255).to(torch.uint8)


def peak_levels_batch(raw_maps: torch.Tensor) -> torch.Tensor:
    """``peak_levels`` of each map of an (N, H, W) batch."""
    s = raw_maps.double()
    low = s.amin(dim=(1, 2), keepdim=True)
    high = s.amax(dim=(1, 2), keepdim=True)
    return ((s - low) / (high - low + 1e-10) * 255).to(torch.uint8)


def resize_levels(levels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a uint8 map to ``(height, width)`` with OpenCV's fixed-point rounding."""
    height, width = size
    if levels.shape == (height, width):
        return levels
    return cv2.resize(levels, (width, height), interpolation=cv2.INTER_LINEAR)


class PeakAccumulator(CountMetric):
    """Foreground / background histograms of the maps' 256 levels against the masks;
    ``compute`` returns Peak-IoU, Peak-T and the IoU curve (a dict)."""

    higher_is_better = True
    record_fields = {"foreground": np.int32, "background": np.int32}
    histogram_fields = ("foreground", "background")

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        # One bin per level 0..255 plus an empty top bin, so tp(t) = sum of bins >= t.
        self.add_count("foreground", [LEVELS + 1])
        self.add_count("background", [LEVELS + 1])

    def keep_per_image(self) -> PeakAccumulator:
        """Also keep each image's two 257-bin histograms, ``foreground`` / ``background``
        (``per_image_arrays``)."""
        return super().keep_per_image()

    def update(self, raw_maps: Sequence, gt_masks: Sequence) -> None:
        """``raw_maps``: maps of any range and size; ``gt_masks``: bool masks at their own size
        (the map is resized to it)."""
        if len(raw_maps) != len(gt_masks):
            raise WsolbenchError(f"{len(raw_maps)} peak maps but {len(gt_masks)} masks")
        masks = [
            np.asarray(m.cpu() if isinstance(m, torch.Tensor) else m).astype(bool) for m in gt_masks
        ]
        shapes = {tuple(m.shape) for m in raw_maps} | {m.shape for m in masks}
        if len(shapes) == 1 and len(masks) > 1:  # no resize needed: one batched pass
            levels = peak_levels_batch(as_tensor(list(raw_maps))).cpu().numpy()
            self._add(levels, np.stack(masks))
            return
        for raw, mask in zip(raw_maps, masks):
            self._add(resize_levels(peak_levels(raw).cpu().numpy(), mask.shape), mask)

    def _add(self, levels: np.ndarray, mask: np.ndarray) -> None:
        codes = levels.astype(np.int64) + (LEVELS + 1) * ~mask
        if self.keeps_per_image:
            per_image = image_histograms(
                codes if codes.ndim == 3 else codes[None], 2 * (LEVELS + 1)
            )
            self.add_record(
                {
                    "foreground": per_image[:, : LEVELS + 1],
                    "background": per_image[:, LEVELS + 1 :],
                }
            )
            counts = per_image.sum(0)
        else:
            counts = np.bincount(codes.ravel(), minlength=2 * (LEVELS + 1))
        self.add_counts("foreground", counts[: LEVELS + 1])
        self.add_counts("background", counts[LEVELS + 1 :])

    def compute(self) -> dict:
        foreground = self.foreground.cpu().numpy()
        background = self.background.cpu().numpy()
        total_fg = foreground.sum()
        if total_fg + background.sum() == 0:
            raise WsolbenchError("Peak-IoU: no mask pixel was accumulated")
        tp = foreground[::-1].cumsum()[::-1][:LEVELS].astype(np.float64)
        fp = background[::-1].cumsum()[::-1][:LEVELS].astype(np.float64)
        denominator = total_fg + fp  # tp + fn + fp
        iou = np.where(denominator > 0, tp / np.where(denominator > 0, denominator, 1), 0.0)
        peak_t = int(iou.argmax())
        return {
            "PeakIoU": 100.0 * float(iou[peak_t]),
            "PeakT": peak_t,
            "peak_iou_curve": (100.0 * iou).tolist(),
            **self.computed_records(),
        }
