"""Metrics as functions of pooled per-image counts, for resampling (the report's bootstrap).

Every metric of wsolbench is a function of counts pooled over the images of a split (correct
images per threshold, pixel histograms). A protocol writes each of its metrics as a
``Statistic``: ``reduce(sum_i w_i x_i)``, ``x_i`` the image's row of sufficient statistics read
from the protocol's own per-image records, ``w_i`` how often a resample draws image i. One
matrix product gives every resample's pooled counts and the metric is then recomputed exactly
as the protocol computes it, vectorized over resamples. This module holds only the mechanics;
which rows and which reduction make a metric is the protocol's (``Protocol.statistics``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

Reduce = Callable[[np.ndarray, int], np.ndarray]  # pooled (B, K) or (B, G, K), images -> (B,)


@dataclass(frozen=True, eq=False)
class Statistic:
    """``reduce(weights @ rows)``; with ``groups`` (a group index per image, e.g. its class)
    the pooled counts are per group, ``(B, G, K)``; with ``parts``, the mean of other
    statistics' values (MaxBoxAccV2 = mean over IoU thresholds of each one's maximum)."""

    rows: np.ndarray | None  # (N, K) per-image sufficient statistics
    reduce: Reduce | None = None
    parts: tuple[Statistic, ...] = ()
    groups: np.ndarray | None = None

    @property
    def count(self) -> int:
        return len(self.rows) if self.rows is not None else self.parts[0].count

    def evaluate(self, pool: Callable[[Statistic], np.ndarray]) -> np.ndarray:
        """Values for the pooled counts ``pool(self)`` gives (one per resample)."""
        if self.parts:
            return np.mean([part.evaluate(pool) for part in self.parts], axis=0)
        return self.reduce(pool(self), self.count)

    def point(self) -> float:
        """The value on the images as they are (every image drawn once)."""
        return float(self.evaluate(Pooled(np.ones((1, self.count))))[0])


class Pooled:
    """``weights @ rows`` (per group where a statistic has groups) for one chunk of resamples,
    computed once per rows array (float32 for float32 rows: exact for 0/1 rows)."""

    def __init__(self, weights: np.ndarray):
        self.weights = {
            np.dtype(np.float64): weights,
            np.dtype(np.float32): weights.astype(np.float32),
        }
        self.cache: dict[tuple[int, int], np.ndarray] = {}

    def __call__(self, stat: Statistic) -> np.ndarray:
        rows, groups = stat.rows, stat.groups
        key = (id(rows), id(groups))
        if key not in self.cache:
            weights = self.weights.get(rows.dtype, self.weights[np.dtype(np.float64)])
            if groups is None:
                pooled = weights @ rows
            else:  # (B, G, K): each group's images summed apart (one sparse product per column)
                from scipy import sparse

                count = int(groups.max()) + 1 if len(groups) else 0
                member = sparse.csr_matrix(
                    (np.ones(len(groups)), (np.arange(len(groups)), groups)),
                    shape=(len(groups), count),
                )
                pooled = np.stack(
                    [(member.T @ (weights * rows[:, k]).T).T for k in range(rows.shape[1])], -1
                )
            self.cache[key] = np.asarray(pooled, np.float64)
        return self.cache[key]


# -- reductions shared by the protocols ----------------------------------------------------------
def percent(pooled: np.ndarray, count: int) -> np.ndarray:
    """The first column's share of the images, in %."""
    return 100.0 * pooled[:, 0] / count


def max_percent(pooled: np.ndarray, count: int) -> np.ndarray:
    """The best column's share of the images, in % (a maximum over thresholds)."""
    return 100.0 * pooled.max(1) / count


def at_best_first_half(width: int) -> Reduce:
    """Pooled rows ``[choice (width) | value (width)]``: the value, in %, at the column where
    the choice is largest (the first such column)."""

    def reduce(pooled: np.ndarray, count: int) -> np.ndarray:
        best = pooled[:, :width].argmax(1)
        return 100.0 * pooled[np.arange(len(pooled)), width + best] / count

    return reduce


def split_pair(reduce2: Callable[[np.ndarray, np.ndarray], np.ndarray], width: int) -> Reduce:
    """Pooled rows ``[a (width) | b]`` handed to ``reduce2(a, b)``."""
    return lambda pooled, count: reduce2(pooled[:, :width], pooled[:, width:])


def class_mean_percent(pooled: np.ndarray, count: int) -> np.ndarray:
    """Per-group pooled ``[images | hits...]`` (B, G, 1 + K): the mean over the groups drawn of
    each group's hit rate, in %, for the best of the K columns (K = 1: that column)."""
    images, hits = pooled[:, :, :1], pooled[:, :, 1:]
    with np.errstate(invalid="ignore", divide="ignore"):
        rates = np.where(images > 0, hits / images, np.nan)
    return 100.0 * np.nanmean(rates, axis=1).max(1)


def distinct_columns(bits: np.ndarray, thresholds: int) -> np.ndarray:
    """Unpack (N, ceil(T / 8)) packed correct-bits and drop each column equal to the previous
    one (the max over thresholds is unchanged; neighbouring thresholds that keep the same
    quantization level give equal columns: of 1000, at most 256 differ). float32 holds these
    0/1 counts exactly up to 2^24 images."""
    correct = np.unpackbits(bits, axis=-1, count=thresholds)
    keep = np.ones(correct.shape[1], bool)
    keep[1:] = (correct[:, 1:] != correct[:, :-1]).any(0)
    return correct[:, keep].astype(np.float32)


def pxap(foreground: np.ndarray, background: np.ndarray) -> np.ndarray:
    """PxAP of pooled histograms (B, bins), as ``PxAPAccumulator.compute`` (NaN without any
    positive pixel)."""
    tp = foreground[:, ::-1].cumsum(1)
    fp = background[:, ::-1].cumsum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = tp / (tp + fp)
        recall = tp / tp[:, -1:]
    terms = np.where((tp + fp)[:, 1:] != 0, precision[:, 1:] * np.diff(recall, axis=1), 0.0)
    return 100.0 * terms.sum(1)


def pixel_iou(foreground: np.ndarray, background: np.ndarray) -> np.ndarray:
    """The best pixel IoU over the bins' thresholds, in %, of pooled histograms (B, bins):
    ``tp / (fp + fn + tp)`` with ``tp``, ``fp`` counted from the top bin down (DA-WSOL's
    pIoU, ``libs/evaluation.py`` MaskEvaluator.compute)."""
    tp = foreground[:, ::-1].cumsum(1)
    fp = background[:, ::-1].cumsum(1)
    fn = foreground.sum(1, keepdims=True) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return 100.0 * (tp / (fp + fn + tp)).max(1)


def peak_curve(foreground: np.ndarray, background: np.ndarray) -> np.ndarray:
    """IoU per level (B, 256) of pooled 257-bin histograms, as ``PeakAccumulator.compute``."""
    levels = foreground.shape[1] - 1
    tp = foreground[:, ::-1].cumsum(1)[:, ::-1][:, :levels]
    fp = background[:, ::-1].cumsum(1)[:, ::-1][:, :levels]
    denominator = foreground.sum(1, keepdims=True) + fp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, tp / denominator, 0.0)
