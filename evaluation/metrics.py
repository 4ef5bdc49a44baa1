"""The metrics as scalar ``torchmetrics`` metrics, for a LightningModule's ``self.log``.

Each is its accumulator with a ``compute`` that returns one float64 tensor, so the exact
integer states, DDP sync, ``merge_state`` and ``state_dict`` are torchmetrics' own::

    self.box = MaxBoxAccV2(cam_curve_interval=0.01)       # in __init__
    self.box.update(scoremaps, gt_boxes)                  # maps in [0, 1], boxes in map pixels
    self.log("val/MaxBoxAccV2", self.box)                 # Lightning computes, syncs, resets

Inputs are the accumulators' (``BoxAccumulator.update`` etc.): maps prepared and ground truth
at the maps' size. The protocols (``wsolbench.evaluation.protocols``) do that preparation from
raw class maps and native annotations.
"""

from __future__ import annotations

import torch

from wsolbench.evaluation.box_metrics import BoxAccumulator
from wsolbench.evaluation.classic_loc import ClassicLocAccumulator
from wsolbench.evaluation.mask_metrics import PxAPAccumulator
from wsolbench.evaluation.peak import PeakAccumulator


def _scalar(value: float) -> torch.Tensor:
    return torch.tensor(float(value), dtype=torch.float64)


class MaxBoxAcc(BoxAccumulator):
    """MaxBoxAcc (V1: largest contour, IoU 50), in %. ``update(maps, boxes)``: (N, H, W) maps
    in [0, 1], N (k, 4) arrays of inclusive ``(x0, y0, x1, y1)`` boxes in map pixels."""

    def compute(self) -> torch.Tensor:
        return _scalar(super().compute()["MaxBoxAcc"])


class MaxBoxAccV2(BoxAccumulator):
    """MaxBoxAccV2 (all contours, mean over the IoU thresholds), in %. ``update(maps, boxes)``:
    (N, H, W) maps in [0, 1], N (k, 4) arrays of inclusive ``(x0, y0, x1, y1)`` map-pixel boxes."""

    def compute(self) -> torch.Tensor:
        return _scalar(super().compute()["MaxBoxAccV2"])


class PxAP(PxAPAccumulator):
    """Pixel average precision, in %. ``update(maps, masks, gt_ignore=None)``: (N, H, W) maps in
    [0, 1], (N, H, W) bool foreground masks, optional (N, H, W) bool pixels to ignore."""

    def compute(self) -> torch.Tensor:
        return _scalar(super().compute()["PxAP"])


class PeakIoU(PeakAccumulator):
    """Peak-IoU (the best pooled IoU over the 256 map levels), in %. ``update(maps, masks)``:
    maps of any range and size (each resized to its mask), bool masks (H_i, W_i)."""

    def compute(self) -> torch.Tensor:
        return _scalar(super().compute()["PeakIoU"])


class GTKnownLoc(ClassicLocAccumulator):
    """GT-known Loc at the first box threshold, in % (``thresholds=(t,)``)."""

    def compute(self) -> torch.Tensor:
        threshold = f"{self.thresholds[0]:g}"
        return _scalar(super().compute()["classic_per_threshold"][threshold]["GTKnownLoc"])


class Top1Loc(ClassicLocAccumulator):
    """Top-1 Loc at the first box threshold, in % (``thresholds=(t,)``)."""

    def compute(self) -> torch.Tensor:
        threshold = f"{self.thresholds[0]:g}"
        return _scalar(super().compute()["classic_per_threshold"][threshold]["Top1Loc"])
