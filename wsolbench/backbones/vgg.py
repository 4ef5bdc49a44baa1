"""VGG16 with wsolevaluation's changes: pool5 removed (14x14 at 224), pool4 too with
``large_feature_map`` (28x28).

Layers keep torchvision's indices (``features.N``; a removed pool becomes an Identity), so
torchvision's checkpoint loads as is. Taps: ``feat4`` = conv4 block output after pool4 (SPA's
``feat4``), ``feat5`` = conv5_3 after ReLU. ADL insertion points as wsolevaluation: ``pool3``
(after pool3), ``conv4`` (after conv4_3's ReLU, before pool4), ``conv5`` (after conv5_3's ReLU).
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import torch
from torch import nn

from wsolbench.backbones.base import Backbone, load_weights
from wsolbench.registry import register_backbone

# torchvision's configuration "D" without the final pool: (channels | "M" for a 2x2 pool).
VGG16_LAYERS = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)
POOL3, POOL4 = 16, 23  # indices of pool3 and pool4 in torchvision's `features`
END = 30  # pool5 (index 30) is removed


def _make_features(large_feature_map: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    in_channels = 3
    for value in VGG16_LAYERS:
        if value == "M":
            remove = large_feature_map and len(layers) == POOL4
            layers.append(nn.Identity() if remove else nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(in_channels, value, 3, padding=1), nn.ReLU(inplace=True)]
            in_channels = value
    return nn.Sequential(*layers)


@register_backbone("vgg16")
class VGG16(Backbone):
    """VGG16 features, pool5 removed (stride 16; 8 with large_feature_map), wsolevaluation."""

    scg_taps = ("feat4", "feat5")
    insertion_points = ("pool3", "conv4", "conv5")
    cam_head = "conv_fc"
    out_channels = 512
    tap_channels = {"feat4": 512, "feat5": 512}

    def __init__(
        self,
        pretrained: bool = False,
        weights: str | Path | None = None,
        large_feature_map: bool = False,
        inserts: Mapping[str, nn.Module] | None = None,
    ):
        super().__init__(inserts)
        self.features = _make_features(large_feature_map)
        self.feature_stride = 8 if large_feature_map else 16
        self._check_inserts()
        for module in self.features:
            if isinstance(module, nn.Conv2d):  # torchvision's VGG init
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(module.bias)
        from torchvision.models import VGG16_Weights

        load_weights(
            self, name="vgg16", pretrained=pretrained, weights=weights,
            torchvision_weights=VGG16_Weights.IMAGENET1K_V1,
        )

    def _run(self, x: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        for index in range(start, stop):
            x = self.features[index](x)
        return x

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        x = self._insert("pool3", self._run(x, 0, POOL3 + 1))
        x = self._insert("conv4", self._run(x, POOL3 + 1, POOL4))
        feat4 = self.features[POOL4](x)
        feat5 = self._insert("conv5", self._run(feat4, POOL4 + 1, END))
        return feat5, {"feat4": feat4, "feat5": feat5}
