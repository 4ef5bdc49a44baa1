"""Explainers: every registered one on a tiny wsolbench checkpoint and a tiny torchvision
classifier (maps of the right shape that `evaluate` scores), and pytorch-grad-cam's own output."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from wsolbench.cli import main
from wsolbench.data.datasets import EvalDataset
from wsolbench.data.metadata import read_split
from wsolbench.engine.checkpoint import load_model
from wsolbench.engine.infer import predict
from wsolbench.errors import WsolbenchError
from wsolbench.explainers import ClassifierModel, build_classifier
from wsolbench.registry import create_explainer, list_explainers

EXPLAINERS = list_explainers()
# Score-CAM runs one forward pass per channel: a narrow layer keeps the test at seconds.
OPTIONS = {"scorecam": {"batch_size": 64}, "torchcam-scorecam": {"batch_size": 64}}


def map_side(name: str, input_side: int, feature_side: int) -> int:
    """pytorch-grad-cam resizes its maps to the input; CAM and torch-cam keep the layer's grid."""
    return feature_side if name == "cam" or name.startswith("torchcam-") else input_side


@pytest.fixture
def data_and_checkpoint(tiny_run, one_thread):
    """The shared tiny run (tests/conftest.py): its dataset and checkpoint, read in place."""
    return tiny_run.data, tiny_run.checkpoint


def tiny_resnet(num_classes: int = 3) -> torch.nn.Module:
    """A torchvision ResNet with one narrow block per stage (torchvision's own classes)."""
    from torchvision.models.resnet import BasicBlock, ResNet

    torch.manual_seed(0)
    net = ResNet(BasicBlock, [1, 1, 1, 1], num_classes=num_classes, width_per_group=64)
    return net


def test_registry_lists_cam_and_the_library_methods():
    assert {
        "cam",
        "gradcam",
        "gradcam++",
        "xgradcam",
        "layercam",
        "scorecam",
        "eigencam",
        "hirescam",
    } <= set(EXPLAINERS)
    assert {
        "torchcam-gradcam",
        "torchcam-gradcam++",
        "torchcam-layercam",
        "torchcam-scorecam",
    } <= set(EXPLAINERS)


@pytest.mark.parametrize("name", EXPLAINERS)
def test_every_explainer_on_a_wsolbench_checkpoint(data_and_checkpoint, name):
    data, path = data_and_checkpoint
    model = load_model(path)
    split = read_split(data / "metadata" / "test")
    dataset = EvalDataset(split, data / "images", 32)
    explainer = create_explainer(name, **OPTIONS.get(name, {}))
    batches = list(
        predict(model, dataset, batch_size=5, ten_crop=False, topk=2, explainer=explainer)
    )
    side = map_side(name, 32, 8)
    for batch in batches:
        n = len(batch["image_id"])
        assert batch["cams_gt"].shape == (n, side, side)
        assert batch["cams_topk"].shape == (n, 2, side, side)
        assert torch.isfinite(batch["cams_topk"]).all()
    if name != "cam":  # the model's own maps are predict's, free with the forward pass
        assert explainer.images == len(split) and explainer.seconds > 0


@pytest.mark.parametrize("name", EXPLAINERS)
def test_infer_then_evaluate_scores_every_explainer(data_and_checkpoint, tmp_path, name):
    data, path = data_and_checkpoint
    options = [f"--explainer-option={k}={v}" for k, v in OPTIONS.get(name, {}).items()]
    assert (
        main(
            [
                "infer",
                "--checkpoint",
                str(path),
                "--metadata-root",
                str(data / "metadata" / "test"),
                "--image-root",
                str(data / "images"),
                "--out",
                str(tmp_path / "maps"),
                "--map-size",
                "32",
                "--workers",
                "0",
                "--no-progress",
                "--explainer",
                name,
                *options,
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "evaluate",
                "--metadata-root",
                str(data / "metadata" / "test"),
                "--scoremap-root",
                str(tmp_path / "maps"),
                "--mask-root",
                str(data / "masks"),
                "--output",
                str(tmp_path / "scores.json"),
            ]
        )
        == 0
    )
    scores = json.loads((tmp_path / "scores.json").read_text())
    assert scores["num_images"] == len(read_split(data / "metadata" / "test"))
    # Percentages of the split's images / pixels: a broken map (NaN, empty) fails here.
    for metric in ("MaxBoxAcc", "MaxBoxAccV2", "PxAP", "PeakIoU"):
        assert 0.0 <= scores[metric] <= 100.0, (metric, scores[metric])
    assert len(scores["MaxBoxAccV2_per_iou"]) == 3
    assert scores["MaxBoxAccV2"] == pytest.approx(np.mean(scores["MaxBoxAccV2_per_iou"]))


