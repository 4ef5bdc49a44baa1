"""The training configuration: one dataclass, its defaults (wsolevaluation's recipe) and hash.

Defaults follow docs/protocols.md sec. 7: the ``wsolevaluation`` recipe (``engine/recipes.py``), SGD
with Nesterov momentum 0.9, weight decay 1e-4, lr 0.01 decayed x0.1 every 30 epochs (as its
``adjust_learning_rate(epoch + 1)``), a total batch of 64, 10x for the recipe's head group,
fp32, Resize 256 then RandomCrop 224. ``batch_size`` is the TOTAL batch: under torchrun each of
the N processes takes batch_size / N.

Each field also says its type and range, its help text, and whether it is a suite [train] key,
a `train` flag and part of the configuration hash: the suite schema, the CLI and the checks
all derive from this one dataclass.
"""

from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from wsolbench.engine.device import DEVICE_OPTION, device_type
from wsolbench.engine.workers import loader_workers
from wsolbench.errors import WsolbenchError
from wsolbench.identity import config_hash
from wsolbench.options import Option, check

LR_DECAYS = ("step", "multistep")
MAX_CLASSES = 100_000  # more is a typo (ILSVRC has 1,000), and would not fit in memory
MAX_IMAGE_SIZE = 4096  # pixels per side; more would not fit in memory (and is a typo)


def _field(
    default: Any,
    help: str,
    option: Option | None = None,
    *,
    suite: bool = True,
    hashed: bool = True,
    flag: bool = True,
    metavar: str | None = None,
) -> Any:
    """A TrainConfig field and what derives from it: `option` (its type and range), `help`
    (the `train` flag's help), `suite` (a key of a suite's [train] table), `hashed` (part of
    the run's identity), `flag` (a `train` CLI flag)."""
    meta = {
        "option": option,
        "help": help,
        "suite": suite,
        "hashed": hashed,
        "flag": flag,
        "metavar": metavar,
    }
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


_POSITIVE = Option(int, low=1)
_SIZE = Option(int, low=1, high=MAX_IMAGE_SIZE)


