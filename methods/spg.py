"""SPG: self-produced guidance (Zhang et al., ECCV 2018), as wsolevaluation's ``VggSpg``,
``ResNetSpg`` and ``InceptionSpg``; the layout per family is the backbone's ``spg_layout``.

Head A (VGG: two conv3x3 -> 512 on conv5, after SPG's pool4, a 3x3 stride-2 max-pool;
Inception: two conv3x3 -> 1024 with dropout 0.5 around them; ResNet: none) then a conv1x1 ->
C gives the class maps (logits = GAP; the localization map is the class channel, at evaluation
as in training). Three side branches predict one-channel foreground logits: B1 from an early
tap (VGG: after pool4; ResNet: layer3's first block; Inception: Mixed_5d after its pool), B2
from a later one (VGG: conv5_3; ResNet: layer3; Inception: Mixed_6d), both through shared
layers, and C from head A's output (ResNet: layer4). Upsampled to the input size
(wsolevaluation: 224), each is trained with BCE against a self-produced mask (1 foreground,
0 background, 255 ignored):

- B2 against the min-max normalized GT-class map of A, thresholds (0.7, 0.01);
- B1 against sigmoid(B2), thresholds (0.5, 0.05);
- C against (sigmoid(B1) + sigmoid(B2)) / 2 (detached), thresholds (0.7, 0.1).

Foreground is ``value > high``; an image with fewer than 30 foreground pixels uses 0.7 * its max
instead (the count is in input pixels, as upstream, so it stays meaningful at 64 px); background
``value < low`` wins over foreground. Masks never carry gradient.
"""

from __future__ import annotations

from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import nn

from wsolbench.methods.base import (
    WsolMethod,
    conv3x3_relu,
    global_average_pool,
    init_new_layers,
    normalize_maps,
    select_class,
)
from wsolbench.options import Option, check
from wsolbench.registry import register_method

IGNORE = 255.0
MIN_FOREGROUND_PIXELS = 30
FALLBACK_RATIO = 0.7
DEFAULT_THRESHOLDS = ((0.7, 0.01), (0.5, 0.05), (0.7, 0.1))


def self_produced_mask(attention: torch.Tensor, high: float, low: float) -> torch.Tensor:
    """(N, 1, H, W) attention -> mask: 1 above ``high``, 0 below ``low``, 255 elsewhere."""
    attention = attention.detach()
    flat = attention.flatten(1)
    count = (flat > high).sum(dim=1)
    fallback = FALLBACK_RATIO * flat.max(dim=1).values
    usual = torch.full_like(fallback, high)
    per_image = torch.where(count < MIN_FOREGROUND_PIXELS, fallback, usual)
    mask = torch.full_like(attention, IGNORE)
    mask[attention > per_image.view(-1, 1, 1, 1)] = 1.0
    mask[attention < low] = 0.0
    return mask


