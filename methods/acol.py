"""ACoL: adversarial complementary learning (Zhang et al., CVPR 2018), as wsolevaluation.

Backbone features are smoothed by a 3x3 average pool (stride 1) and fed to classifier A
(conv3x3 -> 1024, ReLU, conv3x3, ReLU, conv1x1 -> C; TinyVGG uses its smaller head width).
The min-max normalized map of A for the ground-truth class (the predicted class when no label
is given, e.g. at eval) is detached; feature positions where it is >= ``erase_threshold`` are
zeroed and the erased features go to classifier B (same shape). Loss CE(A) + CE(B); the map of a
class is max(normalized A, normalized B). Logits (for classification) are A's.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from wsolbench.errors import WsolbenchError
from wsolbench.methods.base import (
    WsolMethod,
    class_map_classifier,
    global_average_pool,
    init_new_layers,
    normalize_maps,
    select_class,
)
from wsolbench.registry import register_method


def erase_discriminative(
    features: torch.Tensor, class_maps: torch.Tensor, labels: torch.Tensor, threshold: float
) -> torch.Tensor:
    """Zero features where the normalized (detached) map of each image's class >= threshold."""
    attention = normalize_maps(select_class(class_maps.detach(), labels))
    keep = (attention < threshold).to(features.dtype)
    return features * keep


@register_method("acol")
class ACoL(WsolMethod):
    """ACoL: two classifiers; B learns from features with A's discriminative region erased."""

    def __init__(
        self,
        backbone: str = "tinyvgg",
        num_classes: int = 10,
        pretrained: bool = False,
        weights: str | Path | None = None,
        large_feature_map: bool = False,
        erase_threshold: float = 0.7,
    ):
        if not 0 <= erase_threshold <= 1:
            raise WsolbenchError(f"acol: erase_threshold must be in [0, 1], got {erase_threshold}")
        super().__init__(
            backbone, num_classes, pretrained, weights, large_feature_map,
            hparams={"erase_threshold": erase_threshold},
        )
        self.erase_threshold = float(erase_threshold)
        channels, width = self.backbone.out_channels, self.backbone.head_width
        self.classifier_a = class_map_classifier(channels, width, num_classes)
        self.classifier_b = class_map_classifier(channels, width, num_classes)
        init_new_layers(self.classifier_a, "xavier")
        init_new_layers(self.classifier_b, "xavier")

    def head(self, features, taps, labels):
        features = F.avg_pool2d(features, kernel_size=3, stride=1, padding=1)
        maps_a = self.classifier_a(features)
        logits_a = global_average_pool(maps_a)
        if labels is None:
            labels = logits_a.argmax(dim=1)
        erased = erase_discriminative(features, maps_a, labels, self.erase_threshold)
        maps_b = self.classifier_b(erased)
        cams = torch.maximum(normalize_maps(maps_a.detach()), normalize_maps(maps_b.detach()))
        return {
            "logits": logits_a,
            "logits_b": global_average_pool(maps_b),
            "cams": cams,
            "maps_a": maps_a,
            "maps_b": maps_b,
        }

    def loss(self, outputs, targets):
        return F.cross_entropy(outputs["logits"], targets) + F.cross_entropy(
            outputs["logits_b"], targets
        )
