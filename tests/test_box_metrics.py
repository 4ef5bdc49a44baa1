"""MaxBoxAcc / MaxBoxAccV2: hand-made maps and a randomized equivalence with the OpenCV oracle."""

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from box_reference import boxes_at_threshold, reference_correct_counts  # noqa: E402
from map_families import FAMILIES, family_maps, gt_boxes  # noqa: E402

from wsolbench.errors import ScoreMapError, WsolbenchError
from wsolbench.evaluation import BoxAccumulator, box_iou, evaluate_scoremaps, rescale_boxes


def counts(scoremap, gt, thresholds, deltas=(30, 50, 70)):
    acc = BoxAccumulator(thresholds=thresholds, iou_thresholds=deltas)
    acc.update(np.asarray(scoremap, np.float64)[None], [np.asarray(gt).reshape(-1, 4)])
    column = {int(d): j for j, d in enumerate(acc.deltas)}
    return acc.correct_v1[:, [column[d] for d in deltas]], acc.correct_v2[
        :, [column[d] for d in deltas]
    ]


def v1_box_is(scoremap, threshold, box):
    """IoU 100 at this threshold <=> the V1 box equals ``box``."""
    v1, _ = counts(scoremap, [box], [threshold], deltas=(100,))
    return bool(v1[0, 0])


# Expected boxes from clovaai/wsolevaluation evaluation_test.py
# (test_compute_bboxes_from_scoremaps_{degenerate,unimodal,multimodal}), thresholds arange(0, 1, 0.2).
UPSTREAM_CASES = {
    "degenerate": (np.zeros((3, 3)), [[0, 0, 0, 0]] * 5),
    "unimodal": (
        np.array(
            [
                [0.0, 0.0, 0.0, 0.0, 0.0],
                [0.0, 0.4, 0.4, 0.4, 0.6],
                [0.0, 0.4, 1.0, 0.8, 0.6],
                [0.0, 0.4, 0.4, 0.4, 0.6],
            ]
        ),
        [[1, 1, 4, 3], [1, 1, 4, 3], [2, 1, 4, 3], [2, 2, 4, 3], [2, 2, 3, 3]],
    ),
    "multimodal": (
        np.array(
            [
                [0.4, 0.0, 0.2, 0.2, 0.2],
                [0.4, 0.4, 0.0, 0.4, 0.0],
                [0.0, 0.0, 0.0, 0.4, 0.0],
                [1.0, 0.6, 0.8, 0.2, 0.2],
            ]
        ),
        [[0, 0, 4, 3], [0, 0, 2, 2], [0, 3, 3, 3], [2, 3, 3, 3], [0, 3, 1, 3]],
    ),
}


@pytest.mark.parametrize("name", sorted(UPSTREAM_CASES))
def test_upstream_box_cases(name):
    scoremap, boxes = UPSTREAM_CASES[name]
    for threshold, box in zip(np.arange(0, 1, 0.2), boxes):
        assert v1_box_is(scoremap, threshold, box), (name, threshold, box)


def test_upstream_iou_and_resize_cases():
    # clovaai/wsolevaluation evaluation_test.py: realistic IoU 8/27, resize_bbox cases.
    assert box_iou([[1, 2, 5, 6]], [[3, 1, 4, 5]])[0, 0] == pytest.approx(8 / 27)
    assert np.all(box_iou(np.zeros((3, 4)), np.zeros((5, 4))) == 1.0)
    assert rescale_boxes([[1, 2, 4, 3]], (10, 20), (35, 10)).tolist() == [[3, 1, 14, 1]]
    assert rescale_boxes([[1, 2, 1, 2]], (3, 3), (3, 3)).tolist() == [[1, 2, 1, 2]]


def test_all_one_map_gives_full_box_clipped():
    # u = 255 everywhere; at tau = 0 the mask is u > 0: one component = whole image.
    assert v1_box_is(np.ones((6, 8)), 0.0, [0, 0, 7, 5])
    # At tau 0.999... threshold int(0.9 * 255) = 229 < 255 still everything.
    assert v1_box_is(np.ones((6, 8)), 0.9, [0, 0, 7, 5])


def test_ring_hole_counts_in_v2_only():
    ring = np.zeros((12, 12))
    ring[2:9, 2:9] = 1.0
    ring[4:7, 4:7] = 0.0  # hole: pixels 4..6 -> hole contour box [3, 3, 7+1, 7+1] = [3, 3, 8, 8]
    hole_box = [3, 3, 8, 8]
    v1, v2 = counts(ring, [hole_box], [0.5], deltas=(100,))
    assert v1[0, 0] == 0 and v2[0, 0] == 1
    assert v1_box_is(ring, 0.5, [2, 2, 9, 9])  # outer component 2..8, +1 quirk


def test_border_blob_plus_one_is_clipped():
    scoremap = np.zeros((5, 6))
    scoremap[2:5, 3:6] = 1.0  # touches the right and bottom border
    assert v1_box_is(scoremap, 0.5, [3, 2, 5, 4])
    scoremap = np.zeros((5, 6))
    scoremap[0:2, 0:2] = 1.0  # top-left: x1, y1 grow by one
    assert v1_box_is(scoremap, 0.5, [0, 0, 2, 2])


