"""Every (method, backbone) pair equals wsolevaluation's network, with the same weights.

Reference values: ``tests/data/parity_wsolevaluation.npz``, computed OUTSIDE the repository by
running clovaai/wsolevaluation at commit 96f4b88 (``wsol/vgg.py``, ``wsol/resnet.py``,
``wsol/inception.py``, ``wsol/method/*``) on current torch, unmodified (only
``PYTHONDONTWRITEBYTECODE=1``; the models are built with ``pretrained=False`` so no download or
``.cuda()`` runs). How to reproduce them, for each backbone in (vgg16, resnet50, inception_v3),
architecture type in (cam, adl, acol, spg) and large_feature_map in (False, True):

1. ``model = wsol.<backbone>(architecture_type, num_classes=5, large_feature_map=...,
   adl_drop_rate=0.75, adl_drop_threshold=0.9, acol_drop_threshold=0.7).eval()``;
2. ``state = reference_state({k: v.shape for k, v in model.state_dict().items()})`` (this
   file's recipe: one seeded generator per key), ``model.load_state_dict(state)``;
3. ``images = reference_images()`` (2 x 3 x 64 x 64, seeded);
4. under ``torch.no_grad()``: ``logits = model(images)["logits"]`` and, for every class c,
   ``model(images, torch.full((2,), c), return_cam=True)`` (the reference's evaluation path,
   ``inference.py`` passes the labels): ``maps[c]`` (N, h, w);
5. save ``<backbone>-<type>[-lfs]/{logits, maps, keys, shapes, weights_sum, images_sum}``, plus
   the training-only outputs of ``model(images)`` that eval maps do not show: ACoL's
   ``logit_b`` (B on features erased by the predicted class), SPG's ``logits_b1``,
   ``logits_b2``, ``logits_c`` (where its branches tap the backbone).

The test builds wsolbench's model, loads the same tensors through ``reference_names()``
(``load_reference_state``), and compares logits and every class's evaluation map, read through
``class_maps`` as ``predict`` (bench, infer) reads them, within 1e-4 of the values' scale.
CAM, HaS and CutMix share the ``cam`` networks, as in wsolevaluation (HaS and CutMix are checked
at 14x14 only, their networks being CAM's).
"""

from __future__ import annotations

import json
import math
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

import wsolbench
from wsolbench.engine.checkpoint import load_reference_state
from wsolbench.engine.infer import class_maps

DATA = Path(__file__).parent / "data" / "parity_wsolevaluation.npz"
SEED = 9
NUM_CLASSES = 5
IMAGE_SIZE = 64
ARCHITECTURE_TYPES = {
    "cam": "cam",
    "has": "cam",
    "cutmix": "cam",
    "adl": "adl",
    "acol": "acol",
    "spg": "spg",
}
BACKBONES = ("vgg16", "resnet50", "inception_v3")
# Every (method, backbone) pair at 14x14; every distinct network also with large_feature_map.
CASES = [(m, b, False) for m in sorted(ARCHITECTURE_TYPES) for b in BACKBONES] + [
    (m, b, True) for m in ("acol", "adl", "cam", "spg") for b in BACKBONES
]
# Reference output -> wsolbench output, for the branches that only training uses.
BRANCH_OUTPUTS = {
    "logit_b": "logits_b",
    "logits_b1": "logits_b1",
    "logits_b2": "logits_b2",
    "logits_c": "logits_c",
}


