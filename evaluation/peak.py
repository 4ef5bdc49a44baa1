"""Peak-IoU / Peak-T (peak protocol, docs/protocols.md sec. 6), from pooled 256-level histograms."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch

from wsolbench.errors import WsolbenchError
from wsolbench.evaluation.boxes import as_tensor
from wsolbench.evaluation.per_image import (
    compact_counts,
    concat_per_image,
    image_histograms,
    merge_per_image,
)

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


class PeakAccumulator:
    def __init__(self):
        # One bin per level 0..255 plus an empty top bin, so tp(t) = sum of bins >= t.
        self.foreground = np.zeros(LEVELS + 1, np.int64)
        self.background = np.zeros(LEVELS + 1, np.int64)
        self.per_image: list[dict[str, np.ndarray]] | None = None

    def keep_per_image(self) -> PeakAccumulator:
        """Also keep each image's two 257-bin histograms, ``foreground`` / ``background``
        (``per_image_arrays``)."""
        self.per_image = []
        return self

    def per_image_arrays(self) -> dict[str, np.ndarray]:
        return concat_per_image(self.per_image)

    def accumulate(self, raw_maps: Sequence, gt_masks: Sequence) -> None:
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
        if self.per_image is not None:
            per_image = image_histograms(
                codes if codes.ndim == 3 else codes[None], 2 * (LEVELS + 1)
            )
            self.per_image.append(
                {
                    "foreground": compact_counts(per_image[:, : LEVELS + 1]),
                    "background": compact_counts(per_image[:, LEVELS + 1 :]),
                }
            )
            counts = per_image.sum(0)
        else:
            counts = np.bincount(codes.ravel(), minlength=2 * (LEVELS + 1))
        self.foreground += counts[: LEVELS + 1]
        self.background += counts[LEVELS + 1 :]

    def merge(self, other: PeakAccumulator) -> PeakAccumulator:
        self.foreground += other.foreground
        self.background += other.background
        merge_per_image(self, other)
        return self

    def compute(self) -> dict:
        total_fg = self.foreground.sum()
        if total_fg + self.background.sum() == 0:
            raise WsolbenchError("Peak-IoU: no mask pixel was accumulated")
        tp = self.foreground[::-1].cumsum()[::-1][:LEVELS].astype(np.float64)
        fp = self.background[::-1].cumsum()[::-1][:LEVELS].astype(np.float64)
        denominator = total_fg + fp  # tp + fn + fp
        iou = np.where(denominator > 0, tp / np.where(denominator > 0, denominator, 1), 0.0)
        peak_t = int(iou.argmax())
        return {
            "PeakIoU": 100.0 * float(iou[peak_t]),
            "PeakT": peak_t,
            "peak_iou_curve": (100.0 * iou).tolist(),
        }

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {
            "foreground": torch.from_numpy(self.foreground.copy()),
            "background": torch.from_numpy(self.background.copy()),
        }

    @classmethod
    def from_state_dict(cls, state: dict) -> PeakAccumulator:
        acc = cls()
        acc.foreground = state["foreground"].cpu().numpy().astype(np.int64).copy()
        acc.background = state["background"].cpu().numpy().astype(np.int64).copy()
        return acc
