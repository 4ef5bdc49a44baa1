"""A torchvision classifier as it is (no WSOL training), in the shape ``predict`` expects.

``ClassifierModel`` returns what a wsolbench CAM method returns: ``logits``, ``features`` and
``taps``, with ``class_maps`` for the maps of given classes, so the zero-training row of a WSOL
table runs through the same inference, post-processors and protocols. ``class_maps`` gives the
class activation map where the network really is global average pooling plus one linear layer
on its last spatial layer (resnet, inception_v3, googlenet: checked on a probe batch, so CAM is
never computed for a network it does not describe); elsewhere (vgg, densenet) only post-hoc
explainers apply. ``taps`` are the two layers SCG fuses.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from wsolbench.errors import WsolbenchError
from wsolbench.explainers.layers import (
    default_tap_layers,
    default_target_layer,
    named_layers,
)
from wsolbench.methods.base import fc_class_maps


class ClassifierModel(nn.Module):
    """Wrap ``net`` (any torchvision-style classifier returning (N, classes) logits).

    Args:
        net: the classifier; put in eval mode.
        name: its name in reports.
        image_size: input side used to probe the layers once.
        tap_layers: dotted names (``net.layer3``) of SCG's taps; by default the last spatial
            layer and the last one at the previous resolution.
    """

    def __init__(
        self,
        net: nn.Module,
        name: str = "classifier",
        image_size: int = 224,
        tap_layers: list[str] | None = None,
    ):
        super().__init__()
        self.net = net.eval()
        self.name = name
        self._ready = False
        parameter = next(net.parameters())
        generator = torch.Generator().manual_seed(0)
        probe = torch.randn(2, 3, image_size, image_size, generator=generator).to(parameter)
        if tap_layers:
            named_layers(self, list(tap_layers))
            self.scg_taps = tuple(tap_layers)
        else:
            self.scg_taps = tuple(layer.name for layer in default_tap_layers(self, probe))
        self.cam_layer = default_target_layer(self, probe).name
        self._captured: dict[str, torch.Tensor] = {}
        for layer_name in {*self.scg_taps, self.cam_layer}:
            self.get_submodule(layer_name).register_forward_hook(self._keeper(layer_name))
        linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
        self.fc = linears[-1] if linears else None
        self._ready = True
        self.has_cams = self._is_gap_linear(probe)

    def _keeper(self, name: str):
        def keep(module, inputs, output):
            self._captured[name] = output

        return keep

    @torch.no_grad()
    def _is_gap_linear(self, probe: torch.Tensor) -> bool:
        """Are the logits the linear layer applied to the global average of the CAM layer?"""
        logits = self.net(probe)
        features = self._captured[self.cam_layer]
        if self.fc is None or features.dim() != 4 or self.fc.in_features != features.shape[1]:
            return False
        return bool(
            torch.allclose(self.fc(features.mean(dim=(2, 3))), logits, rtol=1e-4, atol=1e-4)
        )

    def forward(self, images: torch.Tensor) -> dict | torch.Tensor:
        if not self._ready:  # probing the layers
            return self.net(images)
        self._captured.clear()
        logits = self.net(images)
        taps = {name: self._captured[name] for name in self.scg_taps}
        return {"logits": logits, "features": self._captured[self.cam_layer], "taps": taps}

    def class_maps(self, outputs: dict, classes: torch.Tensor) -> torch.Tensor:
        """(N, k) classes -> (N, k, h, w) CAMs, as wsolevaluation computes them (only where
        ``has_cams``: the `cam` explainer refuses other networks up front)."""
        if not self.has_cams:
            raise WsolbenchError(f"{self} has no class activation map")
        return fc_class_maps(self.fc.weight, outputs["features"], classes)

    def __repr__(self) -> str:
        return f"classifier '{self.name}'"


def build_classifier(
    name: str,
    weights: str | None = None,
    num_classes: int = 1000,
    image_size: int = 224,
    tap_layers: list[str] | None = None,
    device: str | torch.device = "cpu",
) -> ClassifierModel:
    """A torchvision classifier by name, eval mode on ``device``.

    ``weights``: None or "" (random initialization, ``num_classes`` outputs), a torchvision
    weights name ("DEFAULT", "IMAGENET1K_V1": downloaded by torchvision, ImageNet's 1000 classes,
    so ``num_classes`` must be 1000) or a local state-dict file (``torch.save(model.state_dict())``).
    A local copy of torchvision's own file (same file name, e.g. ``resnet50-0676ba61.pth``) loads
    as those weights, with the settings torchvision builds them with (inception_v3's
    ``transform_input``).
    """
    from torchvision import models

    available = models.list_models(module=models)
    if name not in available:
        raise WsolbenchError(
            f"unknown torchvision classifier '{name}' (available: {', '.join(available)})"
        )
    official = _official_file(models, name, weights) if weights else None
    if official is not None:
        net = _load_official(models, name, *official)
    elif weights and (Path(weights).suffix in (".pt", ".pth") or Path(weights).exists()):
        from wsolbench.backbones.base import _read_weights_file

        net = models.get_model(name, weights=None, num_classes=num_classes)
        state = _read_weights_file(Path(weights))
        state = {k.removeprefix("module."): v for k, v in state.items()}
        try:
            net.load_state_dict(state)
        except RuntimeError as error:
            raise WsolbenchError(
                f"weights do not fit {name} with {num_classes} classes: "
                f"{str(error).splitlines()[0]}",
                path=weights,
            ) from None
    elif weights:
        net = _torchvision_pretrained(models, name, weights, num_classes)
    else:
        net = models.get_model(name, weights=None, num_classes=num_classes)
    return ClassifierModel(net.to(device), name, image_size, tap_layers)


def check_classifier(
    name: str,
    weights: str | None,
    num_classes: int,
    tap_layers: list[str] | None,
    explainers,
    where: str,
    source=None,
) -> None:
    """Before any work, without weights or a download: the classifier is a torchvision model,
    its weights a file or one of its torchvision weights for ``num_classes`` classes, and its
    tap layers and every explainer's target layers are layers of it."""
    from torchvision import models

    available = models.list_models(module=models)
    if name not in available:
        raise WsolbenchError(
            f"{where}.model: unknown torchvision classifier '{name}' (available: "
            f"{', '.join(available)})",
            source,
        )
    if weights:
        path = Path(weights)
        if path.suffix in (".pt", ".pth") or path.exists():
            if not path.is_file():
                raise WsolbenchError(f"{where}.weights: no such file", path)
        else:
            enum = models.get_model_weights(name)
            names = ["DEFAULT", *(member.name for member in enum)]
            if weights not in names:
                raise WsolbenchError(
                    f"{where}.weights: {name} has no torchvision weights '{weights}' "
                    f"(available: {', '.join(names)}; or a state-dict file)",
                    source,
                )
            chosen = enum.DEFAULT if weights == "DEFAULT" else enum[weights]
            classes = len(chosen.meta.get("categories") or [])
            if classes != num_classes:
                raise WsolbenchError(
                    f"{where}.weights: {name} weights {chosen.name} predict {classes} classes "
                    f"but the dataset has {num_classes}: pretrained classifiers are scored on "
                    "ILSVRC",
                    source,
                )
    with torch.device("meta"):
        wrapper = nn.Module()
        wrapper.net = models.get_model(name, weights=None, num_classes=num_classes)
    checks = [(f"{where}.tap_layers", list(tap_layers or ()))]
    checks += [
        (f"explainers.{getattr(e, 'name', '?')}", list(getattr(e, "target_layers", None) or ()))
        for e in explainers
    ]
    for key, names in checks:
        try:
            named_layers(wrapper, names)
        except WsolbenchError as error:
            raise WsolbenchError(f"{key} on {where}: {error.message}", source) from None


