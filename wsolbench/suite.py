"""Benchmark suites: a TOML file saying what to train, post-process and score.

A suite has the tables `[dataset]`, `[train]`, `[methods.<label>]`, `[postprocessors.<name>]`,
`[evaluation]` and optionally `[explainers.<label>]` and `[classifiers.<label>]` (see
`wsolbench/suites/synthetic-default.toml`, the documented default). Every table is checked by
the one schema mechanism (`wsolbench.schema`) when the suite is read, so a typo fails before any
training starts, with a message that names the file and the key.
"""

from __future__ import annotations

import copy
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from wsolbench import defaults
from wsolbench.engine.config import (
    MAX_CLASSES,
    MAX_IMAGE_SIZE,
    TrainConfig,
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
from wsolbench.names import check_label
from wsolbench.options import Option
from wsolbench.registry import DEFAULT_PROTOCOLS, check_method
from wsolbench.schema import Entries, KeyNames, Keys

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
_SIZE = Option(int, low=1, high=MAX_IMAGE_SIZE)
DATASET_KINDS = ("synthetic", "metadata")
DATASET = Keys(
    {
        # None: synthetic when no folder is named; else detected from dataset.root's content.
        "kind": (Option(str, choices=DATASET_KINDS, nullable=True), None),
        "root": (_STR, "data/synthetic"),
        "seed": (Option(int, low=0, high=2**32 - 1), 0),
        "image_size": (_SIZE, 224),
        "resize_size": (_SIZE, 256),
        "image_root": (_STR, ""),
        "metadata_root": (_STR, ""),
        "mask_root": (_STR, ""),
        # CUB: whose splits and boxes the metadata must have ("": any); docs/protocols.md sec. 1
        "metadata_style": (Option(str, choices=("", "wsolevaluation", "spa")), ""),
        "num_classes": (Option(int, low=0, high=MAX_CLASSES), 0),  # 0: 1 + the largest train label
        "synthetic": (Option(dict), {}),  # options of the synthetic generator (SYNTHETIC)
    }
)
# The protocols' settings default to their constructors' (wsolbench.defaults).
EVALUATION = Keys(
    {
        "box_thresholds": (Option(list, low=0, high=1, min_items=1), list(defaults.BOX_THRESHOLDS)),
        # 1e-4 at least: every threshold costs a histogram bin per image (1e-6 needs GiBs).
        "cam_curve_interval": (
            Option(float, low=1e-4, high=1, high_open=True),
            defaults.CAM_CURVE_INTERVAL,
        ),
        "iou_thresholds": (
            Option(list, low=0, high=100, low_open=True, min_items=1),
            list(defaults.IOU_THRESHOLDS),
        ),
        "map_size": (_SIZE, defaults.MAP_SIZE),
        # The families' protocols (tscam, scm, bas): whose released configuration gives their
        # box threshold and conventions, and a fixed box threshold instead of that dataset's
        # (None: the family's own; `box_thresholds` above is the spa protocol's list).
        "dataset": (Option(str, choices=defaults.FAMILY_DATASETS), defaults.FAMILY_DATASET),
        "box_threshold": (Option(float, low=0, high=1, high_open=True, nullable=True), None),
        "ten_crop": (_BOOL, True),
        "overlay_images": (Option(int, low=0, high=64), 6),
        "batch_size": (Option(int, low=1, high=65536), defaults.EVAL_BATCH_SIZE),
        # Scored under these protocols (names of `wsolbench list protocols`); with two that
        # measure one quantity, the leaderboard gets the cross-protocol table.
        "protocols": (Option(list, item=str, min_items=1), list(DEFAULT_PROTOCOLS)),
    }
)
# The synthetic generator's options (wsolbench.data.synthetic.SynthConfig, but the seed).
SYNTHETIC = Keys(
    {
        "num_classes": (Option(int, low=2, high=64), None),
        "image_size": (Option(int, low=32, high=1024), None),
        "train_per_class": (Option(int, low=1, high=100_000), None),
        "val_per_class": (Option(int, low=1, high=100_000), None),
        "test_per_class": (Option(int, low=1, high=100_000), None),
        "multi_instance_prob": (_PROBABILITY, None),
        "body_class_corr": (_PROBABILITY, None),
        "distractor_blobs": (
            Option(list, item=int, low=0, high=16, min_items=2, max_items=2),
            None,
        ),
        "fake_part_prob": (_PROBABILITY, None),
        "size_jitter": (_BOOL, None),
    }
)
# `checkpoint`: a wsolbench checkpoint (`wsolbench checkpoint import` of released weights) that
# the bench scores as it is instead of training this entry ("": trained by the suite).
METHOD_TABLES = Entries(
    "method",
    select="method",
    what="hyperparameter",
    example="cam",
    extra=Keys({"checkpoint": (Option(str), "")}),
)
# A post-processor's label is its registered name (the results' `postprocessor` column).
POSTPROCESSOR_TABLES = Entries("post-processor", example="none")
# Free text a suite describes itself with (`wsolbench list suites`, `bench --dry-run`).
TEXT_KEYS = ("description", "reproduces", "cost")
TOP_LEVEL = (
    "name",
    *TEXT_KEYS,
    "dataset",
    "train",
    "methods",
    "postprocessors",
    "evaluation",
    "explainers",
    "classifiers",
)


def train_keys() -> Keys:
    """`[train]`: the TrainConfig fields marked `suite`, with their Options and defaults."""
    return Keys({key: (field_option(key), default) for key, default in suite_fields().items()})


@dataclass
class MethodSpec:
    label: str  # the leaderboard's name for this trained model
    method: str  # the registered method
    hparams: dict[str, Any] = field(default_factory=dict)
    checkpoint: str = ""  # a wsolbench checkpoint scored as it is, nothing trained ("": train)


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
    reproduces: str = ""  # the published table it reproduces
    cost: str = ""  # its expected cost, e.g. "~1.6 GPU-hours (V100-class, estimate)"

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

    def scoring_settings(self, postprocessor: str | None = None) -> dict[str, Any]:
        """What the bench scores a model of this suite with, for the commands' ``--suite``
        (``infer``, ``evaluate``, ``scg figures``): the post-processor's options (its
        ``[postprocessors.<name>]`` table), the network input size, the map size, batch size and
        the MaxBoxAccV2 settings. A post-processor the suite does not use is an error."""
        from wsolbench.registry import POSTPROCESSORS

        options = {}
        if postprocessor is not None:
            name = POSTPROCESSORS.canonical(postprocessor)
            if name not in self.postprocessors:
                raise WsolbenchError(
                    f"--suite {self.name} has no [postprocessors.{name}] "
                    f"(it has: {', '.join(self.postprocessors)})",
                    self.source,
                )
            options = dict(self.postprocessors[name])
        evaluation = self.evaluation
        return {
            "pp_options": options,
            "image_size": self.dataset["image_size"],
            "map_size": evaluation["map_size"],
            "batch_size": evaluation["batch_size"],
            "cam_curve_interval": evaluation["cam_curve_interval"],
            "iou_thresholds": list(evaluation["iou_thresholds"]),
        }

    def run_hash(self, spec: MethodSpec, **run: Any) -> str:
        """The method's configuration hash (TrainConfig.config_hash): cache key and provenance."""
        return self.train_config(spec, **run).config_hash()


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
        "metadata_style",  # checks the metadata; train is all training images in every style
    )
    return {k: v for k, v in dataset.items() if k not in where}


