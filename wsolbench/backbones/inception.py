"""InceptionV3 with wsolevaluation's changes: Conv2d_1a padding 1, max-pools with padding 1 and
ceil mode, Mixed_6a at stride 1, Mixed_7* removed: Mixed_6e is 14x14 at 224 (28x28 with
``large_feature_map``, which also drops the pool before Mixed_6a).

Module names are torchvision's, so torchvision's checkpoint loads as is (``Mixed_7*``,
``AuxLogits`` and ``fc`` are ignored). Taps ``Mixed_5d`` and ``Mixed_6e``; the ``Mixed_5d`` tap
is taken after the pool that precedes Mixed_6a so both taps share one grid (SCG fuses them).
ADL insertion points as wsolevaluation: ``Mixed_5d`` (before that pool) and ``Mixed_6e`` (its
third ADL sits inside the head, see the ADL method). Tap ``Mixed_6d`` is where SPG's B2 branches
(``InceptionSpg``). Names equal wsolevaluation's for every architecture type.

SCG's taps on InceptionV3 follow SPA2Net (MsterDC/SPA2Net @ 445f981,
models/google/inceptionv3_sst.py), the public SPA code for this backbone: it has no pool between
Mixed_5d and Mixed_6a and ``cal_sc`` takes blocks 4 and 5 = Mixed_5d and Mixed_6e, both 28 x 28 at
224 px. That network is this backbone with ``large_feature_map=True`` (the ``cub-inceptionv3``
suite sets it; tests/test_spa_parity.py checks it against SPA2Net's outputs).

The ``bas`` variant is BAS's network (BAS @ 54c395e, ``CUB/Model/inception.py``): the front of
the large-feature-map variant (no pool before Mixed_6a: Mixed_6e is 28 x 28 at 224, the tap its
localization head reads), then Mixed_7a with padding 1 on its stride-2 convolutions and its
max-pool (14 x 14), Mixed_7b and Mixed_7c (torchvision's InceptionE): 2048 channels.
``bas_late`` is Mixed_7a..7c; with ``large_feature_map`` Mixed_7a runs at stride 1.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from wsolbench.backbones.base import (
    ARCHITECTURE_TYPES,
    Backbone,
    SpgLayout,
    initialize_weights,
    load_weights,
)
from wsolbench.registry import register_backbone

STEM = ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "Conv2d_3b_1x1", "Conv2d_4a_3x3")
MIXED_5 = ("Mixed_5b", "Mixed_5c", "Mixed_5d")
MIXED_6 = ("Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e")
MIXED_7 = ("Mixed_7a", "Mixed_7b", "Mixed_7c")


class StrideOneReduction(nn.Module):
    """torchvision's InceptionB (Mixed_6a) run at stride 1 with padding 1, as wsolevaluation.

    Takes over the original's sub-modules under the same names, so weights still load.
    """

    def __init__(self, block: nn.Module):
        super().__init__()
        self.branch3x3 = block.branch3x3
        self.branch3x3dbl_1 = block.branch3x3dbl_1
        self.branch3x3dbl_2 = block.branch3x3dbl_2
        self.branch3x3dbl_3 = block.branch3x3dbl_3
        for conv in (self.branch3x3.conv, self.branch3x3dbl_3.conv):
            conv.stride, conv.padding = (1, 1), (1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        double = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        pooled = F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        return torch.cat([self.branch3x3(x), double, pooled], 1)


class PaddedReduction(nn.Module):
    """torchvision's InceptionD (Mixed_7a) with padding 1 on its stride-2 convolutions and its
    max-pool, as BAS's ``InceptionD`` (stride 1 with ``stride=1``). Same sub-module names."""

    def __init__(self, block: nn.Module, stride: int = 2):
        super().__init__()
        self.stride = stride
        for name in ("branch3x3_1", "branch3x3_2", "branch7x7x3_1", "branch7x7x3_2"):
            setattr(self, name, getattr(block, name))
        self.branch7x7x3_3, self.branch7x7x3_4 = block.branch7x7x3_3, block.branch7x7x3_4
        for conv in (self.branch3x3_2.conv, self.branch7x7x3_4.conv):
            conv.stride, conv.padding = (stride, stride), (1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch3x3 = self.branch3x3_2(self.branch3x3_1(x))
        branch7x7x3 = self.branch7x7x3_1(x)
        for name in ("branch7x7x3_2", "branch7x7x3_3", "branch7x7x3_4"):
            branch7x7x3 = getattr(self, name)(branch7x7x3)
        pooled = F.max_pool2d(x, kernel_size=3, stride=self.stride, padding=1)
        return torch.cat([branch3x3, branch7x7x3, pooled], 1)


@register_backbone("inception_v3")
class InceptionV3(Backbone):
    """InceptionV3 up to Mixed_6e, Mixed_6a at stride 1 (stride 16; 8 large), wsolevaluation."""

    scg_taps = ("Mixed_5d", "Mixed_6e")
    insertion_points = ("Mixed_5d", "Mixed_6e")
    cam_head = "class_conv"
    out_channels = 768
    tap_channels = {"Mixed_5d": 288, "Mixed_6d": 768, "Mixed_6e": 768}
    spg_layout = SpgLayout(
        b1_tap="Mixed_5d",
        b2_tap="Mixed_6d",
        hidden=1024,
        branch=512,
        side=512,
        dropout=True,
        head_names=("SPG_A3_1b.0", "SPG_A3_2b.0", "SPG_A4"),
    )
    init_modes: ClassVar[Mapping[str, str]] = {
        "cam": "xavier",
        "adl": "xavier",
        "acol": "xavier",
        "spg": "xavier",
        "bas": "xavier",  # BAS: Model._initialize_weights
    }
    architecture_types = (*ARCHITECTURE_TYPES, "bas")
    bas_tap = "Mixed_6e"

    def __init__(
        self,
        pretrained: bool = False,
        weights: str | Path | None = None,
        large_feature_map: bool = False,
        inserts: Mapping[str, nn.Module] | None = None,
        architecture_type: str = "cam",
    ):
        super().__init__(inserts, architecture_type)
        from torchvision.models import Inception_V3_Weights, inception_v3

        # wsolevaluation initializes Inception with Xavier (and torchvision's own truncated
        # normal init takes seconds): skip torchvision's init, do Xavier below.
        net = inception_v3(weights=None, aux_logits=False, init_weights=False)
        net.Conv2d_1a_3x3.conv.padding = (1, 1)
        for name in STEM + MIXED_5 + MIXED_6[1:]:
            setattr(self, name, getattr(net, name))
        self.Mixed_6a = StrideOneReduction(net.Mixed_6a)
        self.large_feature_map = large_feature_map
        self.bas = architecture_type == "bas"
        # BAS has no pool before Mixed_6a; its Mixed_7a brings the stride back to 16.
        self.pool_before_6a = not (large_feature_map or self.bas)
        if self.bas:
            self.Mixed_7a = PaddedReduction(net.Mixed_7a, stride=1 if large_feature_map else 2)
            self.Mixed_7b, self.Mixed_7c = net.Mixed_7b, net.Mixed_7c
            self.out_channels = 2048
        self.feature_stride = 8 if large_feature_map else 16
        self._check_inserts()
        initialize_weights(self, self.init_mode)
        load_weights(
            self,
            name="inception_v3",
            pretrained=pretrained,
            weights=weights,
            torchvision_weights=Inception_V3_Weights.IMAGENET1K_V1,
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2, padding=1, ceil_mode=True)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, kernel_size=3, stride=2, padding=1, ceil_mode=True)
        for name in MIXED_5:
            x = getattr(self, name)(x)
        x = self._insert("Mixed_5d", x)
        if self.pool_before_6a:
            x = F.max_pool2d(x, kernel_size=3, stride=2, ceil_mode=True)
        mixed_5d = x
        for name in MIXED_6[:-1]:
            x = getattr(self, name)(x)
        mixed_6d = x
        x = self._insert("Mixed_6e", self.Mixed_6e(x))
        taps = {"Mixed_5d": mixed_5d, "Mixed_6d": mixed_6d, "Mixed_6e": x}
        if self.bas:
            x = self.bas_late()(x)
        return x, taps

    def bas_late(self) -> nn.Module:
        if not self.bas:
            return super().bas_late()
        return nn.Sequential(*(getattr(self, name) for name in MIXED_7))
