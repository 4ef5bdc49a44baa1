"""Peak-IoU / Peak-T against a hand computation (docs/protocols.md sec. 6)."""

import cv2
import numpy as np
import pytest

from wsolbench.evaluation import PeakAccumulator
from wsolbench.evaluation.peak import peak_levels


def test_levels_are_truncated_minmax():
    levels = peak_levels(np.array([[2.0, 4.0], [3.0, 3.999]])).numpy()
    # (s - 2) / (2 + 1e-10) * 255, truncated: 0, 254 (not 255, eps), 127, 254.
    assert levels.tolist() == [[0, 254], [127, 254]]


def test_hand_computed_peak():
    raw = np.array([[0.0, 1.0, 2.0, 3.0]])
    mask = np.array([[False, False, True, True]])
    acc = PeakAccumulator()
    acc.update([raw], [mask])
    # Levels 0, 84, 169, 254. IoU(t): t <= 84 -> 2/4; 84 < t <= 169 -> 2/2 = 1; 169 < t <= 254 -> 1/2.
    result = acc.compute()
    assert result["PeakIoU"] == pytest.approx(100.0)
    assert result["PeakT"] == 85
    assert result["peak_iou_curve"][0] == pytest.approx(50.0)
    assert result["peak_iou_curve"][200] == pytest.approx(50.0)


def test_map_is_resized_bilinearly_to_the_mask():
    raw = np.array([[0.0, 1.0], [0.0, 1.0]])
    mask = np.zeros((4, 4), bool)
    mask[:, 2:] = True
    acc = PeakAccumulator()
    acc.update([raw], [mask])
    expected = cv2.resize(
        np.array([[0, 254], [0, 254]], np.uint8), (4, 4), interpolation=cv2.INTER_LINEAR
    )
    assert acc.foreground[:256].sum() == 8
    assert np.array_equal(acc.foreground[:256], np.bincount(expected[mask], minlength=256))


def test_pooled_not_mean_of_images():
    acc = PeakAccumulator()
    acc.update(
        [np.array([[0.0, 1.0]]), np.array([[0.0, 1.0, 1.0]])],
        [np.array([[False, True]]), np.array([[True, True, False]])],
    )
    # Level 254 pixels: image 1: fg; image 2: one fg, one bg; level 0: image 2's fg pixel.
    # t = 1..254: tp = 2, fp = 1, fn = 1 -> 2/4; t = 0: tp = 3, fp = 2, fn = 0 -> 3/5 (best).
    result = acc.compute()
    assert result["PeakT"] == 0
    assert result["PeakIoU"] == pytest.approx(60.0)


def test_batched_and_per_image_paths_agree():
    rng = np.random.default_rng(0)
    maps = [rng.random((6, 7)) * 5 for _ in range(4)]
    masks = [rng.random((6, 7)) > 0.5 for _ in range(4)]
    batched = PeakAccumulator()
    batched.update(maps, masks)
    single = PeakAccumulator()
    for m, k in zip(maps, masks):
        single.update([m], [k])
    assert np.array_equal(batched.foreground, single.foreground)
    assert np.array_equal(batched.background, single.background)
    assert batched.foreground.sum() == sum(k.sum() for k in masks)
