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

from wsolbench.evaluation.protocols import registered_protocols
from wsolbench.evaluation.resampling import Pooled, Statistic
from wsolbench.report.per_image import Record

RESAMPLES = 1000
SEED = 2021
LEVEL = 0.95
_CHUNK = 100  # resamples per matrix product (bounds memory: _CHUNK x images weights)

MetricKey = tuple[str, str]  # (protocol, metric)


def statistics(record: Record) -> dict[MetricKey, Statistic]:
    """Every metric the record supports, as each registered protocol writes it from its own
    per-image records: ``(protocol, metric) -> Statistic``."""
    return {
        (name, metric): stat
        for name, protocol in registered_protocols().items()
        for metric, stat in protocol.statistics(record.arrays, record.meta).items()
    }


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


def replicates(stats: list[Statistic], resamples: int = RESAMPLES, seed: int = SEED) -> np.ndarray:
    """Bootstrap replicates (len(stats), resamples) of statistics over the same images; each
    distinct rows array is multiplied once per chunk of resamples."""
    count = stats[0].count
    out = np.empty((len(stats), resamples))
    start = 0
    for weights in image_weights(count, resamples, seed):
        stop = start + len(weights)
        pooled = Pooled(weights)
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
        # samples[(setting, (protocol, metric))] = (points per seed, replicates (seeds, B), seeds)
        self._samples: dict[tuple[SettingKey, MetricKey], tuple[np.ndarray, np.ndarray, tuple]] = {}
        self._seed_weights: dict[int, np.ndarray] = {}
        self.resamples, self.seed = resamples, seed
        pending: list[
            tuple[tuple[SettingKey, MetricKey], int, Statistic]
        ] = []  # (entry, seed index, stat)
        seeds_of: dict[tuple[SettingKey, MetricKey], tuple[int, ...]] = {}
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
        points: dict[tuple[SettingKey, MetricKey], dict[int, float]] = {}
        reps: dict[tuple[SettingKey, MetricKey], dict[int, np.ndarray]] = {}
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

    def _find(self, fields: Mapping[str, Any], metric: str, protocol: str | None):
        """The samples of ``metric`` (of ``protocol``; without one, of the only protocol that
        has a metric of that name for this setting)."""
        key = self.key(fields)
        if protocol is not None:
            return self._samples.get((key, (protocol, metric)))
        found = [v for (k, (_, m)), v in self._samples.items() if k == key and m == metric]
        return found[0] if len(found) == 1 else None

    def interval(
        self, fields: Mapping[str, Any], metric: str, protocol: str | None = None
    ) -> Interval | None:
        found = self._find(fields, metric, protocol)
        if found is None:
            return None
        value, samples = self._combined(found[0], found[1])
        return Interval(value, *percentile_interval(samples, self.level))

    def difference(
        self,
        fields_a: Mapping[str, Any],
        fields_b: Mapping[str, Any],
        metric: str,
        protocol: str | None = None,
        protocol_b: str | None = None,
        metric_b: str | None = None,
    ) -> Interval | None:
        """a - b with a paired interval (same images and seeds drawn on both sides); None
        unless both were measured on the same images with the same seeds. ``protocol_b`` and
        ``metric_b`` (default: the same) compare one quantity under two protocols."""
        a = self._find(fields_a, metric, protocol)
        b = self._find(fields_b, metric_b or metric, protocol_b or protocol)
        if a is None or b is None or a[2] != b[2] or a[1].shape != b[1].shape:
            return None
        value, samples = self._combined(a[0] - b[0], a[1] - b[1])
        return Interval(value, *percentile_interval(samples, self.level))

    def point(
        self, fields: Mapping[str, Any], metric: str, protocol: str | None = None
    ) -> float | None:
        found = self._find(fields, metric, protocol)
        return None if found is None else float(found[0].mean())
