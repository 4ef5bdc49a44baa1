"""Benchmark suites: a TOML file saying what to train, post-process and score.

A suite has the tables `[dataset]`, `[train]`, `[methods.<label>]`, `[postprocessors.<name>]`
and `[evaluation]` (see `wsolbench/suites/synthetic-default.toml`, the documented default).
Every value is checked here, so a typo fails before any training starts, with a message that
names the file and the key.
"""
from __future__ import annotations

import copy
import hashlib
import json
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from wsolbench.errors import WsolbenchError
from wsolbench.explainers.suite import (
    ClassifierSpec,
    ExplainerSpec,
    parse_classifiers,
    parse_explainers,
)
from wsolbench.registry import METHODS, POSTPROCESSORS

BUILTIN_SUITES = (
    "synthetic-default", "synthetic-explainers", "cub-vgg16", "cub-inceptionv3", "ilsvrc-vgg16", "ilsvrc-classifiers",
)

# Allowed keys with their types and defaults; a missing key takes the default.
_SCHEMA: dict[str, dict[str, tuple[type | tuple[type, ...], Any]]] = {
    "dataset": {
        "kind": (str, "synthetic"),
        "root": (str, "data/synthetic"),
        "seed": (int, 0),
        "image_size": (int, 224),
        "resize_size": (int, 256),
        "image_root": (str, ""),
        "metadata_root": (str, ""),
        "mask_root": (str, ""),
        "num_classes": (int, 0),
        "synthetic": (dict, {}),  # options of the synthetic generator (num_classes, test_per_class, ...)
    },
    "train": {
        "recipe": (str, "wsolevaluation"),  # wsolbench.engine.recipes: "wsolevaluation" | "spa"
        "backbone": (str, "vgg16"),
        "pretrained": (bool, True),
        "weights": (str, ""),
        "large_feature_map": (bool, False),
        "epochs": (int, 10),
        "batch_size": (int, 64),  # the total batch, divided over torchrun's processes
        "lr": ((int, float), 0.01),
        "lr_decay": (str, ""),  # "": the recipe's own form
        "lr_step": (int, 30),
        "lr_milestones": (list, []),
        "weight_decay": ((int, float), 1e-4),
        "head_lr_multiplier": ((int, float), 10.0),
        "seed": (int, 0),
        "workers": (int, 0),
        "amp": (bool, False),  # bf16 autocast on CUDA; reproductions train in fp32
    },
    "evaluation": {
        "box_thresholds": (list, [0.2]),
        "cam_curve_interval": ((int, float), 0.01),
        "iou_thresholds": (list, [30, 50, 70]),
        "map_size": (int, 224),
        "ten_crop": (bool, True),
        "overlay_images": (int, 6),
        "batch_size": (int, 32),
    },
}
_DATASET_KINDS = ("synthetic", "metadata")
_LR_DECAYS = ("step", "multistep")


@dataclass
class MethodSpec:
    label: str  # the leaderboard's name for this trained model
    method: str  # the registered method
    hparams: dict[str, Any] = field(default_factory=dict)


@dataclass
class Suite:
    name: str
    description: str
    dataset: dict[str, Any]
    train: dict[str, Any]
    methods: list[MethodSpec]
    postprocessors: dict[str, dict[str, Any]]
    evaluation: dict[str, Any]
    source: str = "<built-in>"
    overrides: tuple[str, ...] = ()
    explainers: list[ExplainerSpec] = field(default_factory=lambda: parse_explainers(None, ""))
    classifiers: list[ClassifierSpec] = field(default_factory=list)  # scored as they are, untrained

    def run_config(self, spec: MethodSpec) -> dict[str, Any]:
        """Everything that determines one trained model: its cache key."""
        return {
            "dataset": {k: v for k, v in self.dataset.items()},
            "train": self.train,
            "method": spec.method,
            "hparams": spec.hparams,
        }

    def run_hash(self, spec: MethodSpec) -> str:
        return config_hash(self.run_config(spec))


