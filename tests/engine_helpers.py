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


class CountingEvaluator:
    """A minimal evaluator with integer count state (the shape of the real one's contract):
    top-1 hits, images, and a 16-bin histogram of the GT-class map's min-max normalized values."""

    def __init__(self):
        import torch

        self.counts = torch.zeros(16, dtype=torch.int64)
        self.correct = 0
        self.images = 0
        self.ids: list[str] = []

    def accumulate(self, batch) -> None:
        import torch

        cams = batch["cams_gt"].relu()
        low = cams.flatten(1).min(1).values[:, None, None]
        high = cams.flatten(1).max(1).values[:, None, None]
        levels = ((cams - low) / (high - low + 1e-10) * 15.999).long().clamp(0, 15)
        self.counts += torch.bincount(levels.flatten(), minlength=16)
        self.correct += int((batch["topk"][:, 0] == batch["label"]).sum())
        self.images += len(batch["label"])
        self.ids += list(batch["image_id"])

    def state_dict(self) -> dict:
        return {
            "counts": self.counts.clone(),
            "correct": self.correct,
            "images": self.images,
            "ids": sorted(self.ids),
        }

    def load_state_dict(self, state: dict) -> None:
        self.counts = state["counts"].clone()
        self.correct, self.images, self.ids = state["correct"], state["images"], list(state["ids"])

    def merge(self, other: CountingEvaluator) -> CountingEvaluator:
        self.counts += other.counts
        self.correct += other.correct
        self.images += other.images
        self.ids += other.ids
        return self


def box_inputs(map_size: int):
    """`evaluate`'s prepare hook for the real Evaluator: wsolevaluation box inputs (GT-class
    maps at map_size, boxes rescaled with truncation) and spa classic-localization inputs."""
    import numpy as np
    import torch

    from wsolbench.evaluation import rescale_boxes
    from wsolbench.registry import create_postprocessor

    identity = create_postprocessor("identity")

    def prepare(batch):
        sizes = [(int(h), int(w)) for w, h in batch["size"]]
        boxes = [np.asarray(b, np.int64).reshape(-1, 4) for b in batch["boxes"]]
        topk_maps = [
            identity(batch["cams_topk"][:, k], batch["taps"], sizes)
            for k in range(batch["topk"].shape[1])
        ]
        return {
            "scoremaps": identity(batch["cams_gt"], batch["taps"], (map_size, map_size)),
            "gt_boxes": [
                rescale_boxes(b, (w, h), (map_size, map_size)) for b, (h, w) in zip(boxes, sizes)
            ],
            "labels": batch["label"],
            "top5": batch["topk"],
            "loc_maps": [torch.stack([maps[i] for maps in topk_maps]) for i in range(len(sizes))],
            "gt_loc_maps": list(identity(batch["cams_gt"], batch["taps"], sizes)),
            "gt_boxes_original": boxes,
        }

    return prepare


def real_evaluator():
    from wsolbench.evaluation import BoxAccumulator, ClassicLocAccumulator, Evaluator

    return Evaluator(
        box=BoxAccumulator(0.01, (30, 50, 70)), classic=ClassicLocAccumulator((0.1, 0.2, 0.3))
    )
