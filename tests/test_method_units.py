"""Units of the methods on tiny hand-made tensors whose answers are known."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from wsolbench.methods.acol import erase_discriminative
from wsolbench.methods.adl import AttentionDropout
from wsolbench.methods.cutmix import MixedTargets, cutmix
from wsolbench.methods.has import hide_patches
from wsolbench.methods.spa import restricted_activation_loss
from wsolbench.methods.spg import IGNORE, masked_bce, self_produced_mask


# -- HaS -----------------------------------------------------------------------------------------
def test_has_zeroes_whole_patches_at_the_rate():
    torch.manual_seed(0)
    images = torch.rand(8, 3, 64, 64) + 1.0  # strictly positive: zero only where hidden
    hidden = hide_patches(images, grid_size=4, drop_rate=0.5)
    patches = hidden.view(8, 3, 16, 4, 16, 4).permute(0, 2, 4, 1, 3, 5).reshape(8 * 256, -1)
    zero = (patches == 0).all(dim=1)
    untouched = (
        patches == images.view(8, 3, 16, 4, 16, 4).permute(0, 2, 4, 1, 3, 5).reshape(8 * 256, -1)
    ).all(dim=1)
    assert bool((zero | untouched).all())  # each patch is all-zero or untouched
    assert 0.44 < zero.float().mean().item() < 0.56  # 2048 patches: 5 sigma around 0.5


def test_has_crops_border_patches_and_respects_extremes():
    images = torch.ones(2, 1, 10, 10)
    assert hide_patches(images, grid_size=4, drop_rate=1.0).abs().sum() == 0
    assert torch.equal(hide_patches(images, grid_size=4, drop_rate=0.0), images)
    torch.manual_seed(3)
    out = hide_patches(images, grid_size=4, drop_rate=0.5)
    assert out.shape == images.shape
    # the 2-pixel border strip (patch column 2) is constant within each patch
    for row in range(3):
        block = out[:, :, row * 4 : (row + 1) * 4, 8:10]
        assert bool(((block == 0).all(dim=(1, 2, 3)) | (block == 1).all(dim=(1, 2, 3))).all())


# -- ACoL ----------------------------------------------------------------------------------------
def test_acol_erases_exactly_positions_at_or_above_threshold():
    values = torch.tensor(
        [[0.0, 1.0, 2.0, 3.0], [4.0, 5.0, 6.0, 7.0], [8.0, 9.0, 10.0, 7.0], [1.0, 2.0, 3.0, 4.0]]
    )
    class_maps = torch.zeros(1, 3, 4, 4)
    class_maps[0, 2] = values  # normalized = values / 10; class 1's map is ignored
    class_maps[0, 1] = -values
    features = torch.rand(1, 5, 4, 4) + 1.0
    erased = erase_discriminative(features, class_maps, torch.tensor([2]), threshold=0.7)
    expected_erased = values / 10 >= 0.7  # 7 (== 0.7 exactly), 8, 9, 10
    assert int(expected_erased.sum()) == 5
    assert bool((erased[0][:, expected_erased] == 0).all())
    assert torch.equal(erased[0][:, ~expected_erased], features[0][:, ~expected_erased])


# -- ADL -----------------------------------------------------------------------------------------
def adl_features():
    # channel means: [[1, 2], [3, 4]] -> drop mask keeps attention < 0.9 * 4 = 3.6
    a = torch.tensor([[0.0, 2.0], [4.0, 6.0]])
    b = torch.tensor([[2.0, 2.0], [2.0, 2.0]])
    return torch.stack([a, b]).unsqueeze(0)


def test_adl_drop_mask_and_importance_map():
    layer = AttentionDropout(drop_rate=0.75, gamma=0.9)
    features = adl_features()
    attention = layer.attention(features)
    assert torch.equal(attention[0, 0], torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
    assert torch.equal(layer.drop_mask(attention)[0, 0], torch.tensor([[1.0, 1.0], [1.0, 0.0]]))
    layer.train()
    always_drop = AttentionDropout(drop_rate=1.0, gamma=0.9).train()
    expected = features * torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    assert torch.equal(always_drop(features), expected)
    never_drop = AttentionDropout(drop_rate=0.0, gamma=0.9).train()
    torch.testing.assert_close(never_drop(features), features * torch.sigmoid(attention))
    assert layer.eval()(features) is features  # identity at eval


def test_adl_one_draw_per_batch_at_the_rate():
    torch.manual_seed(0)
    layer = AttentionDropout(drop_rate=0.75, gamma=0.9).train()
    features = adl_features().repeat(4, 1, 1, 1)
    drops = 0
    for _ in range(400):
        out = layer(features)
        dropped = out[:, :, 1, 1] == 0  # the max position is zeroed only by the drop mask
        assert bool(dropped.all()) or not bool(dropped.any())  # the same choice for the batch
        drops += int(dropped.all())
    assert 0.68 < drops / 400 < 0.82


# -- CutMix --------------------------------------------------------------------------------------
def test_cutmix_lambda_is_the_unpasted_area_fraction():
    checked = 0
    for seed in range(20):
        torch.manual_seed(seed)
        images = torch.arange(1.0, 5.0).view(4, 1, 1, 1).expand(4, 3, 16, 20).clone()
        labels = torch.arange(4)
        mixed, targets = cutmix(images, labels, beta=1.0)
        assert isinstance(targets, MixedTargets)
        for i in range(4):
            source = int(targets.labels_b[i])  # labels == index here
            if source == i:
                continue
            changed = (mixed[i] != images[i]).all(dim=0)
            assert bool((mixed[i][:, changed] == source + 1).all())
            assert changed.float().mean().item() == pytest.approx(1.0 - targets.lam)
            checked += 1
    assert checked > 10


def test_cutmix_loss_mixes_the_two_cross_entropies():
    from wsolbench import create_method

    method = create_method("cutmix", num_classes=4)
    logits = torch.randn(3, 4)
    targets = MixedTargets(torch.tensor([0, 1, 2]), torch.tensor([3, 3, 0]), 0.3)
    expected = 0.3 * F.cross_entropy(logits, targets.labels) + 0.7 * F.cross_entropy(
        logits, targets.labels_b
    )
    torch.testing.assert_close(method.loss({"logits": logits}, targets), expected)


# -- SPG -----------------------------------------------------------------------------------------
def test_spg_mask_thresholds():
    attention = torch.zeros(1, 1, 8, 8)
    flat = attention.view(-1)
    flat[:50] = 0.8  # 50 >= 30 foreground pixels: no fallback
    flat[50:55] = 0.3  # between low and high: ignored
    flat[55:] = 0.005  # below low: background
    mask = self_produced_mask(attention, high=0.7, low=0.01).view(-1)
    assert bool((mask[:50] == 1).all())
    assert bool((mask[50:55] == IGNORE).all())
    assert bool((mask[55:] == 0).all())


def test_spg_mask_falls_back_to_70_percent_of_max_below_30_pixels():
    attention = torch.zeros(2, 1, 8, 8)
    first = attention[0].view(-1)
    first[:10], first[10:50] = 0.5, 0.4  # nothing above 0.7 -> threshold 0.35
    second = attention[1].view(-1)
    second[:40] = 0.9  # 40 above 0.7: normal threshold
    second[40:50] = 0.65
    mask = self_produced_mask(attention, high=0.7, low=0.01)
    assert bool((mask[0].view(-1)[:50] == 1).all()) and bool((mask[0].view(-1)[50:] == 0).all())
    assert int((mask[1] == 1).sum()) == 40 and int((mask[1] == IGNORE).sum()) == 10


def test_spg_bce_ignores_255():
    logits = torch.tensor([0.5, -1.0, 2.0, 3.0])
    mask = torch.tensor([1.0, 0.0, IGNORE, IGNORE])
    expected = F.binary_cross_entropy_with_logits(logits[:2], mask[:2])
    torch.testing.assert_close(masked_bce(logits, mask), expected)
    assert masked_bce(logits, torch.full_like(mask, IGNORE)) == 0


# -- SPA's restricted activation loss -----------------------------------------------------------
def test_ram_loss_matches_a_hand_computation():
    maps = (
        torch.tensor(
            [
                [[[2.0, 0.0], [0.1, -1.0]]],
                [[[0.0, 0.0], [0.2, 1.0]]],
                [[[-2.0, 0.0], [0.3, 0.5]]],
            ]
        )
        .permute(1, 0, 2, 3)
        .contiguous()
    )  # (N=1, C=3, 2, 2)
    label, tau, gap = 0, 0.1, 0.2
    variances = []
    for y in range(2):
        for x in range(2):
            scores = [float(maps[0, c, y, x]) for c in range(3)]
            exps = [math.exp(s) for s in scores]
            probs = [e / sum(exps) for e in exps]
            mean = sum(probs) / 3
            variances.append(sum((p - mean) ** 2 for p in probs) / 2)  # unbiased
    low, high = min(variances), max(variances)
    total = 0.0
    for index, v in enumerate(variances):
        vn = (v - low) / (high - low + 1e-15)
        s = 1 / (1 + math.exp(-float(maps[0, label].view(-1)[index])))
        total += s * (vn < tau) + (1 - s) * (vn > tau + gap)
    expected = total / 4
    got = restricted_activation_loss(maps, torch.tensor([label]), tau, gap)
    assert got.item() == pytest.approx(expected, rel=1e-5)
    assert expected > 0


def test_ram_loss_gradient_flows_only_through_the_class_map():
    maps = torch.randn(2, 4, 3, 3, requires_grad=True)
    labels = torch.tensor([1, 3])
    restricted_activation_loss(maps, labels, 0.1, 0.2).backward()
    other = [c for c in range(4) if c != 1]
    assert maps.grad[0, other].abs().sum() == 0  # masks carry no gradient
    assert maps.grad[0, 1].abs().sum() > 0
