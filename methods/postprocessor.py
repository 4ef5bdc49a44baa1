"""The post-processor contract (docs/interfaces.md): class maps of K classes per image in, maps
in [0, 1] out, one call per batch.

    maps = pp(cams, taps, image_size)

- ``cams``: (N, K, h, w) raw class maps at feature resolution, K classes per image (the bench
  passes the GT class and the top-5 together), on the model's device;
- ``taps``: a list of (N, C_l, h_l, w_l) feature maps of the same images (SCG's input; others
  may ignore them);
- ``image_size``: one (H, W) for the whole batch, or N per-image (H, W) sizes;
- returns (N, K, H, W) maps, or a list of N (K, H_i, W_i) maps for per-image sizes, on the
  device of the inputs.

For convenience a single (N, h, w) map per image is accepted too and gives (N, H, W) maps (a list
of (H_i, W_i) maps for per-image sizes). Batching K classes into one call lets a post-processor
do its class-independent work once per batch (SCG's self-correlation); each of the K maps is
exactly what a call with that class alone gives.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


class PostProcessor:
    """Base of the registered post-processors: subclasses implement ``process`` on (N, K, h, w)."""

    def __call__(
        self, cams: torch.Tensor, taps: Sequence[torch.Tensor] | None = None, image_size=None
    ):
        single = isinstance(cams, torch.Tensor) and cams.dim() == 3
        with torch.no_grad():
            maps = self.process(cams[:, None] if single else cams, taps, image_size)
        return only_class(maps) if single else maps

    def process(self, cams: torch.Tensor, taps: Sequence[torch.Tensor] | None, image_size):
        """(N, K, h, w) raw class maps -> (N, K, H, W) maps in [0, 1] (a list for per-image sizes)."""
        raise NotImplementedError

    def scoremap_source(self, cams, maps):
        """The map a protocol that prepares score maps its own way (wsolevaluation: bicubic resize
        to map_size, then min-max) starts from, given the raw ``cams`` and this post-processor's
        ``maps`` at the original size: the maps, unless the post-processor only rescales the raw
        map (identity), where upstream starts from the raw class map."""
        return maps

    def source_maps(self, cams: torch.Tensor, taps=None, image_size=None):
        """``scoremap_source`` of raw (N, h, w) maps when nothing else needs the maps at the
        original size (`wsolbench infer`): they are computed only if the source is made of them."""
        return self.scoremap_source(cams, self(cams, taps, image_size))

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"


def only_class(maps):
    """The maps of a call with one class per image: (N, 1, ...) -> (N, ...), or a list of
    (1, ...) -> a list of (...)."""
    return maps[:, 0] if isinstance(maps, torch.Tensor) else [m[0] for m in maps]
