"""The evaluation protocols as objects (docs/protocols.md sec. 2-6).

A protocol owns, in one place, everything that makes its numbers mean what the published
tables mean: how score maps are prepared (resize mode and size, normalization), how the
dataset's native annotations become its ground truth (box rescaling, mask thresholds, ignore
regions), which accumulators it feeds, and the names of its results. The bench, ``wsolbench
evaluate``, ``wsolbench infer`` and ``evaluate_scoremaps`` all go through these objects; a new
protocol is one registered class.

- ``wsolevaluation``: the GT class's map bicubic-resized to ``map_size`` and min-max normalized;
  GT boxes rescaled to the map by truncation; foreground = any instance > 0.5, ignore = ignore
  PNG > 0.5 outside it, both nearest-resized to the map -> MaxBoxAcc, MaxBoxAccV2, PxAP.
- ``spa``: the top-k and GT classes' maps at the original image size; boxes in original
  pixels; one box threshold chosen on val -> Top-1 / Top-5 / GT-known Loc, classification and
  the five error types.
- ``peak``: the GT class's map at the original size against foreground = any instance > 128
  at the mask's own size -> Peak-IoU, Peak-T.

Inputs are batches in the dataset's native form (``MapBatch`` with its ``GroundTruth``);
accumulators are ``torchmetrics`` metrics (``create_metrics``), so under DDP their ``compute``
merges every process's counts exactly.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import cv2
import numpy as np
import torch

from wsolbench import defaults
from wsolbench.evaluation.box_metrics import BoxAccumulator
from wsolbench.evaluation.boxes import rescale_boxes
from wsolbench.evaluation.classic_loc import ERROR_TYPES, ClassicLocAccumulator
from wsolbench.evaluation.mask_metrics import PxAPAccumulator
from wsolbench.evaluation.peak import LEVELS, PeakAccumulator
from wsolbench.evaluation.per_image import CountMetric
from wsolbench.evaluation.scoremaps import minmax_normalize
from wsolbench.registry import PROTOCOLS, register_protocol


@dataclass(frozen=True)
class MetricSpec:
    """One number a protocol reports: its name in the results table and how it reads."""

    name: str  # the results table's `metric` (e.g. "gt_known_loc")
    label: str  # as printed (e.g. "GT-known Loc")
    better: int = 1  # +1 higher is better, -1 lower is better, 0 neither (a threshold)
    decimals: int = 2
    measured: bool = True  # False: a setting chosen elsewhere, not a statistic of the images


@dataclass
class GroundTruth:
    """One batch's annotations as the dataset has them (original image pixels).

    ``masks``: per image, the pixel-wise maximum of its instance masks read as grayscale
    (uint8, at the first instance's size); a protocol thresholds it with its own rule (any
    instance > t is the maximum > t). ``ignore``: the ignore mask likewise (zeros without one).
    """

    sizes: Sequence[tuple[int, int]]  # (width, height) per image
    boxes: Sequence[np.ndarray] | None = None  # (k, 4) inclusive boxes per image
    masks: Sequence[np.ndarray] | None = None
    ignore: Sequence[np.ndarray] | None = None


@dataclass
class MapBatch:
    """What the protocols score for one batch: class maps, predictions, ground truth.

    ``maps``: per image, (K, H, W) maps in [0, 1] at the original size: the GT class's, then
    the top-k classes' (a post-processor's output). ``sources``: per image, the GT class's map
    a protocol that prepares its own score maps starts from (``PostProcessor.scoremap_source``).
    ``scoremaps``: score maps already prepared (maps read from disk); they replace ``maps[i][0]``
    and ``sources`` where given.
    """

    gt: GroundTruth
    maps: Sequence[torch.Tensor] | None = None
    sources: Sequence[torch.Tensor] | None = None
    scoremaps: Any = None
    labels: Any = None  # (N,)
    topk: Any = None  # (N, k) predicted classes, best first

    def gt_maps(self) -> list:
        """The GT class's map of every image."""
        if self.maps is not None:
            return [m[0] for m in self.maps]
        return list(self.scoremaps)