def config_hash(config: dict[str, Any]) -> str:
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def load_suite(name_or_path: str | Path | None = None, overrides: list[str] = ()) -> Suite:
    """Load a built-in suite by name or a TOML file by path, then apply `section.key=value` overrides."""
    name_or_path = name_or_path or "synthetic-default"
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise WsolbenchError("suite file not found", path)
        text, source = path.read_text(encoding="utf-8"), str(path)
    elif str(name_or_path) in BUILTIN_SUITES:
        text = resources.files("wsolbench.suites").joinpath(f"{name_or_path}.toml").read_text()
        source = f"<built-in suite {name_or_path}>"
    else:
        raise WsolbenchError(
            f"unknown suite '{name_or_path}' (built-in: {', '.join(BUILTIN_SUITES)}; or a .toml path)"
        )
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise WsolbenchError(f"invalid TOML: {error}", source) from None
    for override in overrides:
        _apply_override(raw, override, source)
    suite = parse_suite(raw, source)
    suite.overrides = tuple(overrides)
    return suite


def _apply_override(raw: dict[str, Any], override: str, source: str) -> None:
    key, sep, value = override.partition("=")
    if not sep or "." not in key:
        raise WsolbenchError(f"override '{override}' must look like section.key=value")
    try:
        parsed = tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value  # a bare word is a string
    *parents, leaf = key.split(".")
    node = raw
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise WsolbenchError(f"override '{override}': '{part}' is not a table", source)
    node[leaf] = parsed


def parse_suite(raw: dict[str, Any], source: str = "<suite>") -> Suite:
    raw = copy.deepcopy(raw)
    known = {"name", "description", "dataset", "train", "methods", "postprocessors", "evaluation",
             "explainers", "classifiers"}
    for key in raw:
        if key not in known:
            raise WsolbenchError(f"unknown top-level key '{key}' (expected one of {sorted(known)})", source)
    sections = {name: _check_section(raw.get(name, {}), name, source) for name in _SCHEMA}
    if sections["dataset"]["kind"] not in _DATASET_KINDS:
        raise WsolbenchError(f"dataset.kind must be one of {_DATASET_KINDS}", source)
    if sections["dataset"]["kind"] == "metadata":
        for key in ("image_root", "metadata_root"):
            if not sections["dataset"][key]:
                raise WsolbenchError(f"dataset.{key} is required when dataset.kind = 'metadata'", source)
    if sections["train"]["lr_decay"] not in ("",) + _LR_DECAYS:
        raise WsolbenchError(f"train.lr_decay must be one of {_LR_DECAYS}", source)
    _check_recipe(sections["train"], source)
    for key in ("epochs", "batch_size"):
        if sections["train"][key] < 1:
            raise WsolbenchError(f"train.{key} must be >= 1", source)
    _check_numbers(sections["evaluation"]["box_thresholds"], "evaluation.box_thresholds", source, 0, 1)
    _check_numbers(sections["evaluation"]["iou_thresholds"], "evaluation.iou_thresholds", source, 0, 100)
    if not 0 < sections["evaluation"]["cam_curve_interval"] < 1:
        raise WsolbenchError("evaluation.cam_curve_interval must be in (0, 1)", source)
    return Suite(
        name=_require_str(raw, "name", source),
        description=str(raw.get("description", "")),
        dataset=sections["dataset"],
        train=sections["train"],
        # A suite of classifiers only (the zero-training rows) trains nothing.
        methods=[] if raw.get("classifiers") and not raw.get("methods") else _parse_methods(raw.get("methods"), source),
        postprocessors=_parse_postprocessors(raw.get("postprocessors"), source),
        evaluation=sections["evaluation"],
        source=source,
        explainers=parse_explainers(raw.get("explainers"), source),
        classifiers=parse_classifiers(raw.get("classifiers"), source),
    )


