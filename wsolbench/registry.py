"""Registries of methods, backbones, post-processors, explainers, protocols and training recipes
(timm-style, a few dozen lines), and the checks of a registered entry's options.

Entries register themselves with a decorator when their module is imported; the registry
imports the packages that hold them the first time it is asked, so ``list_methods()`` works
without the caller importing anything first. A registry answers for its names (an entry may
have aliases, accepted but never listed) and for its entries' options: the keyword defaults
of the factory, refined by its ``OPTIONS`` (``wsolbench.options.factory_options``), and the
factory's own checks, run by building it on PyTorch's ``meta`` device (``check_options``).
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterable
from pathlib import Path
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
    "recipe": ("wsolbench.engine.recipes",),
}

# Keyword arguments of every method and backbone factory that say how to build it, not what it
# is: the rest of a factory's keywords are its hyperparameters (what `wsolbench list` shows,
# what a checkpoint records, what `--hparam` and a suite's [methods.<label>] set).
COMMON_ARGUMENTS = (
    "backbone",
    "num_classes",
    "pretrained",
    "weights",
    "large_feature_map",
    "inserts",
)


class Registry:
    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Callable[..., Any]] = {}
        self._aliases: dict[str, str] = {}

    def register(self, name: str | None = None, aliases: Iterable[str] = ()) -> Callable:
        """Decorator: register a factory under ``name`` (default: its lower-cased name);
        ``aliases`` are accepted everywhere a name is but never listed."""

        def decorator(factory: Callable) -> Callable:
            self.add(name or factory.__name__.lower(), factory, aliases)
            return factory

        return decorator

    def add(self, name: str, entry: Any, aliases: Iterable[str] = ()) -> Any:
        if name in self._entries and self._entries[name] is not entry:
            raise WsolbenchError(f"{self.kind} '{name}' is registered twice")
        self._entries[name] = entry
        for alias in aliases:
            self._aliases[alias] = name
        return entry

    def _load(self) -> None:
        for package in _PROVIDERS.get(self.kind, ()):
            importlib.import_module(package)

    def has(self, name: str) -> bool:
        self._load()
        return name in self._entries or name in self._aliases

    def canonical(self, name: str) -> str:
        """The listed name of ``name`` (itself, or what it is an alias of)."""
        self._load()
        return self._aliases.get(name, name)

    def get(self, name: str) -> Callable:
        self._load()
        name = self._aliases.get(name, name)
        if name not in self._entries:
            known = ", ".join(self.names()) or "none"
            shown = name if len(name) <= 60 else name[:57] + "..."
            raise WsolbenchError(f"unknown {self.kind} '{shown}' (available: {known})")
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
        """Keyword defaults of an entry's factory, for `wsolbench list` and the checks."""
        target = self.get(name)
        signature = inspect.signature(target.__init__ if inspect.isclass(target) else target)
        return {
            key: p.default
            for key, p in signature.parameters.items()
            if p.default is not inspect.Parameter.empty and key != "self"
        }

    def hyperparameters(self, name: str) -> dict[str, Any]:
        """The entry's own keywords with their defaults (``COMMON_ARGUMENTS`` left out)."""
        return {k: v for k, v in self.defaults(name).items() if k not in COMMON_ARGUMENTS}

    def check_options(
        self,
        name: str,
        values: dict[str, Any],
        where: str,
        source: str | Path | None = None,
        what: str = "option",
        **build: Any,
    ) -> dict[str, Any]:
        """An entry's options, checked: known keys, each key's Option (type, range, emptiness),
        then the factory itself, built on the meta device with ``build`` (its own checks).
        Errors name ``where`` (e.g. `methods.has`, `--hparam`) and ``source``."""
        from wsolbench.options import check_keywords, factory_options

        defaults = self.hyperparameters(name)
        options = factory_options(self.get(name), defaults)
        values = check_keywords(values, defaults, where, what, source, options)
        probe(self.get(name), where, source, **build, **values)
        return values


METHODS = Registry("method")
BACKBONES = Registry("backbone")
POSTPROCESSORS = Registry("post-processor")
EXPLAINERS = Registry("explainer")
PROTOCOLS = Registry("protocol")
RECIPES = Registry("recipe")
_REGISTRIES = {
    r.kind: r for r in (METHODS, BACKBONES, POSTPROCESSORS, EXPLAINERS, PROTOCOLS, RECIPES)
}

register_method = METHODS.register
register_backbone = BACKBONES.register
register_postprocessor = POSTPROCESSORS.register
register_explainer = EXPLAINERS.register
register_protocol = PROTOCOLS.register
# The protocols a suite scores when its [evaluation] names none (its leaderboard's tables).
DEFAULT_PROTOCOLS = ("spa", "wsolevaluation", "peak")


def registry_of(kind: str) -> Registry:
    """The registry of ``kind`` (``method``, ``backbone``, ``post-processor``, ``recipe``...)."""
    return _REGISTRIES[kind]