class Protocol:
    """A named evaluation protocol (see the module docstring). Subclasses set ``name`` and
    implement ``specs``, ``create_metrics``, ``update`` and ``results``."""

    name: ClassVar[str]

    def specs(self) -> tuple[MetricSpec, ...]:
        """Every number this protocol can report, in report order."""
        raise NotImplementedError

    def create_metrics(self, boxes: bool, masks: bool) -> dict[str, CountMetric]:
        """Fresh accumulators for a split with boxes and/or masks ({} when none applies); their
        names are unique over the protocols (they prefix the per-image records)."""
        raise NotImplementedError

    def update(self, metrics: Mapping[str, CountMetric], batch: MapBatch) -> None:
        """Prepare the batch's maps and ground truth by this protocol's rules; accumulate."""
        raise NotImplementedError

    def results(self, computed: Mapping[str, dict], choice: Mapping | None = None) -> dict:
        """``metric name -> value`` from the accumulators' ``compute()`` outputs."""
        raise NotImplementedError

    def curves(self, computed: Mapping[str, dict]) -> list[tuple[str, list, list]]:
        """``(curve name, x, y)`` of the curves this protocol draws."""
        return []

    def choose(self, computed: Mapping[str, dict]) -> dict:
        """Settings this protocol chooses on a split (call on val); {} when none."""
        return {}

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"


# -- spa -----------------------------------------------------------------------------------------
# The five error types (docs/protocols.md sec. 5) as result metrics, with their printed names.
SPA_ERRORS = {kind: "err_" + kind.replace("-", "") for kind in ERROR_TYPES}  # err_mins, ...
_ERROR_LABELS = {"cls": "Cls", "m-ins": "M-Ins", "part": "Part", "more": "More", "ot": "OT"}
# The accuracies that depend on the box threshold: results name -> (label, compute()'s key); at
# the threshold the evaluated (test) split chooses for itself they get the suffix ON_TEST.
THRESHOLD_METRICS = {
    "top1_loc": ("Top-1 Loc", "Top1Loc"),
    "top5_loc": ("Top-5 Loc", "Top5Loc"),
    "gt_known_loc": ("GT-known Loc", "GTKnownLoc"),
}
ON_TEST = "_on_test"


@register_protocol("spa")
class Spa(Protocol):
    """Top-1 / Top-5 / GT-known Loc and the five-way error analysis (SPA, Pan et al. 2021).

    Panxjia/SPA_CVPR2021: the maps at the original image size, one box threshold chosen on
    val."""

    name = "spa"

    def __init__(self, box_thresholds: Sequence[float] = defaults.BOX_THRESHOLDS):
        self.box_thresholds = tuple(float(t) for t in box_thresholds)

    def specs(self) -> tuple[MetricSpec, ...]:
        return (
            *(MetricSpec(metric, label) for metric, (label, _) in THRESHOLD_METRICS.items()),
            MetricSpec("top1_cls", "Top-1 Cls"),
            MetricSpec("top5_cls", "Top-5 Cls"),
            *(
                MetricSpec(metric, _ERROR_LABELS[kind], better=-1)
                for kind, metric in SPA_ERRORS.items()
            ),
            MetricSpec("box_threshold", "Box threshold", better=0, decimals=3, measured=False),
            # SPA's val_spa.py prints every threshold on the evaluated split itself, where its
            # published numbers were read: the same rule, labelled so (never the headline).
            *(
                MetricSpec(f"{metric}{ON_TEST}", f"{label} (thr. on test)")
                for metric, (label, _) in THRESHOLD_METRICS.items()
            ),
            MetricSpec(
                f"box_threshold{ON_TEST}", "Box thr. on test", better=0, decimals=3, measured=False
            ),
        )

    def create_metrics(self, boxes: bool, masks: bool) -> dict[str, CountMetric]:
        return {"classic": ClassicLocAccumulator(self.box_thresholds)} if boxes else {}

    def update(self, metrics: Mapping[str, CountMetric], batch: MapBatch) -> None:
        if "classic" in metrics:
            metrics["classic"].update(
                batch.labels,
                batch.topk,
                [m[1:] for m in batch.maps],
                batch.gt_maps(),
                [np.asarray(b, np.int64).reshape(-1, 4) for b in batch.gt.boxes],
            )

    def choose(self, computed: Mapping[str, dict]) -> dict:
        """The box threshold with the best GT-known Loc (the smallest on ties)."""
        if "classic" not in computed:
            return {"box_threshold": self.box_thresholds[0]}
        per = computed["classic"]["classic_per_threshold"]
        best = max(per, key=lambda t: (per[t]["GTKnownLoc"], -float(t)))
        return {"box_threshold": float(best)}

    def results(self, computed: Mapping[str, dict], choice: Mapping | None = None) -> dict:
        """At ``choice["box_threshold"]`` (chosen on val), plus, labelled ``*_on_test``, the
        threshold-dependent accuracies at the threshold ``choose`` picks on the scored split itself
        (SPA's published rule); without a choice, only the latter, under the plain names."""
        if "classic" not in computed:
            return {}
        classic = computed["classic"]
        threshold = float((choice or self.choose(computed))["box_threshold"])
        at = classic["classic_per_threshold"][f"{threshold:g}"]
        out = {metric: at[key] for metric, (_, key) in THRESHOLD_METRICS.items()}
        out.update(top1_cls=classic["Top1Cls"], top5_cls=classic["Top5Cls"])
        out.update({metric: at[f"error_{kind}"] for kind, metric in SPA_ERRORS.items()})
        out["box_threshold"] = threshold
        if choice is not None:  # chosen elsewhere (val): also the evaluated split's own choice
            own = self.choose(computed)["box_threshold"]
            at_own = classic["classic_per_threshold"][f"{own:g}"]
            for metric, (_, key) in THRESHOLD_METRICS.items():
                out[f"{metric}{ON_TEST}"] = at_own[key]
            out[f"box_threshold{ON_TEST}"] = own
        return out


