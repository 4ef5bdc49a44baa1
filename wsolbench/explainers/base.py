"""The explainer contract, and ``cam``: the model's own class maps.

An explainer is called as ``explainer(model, images, classes, outputs)``:

- ``model``: what ``engine.infer.predict`` runs (a wsolbench method, or a torchvision classifier
  wrapped by ``ClassifierModel``), in eval mode;
- ``images``: the (N, 3, H, W) batch, on the model's device;
- ``classes``: (N, K) class indices, the GT class first, then the spa protocol's top-k;
- ``outputs``: the model's forward outputs on ``images`` (``logits``, ``taps``, what its
  ``class_maps`` reads).

It returns (N, K, h, w) raw class maps, on the images' device, that the post-processors
(identity, SCG) and every protocol take as they take a method's CAM. It also counts its own
wall time (``seconds``, ``images``), so a leaderboard can report each explainer's cost.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from wsolbench.errors import WsolbenchError
from wsolbench.registry import register_explainer


class Explainer:
    """Base class: subclasses implement ``explain``; ``__call__`` times it."""

    name = "explainer"
    model_maps = False  # True: the model's own maps, which `predict` computes anyway

    def __init__(self):
        self.seconds = 0.0
        self.images = 0

    def explain(
        self, model, images: torch.Tensor, classes: torch.Tensor, outputs: dict
    ) -> torch.Tensor:
        raise NotImplementedError

    def __call__(
        self, model, images: torch.Tensor, classes: torch.Tensor, outputs: dict
    ) -> torch.Tensor:
        started = time.perf_counter()
        maps = self.explain(model, images, classes.long(), outputs)
        if maps.device.type == "cuda":
            torch.cuda.synchronize(maps.device)
        self.seconds += time.perf_counter() - started
        self.images += int(images.shape[0])
        expected = (*classes.shape, *maps.shape[2:])
        if maps.dim() != 4 or tuple(maps.shape) != expected:
            raise WsolbenchError(
                f"explainer {self.name} returned maps of shape {tuple(maps.shape)}, expected {expected}"
            )
        return maps

    def ms_per_image(self) -> float:
        """Wall time per image to make its K class maps, beyond the classification forward pass."""
        return 1000.0 * self.seconds / max(self.images, 1)

    def check_model(self, model) -> None:
        """Refuse, before any work, a model this explainer cannot explain."""

    def applies_to(self, model) -> bool:
        """Whether a suite's grid has this explainer's row for ``model`` (else it is skipped)."""
        return True

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


@register_explainer("cam")
class ModelCAM(Explainer):
    """The model's own class maps (the method's CAM, ACoL/SPA class maps): free with the forward."""

    name = "cam"
    model_maps = True

    def explain(self, model, images, classes, outputs):
        from wsolbench.engine.infer import class_maps

        return class_maps(model, outputs, classes).float()

    def applies_to(self, model) -> bool:
        return getattr(model, "has_cams", True) is not False

    def check_model(self, model) -> None:
        if not self.applies_to(model):
            raise WsolbenchError(
                f"explainer 'cam': {model} is not global average pooling and one linear layer on "
                f"its last spatial layer ({getattr(model, 'cam_layer', '?')} at this input size), so "
                "it has no class activation map; use a post-hoc explainer such as gradcam++ "
                "(`wsolbench list explainers`)"
            )


def explain_pairs(
    images: torch.Tensor,
    classes: torch.Tensor,
    run: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
) -> torch.Tensor:
    """(N, K, h, w) maps from ``run(images, classes) -> (M, h, w)``, one map per image and class,
    called on the batch's distinct (image, class) pairs (the GT class is usually among the
    top-k) in chunks of the batch size."""
    n, k = classes.shape
    width = int(classes.max()) + 1
    keys = torch.arange(n, device=classes.device)[:, None] * width + classes
    pairs, inverse = torch.unique(keys.flatten(), return_inverse=True)
    chunks = [
        run(images[chunk // width], chunk % width)
        for chunk in (pairs[start : start + n] for start in range(0, len(pairs), n))
    ]
    maps = torch.cat(chunks)
    return maps[inverse.to(maps.device)].view(n, k, *maps.shape[1:])
