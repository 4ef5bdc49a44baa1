"""ADL: attention-based dropout layer (Choe & Shim, CVPR 2019) on a CAM network.

A parameter-free layer is inserted at every insertion point of the backbone (VGG16: after
pool3, conv4_3 and conv5_3; ResNet50: after layer3's first block and after layer4's first and
last blocks; Inception: after Mixed_5d and Mixed_6e, and a third one inside the head after its
second convolution, whose dropout ADL drops, as ``InceptionAdl``; TinyVGG: after pool2, feat4
and feat5). At training time it
multiplies the features by either the drop mask (hide the most discriminative part) or the
importance map (sigmoid of the channel-mean attention): the drop mask with probability
``drop_rate``, ONE draw per batch as upstream. Identity at eval.
"""

from __future__ import annotations

import torch
from torch import nn

from wsolbench.errors import WsolbenchError
from wsolbench.methods.cam import CAM
from wsolbench.registry import BACKBONES, register_method


class AttentionDropout(nn.Module):
    """The ADL layer: no parameters, identity at eval."""

    def __init__(self, drop_rate: float = 0.75, gamma: float = 0.9):
        super().__init__()
        self.drop_rate = drop_rate
        self.gamma = gamma

    @staticmethod
    def attention(features: torch.Tensor) -> torch.Tensor:
        return features.mean(dim=1, keepdim=True)

    def drop_mask(self, attention: torch.Tensor) -> torch.Tensor:
        """1 where attention < gamma * (per-image max), else 0."""
        peak = attention.flatten(1).max(dim=1).values.view(-1, 1, 1, 1)
        return (attention < self.gamma * peak).to(attention.dtype)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return features
        attention = self.attention(features)
        # Upstream: floor(U[0, 1) + drop_rate) == 1, i.e. drop with probability drop_rate.
        use_drop_mask = bool(torch.rand(()) < self.drop_rate)
        selected = self.drop_mask(attention) if use_drop_mask else torch.sigmoid(attention)
        return features * selected

    def extra_repr(self) -> str:
        return f"drop_rate={self.drop_rate}, gamma={self.gamma}"


@register_method("adl")
class ADL(CAM):
    """ADL: CAM with attention-based dropout layers inside the backbone (training only)."""

    architecture_type = "adl"

    def __init__(self, drop_rate: float = 0.75, gamma: float = 0.9, **common):
        if not (0 <= drop_rate <= 1 and 0 <= gamma <= 1):
            raise WsolbenchError(
                f"adl: drop_rate and gamma must be in [0, 1], got {drop_rate}, {gamma}"
            )
        # `common` holds every common argument: the constructor is called with all of them.
        points = BACKBONES.get(common["backbone"]).insertion_points
        inserts = {point: AttentionDropout(drop_rate, gamma) for point in points}
        super().__init__(inserts=inserts, **common)
        if self.cam_head.style == "class_conv":  # InceptionAdl: no dropout, ADL in the head
            self.cam_head.dropout = False
            self.cam_head.inner = AttentionDropout(drop_rate, gamma)
