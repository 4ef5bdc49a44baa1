"""BAS: background activation suppression (Wu, Zhai, Cao, CVPR 2022), as its code
(wpy1999/BAS @ 54c395e; ``CUB/`` and ``ILSVRC/`` hold two training codes for the same networks).

Network (``Model/{vgg,resnet,inception,mobilenet}.py``), on BAS's own backbone variants
(``architecture_type = "bas"``: VGG16 relu4_3, ResNet50 layer3 at stride 1 then a 2 x 2 max-pool,
InceptionV3 with its padded Mixed_7*, MobileNetV1 with the 256 -> 512 block at stride 1):

- ``classifier_cls`` on the last features: conv3x3 -> 1024, ReLU, conv3x3 1024 -> 1024, ReLU,
  conv1x1 -> C, ReLU (TinyVGG: its smaller head width); logits = its global average;
- ``classifier_loc`` on the backbone's ``bas_tap`` (twice the features' resolution: 28 x 28 at
  224): conv3x3 -> C, Sigmoid. ``cams`` are these maps of every class.

Training (labels given): the map of the label, ``S``, erases the tap (``tap.detach() * (1 - S)``);
the layers after the tap and ``classifier_cls`` run again on it with their weights detached (the
reference runs deep copies made at every forward: no gradient reaches the copied weights, and
BatchNorm statistics move on the copies only), giving ``logits_erased``; ``logits_fg`` is the
global average of ``classifier_cls``'s output times ``S`` average-pooled 2 x 2. The loss is::

    CE(logits) + w2 CE(logits_fg) + mean_i(res_i + lambda * mean(S_i)),
    res_i = erased_i[y] / (logits_i[y].detach() + 1e-8), set to 0 where erased_i[y] >= (CUB)
            or > (ILSVRC) logits_i[y]

with (lambda, w2) per backbone from the code of the chosen ``variant`` (``LOSS_WEIGHTS``; TinyVGG
takes VGG16's). ``logits_fg`` weighs the foreground-masked scores, not the erased ones.

Evaluation map (``class_maps``): with ``top_k = 1`` the map of the asked class (the ILSVRC
inference: the GT class's map); with ``top_k = k > 1`` the mean of the maps of the k classes with
the highest logits, whatever class is asked (the CUB inference: k = 200 of 200 classes, 80 for
VGG16; k >= C is the mean of every class's map). ``BAS_inference.py`` then min-max normalizes and
resizes to 224 (the ``bas`` protocol's preparation).

``reference_names`` gives BAS's names (``classifier_cls`` / ``classifier_loc``; the CUB
InceptionV3 calls its classifier ``classifier``); an ILSVRC checkpoint's ``*_copy`` tensors (the
copies as modules, refreshed from the originals at every forward) are accepted and ignored on
import: only their BatchNorm running statistics are not refreshed there, which only an eval-mode
erased branch would read (no evaluation output or training step does).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from wsolbench.errors import WsolbenchError
from wsolbench.methods.base import WsolMethod, global_average_pool, init_new_layers, select_classes
from wsolbench.registry import register_method

VARIANTS = ("cub", "ilsvrc")
# (lambda: area weight, w2: foreground CE weight) per variant and backbone:
# CUB: Model/<net>.py bas_loss (vgg.py:172, resnet.py:159, inception.py:145, mobilenet.py:123)
#      and train.py:96-99 (loss_2 x 0.0 for VGG, x 0.5 otherwise);
# ILSVRC: Model/<net>.py forward (vgg.py:164/172, resnet.py:156/164, inception.py:144/152,
#      mobilenet.py:116/124).
LOSS_WEIGHTS = {
    "cub": {
        "vgg16": (0.7, 0.0),
        "resnet50": (1.2, 0.5),
        "inception_v3": (1.0, 0.5),
        "mobilenet_v1": (1.5, 0.5),
    },
    "ilsvrc": {
        "vgg16": (1.0, 0.05),
        "resnet50": (2.0, 1.0),
        "inception_v3": (2.5, 1.0),
        "mobilenet_v1": (1.5, 0.5),
    },
}
# A backbone without a BAS network of its own takes the weights of its reference analogue.
ANALOGUES = {"tinyvgg": "vgg16"}
# The copies an ILSVRC checkpoint holds as modules (ILSVRC/Model/*.py __init__).
ILSVRC_COPIES = {
    "vgg16": ("conv_copy_5_1.", "conv_copy_5_2.", "conv_copy_5_3.", "classifier_cls_copy."),
    "resnet50": ("layer4_copy.", "classifier_cls_copy."),
    "inception_v3": ("Mixed_7a_copy.", "Mixed_7b_copy.", "Mixed_7c_copy.", "classifier_cls_copy."),
    "mobilenet_v1": ("erase_branch.", "classifier_cls_copy."),
}


def frozen_call(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``module(x)`` with detached copies of its weights and statistics, as the reference's deep
    copies: no gradient reaches the weights, BatchNorm updates only the copied statistics."""
    state = {name: p.detach() for name, p in module.named_parameters()}
    state.update({name: b.clone() for name, b in module.named_buffers()})
    return torch.func.functional_call(module, state, (x,))


