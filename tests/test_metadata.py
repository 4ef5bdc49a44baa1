"""The metadata reader/writer on real wsolevaluation pieces and on files made to fail."""

from pathlib import Path

import numpy as np
import pytest

from wsolbench.data.metadata import MaskRef, Split, read_split, validate_files, write_split
from wsolbench.errors import MetadataError

DATA = Path(__file__).parent / "data" / "metadata"


def test_real_cub_val_split():
    split = read_split(DATA / "CUB" / "val")
    assert len(split) == 1000 and split.num_classes == 200
    assert split.image_ids[0] == "001.Black_footed_Albatross/30107316117.jpg"
    assert split.labels.dtype == np.int64 and split.labels[0] == 0 and split.labels[-1] == 199
    assert split.sizes[0].tolist() == [560, 419]
    assert split.boxes[0].tolist() == [[176, 136, 459, 291]]
    assert split.masks is None


def test_real_ilsvrc_test_piece_groups_boxes_per_image():
    split = read_split(DATA / "ILSVRC" / "test")
    assert len(split) == 200 and split.num_boxes == 301
    assert split.boxes[1].tolist() == [[45, 49, 499, 162], [2, 69, 437, 207]]
    assert split.labels[:3].tolist() == [65, 970, 230]


def test_real_openimages_masks_with_empty_sizes_and_later_empty_ignore():
    split = read_split(DATA / "OpenImages" / "val")
    assert split.sizes is None and split.boxes is None
    i = split.image_ids.index("val/0bt_c3/3a29f0b33894d4a6.jpg")
    ref = split.masks[i]
    assert ref.masks == [
        "val/0bt_c3/3a29f0b33894d4a6_m0bt_c3_d2422806.png",
        "val/0bt_c3/3a29f0b33894d4a6_m0bt_c3_3581e3ae.png",
    ]
    assert ref.ignore == "val/0bt_c3/3a29f0b33894d4a6_ignore.png"


def test_round_trip_keeps_every_field(tmp_path):
    for name in ("CUB/val", "ILSVRC/test", "OpenImages/val"):
        split = read_split(DATA / name)
        copy = read_split(write_split(split, tmp_path / name))
        assert copy.image_ids == split.image_ids
        assert np.array_equal(copy.labels, split.labels)
        assert (copy.sizes is None) == (split.sizes is None)
        if split.sizes is not None:
            assert np.array_equal(copy.sizes, split.sizes)
        if split.boxes is not None:
            assert all(np.array_equal(a, b) for a, b in zip(copy.boxes, split.boxes))
        assert copy.masks == split.masks


def test_boxes_and_masks_together_use_mask_localization(tmp_path):
    split = Split(
        ["a/1.png", "a/2.png"],
        np.array([0, 1]),
        np.array([[10, 8], [6, 6]]),
        [np.array([[0, 0, 9, 7]]), np.array([[1, 1, 2, 2], [3, 3, 5, 5]])],
        [MaskRef(["a/1_m0.png"]), MaskRef(["a/2_m0.png", "a/2_m1.png"])],
    )
    root = write_split(split, tmp_path / "test")
    assert (
        root / "mask_localization.txt"
    ).read_text() == "a/1.png,a/1_m0.png,\na/2.png,a/2_m0.png,\na/2.png,a/2_m1.png,\n"
    copy = read_split(root)
    assert copy.num_boxes == 3 and copy.num_masks == 3 and copy.masks[1].ignore is None
    sub = copy.subset([1])
    assert sub.image_ids == ["a/2.png"] and sub.boxes[0].shape == (2, 4) and len(sub) == 1


def test_train_split_may_lack_localization(tmp_path):
    root = tmp_path / "train"
    root.mkdir()
    (root / "image_ids.txt").write_text("x.png\ny.png")  # no trailing newline
    (root / "class_labels.txt").write_text("y.png,1\nx.png,0\n")  # another order is fine
    (root / "image_sizes.txt").write_text("x.png,4,4\ny.png,5,5\n")
    split = read_split(root)
    assert split.labels.tolist() == [0, 1] and split.boxes is None
    assert split.sizes.tolist() == [[4, 4], [5, 5]]