# -- wsolevaluation ------------------------------------------------------------------------------
@register_protocol("wsolevaluation")
class WsolEvaluation(Protocol):
    """MaxBoxAcc and MaxBoxAccV2 from boxes, PxAP from masks (wsolevaluation, Choe et al. 2020).

    clovaai/wsolevaluation: maps bicubic-resized to map_size and min-max normalized."""

    name = "wsolevaluation"

    def __init__(
        self,
        map_size: int = defaults.MAP_SIZE,
        cam_curve_interval: float = defaults.CAM_CURVE_INTERVAL,
        iou_thresholds: Sequence[int] = defaults.IOU_THRESHOLDS,
    ):
        self.map_size = int(map_size)
        self.cam_curve_interval = float(cam_curve_interval)
        self.iou_thresholds = tuple(int(d) for d in iou_thresholds)

    def specs(self) -> tuple[MetricSpec, ...]:
        return (
            MetricSpec("MaxBoxAcc", "MaxBoxAcc"),
            MetricSpec("MaxBoxAccV2", "MaxBoxAccV2"),
            *(MetricSpec(f"MaxBoxAccV2@{d}", f"IoU {d}") for d in self.iou_thresholds),
            MetricSpec("PxAP", "PxAP"),
        )

    # map preparation
    def prepare(self, source) -> np.ndarray:
        """One map prepared as wsolevaluation's CAM computer does: bicubic resize to map_size x
        map_size, then min-max in float64 (NaN or constant -> zeros)."""
        return minmax_normalize(source, (self.map_size, self.map_size))

    def scoremaps(self, sources: Sequence[torch.Tensor]) -> torch.Tensor:
        """(N, map_size, map_size) float64 score maps from raw maps of any sizes; tensors go
        through float64 first, as upstream's ``t2n`` casts the CAM before resizing."""
        return torch.from_numpy(
            np.stack([self.prepare(torch.as_tensor(m).double().cpu().numpy()) for m in sources])
        )

    # ground-truth rules
    @staticmethod
    def gt_boxes(boxes: np.ndarray, image_size: tuple[int, int], map_shape) -> np.ndarray:
        """Boxes from the original (width, height) to a map of ``map_shape`` (H, W), truncating."""
        height, width = map_shape[-2:]
        return rescale_boxes(boxes, image_size, (width, height))

    @staticmethod
    def gt_masks(mask: np.ndarray, ignore: np.ndarray | None, map_shape) -> tuple:
        """Foreground (any instance > 0.5) and ignore (ignore PNG > 0.5, not foreground), both
        resized to the map by nearest neighbour."""
        shape = tuple(map_shape[-2:])
        foreground = resize_nearest(np.asarray(mask) > 0.5, shape)
        if ignore is None:
            return foreground, np.zeros(shape, bool)
        return foreground, resize_nearest(np.asarray(ignore) > 0.5, shape) & ~foreground

    def create_metrics(self, boxes: bool, masks: bool) -> dict[str, CountMetric]:
        metrics: dict[str, CountMetric] = {}
        if boxes:
            metrics["box"] = BoxAccumulator(self.cam_curve_interval, self.iou_thresholds)
        if masks:
            metrics["pxap"] = PxAPAccumulator(self.cam_curve_interval)
        return metrics

    def update(self, metrics: Mapping[str, CountMetric], batch: MapBatch) -> None:
        scoremaps = batch.scoremaps
        if scoremaps is None:
            scoremaps = self.scoremaps(batch.sources)
        gt = batch.gt
        if "box" in metrics:
            boxes = [
                self.gt_boxes(b, size, m.shape) for b, size, m in zip(gt.boxes, gt.sizes, scoremaps)
            ]
            metrics["box"].update(scoremaps, boxes)
        if "pxap" in metrics:
            ignores = gt.ignore if gt.ignore is not None else [None] * len(gt.masks)
            masks = [
                self.gt_masks(*pair, m.shape) for m, pair in zip(scoremaps, zip(gt.masks, ignores))
            ]
            metrics["pxap"].update(
                _stacked(scoremaps),
                np.stack([fg for fg, _ in masks]),
                np.stack([ignore for _, ignore in masks]),
            )

    def results(self, computed: Mapping[str, dict], choice: Mapping | None = None) -> dict:
        out = {}
        if "box" in computed:
            box = computed["box"]
            out["MaxBoxAcc"] = box["MaxBoxAcc"]
            out["MaxBoxAccV2"] = box["MaxBoxAccV2"]
            for delta, value in zip(box["iou_thresholds"], box["MaxBoxAccV2_per_iou"]):
                out[f"MaxBoxAccV2@{delta}"] = value
        if "pxap" in computed:
            out["PxAP"] = computed["pxap"]["PxAP"]
        return out

    def curves(self, computed: Mapping[str, dict]) -> list[tuple[str, list, list]]:
        out = []
        if "box" in computed:
            box = computed["box"]
            for delta, ys in box["box_acc_curve_v2"].items():
                out.append((f"box_acc_v2@{delta}", box["box_cam_thresholds"], ys))
        if "pxap" in computed:
            pxap = computed["pxap"]
            out.append(("pxap_pr", pxap["pxap_recall"], pxap["pxap_precision"]))
        return out


