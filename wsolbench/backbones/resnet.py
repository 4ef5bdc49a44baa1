"""ResNet50 with wsolevaluation's changes: layer4 at stride 1 (14x14 at 224), layer3 too with
``large_feature_map`` (28x28).

Module names are torchvision's (``conv1``, ``layer1.0.conv1``, ...), so torchvision's checkpoint
loads as is (its ``fc`` is ignored). Taps ``layer3`` and ``layer4`` (same grid). ADL insertion
points follow wsolevaluation's positions: ``layer3_0`` (after layer3's first block),
``layer4_0`` (after layer4's first block) and ``layer4`` (after layer4's last block).
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import torch
from torch import nn

from wsolbench.backbones.base import Backbone, load_weights
from wsolbench.registry import register_backbone


def _stride_one(layer: nn.Sequential) -> None:
    """Make a torchvision ResNet stage keep its input resolution (stride is on conv2)."""
    first = layer[0]
    first.conv2.stride = (1, 1)
    first.downsample[0].stride = (1, 1)


@register_backbone("resnet50")
class ResNet50(Backbone):
    """ResNet50, layer4 at stride 1 (stride 16; 8 with large_feature_map), wsolevaluation."""

    scg_taps = ("layer3", "layer4")
    insertion_points = ("layer3_0", "layer4_0", "layer4")
    cam_head = "fc"
    out_channels = 2048
    tap_channels = {"layer3": 1024, "layer4": 2048}

    def __init__(
        self,
        pretrained: bool = False,
        weights: str | Path | None = None,
        large_feature_map: bool = False,
        inserts: Mapping[str, nn.Module] | None = None,
    ):
        super().__init__(inserts)
        from torchvision.models import ResNet50_Weights, resnet50

        net = resnet50(weights=None)
        _stride_one(net.layer4)
        if large_feature_map:
            _stride_one(net.layer3)
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = (
            net.layer1, net.layer2, net.layer3, net.layer4
        )
        self.feature_stride = 8 if large_feature_map else 16
        self._check_inserts()
        # V1 weights are the ones wsolevaluation loads (resnet50-19c8e357 is the same model).
        load_weights(
            self, name="resnet50", pretrained=pretrained, weights=weights,
            torchvision_weights=ResNet50_Weights.IMAGENET1K_V1,
        )

    def _stage(self, x: torch.Tensor, name: str) -> torch.Tensor:
        layer = getattr(self, name)
        for index, block in enumerate(layer):
            x = block(x)
            point = name if index == len(layer) - 1 else f"{name}_{index}"
            x = self._insert(point, x)
        return x

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer2(self.layer1(x))
        layer3 = self._stage(x, "layer3")
        layer4 = self._stage(layer3, "layer4")
        return layer4, {"layer3": layer3, "layer4": layer4}
