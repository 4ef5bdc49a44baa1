"""BAS, TS-CAM and SCM equal their official networks: same weights -> same logits, evaluation
maps, training-time outputs, losses and gradients.

Reference values: ``tests/data/bas_parity.npz`` and ``tests/data/vit_parity.npz`` (sources inside
them), computed OUTSIDE the repository by running the official code in float64 with the seeded
weights of tests/parity_weights.py (``seeded_tensor``: one generator per reference key), on
``inputs(64)`` (BAS) or ``inputs(224)`` (DeiT-S: its position embeddings are made for 224 px),
labels [4, 2], 5 classes:

- BAS (wpy1999/BAS @ 54c395e), both of its codes, ``CUB/Model/*.py`` and ``ILSVRC/Model/*.py``,
  on VGG16, ResNet50, InceptionV3 and MobileNetV1: ``model = Model.<arch>.model(args,
  pretrained=False).double()``; in eval mode ``model(x, full(c))`` for every class c (the map is
  ``model.x_saliency``, as ``BAS_inference.py`` reads it) and ``model(x, labels, k)`` for k = 3, 5
  (the CUB inference's top-k mean); in train mode ``model(x, labels, 1)``, the loss composed as
  ``CUB/train.py`` (``loss_1 + w2 loss_2 + bas_loss()``) or ``ILSVRC/train.py`` (``loss_cls +
  loss_loc``) do, then ``backward()``: the sum and absolute sum of every optimized parameter's
  gradient. To run below 224 px on a CPU in float64, the copy was patched: ``torch.zeros(...)
  .cuda()`` buffers made on the input's device, dtype and tap size (28 x 28 at 224), the class
  count from ``args.num_classes``, ``nn.AvgPool2d(14)`` -> ``nn.AdaptiveAvgPool2d(1)`` (the
  same global average on the 14 x 14 maps at 224).
- TS-CAM (vasgaowei/TS-CAM @ 25aece4, timm 0.3.2) and SCM (hbai98/SCM @ be5bdfa, timm 0.6.13):
  ``deit_<tscam|scm>_small_patch16_224(pretrained=False, num_classes=5).double()``; eval mode
  ``model(x)`` with hooks on ``head`` (the semantic maps S) and on each block (its attention,
  kept as per-block, per-image, per-head sums and products with 4 seeded random vectors of the
  class token's attention to the patches); train mode (drop_path 0) ``CrossEntropyLoss(model(x),
  labels)`` and ``backward()``; SCM's diffused maps and attention after its last layer.

Here each method is built with ``create_method``, the same tensors reach it in the reference's
checkpoint naming (``module.``-prefixed for ILSVRC, TS-CAM and SCM, with ILSVRC's ``*_copy``
tensors) through ``load_reference_state`` (what ``wsolbench checkpoint import`` does), and
everything must agree within 1e-4 of the values' scale.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from parity_weights import inputs, reference_state

from wsolbench.engine.checkpoint import load_reference_state
from wsolbench.registry import create_method

DATA = Path(__file__).parent / "data"
LABELS = torch.tensor([4, 2])
NUM_CLASSES = 5
BAS_BACKBONES = {
    "vgg": "vgg16",
    "resnet": "resnet50",
    "inception": "inception_v3",
    "mobilenet": "mobilenet_v1",
}
BUFFERS = ("running_mean", "running_var", "num_batches_tracked")

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def bas_data():
    with np.load(DATA / "bas_parity.npz") as data:
        return {key: data[key] for key in data.files}


@pytest.fixture(scope="module")
def vit_data():
    with np.load(DATA / "vit_parity.npz") as data:
        return {key: data[key] for key in data.files}


def close(actual, expected, what: str) -> None:
    actual = torch.as_tensor(actual).detach().double()
    expected = torch.as_tensor(np.asarray(expected)).double()
    scale = float(expected.abs().max()) if expected.numel() else 1.0
    torch.testing.assert_close(
        actual, expected, rtol=1e-4, atol=1e-4 * scale, msg=lambda m: f"{what}: {m}"
    )


def build(name: str, backbone: str, **hparams):
    """The method in float64 with its tensors allocated but not initialized: every one is
    loaded from the reference's weights next."""
    with torch.device("meta"):
        method = create_method(name, backbone=backbone, num_classes=NUM_CLASSES, **hparams)
    return method.to_empty(device="cpu").double()


@functools.lru_cache(maxsize=1)
def seeded_cache(network: str) -> dict[str, torch.Tensor]:
    """Seeded tensors by reference key, shared by the variants of one network (made once)."""
    return {}


