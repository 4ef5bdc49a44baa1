"""VGG16 with wsolevaluation's changes: pool5 removed (14x14 at 224), pool4 too with
``large_feature_map`` (28x28), and the bodies of its architecture types (``wsol/vgg.py``):

- ``cam`` / ``adl``: torchvision's 2x2 max-pools (ADL layers come as inserts);
- ``acol``: 3x3 stride-2 padding-1 max-pools, pool4 at stride 1 with ``large_feature_map``, and
  an extra 3x3 stride-1 max-pool after conv5_3;
- ``spg``: pool4 is a 3x3 stride-2 padding-1 max-pool (none with ``large_feature_map``).

- ``bas``: the ``cam`` body (BAS @ 54c395e, ``CUB/Model/vgg.py``: conv1_1 .. conv5_3 with 2x2
  max-pools, pool5 built but never called), with the tap ``conv4`` (relu4_3, before pool4: 28 x 28
  at 224) its localization head reads; ``bas_late`` is pool4 and the conv5 block.

Layers keep torchvision's indices (``features.N``; a removed pool becomes an Identity), so
torchvision's checkpoint loads as is; ``reference_names`` gives wsolevaluation's names (its
indices shift where it drops a pool or inserts ADL; SPG calls conv4/conv5 ``SPG_A_1/SPG_A_2``).
Taps: ``feat4`` = conv4 block output after pool4 (SPA's ``feat4``), ``feat5`` = conv5_3 after
ReLU; ``conv4`` (before pool4) in the ``bas`` variant. ADL insertion points as wsolevaluation: ``pool3`` (after pool3), ``conv4`` (after conv4_3's
ReLU, before pool4), ``conv5`` (after conv5_3's ReLU).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

import torch
from torch import nn

from wsolbench.backbones.base import (
    ARCHITECTURE_TYPES,
    Backbone,
    SpgLayout,
    initialize_weights,
    load_weights,
)
from wsolbench.registry import register_backbone

# torchvision's configuration "D" without the final pool: (channels | "M" for a pool).
VGG16_LAYERS = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)
POOL3, POOL4 = 16, 23  # indices of pool3 and pool4 in torchvision's `features`
END = 30  # pool5 (index 30) is removed; ACoL puts its stride-1 pool there
CONVS = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)  # conv indices in torchvision's VGG16

# wsolevaluation's `configs_dict` as layer kinds: C conv (+ReLU), M max-pool, P pool4 (dropped
# with large_feature_map except in ACoL, where it becomes stride 1), A an ADL layer.
REFERENCE_LAYOUTS = {
    "cam": "CCMCCMCCCMCCCPCCC",
    "adl": "CCMCCMCCCMACCCAPCCCA",
    "acol": "CCMCCMCCCMCCCPCCCM",
}
# BAS's names of the 13 convolutions (CUB/Model/vgg.py and ILSVRC/Model/vgg.py).
BAS_CONV_NAMES = tuple(
    f"conv{block}_{i}"
    for block, n in ((1, 2), (2, 2), (3, 3), (4, 3), (5, 3))
    for i in range(1, n + 1)
)


def _pool(architecture_type: str, index: int, large_feature_map: bool) -> nn.Module:
    acol = architecture_type == "acol"
    if index != POOL4:
        return nn.MaxPool2d(3, 2, padding=1) if acol else nn.MaxPool2d(2, 2)
    if acol:
        return nn.MaxPool2d(3, 1 if large_feature_map else 2, padding=1)
    if large_feature_map:
        return nn.Identity()
    return nn.MaxPool2d(3, 2, padding=1) if architecture_type == "spg" else nn.MaxPool2d(2, 2)


def _make_features(architecture_type: str, large_feature_map: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    in_channels = 3
    for value in VGG16_LAYERS:
        if value == "M":
            layers.append(_pool(architecture_type, len(layers), large_feature_map))
        else:
            layers += [nn.Conv2d(in_channels, value, 3, padding=1), nn.ReLU(inplace=True)]
            in_channels = value
    if architecture_type == "acol":
        layers.append(nn.MaxPool2d(3, 1, padding=1))
    return nn.Sequential(*layers)


def reference_conv_names(architecture_type: str, large_feature_map: bool) -> list[str]:
    """wsolevaluation's module names of the 13 convolutions, in order."""
    if architecture_type == "spg":  # features stop after pool3; conv4/conv5 are renamed
        blocks = [f"SPG_A_{block}.{i}" for block in (1, 2) for i in (0, 2, 4)]
        return [f"features.{i}" for i in CONVS[:7]] + blocks
    names, index = [], 0
    for kind in REFERENCE_LAYOUTS[architecture_type]:
        if kind == "P" and large_feature_map and architecture_type != "acol":
            continue
        if kind == "C":
            names.append(f"features.{index}")
        index += 2 if kind == "C" else 1
    return names


@register_backbone("vgg16")
class VGG16(Backbone):
    """VGG16 features, pool5 removed (stride 16; 8 with large_feature_map), wsolevaluation."""

    scg_taps = ("feat4", "feat5")
    insertion_points = ("pool3", "conv4", "conv5")
    cam_head = "conv_fc"
    out_channels = 512
    tap_channels = {"feat4": 512, "feat5": 512, "conv4": 512}
    architecture_types = (*ARCHITECTURE_TYPES, "bas")
    bas_tap = "conv4"
    init_modes: ClassVar[Mapping[str, str]] = {**Backbone.init_modes, "bas": "normal"}
    acol_smoothing = True
    spg_layout = SpgLayout(
        b1_tap="feat4",
        b2_tap="feat5",
        hidden=512,
        branch=512,
        side=512,
        dropout=False,
        head_names=("SPG_A_3.0", "SPG_A_3.2", "SPG_A_4"),
    )

    def __init__(
        self,
        pretrained: bool = False,
        weights: str | Path | None = None,
        large_feature_map: bool = False,
        inserts: Mapping[str, nn.Module] | None = None,
        architecture_type: str = "cam",
    ):
        super().__init__(inserts, architecture_type)
        self.large_feature_map = large_feature_map
        self.features = _make_features(architecture_type, large_feature_map)
        self.feature_stride = 8 if large_feature_map else 16
        self._check_inserts()
        initialize_weights(self, self.init_mode)
        from torchvision.models import VGG16_Weights

        load_weights(
            self,
            name="vgg16",
            pretrained=pretrained,
            weights=weights,
            torchvision_weights=VGG16_Weights.IMAGENET1K_V1,
        )

    def reference_names(self) -> dict[str, str]:
        if self.architecture_type == "bas":
            names = BAS_CONV_NAMES
        else:
            names = reference_conv_names(self.architecture_type, self.large_feature_map)
        renamed = {f"features.{own}.": f"{ref}." for own, ref in zip(CONVS, names)}
        return {
            key: renamed[key.rsplit(".", 1)[0] + "."] + key.rsplit(".", 1)[1]
            for key in self.state_dict()
        }

    def _run(self, x: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        for index in range(start, stop):
            x = self.features[index](x)
        return x

    def bas_late(self) -> nn.Module:
        return nn.Sequential(*(self.features[i] for i in range(POOL4, END)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        x = self._insert("pool3", self._run(x, 0, POOL3 + 1))
        x = self._insert("conv4", self._run(x, POOL3 + 1, POOL4))
        taps = {"conv4": x} if self.architecture_type == "bas" else {}
        feat4 = self.features[POOL4](x)
        feat5 = self._insert("conv5", self._run(feat4, POOL4 + 1, END))
        taps.update(feat4=feat4, feat5=feat5)
        return self._run(feat5, END, len(self.features)), taps
