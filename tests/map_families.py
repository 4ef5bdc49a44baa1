"""Score-map families that stress the box evaluator differently, shared by the tests (small
maps against the OpenCV oracle) and ``benchmarks/bench_evaluation.py`` (224 x 224, timed).

Every family returns ``(count, size, size)`` float32 maps in [0, 1]:

* ``cam``: one to three blurred blobs plus a little blurred noise (a trained CAM);
* ``noise``: uniform noise (a random-init model, gradient explainers, Score-CAM);
* ``salt_pepper``: a CAM with 20% of its pixels set to 0 or 1;
* ``checkerboard``: one-pixel checkerboards times a ramp (thousands of holes and of nested
  components at every level), with a random phase;
* ``tiny_blobs``: hundreds of 1-4 pixel blobs at random levels on a zero background (many
  components of tied area, the V1 tie-break's worst case);
* ``plateaus``: piecewise-constant maps, a few levels over blocks of random sizes (every
  component enters the masks at once, with ties), plus a constant map now and then.
"""

from __future__ import annotations

import cv2
import numpy as np


def _normalize(s: np.ndarray) -> np.ndarray:
    s = s - s.min()
    return s / s.max() if s.max() > 0 else s


def cam(rng, size: int) -> np.ndarray:
    peaks = np.zeros((size, size), np.float32)
    for _ in range(rng.integers(1, 4)):
        peaks[rng.integers(0, size), rng.integers(0, size)] = rng.uniform(0.5, 1.0)
    s = cv2.GaussianBlur(peaks, (0, 0), rng.uniform(10, 30) * size / 224)
    s = s / s.max() + 0.05 * cv2.GaussianBlur(
        rng.random((size, size)).astype(np.float32), (0, 0), 1.5
    )
    return _normalize(s)


def noise(rng, size: int) -> np.ndarray:
    return rng.random((size, size))


def salt_pepper(rng, size: int) -> np.ndarray:
    s = cam(rng, size)
    hit = rng.random((size, size)) < 0.2
    s[hit] = rng.integers(0, 2, int(hit.sum()))
    return s


def checkerboard(rng, size: int) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    board = (yy + xx + rng.integers(0, 2)) % 2
    ramp = (xx + yy * rng.uniform(0.2, 2)) / (size * 3)
    return _normalize(board * (0.3 + ramp))


def tiny_blobs(rng, size: int) -> np.ndarray:
    s = np.zeros((size, size))
    for _ in range(size * size // 60):
        y, x = rng.integers(0, size, 2)
        h, w = rng.integers(1, 3, 2)
        s[y : y + h, x : x + w] = rng.integers(1, 256) / 255
    return s


def plateaus(rng, size: int) -> np.ndarray:
    if rng.random() < 0.1:
        return np.full((size, size), rng.integers(0, 256) / 255)
    levels = rng.integers(0, 256, rng.integers(2, 6)) / 255
    s = np.zeros((size, size))
    for _ in range(rng.integers(3, 12)):
        y, x = rng.integers(0, size, 2)
        h, w = rng.integers(1, max(2, size // 2), 2)
        s[y : y + h, x : x + w] = rng.choice(levels)
    return s


FAMILIES = {
    "cam": cam,
    "noise": noise,
    "salt_pepper": salt_pepper,
    "checkerboard": checkerboard,
    "tiny_blobs": tiny_blobs,
    "plateaus": plateaus,
}


def family_maps(name: str, count: int, size: int = 224, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([FAMILIES[name](rng, size) for _ in range(count)]).astype(np.float32)


def gt_boxes(count: int, size: int = 224, seed: int = 1) -> list[np.ndarray]:
    """One or two GT boxes per map, at least a tenth of the map on each side."""
    rng = np.random.default_rng(seed)
    low = max(1, size // 10)
    boxes = []
    for _ in range(count):
        k = int(rng.integers(1, 3))
        x0, y0 = rng.integers(0, size - low, k), rng.integers(0, size - low, k)
        x1 = np.minimum(x0 + rng.integers(low, size, k), size - 1)
        y1 = np.minimum(y0 + rng.integers(low, size, k), size - 1)
        boxes.append(np.stack([x0, y0, x1, y1], 1))
    return boxes
