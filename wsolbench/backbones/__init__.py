"""Backbones with named feature taps; importing this package registers them.

``create_backbone(name, pretrained=False, weights=None, large_feature_map=False, inserts=None)``
(re-exported from :mod:`wsolbench`) builds one; see :mod:`wsolbench.backbones.base`.
"""

from wsolbench.backbones import inception, mobilenet, resnet, tinyvgg, vgg, vit  # noqa: F401  (registers)
from wsolbench.backbones.base import Backbone, load_weights
from wsolbench.registry import create_backbone, list_backbones

__all__ = ["Backbone", "create_backbone", "list_backbones", "load_weights"]
