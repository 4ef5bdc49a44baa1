"""Target layers: named by the user (dotted module names) or found by one probing forward pass.

The default target layer is the last layer of the network's feature extractor: for a wsolbench
method, the last layer of its backbone to run (the features every method's head reads:
tinyvgg ``backbone.block4``, vgg16 ``backbone.features.29`` (conv5_3), resnet50
``backbone.layer4``, inception_v3 ``backbone.Mixed_6e``); for a torchvision classifier, the last
layer before global pooling (resnet ``net.layer4``, vgg ``net.features``, inception_v3
``net.Mixed_7c``), the layers pytorch-grad-cam's documentation recommends. Found by running the
model once: the last module to finish with an (N, C, h, w) output of more than one position,
pooling and dropout layers excluded. A transformer backbone (``deit_small``, ``tinyvit``) names
its own (``explainer_layer``: the last block's ``norm1``, where pytorch-grad-cam's documentation
puts a ViT's target layer), whose token outputs go through the library's ViT reshape transform
(``token_reshape``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from wsolbench.errors import WsolbenchError
from wsolbench.explainers.base import Explainer
from wsolbench.options import Option

_SKIPPED = (
    nn.modules.pooling._AdaptiveAvgPoolNd,
    nn.modules.pooling._AvgPoolNd,
    nn.modules.pooling._MaxPoolNd,
    nn.modules.pooling._AdaptiveMaxPoolNd,
    nn.modules.dropout._DropoutNd,
    nn.Identity,
)


@dataclass(frozen=True)
class SpatialLayer:
    name: str  # dotted name in the model, e.g. "backbone.block4"
    module: nn.Module
    size: tuple[int, int]  # (h, w) of its output for the probed input


def feature_root(model: nn.Module) -> tuple[str, nn.Module]:
    """Where target layers are looked for: a method's backbone, a wrapped classifier's net."""
    for attribute in ("backbone", "net"):
        module = getattr(model, attribute, None)
        if isinstance(module, nn.Module):
            return attribute + ".", module
    return "", model


@torch.no_grad()
def spatial_layers(model: nn.Module, images: torch.Tensor) -> list[SpatialLayer]:
    """The feature extractor's layers with spatial outputs, in the order their forward finished."""
    prefix, root = feature_root(model)
    finished: list[SpatialLayer] = []

    def hook(name):
        def record(module, inputs, output):
            if (
                isinstance(output, torch.Tensor)
                and output.dim() == 4
                and output.shape[2] * output.shape[3] > 1
            ):
                finished.append(SpatialLayer(prefix + name, module, tuple(output.shape[2:])))

        return record

    handles = [
        m.register_forward_hook(hook(name))
        for name, m in root.named_modules()
        if name and not isinstance(m, _SKIPPED)
    ]
    try:
        model(images)
    finally:
        for handle in handles:
            handle.remove()
    if not finished:
        raise WsolbenchError(
            f"{type(root).__name__} has no layer with an (N, C, h, w) output to explain"
        )
    return finished


def default_target_layer(model: nn.Module, images: torch.Tensor) -> SpatialLayer:
    return spatial_layers(model, images)[-1]


def default_tap_layers(model: nn.Module, images: torch.Tensor) -> list[SpatialLayer]:
    """SCG's two taps: the last layer, and the last of the outermost layers at the previous
    resolution (resnet: layer3 and layer4, inception_v3: Mixed_6e and Mixed_7c, as SPA fuses
    conv4 and conv5); only the last one when the network has a single resolution."""
    layers = spatial_layers(model, images)
    last = layers[-1]
    larger = [
        layer for layer in layers if layer.size[0] * layer.size[1] > last.size[0] * last.size[1]
    ]
    if not larger:
        return [last]
    previous = min(layer.size[0] * layer.size[1] for layer in larger)
    level = [layer for layer in larger if layer.size[0] * layer.size[1] == previous]
    depth = min(layer.name.count(".") for layer in level)
    return [[layer for layer in level if layer.name.count(".") == depth][-1], last]


def named_layers(model: nn.Module, names: list[str]) -> list[nn.Module]:
    """Modules by dotted name (``backbone.block4``, ``net.layer4.1``), with a clear error."""
    modules = []
    for name in names:
        try:
            modules.append(model.get_submodule(name))
        except AttributeError:
            prefix, root = feature_root(model)
            children = ", ".join(prefix + child for child, _ in root.named_children())
            raise WsolbenchError(
                f"no layer '{name}' in {type(model).__name__} (top-level layers: {children})"
            ) from None
    return modules


class LayerExplainer(Explainer):
    """An explainer of target layers: named (``target_layers``), else the default layer."""

    # A list of layer names, or one comma-separated string (the command line's form).
    OPTIONS = {"target_layers": Option(list, item=str, min_items=1, nullable=True)}

    def __init__(self, target_layers: list[str] | str | None = None):
        super().__init__()
        if isinstance(target_layers, str):  # the command line's "backbone.block4,backbone.block3"
            target_layers = [name.strip() for name in target_layers.split(",") if name.strip()]
        if target_layers is not None and not (
            isinstance(target_layers, list) and all(isinstance(n, str) for n in target_layers)
        ):
            raise WsolbenchError(
                f"{self.name}: target_layers must be a list of layer names, got {target_layers!r}"
            )
        self.target_layers = list(target_layers) if target_layers else None
        self._layers: dict[int, list[nn.Module]] = {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(target_layers={self.target_layers})"

    def import_library(self):
        """The library the explainer runs (a clear error when it is not installed)."""

    def check_model(self, model) -> None:
        self.import_library()
        if self.target_layers:
            named_layers(model, self.target_layers)

    def layers(self, model: nn.Module, images: torch.Tensor) -> list[nn.Module]:
        if id(model) not in self._layers:
            prefix, root = feature_root(model)
            declared = getattr(root, "explainer_layer", None)
            if self.target_layers:
                self._layers[id(model)] = named_layers(model, self.target_layers)
            elif declared:  # a transformer: its documented layer (tokens, reshaped)
                self._layers[id(model)] = named_layers(model, [prefix + declared])
            else:
                self._layers[id(model)] = [default_target_layer(model, images[:1]).module]
        return self._layers[id(model)]


def token_reshape(model: nn.Module, images: torch.Tensor):
    """For a transformer backbone (one with ``reshape_transform``): pytorch-grad-cam's ViT
    reshape transform for this input's patch grid, applied to token outputs (N, 1 + h * w, C);
    (N, C, h, w) outputs pass unchanged. None for other models."""
    _, root = feature_root(model)
    if not hasattr(root, "reshape_transform"):
        return None
    reshape = root.reshape_transform(images)
    return lambda output: reshape(output) if output.dim() == 3 else output
