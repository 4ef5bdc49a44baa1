"""TS-CAM: token semantic coupled attention maps (Gao et al., ICCV 2021), as its code
(vasgaowei/TS-CAM @ 25aece4, ``lib/models/deit.py`` ``TSCAM``), on a vision transformer
(``deit_small``: DeiT-S, as ``deit_tscam_small_patch16_224``; ``tinyvit`` for CPU runs).

The patch tokens after the final norm, as an (N, D, h, w) map, go through a conv3x3 -> C head
(``head`` in the reference, PyTorch's default initialization: TS-CAM's ``_init_weights`` only
touches linear and LayerNorm layers): the semantic maps ``S``, whose global average are the logits
(the class token is not classified). The coupled attention ``A`` is the class token's attention
to every patch, averaged over the heads and summed over the blocks; the map of class c is
``A * S_c`` (``cams``). ``test_cam.py`` / ``cams_deit.py`` then resize it to 224 with
``cv2.resize`` and min-max normalize it (the ``tscam`` protocol's preparation). The loss is
cross-entropy on the logits. Outputs also hold ``semantic`` (S) and ``coupling`` (A, (N, 1, h, w)).
``drop_path`` is the stochastic depth of training (``--drop-path``, 0.1 in TS-CAM's and SCM's
``lib/config/default.py``; 0 makes training deterministic, as their models' own default).
"""

from __future__ import annotations

import torch
from torch import nn

from wsolbench.errors import WsolbenchError
from wsolbench.methods.base import WsolMethod, global_average_pool, renamed
from wsolbench.registry import register_method


@register_method("tscam")
class TSCAM(WsolMethod):
    """TS-CAM: semantic maps from the patch tokens, coupled with the class token's attention."""

    architecture_type = "vit"

    def __init__(self, drop_path: float = 0.1, **common):
        if isinstance(drop_path, bool) or not isinstance(drop_path, (int, float)):
            raise WsolbenchError(f"{type(self).__name__.lower()}: drop_path must be a number")
        if not 0 <= drop_path < 1:
            raise WsolbenchError(
                f"{type(self).__name__.lower()}: drop_path must be in [0, 1), got {drop_path}"
            )
        super().__init__(**common)
        self.backbone.set_drop_path(float(drop_path))
        self.classifier = nn.Conv2d(self.backbone.out_channels, self.num_classes, 3, padding=1)

    def reference_names(self) -> dict[str, str]:
        """TS-CAM's names: the backbone's are timm's / DeiT's, the head is ``head``."""
        prefixes = {"backbone.": "", "classifier.": "head."}
        return {key: renamed(key, prefixes) for key in self.state_dict()}

    def coupling(self, attention: torch.Tensor) -> torch.Tensor:
        """(N, depth, heads, P) class-token attention -> (N, P): mean over heads, sum over
        blocks (``attn_weights.mean(dim=2)``, ``.sum(0)[:, 0, 1:]``)."""
        return attention.mean(dim=2).sum(dim=1)

    def head(self, features, taps, labels):
        semantic = self.classifier(features)
        n, _, h, w = semantic.shape
        coupling = self.coupling(taps["attention"]).view(n, 1, h, w)
        return {
            "logits": global_average_pool(semantic),
            "cams": coupling * semantic,
            "semantic": semantic,
            "coupling": coupling,
        }
