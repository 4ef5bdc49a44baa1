"""ACoL: adversarial complementary learning (Zhang et al., CVPR 2018), as wsolevaluation.

On VGG (and TinyVGG) the backbone is ACoL's own body (3x3 stride-2 max-pools, an extra stride-1
max-pool after conv5_3) and its features are smoothed by a 3x3 average pool (stride 1) before
the classifiers; ResNet and Inception feed their features directly (``VggAcol``, ``ResNetAcol``,
``InceptionAcol``). Classifier A (conv3x3 -> 1024, ReLU, conv3x3, ReLU, conv1x1 -> C; TinyVGG
uses its smaller head width) gives class maps. The min-max normalized map of A for the erasure
class is detached; feature positions where it is >= ``erase_threshold`` are zeroed and the
erased features go to classifier B (same shape). Loss CE(A) + CE(B); logits are A's.

The map of class c is max(normalized A, normalized B) of class c with B computed on features
erased by class c itself: wsolevaluation's inference passes the GT labels, so the GT-class map
erases by the GT class, and each top-k class's map erases by that class (``class_maps``). The
``cams`` output erases by the labels given to ``forward`` (the predicted class without labels).
"""

from __future__ import annotations

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

# wsolevaluation's classifier_A / classifier_B are flat Sequentials (conv, ReLU, conv, ReLU, conv).
REFERENCE_HEAD_NAMES = {
    f"classifier_{branch}.{here}.": f"classifier_{branch.upper()}.{there}."
    for branch in ("a", "b")
    for here, there in (("0.0", 0), ("1.0", 2), ("2", 4))
}


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

    architecture_type = "acol"

    def __init__(self, erase_threshold: float = 0.7, **common):
        if not 0 <= erase_threshold <= 1:
            raise WsolbenchError(f"acol: erase_threshold must be in [0, 1], got {erase_threshold}")
        super().__init__(**common)
        self.erase_threshold = float(erase_threshold)
        net, num_classes = self.backbone, self.num_classes
        self.smoothing = net.acol_smoothing
        self.classifier_a = class_map_classifier(net.out_channels, net.head_width, num_classes)
        self.classifier_b = class_map_classifier(net.out_channels, net.head_width, num_classes)
        init_new_layers(self.classifier_a, net.init_mode)
        init_new_layers(self.classifier_b, net.init_mode)

    def head(self, features, taps, labels):
        if self.smoothing:
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
            "head_features": features,
            "erased_by": labels,
        }

    def class_maps(self, outputs, classes):
        """Each (image, class) map with B run on that image's features erased by that class.

        Pairs are computed once each (the GT class is usually among the top-k), and pairs whose
        class is the one ``forward`` erased by are read from ``cams``.
        """
        cams, maps_a = outputs["cams"], outputs["maps_a"].detach()
        n, k = classes.shape
        classes = classes.long().to(cams.device)
        rows = torch.arange(n, device=cams.device).repeat_interleave(k)
        pairs = torch.stack([rows, classes.reshape(-1)], dim=1)
        unique, inverse = pairs.unique(dim=0, return_inverse=True)
        images, labels = unique.unbind(dim=1)
        maps = cams[images, labels]
        todo = labels != outputs["erased_by"][images]
        if bool(todo.any()):
            images, labels = images[todo], labels[todo]
            features = outputs["head_features"][images]
            maps_b = self.classifier_b(
                erase_discriminative(features, maps_a[images], labels, self.erase_threshold)
            )
            maps[todo] = torch.maximum(
                normalize_maps(select_class(maps_a[images], labels)),
                normalize_maps(select_class(maps_b.detach(), labels)),
            )[:, 0].to(maps.dtype)
        return maps[inverse].view(n, k, *maps.shape[1:])

    def loss(self, outputs, targets):
        return F.cross_entropy(outputs["logits"], targets) + F.cross_entropy(
            outputs["logits_b"], targets
        )

    def reference_names(self) -> dict[str, str]:
        return self._wsolevaluation_names(REFERENCE_HEAD_NAMES)
