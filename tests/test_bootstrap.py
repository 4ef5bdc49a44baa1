"""Bootstrap intervals: coverage on simulated data, paired vs unpaired, reproducibility,
several seeds."""

from __future__ import annotations

import numpy as np
import pytest

from wsolbench.evaluation.resampling import Statistic
from wsolbench.evaluation.resampling import max_percent as _max_percent
from wsolbench.evaluation.resampling import percent as _percent
from wsolbench.report.bootstrap import Bootstrap, percentile_interval, replicates
from wsolbench.report.per_image import Record


def _record(method, outcome, postprocessor="none", seed=0):
    """A record with only spa outcomes at one box threshold (0 = correct)."""
    outcome = np.asarray(outcome, np.uint8).reshape(-1, 1)
    count = len(outcome)
    arrays = {
        "index": np.arange(count),
        "classic.outcome": outcome,
        "classic.top5_loc": outcome == 0,
        "classic.gt_known_loc": outcome == 0,
        "classic.top1_cls": np.ones(count, bool),
        "classic.top5_cls": np.ones(count, bool),
    }
    return Record(
        {"dataset": "d", "method": method, "postprocessor": postprocessor, "seed": seed},
        arrays,
        {"box_threshold": 0.2, "box_thresholds": [0.2]},
    )


def test_intervals_cover_the_true_value_at_the_stated_rate():
    """Accuracy of p = 0.3 on 200 images, 300 simulated test sets: the 95 % interval should
    contain 30 in 95 % of them (binomial sampling error of the rate: 1.3 %; percentile
    bootstraps of a proportion at n = 200 run about one point low)."""
    rng = np.random.default_rng(0)
    hits, trials = 0, 300
    for trial in range(trials):
        correct = (rng.random(200) < 0.3).astype(np.float64)[:, None]
        samples = replicates([Statistic(correct, _percent)], resamples=400, seed=trial)[0]
        low, high = percentile_interval(samples)
        hits += low <= 30.0 <= high
    assert abs(hits / trials - 0.95) < 0.04


def test_max_over_thresholds_is_re_chosen_in_every_resample():
    """MaxBoxAcc-like statistic: two thresholds, each best on different images. The bootstrap
    distribution of the max is never below the pooled per-threshold accuracies' resamples."""
    rng = np.random.default_rng(1)
    columns = (rng.random((150, 2)) < [0.5, 0.48]).astype(np.float64)
    both = replicates(
        [
            Statistic(columns, _max_percent),
            Statistic(columns[:, :1], _percent),
            Statistic(columns[:, 1:], _percent),
        ],
        resamples=300,
    )
    assert (both[0] >= np.maximum(both[1], both[2]) - 1e-12).all()
    assert (both[0] > both[1]).any() and (both[0] > both[2]).any()


def test_paired_intervals_are_narrower_than_unpaired_on_correlated_data():
    rng = np.random.default_rng(2)
    count = 300
    plain = rng.random(count) < 0.4
    flip = rng.random(count) < 0.1  # + SCG changes 10 % of the outcomes, mostly to correct
    scg = np.where(flip, rng.random(count) < 0.8, plain)
    records = [_record("cam", np.where(plain, 0, 3)), _record("cam", np.where(scg, 0, 3), "scg")]
    boot = Bootstrap(records, resamples=500)
    paired = boot.difference(
        {"method": "cam", "dataset": "d", "postprocessor": "scg"},
        {"method": "cam", "dataset": "d", "postprocessor": "none"},
        "Top1Loc",
    )
    # Unpaired: resample the two sides independently.
    s_plain = replicates([Statistic(plain[:, None].astype(float), _percent)], 500, seed=11)[0]
    s_scg = replicates([Statistic(scg[:, None].astype(float), _percent)], 500, seed=12)[0]
    low, high = percentile_interval(s_scg - s_plain)
    assert paired.value == pytest.approx(100 * (scg.mean() - plain.mean()))
    assert paired.high - paired.low < 0.6 * (high - low)
    assert paired.low <= paired.value <= paired.high


def test_significance_mark_follows_the_interval():
    rng = np.random.default_rng(4)
    base = rng.random(200) < 0.3
    better = base | (rng.random(200) < 0.3)
    boot = Bootstrap(
        [
            _record("cam", np.where(base, 0, 3)),
            _record("cam", np.where(better, 0, 3), "scg"),
            _record("has", np.where(base, 0, 3)),
            _record("has", np.where(base, 0, 3), "scg"),
        ],
        resamples=300,
    )
    gain = boot.difference(
        {"dataset": "d", "method": "cam", "postprocessor": "scg"},
        {"dataset": "d", "method": "cam", "postprocessor": "none"},
        "Top1Loc",
    )
    none = boot.difference(
        {"dataset": "d", "method": "has", "postprocessor": "scg"},
        {"dataset": "d", "method": "has", "postprocessor": "none"},
        "Top1Loc",
    )
    assert gain.significant and gain.low > 0
    assert not none.significant and none.value == 0


def test_same_seed_gives_identical_intervals_and_another_seed_differs():
    rng = np.random.default_rng(5)
    outcome = rng.integers(0, 6, 120)
    records = [_record("cam", outcome), _record("cam", rng.integers(0, 6, 120), "scg")]
    key = {"dataset": "d", "method": "cam", "postprocessor": "none"}
    first = Bootstrap(records).interval(key, "err_part")
    again = Bootstrap(records).interval(key, "err_part")
    assert (first.low, first.high) == (again.low, again.high)
    stat = [Statistic((outcome == 3).astype(float)[:, None], _percent)]
    np.testing.assert_array_equal(replicates(stat, 200, seed=1), replicates(stat, 200, seed=1))
    assert not np.array_equal(replicates(stat, 200, seed=1), replicates(stat, 200, seed=2))


def test_several_seeds_are_combined_with_images():
    rng = np.random.default_rng(6)
    records = [
        _record("cam", np.where(rng.random(150) < p, 0, 3), seed=s)
        for s, p in ((0, 0.3), (1, 0.5), (2, 0.4))
    ]
    boot = Bootstrap(records, resamples=400)
    key = {"dataset": "d", "method": "cam", "postprocessor": "none"}
    combined = boot.interval(key, "Top1Loc")
    means = [100 * (r.arrays["classic.outcome"] == 0).mean() for r in records]
    assert combined.value == pytest.approx(np.mean(means))
    # Seed-to-seed spread widens the interval beyond one seed's image-only interval.
    single = Bootstrap(records[:1], resamples=400).interval(key, "Top1Loc")
    assert combined.high - combined.low > single.high - single.low
    assert combined.low < np.mean(means) < combined.high


def test_differences_need_the_same_images_and_seeds():
    records = [_record("cam", [0, 3, 0], seed=0), _record("cam", [0, 0, 0], "scg", seed=1)]
    boot = Bootstrap(records, resamples=50)
    assert (
        boot.difference(
            {"dataset": "d", "method": "cam", "postprocessor": "scg"},
            {"dataset": "d", "method": "cam", "postprocessor": "none"},
            "Top1Loc",
        )
        is None
    )
