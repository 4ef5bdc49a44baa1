"""CAM: class activation mapping (Zhou et al., CVPR 2016), wsolevaluation's heads.

VGG-like backbones: conv3x3 -> 1024 (TinyVGG: 128), ReLU, GAP, fc, and the map of class c is
``mean over channels of fc.weight[c] * feature``. ResNet: GAP, fc on the backbone features, same
formula. Inception: conv3x3, conv3x3, conv1x1 -> classes (dropout 0.5 between, as upstream),
logits = GAP, the map is the class channel.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from wsolbench.methods.base import WsolMethod, conv3x3_relu, global_average_pool, init_new_layers
from wsolbench.errors import WsolbenchError
from wsolbench.registry import register_method


class CamHead(nn.Module):
    """The CAM head wsolevaluation uses for a backbone family (see ``Backbone.cam_head``)."""

    def __init__(self, style: str, in_channels: int, width: int, num_classes: int):
        super().__init__()
        self.style = style
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
        init_new_layers(self, "xavier" if style == "class_conv" else "he")

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.style == "class_conv":
            x = F.dropout(features, 0.5, self.training)
            x = F.dropout(self.conv1(x), 0.5, self.training)
            x = F.dropout(self.conv2(x), 0.5, self.training)
            cams = self.classifier(x)
            return {"logits": global_average_pool(cams), "cams": cams}
        x = self.conv(features)
        logits = self.fc(global_average_pool(x))
        # mean_k(w[c, k] * x[k]) for every class c at once.
        cams = torch.einsum("ck,nkhw->nchw", self.fc.weight, x) / x.shape[1]
        return {"logits": logits, "cams": cams}


@register_method("cam")
class CAM(WsolMethod):
    """CAM: GAP + fc classifier; the map is the fc-weighted mean of the last features."""

    def __init__(
        self,
        backbone: str = "tinyvgg",
        num_classes: int = 10,
        pretrained: bool = False,
        weights: str | Path | None = None,
        large_feature_map: bool = False,
        **base_options,  # hparams / inserts from subclasses (HaS, ADL, CutMix)
    ):
        super().__init__(
            backbone, num_classes, pretrained, weights, large_feature_map, **base_options
        )
        net = self.backbone
        self.cam_head = CamHead(net.cam_head, net.out_channels, net.head_width, num_classes)

    def head(self, features, taps, labels):
        return self.cam_head(features)
