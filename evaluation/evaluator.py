"""The unified evaluator: one object composed of metric accumulators (integer counts only).

Results do not depend on batch size, order, sharding or device; ``merge`` adds counts exactly,
and ``state_dict`` / ``from_state_dict`` exchange them as plain tensors (all-reduce or gather).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from wsolbench.errors import WsolbenchError
from wsolbench.evaluation.box_metrics import BoxAccumulator
from wsolbench.evaluation.classic_loc import ClassicLocAccumulator
from wsolbench.evaluation.mask_metrics import PxAPAccumulator
from wsolbench.evaluation.peak import PeakAccumulator

ACCUMULATORS = {
    "box": BoxAccumulator,
    "pxap": PxAPAccumulator,
    "peak": PeakAccumulator,
    "classic": ClassicLocAccumulator,
}
PROTOCOLS = ("wsolevaluation", "spa", "peak")


class Evaluator:
    """Accumulate batches, merge shards, compute every metric the inputs allow."""

    def __init__(
        self,
        box: BoxAccumulator | None = None,
        pxap: PxAPAccumulator | None = None,
        peak: PeakAccumulator | None = None,
        classic: ClassicLocAccumulator | None = None,
        protocol: str = "custom",
    ):
        self.accumulators = {
            name: acc
            for name, acc in (("box", box), ("pxap", pxap), ("peak", peak), ("classic", classic))
            if acc is not None
        }
        self.protocol = protocol

    @classmethod
    def preset(
        cls,
        protocol: str,
        cam_curve_interval: float = 0.001,
        iou_thresholds: Sequence[int] = (30, 50, 70),
        masks: bool = False,
        box_thresholds: Sequence[float] = (0.2,),
    ) -> Evaluator:
        """``wsolevaluation``: MaxBoxAcc/V2 (+ PxAP with ``masks``); ``spa``: Top-1/Top-5/GT-known
        Loc with the error analysis at ``box_thresholds``; ``peak``: Peak-IoU / Peak-T."""
        if protocol == "wsolevaluation":
            return cls(
                box=BoxAccumulator(cam_curve_interval, iou_thresholds),
                pxap=PxAPAccumulator(cam_curve_interval) if masks else None,
                protocol=protocol,
            )
        if protocol == "spa":
            return cls(classic=ClassicLocAccumulator(box_thresholds), protocol=protocol)
        if protocol == "peak":
            return cls(peak=PeakAccumulator(), protocol=protocol)
        raise WsolbenchError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")

    def accumulate(self, batch: dict) -> None:
        """Feed one batch; each accumulator takes the keys it needs (missing keys skip it).

        - ``scoremaps`` (N, H, W) in [0, 1], the GT class's map at map resolution (tensor on any
          device, array, or list), with ``gt_boxes``: N arrays (k, 4) of inclusive boxes in map
          pixels -> MaxBoxAcc / MaxBoxAccV2;
        - ``scoremaps`` with ``gt_masks`` (N, H, W) bool and optional ``gt_ignore`` (N, H, W) bool
          -> PxAP;
        - ``peak_maps`` (list of raw maps, any range) with ``peak_masks`` (list of bool masks at
          their own size; each map is resized to its mask) -> Peak-IoU / Peak-T;
        - ``labels`` (N,), ``top5`` (N, 5), ``loc_maps`` (list of (5, H, W) maps of the top-5
          classes at the original size), ``gt_loc_maps`` (list of (H, W) maps of the GT class)
          and ``gt_boxes_original`` (list of (k, 4) in original pixels) -> classic localization.
        """
        if "box" in self.accumulators and "gt_boxes" in batch:
            self.accumulators["box"].accumulate(batch["scoremaps"], batch["gt_boxes"])
        if "pxap" in self.accumulators and "gt_masks" in batch:
            self.accumulators["pxap"].accumulate(
                batch["scoremaps"], batch["gt_masks"], batch.get("gt_ignore")
            )
        if "peak" in self.accumulators and "peak_masks" in batch:
            self.accumulators["peak"].accumulate(batch["peak_maps"], batch["peak_masks"])
        if "classic" in self.accumulators and "loc_maps" in batch:
            self.accumulators["classic"].accumulate(
                batch["labels"],
                batch["top5"],
                batch["loc_maps"],
                batch["gt_loc_maps"],
                batch["gt_boxes_original"],
            )

    def merge(self, other: Evaluator) -> Evaluator:
        if self.accumulators.keys() != other.accumulators.keys():
            raise WsolbenchError("cannot merge evaluators with different metrics")
        for name, acc in self.accumulators.items():
            acc.merge(other.accumulators[name])
        return self

    def compute(self) -> dict:
        results: dict = {"protocol": self.protocol}
        for acc in self.accumulators.values():
            results.update(acc.compute())
        return results

    def state_dict(self) -> dict[str, dict[str, torch.Tensor]]:
        return {name: acc.state_dict() for name, acc in self.accumulators.items()}

    @classmethod
    def from_state_dict(cls, state: dict, protocol: str = "custom") -> Evaluator:
        unknown = set(state) - set(ACCUMULATORS)
        if unknown:
            raise WsolbenchError(f"unknown accumulators in state: {sorted(unknown)}")
        return cls(
            **{name: ACCUMULATORS[name].from_state_dict(s) for name, s in state.items()},
            protocol=protocol,
        )


def evaluate_scoremaps(
    scoremaps,
    gt_boxes=None,
    gt_masks=None,
    gt_ignore=None,
    cam_curve_interval: float = 0.001,
    iou_thresholds: Sequence[int] = (30, 50, 70),
) -> dict:
    """Score maps in [0, 1] (N, H, W) against GT boxes in map pixels (-> ``MaxBoxAcc``,
    ``MaxBoxAccV2``, ``MaxBoxAccV2_per_iou``, curves and best thresholds) and/or GT masks at map
    size (-> ``PxAP`` and ``PeakIoU`` / ``PeakT``)."""
    if gt_boxes is None and gt_masks is None:
        raise WsolbenchError("give gt_boxes and/or gt_masks")
    evaluator = Evaluator(
        box=BoxAccumulator(cam_curve_interval, iou_thresholds) if gt_boxes is not None else None,
        pxap=PxAPAccumulator(cam_curve_interval) if gt_masks is not None else None,
        peak=PeakAccumulator() if gt_masks is not None else None,
        protocol="wsolevaluation",
    )
    batch = {"scoremaps": scoremaps}
    if gt_boxes is not None:
        batch["gt_boxes"] = gt_boxes
    if gt_masks is not None:
        batch.update(
            gt_masks=gt_masks,
            gt_ignore=gt_ignore,
            peak_maps=list(scoremaps),
            peak_masks=[
                m > 0.5 if not isinstance(m, torch.Tensor) else (m > 0.5).cpu() for m in gt_masks
            ],
        )
    evaluator.accumulate(batch)
    return evaluator.compute()
