"""SCG on any model: forward hooks capture two layers' outputs (like pytorch-grad-cam's
``target_layers``), and SCG turns the model's class map into a localization map.

    with SCGExtractor(model.eval(), target_layers=[model.layer3, model.layer4]) as extractor:
        maps = extractor(images, targets=[3, 7])        # CAM from the model's last nn.Linear
        maps = extractor(images, my_class_maps)         # or any (N, h, w) or (N, K, h, w) maps
        maps = extractor(images, lambda output, taps: ...)  # or a function returning one

The hooks are removed when the ``with`` block ends (or by ``release()``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import torch
from torch import nn

from wsolbench.errors import WsolbenchError
from wsolbench.methods.base import fc_class_maps

if TYPE_CHECKING:  # scg.py re-exports this module's class, so import SCG lazily
    from wsolbench.methods.scg import SCG, Size

ClassMaps = torch.Tensor | Sequence[int] | Callable[[object, list], torch.Tensor] | None


class SCGExtractor:
    """Capture ``target_layers``' outputs during ``model``'s forward pass and apply ``scg``:
    SCG on any model. Use it as a context manager (``with SCGExtractor(...) as extract``) so the
    forward hooks are removed on exit; ``extract(images, targets)`` gives the maps.

    Args:
        model: any ``nn.Module``; it is run as it is (call ``model.eval()`` first).
        target_layers: the modules whose outputs are SCG's feature taps (two in the paper).
        scg: the post-processor; ``SCG()`` (the ILSVRC defaults) when not given.
        cam_layer: the module whose (N, C, h, w) output the CAM is computed from when class
            indices are given; the last target layer by default.
        fc: the linear classifier over ``cam_layer``'s channels; the model's last ``nn.Linear``
            by default.
    """

    def __init__(
        self,
        model: nn.Module,
        target_layers: Sequence[nn.Module],
        scg: SCG | None = None,
        cam_layer: nn.Module | None = None,
        fc: nn.Linear | None = None,
    ):
        if not target_layers:
            raise WsolbenchError("SCGExtractor needs at least one target layer")
        self.model = model
        self.target_layers = list(target_layers)
        from wsolbench.methods.scg import SCG

        self.scg = scg if scg is not None else SCG()
        self.cam_layer = cam_layer if cam_layer is not None else self.target_layers[-1]
        self.fc = fc
        self._outputs: dict[int, torch.Tensor] = {}
        self._handles = [
            layer.register_forward_hook(self._keeper(id(layer)))
            for layer in {id(m): m for m in [*self.target_layers, self.cam_layer]}.values()
        ]

    def _keeper(self, key: int):
        def hook(module: nn.Module, inputs, output) -> None:
            if not isinstance(output, torch.Tensor) or output.dim() != 4:
                raise WsolbenchError(
                    f"SCGExtractor: {type(module).__name__} must output an (N, C, h, w) tensor"
                )
            self._outputs[key] = output.detach()

        return hook

    def __enter__(self) -> SCGExtractor:
        return self

    def __exit__(self, *exc_info) -> None:
        self.release()

    def release(self) -> None:
        """Remove the forward hooks (done on leaving the ``with`` block)."""
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def __call__(self, images: torch.Tensor, targets: ClassMaps = None, image_size=None):
        """(N, H, W) float32 SCG maps in [0, 1] for ``images`` (N, 3, H, W), at the images' size
        unless ``image_size`` ``(H, W)`` is given. ``targets``: None (the top-1 class), N class
        indices, (N, h, w) class maps or (N, K, h, w) maps (then (N, K, H, W) maps result),
        or a function ``(model output, taps) -> class maps``."""
        return self.explain(images, targets, image_size)["final"]

    def explain(
        self, images: torch.Tensor, targets: ClassMaps = None, image_size: Size | None = None
    ):
        """All of SCG's intermediate maps (``SCG.explain``) plus ``taps`` and ``output``.

        ``targets`` is one of: None (the model's top-1 class), class indices (one per image), an
        (N, h, w) class map or (N, K, h, w) maps of K classes (then every map is (N, K, ...)),
        or a function ``(model output, taps) -> class maps``.
        """
        if not self._handles:
            raise WsolbenchError(
                "SCGExtractor: hooks already released (use it inside its `with` block)"
            )
        self._outputs.clear()
        with torch.no_grad():
            output = self.model(images)
            taps = [self._captured(layer) for layer in self.target_layers]
            cam = self._class_maps(output, taps, targets)
            size = tuple(images.shape[-2:]) if image_size is None else image_size
            result = self.scg.explain(cam, taps, size)
        result.update(taps=taps, output=output)
        return result

    def _captured(self, layer: nn.Module) -> torch.Tensor:
        if id(layer) not in self._outputs:
            raise WsolbenchError(
                f"SCGExtractor: {type(layer).__name__} did not run in the forward pass"
            )
        return self._outputs[id(layer)]

    def _class_maps(self, output, taps: list[torch.Tensor], targets: ClassMaps) -> torch.Tensor:
        if callable(targets):
            return targets(output, taps)
        if isinstance(targets, torch.Tensor) and targets.dim() in (3, 4):
            return targets
        labels = _logits(output).argmax(dim=1) if targets is None else torch.as_tensor(targets)
        labels = labels.reshape(-1).long()
        hook = getattr(self.model, "class_maps", None)
        if isinstance(output, dict) and hook is not None:  # a wsolbench method or classifier
            return hook(output, labels.view(-1, 1))[:, 0]
        if isinstance(output, dict) and "cams" in output:  # every class's map, as a dict
            cams = output["cams"]
            return cams[torch.arange(cams.shape[0], device=cams.device), labels.to(cams.device)]
        features = self._captured(self.cam_layer)
        fc = self.fc if self.fc is not None else _last_linear(self.model)
        if fc.in_features != features.shape[1]:
            raise WsolbenchError(
                f"SCGExtractor: the classifier takes {fc.in_features} channels but the CAM layer "
                f"gives {features.shape[1]}; pass cam_layer= and fc= that match"
            )
        # CAM as wsolevaluation computes it: channel mean of fc weight x feature.
        return fc_class_maps(fc.weight, features, labels.view(-1, 1))[:, 0]


def _logits(output) -> torch.Tensor:
    if isinstance(output, dict):
        output = output.get("logits")
    elif isinstance(output, (tuple, list)):
        output = output[0]
    if not isinstance(output, torch.Tensor) or output.dim() != 2:
        raise WsolbenchError(
            "SCGExtractor: cannot find (N, classes) logits in the model output; pass targets"
        )
    return output


def _last_linear(model: nn.Module) -> nn.Linear:
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise WsolbenchError(
            "SCGExtractor: the model has no nn.Linear classifier; pass fc= or class maps"
        )
    return linears[-1]