def test_one_pixel_blobs_have_zero_area_in_v1():
    # A 1x3 line (area 0) and a 2x2 square (area 1): V1 picks the square even though the line
    # has more pixels.
    scoremap = np.zeros((8, 8))
    scoremap[1, 1:4] = 1.0
    scoremap[5:7, 5:7] = 1.0
    assert v1_box_is(scoremap, 0.5, [5, 5, 7, 7])


def test_v1_tie_goes_to_opencv_first_contour():
    # Two 2x2 squares of equal area: OpenCV lists top-level contours in reverse raster order of
    # their first pixel, so ``max`` keeps A (first pixel (8, 5)) over B ((2, 10)). At 0.3 a
    # diagonal chain (no 2x2 window with 3 pixels: A's area is unchanged) joins A up to row 2,
    # column 3: A's first pixel now precedes B's and B wins.
    scoremap = np.zeros((12, 14))
    scoremap[8:10, 5:7] = 1.0
    scoremap[2:4, 10:12] = 1.0
    for y, x in [(7, 4), (6, 3), (5, 4), (4, 3), (3, 4), (2, 3)]:
        scoremap[y, x] = 0.5
    u = (scoremap * 255).astype(np.uint8)
    for threshold, box in ((0.6, [5, 8, 7, 10]), (0.3, [10, 2, 12, 4])):
        assert boxes_at_threshold(u, threshold, all_contours=False).tolist() == [box]
        assert v1_box_is(scoremap, threshold, box), threshold


@pytest.mark.parametrize("interval", [0.01, 0.001])
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_map_families_match_opencv(family, interval):
    """Every family of tests/map_families.py (noise, checkerboards, tiny blobs, plateaus...) on
    small maps: V1 and V2 counts identical to the per-threshold OpenCV oracle."""
    maps, gts = family_maps(family, 6, size=28, seed=3), gt_boxes(6, size=28, seed=4)
    acc = BoxAccumulator(cam_curve_interval=interval, iou_thresholds=(10, 30, 50, 70))
    acc.update(maps, gts)
    thresholds, deltas = np.arange(0, 1, interval), list(acc.deltas)
    ref_v1 = reference_correct_counts(maps, gts, thresholds, deltas, all_contours=False)
    ref_v2 = reference_correct_counts(maps, gts, thresholds, deltas, all_contours=True)
    assert np.array_equal(acc.correct_v1, ref_v1)
    assert np.array_equal(acc.correct_v2, ref_v2)
    assert ref_v1.sum() > 0  # (IoU 10 makes some boxes of every family correct)


def test_multiple_gt_boxes_take_the_best():
    scoremap = np.zeros((10, 10))
    scoremap[1:4, 1:4] = 1.0  # predicted box [1, 1, 4, 4]
    v1, v2 = counts(scoremap, [[6, 6, 9, 9], [1, 1, 4, 4]], [0.5], deltas=(50,))
    assert v1[0, 0] == 1 and v2[0, 0] == 1
    v1, _ = counts(scoremap, [[6, 6, 9, 9]], [0.5], deltas=(50,))
    assert v1[0, 0] == 0


def _random_map(rng, kind, height, width):
    if kind == "smooth":
        s = cv2.GaussianBlur(rng.random((height, width)), (0, 0), rng.uniform(0.7, 3))
    elif kind == "noise":
        s = rng.random((height, width))
    elif kind == "plateau":
        s = rng.integers(0, 4, (height, width)) / 3.0
    elif kind == "rings":
        yy, xx = np.mgrid[:height, :width]
        r = np.hypot(yy - rng.uniform(0, height), xx - rng.uniform(0, width))
        s = (np.cos(r * rng.uniform(0.5, 2)) + 1) / 2
    else:  # sparse one-pixel blobs
        s = (rng.random((height, width)) > 0.85) * rng.random((height, width))
    s = s - s.min()
    return s / s.max() if s.max() > 0 else s


def test_randomized_equivalence_with_opencv():
    rng = np.random.default_rng(0)
    kinds = ("smooth", "noise", "plateau", "rings", "sparse")
    maps, gts = [], []
    for i in range(170):  # mostly tiny maps (many ties and border cases), some 40-60 pixels
        low, high = (2, 18) if i < 150 else (40, 61)
        height, width = (int(v) for v in rng.integers(low, high, 2))
        maps.append(_random_map(rng, kinds[i % len(kinds)], height, width))
        k = int(rng.integers(1, 3))
        x0, y0 = rng.integers(0, width, k), rng.integers(0, height, k)
        gts.append(np.stack([x0, y0, rng.integers(x0, width), rng.integers(y0, height)], 1))
    thresholds = np.arange(0, 1, 0.01)
    acc = BoxAccumulator(cam_curve_interval=0.01)
    acc.update(maps, gts)  # maps of many sizes in one call
    deltas = list(acc.deltas)
    ref_v1 = reference_correct_counts(maps, gts, thresholds, deltas, all_contours=False)
    ref_v2 = reference_correct_counts(maps, gts, thresholds, deltas, all_contours=True)
    assert np.array_equal(acc.correct_v1, ref_v1)
    assert np.array_equal(acc.correct_v2, ref_v2)
    assert acc.correct_v2.sum() > acc.correct_v1.sum() > 0


