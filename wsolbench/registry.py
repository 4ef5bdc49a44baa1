"""Registries of methods, backbones, post-processors and explainers (timm-style, a few dozen lines).

Entries register themselves with a decorator when their module is imported; the registry
imports the packages that hold them the first time it is asked, so ``list_methods()`` works
without the caller importing anything first.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any

from wsolbench.errors import WsolbenchError

# Packages whose import registers the entries of each kind.
_PROVIDERS = {
    "method": ("wsolbench.methods",),
    "backbone": ("wsolbench.backbones",),
    "post-processor": ("wsolbench.methods",),
    "protocol": ("wsolbench.evaluation.protocols",),
    "explainer": (
        "wsolbench.explainers.base",
        "wsolbench.explainers.gradcam",
        "wsolbench.explainers.torchcam",
    ),
}


class Registry:
    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Callable[..., Any]] = {}

    def register(self, name: str | None = None) -> Callable:
        def decorator(factory: Callable) -> Callable:
            key = name or factory.__name__.lower()
            if key in self._entries and self._entries[key] is not factory:
                raise WsolbenchError(f"{self.kind} '{key}' is registered twice")
            self._entries[key] = factory
            return factory

        return decorator

    def _load(self) -> None:
        for package in _PROVIDERS.get(self.kind, ()):
            importlib.import_module(package)

    def get(self, name: str) -> Callable:
        self._load()
        if name not in self._entries:
            known = ", ".join(sorted(self._entries)) or "none"
            raise WsolbenchError(f"unknown {self.kind} '{name}' (available: {known})")
        return self._entries[name]

    def create(self, name: str, **kwargs: Any) -> Any:
        return self.get(name)(**kwargs)

    def names(self) -> list[str]:
        self._load()
        return sorted(self._entries)

    def registered(self) -> list[str]:
        """The names in registration order (the order a module declares its entries in)."""
        self._load()
        return list(self._entries)

    def defaults(self, name: str) -> dict[str, Any]:
        """Keyword defaults of an entry's factory (its hyperparameters), for `wsolbench list`."""
        target = self.get(name)
        signature = inspect.signature(target.__init__ if inspect.isclass(target) else target)
        return {
            key: p.default
            for key, p in signature.parameters.items()
            if p.default is not inspect.Parameter.empty and key != "self"
        }


METHODS = Registry("method")
BACKBONES = Registry("backbone")
POSTPROCESSORS = Registry("post-processor")
EXPLAINERS = Registry("explainer")
PROTOCOLS = Registry("protocol")

register_method = METHODS.register
register_backbone = BACKBONES.register
register_postprocessor = POSTPROCESSORS.register
register_explainer = EXPLAINERS.register
register_protocol = PROTOCOLS.register
# The protocols a suite scores when its [evaluation] names none (its leaderboard's tables).
DEFAULT_PROTOCOLS = ("spa", "wsolevaluation", "peak")


def create_method(name: str, **kwargs: Any):
    """Build a registered method, e.g. ``create_method("cam", backbone="vgg16", num_classes=200)``."""
    return METHODS.create(name, **kwargs)


def create_backbone(name: str, **kwargs: Any):
    return BACKBONES.create(name, **kwargs)


def create_postprocessor(name: str, **kwargs: Any):
    return POSTPROCESSORS.create(name, **kwargs)


def create_explainer(name: str, **kwargs: Any):
    """Build a registered explainer, e.g. ``create_explainer("gradcam++", target_layers=["layer4"])``."""
    return EXPLAINERS.create(name, **kwargs)


def list_methods() -> list[str]:
    return METHODS.names()


def list_backbones() -> list[str]:
    return BACKBONES.names()


def list_postprocessors() -> list[str]:
    return POSTPROCESSORS.names()


def list_explainers() -> list[str]:
    return EXPLAINERS.names()


def list_protocols() -> list[str]:
    return PROTOCOLS.names()
