"""SCG: official golden values, hand-checkable cases, batching, chunking, variants, hooks, registry.

Golden values (``tests/data/scg_golden.npz``) come from the released SPA code,
``Panxjia/SPA_CVPR2021`` at commit 32bf2d5d9a49176a32b64b88eef9ea4a6a24d925: ``VGG.hsc`` in
``models/vgg/vgg_spa.py`` (self-correlation of each layer), the ``--scg_com`` / ``--scg_fo`` /
default fusion branches in ``exper/val_spa.py`` (``sc_maps[-1] + sc_maps[-2]``), and
``get_topk_boxes_hier`` + ``get_topk_boxes_hier_scg`` in ``utils/localization.py`` (the CAM's
cv2 round trip and the aggregation, GT-known path, box threshold 0.2), run outside this repo on
CPU with torch 2.14 / numpy 2.4 (``np.int`` aliased to ``int``; an all-black PNG of the image
size stood in for the image, which that code only reads for its size).
Inputs, stored beside the outputs: ``numpy.random.default_rng(seed)`` with seed = the case's
index; an ellipse "object" on the grid, two random prototypes (object, background); features
``relu(prototype + 0.8 * normal)`` per layer, position (0, 0) set to a zero vector; CAM
``2 * upper_half_of_object + 0.5 * object + 0.4 * normal - 0.3`` (negative values included).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import wsolbench.methods.postprocess  # noqa: F401  (registers identity and scg)
from wsolbench import create_postprocessor, list_postprocessors
from wsolbench.errors import WsolbenchError
from wsolbench.methods.scg import SCG, SCGExtractor

GOLDEN = Path(__file__).parent / "data" / "scg_golden.npz"
CASES = ["ilsvrc", "cub", "first", "second", "order3", "grid10"]


@pytest.fixture(scope="module")
def golden():
    return dict(np.load(GOLDEN))


def _golden_scg(golden, name: str) -> tuple[SCG, list[torch.Tensor], torch.Tensor, tuple[int, int]]:
    fo, so, weight, fg, bg, order = golden[f"{name}/params"]
    scg = SCG(
        fo_th=fo,
        so_th=so,
        so_weight=weight,
        fg_th=fg,
        bg_th=bg,
        order=int(order),
        mode=str(golden[f"{name}/mode"]),
    )
    taps = [torch.from_numpy(golden[f"{name}/feat4"]), torch.from_numpy(golden[f"{name}/feat5"])]
    cam = torch.from_numpy(golden[f"{name}/cam"])[None]
    return scg, taps, cam, tuple(golden[f"{name}/image_size"].tolist())


@pytest.mark.parametrize("name", CASES)
def test_official_matches_released_code(golden, name):
    scg, taps, cam, size = _golden_scg(golden, name)
    fused, grid = scg.fused_correlation(taps)
    assert grid == tuple(cam.shape[-2:])
    # The SPA code's arithmetic on the CPU: its matrices and maps, bit for bit.
    np.testing.assert_array_equal(fused[0].numpy(), golden[f"{name}/fused"])
    final = scg(cam, taps, size)
    assert final.shape == (1, *size)
    np.testing.assert_array_equal(final[0].numpy(), golden[f"{name}/final"])
    mask = final[0].numpy() >= 0.2
    ys, xs = np.nonzero(mask)
    assert [xs.min(), ys.min(), xs.max(), ys.max()] == golden[f"{name}/box_0.2"].tolist()
    # The same map among other classes' maps (N, K, h, w), in one call: exactly the same result.
    others = torch.randn(1, 3, *cam.shape[-2:], generator=torch.Generator().manual_seed(7))
    batched = scg(torch.cat([others[:, :1], cam[:, None], others[:, 1:]], dim=1), taps, size)
    assert batched.shape == (1, 4, *size) and torch.equal(batched[:, 1], final)


def test_official_layer_matrices_match_released_code(golden):
    scg, taps, _, _ = _golden_scg(golden, "ilsvrc")
    matrices = scg.self_correlation(taps[0])
    np.testing.assert_array_equal(matrices.first[0].numpy(), golden["ilsvrc/first4"])
    np.testing.assert_array_equal(matrices.higher[0].numpy(), golden["ilsvrc/second4"])
    # Columns (maps of points) of the combined matrix sum to 1, but the zero vector's is empty.
    sums = matrices.combined[0].sum(0).numpy()
    assert sums[0] == 0
    np.testing.assert_allclose(sums[1:], 1.0, atol=1e-5)


def _chain_features(steps: int = 8, degrees: float = 25.0) -> torch.Tensor:
    """A 1 x steps strip of 2-D unit vectors turning by ``degrees`` per step."""
    angles = torch.arange(steps) * math.radians(degrees)
    return torch.stack([angles.cos(), angles.sin()])[None, :, None, :]


def test_first_order_links_neighbours_and_second_order_two_hops():
    # cos 25 deg = 0.91 passes fo_th 0.8, cos 50 deg = 0.64 does not: a chain of neighbours.
    matrices = SCG(fo_th=0.8, so_th=0.0).self_correlation(_chain_features())
    point = 4
    first = matrices.first[0, :, point].nonzero().flatten().tolist()
    second = matrices.higher[0, :, point].nonzero().flatten().tolist()
    assert first == [3, 4, 5]
    assert second == [2, 4, 6]  # T has no self-loops: two hops go out and back or two steps on
    combined = matrices.combined[0, :, point].nonzero().flatten().tolist()
    assert combined == [2, 3, 4, 5, 6]


def test_two_constant_regions_second_order_fills_the_touched_region():
    # Left half of a 6 x 6 grid is one feature vector, right half another, orthogonal to it.
    feat = torch.zeros(1, 4, 6, 6)
    feat[0, 0, :, :3] = 1.0
    feat[0, 1, :, 3:] = 1.0
    cam = torch.zeros(1, 6, 6)
    cam[0, :, :3] = 0.07  # between bg_th and fg_th after normalization: neither set
    cam[0, 2, 1] = 1.0  # the CAM touches one point of the left region
    cam[0, :, 3:] = -1.0  # ReLU makes the right region background
    # 18 points per region. Second order, column of the seed: 1/17 at the seed (walks out and
    # back), 16/17^2 elsewhere in the region; combined: max with the first order's 1/18 each.
    # After the min-max steps the region is filled: the seed 1, the rest 16/17 or 17/18.
    for mode, fill in (("second", 16 / 17), ("combined", 17 / 18)):
        result = SCG(mode=mode).explain(cam, [feat, feat], (6, 6))
        final = result["grid_final"][0]
        expected = torch.zeros(6, 6)
        expected[:, :3] = fill
        expected[2, 1] = 1.0
        torch.testing.assert_close(final, expected, atol=1e-5, rtol=0)
        torch.testing.assert_close(result["final"][0], final)


def test_degenerate_inputs_give_finite_maps():
    torch.manual_seed(0)
    feat = torch.rand(2, 8, 5, 5)
    for cam in (torch.zeros(2, 5, 5), torch.full((2, 5, 5), 3.0), -torch.rand(2, 5, 5)):
        # All zero after ReLU / min-max: the object set is empty, everything is background.
        result = SCG().explain(cam, [feat, feat], (9, 11))
        assert torch.equal(result["object"], torch.zeros(2, 5, 5))
        assert torch.equal(result["final"], torch.zeros(2, 9, 11))
    # One feature vector everywhere: every point's first-order map is flat, and min-max makes it
    # exactly 0, as the released code's (c - c) / 1e-10 does.
    flat_feat = torch.ones(2, 8, 5, 5)
    out = SCG(mode="first")(torch.rand(2, 5, 5), [flat_feat, flat_feat], (9, 11))
    assert torch.equal(out, torch.zeros(2, 9, 11))
    zero_feat = torch.zeros(2, 8, 5, 5)
    for variant in ("official", "paper"):
        out = SCG(variant=variant)(torch.rand(2, 5, 5), [zero_feat, zero_feat], (9, 11))
        assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1


def _random_batch(n=3, grid=(6, 6), channels=8, seed=1):
    generator = torch.Generator().manual_seed(seed)
    taps = [torch.rand(n, channels, *grid, generator=generator) for _ in range(2)]
    cam = torch.randn(n, *grid, generator=generator)
    return taps, cam


@pytest.mark.parametrize("variant", ["official", "paper"])
def test_batch_equals_per_image_and_chunked_equals_unchunked(variant):
    taps, cam = _random_batch()
    sizes = [(13, 17), (20, 9), (13, 17)]
    scg = SCG(variant=variant)
    batched = scg(cam, taps, sizes)
    chunked = SCG(variant=variant, chunk_size=1)(cam, taps, sizes)
    assert isinstance(batched, list) and [tuple(m.shape) for m in batched] == sizes
    for i, size in enumerate(sizes):
        single = scg(cam[i : i + 1], [t[i : i + 1] for t in taps], size)[0]
        torch.testing.assert_close(batched[i], single, atol=1e-6, rtol=0)
        torch.testing.assert_close(chunked[i], batched[i], atol=1e-6, rtol=0)
    together = scg(cam, taps, (13, 17))
    assert together.shape == (3, 13, 17)
    torch.testing.assert_close(together[2], batched[2], atol=1e-6, rtol=0)


def _class_maps(n=3, classes=6, grid=(6, 6), seed=3):
    return torch.randn(n, classes, *grid, generator=torch.Generator().manual_seed(seed))


# The post-processor contract of every registered post-processor (K class maps in one call
# equal one call per class, [0, 1], sizes) is in tests/test_postprocessors.py.


def test_scg_computes_the_self_correlation_once_for_all_classes(monkeypatch):
    taps, _ = _random_batch()
    layers = []
    matrices = SCG._matrices
    monkeypatch.setattr(
        SCG,
        "_matrices",
        lambda self, feat, wanted: layers.append(feat.shape[0]) or matrices(self, feat, wanted),
    )
    SCG()(_class_maps(classes=6), taps, (12, 12))
    assert layers == [3, 3]  # each layer once, for the three images and six classes together
    layers.clear()
    SCG(chunk_size=2)(_class_maps(classes=6), taps, (12, 12))
    assert layers == [2, 2, 1, 1]


def test_explain_gives_every_intermediate_map_per_class():
    taps, _ = _random_batch()
    cams = _class_maps(classes=4)
    scg = SCG()
    result = scg.explain(cams, taps, [(13, 17), (20, 9), (13, 17)])
    for key in ("cam", "object", "background", "grid_final"):
        assert result[key].shape == (3, 4, 6, 6)
    assert [tuple(m.shape) for m in result["final"]] == [(4, 13, 17), (4, 20, 9), (4, 13, 17)]
    one = scg.explain(cams[:, 3], taps, [(13, 17), (20, 9), (13, 17)])
    for key in ("cam", "object", "background", "grid_final"):
        assert one[key].shape == (3, 6, 6) and torch.equal(one[key], result[key][:, 3])
    assert torch.equal(one["final"][1], result["final"][1][3])


def test_default_chunk_bounds_memory_for_28x28_taps():
    scg = SCG()
    positions = 28 * 28
    chunk = scg._chunk_size(positions)
    assert 1 <= chunk < 64  # batch 64 of 784 positions is split
    assert chunk * 10 * positions**2 * 4 <= 2**30
    assert scg._chunk_size(14 * 14) >= 64  # VGG16's 14 x 14 taps run in one chunk
    assert SCG(chunk_size=5)._chunk_size(positions) == 5


def test_modes_orders_and_variants_behave():
    taps, cam = _random_batch(n=2)
    first = SCG(mode="first").fused_correlation(taps)[0]
    second = SCG(mode="second").fused_correlation(taps)[0]
    combined = SCG(mode="combined").fused_correlation(taps)[0]
    expected_first = sum(SCG().self_correlation(t).first for t in taps)
    torch.testing.assert_close(first, expected_first)
    assert not torch.allclose(first, second) and not torch.allclose(second, combined)
    order2 = SCG(order=2, so_th=0.0).self_correlation(taps[0]).higher
    order3 = SCG(order=3, so_th=0.0).self_correlation(taps[0]).higher
    assert not torch.allclose(order2, order3)
    paper = SCG(variant="paper", so_th=0.0).self_correlation(taps[0])
    # Paper: each point's map of S^h / (HW)^(h-1) is min-max normalized to [0, 1].
    torch.testing.assert_close(paper.higher.amax(dim=1), torch.ones(2, 36))
    torch.testing.assert_close(paper.higher.amin(dim=1), torch.zeros(2, 36))
    assert not torch.allclose(paper.higher, order2)
    official_out = SCG()(cam, taps, (12, 12))
    paper_out = SCG(variant="paper")(cam, taps, (12, 12))
    assert not torch.allclose(official_out, paper_out)


def test_paper_order_h_is_the_mean_over_intermediate_points():
    taps, _ = _random_batch(n=1, grid=(3, 3))
    scg = SCG(variant="paper", order=3, fo_th=0.0, so_th=0.0)
    feat = taps[0][0].reshape(8, 9).T
    unit = feat / feat.norm(dim=1, keepdim=True)
    s = torch.relu(unit @ unit.T)
    mean_paths = torch.einsum("ik,kl,lj->ij", s, s, s) / 9**2
    expected = (mean_paths - mean_paths.amin(0)) / (mean_paths.amax(0) - mean_paths.amin(0) + 1e-10)
    torch.testing.assert_close(scg.self_correlation(taps[0]).higher[0], expected)


def test_taps_of_different_sizes_are_resized_to_the_finer_grid():
    taps, cam = _random_batch(n=2, grid=(8, 8))
    coarse = torch.rand(2, 8, 4, 4)
    upsampled = torch.nn.functional.interpolate(
        coarse, size=(8, 8), mode="bilinear", align_corners=False
    )
    scg = SCG()
    out = scg(cam, [coarse, taps[1]], (16, 16))
    torch.testing.assert_close(out, scg(cam, [upsampled, taps[1]], (16, 16)))


def test_invalid_arguments_raise_wsolbench_errors():
    for kwargs, message in (
        ({"mode": "third"}, "SCG mode must be one of first, second, combined, not 'third'"),
        ({"variant": "new"}, "SCG variant must be one of official, paper, not 'new'"),
        ({"order": 1}, "SCG order must be an integer >= 2, not 1"),
        ({"chunk_size": 0}, "SCG chunk_size must be >= 1, not 0"),
    ):
        with pytest.raises(WsolbenchError, match=message):
            SCG(**kwargs)
    taps, cam = _random_batch(n=2)
    with pytest.raises(WsolbenchError, match=r"\(N, K, h, w\) or \(N, h, w\) tensor, got \(6, 6\)"):
        SCG()(cam[0], taps, (8, 8))
    with pytest.raises(WsolbenchError, match="non-empty list of .N, C, h, w. feature taps"):
        SCG()(cam, taps[0], (8, 8))
    for size in ([(8, 8)], 8, [(8, 8), 8]):
        with pytest.raises(
            WsolbenchError, match=r"image_size must be one \(H, W\) or 2 \(H, W\) pairs"
        ):
            SCG()(cam, taps, size)
    with pytest.raises(WsolbenchError, match=r"\(N, K, h, w\) or \(N, h, w\)"):
        create_postprocessor("none")(cam[0], None, (8, 8))
    with pytest.raises(WsolbenchError, match=r"class map batch 3 != taps batch 2"):
        SCG()(_class_maps(n=3), taps, (8, 8))
    with pytest.raises(
        WsolbenchError, match=r"unknown SCG preset 'voc' \(available: ilsvrc, cub\)"
    ):
        SCG.from_preset("voc")


def test_presets_hold_the_official_values():
    cub = SCG.from_preset("cub")
    assert (cub.fo_th, cub.so_th, cub.so_weight, cub.fg_th, cub.bg_th) == (0.1, 0.5, 2.0, 0.1, 0.05)
    ilsvrc = SCG.from_preset("ilsvrc", order=3)
    assert (ilsvrc.fo_th, ilsvrc.so_th, ilsvrc.so_weight, ilsvrc.order) == (0.2, 0.2, 1.0, 3)


def test_registry_entries_run_with_the_postprocessor_signature():
    assert {"none", "scg"} <= set(list_postprocessors())
    taps, cam = _random_batch(n=2)
    scg_maps = create_postprocessor("scg", fo_th=0.1)(cam, taps, (10, 12))
    assert scg_maps.shape == (2, 10, 12) and 0 <= scg_maps.min() and scg_maps.max() <= 1
    identity = create_postprocessor("none")
    maps = identity(cam, taps, (10, 12))
    relu = cam.clamp(min=0)
    low, high = relu.amin(dim=(1, 2), keepdim=True), relu.amax(dim=(1, 2), keepdim=True)
    expected = torch.nn.functional.interpolate(
        ((relu - low) / (high - low + 1e-10))[:, None],
        size=(10, 12),
        mode="bilinear",
        align_corners=False,
    )[:, 0]
    torch.testing.assert_close(maps, expected)
    listed = identity(cam, None, [(5, 7), (10, 12)])
    assert [tuple(m.shape) for m in listed] == [(5, 7), (10, 12)]
    torch.testing.assert_close(listed[1], maps[1])


class TinyNet(nn.Module):
    """A torchvision-like classifier: features, global pooling, fc."""

    def __init__(self, classes: int = 3):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 6, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 8, 3, padding=1),
            nn.ReLU(),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, classes)

    def forward(self, x):
        return self.fc(self.pool(self.features(x)).flatten(1))


def test_extractor_captures_layers_computes_cams_and_releases_hooks():
    torch.manual_seed(0)
    model = TinyNet().eval()
    images = torch.rand(2, 3, 16, 16)
    layers = [model.features[2], model.features[4]]
    with SCGExtractor(model, target_layers=layers) as extractor:
        assert all(len(layer._forward_hooks) == 1 for layer in layers)
        result = extractor.explain(images, targets=[1, 2])
        maps = extractor(images, targets=[1, 2])
        given = extractor(images, torch.randn(2, 8, 8))
        from_fn = extractor(images, lambda output, taps: taps[1].mean(dim=1))
    assert all(len(layer._forward_hooks) == 0 for layer in layers)
    assert maps.shape == given.shape == from_fn.shape == (2, 16, 16)
    features = model.features(images)
    cam = (model.fc.weight[[1, 2]][:, :, None, None] * features).mean(dim=1)
    torch.testing.assert_close(result["taps"][1], features)
    torch.testing.assert_close(maps, SCG()(cam, [model.features[:3](images), features], (16, 16)))
    with pytest.raises(WsolbenchError, match="hooks already released"):
        extractor(images, targets=[0, 0])


def test_extractor_uses_top1_class_by_default():
    torch.manual_seed(1)
    model = TinyNet().eval()
    images = torch.rand(2, 3, 16, 16)
    with SCGExtractor(
        model, [model.features[2], model.features[4]], scg=SCG.from_preset("cub")
    ) as extractor:
        top1 = model(images).argmax(dim=1).tolist()
        torch.testing.assert_close(extractor(images), extractor(images, top1))


def test_cli_scg_figures_writes_pngs(tmp_path, capsys):
    from wsolbench.cli import main
    from wsolbench.data.synthetic import generate
    from wsolbench.engine.checkpoint import save_checkpoint
    from wsolbench.registry import create_method

    torch.manual_seed(0)
    data = generate(
        tmp_path / "synth",
        num_classes=2,
        image_size=32,
        train_per_class=1,
        val_per_class=1,
        test_per_class=1,
    )
    method = create_method("cam", backbone="tinyvgg", num_classes=2)
    checkpoint = save_checkpoint(
        tmp_path / "cam.pt",
        {
            "model": method.state_dict(),
            "method": "cam",
            "backbone": "tinyvgg",
            "hparams": dict(method.hparams),
            "num_classes": 2,
            "config": {"image_size": 32},
        },
    )
    out = tmp_path / "figures"
    code = main(
        [
            "scg",
            "figures",
            "--checkpoint",
            str(checkpoint),
            "--data",
            str(data),
            "--out",
            str(out),
            "--num-images",
            "2",
            "--points",
            "0.5,0.5",
            "0.1,0.9",
            "--device",
            "cpu",
            "--no-progress",
        ]
    )
    assert code == 0
    capsys.readouterr()
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert len(pngs) == 4 and sum(name.endswith("_scg_process.png") for name in pngs) == 2
    assert all((out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for name in pngs)
    assert (
        main(
            [
                "scg",
                "figures",
                "--checkpoint",
                str(checkpoint),
                "--data",
                str(data),
                "--out",
                str(out),
                "--points",
                "2,0.5",
            ]
        )
        == 2
    )  # a bad point is one clear error line
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and len(err.splitlines()) == 1
    assert "--points fractions must lie in [0, 1], got '2,0.5'" in err


class DictNet(TinyNet):
    """Outputs like a wsolbench method: a dict with logits and every class's map."""

    def forward(self, x):
        features = self.features(x)
        cams = torch.einsum("kc,nchw->nkhw", self.fc.weight, features) + 1.0
        return {"logits": self.fc(self.pool(features).flatten(1)), "cams": cams}


