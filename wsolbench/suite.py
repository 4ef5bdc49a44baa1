"""Benchmark suites: a TOML file saying what to train, post-process and score.

A suite has the tables `[dataset]`, `[train]`, `[methods.<label>]`, `[postprocessors.<name>]`
and `[evaluation]` (see `wsolbench/suites/synthetic-default.toml`, the documented default).
Every value is checked here, so a typo fails before any training starts, with a message that
names the file and the key.
"""

from __future__ import annotations

import copy
import re
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from wsolbench.engine.config import (
    MAX_CLASSES,
    TrainConfig,
    check_method,
    check_postprocessor,
    field_option,
    suite_fields,
)
from wsolbench.errors import WsolbenchError
from wsolbench.explainers.suite import (
    ClassifierSpec,
    ExplainerSpec,
    parse_classifiers,
    parse_explainers,
)
from wsolbench.options import Option, check

BUILTIN_SUITES = (
    "synthetic-default",
    "synthetic-explainers",
    "synthetic-bas",
    "synthetic-transformers",
    "cub-vgg16",
    "cub-inceptionv3",
    "ilsvrc-vgg16",
    "ilsvrc-inceptionv3",
    "ilsvrc-inceptionv3-table3",
    "ilsvrc-resnet50",
    "cub-resnet50",
    "openimages-vgg16",
    "openimages-inceptionv3",
    "openimages-resnet50",
    "ilsvrc-classifiers",
    "bas-cub-vgg16",
    "bas-cub-resnet50",
    "bas-cub-inceptionv3",
    "bas-cub-mobilenetv1",
    "bas-ilsvrc-vgg16",
    "bas-ilsvrc-resnet50",
    "bas-ilsvrc-inceptionv3",
    "bas-ilsvrc-mobilenetv1",
    "tscam-cub",
    "tscam-ilsvrc",
    "scm-cub",
    "scm-ilsvrc",
)

_STR, _BOOL = Option(str), Option(bool)
_POSITIVE = Option(int, low=1)
_PROBABILITY = Option(float, low=0, high=1)
# Allowed keys of [dataset] and [evaluation] with their Option and default; [train] is
# TrainConfig's (its fields marked `suite`). A missing key takes the default.
_SCHEMA: dict[str, dict[str, tuple[Option, Any]]] = {
    "dataset": {
        "kind": (Option(str, choices=("synthetic", "metadata")), "synthetic"),
        "root": (_STR, "data/synthetic"),
        "seed": (Option(int, low=0, high=2**32 - 1), 0),
        "image_size": (Option(int, low=1, high=4096), 224),
        "resize_size": (Option(int, low=1, high=4096), 256),
        "image_root": (_STR, ""),
        "metadata_root": (_STR, ""),
        "mask_root": (_STR, ""),
        "num_classes": (Option(int, low=0, high=MAX_CLASSES), 0),  # 0: 1 + the largest train label
        "synthetic": (Option(dict), {}),  # options of the synthetic generator (see _SYNTHETIC)
    },
    "evaluation": {
        "box_thresholds": (Option(list, low=0, high=1, min_items=1), [0.2]),
        # 1e-4 at least: every threshold costs a histogram bin per image (1e-6 needs GiBs).
        "cam_curve_interval": (Option(float, low=1e-4, high=1, high_open=True), 0.01),
        "iou_thresholds": (Option(list, low=0, high=100, low_open=True, min_items=1), [30, 50, 70]),
        "map_size": (Option(int, low=1, high=4096), 224),
        "ten_crop": (_BOOL, True),
        "overlay_images": (Option(int, low=0, high=64), 6),
        "batch_size": (Option(int, low=1, high=65536), 32),
    },
}
# The synthetic generator's options (wsolbench.data.synthetic.SynthConfig, but the seed).
_SYNTHETIC: dict[str, Option] = {
    "num_classes": Option(int, low=2, high=64),
    "image_size": Option(int, low=32, high=1024),
    "train_per_class": _POSITIVE,
    "val_per_class": _POSITIVE,
    "test_per_class": _POSITIVE,
    "multi_instance_prob": _PROBABILITY,
    "body_class_corr": _PROBABILITY,
    "distractor_blobs": Option(list, item=int, low=0, high=16),
    "fake_part_prob": _PROBABILITY,
    "size_jitter": _BOOL,
}
# Suite names and method labels become folder names: one path component, no surprises.
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,99}")


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

    def train_config(
        self, spec: MethodSpec, names: dict[str, str] | None = None, **run: Any
    ) -> TrainConfig:
        """The TrainConfig of one method: the suite's [train] table, the dataset's sizes and
        options, the method's hyperparameters, and `run` (data roots, out_dir, device, ...);
        errors name `names[field]` (the suite's keys)."""
        ds = self.dataset
        paths = {"image_root": ".", "metadata_root": "."}  # not hashed: placeholders until known
        return TrainConfig.checked(
            {
                **self.train,
                **paths,
                "method": spec.method,
                "hparams": dict(spec.hparams),
                "image_size": ds["image_size"],
                "resize_size": ds["resize_size"],
                "num_classes": ds["num_classes"] or None,
                "dataset_options": dataset_identity(ds),
                **run,
            },
            names,
            self.source,
        )

    def run_hash(self, spec: MethodSpec, **run: Any) -> str:
        """The method's configuration hash (TrainConfig.config_hash): cache key and provenance."""
        return self.train_config(spec, **run).config_hash()


