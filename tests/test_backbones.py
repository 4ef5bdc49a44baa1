"""Backbones: shapes of features and taps, inserts, weight files, offline pretrained requests."""

from __future__ import annotations

import urllib.error

import pytest
import torch
from torch import nn

import wsolbench
from wsolbench.errors import WsolbenchError


@pytest.fixture(autouse=True)
def one_thread():
    """The CI machine's cores are shared: one thread avoids oversubscription stalls."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


# Tiny inputs keep the big backbones to a fraction of a second each.
INPUT_SIZE = {"tinyvgg": 64, "vgg16": 64, "resnet50": 64, "inception_v3": 96}
FEATURE_SIZE = {"tinyvgg": 16, "vgg16": 4, "resnet50": 4, "inception_v3": 6}


def test_all_backbones_registered():
    assert set(wsolbench.list_backbones()) >= set(INPUT_SIZE)


@pytest.mark.parametrize("name", sorted(INPUT_SIZE))
def test_features_and_taps(name):
    torch.manual_seed(0)
    net = wsolbench.create_backbone(name).eval()
    size = INPUT_SIZE[name]
    with torch.no_grad():
        features, taps = net(torch.randn(1, 3, size, size))
    side = FEATURE_SIZE[name]
    assert features.shape == (1, net.out_channels, side, side)
    assert size // net.feature_stride in (side, side + 1)
    assert set(net.scg_taps) <= set(taps)
    for tap in net.scg_taps:  # SCG fuses the two taps: they must share the grid
        assert taps[tap].shape[2:] == (side, side)
        assert taps[tap].shape[1] == net.tap_channels[tap]


@pytest.mark.parametrize("name", ["tinyvgg", "vgg16"])
def test_large_feature_map_doubles_resolution(name):
    size = INPUT_SIZE[name]
    net = wsolbench.create_backbone(name, large_feature_map=True).eval()
    with torch.no_grad():
        features, taps = net(torch.randn(1, 3, size, size))
    assert features.shape[-1] == 2 * FEATURE_SIZE[name]
    assert all(taps[t].shape[-1] == 2 * FEATURE_SIZE[name] for t in net.scg_taps)


class Recorder(nn.Module):
    """Counts calls and zeroes its input, so its effect on the output is visible."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return x * 0


@pytest.mark.parametrize("name", ["tinyvgg", "resnet50"])
def test_inserts_are_applied_at_every_point(name):
    recorders = {point: Recorder() for point in wsolbench.create_backbone(name).insertion_points}
    net = wsolbench.create_backbone(name, inserts=recorders).eval()
    size = INPUT_SIZE[name]
    with torch.no_grad():
        features, _ = net(torch.randn(1, 3, size, size))
    assert all(r.calls == 1 for r in recorders.values())
    assert torch.count_nonzero(features) == 0  # the last point is after the last block


def test_unknown_insertion_point_is_an_error():
    with pytest.raises(WsolbenchError, match="insertion point"):
        wsolbench.create_backbone("tinyvgg", inserts={"nowhere": nn.Identity()})


def test_weights_file_round_trip(tmp_path):
    torch.manual_seed(1)
    source = wsolbench.create_backbone("tinyvgg").eval()
    path = tmp_path / "tinyvgg.pth"
    torch.save(source.state_dict(), path)
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