# -- peak ----------------------------------------------------------------------------------------
@register_protocol("peak")
class Peak(Protocol):
    """Peak-IoU and Peak-T: the best pooled IoU over 256 map levels (SEM, SPA2Net).

    MsterDC/SPA2Net's val_mask: the map at the original size against masks > 128."""

    name = "peak"
    mask_threshold = 128  # foreground: any instance > 128 (SPA2Net's val_mask)

    def specs(self) -> tuple[MetricSpec, ...]:
        return (
            MetricSpec("PeakIoU", "Peak-IoU"),
            MetricSpec("PeakT", "Peak-T", better=0, decimals=0),
        )

    def gt_mask(self, mask: np.ndarray) -> np.ndarray:
        return np.asarray(mask) > self.mask_threshold

    def create_metrics(self, boxes: bool, masks: bool) -> dict[str, CountMetric]:
        return {"peak": PeakAccumulator()} if masks else {}

    def update(self, metrics: Mapping[str, CountMetric], batch: MapBatch) -> None:
        if "peak" in metrics:
            metrics["peak"].update(batch.gt_maps(), [self.gt_mask(m) for m in batch.gt.masks])

    def results(self, computed: Mapping[str, dict], choice: Mapping | None = None) -> dict:
        if "peak" not in computed:
            return {}
        return {"PeakIoU": computed["peak"]["PeakIoU"], "PeakT": computed["peak"]["PeakT"]}

    def curves(self, computed: Mapping[str, dict]) -> list[tuple[str, list, list]]:
        if "peak" not in computed:
            return []
        return [("peak_iou", list(range(LEVELS)), computed["peak"]["peak_iou_curve"])]


# -- helpers -------------------------------------------------------------------------------------
def resize_nearest(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A mask (bool or uint8) resized to ``shape`` (H, W) by nearest neighbour (OpenCV's, as
    upstream); nearest neighbour only picks pixels, so it commutes with any threshold."""
    mask = np.asarray(mask)
    if mask.shape == tuple(shape):
        return mask
    resized = cv2.resize(
        mask.astype(np.uint8), (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST
    )
    return resized.astype(mask.dtype)


def _stacked(maps) -> Any:
    """A list of equal-shape maps as one (N, H, W) tensor (arrays and tensors pass through)."""
    if isinstance(maps, (list, tuple)):
        return torch.stack([torch.as_tensor(m) for m in maps])
    return maps


def create_protocols(
    settings: Mapping[str, Any] | None = None, names: Sequence[str] | None = None
) -> dict[str, Protocol]:
    """The registered protocols (or ``names``), each built from the ``settings`` keys its
    constructor takes (a suite's ``[evaluation]`` table: map_size, cam_curve_interval,
    iou_thresholds, box_thresholds)."""
    settings = dict(settings or {})
    out = {}
    for name in names or PROTOCOLS.registered():
        factory = PROTOCOLS.get(name)
        accepted = inspect.signature(factory).parameters
        out[name] = factory(**{k: v for k, v in settings.items() if k in accepted})
    return out


def default_protocols() -> dict[str, Protocol]:
    """Every registered protocol with its default settings (the report's metric names)."""
    return create_protocols()
