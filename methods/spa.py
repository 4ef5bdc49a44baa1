"""SPA (Pan et al., CVPR 2021): a class-map head trained with the restricted activation module.

Head (RAM network): conv3x3 -> 1024, ReLU, conv3x3 1024 -> 1024, ReLU, conv1x1 -> C with no
ReLU on the output (TinyVGG: its smaller head width); logits = GAP of the class maps. Loss
``CE + alpha * L_ra`` from epoch ``ram_start`` on (``set_epoch``). Defaults are the CUB values
(alpha 0.5, tau 0.1, gap 0.2, ram_start 20 of 100 epochs); ILSVRC uses tau 0.4, gap 0.1,
ram_start 5. ``alpha=0`` trains "SPA without RAM" (``spa-noram`` in suites): what the SPA
paper's tables call "CAM" is this network, not wsolevaluation's CAM. SCG is a separate
post-processor. The evaluation-time map of a class is ReLU of its channel (the identity
post-processor), as the reference's ``loc_map = F.relu(logits)``.

References (``reference_names`` maps their state-dict keys; tests/test_spa_parity.py checks
logits, class maps and SCG taps against values computed with them):
- VGG16: Panxjia/SPA_CVPR2021 @ 32bf2d5, ``models/vgg/vgg_spa.py``. Its backbone is VGG16 with
  pool5 removed (14 x 14 at 224) split into ``conv1_2 / conv3 / conv4 / conv5``; its
  ``conv5_add`` block is built but never called (no counterpart here, ignored when importing).
- InceptionV3: MsterDC/SPA2Net @ 445f981, ``models/google/inceptionv3_sst.py`` (mode ``spa``):
  wsolevaluation's InceptionV3 WITHOUT the max-pool before Mixed_6a, i.e. ``inception_v3`` with
  ``large_feature_map=True`` (Mixed_5d .. Mixed_6e all 28 x 28 at 224).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from wsolbench.errors import WsolbenchError
from wsolbench.methods.base import (
    WsolMethod,
    class_map_classifier,
    init_new_layers,
    select_class,
)
from wsolbench.registry import register_method


def restricted_activation_loss(
    class_maps: torch.Tensor, labels: torch.Tensor, tau: float, gap: float
) -> torch.Tensor:
    """L_ra of SPA (without alpha) for (N, C, H, W) class maps and (N,) labels.

    V = variance over classes of softmax(A) (torch.var, unbiased, as the SPA code), min-max
    normalized per image (eps 1e-15); background = Vn < tau, foreground = Vn > tau + gap (no
    gradient through the masks); S = sigmoid(A[y]); mean over N*H*W of S*bg + (1 - S)*fg.
    """
    with torch.no_grad():
        variance = torch.var(F.softmax(class_maps, dim=1), dim=1)
        flat = variance.flatten(1)
        low = flat.min(dim=1, keepdim=True).values
        high = flat.max(dim=1, keepdim=True).values
        normalized = ((flat - low) / (high - low + 1e-15)).view_as(variance)
        background = (normalized < tau).to(class_maps.dtype)
        foreground = (normalized > tau + gap).to(class_maps.dtype)
    score = torch.sigmoid(select_class(class_maps, labels).squeeze(1))
    return torch.mean(score * background + (1.0 - score) * foreground)


# The head `classifier` (conv3x3 block, conv3x3 block, conv1x1) is the reference's `cls`
# Sequential (conv 0, ReLU 1, conv 2, ReLU 3, conv 4).
SPA_HEAD_NAMES = {"0.0": "0", "1.0": "2", "2": "4"}
# vgg_spa.py splits torchvision's `features` at these indices (cfg 'O', cnvs (10, 7, 7)).
SPA_VGG_BLOCKS = (("conv5", 24), ("conv4", 17), ("conv3", 10), ("conv1_2", 0))


def _spa_vgg_name(key: str) -> str:
    """`features.N.weight` (torchvision's index) -> the SPA code's `convX.(N - start).weight`."""
    _, index, leaf = key.split(".")
    block, start = next(b for b in SPA_VGG_BLOCKS if int(index) >= b[1])
    return f"{block}.{int(index) - start}.{leaf}"


@register_method("spa")
class SPA(WsolMethod):
    """SPA: class-map head with the restricted activation loss (RAM) from epoch ram_start."""

    # vgg_spa.py builds a conv5_add block that its forward never calls.
    reference_unused_prefixes = ("conv5_add.",)

    def __init__(
        self,
        alpha: float = 0.5,
        tau: float = 0.1,
        gap: float = 0.2,
        ram_start: int = 20,
        **common,
    ):
        if alpha < 0 or not 0 <= tau <= 1 or gap < 0 or ram_start < 0:
            raise WsolbenchError(
                "spa: need alpha >= 0, 0 <= tau <= 1, gap >= 0, ram_start >= 0 "
                f"(got {alpha}, {tau}, {gap}, {ram_start})"
            )
        super().__init__(**common)
        self.alpha, self.tau, self.gap = float(alpha), float(tau), float(gap)
        self.ram_start = int(ram_start)
        self.classifier = class_map_classifier(
            self.backbone.out_channels, self.backbone.head_width, self.num_classes
        )
        init_new_layers(self.classifier, "xavier")

    def reference_names(self) -> dict[str, str]:
        """State-dict keys of the SPA code's network (VGG16) or SPA2Net's (InceptionV3)."""
        backbone = self.hparams["backbone"]
        if backbone not in ("vgg16", "inception_v3"):
            return super().reference_names()  # no reference network on this backbone
        names = {}
        for key in self.state_dict():
            if key.startswith("classifier."):
                module, _, leaf = key.removeprefix("classifier.").rpartition(".")
                names[key] = f"cls.{SPA_HEAD_NAMES[module]}.{leaf}"
            elif backbone == "vgg16":
                names[key] = _spa_vgg_name(key.removeprefix("backbone."))
            else:
                names[key] = key.removeprefix("backbone.")
        return names

    @property
    def ram_active(self) -> bool:
        return self.alpha > 0 and self.epoch >= self.ram_start

    def head(self, features, taps, labels):
        cams = self.classifier(features)
        return {"logits": self._pool(cams), "cams": cams}

    def _pool(self, cams: torch.Tensor) -> torch.Tensor:
        """The reference's global average pooling: two means, in its order (each order rounds
        its own way). The SPA code averages H, then W, in training and evaluation
        (``torch.mean(torch.mean(logits, dim=2), dim=2)``: models/vgg/vgg_spa.py:146,
        exper/val_spa.py:241); SPA2Net's InceptionV3 too in training
        (models/google/inceptionv3_sst.py:287) but W, then H, in evaluation
        (``torch.mean(torch.mean(logits_cls, dim=-1), dim=-1)``, exper/test_sst.py:105).
        Backbones without a reference: the SPA code's order."""
        if self.hparams["backbone"] == "inception_v3" and not self.training:
            return cams.mean(dim=-1).mean(dim=-1)
        return cams.mean(dim=2).mean(dim=2)

    def loss(self, outputs, targets):
        loss = F.cross_entropy(outputs["logits"], targets)
        if self.ram_active:
            ram = restricted_activation_loss(outputs["cams"], targets, self.tau, self.gap)
            loss = loss + self.alpha * ram
        return loss
