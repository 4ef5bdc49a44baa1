"""wsolbench.evaluation: pure metric code (no training imports).

Box metrics (MaxBoxAcc, MaxBoxAccV2), PxAP, Peak-IoU / Peak-T, classic Top-1 / Top-5 /
GT-known localization with the five-way error analysis, as ``torchmetrics`` metrics of exact
integer counts; the protocols (``wsolevaluation``, ``spa``, ``peak``) that prepare maps and
ground truth and name the results; the unified ``Evaluator``.
"""

# First: numba's (and matplotlib's) caches get a writable folder, or none, before they load.
from wsolbench import caches  # noqa: F401  (isort: skip)
from wsolbench.evaluation.box_metrics import BoxAccumulator, cam_thresholds
from wsolbench.evaluation.boxes import box_iou, rescale_boxes
from wsolbench.evaluation.classic_loc import (
    ClassicLocAccumulator,
    localization_error_type,
    union_boxes,
)
from wsolbench.evaluation.evaluator import Evaluator, evaluate_scoremaps
from wsolbench.evaluation.mask_metrics import PxAPAccumulator
from wsolbench.evaluation.metrics import GTKnownLoc, MaxBoxAcc, MaxBoxAccV2, PeakIoU, PxAP, Top1Loc
from wsolbench.evaluation.peak import PeakAccumulator
from wsolbench.evaluation.protocols import (
    GroundTruth,
    MapBatch,
    MetricSpec,
    Protocol,
    create_protocols,
)

__all__ = [
    "BoxAccumulator",
    "ClassicLocAccumulator",
    "Evaluator",
    "GTKnownLoc",
    "GroundTruth",
    "MapBatch",
    "MaxBoxAcc",
    "MaxBoxAccV2",
    "MetricSpec",
    "PeakAccumulator",
    "PeakIoU",
    "Protocol",
    "PxAP",
    "PxAPAccumulator",
    "Top1Loc",
    "box_iou",
    "cam_thresholds",
    "create_protocols",
    "evaluate_scoremaps",
    "localization_error_type",
    "rescale_boxes",
    "union_boxes",
]