@pytest.fixture(scope="module")
def classifier():
    return ClassifierModel(tiny_resnet(), "resnet-tiny", image_size=64)


@pytest.mark.parametrize("name", EXPLAINERS)
def test_every_explainer_on_a_torchvision_classifier(data_and_checkpoint, classifier, name):
    data, _ = data_and_checkpoint
    model = classifier
    assert model.has_cams and model.scg_taps == ("net.layer3", "net.layer4")
    split = read_split(data / "metadata" / "test")
    dataset = EvalDataset(split, data / "images", 64)
    options = dict(OPTIONS.get(name, {}))
    images, topk = [0, 4], 2
    if name.endswith("scorecam"):  # one forward pass per channel: 64 channels, one image and class
        options["target_layers"] = ["net.layer1"]
        images, topk = [0], 0
    explainer = create_explainer(name, **options)
    subset = torch.utils.data.Subset(dataset, images)
    batch = next(
        predict(model, subset, batch_size=2, ten_crop=False, topk=topk, explainer=explainer)
    )
    side = map_side(name, 64, 16 if name.endswith("scorecam") else 2)
    n = len(images)
    assert batch["cams_gt"].shape == (n, side, side) and batch["cams_topk"].shape == (
        n,
        topk,
        side,
        side,
    )
    assert torch.isfinite(batch["cams_gt"]).all()
    assert [tap.shape[-1] for tap in batch["taps"]] == [4, 2]


def test_maps_equal_pytorch_grad_cam_called_directly(data_and_checkpoint):
    from pytorch_grad_cam import GradCAMPlusPlus
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    data, path = data_and_checkpoint
    model = load_model(path)
    dataset = EvalDataset(read_split(data / "metadata" / "test"), data / "images", 32)
    batch = next(
        predict(
            model,
            dataset,
            batch_size=6,
            ten_crop=False,
            topk=2,
            explainer=create_explainer("gradcam++"),
        )
    )
    images = torch.stack([dataset[i]["image"] for i in range(6)])

    class Logits(torch.nn.Module):  # what a pytorch-grad-cam user writes for a dict output
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            return self.net(x)["logits"]

    with GradCAMPlusPlus(model=Logits(model), target_layers=[model.backbone.block4]) as cam:
        expected_gt = cam(images, targets=[ClassifierOutputTarget(int(c)) for c in batch["label"]])
        expected_top = cam(
            images, targets=[ClassifierOutputTarget(int(c)) for c in batch["topk"][:, 1]]
        )
    np.testing.assert_allclose(batch["cams_gt"].numpy(), expected_gt, atol=1e-5)
    np.testing.assert_allclose(batch["cams_topk"][:, 1].numpy(), expected_top, atol=1e-5)


def test_maps_equal_torch_cam_called_directly(data_and_checkpoint, classifier):
    from torchcam.methods import LayerCAM

    data, _ = data_and_checkpoint
    dataset = EvalDataset(read_split(data / "metadata" / "test"), data / "images", 64)
    subset = torch.utils.data.Subset(dataset, [0, 4, 8])
    batch = next(
        predict(
            classifier,
            subset,
            batch_size=3,
            ten_crop=False,
            topk=1,
            explainer=create_explainer("torchcam-layercam"),
        )
    )
    images = torch.stack([subset[i]["image"] for i in range(3)])
    net = classifier.net  # a plain torchvision model, as a torch-cam user has it
    with LayerCAM(net, target_layer="layer4") as extractor:
        expected = extractor(class_idx=[int(c) for c in batch["label"]], scores=net(images))[0]
    torch.testing.assert_close(batch["cams_gt"], expected, atol=1e-5, rtol=1e-4)


