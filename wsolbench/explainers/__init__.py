"""Explainers: what turns a model and a batch of images into class maps.

``cam`` (the default) is the model's own class maps: the method's CAM-style map, free with the
forward pass. The others are post-hoc methods of pytorch-grad-cam (``pip install
wsolbench[gradcam]``), run through that library's public API on any wsolbench checkpoint or
torchvision classifier. Build one with ``wsolbench.create_explainer(name, **options)``; see
``wsolbench.explainers.base`` for the contract. The registry imports ``base`` and ``gradcam``
(which register the entries) when first asked, so importing this package costs nothing.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "Explainer": "base",
    "ModelCAM": "base",
    "ClassifierModel": "classifier",
    "build_classifier": "classifier",
    "check_classifier": "classifier",
}
__all__ = ["ClassifierModel", "Explainer", "ModelCAM", "build_classifier", "check_classifier"]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"wsolbench.explainers.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'wsolbench.explainers' has no attribute '{name}'")