def load_suite(name_or_path: str | Path | None = None, overrides: list[str] = ()) -> Suite:
    """Load a built-in suite by name or a TOML file by path, then apply `section.key=value` overrides."""
    raw, source = read_suite_table(name_or_path)
    origins = {}
    for override in overrides:
        origins[_apply_override(raw, override, source)] = override
    suite = parse_suite(raw, source, origins)
    suite.overrides = tuple(overrides)
    return suite


def read_suite_table(name_or_path: str | Path | None = None) -> tuple[dict[str, Any], str]:
    """A suite's TOML table as written (unchecked: `parse_suite` checks it) and its source."""
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
        return tomllib.loads(text), source
    except tomllib.TOMLDecodeError as error:
        raise WsolbenchError(f"invalid TOML: {error}", source) from None
    except RecursionError:
        raise WsolbenchError("invalid TOML: nested too deeply", source) from None


def suite_summary(name: str) -> dict[str, str]:
    """What `wsolbench list suites` shows of a built-in suite, read from its own fields
    without building anything (every built-in suite is checked by the tests): name, the table
    it reproduces, dataset, backbone with methods, cost."""
    raw, _ = read_suite_table(name)
    dataset = raw.get("dataset", {})
    root = dataset.get("metadata_root", "")
    methods = [*raw.get("methods", {}), *raw.get("classifiers", {})]
    backbone = raw.get("train", {}).get("backbone", "")
    return {
        "name": str(raw.get("name", name)),
        "reproduces": str(raw.get("reproduces", "")),
        "dataset": Path(root).name if root else "synthetic",
        "methods": (f"{backbone}: " if backbone and raw.get("methods") else "")
        + ", ".join(methods),
        "cost": str(raw.get("cost", "")),
    }


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
    except RecursionError:
        raise WsolbenchError(f"--set {override[:60]}: nested too deeply") from None
    *parents, leaf = key.split(".")
    node = raw
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise WsolbenchError(f"--set {override}: '{part}' is not a table", source)
    node[leaf] = parsed
    return key


