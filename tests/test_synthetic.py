"""The synthetic benchmark: deterministic bytes, exact boxes, readable by the real reader."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from wsolbench.data.metadata import read_split, validate_files
from wsolbench.data.synthetic import MAX_CLASSES, class_part, generate, tight_box
from wsolbench.errors import WsolbenchError

TINY = dict(
    num_classes=3,
    image_size=32,
    train_per_class=2,
    val_per_class=1,
    test_per_class=4,
    multi_instance_prob=0.5,
)


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    first = _files(generate(tmp_path / "a", seed=1, **TINY))
    second = _files(generate(tmp_path / "b", seed=1, **TINY))
    other = _files(generate(tmp_path / "c", seed=2, **TINY))
    assert first == second
    assert set(first) != set(other) or any(
        first[k] != other[k] for k in first if k.endswith(".png")
    )
    assert "metadata/test/mask_localization.txt" in first and "synthetic.json" in first


def test_boxes_are_tight_boxes_of_masks(tmp_path):
    out = generate(tmp_path / "s", seed=0, **TINY)
    multi = 0
    for name in ("train", "val", "test"):
        split = read_split(out / "metadata" / name)
        validate_files(split, out / "images", out / "masks")
        assert split.num_classes == 3 and split.num_masks == split.num_boxes
        for i, image_id in enumerate(split.image_ids):
            image = Image.open(out / "images" / image_id)
            assert image.mode == "RGB" and image.size == tuple(split.sizes[i])
            assert 28 <= image.size[0] <= 40 and 28 <= image.size[1] <= 40
            multi += len(split.boxes[i]) > 1
            for box, mask_path in zip(split.boxes[i], split.masks[i].masks):
                mask = np.array(Image.open(out / "masks" / mask_path))
                assert mask.shape == image.size[::-1] and set(np.unique(mask)) <= {0, 255}
                assert tuple(box) == tight_box(mask)
    assert multi > 0


def test_class_parts_are_distinct_and_visible(tmp_path):
    parts = {class_part(c) for c in range(MAX_CLASSES)}
    assert len(parts) == MAX_CLASSES
    out = generate(
        tmp_path / "s",
        seed=0,
        num_classes=2,
        image_size=64,
        train_per_class=0,
        val_per_class=0,
        test_per_class=3,
    )
    split = read_split(out / "metadata" / "test")
    shape, colour = class_part(1)
    from wsolbench.data.synthetic import PART_COLOURS

    image = np.array(Image.open(out / "images" / split.image_ids[-1])).astype(int)
    near = (np.abs(image - np.array(PART_COLOURS[colour])).max(axis=2) <= 16).sum()
    assert near >= 20  # the part covers enough pixels to be seen at 64 px


def test_bad_configuration_is_refused(tmp_path):
    with pytest.raises(WsolbenchError, match=f"num_classes must be in 2..{MAX_CLASSES}, got "):
        generate(tmp_path, num_classes=MAX_CLASSES + 1)
    with pytest.raises(WsolbenchError, match="image_size must be at least 32 .*, got 16"):
        generate(tmp_path, image_size=16)
    assert list(tmp_path.iterdir()) == []  # refused before writing anything


def test_cli_synth_writes_a_valid_benchmark(tmp_path, capsys):
    from wsolbench.cli import main

    out = tmp_path / "synth"
    code = main(
        [
            "data",
            "synth",
            "--out",
            str(out),
            "--num-classes",
            "2",
            "--image-size",
            "32",
            "--train-per-class",
            "1",
            "--val-per-class",
            "1",
            "--test-per-class",
            "1",
        ]
    )
    assert code == 0
    assert "train" in capsys.readouterr().out
    assert len(read_split(out / "metadata" / "test")) == 2
    assert main(["data", "synth", "--out", str(tmp_path / "x"), "--num-classes", "1"]) == 2
    assert "--num-classes: expected an integer in [2, 64]" in capsys.readouterr().err.replace(
        "\n", ""
    )
