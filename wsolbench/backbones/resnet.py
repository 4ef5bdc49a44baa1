"""ResNet50 with wsolevaluation's changes: layer4 at stride 1 (14x14 at 224), layer3 too with
``large_feature_map`` (28x28).

Module names are torchvision's (``conv1``, ``layer1.0.conv1``, ...), so torchvision's checkpoint
loads as is; with ``architecture_type`` "cam" or "adl", ImageNet's ``fc`` is kept aside
(``imagenet_fc``) for a 1000-class head, as wsolevaluation loads it on ILSVRC. Taps ``layer3``
and ``layer4`` (same grid), plus ``layer3_0`` (after layer3's first block, where SPG's B1
branches). ADL insertion points follow wsolevaluation's positions: ``layer3_0``, ``layer4_0``
(after layer4's first block) and ``layer4`` (after layer4's last block). ``reference_names``
gives wsolevaluation's names: ADL's layers shift the block indices after them, SPG splits
layer3 into ``SPG_A1`` (block 0) and ``SPG_A2`` (blocks 1-5).

The ``bas`` variant is BAS's network (BAS @ 54c395e, ``CUB/Model/resnet.py``): layer3 and layer4
at stride 1 with a 2 x 2 max-pool between them (``F.max_pool2d(x, kernel_size=2)``), so layer3 is
28 x 28 and layer4 14 x 14 at 224; the tap ``layer3`` feeds its localization head and
``bas_late`` is the pool and layer4 (with ``large_feature_map`` the pool is left out). Its
names are torchvision's, as here.
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

# wsolevaluation's _ADL_POSITION: ADL layers follow these blocks (by stage).
ADL_AFTER = {"layer3": (0,), "layer4": (0, 2)}


def _stride_one(layer: nn.Sequential) -> None:
    """Make a torchvision ResNet stage keep its input resolution (stride is on conv2)."""
    first = layer[0]
    first.conv2.stride = (1, 1)
    first.downsample[0].stride = (1, 1)


def _reference_key(key: str, architecture_type: str) -> str:
    stage, _, rest = key.partition(".")
    if stage not in ("layer3", "layer4") or architecture_type not in ("adl", "spg"):
        return key
    block, _, rest = rest.partition(".")
    index = int(block)
    if architecture_type == "spg":
        if stage == "layer4":
            return key
        return f"SPG_A1.0.{rest}" if index == 0 else f"SPG_A2.{index - 1}.{rest}"
    shift = sum(1 for position in ADL_AFTER[stage] if position < index)
    return f"{stage}.{index + shift}.{rest}"


@register_backbone("resnet50")
class ResNet50(Backbone):
    """ResNet50, layer4 at stride 1 (stride 16; 8 with large_feature_map), wsolevaluation."""

    scg_taps = ("layer3", "layer4")
    insertion_points = ("layer3_0", "layer4_0", "layer4")
    cam_head = "fc"
    out_channels = 2048
    tap_channels = {"layer3_0": 1024, "layer3": 1024, "layer4": 2048}
    spg_layout = SpgLayout(
        b1_tap="layer3_0",
        b2_tap="layer3",
        hidden=0,
        branch=1024,
        side=512,
        dropout=False,
        head_names=("SPG_A4",),
    )
    init_modes: ClassVar[Mapping[str, str]] = {
        "cam": "xavier",
        "adl": "xavier",
        "acol": "he",
        "spg": "xavier",
        "bas": "xavier",  # BAS: initialize_weights(self.modules(), init_mode='xavier')
    }
    architecture_types = (*ARCHITECTURE_TYPES, "bas")
    bas_tap = "layer3"

    def __init__(
        self,
        pretrained: bool = False,
        weights: str | Path | None = None,
        large_feature_map: bool = False,
        inserts: Mapping[str, nn.Module] | None = None,
        architecture_type: str = "cam",
    ):
        super().__init__(inserts, architecture_type)
        from torchvision.models import ResNet50_Weights, resnet50

        net = resnet50(weights=None)
        bas = architecture_type == "bas"
        _stride_one(net.layer4)
        if large_feature_map or bas:
            _stride_one(net.layer3)
        # BAS pools 2 x 2 between layer3 and layer4 (not a layer: no weights, no name).
        self.pool34 = nn.MaxPool2d(2) if bas and not large_feature_map else nn.Identity()
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = (
            net.layer1,
            net.layer2,
            net.layer3,
            net.layer4,
        )
        self.feature_stride = 8 if large_feature_map else 16
        self._check_inserts()
        initialize_weights(self, self.init_mode)
        # V1 weights are the ones wsolevaluation loads (resnet50-19c8e357 is the same model).
        state = load_weights(
            self,
            name="resnet50",
            pretrained=pretrained,
            weights=weights,
            torchvision_weights=ResNet50_Weights.IMAGENET1K_V1,
        )
        # wsolevaluation keeps ImageNet's fc for cam/adl on ILSVRC (drops it for acol/spg):
        # the CAM head takes it when it has 1000 classes (a plain attribute, not a weight).
        self.imagenet_fc = None
        if state is not None and architecture_type in ("cam", "adl") and "fc.weight" in state:
            self.imagenet_fc = {"weight": state["fc.weight"], "bias": state["fc.bias"]}

    def reference_names(self) -> dict[str, str]:
        return {key: _reference_key(key, self.architecture_type) for key in self.state_dict()}

    def _stage(self, x: torch.Tensor, name: str, taps: dict[str, torch.Tensor]) -> torch.Tensor:
        layer = getattr(self, name)
        for index, block in enumerate(layer):
            x = block(x)
            point = name if index == len(layer) - 1 else f"{name}_{index}"
            x = self._insert(point, x)
            if point in self.tap_channels:
                taps[point] = x
        return x

    def bas_late(self) -> nn.Module:
        return nn.Sequential(self.pool34, self.layer4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer2(self.layer1(x))
        taps: dict[str, torch.Tensor] = {}
        layer4 = self._stage(self.pool34(self._stage(x, "layer3", taps)), "layer4", taps)
        return layer4, taps
