"""wsolbench.evaluation: pure metric code (no training imports).

Box metrics (MaxBoxAcc, MaxBoxAccV2), PxAP, Peak-IoU / Peak-T, classic Top-1 / Top-5 /
GT-known localization with the five-way error analysis, and the unified ``Evaluator``.
"""

from wsolbench.evaluation.box_metrics import BoxAccumulator, cam_thresholds
from wsolbench.evaluation.boxes import box_iou, rescale_boxes
from wsolbench.evaluation.classic_loc import (
    ClassicLocAccumulator,
    localization_error_type,
    union_boxes,
)
from wsolbench.evaluation.evaluator import Evaluator, evaluate_scoremaps
from wsolbench.evaluation.mask_metrics import PxAPAccumulator
from wsolbench.evaluation.peak import PeakAccumulator

__all__ = [
    "BoxAccumulator",
    "ClassicLocAccumulator",
    "Evaluator",
    "PeakAccumulator",
    "PxAPAccumulator",
    "box_iou",
    "cam_thresholds",
    "evaluate_scoremaps",
    "localization_error_type",
    "rescale_boxes",
    "union_boxes",
]
