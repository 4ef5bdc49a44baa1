"""TinyVGG: a small VGG-style network that trains from scratch on CPU in about a minute.

Built for the synthetic benchmark (64 px images, 10 classes). Four blocks of conv3x3-BN-ReLU
mirror VGG16's layout at a fraction of the cost: two max-pools give feature stride 4 (a 16x16
map at 64 px; 32x32 with ``large_feature_map``, which drops the second pool). ``feat4`` and
``feat5`` play the roles of VGG16's conv4 and conv5 outputs (same grid, so SCG can fuse them);
ADL goes after ``pool2`` (VGG's pool3), ``feat4`` and ``feat5``. It has no pretrained weights:
random initialization is its normal case (its own He init, whatever the architecture type).

Architecture types mirror VGG16's (see :mod:`wsolbench.backbones.vgg`): ``acol`` uses 3x3
stride-2 padding-1 max-pools (stride 1 for the second with ``large_feature_map``) and an extra
3x3 stride-1 max-pool after block4; the methods' heads follow VGG16's, at this network's widths.
The ``bas`` variant adds the tap ``conv2`` (block2's convolution before its pool, the analogue of
VGG16's relu4_3 that BAS's localization head reads); ``bas_late`` is that pool and blocks 3-4.
``reference_names`` gives the VGG16 analogue of each name (``features.<key>``; SPG's renamed
blocks ``SPG_A_1`` / ``SPG_A_2``), so name-based recipes treat it as they treat VGG16.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from wsolbench.backbones.base import ARCHITECTURE_TYPES, Backbone, SpgLayout, load_weights
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
    acol_smoothing = True
    architecture_types = (*ARCHITECTURE_TYPES, "bas")
    bas_tap = "conv2"

    def __init__(
        self,
        pretrained: bool = False,
        weights: str | Path | None = None,
        large_feature_map: bool = False,
        inserts: Mapping[str, nn.Module] | None = None,
        architecture_type: str = "cam",
        width: int = 64,
    ):
        super().__init__(inserts, architecture_type)
        half, quarter = width // 2, width // 4
        acol = architecture_type == "acol"
        if acol:
            pool1 = nn.MaxPool2d(3, 2, padding=1)
            pool2 = nn.MaxPool2d(3, 1 if large_feature_map else 2, padding=1)
        else:
            pool1, pool2 = nn.MaxPool2d(2), nn.Identity() if large_feature_map else nn.MaxPool2d(2)
        self.block1 = nn.Sequential(_conv_bn_relu(3, quarter), pool1)
        self.block2 = nn.Sequential(_conv_bn_relu(quarter, half), pool2)
        self.block3 = nn.Sequential(_conv_bn_relu(half, width), _conv_bn_relu(width, width))
        self.block4 = nn.Sequential(_conv_bn_relu(width, width), _conv_bn_relu(width, width))
        self.pool5 = nn.MaxPool2d(3, 1, padding=1) if acol else nn.Identity()
        self.out_channels = width
        self.tap_channels = {"feat4": width, "feat5": width, "conv2": half}
        self.spg_layout = SpgLayout(
            b1_tap="feat4",
            b2_tap="feat5",
            hidden=width,
            branch=width,
            side=width,
            dropout=False,
            head_names=("SPG_A_3.0", "SPG_A_3.2", "SPG_A_4"),
        )
        self.feature_stride = 2 if large_feature_map else 4
        self._check_inserts()
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        load_weights(self, name="tinyvgg", pretrained=pretrained, weights=weights)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        conv2 = self.block2[0](self.block1(x))
        x = self._insert("pool2", self.block2[1](conv2))
        feat4 = self._insert("feat4", self.block3(x))
        feat5 = self._insert("feat5", self.block4(feat4))
        taps = {"feat4": feat4, "feat5": feat5}
        if self.architecture_type == "bas":
            taps["conv2"] = conv2
        return self.pool5(feat5), taps

    def bas_late(self) -> nn.Module:
        return nn.Sequential(self.block2[1], self.block3, self.block4, self.pool5)

    def reference_names(self) -> dict[str, str]:
        spg = (
            {"block3.": "SPG_A_1.", "block4.": "SPG_A_2."}
            if self.architecture_type == "spg"
            else {}
        )
        names = {}
        for key in self.state_dict():
            prefix = next((p for p in spg if key.startswith(p)), None)
            names[key] = spg[prefix] + key[len(prefix) :] if prefix else f"features.{key}"
        return names
