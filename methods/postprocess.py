"""The post-processor registry entries: ``identity`` (SPA's plain map) and ``scg``.

A post-processor is a callable ``pp(cam, taps, image_size)``: ``cam`` the (N, h, w) raw class
map at feature resolution, ``taps`` a list of (N, C_l, h_l, w_l) feature maps (ignored by
``identity``), ``image_size`` one (H, W) or a list of per-image sizes; it returns (N, H, W) maps
in [0, 1], or a list of (H_i, W_i) maps for per-image sizes (docs/interfaces.md).
"""
from __future__ import annotations

from typing import Sequence

import torch

from wsolbench.methods.scg import SCG, check_cam, normalize_cam, per_image_sizes, resize_to_sizes
from wsolbench.registry import register_postprocessor

__all__ = ["Identity", "SCG"]


@register_postprocessor("identity")
class Identity:
    """SPA's map: ReLU, min-max per image (eps 1e-10), bilinear resize to the image size."""

    def __call__(self, cam: torch.Tensor, taps: Sequence[torch.Tensor] | None = None, image_size=None):
        with torch.no_grad():
            cam = check_cam(cam)
            if image_size is None:
                image_size = tuple(cam.shape[-2:])
            sizes = per_image_sizes(image_size, cam.shape[0])
            return resize_to_sizes(normalize_cam(cam), image_size, sizes)

    def __repr__(self) -> str:
        return "Identity()"


register_postprocessor("scg")(SCG)
