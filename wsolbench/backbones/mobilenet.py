"""MobileNetV1 as BAS builds it (wpy1999/BAS @ 54c395e, ``CUB/Model/mobilenet.py``; the ILSVRC
file builds the same layers): fourteen blocks ``model.0`` .. ``model.13``, a stride-2 3x3
convolution then thirteen depthwise-separable blocks, each convolution followed by BatchNorm and
ReLU, with the 256 -> 512 block (``model.6``) at stride 1 instead of MobileNetV1's stride 2: block
11 is 28 x 28 and the last block 14 x 14 at 224 (stride 16). ``large_feature_map`` also runs block
12 (512 -> 1024) at stride 1 (stride 8).

Module names are BAS's (``model.<block>.<layer>``: ``0`` the (depthwise) convolution, ``1`` its
BatchNorm, then ``3`` / ``4`` the pointwise convolution and its BatchNorm), so a BAS checkpoint's
backbone loads as is. Taps ``block11`` (BAS's localization input, ``model[:-2]``), ``block12``
and ``block13`` (the last two blocks, on the features' grid: SCG's pair, as VGG16's conv4 and
conv5); insertion points after blocks 11 and 13. Variants: ``cam`` (a wsolevaluation-style CAM
head: conv3x3 -> 1024, GAP, fc, as on VGG16; no reference network) and ``bas``, whose
``bas_late`` is blocks 12 and 13. No torchvision weights exist for this network: give BAS's
ImageNet file (``mobilenet_v1_with_relu_69_5.pth``) or any state dict with ``weights=PATH``. A
file whose names are not these is read as BAS's ``model()`` reads it: its tensors in order onto
this network's (BatchNorm counters aside), provided every shape matches.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

import torch
from torch import nn

from wsolbench.backbones.base import Backbone, initialize_weights, load_weights
from wsolbench.registry import register_backbone

# (input channels, output channels, stride) of the thirteen depthwise-separable blocks.
DEPTHWISE_BLOCKS = (
    (32, 64, 1),
    (64, 128, 2),
    (128, 128, 1),
    (128, 256, 2),
    (256, 256, 1),
    (256, 512, 1),  # MobileNetV1: stride 2; BAS: 1 (28 x 28 at 224)
    (512, 512, 1),
    (512, 512, 1),
    (512, 512, 1),
    (512, 512, 1),
    (512, 512, 1),
    (512, 1024, 2),  # block 12: stride 1 with large_feature_map
    (1024, 1024, 1),
)
TAPPED = {11: "block11", 12: "block12", 13: "block13"}


def _conv_bn(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


def _conv_dw(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, in_channels, 3, stride, 1, groups=in_channels, bias=False),
        nn.BatchNorm2d(in_channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(in_channels, out_channels, 1, 1, 0, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


@register_backbone("mobilenet_v1")
class MobileNetV1(Backbone):
    """MobileNetV1 with its 256 -> 512 block at stride 1 (stride 16; 8 large), as BAS."""

    scg_taps = ("block12", "block13")
    insertion_points = ("block11", "block13")
    cam_head = "conv_fc"
    out_channels = 1024
    tap_channels = {"block11": 512, "block12": 1024, "block13": 1024}
    architecture_types = ("cam", "bas")
    bas_tap = "block11"
    # BAS: Model._initialize_weights (Xavier, zero biases, BatchNorm 1 / 0) for the whole model.
    init_modes: ClassVar[Mapping[str, str]] = {"cam": "he", "bas": "xavier"}

    def __init__(
        self,
        pretrained: bool = False,
        weights: str | Path | None = None,
        large_feature_map: bool = False,
        inserts: Mapping[str, nn.Module] | None = None,
        architecture_type: str = "cam",
    ):
        super().__init__(inserts, architecture_type)
        blocks = [_conv_bn(3, 32, 2)]
        for index, (cin, cout, stride) in enumerate(DEPTHWISE_BLOCKS, start=1):
            if index == 12 and large_feature_map:
                stride = 1
            blocks.append(_conv_dw(cin, cout, stride))
        self.model = nn.Sequential(*blocks)
        self.feature_stride = 8 if large_feature_map else 16
        self._check_inserts()
        initialize_weights(self, self.init_mode)
        load_weights(self, name="mobilenet_v1", pretrained=pretrained, weights=weights)

    def adapt_weights(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """BAS's loading (``CUB/Model/mobilenet.py`` ``model``): by position when the names
        differ; a file of another network keeps its names (and fails to load, naming them)."""
        own = [k for k in self.weight_keys() if not k.endswith("num_batches_tracked")]
        own = [k for k in self.state_dict() if k in own]  # in the network's order
        values = [v for k, v in state.items() if not k.endswith("num_batches_tracked")]
        if set(own) <= set(state) or len(values) != len(own):
            return state
        shapes = self.state_dict()
        if any(tuple(v.shape) != tuple(shapes[k].shape) for k, v in zip(own, values)):
            return state
        return dict(zip(own, values))

    def bas_late(self) -> nn.Module:
        return self.model[-2:]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        taps: dict[str, torch.Tensor] = {}
        for index, block in enumerate(self.model):
            x = block(x)
            if index in TAPPED:
                x = self._insert(TAPPED[index], x)
                taps[TAPPED[index]] = x
        return x, taps