def _torchvision_pretrained(models, name: str, weights: str, num_classes: int) -> nn.Module:
    enum = models.get_model_weights(name)
    try:
        chosen = enum.DEFAULT if weights == "DEFAULT" else enum[weights]
    except KeyError:
        raise WsolbenchError(
            f"{name} has no torchvision weights '{weights}' (available: DEFAULT, "
            f"{', '.join(member.name for member in enum)}; or a state-dict file)"
        ) from None
    classes = len(chosen.meta.get("categories") or [])
    if classes != num_classes:
        raise WsolbenchError(
            f"{name} weights {chosen.name} predict {classes} classes but the dataset "
            f"has {num_classes}: pretrained classifiers are scored on ILSVRC"
        )
    try:
        return models.get_model(name, weights=chosen)
    except Exception as error:  # noqa: BLE001  (offline, proxy, corrupted cache: all mean "no weights")
        raise WsolbenchError(
            f"cannot get torchvision weights {name} {chosen.name} ({type(error).__name__}: {error}). "
            f"Download {chosen.url} on a machine with internet and pass the file as the weights "
            f'(weights = "/path/{Path(chosen.url).name}"), or put it in the torch hub cache '
            f"({torch.hub.get_dir()}/checkpoints)"
        ) from None


def _official_file(models, name: str, weights: str):
    """(weights enum member, path) when ``weights`` is a local copy of a torchvision file."""
    path = Path(weights)
    if not path.is_file():
        return None
    for member in models.get_model_weights(name):
        if Path(member.url).name == path.name:
            return member, path
    return None


def _load_official(models, name: str, member, path: Path) -> nn.Module:
    """torchvision's builder with ``weights=member``, reading ``path`` as its download cache."""
    from wsolbench.io import scratch_folder, symlink

    previous = torch.hub.get_dir()
    with scratch_folder() as hub:
        symlink(path.resolve(), hub / "checkpoints" / path.name)
        torch.hub.set_dir(str(hub))
        try:
            return models.get_model(name, weights=member)
        except Exception as error:  # noqa: BLE001  (a truncated or foreign file)
            raise WsolbenchError(
                f"cannot load {name} {member.name} from this file: {error}", path=path
            ) from None
        finally:
            torch.hub.set_dir(previous)
