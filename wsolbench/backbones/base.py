"""Shared mechanics of every backbone: named taps, insertion points, weight loading.

A backbone maps images to ``(features, taps)``. ``taps`` holds named intermediate feature maps
(the two named in ``scg_taps`` are what SCG fuses). ``inserts`` maps an insertion-point name to a
module applied to the features right after that point (ADL uses this), so methods can change a
backbone without subclassing it.

``architecture_type`` is wsolevaluation's name for the variant of a family a method uses
(``cam`` for CAM/HaS/CutMix, ``adl``, ``acol``, ``spg``; ``bas`` for BAS's own networks, ``vit``
for the transformers): it picks the variant's pools (VGG's ACoL and SPG bodies differ), its
initialization, and the reference code's parameter names (``reference_names``). A backbone
lists the variants it builds in ``architecture_types``: asking for another is one error naming
them, so a method without a network on a backbone says so before anything is built. How each
method's head attaches to a family is also declared here (``cam_head``, ``acol_smoothing``,
``spg_layout``, ``bas_tap``), so the methods stay family-agnostic.

BAS (``architecture_type="bas"``) needs two more things of a backbone: ``bas_tap``, the tap its
localization head reads (the mid-level map at twice the features' resolution), and
``bas_late()``, the layers after that tap, which BAS runs a second time on erased features.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from wsolbench.errors import MissingWeights, WsolbenchError

# Keys of torchvision's full-model checkpoints that belong to the parts wsolevaluation drops
# (classifier heads, auxiliary heads, removed blocks): ignored when loading a backbone.
DROPPED_PREFIXES = ("classifier.", "fc.", "AuxLogits.", "Mixed_7")

# wsolevaluation's architecture types (config.py: has and cutmix use "cam"): what the CNN
# families build by default; BAS's networks ("bas") and the transformers ("vit") add their own.
ARCHITECTURE_TYPES = ("cam", "adl", "acol", "spg")


@dataclass(frozen=True)
class SpgLayout:
    """How wsolevaluation's SPG sits on a family (``VggSpg``, ``ResNetSpg``, ``InceptionSpg``).

    Head A is ``len(head_names) - 1`` conv3x3+ReLU layers of width ``hidden`` (none: the 1x1
    classifier sits on the backbone output), with dropout 0.5 around them when ``dropout``.
    B1 and B2 branch from the taps ``b1_tap`` / ``b2_tap`` (conv3x3 -> ``branch`` each, then a
    shared conv3x3 -> ``branch``, conv1x1 -> 1); C branches from head A's output (or the backbone
    output) with conv3x3 -> ``side``, conv1x1 -> 1. ``head_names``: the reference's names of
    head A's convolutions then of the classifier.
    """

    b1_tap: str
    b2_tap: str
    hidden: int
    branch: int
    side: int
    dropout: bool
    head_names: tuple[str, ...]


def initialize_weights(module: nn.Module, mode: str) -> None:
    """wsolevaluation's ``initialize_weights``: He (fan_out) or Xavier (uniform) convolutions,
    N(0, 0.01) linear layers, zero biases, BatchNorm 1 / 0. Mode ``normal`` is BAS's VGG16
    ``weight_init`` (BAS @ 54c395e, ``CUB/Model/vgg.py``): N(0, 0.02) convolution weights, their
    biases left at PyTorch's default."""
    for m in module.modules():
        if mode == "normal":
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, 0.02)
            continue
        if isinstance(m, nn.Conv2d):
            if mode == "xavier":
                nn.init.xavier_uniform_(m.weight)
            else:
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.01)
            nn.init.zeros_(m.bias)


