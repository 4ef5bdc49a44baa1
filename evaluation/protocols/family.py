"""What the box-localization families (``tscam``, ``scm``, ``bas``) share: a scan of box
thresholds, per-image hits of their metrics at each (``FamilyLocAccumulator``), the headline at
the family's threshold rule (fixed per dataset, or the best of the scan per metric), the
per-threshold curves, the per-image statistics the bootstrap resamples.

A subclass sets its metrics, rules and dataset defaults and implements ``image_hits``: one
image's (metrics, thresholds) hits from its raw maps, GT boxes, class and predictions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from wsolbench import defaults
from wsolbench.errors import WsolbenchError
from wsolbench.evaluation.family_loc import FamilyLocAccumulator, decimal_thresholds
from wsolbench.evaluation.per_image import CountMetric
from wsolbench.evaluation.protocols.base import MapBatch, MetricSpec, Protocol, threshold_key
from wsolbench.evaluation.resampling import (
    Statistic,
    class_mean_percent,
    distinct_columns,
    max_percent,
    percent,
)

DATASETS = defaults.FAMILY_DATASETS


@dataclass(frozen=True)
class LocMetric:
    """One localization metric of a family: its results name, label, the quantity it is in the
    cross-protocol table, and what it needs (predictions; the top-1 class's own map)."""

    name: str
    label: str
    quantity: str
    predictions: bool = False
    top1_map: bool = False


class FamilyProtocol(Protocol):
    """A family's box localization (see the module docstring)."""

    metrics: ClassVar[tuple[LocMetric, ...]]
    per_class: ClassVar[bool] = False  # BAS: the mean of the classes' accuracies
    # Dataset -> the fixed box threshold of the family's released configuration (None: the
    # family scans its thresholds on the evaluated split and reports each metric's best).
    fixed: ClassVar[Mapping[str, float] | None] = None

    def __init__(self, dataset: str = defaults.FAMILY_DATASET, box_threshold: float | None = None):
        if dataset not in DATASETS:
            raise WsolbenchError(f"{self.name}: dataset must be one of {DATASETS}, got {dataset!r}")
        self.dataset = dataset
        self.box_threshold = None if box_threshold is None else float(box_threshold)
        scan = self.scan()
        threshold = self.threshold()
        if threshold is not None and threshold not in scan:
            scan = np.sort(np.append(scan, threshold))
        self.thresholds = scan

    # -- the threshold rule ---------------------------------------------------------------------
    def scan(self) -> np.ndarray:
        """The thresholds the per-threshold curves cover (the family's own scan where it scans,
        arange(0, 1, 0.01) as decimals where it fixes one)."""
        return decimal_thresholds(0.01)

    def threshold(self) -> float | None:
        """The headline's box threshold (--box-threshold, else the family's for the dataset);
        None: each metric at its best threshold of the scan."""
        if self.box_threshold is not None:
            return self.box_threshold
        return None if self.fixed is None else float(self.fixed[self.dataset])

    # -- scoring --------------------------------------------------------------------------------
    def image_hits(self, batch: MapBatch, index: int, label: int, topk) -> np.ndarray:
        """(len(metrics), len(thresholds)) bool hits of one image."""
        raise NotImplementedError

    def specs(self) -> tuple[MetricSpec, ...]:
        return tuple(MetricSpec(m.name, m.label, quantity=m.quantity) for m in self.metrics)

    def create_metrics(self, boxes: bool, masks: bool) -> dict[str, CountMetric]:
        if not boxes:
            return {}
        names = [m.name for m in self.metrics]
        return {self.name: FamilyLocAccumulator(names, self.thresholds, self.per_class)}

    def update(self, metrics: Mapping[str, CountMetric], batch: MapBatch) -> None:
        if self.name not in metrics:
            return
        labels = np.asarray(batch.labels).reshape(-1)
        topk = None if batch.topk is None else np.asarray(batch.topk).reshape(len(labels), -1)
        hits = np.stack(
            [
                self.image_hits(batch, i, int(labels[i]), None if topk is None else topk[i])
                for i in range(len(labels))
            ]
        )
        metrics[self.name].update(hits, labels, self.available(batch, labels, topk))

    def available(self, batch: MapBatch, labels, topk) -> list[bool]:
        """Which metrics this batch's inputs define (predictions; the top-1 class's map)."""
        out = []
        for metric in self.metrics:
            ok = not metric.predictions or topk is not None
            if ok and metric.top1_map:
                own = batch.top1_sources
                ok = all(
                    int(topk[i, 0]) == int(labels[i]) or (own is not None and own[i] is not None)
                    for i in range(len(labels))
                )
            out.append(ok)
        return out

    def results(self, computed: Mapping[str, dict], choice: Mapping | None = None) -> dict:
        if self.name not in computed:
            return {}
        per = computed[self.name]["per_threshold"]
        threshold = self.threshold()
        if threshold is None:
            return {metric: max(values) for metric, values in per.items()}
        at = int(np.flatnonzero(self.thresholds == threshold)[0])
        return {metric: values[at] for metric, values in per.items()}

    def per_threshold(self, computed: Mapping[str, dict]) -> dict[str, dict[str, float]]:
        if self.name not in computed:
            return {}
        per = computed[self.name]["per_threshold"]
        keys = [threshold_key(t) for t in self.thresholds]
        return {metric: dict(zip(keys, values)) for metric, values in per.items()}

    def curves(self, computed: Mapping[str, dict]) -> list[tuple[str, list, list]]:
        return [
            (f"{self.name}:{metric}", [float(t) for t in self.thresholds], list(values.values()))
            for metric, values in self.per_threshold(computed).items()
        ]

    # -- per-image records ----------------------------------------------------------------------
    def record_meta(self, metrics: Mapping[str, CountMetric], choice: Mapping | None) -> dict:
        if self.name not in metrics:
            return {}
        return {
            f"{self.name}.thresholds": self.thresholds.tolist(),
            f"{self.name}.threshold": self.threshold(),
            f"{self.name}.metrics": [m.name for m in self.metrics],
        }

    def statistics(self, arrays: Mapping[str, np.ndarray], meta: Mapping) -> dict[str, Statistic]:
        key = f"{self.name}.hits"
        if key not in arrays:
            return {}
        thresholds = np.asarray(meta[f"{self.name}.thresholds"])
        hits = np.unpackbits(arrays[key], axis=-1, count=len(thresholds))
        threshold = meta[f"{self.name}.threshold"]
        labels = arrays[f"{self.name}.label"].astype(np.int64)
        names = [m.name for m in self.metrics]
        out = {}
        for metric in meta[f"{self.name}.metrics"]:
            column = hits[:, names.index(metric)]
            if threshold is None:  # the best of the scan, re-chosen in every resample
                packed = np.packbits(column.astype(bool), axis=-1)
                out[metric] = Statistic(distinct_columns(packed, column.shape[1]), max_percent)
                continue
            at = int(np.flatnonzero(thresholds == threshold)[0])
            if self.per_class:
                rows = np.stack([np.ones(len(column)), column[:, at]], 1).astype(np.float32)
                out[metric] = Statistic(rows, class_mean_percent, groups=labels)
            else:
                out[metric] = Statistic(column[:, at : at + 1].astype(np.float32), percent)
        return out


def in_topk(label: int, topk: Sequence[int] | None, k: int) -> bool:
    return topk is not None and any(int(c) == label for c in list(topk)[:k])