def reference_state(
    shapes: dict[str, tuple[int, ...]], seed: int = SEED
) -> dict[str, torch.Tensor]:
    """Deterministic weights for a state dict: one generator per key (seeded by the key's
    CRC32), He-scaled convolution/linear weights, BatchNorm statistics near identity."""
    state = {}
    for key, shape in shapes.items():
        generator = torch.Generator().manual_seed(seed * 2**32 + zlib.crc32(key.encode()))
        leaf = key.rsplit(".", 1)[-1]
        shape = tuple(shape)
        if leaf == "num_batches_tracked":
            value = torch.zeros(shape, dtype=torch.long)
        elif leaf == "running_var":
            value = 0.5 + torch.rand(shape, generator=generator)
        elif leaf == "running_mean":
            value = 0.1 * torch.randn(shape, generator=generator)
        elif leaf == "bias" or len(shape) == 1:  # biases, BatchNorm scales
            value = (1.0 if leaf == "weight" else 0.0) + 0.1 * torch.randn(
                shape, generator=generator
            )
        else:
            fan_in = math.prod(shape[1:])
            value = torch.randn(shape, generator=generator) * math.sqrt(2.0 / fan_in)
        state[key] = value
    return state


def reference_images(seed: int = SEED) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(2, 3, IMAGE_SIZE, IMAGE_SIZE, generator=generator)


def weights_sum(state: dict[str, torch.Tensor]) -> float:
    return float(sum(v.double().sum() for v in state.values()))


@pytest.fixture(scope="module")
def reference():
    with np.load(DATA) as data:
        return {key: data[key] for key in data.files}


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def assert_close_to_scale(actual: torch.Tensor, expected: np.ndarray, what: str) -> None:
    expected = torch.from_numpy(expected)
    scale = float(expected.abs().max())
    torch.testing.assert_close(
        actual.double(),
        expected.double(),
        rtol=1e-4,
        atol=1e-4 * scale,
        msg=lambda m: f"{what}: {m}",
    )


def test_reference_values_record_their_source(reference):
    source = json.loads(str(reference["source"]))
    assert source["repository"] == "clovaai/wsolevaluation" and source["commit"].startswith(
        "96f4b88"
    )
    assert "wsol/vgg.py" in source["files"]


@pytest.mark.parametrize(
    "method, backbone, large_feature_map",
    CASES,
    ids=[f"{m}-{b}-{'28x28' if lfs else '14x14'}" for m, b, lfs in CASES],
)
def test_same_network_as_wsolevaluation(method, backbone, large_feature_map, reference):
    key = f"{backbone}-{ARCHITECTURE_TYPES[method]}" + ("-lfs" if large_feature_map else "")
    keys = [str(k) for k in reference[f"{key}/keys"]]
    shapes = dict(zip(keys, json.loads(str(reference[f"{key}/shapes"]))))
    model = wsolbench.create_method(
        method, backbone=backbone, num_classes=NUM_CLASSES, large_feature_map=large_feature_map
    )
    # The mapping is complete and exact: every reference tensor, once, with its shape.
    names = model.reference_names()
    assert sorted(names.values()) == sorted(keys)
    own = model.state_dict()
    assert all(tuple(own[here].shape) == tuple(shapes[ref]) for here, ref in names.items())

    state = reference_state(shapes)
    assert weights_sum(state) == pytest.approx(float(reference[f"{key}/weights_sum"]), rel=1e-9)
    load_reference_state(model, state)
    model.eval()
    images = reference_images()
    assert float(images.double().sum()) == pytest.approx(
        float(reference[f"{key}/images_sum"]), rel=1e-9
    )
    with torch.no_grad():
        outputs = model(images)
        classes = torch.arange(NUM_CLASSES).expand(len(images), -1)
        maps = class_maps(model, outputs, classes)  # the path predict() takes
    assert_close_to_scale(outputs["logits"], reference[f"{key}/logits"], f"{key} logits")
    assert_close_to_scale(maps.transpose(0, 1), reference[f"{key}/maps"], f"{key} maps")
    branches = [name for name in BRANCH_OUTPUTS if f"{key}/{name}" in reference]
    assert len(branches) == {"acol": 1, "spg": 3}.get(ARCHITECTURE_TYPES[method], 0)
    for name in branches:
        own_name = BRANCH_OUTPUTS[name]
        assert_close_to_scale(outputs[own_name], reference[f"{key}/{name}"], f"{key} {own_name}")
