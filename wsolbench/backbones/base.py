"""Shared mechanics of every backbone: named taps, insertion points, weight loading.

A backbone maps images to ``(features, taps)``. ``taps`` holds named intermediate feature maps
(the two named in ``scg_taps`` are what SCG fuses). ``inserts`` maps an insertion-point name to a
module applied to the features right after that point (ADL uses this), so methods can change a
backbone without subclassing it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from wsolbench.errors import WsolbenchError

# Keys of torchvision's full-model checkpoints that belong to the parts wsolevaluation drops
# (classifier heads, auxiliary heads, removed blocks): ignored when loading a backbone.
DROPPED_PREFIXES = ("classifier.", "fc.", "AuxLogits.", "Mixed_7")


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

    def __init__(self, inserts: Mapping[str, nn.Module] | None = None):
        super().__init__()
        # A ModuleDict so that inserted modules move with .to() and appear in state_dict.
        self.inserts = nn.ModuleDict(dict(inserts or {}))

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


def load_weights(
    backbone: Backbone,
    *,
    name: str,
    pretrained: bool,
    weights: str | Path | None,
    torchvision_weights: Any = None,
) -> None:
    """Load pretrained weights into ``backbone``: a local file wins over torchvision's API.

    ``torchvision_weights`` is a torchvision ``WeightsEnum`` member (None: the family has none).
    """
    if weights is not None:
        state = _read_weights_file(Path(weights))
        _load_state(backbone, state, source=str(weights))
        return
    if not pretrained:
        return
    if torchvision_weights is None:
        raise WsolbenchError(
            f"backbone '{name}' has no pretrained weights: use pretrained=False "
            "(--pretrained false) for random initialization, or weights=PATH (--weights PATH)"
        )
    try:
        state = torchvision_weights.get_state_dict(progress=False, check_hash=True)
    except Exception as error:  # offline, proxy, corrupted cache: all mean "no weights"
        raise WsolbenchError(
            f"cannot get pretrained weights for backbone '{name}' ({type(error).__name__}: "
            f"{error}). Download {torchvision_weights.url} on a machine with internet and pass "
            "it with --weights PATH (weights=PATH), put it in the torch hub cache "
            f"({torch.hub.get_dir()}/checkpoints), or use --pretrained false for random "
            "initialization"
        ) from None
    _load_state(backbone, state, source=torchvision_weights.url)


def _read_weights_file(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise WsolbenchError("weights file not found", path=path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise WsolbenchError(
            f"cannot read weights ({type(error).__name__}: {error}); expected a state_dict "
            "saved with torch.save", path=path
        ) from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]  # a checkpoint wrapping its state_dict
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise WsolbenchError("not a state_dict (a dict of tensors)", path=path)
    return state


def _load_state(backbone: Backbone, state: Mapping[str, torch.Tensor], source: str) -> None:
    # DataParallel/DDP checkpoints prefix every key with "module.".
    state = {k.removeprefix("module."): v for k, v in state.items()}
    expected = backbone.weight_keys()
    # Old torchvision checkpoints predate BatchNorm's counter; it is not a weight.
    missing = sorted(k for k in expected - set(state) if not k.endswith("num_batches_tracked"))
    unexpected = sorted(
        k for k in set(state) - expected if not k.startswith(DROPPED_PREFIXES + ("inserts.",))
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