def load_reference(method, data, key: str, network: str, prefix: str) -> list[str]:
    """The seeded weights in the reference's own naming (``prefix`` + key), loaded through
    load_reference_state; checks that the mapping covers every reference tensor once. An ILSVRC
    checkpoint's copies are in the file (placeholders: the loader ignores their values). Returns
    the reference's optimized parameters."""
    keys, shapes = json.loads(str(data[f"{key}/keys"])), json.loads(str(data[f"{key}/shapes"]))
    unused = tuple(getattr(method, "reference_unused_prefixes", ()))
    copies = {k for k in keys if unused and k.startswith(unused)}
    assert sorted(method.reference_names().values()) == sorted(set(keys) - copies)
    cache = seeded_cache(network)
    for k, shape in zip(keys, shapes):
        if k not in copies and k not in cache:
            cache.update(reference_state([k], [shape]))
    state = {prefix + k: torch.empty(0) if k in copies else cache[k] for k in keys}
    load_reference_state(method, state)
    return [k for k in keys if not k.endswith(BUFFERS) and k not in copies]


def check_gradients(method, data, key: str, parameters: list[str]) -> None:
    by_reference = {method.reference_names()[n]: p for n, p in method.named_parameters()}
    assert sorted(by_reference) == sorted(parameters)
    grads = [by_reference[name].grad for name in parameters]
    grads = [torch.zeros(1) if g is None else g for g in grads]
    # Each tensor's gradient against its own magnitude (parameters no loss reaches have 0).
    magnitude = np.asarray(data[f"{key}/grad_abs_sum"])
    np.testing.assert_allclose(
        [float(g.abs().sum()) for g in grads], magnitude, rtol=1e-4, atol=0, err_msg=key
    )
    sums = np.array([float(g.sum()) for g in grads])
    wrong = np.abs(sums - data[f"{key}/grad_sum"]) > 1e-4 * magnitude
    assert not wrong.any(), f"{key}: gradient sums differ for {np.array(parameters)[wrong]}"


def test_reference_values_record_their_source(bas_data, vit_data):
    bas = json.loads(str(bas_data["source"]))
    assert bas["repository"] == "wpy1999/BAS" and bas["commit"] == "54c395e"
    vit = json.loads(str(vit_data["source"]))
    assert vit["tscam"]["commit"] == "25aece4" and vit["scm"]["commit"] == "be5bdfa"


@pytest.mark.parametrize(
    "arch, variant", [(a, v) for a in BAS_BACKBONES for v in ("cub", "ilsvrc")]
)
def test_bas_equals_reference(arch, variant, bas_data):
    key = f"{variant}/{arch}"
    method = build("bas", BAS_BACKBONES[arch], variant=variant, top_k=1)
    # CUB's code saves bare state dicts, ILSVRC's a DataParallel one with its copies.
    prefix = "module." if variant == "ilsvrc" else ""
    parameters = load_reference(method, bas_data, key, arch, prefix)
    x = inputs(64)
    assert float(x.sum()) == pytest.approx(float(bas_data[f"{key}/input_sum"]), rel=1e-12)
    method.eval()
    with torch.no_grad():
        outputs = method(x)
        every_class = torch.arange(NUM_CLASSES).expand(2, -1)
        close(outputs["logits"], bas_data[f"{key}/logits"], f"{key} logits")
        close(method.class_maps(outputs, every_class), bas_data[f"{key}/maps"], f"{key} maps")
        for k in (3, NUM_CLASSES):  # the CUB inference: the same top-k mean for any class asked
            method.top_k = k
            maps = method.class_maps(outputs, every_class)
            for c in range(NUM_CLASSES):
                close(maps[:, c], bas_data[f"{key}/top{k}_map"], f"{key} top-{k} map")
    method.train()
    outputs = method(x, LABELS)
    terms = method.loss_terms(outputs, LABELS)
    loss = method.loss(outputs, LABELS)
    close(outputs["logits"], bas_data[f"{key}/train_logits"], f"{key} training logits")
    close(outputs["logits_fg"], bas_data[f"{key}/train_logits_fg"], f"{key} score_2")
    erased = outputs["logits_erased"].gather(1, LABELS[:, None])[:, 0]
    close(erased, bas_data[f"{key}/train_x_erase_sum"], f"{key} erased-branch score")
    close(outputs["saliency"][:, 0], bas_data[f"{key}/train_saliency"], f"{key} x_saliency")
    close(terms["loc"], bas_data[f"{key}/train_loss_loc"], f"{key} BAS loss")
    cls = (
        terms["cls"] if variant == "cub" else terms["cls"] + method.foreground_weight * terms["fg"]
    )
    close(cls, bas_data[f"{key}/train_loss_cls"], f"{key} classification loss")
    if variant == "cub":
        close(terms["fg"], bas_data[f"{key}/train_loss_fg"], f"{key} score_2 loss")
    close(loss, bas_data[f"{key}/train_loss"], f"{key} loss")
    loss.backward()
    check_gradients(method, bas_data, key, parameters)