class Backbone(nn.Module):
    """Base class: subclasses build their layers, then call ``self._check_inserts()``."""

    out_channels: int
    feature_stride: int
    scg_taps: tuple[str, str]
    insertion_points: tuple[str, ...]
    tap_channels: dict[str, int]  # channels of each tap (SPG builds side branches on them)
    # How wsolevaluation puts a CAM head on this family (read by the methods):
    # "conv_fc": conv3x3 -> head_width, ReLU, GAP, fc (VGG); "fc": GAP, fc (ResNet);
    # "class_conv": conv3x3, conv3x3 -> head_width, conv1x1 -> classes, GAP (Inception).
    cam_head: str = "conv_fc"
    # Width of the new convolutional layers (1024 in wsolevaluation and SPA).
    head_width: int = 1024
    # ACoL smooths the features with a 3x3 average pool before its classifiers (VGG only).
    acol_smoothing: bool = False
    spg_layout: SpgLayout
    # The variants this backbone builds (wsolevaluation's four by default).
    architecture_types: ClassVar[tuple[str, ...]] = ARCHITECTURE_TYPES
    # BAS: the tap its localization head reads (see the module docstring and ``bas_late``).
    bas_tap: str = ""
    # Keys of a weights file that belong to parts this family leaves out (beside DROPPED_PREFIXES).
    dropped_prefixes: tuple[str, ...] = ()
    # Whether ``large_feature_map=True`` builds a variant at half the stride (else an error).
    large_feature_map_variant: bool = True
    # wsolevaluation's init mode of the whole model per architecture type (heads included).
    init_modes: ClassVar[Mapping[str, str]] = {
        "cam": "he",
        "adl": "he",
        "acol": "xavier",
        "spg": "xavier",
        "bas": "xavier",  # BAS's initialize_weights(..., 'xavier') / _initialize_weights
    }

    def __init__(
        self, inserts: Mapping[str, nn.Module] | None = None, architecture_type: str = "cam"
    ):
        super().__init__()
        if architecture_type not in self.architecture_types:
            raise WsolbenchError(
                f"{type(self).__name__} has no '{architecture_type}' variant (it builds: "
                f"{', '.join(self.architecture_types)})"
            )
        self.architecture_type = architecture_type
        # A ModuleDict so that inserted modules move with .to() and appear in state_dict.
        self.inserts = nn.ModuleDict(dict(inserts or {}))

    @property
    def init_mode(self) -> str:
        return self.init_modes[self.architecture_type]

    def reference_names(self) -> dict[str, str]:
        """State-dict key here -> key of the same tensor in wsolevaluation's model of this
        architecture type (identity by default)."""
        return {key: key for key in self.state_dict()}

    def _check_inserts(self) -> None:
        unknown = sorted(set(self.inserts) - set(self.insertion_points))
        if unknown:
            raise WsolbenchError(
                f"{type(self).__name__}: unknown insertion point(s) {', '.join(unknown)} "
                f"(available: {', '.join(self.insertion_points)})"
            )

    def _insert(self, point: str, x: torch.Tensor) -> torch.Tensor:
        """Apply the module inserted at ``point`` (if any)."""
        module = self.inserts[point] if point in self.inserts else None
        return x if module is None else module(x)

    def weight_keys(self) -> set[str]:
        """State-dict keys a weights file must provide (inserted modules excluded)."""
        return {k for k in self.state_dict() if not k.startswith("inserts.")}

    def adapt_weights(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """A weights file's state in this backbone's names (as read by default)."""
        return state

    def bas_late(self) -> nn.Module:
        """BAS: the layers after ``bas_tap``, as one module (``bas`` variant only)."""
        raise WsolbenchError(f"{type(self).__name__} has no BAS variant")


def load_weights(
    backbone: Backbone,
    *,
    name: str,
    pretrained: bool,
    weights: str | Path | None,
    torchvision_weights: Any = None,
) -> dict[str, torch.Tensor] | None:
    """Load pretrained weights into ``backbone``: a local file wins over torchvision's API.

    ``torchvision_weights`` is a torchvision ``WeightsEnum`` member (None: the family has none).
    Returns the whole state read (heads included: ResNet keeps ImageNet's fc), None if none.
    """
    if weights is not None:
        state = backbone.adapt_weights(_read_weights_file(Path(weights)))
        _load_state(backbone, state, source=str(weights))
        return state
    if not pretrained:
        return None
    if torchvision_weights is None:
        raise MissingWeights(f"backbone '{name}' has no pretrained weights")
    try:
        state = torchvision_weights.get_state_dict(progress=False, check_hash=True)
    except Exception as error:  # offline, proxy, corrupted cache: all mean "no weights"
        raise MissingWeights(
            f"cannot get pretrained weights for backbone '{name}' ({type(error).__name__}: "
            f"{error})",
            url=torchvision_weights.url,
            cache=f"{torch.hub.get_dir()}/checkpoints",
        ) from None
    _load_state(backbone, state, source=torchvision_weights.url)
    return state


def _read_weights_file(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise WsolbenchError("weights file not found", path=path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise WsolbenchError(
            f"cannot read weights ({type(error).__name__}: {error}); expected a state_dict "
            "saved with torch.save",
            path=path,
        ) from None
    for wrapper in ("state_dict", "model"):  # a checkpoint wrapping its state_dict (DeiT: model)
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
            break
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise WsolbenchError("not a state_dict (a dict of tensors)", path=path)
    # DataParallel/DDP checkpoints prefix every key with "module.".
    return {k.removeprefix("module."): v for k, v in state.items()}


def _load_state(backbone: Backbone, state: Mapping[str, torch.Tensor], source: str) -> None:
    expected = backbone.weight_keys()
    # Old torchvision checkpoints predate BatchNorm's counter; it is not a weight.
    missing = sorted(k for k in expected - set(state) if not k.endswith("num_batches_tracked"))
    unexpected = sorted(
        k
        for k in set(state) - expected
        if not k.startswith(DROPPED_PREFIXES + backbone.dropped_prefixes + ("inserts.",))
    )
    own = backbone.state_dict()
    mismatched = sorted(
        f"{k} {tuple(state[k].shape)} != {tuple(own[k].shape)}"
        for k in expected & set(state)
        if state[k].shape != own[k].shape
    )
    problems = []
    for label, keys in (("missing", missing), ("unexpected", unexpected), ("shape", mismatched)):
        if keys:
            shown = ", ".join(keys[:5]) + (f" ... (+{len(keys) - 5})" if len(keys) > 5 else "")
            problems.append(f"{len(keys)} {label} key(s): {shown}")
    if problems:
        raise WsolbenchError(
            f"weights do not fit backbone {type(backbone).__name__}: " + "; ".join(problems),
            path=source,
        )
    backbone.load_state_dict({k: state[k] for k in expected if k in state}, strict=False)
