"""Box utilities shared by the protocols: inclusive-pixel IoU, GT rescaling, quantization."""

from __future__ import annotations

import numpy as np
import torch

from wsolbench.errors import ScoreMapError


def box_iou(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """IoU matrix of inclusive integer boxes ``(x0, y0, x1, y1)``: areas are ``(x1-x0+1)(y1-y0+1)``
    and a non-positive union gives 0 (wsolevaluation's ``calculate_multiple_iou``)."""
    a = np.asarray(boxes_a, np.int64).reshape(-1, 4)
    b = np.asarray(boxes_b, np.int64).reshape(-1, 4)
    inter = _intersection(a, b)
    union = _area(a)[:, None] + _area(b)[None, :] - inter
    safe = np.where(union > 0, union, 1)
    return np.where(union > 0, inter / safe, 0.0)


def _area(boxes: np.ndarray) -> np.ndarray:
    return (boxes[:, 2] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 1] + 1)


def _intersection(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ix = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]) + 1
    iy = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]) + 1
    return np.maximum(ix, 0) * np.maximum(iy, 0)


def overlap_ratios(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For one predicted box against GT boxes ``(k, 4)``: IoU, IoG (inter / GT area) and IoP
    (inter / predicted area), each of shape ``(k,)``."""
    p = np.asarray(pred, np.int64).reshape(1, 4)
    g = np.asarray(gt, np.int64).reshape(-1, 4)
    inter = _intersection(p, g)[0].astype(np.float64)
    area_p = float(_area(p)[0])
    area_g = _area(g).astype(np.float64)
    union = area_p + area_g - inter
    iou = np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
    iog = np.where(area_g > 0, inter / np.where(area_g > 0, area_g, 1), 0.0)
    iop = inter / area_p if area_p > 0 else np.zeros_like(inter)
    return iou, iog, iop


def rescale_boxes(
    boxes: np.ndarray, image_size: tuple[int, int], map_size: tuple[int, int]
) -> np.ndarray:
    """GT boxes from the original ``(width, height)`` to a map's ``(width, height)`` with
    truncation, ``int(x * W' / W)`` per coordinate (wsolevaluation's ``resize_bbox``)."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    width, height = map(float, image_size)
    new_width, new_height = map(float, map_size)
    # Same operation order as upstream (x * new / old) so truncation agrees bit for bit.
    scaled = np.stack(
        [
            boxes[:, 0] * new_width / width,
            boxes[:, 1] * new_height / height,
            boxes[:, 2] * new_width / width,
            boxes[:, 3] * new_height / height,
        ],
        1,
    )
    return scaled.astype(np.int64)


def as_tensor(maps, device: torch.device | str | None = None) -> torch.Tensor:
    """A float tensor view of maps given as a tensor, an array or a list of equal-shape maps."""
    if isinstance(maps, torch.Tensor):
        tensor = maps
    elif isinstance(maps, np.ndarray):
        tensor = torch.from_numpy(maps)
    else:
        tensor = torch.stack(
            [m if isinstance(m, torch.Tensor) else torch.from_numpy(np.asarray(m)) for m in maps]
        )
    if not tensor.is_floating_point():
        tensor = tensor.double()
    return tensor if device is None else tensor.to(device)


def check_unit_range(maps: torch.Tensor, what: str = "score map") -> None:
    """Refuse NaN/Inf and values outside [0, 1] (the evaluator's contract)."""
    if maps.numel() == 0:
        return
    low, high = (float(v) for v in torch.aminmax(maps))  # NaN propagates: one pass suffices
    if low >= 0 and high <= 1:
        return
    if not bool(torch.isfinite(maps).all()):
        raise ScoreMapError(f"{what} has NaN or infinite values")
    raise ScoreMapError(f"{what} values must lie in [0, 1], found [{low:g}, {high:g}]")


def quantize(maps: torch.Tensor, chunk: int = 32) -> torch.Tensor:
    """``u = floor(s * 255)`` as uint8, computed in the maps' own dtype on their device (for
    values in [0, 1] truncation is the floor, like upstream's ``astype(np.uint8)``); ``chunk``
    maps at a time, so that the float temporary stays small and its memory is reused."""
    levels = torch.empty(maps.shape, dtype=torch.uint8, device=maps.device)
    for start in range(0, max(len(maps), 1), chunk):
        levels[start : start + chunk] = (maps[start : start + chunk] * 255).to(torch.uint8)
    return levels
