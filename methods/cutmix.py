"""CutMix (Yun et al., ICCV 2019) on a CAM network, as wsolevaluation trains it.

With probability ``cutmix_prob`` a batch is mixed: lambda ~ Beta(beta, beta), a box of area
(1 - lambda) centred uniformly (then clipped to the image) is pasted from a shuffled copy of
the batch, lambda is recomputed from the clipped area, and the loss is
``lambda * CE(y_a) + (1 - lambda) * CE(y_b)``. As upstream, one box and one lambda per batch.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from wsolbench.errors import WsolbenchError
from wsolbench.methods.cam import CAM
from wsolbench.options import Option
from wsolbench.registry import register_method


class MixedTargets(NamedTuple):
    """Targets of a CutMix batch: the loss is lam * CE(labels) + (1 - lam) * CE(labels_b)."""

    labels: torch.Tensor
    labels_b: torch.Tensor
    lam: float


def random_box(height: int, width: int, lam: float) -> tuple[int, int, int, int]:
    """(y0, y1, x0, x1) of a box of area ~(1 - lam), centred uniformly, clipped (half-open)."""
    ratio = (1.0 - lam) ** 0.5
    cut_h, cut_w = int(height * ratio), int(width * ratio)
    cy = int(torch.randint(height, ()))
    cx = int(torch.randint(width, ()))
    y0, y1 = max(cy - cut_h // 2, 0), min(cy + cut_h // 2, height)
    x0, x1 = max(cx - cut_w // 2, 0), min(cx + cut_w // 2, width)
    return y0, y1, x0, x1


def cutmix(
    images: torch.Tensor, labels: torch.Tensor, beta: float
) -> tuple[torch.Tensor, MixedTargets]:
    """Paste one random box from a shuffled batch; lambda = 1 - pasted area fraction."""
    n, _, height, width = images.shape
    lam = float(torch.distributions.Beta(beta, beta).sample())
    order = torch.randperm(n, device=images.device)
    y0, y1, x0, x1 = random_box(height, width, lam)
    mixed = images.clone()
    mixed[:, :, y0:y1, x0:x1] = images[order, :, y0:y1, x0:x1]
    lam = 1.0 - (y1 - y0) * (x1 - x0) / (height * width)
    return mixed, MixedTargets(labels, labels[order], lam)


@register_method("cutmix")
class CutMix(CAM):
    """CutMix: CAM trained on batches with a box pasted from shuffled images."""

    # A probability of 0 would never mix: plain CAM under CutMix's name.
    OPTIONS = {
        "cutmix_prob": Option(float, low=0, high=1, low_open=True),
        "beta": Option(float, low=0, low_open=True),
    }

    def __init__(self, cutmix_prob: float = 1.0, beta: float = 1.0, **common):
        if not 0 < cutmix_prob <= 1 or beta <= 0:
            raise WsolbenchError(
                f"cutmix: need 0 < cutmix_prob <= 1 and beta > 0, got {cutmix_prob}, {beta}"
            )
        super().__init__(**common)
        self.cutmix_prob = float(cutmix_prob)
        self.beta = float(beta)

    def prepare_batch(self, images, labels):
        if not self.training or float(torch.rand(())) >= self.cutmix_prob:
            return images, labels
        return cutmix(images, labels, self.beta)

    def loss(self, outputs, targets):
        if not isinstance(targets, MixedTargets):
            return super().loss(outputs, targets)
        logits = outputs["logits"]
        return targets.lam * F.cross_entropy(logits, targets.labels) + (
            1.0 - targets.lam
        ) * F.cross_entropy(logits, targets.labels_b)
