"""SPA equals its reference networks: same weights -> same logits, class maps and SCG taps.

Reference values (tests/data/spa_parity.npz, sources recorded inside it) were computed outside
the repository by the SPA code (Panxjia/SPA_CVPR2021 @ 32bf2d5, models/vgg/vgg_spa.py) and by
SPA2Net (MsterDC/SPA2Net @ 445f981, models/google/inceptionv3_sst.py, mode 'spa'), each holding
the seeded weights of tests/parity_weights.py, in float64 and eval mode. Here the same tensors
reach wsolbench's model through a checkpoint in the reference's own format, loaded with
``load_reference_state`` (so the state-dict mapping is what is tested).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from parity_weights import inputs, seeded_tensor

from wsolbench.engine.checkpoint import import_reference_checkpoint, load_reference_state
from wsolbench.engine.infer import gather_classes
from wsolbench.errors import WsolbenchError
from wsolbench.registry import create_method

DATA = np.load(Path(__file__).parent / "data" / "spa_parity.npz")
LABELS = torch.tensor([4, 2])
# SPA2Net's InceptionV3 has no pool before Mixed_6a: wsolbench's large-feature-map variant.
BACKBONES = {"vgg16": {}, "inception_v3": {"large_feature_map": True}}


def close(actual: torch.Tensor, expected: np.ndarray) -> None:
    expected = np.asarray(expected)
    scale = max(float(np.abs(expected).max()), 1e-12)
    np.testing.assert_allclose(actual.detach().numpy(), expected, rtol=1e-4, atol=1e-6 * scale)


def reference_checkpoint(method, path: Path, extra: dict | None = None) -> Path:
    """A checkpoint as the reference saves it: DataParallel keys under `state_dict`."""
    state = {
        f"module.{ref}": seeded_tensor(ref, own).to(own.dtype) if own.is_floating_point() else own
        for (key, ref), own in zip(method.reference_names().items(), method.state_dict().values())
    }
    state.update(extra or {})
    torch.save({"epoch": 20, "arch": "reference", "state_dict": state}, path)
    return path


@pytest.mark.parametrize("backbone", BACKBONES)
def test_spa_equals_reference(backbone, tmp_path):
    method = create_method("spa", backbone=backbone, num_classes=5, **BACKBONES[backbone]).double()
    # vgg_spa.py builds a `conv5_add` block its forward never calls: ignored on import.
    unused = (
        {"module.conv5_add.0.weight": torch.zeros(512, 512, 3, 3)} if backbone == "vgg16" else {}
    )
    path = reference_checkpoint(method, tmp_path / "ref.pth", unused)
    load_reference_state(method, torch.load(path, weights_only=True)["state_dict"], source=path)
    x = inputs(64)
    assert float(x.sum()) == pytest.approx(float(DATA[f"{backbone}_input_sum"]), rel=1e-12)
    with torch.no_grad():
        out = method.eval()(x)
    close(out["logits"], DATA[f"{backbone}_logits"])
    close(out["cams"], DATA[f"{backbone}_cams"])
    # The evaluation-time map: ReLU of the GT class's channel (what predict + identity use).
    close(gather_classes(out["cams"], LABELS[:, None])[:, 0].relu(), DATA[f"{backbone}_gt_map"])
    for tag, name in zip(("tap4", "tap5"), method.backbone.scg_taps):
        close(out["taps"][name].mean(dim=1), DATA[f"{backbone}_{tag}_channel_mean"])
        close(out["taps"][name].mean(dim=(2, 3)), DATA[f"{backbone}_{tag}_position_mean"])
    # The training loss with RAM on (defaults: alpha 0.5, tau 0.1, gap 0.2, from epoch 20).
    method.set_epoch(20)
    close(method.loss(out, LABELS), DATA[f"{backbone}_loss_ram"])


@pytest.mark.parametrize("backbone", BACKBONES)
def test_scg_taps_resolution_at_224(backbone):
    """SCG's two taps have the reference's shapes at 224 px: VGG16 14 x 14, InceptionV3 28 x 28."""
    method = create_method("spa", backbone=backbone, num_classes=5, **BACKBONES[backbone])
    with torch.device("meta"):
        taps = method.to("meta")(torch.empty(1, 3, 224, 224))["taps"]
    shapes = [list(taps[name].shape[1:]) for name in method.backbone.scg_taps]
    assert shapes == DATA[f"{backbone}_tap_shapes_224"].tolist()


def test_import_reference_checkpoint_errors(tmp_path):
    method = create_method("spa", backbone="vgg16", num_classes=5)
    path = reference_checkpoint(method, tmp_path / "ref.pth")
    state = torch.load(path, weights_only=True)
    del state["state_dict"]["module.cls.4.bias"]
    state["state_dict"]["module.cls.0.weight"] = torch.zeros(3)
    torch.save(state, path)
    with pytest.raises(WsolbenchError, match=r"1 missing key\(s\): cls.4.bias; 1 shape key\(s\)"):
        import_reference_checkpoint(path, "spa", "vgg16", 5)
    (tmp_path / "bad.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(WsolbenchError, match="weights_only"):
        import_reference_checkpoint(tmp_path / "bad.pth", "spa", "vgg16", 5)
