"""Shared mechanics of every method: backbone, forward, loss, epochs, parameter groups.

A method is an ``nn.Module`` around a backbone. Subclasses override one or two hooks, in the
manner of pytorch-grad-cam's base class:

- ``head(features, taps, labels) -> dict``: the new layers; must return ``logits`` (N, C) and
  either ``cams`` (N, C, h, w), the raw localization map of every class at feature resolution,
  or what its ``class_maps`` needs (CAM's fc heads: the last ``features``);
- ``prepare_batch`` (training-time input transform) and ``loss`` when the method needs them;
- ``class_maps(outputs, classes)``: the evaluation-time map of given classes, when it is not
  simply a channel of ``cams`` (ACoL erases by the class whose map it computes; CAM computes
  each class's map with the reference's arithmetic). Every reader of maps goes through it;
- ``reference_names()``: the reference code's name of every state-dict entry.

``architecture_type`` (wsolevaluation's: cam, adl, acol, spg; bas, vit) selects the backbone's
variant; a backbone that does not build it refuses with one error naming what it builds.

A subclass's ``__init__`` declares only its own hyperparameters, each with a default, and passes
``**common`` (``wsolbench.registry.COMMON_ARGUMENTS``, declared once there) on to its parent::

    def __init__(self, grid_size: int = 4, drop_rate: float = 0.5, **common):
        super().__init__(**common)

``method.hparams`` holds everything needed to rebuild the architecture,
``create_method(name, **method.hparams)``; the base class records it (``__init_subclass__``).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from wsolbench.backbones.base import initialize_weights
from wsolbench.errors import WsolbenchError
from wsolbench.registry import BACKBONES, COMMON_ARGUMENTS, METHODS, create_backbone

# New layers learn at this multiple of the backbone's learning rate (wsolevaluation).
HEAD_LR_MULTIPLIER = 10.0


class WsolMethod(nn.Module):
    """Base class: builds the backbone; subclasses add their head in ``__init__``."""

    # The backbone variant (wsolevaluation's architecture type) this method is built on.
    architecture_type = "cam"

    def __init_subclass__(cls, **kwargs: Any):
        # Each subclass's __init__ is wrapped: the wrapper sees the concrete constructor's call,
        # so hparams (defaults included) are recorded in one place, with no dict in any subclass
        # and no frame inspection; and its full signature (common arguments, then the
        # hyperparameters) keeps what callers see as before: create_method keywords, positional
        # calls, Registry.defaults (`wsolbench list`, the hyperparameter checks).
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is not None:  # without one, the parent's (already wrapped) constructor serves
            parent = inspect.signature(super(cls, cls).__init__)
            cls.__init__ = _recording_constructor(init, parent)

    def __init__(
        self,
        backbone: str = "tinyvgg",
        num_classes: int = 10,
        pretrained: bool = False,
        weights: str | Path | None = None,
        large_feature_map: bool = False,
        *,
        inserts: Mapping[str, nn.Module] | None = None,
    ):
        # The concrete class's hyperparameters, left by its constructor's wrapper (none for a
        # class without a constructor of its own).
        own = self.__dict__.pop("_own_hparams", {})
        super().__init__()
        if not runs_on(type(self), backbone):
            raise WsolbenchError(
                f"{type(self).__name__} has no network on backbone '{backbone}' (methods that "
                f"run on it: {', '.join(methods_on(backbone)) or 'none'})"
            )
        self.backbone = create_backbone(
            backbone,
            pretrained=pretrained,
            weights=weights,
            large_feature_map=large_feature_map,
            inserts=inserts,
            architecture_type=self.architecture_type,
        )
        self.num_classes = num_classes
        self.epoch = 0
        # `pretrained` and `weights` only say where the first weights come from, not what is
        # built: left out, so hparams (hashed into run configurations) do not depend on them.
        self.hparams: dict[str, Any] = {
            "backbone": backbone,
            "num_classes": num_classes,
            "large_feature_map": large_feature_map,
            **own,
        }

    # -- hooks -----------------------------------------------------------------------------
    def head(
        self, features: torch.Tensor, taps: dict[str, torch.Tensor], labels: torch.Tensor | None
    ) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def prepare_batch(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, Any]:
        """Training-time input transform; identity by default (targets = labels)."""
        return images, labels

    def loss(self, outputs: dict[str, Any], targets: Any) -> torch.Tensor:
        return F.cross_entropy(outputs["logits"], targets)

    # -- shared mechanics -------------------------------------------------------------------
    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, Any]:
        features, taps = self.backbone(images)
        outputs = self.head(features, taps, labels)
        outputs["taps"] = taps
        return outputs

    def class_maps(self, outputs: dict[str, Any], classes: torch.Tensor) -> torch.Tensor:
        """(N, k) classes -> (N, k, h, w) raw maps of those classes as the reference computes
        them at evaluation (inference, bench and SCG read maps through this)."""
        return select_classes(outputs["cams"], classes)

    def reference_names(self) -> dict[str, str]:
        """State-dict key here -> the key of the same tensor in the reference code's model.

        One mapping serves loading checkpoints trained with the reference code and the
        reference recipes' parameter groups (which select tensors by the reference's names).
        Identity by default; a method whose names differ from its reference overrides it.
        """
        return {name: name for name in self.state_dict()}

    def _wsolevaluation_names(self, head: Mapping[str, str]) -> dict[str, str]:
        """``reference_names`` for wsolevaluation's models: the backbone's own mapping (its
        architecture type's names), and ``head`` prefix renames (here -> there) for the rest."""
        backbone = self.backbone.reference_names()
        names = {}
        for key in self.state_dict():
            if key.startswith("backbone."):
                names[key] = backbone[key.removeprefix("backbone.")]
            else:
                names[key] = renamed(key, head)
        return names

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def param_groups(self, lr: float, weight_decay: float) -> list[dict[str, Any]]:
        """Backbone at ``lr``; every new layer (head, extra branches) at 10x."""
        backbone_ids = {id(p) for p in self.backbone.parameters()}
        backbone = [p for p in self.backbone.parameters() if p.requires_grad]
        new = [p for p in self.parameters() if id(p) not in backbone_ids and p.requires_grad]
        groups = [{"params": backbone, "lr": lr, "weight_decay": weight_decay, "name": "backbone"}]
        if new:
            groups.append(
                {
                    "params": new,
                    "lr": lr * HEAD_LR_MULTIPLIER,
                    "weight_decay": weight_decay,
                    "name": "head",
                }
            )
        return groups


def runs_on(method: str | type, backbone: str) -> bool:
    """Whether a method (registered name or class) has a network on a registered backbone: the
    backbone builds the method's variant (``architecture_type`` in its ``architecture_types``)."""
    cls = METHODS.get(method) if isinstance(method, str) else method
    return cls.architecture_type in BACKBONES.get(backbone).architecture_types


def methods_on(backbone: str) -> list[str]:
    """The registered methods that run on ``backbone``."""
    return [name for name in METHODS.names() if runs_on(name, backbone)]


def _recording_constructor(init: Callable, parent: inspect.Signature) -> Callable:
    """Wrap a subclass's ``__init__(self, <own hyperparameters>, **common)``.

    Its signature becomes the parent's public one (``self``, the common arguments, the
    ancestors' hyperparameters) followed by its own hyperparameters. When it is the constructor
    of the object being built (not a parent's reached through ``super()``), it binds the call to
    that signature, defaults applied, leaves the hyperparameters for ``WsolMethod.__init__`` to
    record, and calls ``init`` with every argument by keyword.
    """
    keyword = inspect.Parameter.POSITIONAL_OR_KEYWORD
    inherited = [p for p in parent.parameters.values() if p.kind is keyword]  # not `inserts`
    own = [
        p.replace(kind=keyword)  # listed after the common ones, as constructors used to
        for p in list(inspect.signature(init).parameters.values())[1:]
        if p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    ]
    signature = parent.replace(parameters=inherited + own)

    @functools.wraps(init)
    def constructor(self, *args: Any, **kwargs: Any) -> None:
        if type(self).__init__ is not constructor:  # a parent's, via super(): already bound
            init(self, *args, **kwargs)
            return
        try:
            bound = signature.bind(self, *args, **kwargs)
        except TypeError as error:  # worded as Python words a call that does not fit
            raise TypeError(f"{init.__qualname__}() {error}") from None
        bound.apply_defaults()
        arguments = dict(bound.arguments)
        del arguments["self"]
        # Set before nn.Module.__init__ runs, hence object's setattr; WsolMethod pops it.
        hyperparameters = {k: v for k, v in arguments.items() if k not in COMMON_ARGUMENTS}
        object.__setattr__(self, "_own_hparams", hyperparameters)
        init(self, **arguments)

    constructor.__signature__ = signature  # what inspect (Registry.defaults, help) reports
    return constructor


# -- building blocks shared by several methods --------------------------------------------------
def conv3x3_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.ReLU(inplace=True))


