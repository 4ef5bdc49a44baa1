"""Converters on miniature native trees built in tmp_path."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from wsolbench.data.converters import (
    STYLE_FILE,
    check_metadata_style,
    convert_cub,
    convert_ilsvrc,
    convert_openimages,
    read_metadata_style,
)
from wsolbench.data.metadata import Split, read_split, write_split
from wsolbench.errors import MetadataError, WsolbenchError

DATA = Path(__file__).parent / "data" / "metadata"


def _cub_tree(root: Path) -> Path:
    """Six images of two classes; images 1, 2, 4, 5 are training images."""
    names, sizes = [], [(30, 20), (25, 25), (40, 16), (30, 20), (22, 33), (18, 18)]
    for i, size in enumerate(sizes, start=1):
        name = f"{1 + (i > 3):03d}.Bird_{1 + (i > 3)}/bird_{i}.jpg"
        (root / "images" / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", size, (i * 20, 0, 0)).save(root / "images" / name)
        names.append(name)
    (root / "images.txt").write_text("".join(f"{i} {n}\n" for i, n in enumerate(names, 1)))
    (root / "image_class_labels.txt").write_text(
        "".join(f"{i} {1 + (i > 3)}\n" for i in range(1, 7))
    )
    (root / "train_test_split.txt").write_text("1 1\n2 1\n3 0\n4 1\n5 1\n6 0\n")
    (root / "bounding_boxes.txt").write_text(
        "1 2.0 3.0 10.0 5.0\n2 0.0 0.0 25.0 25.0\n3 1.5 2.7 4.6 4.9\n"
        "4 5.0 5.0 3.0 3.0\n5 0.0 1.0 22.0 31.0\n6 17.0 17.0 1.0 1.0\n"
    )
    return root


def test_cub_conversion_spa_style(tmp_path):
    """SPA's splits: train all training images, val drawn from them (they stay in train);
    boxes x + w - 1 (exper/val_spa.py:163), clipped to the image."""
    splits = convert_cub(
        _cub_tree(tmp_path / "CUB_200_2011"), tmp_path / "out", "spa", val_per_class=1, seed=3
    )
    train, val, test = (read_split(tmp_path / "out" / n) for n in ("train", "val", "test"))
    assert len(train) == 4 and len(val) == 2 and len(test) == 2
    assert sorted(val.labels.tolist()) == [0, 1] and sorted(train.labels.tolist()) == [0, 0, 1, 1]
    assert set(val.image_ids) < set(train.image_ids)
    assert train.image_ids == [
        "001.Bird_1/bird_1.jpg",
        "001.Bird_1/bird_2.jpg",
        "002.Bird_2/bird_4.jpg",
        "002.Bird_2/bird_5.jpg",
    ]
    assert test.image_ids == ["001.Bird_1/bird_3.jpg", "002.Bird_2/bird_6.jpg"]
    assert test.labels.tolist() == [0, 1]
    assert test.sizes.tolist() == [[40, 16], [18, 18]]
    # x0=int(x), y0=int(y), x1=int(x+w-1), y1=int(y+h-1)
    assert test.boxes[0].tolist() == [[1, 2, 5, 6]] and test.boxes[1].tolist() == [[17, 17, 17, 17]]
    boxes = dict(zip(train.image_ids, train.boxes))
    assert boxes["001.Bird_1/bird_1.jpg"].tolist() == [[2, 3, 11, 7]]
    assert boxes["001.Bird_1/bird_2.jpg"].tolist() == [[0, 0, 24, 24]]
    assert boxes["002.Bird_2/bird_5.jpg"].tolist() == [[0, 1, 21, 31]]
    assert (tmp_path / "out" / STYLE_FILE).read_text() == "spa\n"
    assert read_metadata_style(tmp_path / "out") == "spa"
    again = convert_cub(
        tmp_path / "CUB_200_2011", tmp_path / "again", "spa", val_per_class=1, seed=3
    )
    assert again["val"].image_ids == splits["val"].image_ids  # seeded


def test_cub_conversion_wsolevaluation_style(tmp_path):
    """wsolevaluation's splits: train all training images, val its own (CUBV2) metadata; boxes
    int(x + w), int(y + h), clipped to the image, as its metadata holds them for all 11,788
    CUB images (checked against its metadata/CUB and CUB's bounding_boxes.txt)."""
    root = _cub_tree(tmp_path / "CUB_200_2011")
    cubv2 = "003.Bird_3/30107316117.jpg"  # an image of the other collection, beside CUB's
    (root / "images" / cubv2).parent.mkdir()
    Image.new("RGB", (12, 10)).save(root / "images" / cubv2)
    val = Split([cubv2], np.array([1]), np.array([[12, 10]]), [np.array([[1, 2, 8, 9]])])
    write_split(val, tmp_path / "wsolevaluation-val")
    splits = convert_cub(
        root, tmp_path / "out", "wsolevaluation", val_metadata=tmp_path / "wsolevaluation-val"
    )
    assert len(splits["train"]) == 4 and splits["val"].image_ids == [cubv2]
    test = read_split(tmp_path / "out" / "test")
    assert test.boxes[0].tolist() == [[1, 2, 6, 7]] and test.boxes[1].tolist() == [[17, 17, 17, 17]]
    boxes = dict(zip(splits["train"].image_ids, splits["train"].boxes))
    assert boxes["001.Bird_1/bird_1.jpg"].tolist() == [[2, 3, 12, 8]]
    assert boxes["001.Bird_1/bird_2.jpg"].tolist() == [[0, 0, 24, 24]]  # 25 clipped to 24
    assert boxes["002.Bird_2/bird_5.jpg"].tolist() == [[0, 1, 21, 32]]
    assert read_split(tmp_path / "out" / "val").boxes[0].tolist() == [[1, 2, 8, 9]]
    assert read_metadata_style(tmp_path / "out") == "wsolevaluation"
    (root / "images" / cubv2).unlink()
    with pytest.raises(MetadataError, match="30107316117.jpg not found") as info:
        convert_cub(
            root, tmp_path / "out2", "wsolevaluation", val_metadata=tmp_path / "wsolevaluation-val"
        )
    assert info.value.path.endswith("image_ids.txt") and info.value.line == 1
    with pytest.raises(WsolbenchError, match="metadata/CUB/val"):
        convert_cub(root, tmp_path / "out3", "wsolevaluation")
    with pytest.raises(WsolbenchError, match="CUB style must be one of wsolevaluation, spa"):
        convert_cub(root, tmp_path / "out4", "cub")


def test_cub_boxes_overhanging_the_image_are_clipped(tmp_path):
    """Eight CUB boxes overhang their image by up to 33 px (Chuck_Will_Widow_0051: x + w = 532
    on a 500 px image): clipped, as wsolevaluation's metadata has them, not refused."""
    root = _cub_tree(tmp_path / "CUB")
    boxes = (
        (root / "bounding_boxes.txt")
        .read_text()
        .replace("1 2.0 3.0 10.0 5.0", "1 2.0 3.0 40.0 5.0")
    )
    (root / "bounding_boxes.txt").write_text(boxes)
    for style in ("spa", "wsolevaluation"):
        val = {"val_metadata": None}
        if style == "wsolevaluation":
            write_split(one_image_val(), tmp_path / "v")
            val = {"val_metadata": tmp_path / "v"}
        splits = convert_cub(root, tmp_path / style, style, **val)
        assert splits["train"].boxes[0].tolist() == [[2, 3, 29, 7 if style == "spa" else 8]]


def one_image_val() -> Split:
    """A one-image val split (an image of the CUB tree) for the wsolevaluation style."""
    return Split(
        ["001.Bird_1/bird_1.jpg"], np.array([0]), np.array([[30, 20]]), [np.array([[0, 0, 5, 5]])]
    )


def test_metadata_without_a_style_file_is_wsolevaluations(tmp_path):
    assert read_metadata_style(tmp_path) == "wsolevaluation"
    (tmp_path / STYLE_FILE).write_text("mine\n")
    with pytest.raises(MetadataError, match="unknown metadata style 'mine'"):
        read_metadata_style(tmp_path)
    (tmp_path / STYLE_FILE).write_text("spa\n")
    with pytest.raises(
        WsolbenchError, match="needs wsolevaluation-style metadata.*--style wsolevaluation"
    ):
        check_metadata_style(tmp_path, "wsolevaluation", "suite cub-resnet50")


def test_cub_missing_entry_is_reported(tmp_path):
    root = _cub_tree(tmp_path / "CUB")
    (root / "bounding_boxes.txt").write_text("1 2.0 3.0 10.0 5.0\n2 0 0 x 1\n")
    with pytest.raises(MetadataError, match="cannot parse '2 0 0 x 1'") as info:
        convert_cub(root, tmp_path / "out", "spa")
    assert info.value.path.endswith("bounding_boxes.txt") and info.value.line == 2


VOC = """<annotation><folder>val</folder><filename>{name}</filename>
<size><width>{w}</width><height>{h}</height><depth>3</depth></size>{objects}</annotation>"""
OBJECT = "<object><name>{wnid}</name><bndbox><xmin>{0}</xmin><ymin>{1}</ymin><xmax>{2}</xmax><ymax>{3}</ymax></bndbox></object>"


def test_ilsvrc_xml_conversion(tmp_path):
    xml = tmp_path / "xml"
    xml.mkdir()
    samples = {
        "ILSVRC2012_val_00000001": (50, 40, [("n02", (5, 6, 20, 30))]),
        "ILSVRC2012_val_00000002": (30, 30, [("n01", (0, 0, 10, 10)), ("n01", (3, 4, 30, 29))]),
    }
    for name, (w, h, objects) in samples.items():
        body = "".join(OBJECT.format(*box, wnid=wnid) for wnid, box in objects)
        (xml / f"{name}.xml").write_text(VOC.format(name=name, w=w, h=h, objects=body))
    split = convert_ilsvrc(xml, tmp_path / "out" / "test")
    back = read_split(tmp_path / "out" / "test")
    assert back.image_ids == [
        "val/ILSVRC2012_val_00000001.JPEG",
        "val/ILSVRC2012_val_00000002.JPEG",
    ]
    assert back.labels.tolist() == [1, 0]  # sorted synsets: n01 -> 0, n02 -> 1
    assert back.boxes[1].tolist() == [[0, 0, 10, 10], [3, 4, 29, 29]]  # clipped to the image
    assert back.sizes.tolist() == [[50, 40], [30, 30]] and len(split) == 2
    synsets = tmp_path / "LOC_synset_mapping.txt"
    synsets.write_text("n00 zero\nn02 two, deux\nn01 one\n")
    mapped = convert_ilsvrc(xml, tmp_path / "mapped", synsets=synsets)
    assert mapped.labels.tolist() == [1, 2]
    (xml / "broken.xml").write_text("<annotation><size>")
    with pytest.raises(MetadataError, match="broken.xml"):
        convert_ilsvrc(xml, tmp_path / "bad")


def test_openimages_validate_and_copy(tmp_path):
    source = tmp_path / "OpenImages"
    write_split(read_split(DATA / "OpenImages" / "val"), source / "val")
    splits = convert_openimages(source, tmp_path / "out")
    copy = read_split(tmp_path / "out" / "val")
    assert list(splits) == ["val"] and copy.masks == splits["val"].masks and len(copy) == 104
    with pytest.raises(MetadataError, match="mask not found"):
        convert_openimages(source, tmp_path / "checked", mask_root=DATA / "OpenImages" / "masks")
    assert np.array_equal(copy.labels, splits["val"].labels)


def test_cli_convert_cub_and_openimages(tmp_path, capsys):
    from wsolbench.cli import main

    root = _cub_tree(tmp_path / "CUB_200_2011")
    assert (
        main(
            [
                "data",
                "convert",
                "cub",
                "--root",
                str(root),
                "--out",
                str(tmp_path / "cub"),
                "--style",
                "spa",
                "--val-per-class",
                "1",
            ]
        )
        == 0
    )
    assert "test" in capsys.readouterr().out and len(read_split(tmp_path / "cub" / "test")) == 2
    assert (
        main(
            [
                "data",
                "convert",
                "openimages",
                "--metadata-root",
                str(DATA / "OpenImages" / "val"),
                "--out",
                str(tmp_path / "oi" / "val"),
            ]
        )
        == 0
    )
    assert read_split(tmp_path / "oi" / "val").num_masks == 149
    (root / "images.txt").unlink()
    assert (
        main(
            [
                "data",
                "convert",
                "cub",
                "--root",
                str(root),
                "--out",
                str(tmp_path / "bad"),
                "--style",
                "spa",
            ]
        )
        == 2
    )
    assert "images.txt: missing" in capsys.readouterr().err.replace("\n", "")