def config_hash(config: dict[str, Any]) -> str:
    """A short hash of a JSON-able dict (the cached scores' key)."""
    import hashlib
    import json

    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def dataset_identity(dataset: dict[str, Any]) -> dict[str, Any]:
    """The [dataset] values that change what is trained on; folders are not among them."""
    where = (
        "root",
        "image_root",
        "metadata_root",
        "mask_root",
        "image_size",
        "resize_size",
        "num_classes",
    )
    return {k: v for k, v in dataset.items() if k not in where}


def load_suite(name_or_path: str | Path | None = None, overrides: list[str] = ()) -> Suite:
    """Load a built-in suite by name or a TOML file by path, then apply `section.key=value` overrides."""
    name_or_path = name_or_path or "synthetic-default"
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise WsolbenchError("suite file not found", path)
        try:
            text, source = path.read_text(encoding="utf-8"), str(path)
        except UnicodeDecodeError as error:
            raise WsolbenchError(
                f"suite file is not UTF-8 text (byte {error.start})", path
            ) from None
        except OSError as error:
            raise WsolbenchError(
                f"cannot read suite file: {error.strerror or error}", path
            ) from None
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
    origins = {}
    for override in overrides:
        origins[_apply_override(raw, override, source)] = override
    suite = parse_suite(raw, source, origins)
    suite.overrides = tuple(overrides)
    return suite


def _apply_override(raw: dict[str, Any], override: str, source: str) -> str:
    """Apply one `--set section.key=value`; returns the dotted key."""
    key, sep, value = override.partition("=")
    key = key.strip()
    if not sep or "." not in key or any(not part for part in key.split(".")):
        raise WsolbenchError(f"--set {override}: expected section.key=value")
    try:
        parsed = tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value  # a bare word is a string
    *parents, leaf = key.split(".")
    node = raw
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise WsolbenchError(f"--set {override}: '{part}' is not a table", source)
    node[leaf] = parsed
    return key


class _Names:
    """Names keys in errors: `train.lr`, or `--set train.lr=-1` when an override set it."""

    def __init__(self, origins: dict[str, str]):
        self.origins = origins

    def __call__(self, key: str) -> str:
        for prefix in (key, key.rsplit(".", 1)[0]):
            if prefix in self.origins:
                return f"{key} (from --set {self.origins[prefix]})"
        return key


