"""The suite tables of this axis: ``[explainers.<label>]`` and ``[classifiers.<label>]``.

    [explainers.cam]                 # the model's own maps (the default when no table is given)
    [explainers.gradcam-pp]
    explainer = "gradcam++"          # the registered explainer (defaults to the label)
    target_layers = ["backbone.block4"]   # its options (`wsolbench list explainers`)

    [classifiers.resnet50]           # a torchvision classifier as it is: no WSOL training
    model = "resnet50"               # torchvision name (defaults to the label)
    weights = "IMAGENET1K_V1"        # torchvision weights name, a state-dict file, or "" (random)
    tap_layers = ["net.layer3", "net.layer4"]   # SCG's taps (default: found by probing)

Every trained method and classifier is explained by every explainer: result rows keep the
method's (classifier's) label in ``method`` and get the explainer's label in ``explainer`` (the
report's optional row axis) when the suite has an ``[explainers]`` table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from wsolbench.errors import WsolbenchError
from wsolbench.registry import EXPLAINERS


@dataclass
class ExplainerSpec:
    label: str
    explainer: str
    options: dict[str, Any] = field(default_factory=dict)

    def create(self):
        return EXPLAINERS.create(self.explainer, **self.options)


@dataclass
class ClassifierSpec:
    label: str
    model: str
    weights: str = ""
    tap_layers: list[str] | None = None


DEFAULT_EXPLAINERS = [ExplainerSpec("cam", "cam")]
_CLASSIFIER_KEYS = {"model": str, "weights": str, "tap_layers": list}


def parse_explainers(table: Any, source: str) -> list[ExplainerSpec]:
    if table is None:
        return list(DEFAULT_EXPLAINERS)
    if not isinstance(table, dict) or not table:
        raise WsolbenchError("[explainers] must name at least one (e.g. [explainers.cam])", source)
    specs = []
    for label, options in table.items():
        if not isinstance(options, dict):
            raise WsolbenchError(f"[explainers.{label}] must be a table", source)
        options = dict(options)
        name = options.pop("explainer", label)
        if name not in EXPLAINERS.names():
            raise WsolbenchError(
                f"explainers.{label}: unknown explainer '{name}' (available: {', '.join(EXPLAINERS.names())})",
                source,
            )
        valid = EXPLAINERS.defaults(name)
        for key in options:
            if key not in valid:
                raise WsolbenchError(
                    f"explainers.{label}: unknown option '{key}' (valid: {', '.join(sorted(valid)) or 'none'})",
                    source,
                )
        spec = ExplainerSpec(label, name, options)
        try:
            spec.create()  # option values are checked by the explainer itself
        except WsolbenchError as error:
            raise WsolbenchError(f"explainers.{label}: {error}", source) from None
        specs.append(spec)
    return specs


def parse_classifiers(table: Any, source: str) -> list[ClassifierSpec]:
    if table is None:
        return []
    if not isinstance(table, dict):
        raise WsolbenchError(
            "[classifiers] must be a table of [classifiers.<label>] tables", source
        )
    specs = []
    for label, options in table.items():
        if not isinstance(options, dict):
            raise WsolbenchError(f"[classifiers.{label}] must be a table", source)
        for key, value in options.items():
            if key not in _CLASSIFIER_KEYS:
                raise WsolbenchError(
                    f"unknown key 'classifiers.{label}.{key}' (valid: {', '.join(_CLASSIFIER_KEYS)})",
                    source,
                )
            if (
                not isinstance(value, _CLASSIFIER_KEYS[key])
                or key == "tap_layers"
                and not all(isinstance(v, str) for v in value)
            ):
                raise WsolbenchError(
                    f"classifiers.{label}.{key} = {value!r} is not a {_CLASSIFIER_KEYS[key].__name__}",
                    source,
                )
        specs.append(
            ClassifierSpec(
                label,
                options.get("model", label),
                options.get("weights", ""),
                options.get("tap_layers"),
            )
        )
    return specs
