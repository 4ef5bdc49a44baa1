"""PxAP against hand computations (docs/protocols.md sec. 3)."""

import numpy as np
import pytest
import torch

from wsolbench.errors import WsolbenchError
from wsolbench.evaluation import PxAPAccumulator
from wsolbench.evaluation.mask_metrics import pxap_bin_edges


def pxap(scores, mask, ignore=None, interval=0.5):
    acc = PxAPAccumulator(interval)
    acc.update(
        np.asarray(scores, np.float64)[None],
        np.asarray(mask, bool)[None],
        None if ignore is None else np.asarray(ignore, bool)[None],
    )
    return acc


def test_bins_are_numpy_arange_then_1_2_3():
    assert pxap_bin_edges(0.25).tolist() == [0.0, 0.25, 0.5, 0.75, 1.0, 2.0, 3.0]
    assert np.array_equal(pxap_bin_edges(0.001)[:1000], np.arange(0, 1, 0.001))


def test_hand_computed_pxap():
    # Bins [0, .5), [.5, 1), [1, 2), [2, 3]. Foreground scores: 0.9, 0.2; background: 0.6, 0.1.
    acc = pxap([[0.9, 0.2, 0.6, 0.1]], [[True, True, False, False]])
    assert acc.foreground.tolist() == [1, 1, 0, 0]
    assert acc.background.tolist() == [1, 1, 0, 0]
    # Reversed cumsums (bins >= 2, >= 1, >= .5, >= 0): tp = 0,0,1,2 ; fp = 0,0,1,2.
    # P = -,-,1/2,1/2 ; R = 0,0,1/2,1. PxAP = 100 * (1/2 * 1/2 + 1/2 * 1/2) = 50.
    assert acc.compute()["PxAP"] == pytest.approx(50.0)


def test_perfect_map_is_100_and_ignore_pixels_count_nowhere():
    scores = [[1.0, 1.0, 0.0, 1.0]]
    mask = [[True, True, False, False]]
    ignore = [[False, False, False, True]]  # the background pixel scored 1.0 is ignored
    assert pxap(scores, mask, ignore).compute()["PxAP"] == pytest.approx(100.0)
    # Counted, it sits in the top bin with the foreground: P = 2/3 at R = 1.
    assert pxap(scores, mask).compute()["PxAP"] == pytest.approx(200 / 3)


def test_constant_map_gives_foreground_ratio():
    # Upstream's constant-map tests: AUC = #fg / #(fg + bg) for a constant map.
    mask = np.zeros((4, 5), bool)
    mask[:2, :3] = True
    for value in (0.0, 0.5, 1.0):
        result = pxap(np.full((4, 5), value), mask, interval=0.01).compute()
        assert result["PxAP"] == pytest.approx(100 * 6 / 20)


def test_degenerate_splits_are_refused():
    with pytest.raises(WsolbenchError, match="positive ground-truth"):
        pxap(np.ones((2, 2)), np.zeros((2, 2), bool)).compute()
    with pytest.raises(WsolbenchError, match="positive ground-truth"):
        PxAPAccumulator(0.5).compute()  # nothing accumulated


def test_tensor_input_matches_numpy():
    rng = np.random.default_rng(0)
    scores = rng.random((3, 6, 6)).astype(np.float32)
    mask = rng.random((3, 6, 6)) > 0.6
    a = PxAPAccumulator(0.01)
    a.update(scores, mask)
    b = PxAPAccumulator(0.01)
    b.update(torch.from_numpy(scores), torch.from_numpy(mask))
    assert np.array_equal(a.foreground, b.foreground) and np.array_equal(a.background, b.background)
    expected_fg, _ = np.histogram(scores[mask], bins=pxap_bin_edges(0.01))
    assert np.array_equal(a.foreground, expected_fg)


@pytest.mark.parametrize("interval", [0.001, 0.01, 0.3])
def test_bins_match_numpy_histogram_at_the_edges(interval):
    edges = pxap_bin_edges(interval)
    inner = edges[:-2]  # 0 .. 1
    scores = np.concatenate(
        [
            inner,
            np.nextafter(inner, -1)[1:],
            np.nextafter(inner, 2),
            np.random.default_rng(0).random(500),
            [0.0, 1.0],
        ]
    ).clip(0, 1)
    acc = PxAPAccumulator(interval)
    acc.update(scores[None, None], np.ones((1, 1, len(scores)), bool))
    assert np.array_equal(acc.foreground, np.histogram(scores, bins=edges)[0])
