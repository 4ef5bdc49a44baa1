"""What every protocol shares: the metric and table declarations, the batch a protocol scores,
and the ``Protocol`` base class (docs/protocols.md).

A protocol owns, in one place, everything that makes its numbers mean what the published
tables mean: how score maps are prepared (resize mode and size, normalization), how the
dataset's native annotations become its ground truth, which accumulators it feeds, the names
and directions of its results, its per-image records and the statistics the bootstrap
resamples from them, the tables and columns it contributes to a report, and its rules in
words (for the cross-protocol comparison). The evaluator, the bench, ``wsolbench evaluate``,
the bootstrap, the per-image records and the report tables loop over protocols and name none
of their state keys; a new protocol is one module of this package plus its import line.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import cv2
import numpy as np
import torch

from wsolbench.evaluation.per_image import CountMetric
from wsolbench.evaluation.resampling import Statistic

# The aspects in which protocols differ, in the order the cross-protocol comparison names them.
RULE_ASPECTS = ("frame", "preparation", "box", "iou", "averaging", "threshold")


@dataclass(frozen=True)
class MetricSpec:
    """One number a protocol reports: its name in the results table and how it reads."""

    name: str  # the results table's `metric` (e.g. "GTKnownLoc")
    label: str  # as printed (e.g. "GT-known Loc")
    better: int = 1  # +1 higher is better, -1 lower is better, 0 neither (a threshold)
    decimals: int = 2
    measured: bool = True  # False: a setting chosen elsewhere, not a statistic of the images
    # Position in the leaderboard's headline table (0: not there); the headline mixes the
    # protocols' main numbers, so the positions are one sequence over all protocols.
    headline: int = 0
    postprocessed: bool = True  # False: the post-processor cannot change it (classification)
    # The quantity it measures in the cross-protocol table (e.g. "GT-known Loc"): the same
    # quantity under two protocols' rules ("" : not compared across protocols).
    quantity: str = ""


@dataclass(frozen=True)
class ColumnSpec:
    """One column of a report table: a protocol's metric, or ``100 - value`` as an error."""

    protocol: str
    metric: str
    error: bool = False
    decimals: int | None = None  # None: the metric's own
    compare: bool = True  # False: one column, not plain | + SCG | difference


@dataclass(frozen=True)
class TableSpec:
    """A report table a protocol contributes (``Protocol.tables``); ``order`` places it among
    every protocol's tables; ``requires``: at least one of these metrics must be present (a
    table is not built from borrowed columns alone); ``layout`` "ablation" lays rows out as
    the RAM ablation (no RAM / RAM / difference)."""

    key: str
    title: str
    note: str
    columns: tuple[ColumnSpec, ...]
    order: int = 100
    requires: tuple[str, ...] = ()
    layout: str = "settings"


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
    # Per image, the top-1 predicted class's raw map where a protocol reads it (SCM's
    # GT-known); None where it is not known (an image whose top-1 class is its GT class has
    # ``sources[i]``).
    top1_sources: Sequence | None = None

    def gt_maps(self) -> list:
        """The GT class's map of every image."""
        if self.maps is not None:
            return [m[0] for m in self.maps]
        return list(self.scoremaps)


class Protocol:
    """A named evaluation protocol (see the module docstring). Subclasses set ``name`` and
    ``rules`` and implement ``specs``, ``create_metrics``, ``update`` and ``results``; the other
    hooks have neutral defaults."""

    name: ClassVar[str]
    # Its rules in words, one short phrase per aspect of RULE_ASPECTS (docs/protocols.md).
    rules: ClassVar[Mapping[str, str]] = {}

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

    def per_threshold(self, computed: Mapping[str, dict]) -> dict[str, dict[str, float]]:
        """``metric -> {threshold as a decimal string: value}`` for the metrics that depend on
        a box threshold (``wsolbench evaluate`` writes them as ``<metric>_per_threshold``)."""
        return {}

    def curves(self, computed: Mapping[str, dict]) -> list[tuple[str, list, list]]:
        """``(curve name, x, y)`` of the curves this protocol draws."""
        return [
            (f"{metric}_per_threshold", [float(t) for t in values], list(values.values()))
            for metric, values in self.per_threshold(computed).items()
        ]

    def choose(self, computed: Mapping[str, dict]) -> dict:
        """Settings this protocol chooses on a split (call on val); {} when none."""
        return {}

    # -- per-image records and their resampling -------------------------------------------------
    def record_meta(self, metrics: Mapping[str, CountMetric], choice: Mapping | None) -> dict:
        """What its per-image records need beside the arrays (thresholds, the choice on val);
        keys unique over the protocols."""
        return {}

    def statistics(self, arrays: Mapping[str, np.ndarray], meta: Mapping) -> dict[str, Statistic]:
        """Its metrics (results names) as statistics of the per-image records ``arrays``
        (``<accumulator>.<field>``, this protocol's among others'); {} when they are absent."""
        return {}

    # -- report ---------------------------------------------------------------------------------
    def tables(self) -> tuple[TableSpec, ...]:
        """The report tables this protocol contributes."""
        return ()

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"


def raw_array(raw, dtype=np.float32) -> np.ndarray:
    """A raw class map (array, or tensor on any device) as a numpy array of ``dtype``."""
    if isinstance(raw, torch.Tensor):
        raw = raw.detach().cpu().numpy()
    return np.asarray(raw, dtype)


def threshold_key(threshold: float) -> str:
    """A threshold as the decimal string results are keyed by ("0.35", "0.001", "0")."""
    return f"{float(threshold):g}"


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


def stacked(maps) -> Any:
    """A list of equal-shape maps as one (N, H, W) tensor (arrays and tensors pass through)."""
    if isinstance(maps, (list, tuple)):
        return torch.stack([torch.as_tensor(m) for m in maps])
    return maps