def class_map_classifier(in_channels: int, width: int, num_classes: int) -> nn.Sequential:
    """conv3x3 -> width, ReLU, conv3x3 width -> width, ReLU, conv1x1 -> C (ACoL, SPA, Inception)."""
    return nn.Sequential(
        conv3x3_relu(in_channels, width),
        conv3x3_relu(width, width),
        nn.Conv2d(width, num_classes, 1),
    )


def init_new_layers(module: nn.Module, mode: str = "he") -> None:
    """wsolevaluation's init of new layers: He or Xavier (the mode of the whole reference model,
    ``Backbone.init_mode``; SPA's code: Xavier) for convolutions, N(0, 0.01) for linear layers,
    zero biases."""
    initialize_weights(module, mode)


def renamed(key: str, prefixes: Mapping[str, str]) -> str:
    """``key`` with the first matching prefix replaced (unchanged when none matches)."""
    for old, new in prefixes.items():
        if key.startswith(old):
            return new + key[len(old) :]
    return key


def global_average_pool(maps: torch.Tensor) -> torch.Tensor:
    """wsolevaluation's ``nn.AdaptiveAvgPool2d(1)`` (PyTorch computes an output size of 1 as
    this very mean, so the logits have the reference's bits)."""
    return maps.mean(dim=(2, 3))