@pytest.mark.slow  # DeiT-S at 224 px in float64 (its position embeddings are made for 224)
@pytest.mark.parametrize("name", ["tscam", "scm"])
def test_transformers_equal_reference(name, vit_data):
    method = build(name, "deit_small", drop_path=0.0)  # as the reference ran: deterministic
    # TS-CAM's and SCM's train_cam.py save {"epoch", "state_dict" (DataParallel), "best_map"}.
    parameters = load_reference(method, vit_data, name, "deit_small", "module.")
    x = inputs(224)
    assert float(x.sum()) == pytest.approx(float(vit_data[f"{name}/input_sum"]), rel=1e-12)
    method.eval()
    with torch.no_grad():
        outputs = method(x)
    close(outputs["logits"], vit_data[f"{name}/logits"], f"{name} logits")
    close(outputs["semantic"], vit_data[f"{name}/semantic"], f"{name} semantic maps")
    classes = torch.arange(NUM_CLASSES).expand(2, -1)
    close(method.class_maps(outputs, classes), vit_data[f"{name}/cams"], f"{name} maps")
    if name == "tscam":
        rows = outputs["taps"]["attention"].transpose(0, 1)  # (blocks, N, heads, P)
        probes = torch.randn(
            rows.shape[-1], 4, generator=torch.Generator().manual_seed(2021), dtype=torch.float64
        )
        close(rows.sum(-1), vit_data[f"{name}/attention_sum"], "per-head attention sums")
        close(rows @ probes, vit_data[f"{name}/attention_probes"], "per-head attention")
    else:
        close(outputs["coupling"][:, 0], vit_data[f"{name}/pred_cam"], "normalized attention")
    method.train()
    outputs = method(x, LABELS)
    loss = method.loss(outputs, LABELS)
    close(outputs["logits"], vit_data[f"{name}/train_logits"], f"{name} training logits")
    close(loss, vit_data[f"{name}/train_loss"], f"{name} loss")
    if name == "scm":
        close(outputs["diffused"], vit_data[f"{name}/train_x"], "diffused semantic maps")
        close(outputs["diffused_cam"], vit_data[f"{name}/train_cam"], "diffused attention")
    loss.backward()
    check_gradients(method, vit_data, name, parameters)


# -- `wsolbench checkpoint import` on files in each official format ----------------------------
def official_file(path: Path, data, key: str, layout: str) -> Path:
    """A checkpoint file as the reference code writes it, holding the parity generator's seeded
    weights in float32 (the references train in fp32): BAS's CUB train.py a bare state dict
    (legacy serialization), its ILSVRC train.py a DataParallel state dict with the copies,
    TS-CAM's / SCM's train_cam.py {"epoch", "state_dict" (DataParallel), "best_map"}."""
    keys, shapes = json.loads(str(data[f"{key}/keys"])), json.loads(str(data[f"{key}/shapes"]))
    prefix = "" if layout == "bas-cub" else "module."
    state = {
        k: v.float() if v.is_floating_point() else v
        for k, v in reference_state(keys, shapes, prefix).items()
    }
    if layout == "bas-cub":
        torch.save(state, path, _use_new_zipfile_serialization=False)
    elif layout == "bas-ilsvrc":
        torch.save(state, path)
    else:
        torch.save({"epoch": 30, "state_dict": state, "best_map": 91.5}, path)
    return path


@pytest.mark.slow  # files of full-size networks (about 0.1-0.2 GB each)
@pytest.mark.parametrize(
    "method, backbone, key, layout, hparams",
    [
        ("bas", "mobilenet_v1", "cub/mobilenet", "bas-cub", {"variant": "cub", "top_k": 1}),
        (
            "bas",
            "mobilenet_v1",
            "ilsvrc/mobilenet",
            "bas-ilsvrc",
            {"variant": "ilsvrc", "top_k": 1},
        ),
        (
            "bas",
            "inception_v3",
            "ilsvrc/inception",
            "bas-ilsvrc",
            {"variant": "ilsvrc", "top_k": 1},
        ),
        ("tscam", "deit_small", "tscam", "timm-train", {}),
        ("scm", "deit_small", "scm", "timm-train", {}),
    ],
)
def test_checkpoint_import_reads_each_official_format(
    method, backbone, key, layout, hparams, bas_data, vit_data, tmp_path
):
    from wsolbench.cli import main
    from wsolbench.engine.checkpoint import load_model

    data = bas_data if method == "bas" else vit_data
    source = official_file(tmp_path / "official.pth", data, key, layout)
    out = tmp_path / "imported.pt"
    flags = [f"--hparam={k}={v}" for k, v in hparams.items()]
    arguments = ["checkpoint", "import", str(source), "--method", method, "--backbone", backbone]
    assert main([*arguments, "--num-classes", "5", *flags, "--out", str(out)]) == 0
    model = load_model(out)  # the wsolbench checkpoint, rebuilt with its hyperparameters
    x = inputs(64 if method == "bas" else 224).float()
    with torch.no_grad():
        outputs = model(x)
    close(outputs["logits"], data[f"{key}/logits"], f"{key} logits after import")
    every_class = torch.arange(NUM_CLASSES).expand(2, -1)
    maps = model.class_maps(outputs, every_class)
    close(maps, data[f"{key}/maps" if method == "bas" else f"{key}/cams"], f"{key} maps")
