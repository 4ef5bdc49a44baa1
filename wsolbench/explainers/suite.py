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
report's optional row axis) when the suite has an ``[explainers]`` table. Both tables are
checked by the suite schema (``wsolbench.schema``), as every other table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from wsolbench.options import Option
from wsolbench.registry import EXPLAINERS
from wsolbench.schema import Entries, KeyNames, Keys


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

EXPLAINER_TABLES = Entries("explainer", select="explainer", example="cam")
CLASSIFIER_TABLES = Entries(
    None,
    select="model",
    keys=Keys(
        {
            "weights": (Option(str), ""),
            "tap_layers": (Option(list, item=str, min_items=1, nullable=True), None),
        }
    ),
    example="resnet50",
)


def parse_explainers(
    table: Any, source: str, name_of: KeyNames | None = None
) -> list[ExplainerSpec]:
    if table is None:
        return list(DEFAULT_EXPLAINERS)
    entries = EXPLAINER_TABLES.check(table, "explainers", source, name_of or KeyNames())
    return [ExplainerSpec(e.label, e.name, e.options) for e in entries]


def parse_classifiers(
    table: Any, source: str, name_of: KeyNames | None = None
) -> list[ClassifierSpec]:
    if table is None:
        return []
    entries = CLASSIFIER_TABLES.check(table, "classifiers", source, name_of or KeyNames())
    return [ClassifierSpec(e.label, e.name, **e.options) for e in entries]