def test_cpu_tensor_numpy_and_float32_agree():
    rng = np.random.default_rng(1)
    maps = np.stack([_random_map(rng, "smooth", 20, 20) for _ in range(6)]).astype(np.float32)
    gts = [np.array([[3, 3, 12, 14]])] * 6
    a = evaluate_scoremaps(maps, gts, cam_curve_interval=0.01)
    b = evaluate_scoremaps(torch.from_numpy(maps), gts, cam_curve_interval=0.01)
    assert a["box_correct_counts_v2"] == b["box_correct_counts_v2"]
    assert a["MaxBoxAcc"] == b["MaxBoxAcc"]
    if torch.cuda.is_available():
        c = evaluate_scoremaps(torch.from_numpy(maps).cuda(), gts, cam_curve_interval=0.01)
        assert a["box_correct_counts_v2"] == c["box_correct_counts_v2"]


def test_result_keys_and_values():
    scoremap = np.zeros((10, 10))
    scoremap[2:6, 2:6] = 1.0
    result = evaluate_scoremaps(scoremap[None], [np.array([[2, 2, 6, 6]])], cam_curve_interval=0.1)
    assert result["MaxBoxAcc"] == 100.0
    assert result["MaxBoxAccV2"] == 100.0
    assert result["MaxBoxAccV2_per_iou"] == [100.0, 100.0, 100.0]  # aligned with (30, 50, 70)
    assert result["iou_thresholds"] == [30, 50, 70]
    assert len(result["box_acc_curve_v2"]["50"]) == 10
    assert result["box_best_threshold_v1"]["50"] == 0.0


def test_bad_maps_are_refused():
    with pytest.raises(ScoreMapError, match="NaN or infinite values"):
        evaluate_scoremaps(np.full((1, 3, 3), np.nan), [np.zeros((1, 4))])
    with pytest.raises(ScoreMapError, match=r"must lie in \[0, 1\], found \[1.5, 1.5\]"):
        evaluate_scoremaps(np.full((1, 3, 3), 1.5), [np.zeros((1, 4))])
    with pytest.raises(WsolbenchError, match=r"N = 1 box lists, got shape \(2, 3, 3\)"):
        evaluate_scoremaps(np.zeros((2, 3, 3)), [np.zeros((1, 4))])


def test_scoring_keeps_torchs_thread_count(one_thread):
    """numba's parallel launch resets the OpenMP thread count torch shares; the box metrics put
    it back, so a network run after scoring (CPU sums depend on the count) gives the bits it
    gives before."""
    assert torch.get_num_threads() == 1
    accumulator = BoxAccumulator(0.01, (30, 50, 70))
    maps = torch.rand(4, 16, 16, generator=torch.Generator().manual_seed(0)).double()
    accumulator.update(maps, [np.array([[1, 1, 9, 9]])] * 4)
    assert torch.get_num_threads() == 1


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_quantize_in_chunks_equals_the_whole_batch(dtype):
    from wsolbench.evaluation.boxes import quantize

    maps = torch.rand(70, 9, 7, generator=torch.Generator().manual_seed(0)).to(dtype)
    maps[0, 0, 0], maps[69, 8, 6] = 1.0, 0.0
    assert torch.equal(quantize(maps, chunk=32), (maps * 255).to(torch.uint8))
    assert quantize(maps[:0]).shape == (0, 9, 7)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kernel_quantization_equals_torchs(dtype):
    """CPU maps are quantized inside the kernel; maps on another device by ``quantize``: both
    give ``floor(s * 255)`` in the map's dtype, also at the edges of every level."""
    from wsolbench.evaluation.boxes import quantize
    from wsolbench.evaluation.level_sets import batch_level_hits

    edges = (np.arange(256) / 255).astype(dtype)
    values = np.concatenate(
        [edges, np.nextafter(edges, dtype(0)), np.nextafter(edges, dtype(1)), [0.0, 1.0]]
    ).astype(dtype)
    rng = np.random.default_rng(0)
    maps = np.stack([rng.permutation(values)[:400].reshape(20, 20) for _ in range(4)])
    gt, offsets, deltas = np.array([[2, 2, 12, 15]] * 4), np.arange(5), np.array([30, 50, 70])
    levels = quantize(torch.from_numpy(maps)).numpy()
    v1, v2, tops = batch_level_hits(maps, gt, offsets, deltas, 2)
    w1, w2, levels_top = batch_level_hits(levels, gt, offsets, deltas, 2)
    assert np.array_equal(tops, levels.reshape(4, -1).max(1)) and np.array_equal(tops, levels_top)
    assert np.array_equal(v1, w1) and np.array_equal(v2, w2) and v2.any()
    maps[2, 3, 4] = np.nan
    assert batch_level_hits(maps, gt, offsets, deltas, 2)[2].tolist() == [255, 255, -1, 255]