def _check_section(table: Any, name: str, source: str) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise WsolbenchError(f"[{name}] must be a table", source)
    schema = _SCHEMA[name]
    for key in table:
        if key not in schema:
            raise WsolbenchError(f"unknown key '{name}.{key}' (valid: {', '.join(schema)})", source)
    checked = {}
    for key, (kind, default) in schema.items():
        value = table.get(key, default)
        if isinstance(value, bool) and kind is not bool or not isinstance(value, kind):
            expected = kind.__name__ if isinstance(kind, type) else "number"
            raise WsolbenchError(f"{name}.{key} = {value!r} is not a {expected}", source)
        checked[key] = value
    return checked


def _check_recipe(train: dict[str, Any], source: str) -> None:
    from wsolbench.engine.recipes import RECIPES

    if train["recipe"] not in RECIPES:
        raise WsolbenchError(f"train.recipe must be one of {tuple(RECIPES)}, got {train['recipe']!r}", source)
    schedule = RECIPES[train["recipe"]].schedule
    if train["lr_decay"] not in ("", schedule):
        raise WsolbenchError(
            f"train.lr_decay = {train['lr_decay']!r} contradicts train.recipe = {train['recipe']!r} "
            f"(which decays as {schedule!r}): remove train.lr_decay",
            source,
        )
    if schedule == "step" and train["lr_milestones"]:
        raise WsolbenchError(
            f"train.lr_milestones is for recipe 'spa'; recipe {train['recipe']!r} decays every train.lr_step epochs",
            source,
        )


def _check_numbers(values: list, key: str, source: str, low: float, high: float) -> None:
    if not values or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and low <= v <= high for v in values):
        raise WsolbenchError(f"{key} must be a non-empty list of numbers in [{low}, {high}]", source)


def _require_str(raw: dict[str, Any], key: str, source: str) -> str:
    if not isinstance(raw.get(key), str) or not raw[key]:
        raise WsolbenchError(f"'{key}' must be a non-empty string", source)
    return raw[key]


def _parse_methods(table: Any, source: str) -> list[MethodSpec]:
    if not isinstance(table, dict) or not table:
        raise WsolbenchError("[methods] must list at least one method, e.g. [methods.cam]", source)
    specs = []
    for label, options in table.items():
        if not isinstance(options, dict):
            raise WsolbenchError(f"[methods.{label}] must be a table", source)
        options = dict(options)
        method = options.pop("method", label)
        if method not in METHODS.names():
            raise WsolbenchError(
                f"methods.{label}: unknown method '{method}' (available: {', '.join(METHODS.names())})", source
            )
        valid = METHODS.defaults(method)
        for key in options:
            if key not in valid:
                raise WsolbenchError(
                    f"methods.{label}: unknown hyperparameter '{key}' of {method} "
                    f"(valid: {', '.join(sorted(valid))})",
                    source,
                )
        specs.append(MethodSpec(label=label, method=method, hparams=options))
    return specs


def _parse_postprocessors(table: Any, source: str) -> dict[str, dict[str, Any]]:
    table = {"none": {}} if table is None else table
    if not isinstance(table, dict) or not table:
        raise WsolbenchError("[postprocessors] must name at least one (e.g. [postprocessors.none])", source)
    parsed = {}
    for name, options in table.items():
        registered = "identity" if name == "none" else name
        if registered not in POSTPROCESSORS.names():
            raise WsolbenchError(
                f"postprocessors.{name}: unknown post-processor (available: none, "
                f"{', '.join(n for n in POSTPROCESSORS.names() if n != 'identity')})",
                source,
            )
        valid = POSTPROCESSORS.defaults(registered)
        for key in options:
            if key not in valid:
                raise WsolbenchError(
                    f"postprocessors.{name}: unknown option '{key}' (valid: {', '.join(sorted(valid))})", source
                )
        parsed[name] = dict(options)
    return parsed
