"""torch-cam's CAM methods as explainers, through the library's public API (``torchcam`` on PyPI).

Each map is what ``extractor(class_idx=[...], scores=model(images))`` returns (ReLU, min-max per
image, at the target layer's resolution; several layers fused by ``extractor.fuse_cams``),
computed on the model's device. torch-cam wants a model returning logits, so it sees
``Logits(model)``; the K classes are run as distinct (image, class) pairs, as for pytorch-grad-cam.
"""

from __future__ import annotations

import torch

from wsolbench.errors import WsolbenchError
from wsolbench.explainers.base import explain_pairs
from wsolbench.explainers.gradcam import Logits
from wsolbench.explainers.layers import LayerExplainer, feature_root
from wsolbench.registry import register_explainer

INSTALL_HINT = "pip install 'wsolbench[torchcam]'  (torch-cam, `torchcam` on PyPI)"


def import_library():
    try:
        import torchcam.methods
    except ImportError as error:
        raise WsolbenchError(f"this explainer needs torch-cam ({error}): {INSTALL_HINT}") from None
    return torchcam.methods


class TorchCamExplainer(LayerExplainer):
    """A torch-cam method (subclasses name the library's class).

    Args:
        target_layers: dotted module names in the model (``backbone.block4``, ``net.layer4``);
            the backbone's / classifier's last spatial layer by default.
    """

    library_class = ""

    def import_library(self):
        return import_library()

    def extractor_options(self) -> dict:
        return {}

    def check_model(self, model) -> None:
        super().check_model(model)
        _, root = feature_root(model)
        if hasattr(root, "reshape_transform") and not self.target_layers:
            raise WsolbenchError(
                f"explainer {self.name}: torch-cam takes (N, C, h, w) layer outputs and has no "
                "reshape for a transformer's tokens; use a pytorch-grad-cam explainer "
                "(gradcam, gradcam++, ...), which applies its ViT reshape transform"
            )

    def explain(self, model, images, classes, outputs):
        methods = import_library()
        layers = self.layers(model, images)
        return explain_pairs(images, classes, lambda x, c: self._run(methods, model, layers, x, c))

    def _run(self, methods, model, layers, images, classes) -> torch.Tensor:
        net = Logits(model)
        extractor = getattr(methods, self.library_class)(
            net, target_layer=list(layers), **self.extractor_options()
        )
        try:
            with torch.enable_grad():
                scores = net(images)
                cams = extractor(class_idx=[int(c) for c in classes.tolist()], scores=scores)
        finally:
            extractor.remove_hooks()
            model.zero_grad(set_to_none=True)
        maps = cams[0] if len(cams) == 1 else extractor.fuse_cams(cams)
        return maps.detach().float()


def _register(name: str, library_class: str, doc: str) -> None:
    cls = type(
        f"TorchCam{library_class}",
        (TorchCamExplainer,),
        {
            "name": name,
            "library_class": library_class,
            "__doc__": doc,
        },
    )
    register_explainer(name)(cls)


_register(
    "torchcam-gradcam", "GradCAM", "Grad-CAM (torch-cam), on the device, at the layer's resolution."
)
_register(
    "torchcam-gradcam++",
    "GradCAMpp",
    "Grad-CAM++ (torch-cam), on the device, at the layer's resolution.",
)
_register(
    "torchcam-xgradcam",
    "XGradCAM",
    "XGrad-CAM (torch-cam), on the device, at the layer's resolution.",
)
_register(
    "torchcam-layercam",
    "LayerCAM",
    "LayerCAM (torch-cam), on the device, at the layer's resolution.",
)


@register_explainer("torchcam-scorecam")
class TorchCamScoreCAM(TorchCamExplainer):
    """Score-CAM (torch-cam): one masked forward pass per channel per class; slow.

    Args:
        batch_size: masked images per forward pass (torch-cam's ``batch_size``).
    """

    name = "torchcam-scorecam"
    library_class = "ScoreCAM"

    def __init__(self, target_layers: list[str] | None = None, batch_size: int = 32):
        super().__init__(target_layers)
        if not isinstance(batch_size, int) or batch_size < 1:
            raise WsolbenchError(
                f"torchcam-scorecam: batch_size must be a positive integer, got {batch_size!r}"
            )
        self.batch_size = batch_size

    def extractor_options(self) -> dict:
        return {"batch_size": self.batch_size}
