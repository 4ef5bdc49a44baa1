"""SCM: the spatial calibration module (Bai et al., ECCV 2022), as its code (hbai98/SCM @ be5bdfa,
``lib/models/deit.py`` ``SCM`` and ``Encoder``, ``lib/models/graphFusion.py`` ``Fuse``).

TS-CAM's network (``tscam``) with the coupled attention min-max normalized over the patches
(``norm_cam``, no epsilon) before it multiplies the semantic maps: the map of class c is
``norm(A) * S_c``, and the logits are the global average of ``S``.

In training, ``num_layers`` diffusion layers (the reference's ``Encoder``) refine the semantic
maps and the attention before the logits are taken (``self.training`` decides, as in the
reference; the layers are not used at evaluation). Each layer, with x the (N, C, h, w) maps and
c the (N, P) attention::

    W     = cosine similarity of the P positions' C-vectors of x            (N, P, P)
    F     = Newton-Schulz inverse of L * (rate * W - 1), transposed         (graph diffusion)
    c'    = norm(tanhshrink((F c) / (threshold * max(c))))
    x, c  = x + x * c', c + c'

with L the Laplacian (degree - adjacency) of the 4-connected h x w grid of patches, ``rate``
(``fuse._loss_rate``, init 1) and ``threshold`` (``thred``, init 0.5) learned per layer, and the
Newton-Schulz iteration ``X_{k+1} = X_k (2 I - M X_k)`` from ``X_0 = 0.002 M^T`` (taken without
gradient), 16 steps in the first layer and 4 in the others. The reference fixes the grid at
14 x 14 (224 px); here it is the input's patch grid (equal at 224). The loss is cross-entropy on
the diffused logits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from wsolbench.errors import WsolbenchError
from wsolbench.methods.base import global_average_pool
from wsolbench.methods.tscam import TSCAM
from wsolbench.registry import register_method

# Newton-Schulz steps of the first layer and of the others (Encoder's fusion_cfg iteration).
FIRST_ITERATIONS, ITERATIONS = 16, 4
SCHULZ_ALPHA = 0.002  # inverse_schulz's alpha


def norm_cam(values: torch.Tensor) -> torch.Tensor:
    """SCM's ``norm_cam`` of (N, P) values: minus the min, over the max of that, no epsilon."""
    values = values - values.min(dim=1, keepdim=True).values
    return values / values.max(dim=1, keepdim=True).values


def grid_laplacian(height: int, width: int, like: torch.Tensor) -> torch.Tensor:
    """Degree - adjacency of the 4-connected height x width grid, positions row-major (P, P)."""
    index = torch.arange(height * width, device=like.device).view(height, width)
    adjacency = torch.zeros(height * width, height * width, dtype=like.dtype, device=like.device)
    for a, b in ((index[:, :-1], index[:, 1:]), (index[:-1, :], index[1:, :])):
        adjacency[a.flatten(), b.flatten()] = 1
        adjacency[b.flatten(), a.flatten()] = 1
    return torch.diag(adjacency.sum(dim=0)) - adjacency


def inverse_schulz(matrix: torch.Tensor, iterations: int) -> torch.Tensor:
    """graphFusion.py's ``inverse_schulz``: the start point carries no gradient."""
    eye = torch.eye(matrix.shape[-1], dtype=matrix.dtype, device=matrix.device)
    with torch.no_grad():
        inverse = SCHULZ_ALPHA * matrix.transpose(-2, -1)
    for _ in range(iterations):
        inverse = inverse @ (2 * eye - matrix @ inverse)
    return inverse


class Fuse(nn.Module):
    """The reference's ``Fuse``: the diffusion matrix of a similarity matrix."""

    def __init__(self, iterations: int, loss_rate: float = 1.0):
        super().__init__()
        self.iterations = iterations
        self._loss_rate = nn.Parameter(torch.ones(1) * loss_rate)

    def forward(self, similarity: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        laplacian = grid_laplacian(*grid, similarity)
        matrix = laplacian * (self._loss_rate * similarity - 1)
        return inverse_schulz(matrix, self.iterations).transpose(-2, -1)


class DiffusionLayer(nn.Module):
    """The reference's ``Encoder`` (residual, threshold init 0.5)."""

    def __init__(self, iterations: int, threshold: float = 0.5):
        super().__init__()
        self.fuse = Fuse(iterations)
        self.thred = nn.Parameter(torch.ones(1) * threshold)

    def forward(self, x: torch.Tensor, cam: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n, channels, h, w = x.shape
        tokens = x.flatten(2).transpose(1, 2)  # (N, P, C)
        norms = tokens.norm(p=2, dim=-1)
        similarity = (tokens @ tokens.transpose(1, 2)) / (norms[:, :, None] * norms[:, None, :])
        diffused = torch.einsum("bhw,bw->bh", self.fuse(similarity, (h, w)), cam)
        threshold = self.thred * cam.max(dim=1, keepdim=True).values
        out_cam = norm_cam(F.tanhshrink(diffused / threshold))
        out_x = x * out_cam.view(n, 1, h, w)
        return x + out_x, cam + out_cam


@register_method("scm")
class SCM(TSCAM):
    """SCM: TS-CAM with normalized attention, trained through graph-diffusion layers."""

    def __init__(self, num_layers: int = 4, **common):
        if isinstance(num_layers, bool) or not isinstance(num_layers, int) or num_layers < 1:
            raise WsolbenchError(f"scm: num_layers must be an integer >= 1, got {num_layers!r}")
        super().__init__(**common)
        self.layers = nn.ModuleList(
            DiffusionLayer(FIRST_ITERATIONS if i == 0 else ITERATIONS) for i in range(num_layers)
        )

    def coupling(self, attention: torch.Tensor) -> torch.Tensor:
        return norm_cam(super().coupling(attention))

    def head(self, features, taps, labels):
        outputs = super().head(features, taps, labels)
        if self.training:
            x, cam = outputs["semantic"], outputs["coupling"].flatten(1)
            for layer in self.layers:
                x, cam = layer(x, cam)
            outputs.update(logits=global_average_pool(x), diffused=x, diffused_cam=cam)
        return outputs
