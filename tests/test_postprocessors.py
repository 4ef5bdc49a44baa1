"""The post-processor contract (methods/postprocessor.py, docs/interfaces.md), for every
registered post-processor: ``pp(cams, taps, image_size)`` maps (N, K, h, w) class maps and the
backbone's taps to (N, K, H, W) maps in [0, 1] (a list of (K, H_i, W_i) maps for per-image
sizes), and each of the K maps is exactly the map of a call with that class alone.

Parametrized over ``wsolbench.list_postprocessors()`` (with its defaults), plus SCG's other
settings: a newly registered post-processor is tested with no change here. The taps are those of
a real backbone (tinyvgg's scg_taps), as `predict` hands them to the bench.
"""

from __future__ import annotations

import pytest
import torch

import wsolbench
from wsolbench import create_postprocessor, list_postprocessors
from wsolbench.methods.postprocessor import PostProcessor

pytestmark = pytest.mark.usefixtures("one_thread")

N, K = 3, 4
SIZES = [(13, 17), (20, 9), (13, 17)]

# Every registered post-processor with its defaults, and SCG's other settings.
POSTPROCESSORS = [(name, {}) for name in list_postprocessors()] + [
    ("scg", {"fo_th": 0.1, "so_th": 0.5, "so_weight": 2.0}),
    ("scg", {"mode": "first"}),
    ("scg", {"mode": "second", "order": 3}),
    ("scg", {"variant": "paper"}),
    ("scg", {"chunk_size": 2}),
]
ALL = pytest.mark.parametrize(
    "name,options", POSTPROCESSORS, ids=lambda v: v if isinstance(v, str) else None
)
REGISTERED = pytest.mark.parametrize("name", list_postprocessors())


