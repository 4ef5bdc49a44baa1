"""TinyVGG: a small VGG-style network that trains from scratch on CPU in about a minute.

Built for the synthetic benchmark (64 px images, 10 classes). Four blocks of conv3x3-BN-ReLU
mirror VGG16's layout at a fraction of the cost: two max-pools give feature stride 4 (a 16x16
map at 64 px; 32x32 with ``large_feature_map``, which drops the second pool). ``feat4`` and
``feat5`` play the roles of VGG16's conv4 and conv5 outputs (same grid, so SCG can fuse them);
ADL goes after ``pool2`` (VGG's pool3), ``feat4`` and ``feat5``. It has no pretrained weights:
random initialization is its normal case.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import torch
from torch import nn

from wsolbench.backbones.base import Backbone, load_weights
from wsolbench.registry import register_backbone


def _conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


@register_backbone("tinyvgg")
class TinyVGG(Backbone):
    """Small VGG-style CNN (stride 4, 64 channels) for 64-96 px inputs; trains on CPU."""

    scg_taps = ("feat4", "feat5")
    insertion_points = ("pool2", "feat4", "feat5")
    head_width = 128  # 1024 would dominate the cost of a 64-channel network

    def __init__(
        self,
        pretrained: bool = False,
        weights: str | Path | None = None,
        large_feature_map: bool = False,
        inserts: Mapping[str, nn.Module] | None = None,
        width: int = 64,
    ):
        super().__init__(inserts)
        half, quarter = width // 2, width // 4
        self.block1 = nn.Sequential(_conv_bn_relu(3, quarter), nn.MaxPool2d(2))
        self.block2 = nn.Sequential(
            _conv_bn_relu(quarter, half),
            nn.Identity() if large_feature_map else nn.MaxPool2d(2),
        )
        self.block3 = nn.Sequential(_conv_bn_relu(half, width), _conv_bn_relu(width, width))
        self.block4 = nn.Sequential(_conv_bn_relu(width, width), _conv_bn_relu(width, width))
        self.out_channels = width
        self.tap_channels = {"feat4": width, "feat5": width}
        self.feature_stride = 2 if large_feature_map else 4
        self._check_inserts()
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        load_weights(self, name="tinyvgg", pretrained=pretrained, weights=weights)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        x = self._insert("pool2", self.block2(self.block1(x)))
        feat4 = self._insert("feat4", self.block3(x))
        feat5 = self._insert("feat5", self.block4(feat4))
        return feat5, {"feat4": feat4, "feat5": feat5}