def fc_class_maps(
    weight: torch.Tensor, features: torch.Tensor, classes: torch.Tensor
) -> torch.Tensor:
    """(C, K) fc weight, (N, K, h, w) features, (N, k) classes -> (N, k, h, w) CAMs.

    wsolevaluation's formula, ``(fc.weight[labels].view(N, K, 1, 1) * feature_map).mean(1)``
    (``wsol/vgg.py:70-74``, ``wsol/resnet.py:106-110``), evaluated as written one class column
    at a time: a product over channels (einsum, matmul) sums in another order and moves maps by
    a few ulps, enough to change a quantized level. Each map does not depend on the batch or on
    the other classes asked for.
    """
    n, channels = features.shape[:2]
    classes = classes.long().to(weight.device)
    columns = [
        (weight[classes[:, j]].view(n, channels, 1, 1).to(features) * features).mean(1)
        for j in range(classes.shape[1])
    ]
    if not columns:
        return features.new_zeros((n, 0, *features.shape[2:]))
    return torch.stack(columns, dim=1)


def normalize_maps(maps: torch.Tensor, eps: float = 1e-15) -> torch.Tensor:
    """Min-max normalize each (N, C) map over its spatial positions.

    wsolevaluation divides by (max - min) without eps; the eps only turns its 0/0 = NaN on a
    constant map into 0 (so nothing is erased there instead of comparing against NaN).
    """
    flat = maps.flatten(2)
    low = flat.min(dim=2, keepdim=True).values
    high = flat.max(dim=2, keepdim=True).values
    return ((flat - low) / (high - low + eps)).view_as(maps)


def select_classes(maps: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """(N, C, h, w) maps, (N, k) classes -> (N, k, h, w) maps of those classes."""
    index = classes.long()[:, :, None, None].expand(-1, -1, *maps.shape[2:])
    return maps.gather(1, index.to(maps.device))


def select_class(maps: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(N, C, h, w) maps, (N,) labels -> (N, 1, h, w) map of each image's class."""
    index = labels.long().view(-1, 1, 1, 1).expand(-1, 1, *maps.shape[2:])
    return maps.gather(1, index)
