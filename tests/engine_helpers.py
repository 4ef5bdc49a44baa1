"""Shared pieces of the tests: the tiny synthetic dataset, the tiny training config, the tiny
bench suite (tests/conftest.py builds the session fixtures from them), and the evaluators of the
engine tests."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from wsolbench.engine.config import TrainConfig

if TYPE_CHECKING:
    import pandas as pd

NUM_CLASSES = 3
# The tiny dataset's generator options (seed 0): the bench suite below asks for the same ones, so
# the bench reads the shared dataset instead of generating another.
TINY_DATASET = dict(
    num_classes=NUM_CLASSES, image_size=32, train_per_class=16, val_per_class=2, test_per_class=3
)


def make_tiny_dataset(root: Path) -> Path:
    """3 classes, 32 px, 16 train images per class: enough for tinyvgg to learn in seconds."""
    from wsolbench.data.synthetic import generate

    return generate(root, seed=0, **TINY_DATASET)


def tiny_config(data: Path, out: Path, **overrides) -> TrainConfig:
    values = dict(
        method="cam",
        backbone="tinyvgg",
        data=str(data),
        image_size=32,
        resize_size=36,
        epochs=2,
        batch_size=16,
        lr=0.02,
        lr_step=10,
        workers=0,
        threads=1,  # the suite's convention (CPU float sums depend on the count)
        device="cpu",
        out_dir=str(out),
        progress=False,
    )
    values.update(overrides)
    return TrainConfig(**values)


# A tiny suite on the tiny dataset (format with root=...): two epochs of cam, both
# post-processors, every protocol. tests/conftest.py's `tiny_bench` runs it once with spa added.
_SYNTHETIC = ", ".join(f"{key} = {value}" for key, value in TINY_DATASET.items())
TINY_SUITE = """
name = "tiny"
[dataset]
kind = "synthetic"
root = "{root}"
image_size = 32
resize_size = 36
synthetic = {{ SYNTHETIC }}
[train]
backbone = "tinyvgg"
pretrained = false
epochs = 2
batch_size = 8
lr = 0.01
workers = 0
threads = 1
[methods.cam]
[postprocessors.none]
[postprocessors.scg]
fo_th = 0.1
[evaluation]
box_thresholds = [0.1, 0.3]
map_size = 32
overlay_images = 2
batch_size = 8
""".replace("SYNTHETIC", _SYNTHETIC)


def tiny_bench_argv(folder: Path, data: Path, *flags, toml: str = "") -> list:
    """`wsolbench bench` on TINY_SUITE over `data` (plus `toml` appended to the suite file), its
    runs, leaderboard and suite file under `folder`, on the CPU without progress bars."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "suite.toml").write_text(TINY_SUITE.format(root=data) + toml)
    return [
        "bench",
        "--suite",
        folder / "suite.toml",
        "--runs-dir",
        folder / "runs",
        "--out",
        folder / "lb",
        "--device",
        "cpu",
        "--no-progress",
        *flags,
    ]


def load_tiny_suite(folder: Path, data: Path, overrides: list[str] = ()):
    """The tiny suite on the dataset at `data`, written to `folder`/tiny.toml and loaded."""
    from wsolbench.suite import load_suite

    path = folder / "tiny.toml"
    path.write_text(TINY_SUITE.format(root=data))
    return load_suite(path, list(overrides))


# Input side of a quick forward pass through each registered backbone: 64 px, or more where a
# backbone needs it (InceptionV3's stem needs at least 75 px). A new backbone that needs a larger
# input adds itself here; every other one is tested at 64 px with no change to the tests.
BACKBONE_INPUT_SIZE = {"inception_v3": 96}


def backbone_input_size(name: str) -> int:
    return BACKBONE_INPUT_SIZE.get(name, 64)


# The small backbone a method is tested on: tinyvgg, or tinyvit for the transformer methods.
SMALL_BACKBONES = {"vit": "tinyvit"}


def small_backbone(method: str) -> str:
    from wsolbench.registry import METHODS

    return SMALL_BACKBONES.get(METHODS.get(method).architecture_type, "tinyvgg")


def run_tiny_bench(suite, root: Path, width: int = 200, **options) -> pd.DataFrame:
    """`bench` on the CPU into root/runs and root/lb, quietly."""
    from rich.console import Console

    from wsolbench import bench

    return bench.run_bench(
        suite,
        runs_dir=root / "runs",
        out_dir=root / "lb",
        device="cpu",
        console=Console(width=width, record=True),
        progress=False,
        **options,
    )


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under `root` with its size and modification time: equal snapshots mean
    nothing was written, replaced, added or removed."""
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def bench_scores(model, data: Path) -> dict:
    """The bench's scoring path (`engine.evaluate.score_split`: every protocol, plain and SCG
    maps, per-image records with pictures) on the tiny test split, ten-crop, masks and all; the
    box threshold is chosen on the split itself (`Scorer.choose`, a collective call too).
    Post-processor -> {"rows", "curves", "per_image"}."""
    from wsolbench.data.datasets import EvalDataset
    from wsolbench.data.metadata import read_split
    from wsolbench.engine.evaluate import score_split
    from wsolbench.evaluation import create_protocols
    from wsolbench.registry import create_postprocessor

    dataset = EvalDataset(
        read_split(data / "metadata" / "test"),
        data / "images",
        32,
        mask_root=data / "masks",
        ten_crop=True,
        resize_size=36,
    )
    protocols = create_protocols(
        {"map_size": 16, "cam_curve_interval": 0.01, "box_thresholds": [0.1, 0.2, 0.3]}
    )
    postprocessors = {
        "none": create_postprocessor("none"),
        "scg": create_postprocessor("scg", fo_th=0.1, so_th=0.5),
    }
    scorers = score_split(
        model,
        dataset,
        postprocessors,
        protocols,
        batch_size=2,
        ten_crop=True,
        thumbnails=lambda index: index % 2 == 0,
    )
    return {
        name: {
            "rows": scorer.rows({}, scorer.choose()),
            "curves": scorer.curves({}),
            "per_image": scorer.per_image_arrays(),
        }
        for name, scorer in scorers.items()
    }


def every_class_map(model, outputs: dict):
    """(N, C, h, w): the map of every class of a forward's outputs, read as predict reads maps
    (``class_maps``: CAM computes the classes asked for, ACoL erases by each)."""
    import torch

    from wsolbench.engine.infer import class_maps

    logits = outputs["logits"]
    classes = torch.arange(logits.shape[1]).expand(logits.shape[0], -1)
    return class_maps(model, outputs, classes)
