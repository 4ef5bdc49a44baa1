"""Bootstrap confidence intervals over test images, from the per-image statistics.

Every metric of wsolbench is a function of counts pooled over the images of a split (correct
images per threshold, pixel histograms). So each metric is written here as ``reduce(sum_i w_i
x_i)``: ``x_i`` the image's row of sufficient statistics, ``w_i`` how often a bootstrap resample
draws image i. One matrix product gives every resample's pooled counts and the metric is then
recomputed exactly as the evaluator does, vectorized over resamples (MaxBoxAcc / MaxBoxAccV2
re-choose their best CAM threshold in every resample; PxAP and Peak-IoU recompute their curves).

- 95 % percentile intervals, ``RESAMPLES`` resamples from a fixed seed, so reports are
  reproducible; the resamples depend only on the number of images (and seeds), so every setting
  of a split is resampled identically and differences are paired (same images drawn).
- Several training seeds: each resample draws seeds with replacement as well as images and
  averages the metric over the drawn seeds (the tables show the mean over seeds).
- Differences (plain vs + SCG, RAM vs no RAM) use the same resamples on both sides; a
  difference is significant when its interval excludes zero.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from wsolbench.evaluation.classic_loc import OUTCOMES
from wsolbench.evaluation.protocols import ON_TEST, SPA_ERRORS
from wsolbench.report.per_image import Record

RESAMPLES = 1000
SEED = 2021
LEVEL = 0.95
_CHUNK = 100  # resamples per matrix product (bounds memory: _CHUNK x images weights)

Reduce = Callable[[np.ndarray, int], np.ndarray]  # pooled (B, K), image count -> (B,)


@dataclass(frozen=True)
class Statistic:
    """``reduce(weights @ rows)``; or, with ``parts``, the mean of other statistics' values
    (MaxBoxAccV2 = mean over IoU thresholds of each one's maximum over CAM thresholds)."""

    rows: np.ndarray | None  # (N, K) per-image sufficient statistics
    reduce: Reduce | None = None
    parts: tuple[Statistic, ...] = ()

    @property
    def count(self) -> int:
        return len(self.rows) if self.rows is not None else self.parts[0].count

    def evaluate(self, pooled_of: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        """Values for pooled counts given by ``pooled_of(rows)`` (cached per rows array)."""
        if self.parts:
            return np.mean([part.evaluate(pooled_of) for part in self.parts], axis=0)
        return self.reduce(pooled_of(self.rows), self.count)

    def point(self) -> float:
        return float(self.evaluate(lambda rows: rows.sum(0, dtype=np.float64)[None])[0])


def _percent(pooled: np.ndarray, count: int) -> np.ndarray:
    return 100.0 * pooled[:, 0] / count


def _at_best_first_half(width: int) -> Reduce:
    """Pooled rows ``[choice (width) | value (width)]``: the value, in %, at the column where
    the choice is largest (the first such column)."""

    def reduce(pooled: np.ndarray, count: int) -> np.ndarray:
        best = pooled[:, :width].argmax(1)
        return 100.0 * pooled[np.arange(len(pooled)), width + best] / count

    return reduce


def _max_percent(pooled: np.ndarray, count: int) -> np.ndarray:
    return 100.0 * pooled.max(1) / count


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


def peak_curve(foreground: np.ndarray, background: np.ndarray) -> np.ndarray:
    """IoU per level (B, 256) of pooled 257-bin histograms, as ``PeakAccumulator.compute``."""
    levels = foreground.shape[1] - 1
    tp = foreground[:, ::-1].cumsum(1)[:, ::-1][:, :levels]
    fp = background[:, ::-1].cumsum(1)[:, ::-1][:, :levels]
    denominator = foreground.sum(1, keepdims=True) + fp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, tp / denominator, 0.0)


def _split_pair(reduce2: Callable[[np.ndarray, np.ndarray], np.ndarray], width: int) -> Reduce:
    return lambda pooled, count: reduce2(pooled[:, :width], pooled[:, width:])


def _distinct_columns(bits: np.ndarray, thresholds: int) -> np.ndarray:
    """Unpack (N, ceil(T / 8)) packed correct-bits and drop each column equal to the previous
    one (the max over thresholds is unchanged; neighbouring thresholds that keep the same
    quantization level give equal columns: of 1000, at most 256 differ). float32 holds these
    0/1 counts exactly up to 2^24 images."""
    correct = np.unpackbits(bits, axis=-1, count=thresholds)
    keep = np.ones(correct.shape[1], bool)
    keep[1:] = (correct[:, 1:] != correct[:, :-1]).any(0)
    return correct[:, keep].astype(np.float32)


def statistics(record: Record) -> dict[str, Statistic]:
    """Every metric the record supports, named as in the results table."""
    arrays, meta, out = record.arrays, record.meta, {}
    if "classic.outcome" in arrays:
        t = record.box_threshold_index()
        outcome = arrays["classic.outcome"][:, t]
        columns = {
            "top1_loc": outcome == 0,
            "top5_loc": arrays["classic.top5_loc"][:, t],
            "gt_known_loc": arrays["classic.gt_known_loc"][:, t],
            "top1_cls": arrays["classic.top1_cls"],
            "top5_cls": arrays["classic.top5_cls"],
        }
        columns.update(
            {metric: outcome == OUTCOMES.index(kind) for kind, metric in SPA_ERRORS.items()}
        )
        out.update(
            {
                metric: Statistic(np.asarray(column, np.float32)[:, None], _percent)
                for metric, column in columns.items()
            }
        )
        # At the threshold the resampled images choose themselves (the spa protocol's rule on
        # the evaluated split: best GT-known Loc, the smallest threshold on ties), re-chosen in
        # every resample as MaxBoxAcc re-chooses its CAM threshold.
        order = np.argsort(np.asarray(meta["box_thresholds"], np.float64), kind="stable")
        known = arrays["classic.gt_known_loc"][:, order]
        per_threshold = {
            "top1_loc": arrays["classic.outcome"][:, order] == 0,
            "top5_loc": arrays["classic.top5_loc"][:, order],
            "gt_known_loc": known,
        }
        for metric, values in per_threshold.items():
            rows = np.concatenate([known, values], 1).astype(np.float32)
            out[f"{metric}{ON_TEST}"] = Statistic(rows, _at_best_first_half(len(order)))
    if "box.correct_v1" in arrays:
        deltas, count = list(meta["deltas"]), len(meta["cam_thresholds"])
        v1 = _distinct_columns(arrays["box.correct_v1"][:, deltas.index(50)], count)
        out["MaxBoxAcc"] = Statistic(v1, _max_percent)
        per_iou = [
            _distinct_columns(arrays["box.correct_v2"][:, deltas.index(d)], count)
            for d in meta["iou_thresholds"]
        ]
        for delta, columns in zip(meta["iou_thresholds"], per_iou):
            out[f"MaxBoxAccV2@{delta}"] = Statistic(columns, _max_percent)
        out["MaxBoxAccV2"] = Statistic(
            None, parts=tuple(out[f"MaxBoxAccV2@{d}"] for d in meta["iou_thresholds"])
        )
    if "pxap.foreground" in arrays:
        fg, bg = arrays["pxap.foreground"], arrays["pxap.background"]
        out["PxAP"] = Statistic(
            np.concatenate([fg, bg], 1).astype(np.float64), _split_pair(pxap, fg.shape[1])
        )
    if "peak.foreground" in arrays:
        fg, bg = arrays["peak.foreground"], arrays["peak.background"]
        rows = np.concatenate([fg, bg], 1).astype(np.float64)
        out["PeakIoU"] = Statistic(
            rows, _split_pair(lambda f, b: 100.0 * peak_curve(f, b).max(1), fg.shape[1])
        )
        out["PeakT"] = Statistic(
            rows, _split_pair(lambda f, b: peak_curve(f, b).argmax(1).astype(float), fg.shape[1])
        )
    return out


def image_weights(count: int, resamples: int = RESAMPLES, seed: int = SEED) -> Iterable[np.ndarray]:
    """Resample counts (chunk, count): how often each image is drawn, ``resamples`` rows in
    chunks, a function of (count, resamples, seed) only."""
    rng = np.random.default_rng([seed, count])
    for start in range(0, resamples, _CHUNK):
        size = min(_CHUNK, resamples - start)
        draws = rng.integers(0, count, (size, count)) + np.arange(size)[:, None] * count
        yield (
            np.bincount(draws.ravel(), minlength=size * count)
            .reshape(size, count)
            .astype(np.float64)
        )


def seed_weights(seeds: int, resamples: int = RESAMPLES, seed: int = SEED) -> np.ndarray:
    """(resamples, seeds) fractions: seeds drawn with replacement (all 1 for one seed)."""
    if seeds == 1:
        return np.ones((resamples, 1))
    rng = np.random.default_rng([seed, seeds, 1])
    return rng.multinomial(seeds, np.full(seeds, 1.0 / seeds), size=resamples) / seeds


class _Pooled:
    """``weights @ rows`` for one chunk of resamples, computed once per rows array (in float32
    for float32 rows: exact for 0/1 rows)."""

    def __init__(self, weights: np.ndarray):
        self.weights = {
            np.dtype(np.float64): weights,
            np.dtype(np.float32): weights.astype(np.float32),
        }
        self.cache: dict[int, np.ndarray] = {}

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        if id(rows) not in self.cache:
            weights = self.weights.get(rows.dtype, self.weights[np.dtype(np.float64)])
            self.cache[id(rows)] = (weights @ rows).astype(np.float64)
        return self.cache[id(rows)]


def replicates(stats: list[Statistic], resamples: int = RESAMPLES, seed: int = SEED) -> np.ndarray:
    """Bootstrap replicates (len(stats), resamples) of statistics over the same images; each
    distinct rows array is multiplied once per chunk of resamples."""
    count = stats[0].count
    out = np.empty((len(stats), resamples))
    start = 0
    for weights in image_weights(count, resamples, seed):
        stop = start + len(weights)
        pooled = _Pooled(weights)
        for index, stat in enumerate(stats):
            out[index, start:stop] = stat.evaluate(pooled)
        start = stop
    return out


def percentile_interval(samples: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    tail = 100.0 * (1.0 - level) / 2.0
    low, high = np.nanpercentile(samples, [tail, 100.0 - tail])
    return float(low), float(high)


@dataclass
class Interval:
    value: float  # the point estimate (mean over seeds)
    low: float
    high: float

    @property
    def significant(self) -> bool:
        """The interval excludes zero (meaningful for differences)."""
        return self.low > 0 or self.high < 0

    def transformed(self, transform: Callable[[float], float]) -> Interval:
        ends = sorted((transform(self.low), transform(self.high)))
        return Interval(transform(self.value), ends[0], ends[1])


SettingKey = tuple[tuple[str, str], ...]


def setting_key(fields: Mapping[str, Any], axes: Iterable[str]) -> SettingKey:
    return tuple((axis, str(fields[axis])) for axis in axes if axis in fields)


class Bootstrap:
    """Intervals of every metric of every setting, and paired intervals of differences.

    Settings are the records' keys without the seed; records of one setting and several seeds
    are combined (seeds resampled along with images)."""

    def __init__(
        self,
        records: list[Record],
        resamples: int = RESAMPLES,
        seed: int = SEED,
        level: float = LEVEL,
    ):
        self.level = level
        self.axes = tuple(dict.fromkeys(k for r in records for k in r.key if k != "seed"))
        groups: dict[SettingKey, list[Record]] = {}
        for record in records:
            groups.setdefault(setting_key(record.key, self.axes), []).append(record)
        # samples[(setting, metric)] = (points per seed, replicates (seeds, B), seeds)
        self._samples: dict[tuple[SettingKey, str], tuple[np.ndarray, np.ndarray, tuple]] = {}
        self._seed_weights: dict[int, np.ndarray] = {}
        self.resamples, self.seed = resamples, seed
        pending: list[
            tuple[tuple[SettingKey, str], int, Statistic]
        ] = []  # (entry, seed index, stat)
        seeds_of: dict[tuple[SettingKey, str], tuple[int, ...]] = {}
        for key, group in groups.items():
            group = sorted(group, key=lambda r: int(r.key.get("seed", 0)))
            per_seed = [statistics(r) for r in group]
            for metric in sorted(set.intersection(*(set(s) for s in per_seed))):
                stats = [s[metric] for s in per_seed]
                if len({s.count for s in stats}) != 1:
                    continue
                seeds_of[(key, metric)] = tuple(int(r.key.get("seed", 0)) for r in group)
                pending += [((key, metric), index, stat) for index, stat in enumerate(stats)]
        # One pass over the resamples per image count: every statistic sees the same draws.
        points: dict[tuple[SettingKey, str], dict[int, float]] = {}
        reps: dict[tuple[SettingKey, str], dict[int, np.ndarray]] = {}
        for count in sorted({stat.count for _, _, stat in pending}):
            same = [item for item in pending if item[2].count == count]
            values = replicates([stat for _, _, stat in same], resamples, seed)
            for (entry, index, stat), row in zip(same, values):
                points.setdefault(entry, {})[index] = stat.point()
                reps.setdefault(entry, {})[index] = row
        for entry, seeds in seeds_of.items():
            order = range(len(seeds))
            self._samples[entry] = (
                np.array([points[entry][i] for i in order]),
                np.stack([reps[entry][i] for i in order]),
                seeds,
            )

    def _combined(self, points: np.ndarray, reps: np.ndarray) -> tuple[float, np.ndarray]:
        count = len(points)
        if count not in self._seed_weights:
            self._seed_weights[count] = seed_weights(count, self.resamples, self.seed)
        weights = self._seed_weights[count]  # (B, seeds)
        return float(points.mean()), (weights * reps.T).sum(1)

    def key(self, fields: Mapping[str, Any]) -> SettingKey:
        return setting_key(fields, self.axes)

    def interval(self, fields: Mapping[str, Any], metric: str) -> Interval | None:
        found = self._samples.get((self.key(fields), metric))
        if found is None:
            return None
        value, samples = self._combined(found[0], found[1])
        return Interval(value, *percentile_interval(samples, self.level))

    def difference(
        self, fields_a: Mapping[str, Any], fields_b: Mapping[str, Any], metric: str
    ) -> Interval | None:
        """a - b with a paired interval (same images and seeds drawn on both sides); None
        unless both were measured on the same images with the same seeds."""
        a = self._samples.get((self.key(fields_a), metric))
        b = self._samples.get((self.key(fields_b), metric))
        if a is None or b is None or a[2] != b[2] or a[1].shape != b[1].shape:
            return None
        value, samples = self._combined(a[0] - b[0], a[1] - b[1])
        return Interval(value, *percentile_interval(samples, self.level))

    def point(self, fields: Mapping[str, Any], metric: str) -> float | None:
        found = self._samples.get((self.key(fields), metric))
        return None if found is None else float(found[0].mean())