def masked_bce(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """BCE-with-logits averaged over the positions the mask does not ignore (0 if none)."""
    valid = mask != IGNORE
    if not bool(valid.any()):
        return logits.sum() * 0.0
    return F.binary_cross_entropy_with_logits(logits[valid], mask[valid])


@register_method("spg")
class SPG(WsolMethod):
    """SPG: CAM-style classifier guided by self-produced foreground/background masks."""

    architecture_type = "spg"
    # One (high, low) pair per branch (B2, B1, C), each in [0, 1].
    OPTIONS = {
        "thresholds": Option(
            list,
            item=Option(list, item=float, low=0, high=1, min_items=2, max_items=2),
            min_items=len(DEFAULT_THRESHOLDS),
            max_items=len(DEFAULT_THRESHOLDS),
        )
    }

    def __init__(self, thresholds: tuple[tuple[float, float], ...] = DEFAULT_THRESHOLDS, **common):
        thresholds = check(thresholds, self.OPTIONS["thresholds"], "spg: thresholds")
        thresholds = tuple((float(high), float(low)) for high, low in thresholds)
        super().__init__(**common)
        self.thresholds = thresholds
        # Recorded as used (floats), in the form a config file or checkpoint holds it (lists).
        self.hparams["thresholds"] = [list(t) for t in thresholds]
        net, num_classes = self.backbone, self.num_classes
        self.layout = layout = net.spg_layout
        widths = [net.out_channels] + [layout.hidden] * (len(layout.head_names) - 1)
        self.head_a = nn.Sequential(*(conv3x3_relu(a, b) for a, b in pairwise(widths)))
        self.classifier = nn.Conv2d(widths[-1], num_classes, 1)
        self.branch_b1 = conv3x3_relu(net.tap_channels[layout.b1_tap], layout.branch)
        self.branch_b2 = conv3x3_relu(net.tap_channels[layout.b2_tap], layout.branch)
        self.branch_b_shared = nn.Sequential(
            conv3x3_relu(layout.branch, layout.branch), nn.Conv2d(layout.branch, 1, 1)
        )
        self.branch_c = nn.Sequential(
            conv3x3_relu(widths[-1], layout.side), nn.Conv2d(layout.side, 1, 1)
        )
        for module in (
            self.head_a,
            self.classifier,
            self.branch_b1,
            self.branch_b2,
            self.branch_b_shared,
            self.branch_c,
        ):
            init_new_layers(module, net.init_mode)

    def forward(self, images, labels=None):
        outputs = super().forward(images, labels)
        outputs["input_size"] = tuple(images.shape[2:])  # the masks live at input resolution
        return outputs

    def _drop(self, x: torch.Tensor) -> torch.Tensor:
        return F.dropout(x, 0.5, self.training) if self.layout.dropout else x

    def head(self, features, taps, labels):
        hidden = self._drop(features)
        for layer in self.head_a:
            hidden = self._drop(layer(hidden))
        cams = self.classifier(hidden)
        logits = global_average_pool(cams)
        return {
            "logits": logits,
            "cams": cams,
            "logits_b1": self.branch_b_shared(self.branch_b1(taps[self.layout.b1_tap])),
            "logits_b2": self.branch_b_shared(self.branch_b2(taps[self.layout.b2_tap])),
            "logits_c": self.branch_c(hidden),
        }

    def loss(self, outputs, targets):
        (h1, l1), (h2, l2), (h3, l3) = self.thresholds

        def upsample(x: torch.Tensor) -> torch.Tensor:
            size = outputs["input_size"]
            return F.interpolate(x, size=size, mode="bilinear", align_corners=False)

        b1, b2, c = (upsample(outputs[k]) for k in ("logits_b1", "logits_b2", "logits_c"))
        # Upsampling is per channel, so selecting the class first equals upstream's order.
        attention = normalize_maps(upsample(select_class(outputs["cams"].detach(), targets)))
        fused = (torch.sigmoid(b1.detach()) + torch.sigmoid(b2.detach())) / 2
        return (
            F.cross_entropy(outputs["logits"], targets)
            + masked_bce(b2, self_produced_mask(attention, h1, l1))
            + masked_bce(b1, self_produced_mask(torch.sigmoid(b2), h2, l2))
            + masked_bce(c, self_produced_mask(fused, h3, l3))
        )

    def reference_names(self) -> dict[str, str]:
        *convs, classifier = self.layout.head_names
        head = {f"head_a.{i}.0.": f"{name}." for i, name in enumerate(convs)}
        head.update(
            {
                "classifier.": f"{classifier}.",
                "branch_b1.0.": "SPG_B_1a.0.",
                "branch_b2.0.": "SPG_B_2a.0.",
                "branch_b_shared.0.0.": "SPG_B_shared.0.",
                "branch_b_shared.1.": "SPG_B_shared.2.",
                "branch_c.0.0.": "SPG_C.0.",
                "branch_c.1.": "SPG_C.2.",
            }
        )
        return self._wsolevaluation_names(head)
