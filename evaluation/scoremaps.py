"""Score maps on disk: wsolevaluation's ``<root>/<image_id>.npy`` layout.

``normalize="minmax"`` reproduces wsolevaluation's CAM computer (PROTOCOLS.md sec. 2.1): bicubic
resize to 224 x 224 (or ``size``), then NaN or constant -> zeros, else ``s -= min; s /= max`` in
float64. Without it a map must already be a finite 2-D array in [0, 1].
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from wsolbench.errors import ScoreMapError

NORMALIZE_CHOICES = ("none", "minmax")


def scoremap_path(root: str | Path, image_id: str) -> Path:
    return Path(root) / f"{image_id}.npy"


def load_scoremap(path: str | Path, normalize: str = "none",
                  size: tuple[int, int] = (224, 224)) -> np.ndarray:
    """Read one map safely (``allow_pickle=False``) and check or normalize it; ``size`` is
    ``(height, width)`` for ``minmax``. Every error names the file."""
    path = Path(path)
    if not path.is_file():
        raise ScoreMapError("score map not found", path)
    try:
        scoremap = np.load(path, allow_pickle=False)
    except ValueError as error:
        raise ScoreMapError(f"not a plain numpy array (pickled objects are refused): {error}", path)
    except OSError as error:
        raise ScoreMapError(f"cannot read score map: {error}", path)
    if scoremap.ndim != 2 or min(scoremap.shape) == 0:
        raise ScoreMapError(f"score map must be a non-empty 2-D array, got shape {scoremap.shape}", path)
    if not np.issubdtype(scoremap.dtype, np.number) or np.issubdtype(scoremap.dtype, np.complexfloating):
        raise ScoreMapError(f"score map must be real-valued, got dtype {scoremap.dtype}", path)
    if normalize == "minmax":
        return minmax_normalize(scoremap, size)
    if normalize != "none":
        raise ScoreMapError(f"unknown normalization {normalize!r}", path)
    if not np.isfinite(scoremap).all():
        raise ScoreMapError("score map has NaN or infinite values (use --normalize minmax to "
                            "zero them as wsolevaluation does)", path)
    low, high = scoremap.min(), scoremap.max()
    if low < 0 or high > 1:
        raise ScoreMapError(f"score map values must lie in [0, 1], found [{low:g}, {high:g}] "
                            "(use --normalize minmax)", path)
    return scoremap


def minmax_normalize(scoremap: np.ndarray, size: tuple[int, int] = (224, 224)) -> np.ndarray:
    """wsolevaluation's ``normalize_scoremap`` after a bicubic resize to ``(height, width)``."""
    height, width = size
    cam = np.asarray(scoremap)
    if cam.dtype not in (np.float32, np.float64):
        cam = cam.astype(np.float32)
    if cam.shape != (height, width):
        cam = cv2.resize(cam, (width, height), interpolation=cv2.INTER_CUBIC)
    if np.isnan(cam).any():
        return np.zeros((height, width), np.float64)
    if cam.min() == cam.max():
        return np.zeros((height, width), np.float64)
    cam = cam.astype(np.float64)
    cam -= cam.min()
    cam /= cam.max()
    return cam
