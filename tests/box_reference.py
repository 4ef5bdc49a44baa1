"""The oracle: wsolevaluation's box protocol written the obvious way (docs/protocols.md sec. 2).

One ``cv2.threshold`` + ``cv2.findContours`` per image and per threshold, exactly as upstream's
``compute_bboxes_from_scoremaps``; the fast evaluator must reproduce its integer counts.
"""

from __future__ import annotations

import cv2
import numpy as np


def boxes_at_threshold(u: np.ndarray, threshold: float, all_contours: bool) -> np.ndarray:
    height, width = u.shape
    _, mask = cv2.threshold(u, int(threshold * np.max(u)), 255, cv2.THRESH_BINARY)
    contours = cv2.findContours(mask, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[0]
    if len(contours) == 0:
        return np.zeros((1, 4), np.int64)
    if not all_contours:
        contours = [max(contours, key=cv2.contourArea)]
    boxes = []
    for contour in contours:
        x, y, w, h = cv2.boundingRect(contour)
        boxes.append([x, y, min(x + w, width - 1), min(y + h, height - 1)])
    return np.array(boxes, np.int64)


def best_iou(boxes: np.ndarray, gt: np.ndarray) -> float:
    ix = (
        np.minimum(boxes[:, None, 2], gt[None, :, 2])
        - np.maximum(boxes[:, None, 0], gt[None, :, 0])
        + 1
    )
    iy = (
        np.minimum(boxes[:, None, 3], gt[None, :, 3])
        - np.maximum(boxes[:, None, 1], gt[None, :, 1])
        + 1
    )
    inter = np.maximum(ix, 0) * np.maximum(iy, 0)
    area_a = (boxes[:, 2] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 1] + 1)
    area_b = (gt[:, 2] - gt[:, 0] + 1) * (gt[:, 3] - gt[:, 1] + 1)
    union = area_a[:, None] + area_b[None, :] - inter
    iou = np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
    return float(iou.max())


def reference_correct_counts(
    scoremaps, gt_boxes, thresholds, iou_thresholds=(30, 50, 70), all_contours=False
) -> np.ndarray:
    """``(len(thresholds), len(iou_thresholds))`` integer counts of correct images."""
    counts = np.zeros((len(thresholds), len(iou_thresholds)), np.int64)
    for scoremap, gt in zip(scoremaps, gt_boxes):
        u = (np.asarray(scoremap) * 255).astype(np.uint8)
        gt = np.asarray(gt, np.int64).reshape(-1, 4)
        for i, threshold in enumerate(thresholds):
            iou = best_iou(boxes_at_threshold(u, threshold, all_contours), gt)
            for d, delta in enumerate(iou_thresholds):
                counts[i, d] += iou >= delta / 100
    return counts
