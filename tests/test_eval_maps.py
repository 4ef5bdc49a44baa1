"""Evaluation-time maps as the references compute them, through `predict` (bench, infer).

ACoL's map of a class erases by that class: wsolevaluation's inference passes the GT labels to
the model, so the GT-class map must not depend on what the classifier predicts; each top-k
class's map (spa protocol) erases by that class.
"""

from __future__ import annotations

import pytest
import torch
from engine_helpers import NUM_CLASSES

import wsolbench
from wsolbench.data.datasets import EvalDataset
from wsolbench.data.metadata import read_split
from wsolbench.engine.infer import predict
from wsolbench.methods.base import select_classes
from wsolbench.methods.scg_extractor import SCGExtractor


@pytest.fixture
def dataset(tiny_data, one_thread):
    return EvalDataset(read_split(tiny_data / "metadata" / "test"), tiny_data / "images", 32)


def acol_model(seed: int = 0):
    torch.manual_seed(seed)
    return wsolbench.create_method("acol", backbone="tinyvgg", num_classes=NUM_CLASSES).eval()


def one_batch(model, dataset):
    return next(predict(model, dataset, batch_size=len(dataset), ten_crop=False, topk=NUM_CLASSES))


def test_acol_gt_map_does_not_depend_on_the_prediction(dataset):
    model = acol_model()
    before = one_batch(model, dataset)
    labels = before["label"]
    # Make every image predict a class that is not its own: a large bias on classifier A's
    # output for one class shifts that class's maps by a constant, so the GT class's maps (A and
    # B, B erased by the GT class) are unchanged while the prediction changes.
    wrong = (int(before["topk"][0, 0]) + 1) % NUM_CLASSES
    keep = labels != wrong
    with torch.no_grad():
        model.classifier_a[2].bias[wrong] += 1e4
    after = one_batch(model, dataset)
    assert bool((after["topk"][:, 0] == wrong).all())
    assert not torch.equal(before["topk"][:, 0], after["topk"][:, 0])
    torch.testing.assert_close(after["cams_gt"][keep], before["cams_gt"][keep])
    # The same model's maps with B erased by the predicted class differ (the check can fail).
    images = torch.stack([dataset[i]["image"] for i in range(len(dataset))])
    with torch.no_grad():
        by_prediction = model(images)["cams"]
    predicted_erasure = select_classes(by_prediction, labels[:, None])[:, 0]
    assert not torch.allclose(predicted_erasure[keep], after["cams_gt"][keep])


def test_acol_topk_maps_erase_by_their_own_class(dataset):
    model = acol_model(seed=1)
    batch = one_batch(model, dataset)
    images = torch.stack([dataset[i]["image"] for i in range(len(dataset))])
    with torch.no_grad():
        for k in range(batch["topk"].shape[1]):
            classes = batch["topk"][:, k]
            erased_by_class = model(images, classes)["cams"]  # wsolevaluation: model(x, labels)
            expected = select_classes(erased_by_class, classes[:, None])[:, 0]
            torch.testing.assert_close(batch["cams_topk"][:, k], expected)
        expected_gt = select_classes(model(images, batch["label"])["cams"], batch["label"][:, None])
        torch.testing.assert_close(batch["cams_gt"], expected_gt[:, 0])


def test_scg_extractor_reads_acol_maps_by_the_class_asked_for(dataset):
    """The Python API's SCG on a wsolbench method: class indices give the map erased by them."""
    model = acol_model(seed=2)
    images = torch.stack([dataset[i]["image"] for i in range(4)])
    labels = torch.tensor([dataset[i]["label"] for i in range(4)])
    with torch.no_grad():
        expected = select_classes(model(images, labels)["cams"], labels[:, None])[:, 0]
    layers = [model.backbone.block3, model.backbone.block4]
    with SCGExtractor(model, target_layers=layers) as extractor:
        by_index = extractor.explain(images, targets=labels.tolist())["cam"]
        by_map = extractor.explain(images, targets=expected)["cam"]
    torch.testing.assert_close(by_index, by_map)
