"""Rehearsals of every built-in real-data suite, as a new user would run them.

For each dataset a miniature tree in its native layout (tests/native_trees.py) is made once per
module, converted and validated with `wsolbench data`; then each suite runs through
`wsolbench bench` with its own backbone, methods, post-processors and recipe, random init, one
epoch and a handful of images, and its results go through `wsolbench leaderboard
--with-reported`, which must put the published numbers beside the measured ones.

What is shrunk through `--set`, and why: the input side (`dataset.image_size`) is 32 px for
VGG16 / ResNet50 and 80 px for InceptionV3 (its stem needs at least 75 px) instead of 224, as a
full-size VGG16 training step takes seconds per image on two shared CPU cores; ten-crop
classification, overlays and pretrained weights are off (no downloads; the crops would cost ten
passes per image). Backbones, methods, post-processors and the training recipe are the
suite's own. `ram_start` is 0 so RAM itself runs within the single epoch. Torch runs on one
thread here: at these input sizes two threads mostly wait on each other (on the shared 2-core
machine a ResNet50 training step took 0.8-1.2 s of CPU with two threads, 0.17 s with one).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from native_trees import make_cub, make_ilsvrc, make_openimages

from wsolbench.cli import main
from wsolbench.data.metadata import read_split, write_split
from wsolbench.report import read_results
from wsolbench.suite import BUILTIN_SUITES, load_suite

SHRINK = [
    "train.epochs=1",
    "train.batch_size=4",
    "train.pretrained=false",
    "train.workers=0",
    "evaluation.ten_crop=false",
    "evaluation.overlay_images=0",
    "evaluation.batch_size=8",
]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _input(size: int) -> list[str]:
    return [
        f"dataset.image_size={size}",
        f"dataset.resize_size={size + size // 8}",
        f"evaluation.map_size={size}",
    ]


def _size(suite_name: str) -> int:
    # DeiT-S at 64 px: 4 x 4 tokens (at 32 px, 2 x 2 maps come out constant, which the scm
    # protocol refuses as SCM's own code does).
    backbone = load_suite(suite_name).train["backbone"]
    return {"inception_v3": 80, "deit_small": 64}.get(backbone, 32)


@pytest.fixture(scope="module")
def cub(tmp_path_factory) -> dict[str, dict[str, Path]]:
    """The tree converted in both styles (a CUB suite needs its reference's): spa, and
    wsolevaluation with the spa style's val images standing in for its CUBV2 val metadata."""
    root = tmp_path_factory.mktemp("cub")
    native = make_cub(root / "CUB_200_2011")
    out = {}
    for style in ("spa", "wsolevaluation"):
        metadata, masks = root / "metadata" / style / "CUB", root / style / "CUB-masks"
        extra = ["--val-per-class", "1"]
        if style == "wsolevaluation":
            write_split(read_split(out["spa"]["metadata_root"] / "val"), root / "cubv2-val")
            extra = ["--val-metadata", str(root / "cubv2-val")]
        command = ["data", "convert", "cub", "--root", str(native), "--out", str(metadata)]
        assert main([*command, "--style", style, *extra]) == 0
        command = ["data", "convert", "cub-segmentations", "--metadata", str(metadata)]
        command += ["--segmentations", str(native / "segmentations"), "--mask-out", str(masks)]
        assert main(command) == 0
        for split in ("train", "val", "test"):
            command = ["data", "validate", "--metadata-root", str(metadata / split)]
            command += ["--image-root", str(native / "images"), "--mask-root", str(masks)]
            assert main(command) == 0
        out[style] = {
            "image_root": native / "images",
            "metadata_root": metadata,
            "mask_root": masks,
        }
    return out


@pytest.fixture(scope="module")
def ilsvrc(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("ilsvrc")
    native = make_ilsvrc(root / "ILSVRC")
    metadata, lid = root / "metadata" / "ILSVRC", root / "metadata" / "ILSVRC-LID"
    synsets = ["--synsets", str(native["synsets"])]
    assert (
        main(
            [
                "data",
                "convert",
                "ilsvrc",
                "--annotations",
                str(native["train_xml"]),
                "--out",
                str(metadata / "train"),
                "--image-prefix",
                "train/",
                *synsets,
            ]
        )
        == 0
    )
    # Train images live in train/<wnid>/: the converter's ids are train/<name>.JPEG, so the
    # images are also laid out flat, as an ILSVRC train id list would name them.
    for image in (native["root"] / "train").glob("*/*.JPEG"):
        shutil.copy(image, native["root"] / "train" / image.name)
    for split in ("val", "test"):
        assert (
            main(
                [
                    "data",
                    "convert",
                    "ilsvrc",
                    "--annotations",
                    str(native["val_xml"]),
                    "--out",
                    str(metadata / split),
                    *synsets,
                ]
            )
            == 0
        )
    for split in ("train", "val"):  # the Table 3 metadata shares train and val
        shutil.copytree(metadata / split, lid / split)
    assert (
        main(
            [
                "data",
                "convert",
                "ilsvrc-lid",
                "--annotations",
                str(native["val_xml"]),
                "--masks",
                str(native["lid"]),
                "--out",
                str(lid / "test"),
                *synsets,
            ]
        )
        == 0
    )
    for folder in (metadata / "test", lid / "test"):
        assert (
            main(
                [
                    "data",
                    "validate",
                    "--metadata-root",
                    str(folder),
                    "--image-root",
                    str(native["root"]),
                    "--mask-root",
                    str(native["lid"]),
                ]
            )
            == 0
        )
    return {
        "image_root": native["root"],
        "ILSVRC": metadata,
        "ILSVRC-LID": lid,
        "mask_root": native["lid"],
    }


@pytest.fixture(scope="module")
def openimages(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("openimages")
    native = make_openimages(root / "native")
    metadata = root / "metadata" / "OpenImages"
    assert (
        main(
            [
                "data",
                "convert",
                "openimages",
                "--metadata-root",
                str(native["metadata"]),
                "--out",
                str(metadata),
                "--image-root",
                str(native["images"]),
                "--mask-root",
                str(native["masks"]),
            ]
        )
        == 0
    )
    for split in ("val", "test"):
        assert (
            main(
                [
                    "data",
                    "validate",
                    "--metadata-root",
                    str(metadata / split),
                    "--image-root",
                    str(native["images"]),
                    "--mask-root",
                    str(native["masks"]),
                ]
            )
            == 0
        )
    return {"image_root": native["images"], "metadata_root": metadata, "mask_root": native["masks"]}


def _data_overrides(suite_name: str, cub, ilsvrc, openimages) -> list[str]:
    suite = load_suite(suite_name)
    dataset = Path(suite.dataset["metadata_root"]).name
    if dataset == "CUB":
        # The style it needs; "" (any: the baselines read CUB's own files) takes
        # wsolevaluation's, whose boxes are CUB's x + w.
        paths = dict(cub[suite.dataset["metadata_style"] or "wsolevaluation"])
    elif dataset in ("ILSVRC", "ILSVRC-LID"):
        paths = {
            "image_root": ilsvrc["image_root"],
            "metadata_root": ilsvrc[dataset],
            "mask_root": ilsvrc["mask_root"],
        }
    else:
        paths = dict(openimages)
    return [f"dataset.{key}='{value}'" for key, value in paths.items()]


REAL_SUITES = [
    name
    for name in BUILTIN_SUITES
    if not name.startswith("synthetic-") and name != "ilsvrc-classifiers"
]


def test_every_builtin_suite_is_rehearsed_here():
    assert len(REAL_SUITES) == 22
    # The rest: the default synthetic suites run in test_bench / test_explainers, the
    # baselines' synthetic suites and the classifiers' suite below.
    assert set(BUILTIN_SUITES) - set(REAL_SUITES) == {
        "synthetic-default",
        "synthetic-explainers",
        "synthetic-bas",
        "synthetic-transformers",
        "ilsvrc-classifiers",
    }
    for name in REAL_SUITES:
        suite = load_suite(name)
        assert "Table" in suite.description or "table" in suite.description, name
        assert suite.train["recipe"] in ("wsolevaluation", "spa", "bas", "tscam", "scm")
        # Each new baseline trains with its own reference's recipe.
        if suite.methods[0].method in ("bas", "tscam", "scm"):
            assert suite.train["recipe"] == suite.methods[0].method, name


# What each rehearsal must find beside a published number: (method, post-processor, metric).
EXPECTED = {
    "cub-vgg16": ("spa", "scg", "Top-1 Loc err"),
    "cub-inceptionv3": ("spa-noram", "none", "GT-known Loc err"),
    "cub-resnet50": ("cam", "none", "MaxBoxAccV2"),
    "ilsvrc-vgg16": ("spa", "scg", "Top-1 Loc err"),
    "ilsvrc-inceptionv3": ("spa-noram", "scg", "Top-5 Loc err"),
    "ilsvrc-resnet50": ("cutmix", "none", "MaxBoxAccV2"),
    "ilsvrc-inceptionv3-table3": ("has", "scg", "Peak-IoU"),
    "openimages-vgg16": ("adl", "none", "PxAP"),
    "openimages-inceptionv3": ("spg", "none", "PxAP"),
    "openimages-resnet50": ("acol", "none", "PxAP"),
    "bas-cub-vgg16": ("bas", "none", "Top-1 Loc"),
    "bas-cub-resnet50": ("bas", "none", "GT-known Loc"),
    "bas-cub-inceptionv3": ("bas", "none", "Top-5 Loc"),
    "bas-cub-mobilenetv1": ("bas", "none", "Top-1 Loc"),
    "bas-ilsvrc-vgg16": ("bas", "none", "GT-known Loc"),
    "bas-ilsvrc-resnet50": ("bas", "none", "Top-1 Loc"),
    "bas-ilsvrc-inceptionv3": ("bas", "none", "Top-5 Loc"),
    "bas-ilsvrc-mobilenetv1": ("bas", "none", "GT-known Loc"),
    "tscam-cub": ("tscam", "none", "Top-1 Loc"),
    "tscam-ilsvrc": ("tscam", "none", "Top-1 Cls"),
    "scm-cub": ("scm", "none", "GT-known Loc (top-1 class's map, SCM's rule)"),
    "scm-ilsvrc": ("scm", "none", "Top-1 Loc"),
}


def _bench(suite_name: str, overrides: list[str], tmp_path: Path) -> None:
    """`wsolbench bench` on the CPU into tmp_path's runs/ and lb/, with these --set overrides."""
    args = [
        "bench",
        "--suite",
        suite_name,
        "--runs-dir",
        str(tmp_path / "runs"),
        "--out",
        str(tmp_path / "lb"),
        "--device",
        "cpu",
        "--no-progress",
    ]
    for override in overrides:
        args += ["--set", override]
    assert main(args) == 0


@pytest.mark.slow  # minutes in all: a bench run (training included) per built-in suite
@pytest.mark.parametrize("suite_name", REAL_SUITES)
def test_rehearsal(suite_name, cub, ilsvrc, openimages, tmp_path):
    suite = load_suite(suite_name)
    overrides = (
        SHRINK + _input(_size(suite_name)) + _data_overrides(suite_name, cub, ilsvrc, openimages)
    )
    if any(spec.method == "spa" for spec in suite.methods):
        overrides.append("methods.spa.ram_start=0")
    _bench(suite_name, overrides, tmp_path)
    shutil.rmtree(tmp_path / "runs")  # full-size checkpoints: about 0.2 GB per method
    results_path = tmp_path / "lb" / suite_name / "results.csv"
    results = read_results(results_path)
    assert set(results["method"]) == {spec.label for spec in suite.methods}
    assert set(results["postprocessor"]) == set(suite.postprocessors)
    assert set(results["backbone"]) == {suite.train["backbone"]}
    protocols = set(results["protocol"])
    assert "peak" in protocols or Path(suite.dataset["metadata_root"]).name == "ILSVRC"

    board = tmp_path / "board"
    assert (
        main(["leaderboard", str(results_path), "--out", str(board), "--quiet", "--with-reported"])
        == 0
    )
    markdown = (board / "leaderboard.md").read_text()
    comparison = markdown.split("## Reproduced vs reported", 1)[1].split("## Published", 1)[0]
    method, postprocessor, metric = EXPECTED[suite_name]
    dataset = Path(suite.dataset["metadata_root"]).name
    row = f"| {dataset} | {suite.train['backbone']} | {method} | {postprocessor} | {metric} |"
    assert row in comparison, comparison
    # A miniature split is compared with the paper's: one warning line says so.
    assert markdown.count(f"**Warning:** {dataset} test: ") == 1, markdown[:2000]


@pytest.mark.slow
def test_rehearsal_classifiers(ilsvrc, tmp_path):
    """torchvision's classifiers as they are (random weights here: no download), explained and
    scored on the miniature ILSVRC tree; published numbers have no such rows."""
    overrides = [
        "classifiers.resnet50.weights=''",
        "classifiers.vgg16.weights=''",
        "evaluation.ten_crop=false",
        "evaluation.overlay_images=0",
        "evaluation.batch_size=8",
    ]
    # 64 px: ResNet50's layer4 is then 2 x 2, still a map (at 32 px it is 1 x 1 and the CAM
    # layer would be layer3, which is not what its fc reads).
    overrides += _input(64) + _data_overrides("ilsvrc-vgg16", None, ilsvrc, None)
    _bench("ilsvrc-classifiers", overrides, tmp_path)
    results = read_results(tmp_path / "lb" / "ilsvrc-classifiers" / "results.csv")
    assert set(results["method"]) == {"resnet50", "vgg16"}
    assert set(results["postprocessor"]) == {"none", "scg"}
    # VGG16's classifier is not GAP + fc: no CAM for it, Grad-CAM++ and LayerCAM for both.
    explained = results.groupby("method")["explainer"].agg(set).to_dict()
    assert explained == {
        "resnet50": {"cam", "gradcam++", "layercam"},
        "vgg16": {"gradcam++", "layercam"},
    }


@pytest.mark.slow  # two bench runs: training, the explainers' grid
@pytest.mark.parametrize("suite_name", ["synthetic-bas", "synthetic-transformers"])
def test_rehearsal_synthetic_baselines(suite_name, tmp_path):
    """The baselines' synthetic suites, as `wsolbench bench --suite NAME` runs them, on a smaller
    synthetic benchmark generated for the test: every method, explainer and post-processor."""
    suite = load_suite(suite_name)
    overrides = [
        f"dataset.root='{tmp_path / 'synthetic'}'",
        "dataset.synthetic={num_classes = 3, train_per_class = 6, val_per_class = 2, "
        "test_per_class = 2}",
        "train.epochs=1",
        "train.batch_size=6",
        "evaluation.ten_crop=false",
        "evaluation.overlay_images=0",
    ]
    _bench(suite_name, overrides, tmp_path)
    results = read_results(tmp_path / "lb" / suite_name / "results.csv")
    assert set(results["method"]) == {spec.label for spec in suite.methods}
    assert set(results["postprocessor"]) == set(suite.postprocessors)
    assert set(results["backbone"]) == {suite.train["backbone"]}
    if "explainer" in results:
        assert set(results["explainer"]) == {spec.label for spec in suite.explainers}
