"""The post-processor registry entries: ``none`` (SPA's plain map; ``identity`` is accepted as
its alias) and ``scg``.

A post-processor is a ``PostProcessor`` (methods/postprocessor.py, docs/interfaces.md):
``pp(cams, taps, image_size)`` with ``cams`` the (N, K, h, w) raw class maps of K classes per
image at feature resolution, ``taps`` a list of (N, C_l, h_l, w_l) feature maps (ignored by
``identity``), ``image_size`` one (H, W) or a list of per-image sizes; it returns (N, K, H, W)
maps in [0, 1], or a list of (K, H_i, W_i) maps for per-image sizes. One (N, h, w) map per image
is accepted too and gives (N, H, W) maps.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from wsolbench.methods.postprocessor import PostProcessor
from wsolbench.methods.scg import (
    SCG,
    check_class_maps,
    normalize_cam,
    per_image_sizes,
    resize_to_sizes,
)
from wsolbench.registry import register_postprocessor

__all__ = ["Identity", "PostProcessor", "SCG"]


@register_postprocessor("none", aliases=("identity",))
class Identity(PostProcessor):
    """SPA's map: ReLU, min-max per map (eps 1e-10), bilinear resize to the image size, on the
    CPU with OpenCV as the SPA code (``get_topk_boxes_hier``, utils/localization.py:67-69);
    returned on the device of the class maps."""

    def process(
        self, cams: torch.Tensor, taps: Sequence[torch.Tensor] | None = None, image_size=None
    ):
        cams = check_class_maps(cams)
        if image_size is None:
            image_size = tuple(cams.shape[-2:])
        sizes = per_image_sizes(image_size, cams.shape[0])
        maps = resize_to_sizes(normalize_cam(cams), image_size, sizes)
        if isinstance(maps, torch.Tensor):
            return maps.to(cams.device)
        return [m.to(cams.device) for m in maps]

    def scoremap_source(self, cams, maps):
        # wsolevaluation's CAM computer resizes the raw CAM (no ReLU) for plain maps.
        return cams

    def source_maps(self, cams, taps=None, image_size=None):
        return cams  # no original-size maps to compute for the raw CAM


register_postprocessor("scg")(SCG)
