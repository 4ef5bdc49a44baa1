"""Shared pieces of the engine tests: a tiny synthetic dataset and a tiny training config."""

from __future__ import annotations

from pathlib import Path

from wsolbench.engine.config import TrainConfig

NUM_CLASSES = 3


def make_tiny_dataset(root: Path) -> Path:
    """3 classes, 32 px, 16 train images per class: enough for tinyvgg to learn in seconds."""
    from wsolbench.data.synthetic import generate

    return generate(
        root,
        seed=0,
        num_classes=NUM_CLASSES,
        image_size=32,
        train_per_class=16,
        val_per_class=2,
        test_per_class=3,
    )


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
        "none": create_postprocessor("identity"),
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