def parse_suite(
    raw: dict[str, Any], source: str = "<suite>", origins: dict[str, str] | None = None
) -> Suite:
    raw = copy.deepcopy(raw)
    name_of = _Names(origins or {})
    known = {
        "name",
        "description",
        "dataset",
        "train",
        "methods",
        "postprocessors",
        "evaluation",
        "explainers",
        "classifiers",
    }
    for key in raw:
        if key not in known:
            raise WsolbenchError(
                f"unknown top-level key '{key}' (expected one of {sorted(known)})", source
            )
    sections = {
        section: _check_section(raw.get(section, {}), section, schema, source, name_of)
        for section, schema in (
            ("dataset", _SCHEMA["dataset"]),
            ("train", _train_schema()),
            ("evaluation", _SCHEMA["evaluation"]),
        )
    }
    dataset = sections["dataset"]
    if dataset["kind"] == "metadata":
        for key in ("image_root", "metadata_root"):
            if not dataset[key]:
                raise WsolbenchError(
                    f"dataset.{key} is required when dataset.kind = 'metadata'", source
                )
    dataset["synthetic"] = _check_synthetic(dataset["synthetic"], source, name_of)
    name = _safe_name(raw.get("name"), name_of("name"), source)
    if not isinstance(raw.get("description", ""), str):
        raise WsolbenchError(f"{name_of('description')} must be a string", source)
    suite = Suite(
        name=name,
        description=str(raw.get("description", "")),
        dataset=dataset,
        train=sections["train"],
        # A suite of classifiers only (the zero-training rows) trains nothing.
        methods=[]
        if raw.get("classifiers") and not raw.get("methods")
        else _parse_methods(raw.get("methods"), source, name_of),
        postprocessors=_parse_postprocessors(raw.get("postprocessors"), source, name_of),
        evaluation=sections["evaluation"],
        source=source,
        explainers=parse_explainers(raw.get("explainers"), source),
        classifiers=parse_classifiers(raw.get("classifiers"), source),
    )
    # The whole training configuration, checked as TrainConfig checks it (cross-field rules).
    train_names = {key: name_of(f"train.{key}") for key in suite.train} | {
        "image_size": name_of("dataset.image_size"),
        "resize_size": name_of("dataset.resize_size"),
    }
    for spec in suite.methods:
        config = suite.train_config(spec, train_names)
        spec.hparams = check_method(
            spec.method,
            config.backbone,
            spec.hparams,
            name_of(f"methods.{spec.label}"),
            source,
            config.large_feature_map,
            keys=(name_of(f"methods.{spec.label}.method"), name_of("train.backbone")),
        )
    return suite


def _train_schema() -> dict[str, tuple[Option, Any]]:
    return {key: (field_option(key), default) for key, default in suite_fields().items()}


def _check_section(table: Any, section: str, schema, source: str, name_of) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise WsolbenchError(f"{name_of(section)}: [{section}] must be a table", source)
    for key in table:
        if key not in schema:
            raise WsolbenchError(
                f"unknown key '{name_of(f'{section}.{key}')}' (valid: {', '.join(schema)})", source
            )
    return {
        key: check(table.get(key, default), option, name_of(f"{section}.{key}"), source)
        for key, (option, default) in schema.items()
    }


def _check_synthetic(table: dict[str, Any], source: str, name_of) -> dict[str, Any]:
    checked = {}
    for key, value in table.items():
        if key not in _SYNTHETIC:
            raise WsolbenchError(
                f"unknown key '{name_of(f'dataset.synthetic.{key}')}' "
                f"(valid: {', '.join(_SYNTHETIC)})",
                source,
            )
        checked[key] = check(value, _SYNTHETIC[key], name_of(f"dataset.synthetic.{key}"), source)
    return checked


def _safe_name(value: Any, key: str, source: str) -> str:
    """A suite name or method label: it names a folder, so one plain path component."""
    if not isinstance(value, str) or not SAFE_NAME.fullmatch(value):
        raise WsolbenchError(
            f"{key} = {value!r} is not allowed: expected a folder name of letters, digits and . _ + - "
            "(starting with a letter or digit, at most 100 characters)",
            source,
        )
    return value


def _parse_methods(table: Any, source: str, name_of) -> list[MethodSpec]:
    if not isinstance(table, dict) or not table:
        raise WsolbenchError("[methods] must list at least one method, e.g. [methods.cam]", source)
    specs = []
    for label, options in table.items():
        key = name_of(f"methods.{label}")
        _safe_name(label, f"method label {key}", source)
        if not isinstance(options, dict):
            raise WsolbenchError(f"[{key}] must be a table", source)
        options = dict(options)
        method = options.pop("method", label)
        if not isinstance(method, str):
            raise WsolbenchError(
                f"{name_of(f'methods.{label}.method')} must be a method name", source
            )
        specs.append(MethodSpec(label=label, method=method, hparams=options))
    return specs


def _parse_postprocessors(table: Any, source: str, name_of) -> dict[str, dict[str, Any]]:
    table = {"none": {}} if table is None else table
    if not isinstance(table, dict) or not table:
        raise WsolbenchError(
            "[postprocessors] must name at least one (e.g. [postprocessors.none])", source
        )
    from wsolbench.registry import POSTPROCESSORS

    parsed = {}
    for name, options in table.items():
        key = name_of(f"postprocessors.{name}")
        registered = "identity" if name == "none" else name
        if registered not in POSTPROCESSORS.names():
            raise WsolbenchError(
                f"{key}: unknown post-processor (available: none, "
                f"{', '.join(n for n in POSTPROCESSORS.names() if n != 'identity')})",
                source,
            )
        if not isinstance(options, dict):
            raise WsolbenchError(f"[{key}] must be a table", source)
        parsed[name] = check_postprocessor(registered, dict(options), key, source)
    return parsed
