"""SCG, the SPA paper's self-correlation map generation: a post-processor for any model.

Given the feature maps of a few layers ("taps") and a class map, SCG measures how similar every
feature position is to every other one (the self-correlation matrices), then spreads the class
map's confident object and background points through those similarities (docs/protocols.md §8).

Two variants:

- ``official`` reproduces the released SPA code (``Panxjia/SPA_CVPR2021`` at 32bf2d5,
  ``models/vgg/vgg_spa.py:hsc``, the fusion in ``exper/val_spa.py`` and the aggregation in
  ``utils/localization.py:get_topk_boxes_hier_scg``) with its arithmetic, so that on the CPU
  its maps are the SPA code's bit for bit: ``hsc``'s torch operations in their order
  (``matmul``, the column sums and their +1e-5 and +1e-10, the thresholds), the max/sum fusions,
  the CAM's round trip through the original image size with ``cv2.resize`` (INTER_LINEAR,
  float32), and the aggregation in numpy as the SPA code writes it (each selected column
  min-max normalized, columns summed with ``np.sum``).
- ``paper`` the formulas as printed: ``SC^h = S^h / (HW)^(h-1)`` (the mean over intermediate
  points) for any order, each point's map min-max normalized, and no resize round trip.

Everything runs on the CPU, whatever device the taps and class maps come from (the results go
back there): SCG turns network outputs into the maps that decide levels and boxes, and one code
path (torch on the CPU, numpy, OpenCV) makes them the same bits on every device.

Matrices are stored (N, P, P) with the map of point j in column j, P = h * w positions in
row-major order. Taps of different sizes are resized bilinearly to the finest grid before the
correlation (the official setting only ever uses equal sizes), so layers can be fused by sum.
Work is chunked over the batch to bound memory. The self-correlation does not depend on the
class, so it is computed once per batch and the class maps of K classes per image
(docs/interfaces.md) share it; each class map's aggregation is computed alone, so each map
equals what a call with that class alone gives, bit for bit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from wsolbench.errors import WsolbenchError
from wsolbench.methods.postprocessor import PostProcessor, only_class

Size = tuple[int, int]

MODES = ("first", "second", "combined")
VARIANTS = ("official", "paper")

# Peak float32 work per image, in P * P matrices: one layer's correlation, its first-order and
# step copies, the power iterate, the combined matrix and the running fused sum (about 7), with
# headroom for temporaries. Measured: 28 x 28 taps, batch 64 (two chunks) peak at ~0.65 GiB.
_MATRICES_PER_IMAGE = 10
_CHUNK_BUDGET_BYTES = 768 * 2**20


@dataclass
class SelfCorrelation:
    """The self-correlation matrices of one layer, (N, P, P), the map of point j in column j.

    Internally, matrices a mode does not need are left as None."""

    first: torch.Tensor | None
    higher: torch.Tensor | None
    combined: torch.Tensor | None


def _minmax(values: torch.Tensor, dim: int | tuple[int, ...]) -> torch.Tensor:
    low = values.amin(dim=dim, keepdim=True)
    high = values.amax(dim=dim, keepdim=True)
    return (values - low) / (high - low + 1e-10)


def resize_bilinear(maps: torch.Tensor, size: Size) -> torch.Tensor:
    """(..., h, w) -> (..., H, W) with ``cv2.resize`` (INTER_LINEAR, float32) on the CPU, as the
    SPA code resizes; returned on the maps' device. There is no other path: a map's bits do not
    depend on the device it came from."""
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    height, width = (int(v) for v in size)
    leading = maps.shape[:-2]
    arrays = maps.detach().float().cpu().reshape(-1, *maps.shape[-2:]).numpy()
    if min(height, width) == 0 or not len(arrays):
        resized = np.zeros((len(arrays), height, width), np.float32)
    else:
        resized = np.stack(
            [cv2.resize(m, (width, height), interpolation=cv2.INTER_LINEAR) for m in arrays]
        )
    return torch.from_numpy(resized.reshape(*leading, height, width)).to(maps.device)


def normalize_cam(cam: torch.Tensor) -> torch.Tensor:
    """SPA's map: ReLU, then min-max per map with eps 1e-10 (an all-zero map stays zero), on the
    CPU: ``norm_atten_map`` (utils/vistools.py:432) in float32, the same IEEE operations."""
    return _minmax(F.relu(cam.detach().float().cpu()), dim=(-2, -1))


class SCG(PostProcessor):
    """Self-correlation map generation (SPA, CVPR 2021); ``scg(cams, taps, image_size)``.

    ``cams``: (N, K, h, w) raw class maps of K classes, or one (N, h, w) map per image, of any
    range (min-max normalized per map inside); ``taps``: a list of (N, C_i, h_i, w_i) float
    feature maps (two in the paper, resized to the finest grid); ``image_size``: ``(H, W)`` of the
    output, or one ``(H, W)`` per image. Returns float32 maps in [0, 1] on the maps' device:
    (N, K, H, W), resp. (N, H, W); a list of maps when the sizes differ (docs/interfaces.md).

    Args:
        fo_th: first-order threshold: cosine similarities below it are zeroed.
        so_th: higher-order threshold, relative to 1/P (official) or absolute on the
            min-max-normalized map (paper).
        so_weight: weight of the higher-order matrix in the combined max.
        fg_th: CAM points >= fg_th form the object set.
        bg_th: CAM points <= bg_th form the background set.
        order: order of the higher-order self-correlation (>= 2).
        mode: which matrix is aggregated: ``first``, ``second`` (higher order) or ``combined``.
        variant: ``official`` (the released code) or ``paper`` (the printed formulas).
        chunk_size: images per chunk; None picks it from P so a chunk needs about 1 GiB at most.
    """

    presets = {
        "ilsvrc": dict(fo_th=0.2, so_th=0.2, so_weight=1.0, fg_th=0.1, bg_th=0.05, order=2),
        "cub": dict(fo_th=0.1, so_th=0.5, so_weight=2.0, fg_th=0.1, bg_th=0.05, order=2),
    }

    def __init__(
        self,
        fo_th: float = 0.2,
        so_th: float = 0.2,
        so_weight: float = 1.0,
        fg_th: float = 0.1,
        bg_th: float = 0.05,
        order: int = 2,
        mode: str = "combined",
        variant: str = "official",
        chunk_size: int | None = None,
    ):
        if mode not in MODES:
            raise WsolbenchError(f"SCG mode must be one of {', '.join(MODES)}, not '{mode}'")
        if variant not in VARIANTS:
            raise WsolbenchError(
                f"SCG variant must be one of {', '.join(VARIANTS)}, not '{variant}'"
            )
        if int(order) != order or order < 2:
            raise WsolbenchError(f"SCG order must be an integer >= 2, not {order}")
        if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
            raise WsolbenchError(f"SCG chunk_size must be >= 1, not {chunk_size}")
        self.fo_th, self.so_th, self.so_weight = float(fo_th), float(so_th), float(so_weight)
        self.fg_th, self.bg_th = float(fg_th), float(bg_th)
        self.order, self.mode, self.variant = int(order), mode, variant
        self.chunk_size = chunk_size

    @classmethod
    def from_preset(cls, name: str, **overrides) -> SCG:
        """The official thresholds of a dataset (``ilsvrc`` or ``cub``), optionally overridden."""
        if name.lower() not in cls.presets:
            raise WsolbenchError(
                f"unknown SCG preset '{name}' (available: {', '.join(cls.presets)})"
            )
        return cls(**{**cls.presets[name.lower()], **overrides})

    # ---------------------------------------------------------------- self-correlation
    def self_correlation(self, feat: torch.Tensor) -> SelfCorrelation:
        """First-order, higher-order and combined matrices of one layer's (N, C, h, w) features."""
        return self._matrices(feat, "all")

    def _matrices(self, feat: torch.Tensor, wanted: str) -> SelfCorrelation:
        """The matrices of one layer; with ``wanted`` = ``first`` or ``second`` the others are
        skipped (None), which saves the P^3 product for first-order runs."""
        if feat.dim() != 4:
            raise WsolbenchError(
                f"SCG taps must be (N, C, h, w) tensors, got shape {tuple(feat.shape)}"
            )
        if self.variant == "official":
            return self._official_matrices(feat.detach().float().cpu(), wanted)
        n, channels, h, w = feat.shape
        positions = feat.detach().float().cpu().permute(0, 2, 3, 1).reshape(n, h * w, channels)
        positions = positions / (positions.norm(dim=2, keepdim=True) + 1e-10)
        similarity = torch.bmm(positions, positions.transpose(1, 2))
        if self.fo_th > 0:  # zeroing below a positive threshold also does the ReLU's work
            similarity.masked_fill_(similarity < self.fo_th, 0.0)
        else:
            similarity.clamp_(min=0.0)
        return self._paper_matrices(similarity, wanted)

    def _official_matrices(self, feat: torch.Tensor, wanted: str) -> SelfCorrelation:
        """``VGG.hsc`` (models/vgg/vgg_spa.py:109-142) operation for operation, then the
        ``--scg_com`` fusion (``torch.max(fo, so_weight * so)``, divided by its column sums +
        1e-10: exper/val_spa.py:289-290)."""
        n, channels, h, w = feat.shape
        f_phi = feat.permute(0, 2, 3, 1).contiguous().view(n, -1, channels)
        f_phi_normed = f_phi / (torch.norm(f_phi, dim=2, keepdim=True) + 1e-10)
        cos = F.relu(torch.matmul(f_phi_normed, f_phi_normed.transpose(1, 2)))
        cos[cos < self.fo_th] = 0
        first = higher = combined = None
        if wanted != "second":
            first = cos.clone()
            first = first / (torch.sum(first, dim=1, keepdim=True) + 1e-5)
            if wanted == "first":
                return SelfCorrelation(first, higher, combined)
        base_th = 1.0 / (h * w)
        cos[:, torch.arange(h * w), torch.arange(w * h)] = 0
        cos = cos / (torch.sum(cos, dim=1, keepdim=True) + 1e-5)
        higher = cos.clone()
        so_th = base_th * self.so_th
        for _ in range(self.order - 1):
            higher = torch.matmul(higher, cos)
            higher = higher / (torch.sum(higher, dim=1, keepdim=True) + 1e-10)
        higher[higher < so_th] = 0
        if wanted != "second":
            combined = torch.max(first, self.so_weight * higher)
            combined = combined / (torch.sum(combined, dim=1, keepdim=True) + 1e-10)
        return SelfCorrelation(first, higher, combined)

    def _paper_matrices(self, similarity: torch.Tensor, wanted: str) -> SelfCorrelation:
        positions = similarity.shape[-1]
        first = higher = combined = None
        if wanted != "second":
            first = _minmax(similarity, dim=1)
            if wanted == "first":
                return SelfCorrelation(first, higher, combined)
        power = similarity
        for _ in range(self.order - 1):
            power = torch.bmm(power, similarity).div_(positions)
        # S is symmetric, so row i of S^h is column i: normalizing over dim 1 normalizes the
        # paper's rows while keeping "map of point j in column j".
        higher = _minmax(power, dim=1)
        higher.masked_fill_(higher < self.so_th, 0.0)
        if wanted != "second":
            combined = torch.maximum(first, self.so_weight * higher)
        return SelfCorrelation(first, higher, combined)

    def fused_correlation(self, taps: Sequence[torch.Tensor]) -> tuple[torch.Tensor, Size]:
        """Sum over layers of the selected matrix (``mode``), on the finest tap grid, on the CPU
        (the SPA code fuses its two layers as ``sc_maps[-1] + sc_maps[-2]``,
        exper/val_spa.py:297)."""
        taps = [tap.detach().float().cpu() for tap in _check_taps(taps)]
        grid = _finest_grid(taps)
        wanted = {"first": "first", "second": "second"}.get(self.mode, "all")
        fused = None
        for tap in taps:
            matrices = self._matrices(_resize_features(tap, grid), wanted)
            chosen = {"first": matrices.first, "second": matrices.higher}.get(
                self.mode, matrices.combined
            )
            del matrices
            fused = chosen if fused is None else fused.add_(chosen)
        return fused, grid

    # ---------------------------------------------------------------- aggregation
    def _grid_cam(self, cam: torch.Tensor, grid: Size, image_size: Size) -> torch.Tensor:
        cam = normalize_cam(cam)
        if self.variant == "official":
            # The released code resizes the map to the original image and then to the grid.
            cam = resize_bilinear(cam, image_size)
        return resize_bilinear(cam, grid)

    def _aggregate(self, fused: np.ndarray, grid_cams: np.ndarray, size: Size) -> dict:
        """``get_topk_boxes_hier_scg`` (utils/localization.py:129-192) for one image, in numpy
        as written there: the (P, P) float32 ``fused`` matrix and the image's (K, h, w) class
        maps on the grid give, per class, the object map a and background map b (the selected
        columns, each min-max normalized, summed with ``np.sum``, min-max normalized), y =
        minmax(a - b where >= 0) on the grid, and y resized to ``size`` (H, W) as ``final``."""
        classes, h, w = grid_cams.shape
        # Each column (the map of a point) min-max normalized, elementwise as the reference
        # normalizes the columns it selects: the same values, computed once for all classes.
        low = np.min(fused, axis=0, keepdims=True)
        columns = (fused - low) / (np.max(fused, axis=0, keepdims=True) - low + 1e-10)
        out: dict[str, list[np.ndarray]] = {"object": [], "background": [], "grid_final": []}
        out["final"] = []
        for cam in grid_cams:
            vector = cam.reshape(-1)
            positive = _summed_columns(columns, vector >= self.fg_th, (h, w))
            negative = _summed_columns(columns, vector <= self.bg_th, (h, w))
            difference = positive - negative
            difference = difference * (difference >= 0)
            low_d, high_d = np.min(difference), np.max(difference)
            grid_final = (difference - low_d) / (high_d - low_d + 1e-10)
            resized = cv2.resize(grid_final, (int(size[1]), int(size[0])))
            out["object"].append(positive)
            out["background"].append(negative)
            out["grid_final"].append(grid_final)
            out["final"].append(np.maximum(0, resized))  # localization.py:192, from 0
        shapes = {"final": (int(size[0]), int(size[1]))}
        return {
            key: np.stack(maps) if maps else np.zeros((0, *shapes.get(key, (h, w))), np.float32)
            for key, maps in out.items()
        }

    def _chunk_size(self, positions: int) -> int:
        if self.chunk_size is not None:
            return self.chunk_size
        # Layers are processed one after another, so the peak does not grow with their number.
        return max(1, _CHUNK_BUDGET_BYTES // (_MATRICES_PER_IMAGE * positions * positions * 4))

    def explain(
        self, cams: torch.Tensor, taps: Sequence[torch.Tensor], image_size: Size | Sequence[Size]
    ):
        """Every intermediate map of (N, K, h, w) class maps: ``cam`` (normalized, on the grid),
        ``object`` (a), ``background`` (b), ``grid_final`` (y on the grid) as (N, K, h, w), and
        ``final`` resized to the image size ((N, K, H, W), or a list of (K, H_i, W_i) when
        ``image_size`` is a list of per-image sizes). One (N, h, w) map gives (N, h, w) maps
        (and (N, H, W) or (H_i, W_i) finals)."""
        single = isinstance(cams, torch.Tensor) and cams.dim() == 3
        result = self._explain(cams[:, None] if single else cams, taps, image_size)
        return {key: only_class(value) for key, value in result.items()} if single else result

    def _explain(self, cams: torch.Tensor, taps: Sequence[torch.Tensor], image_size) -> dict:
        taps = _check_taps(taps)
        cams = check_class_maps(cams, taps[0].shape[0])
        n, classes = cams.shape[:2]
        sizes = per_image_sizes(image_size, n)
        device = cams.device  # results go back there; the work is done on the CPU
        grid = _finest_grid(taps)
        grid_cams = torch.empty((n, classes, *grid))
        for size, index in _group_by_size(sizes):
            grid_cams[index] = self._grid_cam(cams[index].flatten(0, 1), grid, size).reshape(
                len(index), classes, *grid
            )
        parts: dict[str, list[np.ndarray]] = {
            "object": [],
            "background": [],
            "grid_final": [],
            "final": [],
        }
        step = self._chunk_size(grid[0] * grid[1])
        for start in range(0, n, step):
            # Once per chunk of images, whatever the number of classes: the class-independent part.
            fused = self.fused_correlation([t[start : start + step] for t in taps])[0].numpy()
            for offset, matrix in enumerate(fused):
                image = start + offset
                maps = self._aggregate(matrix, grid_cams[image].numpy(), sizes[image])
                for key, value in maps.items():
                    parts[key].append(value)
            del fused
        result = {
            key: _stacked(parts[key], (0, classes, *grid), device)
            for key in ("object", "background", "grid_final")
        }
        result["cam"] = grid_cams.to(device)
        finals = [torch.from_numpy(m).to(device) for m in parts["final"]]
        if _is_size(image_size):
            result["final"] = _stacked(parts["final"], (0, classes, *sizes[0]), device)
        else:
            result["final"] = finals
        return result

    def process(
        self, cams: torch.Tensor, taps: Sequence[torch.Tensor], image_size: Size | Sequence[Size]
    ):
        """(N, K, h, w) raw class maps + taps -> (N, K, H, W) maps in [0, 1] (a list of
        (K, H_i, W_i) for per-image sizes)."""
        return self._explain(cams, taps, image_size)["final"]


# -------------------------------------------------------------------- input checks and sizes
def _check_taps(taps: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    if isinstance(taps, torch.Tensor) or not isinstance(taps, (list, tuple)) or not taps:
        raise WsolbenchError("SCG needs a non-empty list of (N, C, h, w) feature taps")
    for tap in taps:
        if not isinstance(tap, torch.Tensor) or tap.dim() != 4:
            shape = tuple(tap.shape) if isinstance(tap, torch.Tensor) else type(tap).__name__
            raise WsolbenchError(f"SCG taps must be (N, C, h, w) tensors, got {shape}")
        if tap.shape[0] != taps[0].shape[0]:
            raise WsolbenchError("SCG taps have different batch sizes")
    return list(taps)


def check_class_maps(cams: torch.Tensor, batch: int | None = None) -> torch.Tensor:
    """Class maps must be one (N, K, h, w) tensor, N = ``batch`` when given."""
    if not isinstance(cams, torch.Tensor) or cams.dim() != 4:
        shape = tuple(cams.shape) if isinstance(cams, torch.Tensor) else type(cams).__name__
        raise WsolbenchError(f"class maps must be an (N, K, h, w) or (N, h, w) tensor, got {shape}")
    if batch is not None and cams.shape[0] != batch:
        raise WsolbenchError(f"class map batch {cams.shape[0]} != taps batch {batch}")
    return cams


def _summed_columns(columns: np.ndarray, selected: np.ndarray, shape: Size) -> np.ndarray:
    """The selected columns summed per row and min-max normalized (localization.py:156-166), or
    zeros when none is selected (the reference's scalar 0, which subtracts the same)."""
    index = np.flatnonzero(selected)
    if not len(index):
        return np.zeros(shape, np.float32)
    summed = np.sum(columns[:, index], axis=1).reshape(shape)
    return (summed - np.min(summed)) / (np.max(summed) - np.min(summed) + 1e-10)


def _stacked(maps: list[np.ndarray], empty: tuple[int, ...], device) -> torch.Tensor:
    array = np.stack(maps) if maps else np.zeros(empty, np.float32)
    return torch.from_numpy(array).to(device)


def _finest_grid(taps: list[torch.Tensor]) -> Size:
    return max((tuple(t.shape[-2:]) for t in taps), key=lambda size: size[0] * size[1])


def _resize_features(feat: torch.Tensor, grid: Size) -> torch.Tensor:
    if tuple(feat.shape[-2:]) == tuple(grid):
        return feat
    return F.interpolate(feat.float(), size=tuple(grid), mode="bilinear", align_corners=False)


def per_image_sizes(image_size, batch: int) -> list[Size]:
    """One (H, W) per image, from a single size or a list of sizes."""
    if _is_size(image_size):
        return [(int(image_size[0]), int(image_size[1]))] * batch
    if not isinstance(image_size, (list, tuple, torch.Tensor)):
        raise WsolbenchError(
            f"image_size must be one (H, W) or {batch} (H, W) pairs, got {image_size!r}"
        )
    sizes = [(int(s[0]), int(s[1])) for s in image_size if _is_size(s)]
    if len(sizes) != batch or len(sizes) != len(image_size):
        raise WsolbenchError(f"image_size must be one (H, W) or {batch} (H, W) pairs")
    return sizes


def _is_size(value) -> bool:
    if isinstance(value, torch.Tensor):
        value = value.tolist()
    return (
        isinstance(value, (list, tuple))
        and len(value) == 2
        and all(
            isinstance(v, int) or (hasattr(v, "__index__") and not isinstance(v, bool))
            for v in value
        )
    )


def _group_by_size(sizes: list[Size]) -> list[tuple[Size, list[int]]]:
    """Images that share a size, so each group is resized in one batched call."""
    groups: dict[Size, list[int]] = {}
    for index, size in enumerate(sizes):
        groups.setdefault(size, []).append(index)
    return list(groups.items())


def resize_to_sizes(maps: torch.Tensor, image_size, sizes: list[Size]):
    """Resize (N, ..., h, w) maps to their image sizes: one tensor, or a list for per-image sizes."""
    if _is_size(image_size):
        return resize_bilinear(maps, sizes[0])
    out: list[torch.Tensor | None] = [None] * len(sizes)
    for size, index in _group_by_size(sizes):
        for i, resized in zip(index, resize_bilinear(maps[index], size)):
            out[i] = resized
    return out


# Re-exported here so ``from wsolbench.methods.scg import SCGExtractor`` works; it lives in its
# own module (the hook mechanics), which imports SCG from this one.
from wsolbench.methods.scg_extractor import SCGExtractor  # noqa: E402

__all__ = ["SCG", "SCGExtractor", "SelfCorrelation", "normalize_cam", "resize_bilinear"]