def test_extractor_takes_class_maps_from_a_method_output():
    torch.manual_seed(2)
    model = DictNet().eval()
    images = torch.rand(2, 3, 16, 16)
    with SCGExtractor(model, [model.features[2], model.features[4]]) as extractor:
        result = extractor.explain(images, targets=torch.tensor([2, 0]))
    outputs = model(images)
    cam = outputs["cams"][torch.arange(2), torch.tensor([2, 0])]
    torch.testing.assert_close(result["final"], SCG()(cam, result["taps"], (16, 16)))
    with SCGExtractor(model, [model.features[2], model.features[4]]) as extractor:
        maps = extractor(images, outputs["cams"][:, :2])  # two classes' maps per image
    assert maps.shape == (2, 2, 16, 16)
    assert torch.equal(maps[:, 1], SCG()(outputs["cams"][:, 1], result["taps"], (16, 16)))


def test_resize_is_opencv_on_cpu_and_matches_interpolate_closely():
    """The SPA code resizes maps with cv2.resize; on the CPU we call it, so boxes match exactly."""
    import cv2
    import torch.nn.functional as F

    from wsolbench.methods.scg import resize_bilinear

    maps = torch.rand(3, 7, 9, generator=torch.Generator().manual_seed(1))
    resized = resize_bilinear(maps, (50, 31))
    for m, r in zip(maps, resized):
        assert np.array_equal(
            r.numpy(), cv2.resize(m.numpy(), (31, 50), interpolation=cv2.INTER_LINEAR)
        )
    other = F.interpolate(maps[:, None], size=(50, 31), mode="bilinear", align_corners=False)[:, 0]
    assert torch.allclose(resized, other, atol=1e-5)
