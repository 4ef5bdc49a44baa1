"""pytorch-grad-cam's CAM methods as explainers, through the library's public API.

Each map is exactly what ``cam(input_tensor, targets=[ClassifierOutputTarget(c), ...])`` returns
(ReLU, min-max per image, resized to the network input with ``cv2.resize``, averaged over target
layers): the library's own output, which wsolbench's post-processors and protocols then take as
any class map. The K classes of a batch (GT and top-k) are distinct (image, class) pairs, run in
chunks of the batch size: one forward and one backward pass per chunk for the gradient methods;
EigenCAM does not depend on the class and runs once per image; Score-CAM runs one forward pass per
activation channel per (image, class) pair, which is why it is orders of magnitude slower.

The library needs a model that returns logits: wsolbench methods and wrapped classifiers return a
dict, so the library sees ``Logits(model)``, which hooks the same modules.
"""

from __future__ import annotations

import contextlib
import io

import torch
from torch import nn

from wsolbench.errors import WsolbenchError
from wsolbench.explainers.base import explain_pairs
from wsolbench.explainers.layers import LayerExplainer, token_reshape
from wsolbench.registry import register_explainer

INSTALL_HINT = "pip install 'wsolbench[gradcam]'  (pytorch-grad-cam, `grad-cam` on PyPI, >= 1.5.7)"


def import_library():
    try:
        import pytorch_grad_cam
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    except ImportError as error:
        raise WsolbenchError(
            f"this explainer needs pytorch-grad-cam ({error}): {INSTALL_HINT}"
        ) from None
    return pytorch_grad_cam, ClassifierOutputTarget


class Logits(nn.Module):
    """A model whose forward returns only its logits, as pytorch-grad-cam expects."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        output = self.model(images)
        return output["logits"] if isinstance(output, dict) else output


class GradCamExplainer(LayerExplainer):
    """A pytorch-grad-cam method (subclasses name the library's class).

    Args:
        target_layers: dotted module names in the model (``backbone.block4``, ``net.layer4``; a
            list, or one comma-separated string); the backbone's / classifier's last spatial
            layer by default (``wsolbench.explainers.layers``).
        aug_smooth, eigen_smooth: the library's test-time augmentation and principal-component
            smoothing.
    """

    library_class = ""
    class_agnostic = False  # the map does not depend on the target class (EigenCAM)

    def __init__(
        self,
        target_layers: list[str] | None = None,
        aug_smooth: bool = False,
        eigen_smooth: bool = False,
    ):
        super().__init__(target_layers)
        self.aug_smooth, self.eigen_smooth = bool(aug_smooth), bool(eigen_smooth)

    def import_library(self):
        return import_library()

    def make_cam(self, library, model: nn.Module, layers: list[nn.Module], images: torch.Tensor):
        # A transformer's token outputs go through the library's documented ViT reshape.
        return getattr(library, self.library_class)(
            model=Logits(model),
            target_layers=layers,
            reshape_transform=token_reshape(model, images),
        )

    def explain(self, model, images, classes, outputs):
        library, Target = import_library()
        layers = self.layers(model, images)
        if self.class_agnostic:
            maps = self._run(library, Target, model, layers, images, classes[:, 0])
            return maps[:, None].expand(*classes.shape, *maps.shape[1:])
        return explain_pairs(
            images, classes, lambda x, c: self._run(library, Target, model, layers, x, c)
        )

    def _run(self, library, Target, model, layers, images, classes) -> torch.Tensor:
        cam = self.make_cam(library, model, layers, images)
        try:
            with torch.enable_grad(), self.quiet(), _gradients_down_to(model, layers):
                maps = cam(
                    input_tensor=images,
                    targets=[Target(int(c)) for c in classes.tolist()],
                    aug_smooth=self.aug_smooth,
                    eigen_smooth=self.eigen_smooth,
                )
        finally:
            cam.activations_and_grads.release()
            model.zero_grad(set_to_none=True)
        return torch.from_numpy(maps).to(images.device)

    def quiet(self):
        return contextlib.nullcontext()


@contextlib.contextmanager
def _gradients_down_to(model: nn.Module, layers: list[nn.Module]):
    """Only the target layers' parameters require gradients while the library runs.

    pytorch-grad-cam calls ``loss.backward()``, which would also compute every parameter's
    gradient down to the first layer, then discard them; its maps need only the gradient at the
    target layers' outputs, which stays the same. When a target layer has no parameters of its
    own, nothing is changed."""
    own = [p for layer in layers for p in layer.parameters()]
    if not own:
        yield
        return
    states = [(p, p.requires_grad) for p in model.parameters()]
    try:
        for p, _ in states:
            p.requires_grad_(False)
        for p in own:
            p.requires_grad_(True)
        yield
    finally:
        for p, state in states:
            p.requires_grad_(state)


def _register(name: str, library_class: str, doc: str, **attributes) -> None:
    cls = type(
        library_class,
        (GradCamExplainer,),
        {
            "name": name,
            "library_class": library_class,
            "__doc__": doc,
            **attributes,
        },
    )
    register_explainer(name)(cls)


_register("gradcam", "GradCAM", "Grad-CAM (pytorch-grad-cam): channel weights = mean gradient.")
_register(
    "gradcam++",
    "GradCAMPlusPlus",
    "Grad-CAM++ (pytorch-grad-cam): weights from second-order gradient terms.",
)
_register(
    "xgradcam",
    "XGradCAM",
    "XGrad-CAM (pytorch-grad-cam): gradients weighted by normalized activations.",
)
_register(
    "layercam",
    "LayerCAM",
    "LayerCAM (pytorch-grad-cam): element-wise positive gradient x activation.",
)
_register(
    "hirescam",
    "HiResCAM",
    "HiResCAM (pytorch-grad-cam): element-wise gradient x activation, summed.",
)
_register(
    "eigencam",
    "EigenCAM",
    "EigenCAM (pytorch-grad-cam): first principal component of the activations; class-agnostic.",
    class_agnostic=True,
)


@register_explainer("scorecam")
class ScoreCAMExplainer(GradCamExplainer):
    """Score-CAM (pytorch-grad-cam): one masked forward pass per channel per class; slow.

    Args:
        batch_size: masked images per forward pass (the library's ``batch_size``, 16 by default).
    """

    name = "scorecam"
    library_class = "ScoreCAM"

    def __init__(
        self,
        target_layers: list[str] | None = None,
        aug_smooth: bool = False,
        eigen_smooth: bool = False,
        batch_size: int = 16,
    ):
        super().__init__(target_layers, aug_smooth, eigen_smooth)
        if not isinstance(batch_size, int) or batch_size < 1:
            raise WsolbenchError(
                f"scorecam: batch_size must be a positive integer, got {batch_size!r}"
            )
        self.batch_size = batch_size

    def make_cam(self, library, model, layers, images):
        cam = super().make_cam(library, model, layers, images)
        cam.batch_size = self.batch_size
        return cam

    def quiet(self):
        # The library draws a tqdm bar per image on stderr; wsolbench's own bar counts batches.
        return contextlib.redirect_stderr(io.StringIO())