def test_default_target_layers_are_the_last_feature_layers(data_and_checkpoint, classifier):
    from wsolbench.explainers.layers import default_target_layer

    _, path = data_and_checkpoint
    images = torch.zeros(1, 3, 32, 32)
    assert default_target_layer(load_model(path), images).name == "backbone.block4"
    assert default_target_layer(classifier, torch.zeros(1, 3, 64, 64)).name == "net.layer4"


def test_classifier_from_a_weights_file_and_clear_errors(tmp_path):
    path = tmp_path / "resnet18.pth"
    from torchvision.models import resnet18

    torch.save(resnet18(num_classes=3).state_dict(), path)
    model = build_classifier("resnet18", str(path), num_classes=3, image_size=64)
    assert model.scg_taps == ("net.layer3", "net.layer4")
    with pytest.raises(WsolbenchError, match="do not fit resnet18 with 5 classes"):
        build_classifier("resnet18", str(path), num_classes=5, image_size=64)
    with pytest.raises(WsolbenchError, match="unknown torchvision classifier 'resnet19'"):
        build_classifier("resnet19")
    with pytest.raises(WsolbenchError, match="predict 1000 classes but the dataset has 3"):
        build_classifier("resnet18", "DEFAULT", num_classes=3)
    with pytest.raises(WsolbenchError, match="no layer 'net.layer9'"):
        create_explainer("gradcam", target_layers="net.layer9").check_model(model)
    from torchvision.models import (
        mobilenet_v3_small,  # pooled, then two linear layers: no CAM
    )

    mobilenet = ClassifierModel(
        mobilenet_v3_small(num_classes=3), "mobilenet_v3_small", image_size=64
    )
    assert not mobilenet.has_cams
    with pytest.raises(WsolbenchError, match="no class activation map"):
        create_explainer("cam").check_model(mobilenet)


SUITE = """
name = "explained"
[dataset]
kind = "synthetic"
root = "{root}"
image_size = 64
resize_size = 72
synthetic = {{ num_classes = 3, image_size = 64, train_per_class = 6, val_per_class = 2, test_per_class = 2 }}
[train]
backbone = "tinyvgg"
pretrained = false
epochs = 1
batch_size = 8
[methods.cam]
[explainers.cam]
[explainers.gcpp]
explainer = "gradcam++"
[classifiers.resnet18]
weights = "{weights}"
[postprocessors.none]
[postprocessors.scg]
[evaluation]
map_size = 64
overlay_images = 0
batch_size = 8
ten_crop = false
"""


@pytest.mark.slow  # a bench run: training, six explained settings, a ResNet18 classifier
def test_bench_grid_of_methods_explainers_postprocessors_and_a_classifier(tmp_path, monkeypatch):
    from rich.console import Console
    from torchvision.models import resnet18

    from wsolbench import bench
    from wsolbench.suite import load_suite

    weights = tmp_path / "resnet18.pth"
    torch.save(resnet18(num_classes=3).state_dict(), weights)
    path = tmp_path / "suite.toml"
    path.write_text(SUITE.format(root=tmp_path / "data", weights=weights))
    suite = load_suite(path)

    def run():
        return bench.run_bench(
            suite,
            runs_dir=tmp_path / "runs",
            out_dir=tmp_path / "lb",
            device="cpu",
            console=Console(width=200, record=True),
            progress=False,
        )

    results = run()
    settings = set(zip(results["method"], results["explainer"], results["postprocessor"]))
    expected = {
        (m, e, p) for m in ("cam", "resnet18") for e in ("cam", "gcpp") for p in ("none", "scg")
    }
    assert settings == expected
    assert set(results["protocol"]) == {"spa", "wsolevaluation", "peak", "cost"}
    cost = results[results["protocol"] == "cost"].set_index(
        ["method", "explainer", "postprocessor", "metric"]
    )["value"]
    assert cost[("cam", "cam", "none", "explain_ms")] < cost[("cam", "gcpp", "none", "explain_ms")]
    assert (results[results["method"] == "resnet18"]["backbone"] == "resnet18").all()
    assert "Cost per image" in (tmp_path / "lb" / "explained" / "leaderboard.md").read_text()
    # Cached: a second run neither trains nor infers.
    monkeypatch.setattr(bench, "train", lambda *a, **k: pytest.fail("trained again"))
    monkeypatch.setattr(bench, "score_split", lambda *a, **k: pytest.fail("inferred again"))
    monkeypatch.setattr(bench, "write_overlay_maps", lambda *a, **k: pytest.fail("inferred again"))
    assert len(run()) == len(results)


