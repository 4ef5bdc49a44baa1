"""Backbones: the contract of every registered backbone (features, taps, strides, inserts), weight
files, offline pretrained requests.

The contract tests are parametrized over ``wsolbench.list_backbones()``: a newly registered
backbone is tested with no change here (engine_helpers.BACKBONE_INPUT_SIZE if it needs more
than 64 px).
"""

from __future__ import annotations

import urllib.error

import pytest
import torch
from engine_helpers import backbone_input_size
from torch import nn

import wsolbench
from wsolbench.backbones.base import Backbone
from wsolbench.errors import WsolbenchError

pytestmark = pytest.mark.usefixtures("one_thread")

BACKBONES = wsolbench.list_backbones()


def images(name: str, n: int = 2, seed: int = 0) -> torch.Tensor:
    size = backbone_input_size(name)
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def grid_side(size: int, stride: int) -> set[int]:
    """The feature grid of a `size` px input at `stride`: size / stride, rounded either way."""
    return {size // stride, -(-size // stride)}


def without_variant_error(name: str) -> bool:
    """Whether the backbone builds a large-feature-map variant; one that does not refuses it
    with one error (checked here)."""
    from wsolbench.registry import BACKBONES as REGISTRY

    if REGISTRY.get(name).large_feature_map_variant:
        return True
    with pytest.raises(WsolbenchError, match="has no large-feature-map variant"):
        wsolbench.create_backbone(name, large_feature_map=True)
    return False


def test_the_reference_backbones_are_registered():
    assert {"tinyvgg", "vgg16", "resnet50", "inception_v3"} <= set(BACKBONES)
    assert {"mobilenet_v1", "deit_small", "tinyvit"} <= set(BACKBONES)


@pytest.mark.parametrize("name", BACKBONES)
def test_an_unbuilt_variant_is_one_error_naming_the_built_ones(name):
    from wsolbench.registry import BACKBONES as REGISTRY

    built = REGISTRY.get(name).architecture_types
    missing = next(v for v in ("cam", "bas", "vit", "acol") if v not in built)
    with pytest.raises(WsolbenchError, match=rf"has no '{missing}' variant \(it builds: "):
        wsolbench.create_backbone(name, architecture_type=missing)


@pytest.mark.parametrize("large", [False, True], ids=["default", "large-feature-map"])
@pytest.mark.parametrize("name", BACKBONES)
def test_forward_gives_features_and_the_declared_taps(name, large):
    torch.manual_seed(0)
    if large and not without_variant_error(name):
        return
    net = wsolbench.create_backbone(name, large_feature_map=large).eval()
    assert isinstance(net, Backbone)
    x = images(name)
    with torch.no_grad():
        output = net(x)
        alone, _ = net(x[1:])
    features, taps = output  # (features, taps)
    # Features: (N, out_channels, h, w), h and w the input side over feature_stride.
    n, channels, height, width = features.shape
    assert (n, channels) == (2, net.out_channels) and height == width
    assert height in grid_side(x.shape[-1], net.feature_stride), (height, net.feature_stride)
    # SCG fuses the two scg_taps: named taps of the features' grid, with their declared channels.
    assert len(net.scg_taps) == 2 and len(set(net.scg_taps)) == 2
    assert set(net.scg_taps) <= set(taps) and set(net.scg_taps) <= set(net.tap_channels)
    for name_, tap in taps.items():
        if name_ in net.tap_channels:
            assert tap.shape[1] == net.tap_channels[name_], name_
    for tap in net.scg_taps:
        assert taps[tap].shape == (2, net.tap_channels[tap], height, width), tap
    assert torch.isfinite(features).all()
    # In eval mode an image's features do not depend on the rest of the batch.
    torch.testing.assert_close(alone, features[1:], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", BACKBONES)
def test_large_feature_map_halves_the_stride(name):
    if not without_variant_error(name):
        return
    default = wsolbench.create_backbone(name).eval()
    large = wsolbench.create_backbone(name, large_feature_map=True).eval()
    assert large.feature_stride * 2 == default.feature_stride
    x = images(name, n=1)
    with torch.no_grad():
        side = default(x)[0].shape[-1]
        large_side = large(x)[0].shape[-1]
    assert large_side in {2 * side - 1, 2 * side, 2 * side + 1}, (side, large_side)


class Recorder(nn.Module):
    """Counts calls and zeroes its input, so its effect on the output is visible."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return x * 0


@pytest.mark.parametrize("name", BACKBONES)
def test_inserts_are_applied_at_every_point(name):
    points = wsolbench.create_backbone(name).insertion_points
    assert len(points) >= 1
    recorders = {point: Recorder() for point in points}
    net = wsolbench.create_backbone(name, inserts=recorders).eval()
    with torch.no_grad():
        features, _ = net(images(name, n=1))
    assert {point: r.calls for point, r in recorders.items()} == dict.fromkeys(points, 1)
    assert torch.count_nonzero(features) == 0  # the last point is after the last block
    # Inserted modules are part of the network (they move with .to() and are saved).
    assert all(f"inserts.{point}" in dict(net.named_modules()) for point in points)


@pytest.mark.parametrize("name", BACKBONES)
def test_unknown_insertion_point_is_an_error(name):
    with pytest.raises(WsolbenchError, match=r"unknown insertion point\(s\) nowhere \(available"):
        wsolbench.create_backbone(name, inserts={"nowhere": nn.Identity()})


def test_weights_file_round_trip(tmp_path):
    torch.manual_seed(1)
    source = wsolbench.create_backbone("tinyvgg").eval()
    path = tmp_path / "tinyvgg.pth"
    torch.save(source.state_dict(), path)
    torch.manual_seed(2)  # another random init, overwritten by the file
    loaded = wsolbench.create_backbone("tinyvgg", weights=str(path)).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(source(x)[0], loaded(x)[0])


def test_weights_file_with_wrong_keys_names_them(tmp_path):
    state = wsolbench.create_backbone("tinyvgg").state_dict()
    state.pop("block1.0.0.weight")
    state["surprise.weight"] = torch.zeros(1)
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(WsolbenchError) as error:
        wsolbench.create_backbone("tinyvgg", weights=path)
    message = str(error.value)
    assert "block1.0.0.weight" in message and "surprise.weight" in message
    assert str(path) in message


def test_weights_file_missing_or_not_a_state_dict(tmp_path):
    with pytest.raises(WsolbenchError, match="not found"):
        wsolbench.create_backbone("tinyvgg", weights=tmp_path / "absent.pth")
    path = tmp_path / "list.pth"
    torch.save([1, 2, 3], path)
    with pytest.raises(WsolbenchError, match="state_dict"):
        wsolbench.create_backbone("tinyvgg", weights=path)


def test_pretrained_without_network_or_file_says_how_to_get_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty cache

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(WsolbenchError) as error:
        wsolbench.create_backbone("vgg16", pretrained=True)
    message = str(error.value)
    assert "vgg16-397923af.pth" in message and "--weights" in message
    assert "--pretrained false" in message


def test_tinyvgg_has_no_pretrained_weights():
    with pytest.raises(WsolbenchError, match="no pretrained weights"):
        wsolbench.create_backbone("tinyvgg", pretrained=True)


def test_mobilenet_reads_bas_weights_file_by_position(tmp_path):
    """BAS's MobileNetV1 weights (mobilenet_v1_with_relu_69_5.pth) have other names: read in
    order, as BAS's model() does, when every shape matches; otherwise a clear error."""
    torch.manual_seed(3)
    source = wsolbench.create_backbone("mobilenet_v1").eval()
    state = {
        f"features.{i}": v
        for i, (k, v) in enumerate(source.state_dict().items())
        if not k.endswith("num_batches_tracked")
    }
    path = tmp_path / "mobilenet_v1_with_relu_69_5.pth"
    torch.save(state, path)
    loaded = wsolbench.create_backbone("mobilenet_v1", weights=path).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(source(x)[0], loaded(x)[0])
    state.pop("features.0")
    torch.save(state, path)
    with pytest.raises(WsolbenchError, match="missing key"):
        wsolbench.create_backbone("mobilenet_v1", weights=path)
