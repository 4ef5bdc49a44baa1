"""Per-image statistics: they add up to the evaluator's pooled counts, and the metrics
recomputed from them equal the aggregate metrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wsolbench.evaluation import (
    BoxAccumulator,
    ClassicLocAccumulator,
    PeakAccumulator,
    PxAPAccumulator,
)
from wsolbench.evaluation.classic_loc import ERROR_TYPES, OUTCOMES
from wsolbench.evaluation.protocols import Spa
from wsolbench.report import per_image
from wsolbench.report.bootstrap import statistics


def _maps(rng, count, size=24):
    """Smooth blobs (several per map) so that boxes vary with the threshold."""
    ys, xs = np.mgrid[0:size, 0:size]
    maps = np.zeros((count, size, size))
    for i in range(count):
        for _ in range(rng.integers(1, 4)):
            cy, cx, s = rng.uniform(0, size), rng.uniform(0, size), rng.uniform(2, 7)
            maps[i] += rng.uniform(0.3, 1) * np.exp(
                -((ys - cy) ** 2 + (xs - cx) ** 2) / (2 * s * s)
            )
        maps[i] /= maps[i].max()
    return maps


def _boxes(rng, count, size=24):
    out = []
    for _ in range(count):
        boxes = []
        for _ in range(rng.integers(1, 3)):
            x0, y0 = rng.integers(0, size - 6, 2)
            boxes.append([x0, y0, x0 + rng.integers(3, 12), y0 + rng.integers(3, 12)])
        out.append(np.minimum(np.array(boxes), size - 1))
    return out


@pytest.fixture(scope="module")
def scored():
    rng = np.random.default_rng(3)
    count, size = 40, 24
    maps, boxes = _maps(rng, count, size), _boxes(rng, count, size)
    masks = maps > rng.uniform(0.2, 0.6, (count, 1, 1))
    box = BoxAccumulator(0.01, (30, 50, 70)).keep_per_image()
    pxap = PxAPAccumulator(0.01).keep_per_image()
    peak = PeakAccumulator().keep_per_image()
    classic = ClassicLocAccumulator((0.1, 0.3, 0.5)).keep_per_image()
    labels = rng.integers(0, 3, count)
    top5 = np.stack([np.roll(np.arange(5), -int(r)) for r in rng.integers(0, 5, count)])
    top5[: count // 2, 0] = labels[: count // 2]  # half classified right
    for start in range(0, count, 16):  # several batches
        part = slice(start, start + 16)
        box.update(torch.from_numpy(maps[part]), boxes[part])
        pxap.update(maps[part], masks[part])
        peak.update(list(maps[part]), list(masks[part]))
        loc = [torch.from_numpy(np.stack([maps[i]] * 5)) for i in range(count)][part]
        classic.update(
            labels[part], top5[part], loc, list(torch.from_numpy(maps[part])), boxes[part]
        )
    return box, pxap, peak, classic


def test_per_image_records_add_up_to_the_pooled_counts(scored):
    box, pxap, peak, classic = scored
    arrays = box.per_image_arrays()
    thresholds = len(box.thresholds)
    for name, pooled in (("correct_v1", box.correct_v1), ("correct_v2", box.correct_v2)):
        bits = np.unpackbits(arrays[name], axis=-1, count=thresholds)  # (N, D, T)
        np.testing.assert_array_equal(bits.sum(0).T, pooled)
    for acc in (pxap, peak):
        arrays = acc.per_image_arrays()
        np.testing.assert_array_equal(arrays["foreground"].sum(0, dtype=np.int64), acc.foreground)
        np.testing.assert_array_equal(arrays["background"].sum(0, dtype=np.int64), acc.background)
    arrays = classic.per_image_arrays()
    np.testing.assert_array_equal((arrays["outcome"] == 0).sum(0), classic.top1_loc)
    for k, kind in enumerate(ERROR_TYPES):
        np.testing.assert_array_equal(
            (arrays["outcome"] == OUTCOMES.index(kind)).sum(0), classic.errors[:, k]
        )
    np.testing.assert_array_equal(arrays["gt_known_loc"].sum(0), classic.gt_known_loc)
    np.testing.assert_array_equal(arrays["top5_loc"].sum(0), classic.top5_loc)
    assert (
        arrays["top1_cls"].sum() == classic.top1_cls
        and arrays["top5_cls"].sum() == classic.top5_cls
    )
    assert arrays["top1_box"].shape == (40, 3, 4)


def test_metrics_recomputed_from_per_image_data_equal_the_aggregates(scored):
    box, pxap, peak, classic = scored
    arrays = {"index": np.arange(40)}
    for name, acc in (("box", box), ("pxap", pxap), ("peak", peak), ("classic", classic)):
        arrays.update({f"{name}.{k}": v for k, v in acc.per_image_arrays().items()})
    meta = {
        "box_threshold": 0.3,
        "box_thresholds": [0.1, 0.3, 0.5],
        "cam_thresholds": box.thresholds.tolist(),
        "deltas": box.deltas.tolist(),
        "iou_thresholds": [30, 50, 70],
    }
    record = per_image.Record({"method": "m", "postprocessor": "none"}, arrays, meta)
    stats = {metric: stat for (_, metric), stat in statistics(record).items()}
    expected = {**box.compute(), **pxap.compute(), **peak.compute()}
    at = classic.compute()["classic_per_threshold"]["0.3"]
    expected.update(
        Top1Loc=at["Top1Loc"],
        Top5Loc=at["Top5Loc"],
        GTKnownLoc=at["GTKnownLoc"],
        err_part=at["error_part"],
        err_cls=at["error_cls"],
        Top1Cls=classic.compute()["Top1Cls"],
    )
    for delta, value in zip((30, 50, 70), expected["MaxBoxAccV2_per_iou"]):
        expected[f"MaxBoxAccV2@{delta}"] = value
    for metric in (
        "MaxBoxAcc",
        "MaxBoxAccV2",
        "MaxBoxAccV2@30",
        "MaxBoxAccV2@70",
        "PxAP",
        "PeakIoU",
        "PeakT",
        "Top1Loc",
        "Top5Loc",
        "GTKnownLoc",
        "err_part",
        "err_cls",
        "Top1Cls",
    ):
        assert stats[metric].point() == pytest.approx(expected[metric], abs=1e-9), metric
    # Non-trivial data: not every image is correct, several thresholds differ.
    assert 0 < expected["MaxBoxAcc"] < 100 and 0 < expected["PxAP"] < 100


def test_box_records_keep_the_input_order_with_maps_of_several_sizes():
    rng = np.random.default_rng(0)
    small, large = _maps(rng, 3, 16), _maps(rng, 3, 24)
    maps = [small[0], large[0], small[1], large[1], small[2], large[2]]
    boxes = [np.array([[2, 2, 8, 8]])] * 6
    mixed = BoxAccumulator(0.05).keep_per_image()
    mixed.update(maps, boxes)
    one_by_one = BoxAccumulator(0.05).keep_per_image()
    for m, b in zip(maps, boxes):
        one_by_one.update([m], [b])
    for key, value in mixed.per_image_arrays().items():
        np.testing.assert_array_equal(value, one_by_one.per_image_arrays()[key])


def test_save_and_load_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    record = per_image.Record(
        {"dataset": "d", "method": "cam", "postprocessor": "scg", "seed": 3},
        {"index": np.arange(4), "classic.outcome": rng.integers(0, 6, (4, 2)).astype(np.uint8)},
        {"box_threshold": 0.2, "box_thresholds": [0.1, 0.2]},
    )
    images = per_image.ImageSet(
        "d",
        ["a.png", "b.png", "c.png", "d.png"],
        np.arange(4),
        [np.array([[0, 0, 3, 3]])] * 4,
        np.full((4, 2), 10),
        {1: np.zeros((5, 6, 3), np.uint8), 3: np.full((7, 4, 3), 200, np.uint8)},
    )
    path = per_image.save(tmp_path / "p.npz", [record], [images])
    records, image_sets = per_image.load(path)
    assert records[0].key == record.key and records[0].meta == record.meta
    np.testing.assert_array_equal(
        records[0].arrays["classic.outcome"], record.arrays["classic.outcome"]
    )
    assert image_sets[0].pictures[3].shape == (7, 4, 3) and image_sets[0].image_ids[2] == "c.png"
    assert np.abs(image_sets[0].pictures[3].astype(int) - 200).max() <= 2  # JPEG, display only
    assert Spa.threshold_index(records[0].meta) == 1


def test_a_broken_per_image_file_is_one_clear_error(tmp_path):
    from wsolbench.errors import WsolbenchError

    bad = tmp_path / "per_image.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(WsolbenchError, match="per_image.npz"):
        per_image.load(bad)