@pytest.fixture(scope="module")
def inputs():
    """(N, K, h, w) class maps on tinyvgg's feature grid, one of them all zero, and the
    backbone's two scg_taps for the same images."""
    torch.manual_seed(0)
    backbone = wsolbench.create_backbone("tinyvgg").eval()
    images = torch.rand(N, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        features, taps = backbone(images)
    grid = features.shape[-2:]
    cams = torch.randn(N, K, *grid, generator=torch.Generator().manual_seed(2))
    cams[1, 2] = 0.0  # an all-zero map among the others
    return cams, [taps[name] for name in backbone.scg_taps]


def test_the_reference_postprocessors_are_registered():
    assert {"none", "scg"} <= set(list_postprocessors())


def test_the_plain_postprocessor_has_one_listed_name_and_an_alias():
    """`none` everywhere a user sees it; `identity` is accepted (older suites, scripts) but
    never listed, and builds the same post-processor."""
    from wsolbench.registry import POSTPROCESSORS, check_postprocessor

    assert "identity" not in list_postprocessors()
    assert type(create_postprocessor("none")) is type(create_postprocessor("none"))
    assert POSTPROCESSORS.canonical("identity") == "none"
    assert check_postprocessor("identity", {}, "--postprocessor") == {}


@REGISTERED
def test_maps_have_the_image_size_and_lie_in_0_1(name, inputs):
    cams, taps = inputs
    pp = create_postprocessor(name)
    assert isinstance(pp, PostProcessor)
    maps = pp(cams, taps, (24, 20))
    assert maps.shape == (N, K, 24, 20) and maps.dtype == torch.float32
    assert maps.device == cams.device and torch.isfinite(maps).all()
    assert float(maps.min()) >= 0.0 and float(maps.max()) <= 1.0
    # Random maps are not all flat: somewhere a map reaches its top.
    assert float(maps.amax(dim=(2, 3)).max()) > 0.5
    # Per-image sizes give a list of (K, H_i, W_i) maps, each the same image's maps.
    listed = pp(cams, taps, SIZES)
    assert isinstance(listed, list) and [tuple(m.shape) for m in listed] == [(K, *s) for s in SIZES]
    for m in listed:
        assert torch.isfinite(m).all() and float(m.min()) >= 0.0 and float(m.max()) <= 1.0
    torch.testing.assert_close(listed[0], pp(cams, taps, SIZES[0])[0])
    # One (N, h, w) map per image gives (N, H, W) maps.
    single = pp(cams[:, 0], taps, (24, 20))
    assert single.shape == (N, 24, 20)


@pytest.mark.parametrize("sizes", [(13, 17), SIZES], ids=["one-size", "per-image"])
@ALL
def test_k_class_maps_in_one_call_equal_one_call_per_class_exactly(name, options, sizes, inputs):
    cams, taps = inputs
    pp = create_postprocessor(name, **options)
    batched = pp(cams, taps, sizes)
    if isinstance(sizes, tuple):
        assert batched.shape == (N, K, *sizes)
    else:
        assert [tuple(m.shape) for m in batched] == [(K, *s) for s in sizes]
    for k in range(K):
        alone = pp(cams[:, k], taps, sizes)  # one (N, h, w) map per image
        for i in range(N):
            assert torch.equal(batched[i][k], alone[i]), (k, i)
            assert float(alone[i].min()) >= 0 and float(alone[i].max()) <= 1


@REGISTERED
def test_k_class_maps_equal_one_call_per_class_at_the_bench_s_sizes(name):
    """The default suite's shapes (64 px images, 16 x 16 taps of 64 channels, GT + top-5 = 6
    maps, a batch of 8): large enough for BLAS to choose its kernel by the number of columns,
    so a map must not depend on how many classes share the call (`infer` writes GT maps alone)."""
    torch.manual_seed(0)
    backbone = wsolbench.create_backbone("tinyvgg").eval()
    images = torch.rand(8, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        features, taps = backbone(images)
    taps = [taps[tap] for tap in backbone.scg_taps]
    assert tuple(taps[0].shape[-2:]) == (16, 16)
    cams = torch.randn(8, 6, *features.shape[-2:], generator=torch.Generator().manual_seed(4))
    pp = create_postprocessor(name, **({"fo_th": 0.1, "so_th": 0.5} if name == "scg" else {}))
    batched = pp(cams, taps, (64, 64))
    for k in range(6):
        assert torch.equal(batched[:, k], pp(cams[:, k], taps, (64, 64))), k


@REGISTERED
def test_an_image_s_maps_do_not_depend_on_the_rest_of_the_batch(name, inputs):
    cams, taps = inputs
    pp = create_postprocessor(name)
    batched = pp(cams, taps, (16, 16))
    for i in range(N):
        alone = pp(cams[i : i + 1], [t[i : i + 1] for t in taps], (16, 16))
        torch.testing.assert_close(alone[0], batched[i], atol=1e-6, rtol=0)


@REGISTERED
def test_inputs_are_left_untouched(name, inputs):
    cams, taps = inputs
    before = [cams.clone(), *(t.clone() for t in taps)]
    create_postprocessor(name)(cams, taps, (16, 16))
    assert all(torch.equal(a, b) for a, b in zip(before, [cams, *taps]))


@ALL
def test_maps_are_prepared_on_the_cpu_with_no_device_specific_path(name, options, monkeypatch):
    """What a GPU's class maps and taps go through is this CPU code: no `interpolate` path
    (it is made to fail here), and every map comes back to the device it came from."""

    def refuse(*args, **kwargs):
        raise AssertionError("a map was resized by F.interpolate, a device-dependent path")

    monkeypatch.setattr(torch.nn.functional, "interpolate", refuse)
    generator = torch.Generator().manual_seed(3)
    cams = torch.randn(N, K, 6, 6, generator=generator)
    taps = [torch.rand(N, 8, 6, 6, generator=generator) for _ in range(2)]
    maps = create_postprocessor(name, **options)(cams, taps, SIZES)
    assert [tuple(m.shape) for m in maps] == [(K, *size) for size in SIZES]
    assert all(m.device == cams.device and m.dtype == torch.float32 for m in maps)


def test_identity_is_numpy_min_max_and_opencv_resize_bit_for_bit():
    """SPA's plain map (utils/localization.py:67-69): ``norm_atten_map`` in numpy float32, then
    ``cv2.resize`` to the image size; the same bits from the post-processor."""
    import cv2
    import numpy as np

    generator = torch.Generator().manual_seed(4)
    cams = torch.randn(N, K, 7, 7, generator=generator)
    maps = create_postprocessor("identity")(cams, None, SIZES)
    for cam, resized, (height, width) in zip(cams, maps, SIZES):
        for channel, got in zip(cam.relu().numpy(), resized.numpy()):
            normalized = (channel - np.min(channel)) / (np.max(channel) - np.min(channel) + 1e-10)
            np.testing.assert_array_equal(got, cv2.resize(normalized, dsize=(width, height)))