def _write(root: Path, files: dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    base = {
        "image_ids.txt": "a.png\nb.png\n",
        "class_labels.txt": "a.png,0\nb.png,1\n",
        "image_sizes.txt": "a.png,10,10\nb.png,20,10\n",
        "localization.txt": "a.png,0,0,9,9\nb.png,1,1,19,9\n",
    }
    base.update(files)
    for name, text in base.items():
        if text is not None:
            (root / name).write_text(text)
    return root


BAD_CASES = {
    "missing_file": ({"class_labels.txt": None}, "class_labels.txt", None, "missing"),
    "id_absent_from_labels": ({"class_labels.txt": "a.png,0\n"}, "image_ids.txt", 2, "no label"),
    "id_unknown_in_labels": (
        {"class_labels.txt": "a.png,0\nb.png,1\nc.png,2\n"},
        "class_labels.txt",
        3,
        "not in",
    ),
    "id_without_box": ({"localization.txt": "a.png,0,0,9,9\n"}, "image_ids.txt", 2, "no box"),
    "box_of_unknown_id": (
        {"localization.txt": "a.png,0,0,9,9\nb.png,0,0,1,1\nz.png,0,0,1,1"},
        "localization.txt",
        3,
        "not in",
    ),
    "duplicate_id": ({"image_ids.txt": "a.png\nb.png\na.png\n"}, "image_ids.txt", 3, "duplicate"),
    "duplicate_label": (
        {"class_labels.txt": "a.png,0\nb.png,1\nb.png,1\n"},
        "class_labels.txt",
        3,
        "duplicate",
    ),
    "duplicate_size": (
        {"image_sizes.txt": "a.png,10,10\na.png,10,10\nb.png,20,10\n"},
        "image_sizes.txt",
        2,
        "duplicate",
    ),
    "label_not_integer": (
        {"class_labels.txt": "a.png,0\nb.png,1.5\n"},
        "class_labels.txt",
        2,
        "not an integer",
    ),
    "size_not_integer": (
        {"image_sizes.txt": "a.png,10,10\nb.png,20,x\n"},
        "image_sizes.txt",
        2,
        "not an integer",
    ),
    "wrong_field_count": (
        {"class_labels.txt": "a.png,0\nb.png,1,2\n"},
        "class_labels.txt",
        2,
        "fields",
    ),
    "inner_empty_line": ({"image_ids.txt": "a.png\n\nb.png\n"}, "image_ids.txt", 2, "empty"),
    "box_wrong_fields": (
        {"localization.txt": "a.png,0,0,9,9\nb.png,1,1,19\n"},
        "localization.txt",
        2,
        "fields",
    ),
    "coordinate_not_integer": (
        {"localization.txt": "a.png,0,0,9,9\nb.png,1,1.0,19,9\n"},
        "localization.txt",
        2,
        "not an integer",
    ),
    "x1_before_x0": (
        {"localization.txt": "a.png,5,0,4,9\nb.png,1,1,19,9\n"},
        "localization.txt",
        1,
        "x1 < x0",
    ),
    "y1_before_y0": (
        {"localization.txt": "a.png,0,0,9,9\nb.png,1,5,19,4\n"},
        "localization.txt",
        2,
        "y1 < y0",
    ),
    "box_outside_width": (
        {"localization.txt": "a.png,0,0,9,9\nb.png,1,1,20,9\n"},
        "localization.txt",
        2,
        "outside",
    ),
    "box_outside_height": (
        {"localization.txt": "a.png,0,0,9,10\nb.png,1,1,19,9\n"},
        "localization.txt",
        1,
        "outside",
    ),
    "negative_box": (
        {"localization.txt": "a.png,-1,0,9,9\nb.png,1,1,19,9\n"},
        "localization.txt",
        1,
        "negative",
    ),
    "absolute_id": ({"image_ids.txt": "a.png\n/etc/b.png\n"}, "image_ids.txt", 2, "relative"),
    "climbing_id": ({"image_ids.txt": "a.png\nx/../../b.png\n"}, "image_ids.txt", 2, ".."),
    "climbing_mask": (
        {
            "localization.txt": "a.png,m/a.png,m/a_ignore.png\nb.png,../b.png,\n",
            "image_sizes.txt": "",
        },
        "localization.txt",
        2,
        "..",
    ),
    "second_ignore": (
        {
            "localization.txt": "a.png,m/a.png,i.png\na.png,m/a2.png,j.png\nb.png,m/b.png,\n",
            "image_sizes.txt": "",
        },
        "localization.txt",
        2,
        "ignore",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_metadata_names_file_and_line(tmp_path, case):
    files, bad_file, line, words = BAD_CASES[case]
    root = _write(tmp_path / "test", files)
    with pytest.raises(MetadataError) as info:
        read_split(root)
    error = info.value
    assert Path(error.path).name == bad_file
    assert error.line == line
    assert words in error.message
    where = f"{bad_file}:{line}" if line else bad_file
    assert where in str(error)


def test_validate_files_names_metadata_line(tmp_path):
    root = _write(tmp_path / "meta" / "test", {})
    split = read_split(root)
    images = tmp_path / "images"
    images.mkdir()
    (images / "a.png").write_bytes(b"x")
    with pytest.raises(MetadataError) as info:
        validate_files(split, images)
    assert (
        info.value.line == 2
        and info.value.path.endswith("image_ids.txt")
        and "b.png" in info.value.message
    )
    (images / "b.png").write_bytes(b"x")
    validate_files(split, images)


def test_validate_files_checks_real_openimages_masks(tmp_path):
    split = read_split(DATA / "OpenImages" / "val")
    masks = DATA / "OpenImages" / "masks"
    images = tmp_path / "images"
    for image_id in split.image_ids:  # stand-in image files: only the masks are real
        (images / image_id).parent.mkdir(parents=True, exist_ok=True)
        (images / image_id).write_bytes(b"")
    ids = [
        "val/0bt_c3/3b3b9931325d65c9.jpg",
        "val/0bt_c3/3a29f0b33894d4a6.jpg",
        "val/0by6g/490365f63135f3e0.jpg",
    ]
    validate_files(split.subset([split.image_ids.index(i) for i in ids]), images, mask_root=masks)
    validate_files(split, images)  # without a mask root only images are checked
    with pytest.raises(MetadataError) as info:
        validate_files(
            split, images, mask_root=masks
        )  # the first image's mask is not in tests/data
    assert info.value.path.endswith("localization.txt") and info.value.line == 1


def test_cli_validate_exit_codes_and_messages(tmp_path, capsys):
    from wsolbench.cli import main

    assert main(["data", "validate", "--metadata-root", str(DATA / "CUB" / "val")]) == 0
    out = capsys.readouterr().out
    assert "1000" in out and "200" in out
    root = _write(tmp_path / "test", {"class_labels.txt": "a.png,0\nb.png,one\n"})
    assert main(["data", "validate", "--metadata-root", str(root)]) == 2
    err = capsys.readouterr().err.replace("\n", "")
    assert "class_labels.txt:2" in err and "not an integer" in err and "Traceback" not in err
    good = _write(tmp_path / "good", {})
    assert (
        main(["data", "validate", "--metadata-root", str(good), "--image-root", str(tmp_path)]) == 2
    )
    err = capsys.readouterr().err.replace("\n", "")
    assert "image_ids.txt:1" in err and "image not found" in err