def pool_to(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Maps at the tap's grid to the features' grid: BAS's ``nn.AvgPool2d(2)`` when the grid is
    twice as fine, unchanged when equal (a large-feature-map network), adaptive otherwise."""
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    if tuple(maps.shape[-2:]) == (2 * size[0], 2 * size[1]):
        return F.avg_pool2d(maps, 2)
    return F.adaptive_avg_pool2d(maps, size)


@register_method("bas")
class BAS(WsolMethod):
    """BAS: per-class sigmoid maps trained to suppress the background's activation.

    The classifier rerun on the features erased by the map must lose its score (background
    activation suppression), under an area constraint."""

    architecture_type = "bas"

    def __init__(self, top_k: int = 200, variant: str = "cub", **common):
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise WsolbenchError(f"bas: top_k must be an integer >= 1, got {top_k!r}")
        if variant not in VARIANTS:
            raise WsolbenchError(
                f"bas: variant must be one of {', '.join(VARIANTS)}, not {variant!r}"
            )
        super().__init__(**common)
        self.top_k, self.variant = top_k, variant
        net, name = self.backbone, self.hparams["backbone"]
        self.family = ANALOGUES.get(name, name)
        if self.family not in LOSS_WEIGHTS[variant]:
            raise WsolbenchError(f"bas: no loss weights for backbone '{name}'")
        self.area_weight, self.foreground_weight = LOSS_WEIGHTS[variant][self.family]
        self.strict = variant == "ilsvrc"  # res[x_res > x_sum] = 0; CUB: >=
        width = net.head_width
        self.classifier_cls = nn.Sequential(
            nn.Conv2d(net.out_channels, width, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, self.num_classes, 1),
            nn.ReLU(inplace=True),
        )
        self.classifier_loc = nn.Sequential(
            nn.Conv2d(net.tap_channels[net.bas_tap], self.num_classes, 3, padding=1), nn.Sigmoid()
        )
        init_new_layers(self.classifier_cls, net.init_mode)
        init_new_layers(self.classifier_loc, net.init_mode)

    @property
    def map_stride(self) -> int:
        """The stride of ``cams``: the tap's, half the features' (equal with large_feature_map)."""
        stride = self.backbone.feature_stride
        return stride if self.hparams["large_feature_map"] else stride // 2

    @property
    def reference_unused_prefixes(self) -> tuple[str, ...]:
        return ILSVRC_COPIES.get(self.family, ()) if self.variant == "ilsvrc" else ()

    def reference_names(self) -> dict[str, str]:
        backbone = self.backbone.reference_names()
        # The CUB InceptionV3 names its classifier `classifier` (CUB/Model/inception.py:34).
        cls = "classifier" if (self.family, self.variant) == ("inception_v3", "cub") else None
        names = {}
        for key in self.state_dict():
            if key.startswith("backbone."):
                names[key] = backbone[key.removeprefix("backbone.")]
            elif cls and key.startswith("classifier_cls."):
                names[key] = cls + key.removeprefix("classifier_cls")
            else:
                names[key] = key
        return names

    def head(self, features, taps, labels):
        feature_map = self.classifier_cls(features)
        logits = global_average_pool(feature_map)
        tap = taps[self.backbone.bas_tap]
        cams = self.classifier_loc(tap)
        outputs = {"logits": logits, "cams": cams}
        if labels is not None:  # the training branches (the reference computes them in forward)
            saliency = select_classes(cams, labels.long()[:, None])  # (N, 1, H, W)
            erased = tap.detach() * (1 - saliency)
            erased = frozen_call(self.classifier_cls, frozen_call(self.backbone.bas_late(), erased))
            foreground = feature_map * pool_to(saliency, feature_map.shape[-2:])
            outputs.update(
                saliency=saliency,
                logits_erased=global_average_pool(erased),
                logits_fg=global_average_pool(foreground),
            )
        return outputs

    def loss_terms(self, outputs, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """The reference's loss terms for the outputs of ``forward(images, labels)``: ``cls``
        CE(logits), ``fg`` CE(logits_fg), ``res`` and ``area`` per image, ``loc`` the mean of
        res + lambda * area."""
        labels = labels.long()
        index = labels[:, None]
        x_sum = outputs["logits"].gather(1, index)[:, 0].detach()
        x_res = outputs["logits_erased"].gather(1, index)[:, 0]
        suppressed = x_res > x_sum if self.strict else x_res >= x_sum
        res = torch.where(suppressed, torch.zeros_like(x_res), x_res / (x_sum + 1e-8))
        area = outputs["saliency"].flatten(1).mean(1)
        return {
            "cls": F.cross_entropy(outputs["logits"], labels),
            "fg": F.cross_entropy(outputs["logits_fg"], labels),
            "res": res,
            "area": area,
            "loc": (res + self.area_weight * area).mean(),
        }

    def loss(self, outputs, targets):
        terms = self.loss_terms(outputs, targets)
        return terms["cls"] + self.foreground_weight * terms["fg"] + terms["loc"]

    def class_maps(self, outputs, classes):
        cams = outputs["cams"]
        k = min(self.top_k, cams.shape[1])
        if k == 1:
            return select_classes(cams, classes)
        top = outputs["logits"].topk(k, dim=1).indices
        mean = select_classes(cams, top).mean(dim=1, keepdim=True)
        return mean.expand(-1, classes.shape[1], -1, -1)
