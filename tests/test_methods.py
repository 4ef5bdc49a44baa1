"""Every registered method on every registered backbone: shapes, gradients, train/eval,
state_dict (a newly registered method or backbone is tested with no change here)."""

from __future__ import annotations

import inspect
import json

import pytest
import torch
from engine_helpers import backbone_input_size, every_class_map, small_backbone

import wsolbench
from wsolbench.methods.base import COMMON_ARGUMENTS, WsolMethod, methods_on, runs_on
from wsolbench.registry import BACKBONES as BACKBONE_REGISTRY
from wsolbench.registry import METHODS as REGISTRY

pytestmark = pytest.mark.usefixtures("one_thread")  # the CI machine's cores are shared

NUM_CLASSES = 5
METHODS = wsolbench.list_methods()
BACKBONES = wsolbench.list_backbones()


def batch(backbone: str, n: int = 2, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    size = backbone_input_size(backbone)
    images = torch.randn(n, 3, size, size, generator=generator)
    labels = torch.arange(n) % NUM_CLASSES
    return images, labels


def build(name: str, backbone: str | None = None, **hparams):
    """The method on ``backbone``, by default its small one (tinyvgg, or tinyvit)."""
    torch.manual_seed(0)
    backbone = backbone or small_backbone(name)
    return wsolbench.create_method(name, backbone=backbone, num_classes=NUM_CLASSES, **hparams)


def test_all_methods_registered():
    assert set(METHODS) >= {"cam", "has", "acol", "spg", "adl", "cutmix", "spa"}
    assert set(METHODS) >= {"bas", "tscam", "scm"}


@pytest.mark.parametrize("backbone", BACKBONES)
def test_every_backbone_runs_some_method_and_refuses_the_others_clearly(backbone):
    running = methods_on(backbone)
    assert running
    for name in set(METHODS) - set(running):
        with pytest.raises(wsolbench.WsolbenchError, match=rf"no network on backbone '{backbone}'"):
            build(name, backbone)


@pytest.mark.parametrize("backbone", BACKBONES)
@pytest.mark.parametrize("name", METHODS)
def test_forward_backward_shapes(name, backbone):
    if not runs_on(name, backbone):
        return  # refused with one error: test_every_backbone_runs_some_method_...
    method = build(name, backbone).train()
    method.set_epoch(100)  # epoch-dependent losses (SPA's RAM) are on
    images, labels = batch(backbone)
    inputs, targets = method.prepare_batch(images, labels)
    outputs = method(inputs, labels)
    # The class maps live on a grid of the input side over their stride: the backbone's
    # feature grid, or the grid a method declares (BAS: its localization tap's).
    size = images.shape[-1]
    stride = getattr(method, "map_stride", method.backbone.feature_stride)
    maps = every_class_map(method, outputs)
    side = maps.shape[-1]
    assert side in (size // stride, -(-size // stride)), (side, stride)
    assert outputs["logits"].shape == (2, NUM_CLASSES)
    assert maps.shape == (2, NUM_CLASSES, side, side)
    assert torch.isfinite(maps).all()
    assert set(method.backbone.scg_taps) <= set(outputs["taps"])
    loss = method.loss(outputs, targets)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    groups = method.param_groups(lr=0.01, weight_decay=1e-4)
    for group in groups:  # every group (backbone and head) receives gradient
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in group["params"])


@pytest.mark.parametrize("name", METHODS)
def test_param_groups_cover_every_parameter_once(name):
    method = build(name)
    groups = method.param_groups(lr=0.01, weight_decay=1e-4)
    ids = [id(p) for group in groups for p in group["params"]]
    assert len(ids) == len(set(ids)) == len(list(method.parameters()))
    by_name = {group["name"]: group for group in groups}
    assert by_name["backbone"]["lr"] == pytest.approx(0.01)
    assert by_name["head"]["lr"] == pytest.approx(0.1)
    assert all(g["weight_decay"] == 1e-4 for g in groups)


@pytest.mark.parametrize("name", METHODS)
def test_eval_is_deterministic_and_leaves_inputs_untouched(name):
    method = build(name).eval()
    images, labels = batch("tinyvgg", n=3)
    inputs, targets = method.prepare_batch(images, labels)
    assert inputs is images and targets is labels  # HaS / CutMix only transform in training
    with torch.no_grad():
        first = method(images)
        second = method(images)
    assert torch.equal(first["logits"], second["logits"])
    assert torch.equal(every_class_map(method, first), every_class_map(method, second))


@pytest.mark.parametrize("name", ["adl", "has", "cutmix"])
def test_training_randomness_is_active(name):
    """The stochastic parts act in training: two training steps differ, eval ones do not."""
    method = build(name).train()
    images, labels = batch("tinyvgg", n=4)
    results = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        inputs, _ = method.prepare_batch(images, labels)
        with torch.no_grad():
            results.append(method(inputs, labels)["logits"])
    assert not torch.equal(results[0], results[1])


@pytest.mark.parametrize("name", METHODS)
def test_state_dict_round_trip(name, tmp_path):
    method = build(name).eval()
    path = tmp_path / "model.pth"
    torch.save({"state_dict": method.state_dict(), "hparams": method.hparams}, path)
    saved = torch.load(path, weights_only=True)
    torch.manual_seed(123)  # a different random init, fully overwritten by the load
    rebuilt = wsolbench.create_method(name, **saved["hparams"])
    rebuilt.load_state_dict(saved["state_dict"])
    rebuilt.eval()
    images, _ = batch("tinyvgg", n=2, seed=5)
    with torch.no_grad():
        a, b = method(images), rebuilt(images)
    assert torch.equal(a["logits"], b["logits"])
    assert torch.equal(every_class_map(method, a), every_class_map(rebuilt, b))


@pytest.mark.parametrize("name", METHODS)
def test_constructors_declare_only_their_hyperparameters(name):
    """The common arguments are declared once, by WsolMethod; each subclass's own
    ``__init__`` (what it wrote, under the recording wrapper) lists only its hyperparameters."""
    for cls in REGISTRY.get(name).__mro__:
        if cls is WsolMethod:
            break
        if "__init__" in cls.__dict__:
            written = inspect.signature(cls.__dict__["__init__"].__wrapped__).parameters
            assert not set(written) & set(COMMON_ARGUMENTS), cls.__name__


@pytest.mark.parametrize("name", METHODS)
def test_hparams_are_recorded_by_the_base_class(name):
    """hparams = backbone, num_classes, large_feature_map, then the constructor's own
    hyperparameters as used (defaults included), in that order; they rebuild the model."""
    own = {k: v for k, v in REGISTRY.defaults(name).items() if k not in COMMON_ARGUMENTS}
    backbone = small_backbone(name)
    large = BACKBONE_REGISTRY.get(backbone).large_feature_map_variant
    common = {"backbone": backbone, "num_classes": NUM_CLASSES, "large_feature_map": large}
    method = build(name, large_feature_map=large)
    # JSON, as configurations and checkpoints hold them: key order counts, tuples are lists.
    assert json.dumps(method.hparams) == json.dumps({**common, **own})
    # Values other than the defaults are recorded too: half of each numeric default (inside
    # every current method's valid range).
    numeric = {k: v for k, v in own.items() if type(v) in (int, float)}
    changed = {k: v / 2 if isinstance(v, float) else v // 2 for k, v in numeric.items()}
    method = build(name, **changed)
    assert {k: method.hparams[k] for k in changed} == changed
    torch.manual_seed(0)
    rebuilt = wsolbench.create_method(name, **method.hparams)
    assert rebuilt.hparams == method.hparams
    assert rebuilt.state_dict().keys() == method.state_dict().keys()
    assert all(
        torch.equal(a, b)
        for a, b in zip(rebuilt.state_dict().values(), method.state_dict().values())
    )


@pytest.mark.parametrize("backbone", ["tinyvgg", "resnet50"])
def test_cam_is_wsolevaluations_expression_bit_for_bit(backbone):
    """``(fc.weight[labels].view(N, K, 1, 1) * feature_map).mean(1)`` (wsol/vgg.py:70-74,
    wsol/resnet.py:106-110) as written, whichever classes share the call; an einsum over the
    channels (the same formula, summed in another order) is not."""
    method = build("cam", backbone).eval()
    images, _ = batch(backbone)
    with torch.no_grad():
        features, _ = method.backbone(images)
        hidden = method.cam_head.conv(features)
        outputs = method(images)
        weight = method.cam_head.fc.weight
        labels = torch.tensor([3, 1])
        expected = (weight[labels].view(*hidden.shape[:2], 1, 1) * hidden).mean(1)
        pairs = method.class_maps(outputs, torch.stack([labels, labels.flip(0)], 1))
        einsum = torch.einsum("ck,nkhw->nchw", weight, hidden) / hidden.shape[1]
    assert torch.equal(pairs[:, 0], expected)
    assert torch.equal(pairs[:, 1], method.class_maps(outputs, labels.flip(0)[:, None])[:, 0])
    assert not torch.equal(einsum[torch.arange(2), labels], expected)  # the test can fail
    # nn.AdaptiveAvgPool2d(1), then fc: the reference's logits.
    pooled = torch.nn.AdaptiveAvgPool2d(1)(hidden).flatten(1)
    assert torch.equal(outputs["logits"], method.cam_head.fc(pooled))


@pytest.mark.parametrize("backbone", ["vgg16", "inception_v3"])
def test_spa_logits_average_in_the_references_order(backbone):
    """The SPA code pools H then W (exper/val_spa.py:241); SPA2Net's InceptionV3 evaluates W
    then H (exper/test_sst.py:105) and trains H then W (inceptionv3_sst.py:287)."""
    method = build("spa", backbone).eval()
    images, _ = batch(backbone, n=1)
    with torch.no_grad():
        outputs = method(images)
        cams = outputs["cams"]
        expected = cams.mean(-1).mean(-1) if backbone == "inception_v3" else cams.mean(2).mean(2)
        assert torch.equal(outputs["logits"], expected)
        trained = method.train()(images)
    assert torch.equal(trained["logits"], trained["cams"].mean(2).mean(2))
    assert not torch.equal(cams.mean((2, 3)), expected)  # the order shows in the bits


def test_spa_ram_starts_at_ram_start_and_alpha_zero_disables_it():
    images, labels = batch("tinyvgg", n=4)
    method = build("spa", ram_start=3).train()
    outputs = method(images, labels)
    method.set_epoch(2)
    before = method.loss(outputs, labels)
    method.set_epoch(3)
    after = method.loss(outputs, labels)
    assert after > before  # L_ra >= 0 and almost surely > 0 on random maps
    without = build("spa", alpha=0.0, ram_start=0).train()
    out = without(images, labels)
    without.set_epoch(50)
    torch.testing.assert_close(
        without.loss(out, labels), torch.nn.functional.cross_entropy(out["logits"], labels)
    )


def test_hyperparameter_validation():
    with pytest.raises(
        wsolbench.WsolbenchError, match=r"has: need grid_size >= 1 and 0 < drop_rate <= 1"
    ):
        build("has", drop_rate=1.5)
    with pytest.raises(wsolbench.WsolbenchError, match=r"spa: need alpha >= 0, .* \(got -1, "):
        build("spa", alpha=-1)
