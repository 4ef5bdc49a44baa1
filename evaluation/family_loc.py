"""Localization under the post-2021 families' rules (TS-CAM, SCM, BAS; docs/protocols.md sec. 10):
their box kernels and one accumulator of per-image hits per threshold.

Each family turns a prepared map into one box per threshold by its own rule and counts an
image as correct by its own IoU test; ``FamilyLocAccumulator`` keeps, per image, which of a
protocol's localization metrics it hits at every threshold of the protocol's scan (packed bits)
and the image's class, so a threshold is read off exactly, averaged over images or over classes
(BAS), and resampled by the bootstrap. The contour kernel calls OpenCV once per distinct threshold
level of a map: exact by construction, as the families' own code calls it once per threshold; the connected components of every threshold come from
one union-find pass (numba).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
from numba import njit

from wsolbench.errors import WsolbenchError
from wsolbench.evaluation.per_image import CountMetric


def largest_contour_boxes(levels: np.ndarray, cuts: Sequence[int], clip: bool) -> np.ndarray:
    """Per cut c: the bounding rect ``[x, y, x + w, y + h]`` of the contour of largest
    ``contourArea`` (OpenCV's first on ties) of ``levels > c`` (uint8 map), clipped to the
    last pixel when ``clip`` (SCM, wsolevaluation) or not (TS-CAM); no contour: all -1."""
    height, width = levels.shape
    out = np.full((len(cuts), 4), -1, np.int64)
    found: dict[int, np.ndarray] = {}
    for k, cut in enumerate(cuts):
        cut = int(cut)
        if cut not in found:
            mask = (levels > cut).astype(np.uint8)
            contours = cv2.findContours(mask, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[0]
            box = np.full(4, -1, np.int64)
            if len(contours):
                x, y, w, h = cv2.boundingRect(max(contours, key=cv2.contourArea))
                box[:] = (x, y, x + w, y + h)
                if clip:
                    box[2], box[3] = min(box[2], width - 1), min(box[3], height - 1)
            found[cut] = box
        out[k] = found[cut]
    return out


def largest_component_boxes(scores: np.ndarray, thresholds: Sequence[float]) -> np.ndarray:
    """Per threshold t (compared in the map's dtype): the box ``[x0, y0, x1 + 1, y1 + 1]`` of
    the 8-connected component of ``scores > t`` with the most pixels (the first in raster
    order on ties: skimage's labels and BAS's ``count_max``); none: all -1.

    One union-find pass over the pixels in decreasing order of score gives every threshold's
    components (the masks are nested), instead of labelling the map once per threshold."""
    scores = np.ascontiguousarray(scores)
    values = np.asarray(thresholds, np.float64).astype(scores.dtype)
    order = np.argsort(-values, kind="stable")
    boxes = _component_boxes(scores, values[order])
    out = np.empty_like(boxes)
    out[order] = boxes
    return out


@njit(cache=True)
def _find_root(parent, x):
    while parent[x] != x:
        parent[x] = parent[parent[x]]
        x = parent[x]
    return x


@njit(cache=True)
def _component_boxes(scores, thresholds):
    """``largest_component_boxes`` for ``thresholds`` in decreasing order."""
    height, width = scores.shape
    flat = scores.ravel()
    pixels = np.argsort(-flat, kind="mergesort")
    parent = np.full(flat.size, -1, np.int64)
    size = np.zeros(flat.size, np.int64)
    first = np.zeros(flat.size, np.int64)  # smallest raster index of the component
    box = np.zeros((flat.size, 4), np.int64)
    out = np.full((thresholds.shape[0], 4), -1, np.int64)
    best = -1
    k = 0
    for t in range(thresholds.shape[0]):
        while k < flat.size and flat[pixels[k]] > thresholds[t]:
            p = pixels[k]
            k += 1
            y, x = p // width, p % width
            parent[p] = p
            size[p] = 1
            first[p] = p
            box[p, 0], box[p, 1], box[p, 2], box[p, 3] = x, y, x, y
            root = p
            for dy in range(-1, 2):
                for dx in range(-1, 2):
                    yy, xx = y + dy, x + dx
                    if (dy == 0 and dx == 0) or yy < 0 or yy >= height or xx < 0 or xx >= width:
                        continue
                    q = yy * width + xx
                    if parent[q] < 0:
                        continue
                    other = _find_root(parent, q)
                    if other == root:
                        continue
                    if size[other] > size[root]:
                        root, other = other, root
                    parent[other] = root
                    size[root] += size[other]
                    first[root] = min(first[root], first[other])
                    box[root, 0] = min(box[root, 0], box[other, 0])
                    box[root, 1] = min(box[root, 1], box[other, 1])
                    box[root, 2] = max(box[root, 2], box[other, 2])
                    box[root, 3] = max(box[root, 3], box[other, 3])
            if (
                best < 0
                or parent[best] != best
                or size[root] > size[best]
                or (size[root] == size[best] and first[root] < first[best])
            ):
                best = root
        if best >= 0:
            out[t, 0], out[t, 1] = box[best, 0], box[best, 1]
            out[t, 2], out[t, 3] = box[best, 2] + 1, box[best, 3] + 1
    return out


def iou_plus_one(boxes: np.ndarray, gt: np.ndarray, clamp_separately: bool = True) -> np.ndarray:
    """IoU of each box (B, 4) with each GT box (G, 4) in float64 with +1 areas: (B, G).
    ``clamp_separately``: ``max(iw, 0) * max(ih, 0)`` (TS-CAM's cal_iou, BAS's IoU); the
    wsolevaluation form (a non-positive denominator gives 0) is ``wsolevaluation_iou``."""
    a = np.asarray(boxes, np.float64)[:, None, :]
    b = np.asarray(gt, np.float64)[None, :, :]
    iw = np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]) + 1
    ih = np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]) + 1
    inter = np.maximum(iw, 0.0) * np.maximum(ih, 0.0)
    area_a = (a[..., 2] - a[..., 0] + 1) * (a[..., 3] - a[..., 1] + 1)
    area_b = (b[..., 2] - b[..., 0] + 1) * (b[..., 3] - b[..., 1] + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return inter / (area_a + area_b - inter)


def wsolevaluation_iou(boxes: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """wsolevaluation's ``calculate_multiple_iou`` on integer boxes (B, 4) x (G, 4): +1 areas,
    a non-positive denominator gives IoU 0."""
    a = np.asarray(boxes, np.int64)[:, None, :]
    b = np.asarray(gt, np.int64)[None, :, :]
    inter = np.maximum(0, np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]) + 1)
    inter = inter * np.maximum(
        0, np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]) + 1
    )
    area_a = (a[..., 2] - a[..., 0] + 1) * (a[..., 3] - a[..., 1] + 1)
    area_b = (b[..., 2] - b[..., 0] + 1) * (b[..., 3] - b[..., 1] + 1)
    denominator = area_a + area_b - inter
    degenerate = denominator <= 0
    return np.where(degenerate, 0.0, inter / np.where(degenerate, 1, denominator))


def decimal_thresholds(step: float = 0.01) -> np.ndarray:
    """arange(0, 1, step) written as decimals (0.12, not 0.12000000000000001): the thresholds a
    fixed-threshold family would be given (its configuration files hold decimals)."""
    digits = len(f"{step:g}".split(".")[-1])
    return np.array([float(f"{t:.{digits}f}") for t in np.arange(0, 1, step)])


class FamilyLocAccumulator(CountMetric):
    """Per image: which of ``metrics`` it hits at every threshold (``hits``, bits packed along
    the thresholds) and its class; ``compute`` gives each metric's accuracy per threshold,
    averaged over images or, with ``per_class``, as the mean of the classes' accuracies."""

    higher_is_better = True
    record_fields = {"hits": np.uint8, "label": np.int32}

    def __init__(
        self, metrics: Sequence[str], thresholds: Sequence[float], per_class: bool, **kwargs
    ):
        super().__init__(**kwargs)
        self.metric_names = tuple(metrics)
        self.thresholds = np.asarray(thresholds, np.float64)
        self.per_class = bool(per_class)
        self.add_count("hits", (len(self.metric_names), len(self.thresholds)))
        self.add_count("defined", (len(self.metric_names),))  # images whose inputs define it
        self.add_count("count")
        if self.per_class:  # the class mean needs every image's record
            self.keep_per_image()

    def settings(self) -> dict:
        return {
            "metrics": list(self.metric_names),
            "thresholds": self.thresholds.tolist(),
            "per_class": self.per_class,
        }

    def update(self, hits: np.ndarray, labels, defined: Sequence[bool]) -> None:
        """``hits`` (N, metrics, thresholds) bool; ``labels`` (N,) classes; ``defined``: which
        metrics the batch's inputs define (Top-1 Loc needs predictions)."""
        hits = np.asarray(hits, bool) & np.asarray(defined, bool)[None, :, None]
        self.add_counts("defined", np.asarray(defined, np.int64) * len(hits))
        self.add_counts("hits", hits.sum(0, dtype=np.int64))
        self.add_counts("count", len(hits))
        self.add_record(
            {"hits": np.packbits(hits, axis=-1), "label": np.asarray(labels).reshape(-1)}
        )

    def compute(self) -> dict:
        count = int(self.count)
        if count == 0:
            raise WsolbenchError("no image was accumulated for localization")
        if self.per_class:
            records = self.per_image_arrays()
            hits = np.unpackbits(records["hits"], axis=-1, count=len(self.thresholds))
            accuracy = 100.0 * class_mean(hits, records["label"])
        else:
            accuracy = 100.0 * self.hits.cpu().numpy() / count
        defined = self.defined.cpu().numpy() == count
        return {
            "per_threshold": {
                name: [float(v) for v in accuracy[m]]
                for m, name in enumerate(self.metric_names)
                if defined[m]
            },
            "thresholds": self.thresholds.tolist(),
            "num_images": count,
            **self.computed_records(),
        }


def class_mean(hits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(N, M, T) hits -> (M, T): the mean over the classes present of each class's share, each
    class's share computed as BAS does (``np.sum(hits) / len``), the mean as ``np.mean``."""
    labels = np.asarray(labels).reshape(-1)
    rates = np.stack(
        [hits[labels == c].sum(0) / int((labels == c).sum()) for c in np.unique(labels)], -1
    )
    return np.ascontiguousarray(rates).mean(-1)  # one 1-D mean per (metric, threshold)
