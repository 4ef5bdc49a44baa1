"""HaS: hide-and-seek (Singh & Lee, ICCV 2017) on a CAM network.

At training time each normalized input image is cut into square patches of side ``grid_size``
pixels and each patch is zeroed with probability ``drop_rate``. wsolevaluation's config uses
``grid_size`` 4; the HaS paper hides larger patches (16-56 px at 224). Eval inputs are untouched.
"""

from __future__ import annotations

import torch

from wsolbench.errors import WsolbenchError
from wsolbench.methods.cam import CAM
from wsolbench.options import Option
from wsolbench.registry import register_method


def hide_patches(images: torch.Tensor, grid_size: int, drop_rate: float) -> torch.Tensor:
    """Zero each ``grid_size`` square patch of every image with probability ``drop_rate``.

    One Bernoulli draw per (image, patch), upsampled to pixels; border patches are cropped.
    """
    if grid_size <= 0 or drop_rate <= 0:
        return images
    n, _, height, width = images.shape
    rows, cols = -(-height // grid_size), -(-width // grid_size)
    keep = torch.rand(n, rows, cols, device=images.device) >= drop_rate
    keep = keep.repeat_interleave(grid_size, 1).repeat_interleave(grid_size, 2)
    keep = keep[:, :height, :width].unsqueeze(1)
    return images * keep.to(images.dtype)


@register_method("has")
class HaS(CAM):
    """Hide-and-Seek: CAM trained on images with random square patches zeroed."""

    # A patch of 0 pixels or a drop rate of 0 would hide nothing: plain CAM under HaS's name.
    OPTIONS = {
        "grid_size": Option(int, low=1, high=4096),
        "drop_rate": Option(float, low=0, high=1, low_open=True),
    }

    def __init__(self, grid_size: int = 4, drop_rate: float = 0.5, **common):
        if not 0 < drop_rate <= 1 or not 1 <= grid_size:
            raise WsolbenchError(
                f"has: need grid_size >= 1 and 0 < drop_rate <= 1 (else nothing is hidden), "
                f"got {grid_size}, {drop_rate}"
            )
        super().__init__(**common)
        self.grid_size = int(grid_size)
        self.drop_rate = float(drop_rate)

    def prepare_batch(self, images, labels):
        if not self.training:
            return images, labels
        return hide_patches(images, self.grid_size, self.drop_rate), labels
