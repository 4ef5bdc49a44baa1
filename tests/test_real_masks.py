"""Masks of real datasets: a miniature LID mask release (ILSVRC) and CUB segmentation tree are
converted, validated, read back and scored with Peak-IoU and PxAP against hand-computed values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from native_trees import voc_xml, write_png

from wsolbench.cli import main
from wsolbench.data.converters import (
    convert_cub,
    convert_cub_segmentations,
    convert_ilsvrc_lid,
)
from wsolbench.data.datasets import EvalDataset
from wsolbench.data.metadata import read_split, validate_files
from wsolbench.errors import MetadataError
from wsolbench.evaluation import PeakAccumulator, PxAPAccumulator
from wsolbench.evaluation.protocols import Peak, WsolEvaluation

# Image A (4 x 2) and its LID mask; image B (2 wide, 3 high) whose released mask is 3 x 2: the
# swapped width and height of the known LID sample ILSVRC2012_val_00017615.
A, B = "ILSVRC2012_val_00000001", "ILSVRC2012_val_00017615"
MASK_A = [[255, 255, 0, 0], [255, 0, 0, 0]]
MASK_B = [[255, 0, 0], [0, 255, 0]]


def _image(path: Path, width: int, height: int) -> None:
    write_png(path, np.full((height, width), 90, np.uint8))  # content is not used here


@pytest.fixture
def lid(tmp_path) -> dict[str, Path]:
    root = tmp_path / "ILSVRC"
    (root / "xml").mkdir(parents=True)
    (root / "xml" / f"{A}.xml").write_text(voc_xml(A, 4, 2, [("n01443537", (0, 0, 1, 1))]))
    (root / "xml" / f"{B}.xml").write_text(voc_xml(B, 2, 3, [("n01440764", (0, 0, 1, 2))]))
    _image(root / "val" / f"{A}.JPEG", 4, 2)
    _image(root / "val" / f"{B}.JPEG", 2, 3)
    write_png(root / "LID" / "images" / f"{A}.png", MASK_A)
    write_png(root / "LID" / "images" / f"{B}.png", MASK_B)
    (root / "LID" / "val_mask.txt").write_text(f"{A}.png\n{B}.png\n")
    (root / "synsets.txt").write_text("n01440764 tench\nn01443537 goldfish\n")
    return {
        "root": root,
        "xml": root / "xml",
        "masks": root / "LID",
        "synsets": root / "synsets.txt",
        "out": tmp_path / "metadata" / "ILSVRC-LID" / "test",
    }


def test_lid_release_is_converted_with_boxes_labels_and_masks(lid):
    _, swapped = convert_ilsvrc_lid(lid["xml"], lid["masks"], lid["out"], synsets=lid["synsets"])
    assert swapped == [B]
    back = read_split(lid["out"])
    assert back.image_ids == [f"val/{A}.JPEG", f"val/{B}.JPEG"]
    assert back.labels.tolist() == [1, 0]
    assert back.sizes.tolist() == [[4, 2], [2, 3]]
    assert [b.tolist() for b in back.boxes] == [[[0, 0, 1, 1]], [[0, 0, 1, 2]]]
    assert [ref.masks for ref in back.masks] == [[f"images/{A}.png"], [f"images/{B}.png"]]
    assert (lid["out"] / "mask_localization.txt").is_file()
    assert validate_files(back, None, lid["masks"]) == [1]


def test_lid_peak_iou_and_pxap_by_hand(lid):
    convert_ilsvrc_lid(lid["xml"], lid["masks"], lid["out"], synsets=lid["synsets"])
    dataset = EvalDataset(read_split(lid["out"]), lid["root"], image_size=8, mask_root=lid["masks"])
    a, b = dataset[0], dataset[1]
    peak_a, peak_b = (Peak().gt_mask(item["mask"].numpy()) for item in (a, b))
    assert peak_a.tolist() == (np.array(MASK_A) > 128).tolist()
    assert tuple(peak_b.shape) == (2, 3)  # read as released (swapped)
    # Peak levels of A's map uint8(255 * (s - 1) / (3 + 1e-10)): 4 -> 254, 3 -> 169, 2 -> 84,
    # 1 -> 0. Foreground levels {254, 169, 254}; background {84, 0, 169, 84, 0}. B's map is
    # constant (all level 0 after the resize to its 3 x 2 mask): 2 foreground and 4 background
    # pixels at level 0. Pooled, 5 foreground pixels:
    # t = 0: 5 / (5 + 9); t in 1..84: 3 / (5 + 3); t in 85..169: 3 / (5 + 1) = 0.5;
    # t in 170..254: 2 / 5. Peak-IoU 50 at Peak-T 85.
    peak = PeakAccumulator()
    map_a = np.array([[4.0, 3.0, 2.0, 1.0], [4.0, 3.0, 2.0, 1.0]])
    peak.update([map_a, np.full((3, 2), 0.5)], [peak_a, peak_b])
    result = peak.compute()
    assert result["PeakIoU"] == pytest.approx(50.0)
    assert result["PeakT"] == 85
    assert result["peak_iou_curve"][0] == pytest.approx(100 * 5 / 14)
    assert result["peak_iou_curve"][84] == pytest.approx(100 * 3 / 8)
    assert result["peak_iou_curve"][170] == pytest.approx(100 * 2 / 5)
    # PxAP on A with bins [0, .5), [.5, 1), [1, 2), [2, 3): foreground scores 1, .6, 1 ->
    # (0, 1, 2, 0); background .3, 0, .6, .3, 0 -> (4, 1, 0, 0). From the top: tp 0, 2, 3, 3 and
    # fp 0, 0, 1, 5, so P = 1, .75, .375 and R = 2/3, 1, 1: PxAP = 1 * 2/3 + .75 * 1/3 = 91.67.
    pxap = PxAPAccumulator(0.5)
    scores = np.array([[[1.0, 0.6, 0.3, 0.0], [1.0, 0.6, 0.3, 0.0]]])
    foreground, ignore = WsolEvaluation.gt_masks(a["mask"].numpy(), a["ignore"].numpy(), (2, 4))
    pxap.update(scores, foreground[None], ignore[None])
    assert pxap.compute()["PxAP"] == pytest.approx(100 * (2 / 3 + 0.75 / 3))


def test_lid_errors_name_the_file_and_line(lid):
    write_png(lid["masks"] / "images" / f"{A}.png", np.zeros((2, 5)))  # neither size nor swap
    with pytest.raises(MetadataError, match=r"is 5x2, but its image val/.*00000001.JPEG is 4x2"):
        convert_ilsvrc_lid(lid["xml"], lid["masks"], lid["out"], synsets=lid["synsets"])
    (lid["masks"] / "val_mask.txt").write_text(f"{B}.png\nILSVRC2012_val_00000099.png\n")
    with pytest.raises(MetadataError, match="no annotation") as error:
        convert_ilsvrc_lid(lid["xml"], lid["masks"], lid["out"], synsets=lid["synsets"])
    assert error.value.line == 2 and str(error.value.path).endswith("val_mask.txt")


def test_lid_cli_convert_and_validate(lid, capsys):
    assert (
        main(
            [
                "data",
                "convert",
                "ilsvrc-lid",
                "--annotations",
                str(lid["xml"]),
                "--masks",
                str(lid["masks"]),
                "--synsets",
                str(lid["synsets"]),
                "--out",
                str(lid["out"]),
            ]
        )
        == 0
    )
    assert "swapped" in capsys.readouterr().out
    assert (
        main(
            [
                "data",
                "validate",
                "--metadata-root",
                str(lid["out"]),
                "--image-root",
                str(lid["root"]),
                "--mask-root",
                str(lid["masks"]),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "valid" in out and "00017615" in out
    (lid["masks"] / "images" / f"{A}.png").unlink()
    assert (
        main(
            [
                "data",
                "validate",
                "--metadata-root",
                str(lid["out"]),
                "--mask-root",
                str(lid["masks"]),
            ]
        )
        == 2
    )
    assert "mask_localization.txt:1" in capsys.readouterr().err


# ----------------------------------------------------------------------------- CUB

# One test image, 4 x 2, with a soft segmentation (annotators' agreement): > 128 keeps the
# first three pixels of the top row; 102 and 51 (fewer annotators) are background.
SOFT = [[255, 204, 153, 102], [51, 0, 0, 0]]


@pytest.fixture
def cub(tmp_path) -> dict[str, Path]:
    root = tmp_path / "CUB_200_2011"
    names = [
        "001.Bird/a_1.jpg",
        "001.Bird/b_2.jpg",
        "002.Fish/c_3.jpg",
        "001.Bird/d_4.jpg",
        "002.Fish/e_5.jpg",
    ]
    for name in names:
        _image(root / "images" / name, 4, 2)
        write_png(root / "segmentations" / Path(name).with_suffix(".png"), SOFT)
    (root / "images.txt").write_text("".join(f"{i} {n}\n" for i, n in enumerate(names, 1)))
    # Two training images per class, so that one per class can go to val.
    (root / "image_class_labels.txt").write_text("1 1\n2 1\n3 2\n4 1\n5 2\n")
    (root / "train_test_split.txt").write_text("1 1\n2 0\n3 1\n4 1\n5 1\n")
    (root / "bounding_boxes.txt").write_text(
        "1 0 0 3 1\n2 0.0 0.0 3.0 1.0\n3 1 0 2 2\n4 0 0 3 1\n5 1 0 2 2\n"
    )
    return {
        "root": root,
        "segmentations": root / "segmentations",
        "metadata": tmp_path / "metadata" / "CUB",
        "masks": tmp_path / "CUB-masks",
    }


def test_cub_segmentations_binarized_and_scored_by_hand(cub):
    convert_cub(cub["root"], cub["metadata"], "spa", val_per_class=1)
    splits = convert_cub_segmentations(cub["metadata"], cub["segmentations"], cub["masks"])
    assert set(splits) == {"val", "test"}
    test = read_split(cub["metadata"] / "test")
    assert test.image_ids == ["001.Bird/b_2.jpg"]
    assert test.masks[0].masks == ["001.Bird/b_2.png"]
    # The boxes stay beside the masks: CUB's (0, 0, 3, 1) as spa converts it (x + w - 1).
    assert [np.asarray(b).tolist() for b in test.boxes] == [[[0, 0, 2, 0]]]
    assert read_split(cub["metadata"] / "train").masks is None  # never for training
    binary = (np.array(SOFT) > 128) * 255
    dataset = EvalDataset(test, cub["root"] / "images", image_size=8, mask_root=cub["masks"])
    item = dataset[0]
    foreground, ignore = WsolEvaluation.gt_masks(
        item["mask"].numpy(), item["ignore"].numpy(), (2, 4)
    )
    peak_mask = Peak().gt_mask(item["mask"].numpy())
    assert foreground.tolist() == (binary > 0).tolist()  # PxAP GT: > 0.5
    assert peak_mask.tolist() == (binary > 128).tolist()  # peak GT: > 128
    # Map s; peak levels uint8(255 * s / (0.9 + 1e-10)): .9 -> 254, .7 -> 198, .2 -> 56,
    # .8 -> 226, .1 -> 28, 0 -> 0. Foreground {254, 198, 56}, background {226, 28, 0, 0, 0}:
    # t in 29..56: 3 / (3 + 1) = 0.75 is the peak (t = 0: 3/8, 1..28: 3/5, 57..198: 2/4).
    scores = np.array([[0.9, 0.7, 0.2, 0.8], [0.1, 0.0, 0.0, 0.0]])
    peak = PeakAccumulator()
    peak.update([scores], [peak_mask])
    assert (peak.compute()["PeakIoU"], peak.compute()["PeakT"]) == (pytest.approx(75.0), 29)
    # PxAP, bins [0, .5), [.5, 1), [1, 2), [2, 3): foreground (1, 2, 0, 0), background
    # (4, 1, 0, 0); from the top tp 0, 0, 2, 3 and fp 0, 0, 1, 5: P = 2/3, 3/8 at R = 2/3, 1.
    # PxAP = 2/3 * 2/3 + 3/8 * 1/3 = 56.94 (the soft mask read as > 0 would give 5 positives).
    pxap = PxAPAccumulator(0.5)
    pxap.update(scores[None], foreground[None], ignore[None])
    assert pxap.compute()["PxAP"] == pytest.approx(100 * (4 / 9 + 1 / 8))


def test_cub_segmentations_cli_and_errors(cub, capsys):
    assert (
        main(
            [
                "data",
                "convert",
                "cub",
                "--root",
                str(cub["root"]),
                "--out",
                str(cub["metadata"]),
                "--style",
                "spa",
                "--val-per-class",
                "1",
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "data",
                "convert",
                "cub-segmentations",
                "--metadata",
                str(cub["metadata"]),
                "--segmentations",
                str(cub["segmentations"]),
                "--mask-out",
                str(cub["masks"]),
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "data",
                "validate",
                "--metadata-root",
                str(cub["metadata"] / "test"),
                "--image-root",
                str(cub["root"] / "images"),
                "--mask-root",
                str(cub["masks"]),
            ]
        )
        == 0
    )
    capsys.readouterr()
    write_png(cub["segmentations"] / "001.Bird" / "b_2.png", np.zeros((3, 4)))
    assert (
        main(
            [
                "data",
                "convert",
                "cub-segmentations",
                "--metadata",
                str(cub["metadata"]),
                "--segmentations",
                str(cub["segmentations"]),
                "--mask-out",
                str(cub["masks"]),
            ]
        )
        == 2
    )
    assert "is 4x3, the image is 4x2" in capsys.readouterr().err
