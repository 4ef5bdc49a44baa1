"""CAM: class activation mapping (Zhou et al., CVPR 2016), wsolevaluation's heads.

VGG-like backbones: conv3x3 -> 1024 (TinyVGG: 128), ReLU, GAP, fc, and the map of class c is
``mean over channels of fc.weight[c] * feature`` (``VggCam``). ResNet: GAP, fc on the backbone
features, same formula; with ImageNet weights and 1000 classes the fc starts from ImageNet's, as
wsolevaluation loads it on ILSVRC (``ResNetCam``). Inception: conv3x3, conv3x3, conv1x1 ->
classes (dropout 0.5 before each, as upstream), logits = GAP, the map is the class channel
(``InceptionCam``).

The fc styles' forward returns the last ``features`` instead of every class's map: a map is
computed for the classes asked for (``class_maps``) with the reference's arithmetic
(``fc_class_maps``); the Inception style returns ``cams``, its class channels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from wsolbench.errors import WsolbenchError
from wsolbench.methods.base import (
    WsolMethod,
    conv3x3_relu,
    fc_class_maps,
    global_average_pool,
    init_new_layers,
    select_classes,
)
from wsolbench.registry import register_method

# wsolevaluation's names of each head style's layers (VggCam, ResNetCam, InceptionCam).
REFERENCE_HEAD_NAMES = {
    "conv_fc": {"cam_head.conv.0.": "conv6.", "cam_head.fc.": "fc."},
    "fc": {"cam_head.fc.": "fc."},
    "class_conv": {
        "cam_head.conv1.0.": "SPG_A3_1b.0.",
        "cam_head.conv2.0.": "SPG_A3_2b.0.",
        "cam_head.classifier.": "SPG_A4.",
    },
}


class CamHead(nn.Module):
    """The CAM head wsolevaluation uses for a backbone family (see ``Backbone.cam_head``).

    ``class_conv`` only: ``dropout`` before each layer (CAM's InceptionCam; ADL has none) and
    ``inner``, a module applied after the second convolution (ADL's third layer).
    """

    def __init__(self, style: str, in_channels: int, width: int, num_classes: int, init: str):
        super().__init__()
        self.style = style
        self.dropout = style == "class_conv"
        self.inner: nn.Module = nn.Identity()
        if style == "conv_fc":
            self.conv = conv3x3_relu(in_channels, width)
            self.fc = nn.Linear(width, num_classes)
        elif style == "fc":
            self.conv = nn.Identity()
            self.fc = nn.Linear(in_channels, num_classes)
        elif style == "class_conv":
            self.conv1 = conv3x3_relu(in_channels, width)
            self.conv2 = conv3x3_relu(width, width)
            self.classifier = nn.Conv2d(width, num_classes, 1)
        else:
            raise WsolbenchError(f"unknown CAM head style '{style}'")
        init_new_layers(self, init)

    def _drop(self, x: torch.Tensor) -> torch.Tensor:
        return F.dropout(x, 0.5, self.training) if self.dropout else x

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.style == "class_conv":
            x = self.conv1(self._drop(features))
            x = self.inner(self.conv2(self._drop(x)))
            cams = self.classifier(self._drop(x))
            return {"logits": global_average_pool(cams), "cams": cams}
        x = self.conv(features)
        return {"logits": self.fc(global_average_pool(x)), "features": x}

    def class_maps(self, outputs: dict[str, torch.Tensor], classes: torch.Tensor) -> torch.Tensor:
        """(N, k) classes -> (N, k, h, w) maps as the reference computes them."""
        if self.style == "class_conv":
            return select_classes(outputs["cams"], classes)
        return fc_class_maps(self.fc.weight, outputs["features"], classes)


@register_method("cam")
class CAM(WsolMethod):
    """CAM: GAP + fc classifier; the map is the fc-weighted mean of the last features."""

    def __init__(self, **common):  # no hyperparameters; ADL's `inserts` also pass through
        super().__init__(**common)
        net = self.backbone
        self.cam_head = CamHead(
            net.cam_head, net.out_channels, net.head_width, self.num_classes, net.init_mode
        )
        imagenet_fc = getattr(net, "imagenet_fc", None)
        if imagenet_fc is not None:
            if (
                net.cam_head == "fc"
                and imagenet_fc["weight"].shape == self.cam_head.fc.weight.shape
            ):
                self.cam_head.fc.load_state_dict(imagenet_fc)
            net.imagenet_fc = None  # used once; do not keep 8 MB of tensors around

    def head(self, features, taps, labels):
        return self.cam_head(features)

    def class_maps(self, outputs, classes):
        return self.cam_head.class_maps(outputs, classes)

    def reference_names(self) -> dict[str, str]:
        return self._wsolevaluation_names(REFERENCE_HEAD_NAMES[self.cam_head.style])
