"""The training configuration: one dataclass, its defaults (wsolevaluation's recipe) and hash.

Defaults follow PROTOCOLS.md sec. 7: the ``wsolevaluation`` recipe (``engine/recipes.py``), SGD
with Nesterov momentum 0.9, weight decay 1e-4, lr 0.01 decayed x0.1 every 30 epochs (as its
``adjust_learning_rate(epoch + 1)``), a total batch of 64, 10x for the recipe's head group,
fp32, Resize 256 then RandomCrop 224. ``batch_size`` is the TOTAL batch: under torchrun each of
the N processes takes batch_size / N.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from wsolbench.errors import WsolbenchError

# Fields that say where or how a run executes, not what it computes: two runs that differ
# only in these train the same model, so they share one config hash.
RUN_ONLY_FIELDS = frozenset(
    {"data", "image_root", "metadata_root", "out_dir", "workers", "device", "resume", "progress"}
)
LR_DECAYS = ("step", "multistep")


@dataclass
class TrainConfig:
    method: str = "cam"
    backbone: str = "tinyvgg"
    hparams: dict[str, Any] = field(default_factory=dict)
    # Data: either `data` (a root with images/ and metadata/{train,val,test}) or both roots.
    data: str | None = None
    image_root: str | None = None
    metadata_root: str | None = None
    dataset: str = ""  # a name recorded in results (the data folder's name when empty)
    num_classes: int | None = None  # None: 1 + the largest train label
    image_size: int = 224
    resize_size: int = 256
    large_feature_map: bool = False
    # Optimization: the recipe's parameter groups and schedule, with these values.
    recipe: str = "wsolevaluation"  # a name in wsolbench.engine.recipes.RECIPES
    epochs: int = 40
    batch_size: int = 64  # total over all processes
    lr: float = 0.01
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 1e-4
    head_lr_multiplier: float = 10.0
    lr_decay: str | None = None  # None: the recipe's own (wsolevaluation: step, spa: multistep)
    lr_step: int = 30
    lr_milestones: list[int] = field(default_factory=list)
    lr_gamma: float = 0.1
    # Initialization.
    pretrained: bool = False
    weights: str | None = None
    seed: int = 0
    # Execution (run-only: excluded from the hash).
    out_dir: str = "runs/train"
    workers: int = 4
    device: str = "auto"
    amp: bool = False  # bf16 autocast, on CUDA only (the references train in fp32)
    channels_last: bool = True  # on CUDA only
    resume: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        from wsolbench.engine.recipes import get_recipe

        schedule = get_recipe(self.recipe).schedule
        if self.lr_decay is not None and self.lr_decay not in LR_DECAYS:
            raise WsolbenchError(
                f"unknown lr decay '{self.lr_decay}' (choose from {', '.join(LR_DECAYS)})"
            )
        if self.lr_decay not in (None, schedule):
            raise WsolbenchError(
                f"recipe '{self.recipe}' decays the lr as '{schedule}' "
                f"({'every lr_step epochs' if schedule == 'step' else 'at lr_milestones'}), "
                f"not '{self.lr_decay}': leave lr_decay unset or choose the other recipe"
            )
        if schedule == "step" and self.lr_milestones:
            raise WsolbenchError(
                f"recipe '{self.recipe}' decays every lr_step epochs: lr_milestones "
                f"{self.lr_milestones} would be ignored (they belong to recipe 'spa')"
            )
        for name in ("epochs", "batch_size", "image_size", "resize_size", "lr_step"):
            if int(getattr(self, name)) < 1:
                raise WsolbenchError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.resize_size < self.image_size:
            raise WsolbenchError(
                f"resize_size ({self.resize_size}) must be >= image_size ({self.image_size})"
            )
        if self.data is None and (self.image_root is None or self.metadata_root is None):
            raise WsolbenchError("give the data root, or both the image root and metadata root")

    # -- locations ---------------------------------------------------------------------------
    def resolved_image_root(self) -> Path:
        return Path(self.image_root) if self.image_root else Path(self.data) / "images"

    def resolved_metadata_root(self) -> Path:
        return Path(self.metadata_root) if self.metadata_root else Path(self.data) / "metadata"

    def dataset_name(self) -> str:
        if self.dataset:
            return self.dataset
        root = Path(self.data) if self.data else Path(self.metadata_root)
        return root.resolve().name

    # -- serialization -----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise WsolbenchError(f"unknown training option(s): {', '.join(unknown)}")
        return cls(**values)

    def hashed_fields(self) -> dict[str, Any]:
        return {k: v for k, v in self.to_dict().items() if k not in RUN_ONLY_FIELDS}

    def config_hash(self) -> str:
        """sha256 of the canonical JSON of everything that determines the trained model."""
        canonical = json.dumps(self.hashed_fields(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def parse_hparam_value(text: str) -> Any:
    """`--hparam key=value` values: int, then float, then bool, else the string itself."""
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    return text


def parse_hparams(items: list[str], defaults: dict[str, Any], method: str) -> dict[str, Any]:
    """Parse `key=value` strings and check each key against the method's defaults."""
    parsed: dict[str, Any] = {}
    valid = ", ".join(sorted(defaults)) or "none"
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise WsolbenchError(f"--hparam expects key=value, got '{item}'")
        if key not in defaults:
            raise WsolbenchError(
                f"method '{method}' has no hyperparameter '{key}' (valid: {valid})"
            )
        parsed[key] = parse_hparam_value(value)
    return parsed


# Keyword arguments of create_method that are not hyperparameters of the method.
BUILD_ARGUMENTS = frozenset(
    {"backbone", "num_classes", "pretrained", "weights", "large_feature_map", "hparams", "inserts"}
)


def method_hparam_defaults(method: str) -> dict[str, Any]:
    from wsolbench.registry import METHODS

    return {k: v for k, v in METHODS.defaults(method).items() if k not in BUILD_ARGUMENTS}