def test_suite_errors_name_the_table(tmp_path):
    from wsolbench.suite import load_suite

    for table, message in (
        (
            '[explainers.x]\nexplainer = "gradcam+++"',
            "explainers.x.explainer: unknown explainer 'gradcam\\+\\+\\+'",
        ),
        (
            '[explainers.x]\nexplainer = "gradcam"\ntarget_layer = "a"',
            "explainers.x: unknown option 'target_layer'",
        ),
        (
            '[explainers.x]\nexplainer = "scorecam"\nbatch_size = 0',
            "explainers.x: scorecam: batch_size must be",
        ),
        ("[classifiers.r]\nmodel = 3", "classifiers.r.model = 3 is not allowed: expected a string"),
    ):
        path = tmp_path / "s.toml"
        path.write_text(f'name = "s"\n[methods.cam]\n{table}\n')
        with pytest.raises(WsolbenchError, match=message):
            load_suite(path)


def test_a_local_copy_of_torchvision_weights_loads_with_torchvision_settings(tmp_path):
    from torchvision.models import ResNet18_Weights, resnet18

    net = resnet18()
    path = tmp_path / Path(ResNet18_Weights.IMAGENET1K_V1.url).name  # resnet18-f37072fd.pth
    torch.save(net.state_dict(), path)
    model = build_classifier("resnet18", str(path), num_classes=1000, image_size=64)
    assert all(
        torch.equal(a, b)
        for a, b in zip(model.net.state_dict().values(), net.state_dict().values())
    )


def test_transformer_maps_equal_pytorch_grad_cam_with_its_vit_reshape(one_thread):
    """On a ViT backbone, the explainers take pytorch-grad-cam's documented set-up: the last
    block's norm1 as target layer and its ViT reshape transform for the patch grid; torch-cam,
    which has no reshape for tokens, refuses with one clear line."""
    from functools import partial

    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    from pytorch_grad_cam.utils.reshape_transforms import vit_reshape_transform

    torch.manual_seed(0)
    model = wsolbench_method("tscam", "tinyvit").eval()
    images = torch.randn(3, 3, 48, 48, generator=torch.Generator().manual_seed(1))
    classes = torch.tensor([[0, 1], [2, 0], [1, 2]])
    explainer = create_explainer("gradcam")
    explainer.check_model(model)
    maps = explainer(model, images, classes, model(images))
    assert maps.shape == (3, 2, 48, 48)

    class Logits(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            return self.net(x)["logits"]

    side = 48 // model.backbone.patch_size  # the patch grid of a 48 px input
    reshape = partial(vit_reshape_transform, height=side, width=side)
    layer = model.backbone.blocks[-1].norm1
    with GradCAM(model=Logits(model), target_layers=[layer], reshape_transform=reshape) as cam:
        for column in range(2):
            targets = [ClassifierOutputTarget(int(c)) for c in classes[:, column]]
            np.testing.assert_allclose(maps[:, column].numpy(), cam(images, targets), atol=1e-5)
    with pytest.raises(WsolbenchError, match="torch-cam takes .* no reshape for a transformer"):
        create_explainer("torchcam-gradcam").check_model(model)


def wsolbench_method(name: str, backbone: str):
    from wsolbench.registry import create_method

    return create_method(name, backbone=backbone, num_classes=3)