def parse_suite(
    raw: dict[str, Any], source: str = "<suite>", origins: dict[str, str] | None = None
) -> Suite:
    """A Suite from a parsed TOML table: every table checked by its schema, the dataset's
    kind resolved, every method's whole training configuration checked as TrainConfig
    checks it (cross-field rules)."""
    raw = copy.deepcopy(raw)
    name_of = KeyNames(origins)
    for key in raw:
        if key not in TOP_LEVEL:
            raise WsolbenchError(
                f"unknown top-level key '{name_of(key)}' (expected one of {', '.join(TOP_LEVEL)})",
                source,
            )
    dataset = DATASET.check(raw.get("dataset", {}), "dataset", source, name_of)
    train = train_keys().check(raw.get("train", {}), "train", source, name_of)
    evaluation = EVALUATION.check(raw.get("evaluation", {}), "evaluation", source, name_of)
    dataset["synthetic"] = SYNTHETIC.check(
        dataset["synthetic"], "dataset.synthetic", source, name_of, defaults=False
    )
    dataset["kind"] = _dataset_kind(dataset, raw.get("dataset", {}), source, name_of)
    if dataset["kind"] == "metadata":
        for key in ("image_root", "metadata_root"):
            if not dataset[key]:
                raise WsolbenchError(
                    f"{name_of(f'dataset.{key}')} is required when dataset.kind = 'metadata'",
                    source,
                )
    _check_protocols(evaluation["protocols"], name_of("evaluation.protocols"), source)
    name = check_label(raw.get("name"), name_of("name"), source)
    for key in TEXT_KEYS:
        if not isinstance(raw.get(key, ""), str):
            raise WsolbenchError(f"{name_of(key)} must be a string", source)
    # A method's hyperparameters are probed on the suite's backbone.
    build = {
        "backbone": train["backbone"],
        "num_classes": 2,
        "pretrained": False,
        "weights": None,
        "large_feature_map": train["large_feature_map"],
    }
    # A suite of classifiers only (the zero-training rows) trains nothing.
    only_classifiers = raw.get("classifiers") and not raw.get("methods")
    methods = (
        []
        if only_classifiers
        else METHOD_TABLES.check(raw.get("methods"), "methods", source, name_of, build)
    )
    postprocessors = POSTPROCESSOR_TABLES.check(
        raw.get("postprocessors", {"none": {}}), "postprocessors", source, name_of
    )
    suite = Suite(
        name=name,
        description=str(raw.get("description", "")),
        reproduces=str(raw.get("reproduces", "")),
        cost=str(raw.get("cost", "")),
        dataset=dataset,
        train=train,
        methods=[MethodSpec(e.label, e.name, e.options, e.extra["checkpoint"]) for e in methods],
        postprocessors={e.name: e.options for e in postprocessors},
        evaluation=evaluation,
        source=source,
        explainers=parse_explainers(raw.get("explainers"), source, name_of),
        classifiers=parse_classifiers(raw.get("classifiers"), source, name_of),
    )
    labels = [spec.label for spec in suite.methods] + [c.label for c in suite.classifiers]
    duplicate = next((label for label in labels if labels.count(label) > 1), None)
    if duplicate is not None:
        raise WsolbenchError(
            f"'{duplicate}' labels both a method and a classifier: labels name run folders "
            "and leaderboard rows, so each must be unique",
            source,
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


def _dataset_kind(dataset: dict[str, Any], table: Any, source: str, name_of) -> str:
    """`dataset.kind`, never assumed where a folder is named: given, or `metadata` when its
    roots are given, or detected from `dataset.root`'s content (a synthetic benchmark that
    wsolbench made); the built-in synthetic benchmark when no folder is named at all."""
    if dataset["kind"] is not None:
        return dataset["kind"]
    if dataset["image_root"] or dataset["metadata_root"]:
        return "metadata"
    if "root" not in table:
        return "synthetic"
    from wsolbench.data.synthetic import is_synthetic_dataset

    if is_synthetic_dataset(dataset["root"]):
        return "synthetic"
    raise WsolbenchError(
        f"{name_of('dataset.kind')} is required: dataset.root = {dataset['root']!r} is not a "
        "synthetic benchmark wsolbench made; set kind = 'synthetic' to generate one there (an "
        "empty or new folder) or kind = 'metadata' with image_root and metadata_root",
        source,
    )


def _check_protocols(names: list[str], key: str, source: str) -> None:
    """Every name a registered protocol, none twice (one line naming the known ones)."""
    from wsolbench.registry import PROTOCOLS

    known = PROTOCOLS.names()
    for name in names:
        if name not in known:
            raise WsolbenchError(
                f"{key}: unknown protocol {name!r} (available: {', '.join(known)})", source
            )
    if len(set(names)) != len(names):
        raise WsolbenchError(f"{key}: a protocol is named twice", source)