@dataclass
class TrainConfig:
    """Everything one training run needs. Checked on construction: a bad value raises a
    WsolbenchError naming the field (`checked(values, names)` names a suite key or a flag)."""

    method: str = _field(
        "cam",
        "registered method (`wsolbench list`)",
        Option(str, registry="method"),
        suite=False,
        metavar="NAME",
    )
    backbone: str = _field(
        "tinyvgg", "registered backbone", Option(str, registry="backbone"), metavar="NAME"
    )
    hparams: dict[str, Any] = _field(
        {}, "method hyperparameters", Option(dict), suite=False, flag=False
    )
    recipe: str = _field(
        "wsolevaluation",
        "optimizer, parameter groups and lr schedule of a reference: wsolevaluation "
        "(features 1x / rest 10x by its names, x0.1 every --lr-step epochs one epoch early as "
        "its adjust_learning_rate), spa or bas (SGD, weights 1x / biases 2x, head 10x / 20x, "
        "x0.1 at --lr-milestones), tscam or scm (AdamW, no decay on 1-D tensors, biases, "
        "pos_embed, cls_token; x0.1 at --lr-milestones)",
        Option(str, registry="recipe"),
        metavar="NAME",
    )
    # Data: either `data` (a root with images/ and metadata/{train,val,test}) or both roots.
    data: str | None = _field(
        None,
        "dataset root with images/ and metadata/{train,val,test} (the synthetic layout)",
        Option(str, nullable=True),
        suite=False,
        hashed=False,
        metavar="DIR",
    )
    image_root: str | None = _field(
        None,
        "image root of a real dataset (instead of --data)",
        Option(str, nullable=True),
        suite=False,
        hashed=False,
        metavar="DIR",
    )
    metadata_root: str | None = _field(
        None,
        "folder holding train/ val/ test/ metadata (instead of --data)",
        Option(str, nullable=True),
        suite=False,
        hashed=False,
        metavar="DIR",
    )
    dataset: str = _field(
        "",
        "dataset name recorded in results (default: the data folder's name)",
        Option(str),
        suite=False,
        metavar="NAME",
    )
    # How the data was made (a suite's [dataset] table, e.g. the synthetic generator's options).
    dataset_options: dict[str, Any] = _field(
        {}, "dataset options", Option(dict), suite=False, flag=False
    )
    num_classes: int | None = _field(
        None,
        "number of classes (default: 1 + largest train label, every class present)",
        Option(int, low=1, high=MAX_CLASSES, nullable=True),
        suite=False,
        metavar="N",
    )
    image_size: int = _field(224, "training crop size in pixels", _SIZE, suite=False, metavar="PX")
    resize_size: int = _field(
        256, "resize before the random crop", _SIZE, suite=False, metavar="PX"
    )
    large_feature_map: bool = _field(
        False, "wsolevaluation's large-feature-map backbone variant", Option(bool)
    )
    # Optimization (wsolevaluation recipe).
    epochs: int = _field(40, "epochs", Option(int, low=1, high=100_000), metavar="N")
    batch_size: int = _field(
        64,
        "TOTAL images per step; under torchrun each of the N processes takes N-th of it",
        Option(int, low=1, high=65536),
        metavar="N",
    )
    lr: float = _field(
        0.01, "backbone learning rate", Option(float, low=0, low_open=True), metavar="LR"
    )
    momentum: float = _field(
        0.9, "SGD momentum", Option(float, low=0, high=1, high_open=True), metavar="M"
    )
    nesterov: bool = _field(True, "Nesterov momentum", Option(bool))
    weight_decay: float = _field(1e-4, "weight decay", Option(float, low=0), metavar="WD")
    head_lr_multiplier: float = _field(
        10.0,
        "new layers' lr as a multiple of --lr",
        Option(float, low=0, low_open=True),
        metavar="X",
    )
    lr_decay: str | None = _field(
        None,
        "must match the recipe if given: step (wsolevaluation) every --lr-step "
        "epochs; multistep (spa) at --lr-milestones (default: the recipe's)",
        Option(str, choices=LR_DECAYS, nullable=True),
    )
    lr_step: int = _field(30, "epochs between decays for 'step'", _POSITIVE, metavar="N")
    lr_milestones: list[int] = _field(
        [],
        "decay epochs for 'multistep', comma-separated",
        Option(list, item=int, low=1),
        metavar="E1,E2",
    )
    lr_gamma: float = _field(
        0.1, "decay factor", Option(float, low=0, high=1, low_open=True), metavar="G"
    )
    # Initialization.
    pretrained: bool = _field(False, "start from torchvision's ImageNet weights", Option(bool))
    weights: str | None = _field(
        None,
        "backbone weights from a local state_dict file",
        Option(str, nullable=True),
        metavar="PATH",
    )
    seed: int = _field(
        0,
        "seed of weights, data order and augmentation",
        Option(int, low=0, high=2**63 - 1),
        metavar="N",
    )
    # Execution. The worker count changes the augmentation stream (each loading process has
    # its own RNG), so it is hashed; device and dtype enter the hash through `execution()`.
    workers: int = _field(
        4,
        "data-loading processes, at most one per CPU (part of the run's identity: it "
        "changes augmentation)",
        Option(int, low=0, high=256),
        metavar="N",
    )
    device: str = _field(
        "auto", "auto, cpu, cuda or cuda:N", DEVICE_OPTION, suite=False, hashed=False
    )
    amp: bool = _field(
        False, "bf16 autocast, CUDA only; the references train in fp32", Option(bool), hashed=False
    )
    channels_last: bool = _field(
        True, "channels-last memory format, CUDA only", Option(bool), hashed=False
    )
    out_dir: str = _field(
        "runs/train", "output folder", Option(str), suite=False, hashed=False, flag=False
    )
    resume: bool = _field(
        False, "continue from <out>/last.pt", Option(bool), suite=False, hashed=False, flag=False
    )
    overwrite: bool = _field(
        False,
        "replace a previous run in <out>",
        Option(bool),
        suite=False,
        hashed=False,
        flag=False,
    )
    progress: bool = _field(
        True, "progress bar", Option(bool), suite=False, hashed=False, flag=False
    )

    def __post_init__(self) -> None:
        self.check()

    @classmethod
    def checked(
        cls,
        values: dict[str, Any],
        names: dict[str, str] | None = None,
        source: str | Path | None = None,
    ) -> TrainConfig:
        """A TrainConfig from `values` (defaults for the rest), whose errors name `names[field]`
        (suite keys, flags) and `source` (a file)."""
        unknown = sorted(set(values) - {f.name for f in fields(cls)})
        if unknown:
            raise WsolbenchError(f"unknown training option(s): {', '.join(unknown)}", source)
        config = cls.__new__(cls)
        for f in fields(cls):
            setattr(config, f.name, values[f.name] if f.name in values else field_default(f))
        config.check(names, source)
        return config

    def check(self, names: dict[str, str] | None = None, source: str | Path | None = None) -> None:
        """Check every field; errors name `names[field]` (a suite key, a flag) or the field."""
        names = names or {}
        for f in fields(self):
            option = f.metadata.get("option")
            if option is not None:
                setattr(
                    self,
                    f.name,
                    check(getattr(self, f.name), option, names.get(f.name, f.name), source),
                )
        name = lambda field: names.get(field, field)  # noqa: E731 (the key, flag or field)
        from wsolbench.registry import RECIPES

        schedule = RECIPES.get(self.recipe).schedule
        if self.lr_decay not in (None, schedule):
            raise WsolbenchError(
                f"{name('recipe')} '{self.recipe}' decays the lr as '{schedule}' "
                f"({'every ' + name('lr_step') if schedule == 'step' else 'at ' + name('lr_milestones')}), "
                f"not {name('lr_decay')} '{self.lr_decay}': leave it unset or choose the other recipe",
                source,
            )
        if schedule == "step" and self.lr_milestones:
            raise WsolbenchError(
                f"{name('recipe')} '{self.recipe}' decays every {name('lr_step')} epochs: "
                f"{name('lr_milestones')} {self.lr_milestones} would be ignored (they belong to recipe 'spa')",
                source,
            )
        if self.resize_size < self.image_size:
            raise WsolbenchError(
                f"{names.get('resize_size', 'resize_size')} ({self.resize_size}) must be >= "
                f"{names.get('image_size', 'image_size')} ({self.image_size})",
                source,
            )
        if self.data is None and (self.image_root is None or self.metadata_root is None):
            raise WsolbenchError(
                "give the data root, or both the image root and metadata root", source
            )
        if self.resume and self.overwrite:
            raise WsolbenchError("resume and overwrite exclude each other", source)
        # The workers this machine runs (its augmentation stream): what the hash records.
        self.workers = loader_workers(self.workers)

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

    # -- identity ----------------------------------------------------------------------------
    def execution(self) -> dict[str, Any]:
        """What about the machine changes the numbers: device type, compute dtype, memory
        format and process count (recorded in checkpoints; a resume must match it)."""
        import os

        kind = device_type(self.device)
        on_cuda = kind == "cuda"
        return {
            "device": kind,
            "dtype": "bfloat16" if on_cuda and self.amp else "float32",
            "channels_last": on_cuda and self.channels_last,
            "world_size": int(os.environ.get("WORLD_SIZE", "1")),
        }

    # -- serialization -----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise WsolbenchError(f"unknown training option(s): {', '.join(unknown)}")
        return cls(**values)

    def hashed_fields(self) -> dict[str, Any]:
        values = {
            f.name: getattr(self, f.name) for f in fields(self) if f.metadata.get("hashed", True)
        }
        return {**values, "execution": self.execution()}

    def config_hash(self) -> str:
        """sha256 of the canonical JSON of everything that determines the trained model: the
        one configuration hash of checkpoints, run folders and result rows."""
        return config_hash(self.hashed_fields())


def suite_fields() -> dict[str, Any]:
    """A suite's [train] keys with their defaults (the TrainConfig fields marked `suite`)."""
    return {f.name: field_default(f) for f in fields(TrainConfig) if f.metadata["suite"]}


def field_option(name: str) -> Option:
    return next(f.metadata["option"] for f in fields(TrainConfig) if f.name == name)


def field_default(f) -> Any:
    return f.default_factory() if f.default is MISSING else f.default