def create_method(name: str, **kwargs: Any):
    """Build a registered method (an ``nn.Module``), e.g.
    ``create_method("cam", backbone="vgg16", num_classes=200)``.

    Keywords: ``backbone`` (``list_backbones()``), ``num_classes``, ``pretrained`` (torchvision's
    or timm's ImageNet weights: a download, else a ``WsolbenchError`` naming the file to fetch),
    ``weights`` (a local state-dict file instead), ``large_feature_map``, then the method's own
    hyperparameters (``wsolbench list methods`` shows them with their defaults).

    The model takes ``images`` (N, 3, H, W) float32, ImageNet-normalized (any H, W the backbone
    accepts; 224 as the references), and returns a dict: ``logits`` (N, num_classes) float32,
    ``taps`` (name -> (N, C, h, w) features, SCG's inputs) and the method's own outputs.
    ``model.class_maps(outputs, classes)`` with ``classes`` (N, k) int64 gives (N, k, h, w)
    float32 raw class maps at feature resolution (any range: min-max them or pass them to a
    post-processor), each computed as the reference computes that class's map.
    """
    return METHODS.create(name, **kwargs)


def create_backbone(name: str, **kwargs: Any):
    """Build a registered backbone (``pretrained``, ``weights``, ``large_feature_map``,
    ``inserts``). ``backbone(images)`` with (N, 3, H, W) float32 images returns
    ``(features, taps)``: the last (N, C, h, w) feature map and a dict of named (N, C_i, h_i, w_i)
    feature taps."""
    return BACKBONES.create(name, **kwargs)


def create_postprocessor(name: str, **kwargs: Any):
    """Build a registered post-processor (``none``, ``scg``), e.g.
    ``create_postprocessor("scg", fo_th=0.1)``.

    ``pp(cams, taps, image_size)``: ``cams`` (N, K, h, w) raw class maps of any range (or one
    (N, h, w) map per image), ``taps`` a list of (N, C, h', w') features (SCG's; ignored by
    ``none``), ``image_size`` ``(H, W)`` (or one per image) -> float32 maps in [0, 1] of shape
    (N, K, H, W) (resp. (N, H, W)); a list of maps when the images' sizes differ.
    """
    return POSTPROCESSORS.create(name, **kwargs)


def create_explainer(name: str, **kwargs: Any):
    """Build a registered explainer, e.g. ``create_explainer("gradcam++", target_layers=["layer4"])``.

    ``explainer(model, images, classes, outputs)``: ``images`` (N, 3, H, W) float32, ``classes``
    (N, k) int64, ``outputs`` the model's forward dict -> (N, k, h, w) float32 class maps on the
    model's device (pytorch-grad-cam's and torch-cam's in [0, 1] at input size; ``cam``: the
    model's raw maps at feature resolution), ready for a post-processor and the protocols.
    """
    return EXPLAINERS.create(name, **kwargs)


def list_methods() -> list[str]:
    """The registered methods' names, sorted."""
    return METHODS.names()


def list_backbones() -> list[str]:
    """The registered backbones' names, sorted."""
    return BACKBONES.names()


def list_postprocessors() -> list[str]:
    """The registered post-processors' names, sorted."""
    return POSTPROCESSORS.names()


def list_explainers() -> list[str]:
    """The registered explainers' names, sorted."""
    return EXPLAINERS.names()


def list_protocols() -> list[str]:
    """The registered evaluation protocols' names, sorted."""
    return PROTOCOLS.names()


# ----------------------------------------------------------------------------- option checks


def probe(factory, name: str, source: str | Path | None = None, **kwargs: Any) -> None:
    """Build a registered object on the meta device (no memory, no weights) so that the
    factory's own range checks run now, before any data is read; its error names `name`."""
    import torch

    try:
        with torch.device("meta"):
            factory(**kwargs)
    except WsolbenchError as error:
        raise WsolbenchError(f"{name}: {error.message}", source) from None
    except (TypeError, ValueError, RuntimeError, AssertionError, IndexError, KeyError) as error:
        detail = " ".join(str(error).split())[:200]
        raise WsolbenchError(f"{name}: not allowed ({detail})", source) from None


def method_hparam_defaults(method: str) -> dict[str, Any]:
    """A method's hyperparameters with their defaults."""
    return METHODS.hyperparameters(method)


def check_method(
    method: str,
    backbone: str,
    hparams: dict[str, Any],
    name: str,
    source: str | Path | None = None,
    large_feature_map: bool = False,
    keys: tuple[str, str] = ("method", "backbone"),
) -> dict[str, Any]:
    """A method's hyperparameters: known keys, their Options, its constructor's checks.
    `name` prefixes hyperparameter errors; `keys` name the method and backbone in errors."""
    from wsolbench.options import Option, check

    method = check(method, Option(str, registry="method"), keys[0], source)
    backbone = check(backbone, Option(str, registry="backbone"), keys[1], source)
    return METHODS.check_options(
        method,
        hparams,
        name,
        source,
        "hyperparameter",
        backbone=backbone,
        num_classes=2,
        pretrained=False,
        weights=None,
        large_feature_map=large_feature_map,
    )


def check_postprocessor(
    name: str, options: dict[str, Any], where: str, source: str | Path | None = None
) -> dict[str, Any]:
    """A post-processor's options: known keys, their Options, its constructor's checks."""
    from wsolbench.options import Option, check

    name = check(name, Option(str, registry="post-processor"), where, source)
    return POSTPROCESSORS.check_options(name, options, where, source)


def check_explainer(
    name: str, options: dict[str, Any], where: str, source: str | Path | None = None
) -> dict[str, Any]:
    """An explainer's options: known keys, their Options, its constructor's checks."""
    from wsolbench.options import Option, check

    name = check(name, Option(str, registry="explainer"), where, source)
    return EXPLAINERS.check_options(name, options, where, source)
