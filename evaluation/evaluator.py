"""The unified evaluator: protocols with their accumulators, fed batch by batch.

``Evaluator(protocols, boxes=..., masks=...)`` builds each protocol's accumulators for a split
with boxes and/or masks; ``update(MapBatch)`` lets every protocol prepare the batch by its own
rules and accumulate; ``compute()`` returns each accumulator's output (under DDP torchmetrics
merges every process's integer counts first, exactly), ``results`` / ``curves`` name them as
the protocols do. Results do not depend on batch size, order, sharding or device.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import torch

from wsolbench import defaults
from wsolbench.errors import WsolbenchError
from wsolbench.evaluation.per_image import CountMetric
from wsolbench.evaluation.protocols import GroundTruth, MapBatch, Protocol, create_protocols


class Evaluator:
    """Accumulate batches under several protocols; compute (and merge) their metrics."""

    def __init__(self, protocols: Iterable[Protocol], boxes: bool = True, masks: bool = False):
        self.protocols = {protocol.name: protocol for protocol in protocols}
        self.metrics: dict[str, CountMetric] = {}  # accumulator name -> accumulator
        self._owned: dict[str, list[str]] = {}  # protocol -> its accumulators' names
        for name, protocol in self.protocols.items():
            created = protocol.create_metrics(boxes=boxes, masks=masks)
            clash = set(created) & set(self.metrics)
            if clash:
                raise WsolbenchError(f"protocol {name} reuses accumulator names {sorted(clash)}")
            self.metrics.update(created)
            self._owned[name] = list(created)

    def of(self, protocol: str) -> dict[str, CountMetric]:
        """One protocol's accumulators."""
        return {name: self.metrics[name] for name in self._owned[protocol]}

    def keep_per_image(self) -> Evaluator:
        for metric in self.metrics.values():
            metric.keep_per_image()
        return self

    def update(self, batch: MapBatch) -> None:
        for name, protocol in self.protocols.items():
            if self._owned[name]:
                protocol.update(self.of(name), batch)

    def compute(self) -> dict[str, dict]:
        """Accumulator name -> its ``compute()`` (every process's counts under DDP: a
        collective call, made in the same order on every rank; cached until the next update)."""
        return {name: metric.compute() for name, metric in self.metrics.items()}

    def results(self, choices: Mapping[str, Mapping] | None = None) -> dict[str, dict[str, float]]:
        """Protocol -> metric name -> value; ``choices[protocol]`` are settings chosen on val
        (the spa protocol's box threshold)."""
        choices = choices or {}
        out = {}
        for name, protocol, computed in self._computed_by_protocol():
            values = protocol.results(computed, choices.get(name))
            if values:
                out[name] = values
        return out

    def choose(self) -> dict[str, dict]:
        """Protocol -> the settings it chooses on this split (call on val)."""
        return {name: p.choose(computed) for name, p, computed in self._computed_by_protocol()}

    def curves(self) -> list[tuple[str, list, list]]:
        return [
            curve
            for _, protocol, computed in self._computed_by_protocol()
            for curve in protocol.curves(computed)
        ]

    def _computed_by_protocol(self):
        """(name, protocol, its accumulators' ``compute()`` outputs) for every protocol."""
        computed = self.compute()
        for name, protocol in self.protocols.items():
            yield name, protocol, {metric: computed[metric] for metric in self._owned[name]}

    def summary(self) -> dict:
        """Every accumulator's output in one flat dict (``evaluate_scoremaps``, ``wsolbench
        evaluate``): MaxBoxAcc, MaxBoxAccV2, PxAP, PeakIoU, ... with their curves."""
        out: dict = {}
        for values in self.compute().values():
            out.update({k: v for k, v in values.items() if k != "per_image"})
        return out

    def merge(self, other: Evaluator) -> Evaluator:
        """Add another shard's counts (exact integer sums)."""
        if self.metrics.keys() != other.metrics.keys():
            raise WsolbenchError(
                f"cannot merge evaluators with different metrics ({sorted(self.metrics)} vs "
                f"{sorted(other.metrics)})"
            )
        for name, metric in self.metrics.items():
            metric.merge(other.metrics[name])
        return self

    def state_dict(self) -> dict[str, dict[str, torch.Tensor]]:
        return {name: metric.state_dict() for name, metric in self.metrics.items()}

    def load_state_dict(self, state: Mapping[str, Mapping[str, torch.Tensor]]) -> Evaluator:
        unknown = set(state) - set(self.metrics)
        if unknown:
            raise WsolbenchError(f"unknown accumulators in state: {sorted(unknown)}")
        for name, metric_state in state.items():
            self.metrics[name].load_state_dict(dict(metric_state))
        return self


def binary_as_gray(masks) -> list[np.ndarray]:
    """Binary masks (bool or 0/1, arrays or tensors) as the grayscale PNGs they stand for
    (0 / 255), so every protocol's threshold reads them as given."""
    return [
        np.where(np.asarray(m.cpu() if isinstance(m, torch.Tensor) else m) > 0.5, 255, 0).astype(
            np.uint8
        )
        for m in masks
    ]


def evaluate_scoremaps(
    scoremaps,
    gt_boxes=None,
    gt_masks=None,
    gt_ignore=None,
    cam_curve_interval: float = defaults.CAM_CURVE_INTERVAL,
    iou_thresholds: Sequence[int] = defaults.IOU_THRESHOLDS,
) -> dict:
    """Score prepared maps under the wsolevaluation and peak protocols, the ground truth being
    already at the maps' size.

    Args:
        scoremaps: (N, H, W) float maps in [0, 1] (numpy array or torch tensor on any device),
            or a list of N 2-D maps of different sizes.
        gt_boxes: N arrays (k_i, 4) of integer boxes ``(x0, y0, x1, y1)`` in the map's pixels,
            both corners inclusive (x: column, y: row, 0-based; ``x1 <= W - 1``).
        gt_masks: (N, H, W) binary foreground masks (bool, or 0/1; > 0.5 is foreground).
        gt_ignore: (N, H, W) binary masks of pixels PxAP ignores (wsolevaluation's), or None.
        cam_curve_interval: step of the CAM thresholds in (0, 1) (0.001: wsolevaluation's).
        iou_thresholds: IoU thresholds in % of MaxBoxAccV2 (default 30, 50, 70).

    Returns:
        A dict of floats in % (``MaxBoxAcc``, ``MaxBoxAccV2``, ``MaxBoxAccV2_per_iou`` with boxes;
        ``PxAP``, ``PeakIoU`` with masks), ``PeakT`` (the best map level, 0..255), curves and
        best thresholds. Give boxes, masks or both.
    """
    if gt_boxes is None and gt_masks is None:
        raise WsolbenchError("give gt_boxes and/or gt_masks")
    protocols = create_protocols(
        {"cam_curve_interval": cam_curve_interval, "iou_thresholds": iou_thresholds},
        names=("wsolevaluation", "peak"),
    )
    evaluator = Evaluator(
        protocols.values(), boxes=gt_boxes is not None, masks=gt_masks is not None
    )
    sizes = [(int(m.shape[-1]), int(m.shape[-2])) for m in scoremaps]  # (width, height)
    evaluator.update(
        MapBatch(
            gt=GroundTruth(
                sizes,
                boxes=gt_boxes,
                masks=None if gt_masks is None else binary_as_gray(gt_masks),
                ignore=None if gt_ignore is None else binary_as_gray(gt_ignore),
            ),
            scoremaps=scoremaps,
        )
    )
    return evaluator.summary()
