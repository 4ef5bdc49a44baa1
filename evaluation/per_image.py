"""Per-image records of the accumulators (``keep_per_image``), kept beside the pooled counts.

Each accumulator appends one dict of arrays per batch, images along the first axis; summing a
record over images gives the accumulator's own pooled counts, so per-image statistics (error
types, bootstrap intervals) never disagree with the aggregate metrics.
"""

from __future__ import annotations

import numpy as np


def concat_per_image(parts: list[dict[str, np.ndarray]] | None) -> dict[str, np.ndarray]:
    """Concatenate the per-batch records along images ({} when nothing was kept)."""
    if not parts:
        return {}
    return {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}


def merge_per_image(target, other) -> None:
    """``merge`` of two accumulators: the other's images follow."""
    if target.per_image is not None and other.per_image is not None:
        target.per_image.extend(other.per_image)


def image_histograms(codes: np.ndarray, width: int) -> np.ndarray:
    """One histogram per image: ``codes`` (N, ...) integers in [0, width) -> (N, width) counts,
    from a single bincount (images offset by ``width``)."""
    count = codes.shape[0]
    offsets = (np.arange(count, dtype=np.int64) * width).reshape((count,) + (1,) * (codes.ndim - 1))
    flat = (codes.astype(np.int64) + offsets).ravel()
    return np.bincount(flat, minlength=count * width).reshape(count, width)


def compact_counts(counts: np.ndarray) -> np.ndarray:
    """Pixel counts in the smallest unsigned type that holds them (uint16 for maps up to 256 x
    256), halving what a split's histograms take."""
    for dtype in (np.uint16, np.uint32):
        if counts.size == 0 or counts.max() <= np.iinfo(dtype).max:
            return counts.astype(dtype)
    return counts.astype(np.int64)
