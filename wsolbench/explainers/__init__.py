"""Explainers: what turns a model and a batch of images into class maps; importing registers them.

``cam`` (the default) is the model's own class maps: the method's CAM-style map, free with the
forward pass. The others are post-hoc methods of pytorch-grad-cam (``pip install
wsolbench[gradcam]``), run through that library's public API on any wsolbench checkpoint or
torchvision classifier. Build one with ``wsolbench.create_explainer(name, **options)``; see
``wsolbench.explainers.base`` for the contract.
"""
from wsolbench.explainers import base, gradcam  # noqa: F401  (registers)
from wsolbench.explainers.base import Explainer, ModelCAM
from wsolbench.explainers.classifier import ClassifierModel, build_classifier

__all__ = ["Explainer", "ModelCAM", "ClassifierModel", "build_classifier"]
