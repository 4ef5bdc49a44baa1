"""Datasets: shapes, ten-crop, masks at the original size, and no boxes in training."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from wsolbench.data.datasets import (
    IMAGENET_MEAN,
    EvalDataset,
    TrainDataset,
    collate_eval,
    denormalize,
)
from wsolbench.data.metadata import MaskRef, Split, read_split, write_split
from wsolbench.errors import WsolbenchError
from wsolbench.evaluation.protocols import Peak, WsolEvaluation

DATA = Path(__file__).parent / "data" / "metadata"


@pytest.fixture
def tiny(tmp_path):
    """Two small images with boxes and masks (one with two instances and an ignore mask)."""
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (12, 20, 3), dtype=np.uint8)).save(images / "a.png")
    Image.fromarray(rng.integers(0, 255, (16, 10, 3), dtype=np.uint8)).save(images / "b.png")
    m = np.zeros((12, 20), np.uint8)
    m[2:5, 3:8] = 255
    Image.fromarray(m).save(masks / "a_m0.png")
    m0, m1, ign = (np.zeros((16, 10), np.uint8) for _ in range(3))
    m0[0:2, 0:2] = 255
    m1[10:12, 5:9] = 1  # any nonzero value is foreground
    ign[0:4, 0:4] = 255  # overlaps the foreground: foreground wins
    for name, array in (("b_m0", m0), ("b_m1", m1), ("b_ignore", ign)):
        Image.fromarray(array).save(masks / f"{name}.png")
    split = Split(
        ["a.png", "b.png"],
        np.array([3, 1]),
        np.array([[20, 12], [10, 16]]),
        [np.array([[3, 2, 7, 4]]), np.array([[0, 0, 1, 1], [5, 10, 8, 11]])],
        [MaskRef(["a_m0.png"]), MaskRef(["b_m0.png", "b_m1.png"], "b_ignore.png")],
    )
    return read_split(write_split(split, tmp_path / "meta" / "test")), images, masks


def test_each_protocol_thresholds_the_masks_by_its_own_rule(tiny):
    """The dataset gives the masks as they are (the instances' pixel-wise maximum); the peak
    protocol's GT is > 128 (docs/protocols.md sec. 6), wsolevaluation's > 0.5 (sec. 3)."""
    split, images, masks = tiny
    item = EvalDataset(split, images, image_size=8, mask_root=masks)[1]
    mask = item["mask"].numpy()
    assert mask.dtype == np.uint8 and sorted(np.unique(mask).tolist()) == [0, 1, 255]
    foreground, _ = WsolEvaluation.gt_masks(mask, item["ignore"].numpy(), mask.shape)
    assert int(foreground.sum()) == 4 + 8  # b_m1 (value 1) is foreground for PxAP ...
    peak = Peak().gt_mask(mask)
    assert int(peak.sum()) == 4 and bool(peak[0:2, 0:2].all())  # ... not for Peak


def test_train_dataset_yields_image_and_label_only(tiny):
    split, images, _ = tiny
    dataset = TrainDataset(split, images, image_size=8, resize_size=10)
    image, label = dataset[0]
    assert image.shape == (3, 8, 8) and label == 3 and len(dataset) == 2
    assert not any(
        "box" in name or "mask" in name or isinstance(value, Split)
        for name, value in vars(dataset).items()
    )


def test_eval_dataset_fields_and_masks(tiny):
    split, images, masks = tiny
    dataset = EvalDataset(
        split, images, image_size=8, mask_root=masks, ten_crop=True, resize_size=10
    )
    item = dataset[1]
    assert item["image"].shape == (3, 8, 8) and item["crops"].shape == (10, 3, 8, 8)
    assert item["size"] == (10, 16) and item["label"] == 1 and item["image_id"] == "b.png"
    assert item["boxes"].dtype == torch.int64 and item["boxes"].tolist() == [
        [0, 0, 1, 1],
        [5, 10, 8, 11],
    ]
    assert item["mask"].shape == item["ignore"].shape == (16, 10)
    assert item["mask"].dtype == item["ignore"].dtype == torch.uint8
    assert int(item["ignore"].sum()) == 16 * 255  # the ignore PNG as it is
    mask, ignore = WsolEvaluation.gt_masks(item["mask"].numpy(), item["ignore"].numpy(), (16, 10))
    assert int(mask.sum()) == 4 + 8 and bool(mask[10, 5])
    assert not bool(ignore[0, 0]) and bool(ignore[3, 3])
    assert int(ignore.sum()) == 16 - 4 and not bool((mask & ignore).any())
    batch = collate_eval([dataset[0], dataset[1]])
    assert batch["image"].shape == (2, 3, 8, 8) and batch["crops"].shape == (2, 10, 3, 8, 8)
    assert batch["label"].tolist() == [3, 1] and batch["index"].tolist() == [0, 1]
    assert batch["size"] == [(20, 12), (10, 16)] and [b.shape[0] for b in batch["boxes"]] == [1, 2]
    assert [m.shape for m in batch["mask"]] == [(12, 20), (16, 10)]


def test_eval_image_is_resized_whole_and_denormalizes(tiny):
    split, images, _ = tiny
    item = EvalDataset(split, images, image_size=8)[0]
    assert "crops" not in item and "mask" not in item
    plain = denormalize(item["image"])
    assert plain.min() >= 0 and plain.max() <= 1
    flat = torch.zeros(3, 2, 2)
    assert torch.allclose(denormalize(flat)[:, 0, 0], torch.tensor(IMAGENET_MEAN))


def test_missing_and_unreadable_images_name_path_and_metadata(tiny):
    split, images, _ = tiny
    (images / "b.png").write_bytes(b"not a png")
    with pytest.raises(WsolbenchError) as info:
        EvalDataset(split, images, image_size=8)[1]
    assert "b.png" in info.value.message and "unreadable" in info.value.message
    assert info.value.path.endswith("image_ids.txt") and info.value.line == 2
    (images / "a.png").unlink()
    with pytest.raises(WsolbenchError) as info:
        TrainDataset(split, images, image_size=8, resize_size=10)[0]
    assert "not found" in info.value.message and info.value.line == 1


def test_size_mismatch_is_reported(tiny):
    split, images, _ = tiny
    split.sizes[0] = (21, 12)
    with pytest.raises(WsolbenchError, match="image_sizes.txt says 21x12"):
        EvalDataset(split, images, image_size=8)[0]


def test_real_openimages_masks_read_like_wsolevaluation(tmp_path):
    """Mode-1, RGB and RGBA mask PNGs from wsolevaluation's test data."""
    split = read_split(DATA / "OpenImages" / "val")
    ids = ["val/0bt_c3/3a29f0b33894d4a6.jpg", "val/0by6g/b4d953e7105da1d8.jpg"]
    split = split.subset([split.image_ids.index(i) for i in ids])
    images = tmp_path / "images"
    for image_id, (w, h) in zip(ids, [(1600, 1063), (1600, 1066)]):
        (images / image_id).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (w, h)).save(images / image_id)
    dataset = EvalDataset(split, images, image_size=8, mask_root=DATA / "OpenImages" / "masks")
    first, second = dataset[0], dataset[1]
    assert first["mask"].shape == (1063, 1600) and first["mask"].any() and not first["ignore"].any()
    assert bool(second["mask"].all())  # an RGBA mask whose colour channels are all white
    assert not second["ignore"].any()


@pytest.mark.parametrize("orientation", range(1, 9))
def test_oriented_size_is_what_cv2_imread_gives(orientation, tmp_path):
    """The SPA code's original size is cv2.imread's (EXIF orientation applied); the network
    input and image_sizes.txt keep the stored size (PIL's), as in the SPA code and
    wsolevaluation."""
    import cv2
    from PIL import Image

    from wsolbench.data.datasets import EXIF_ORIENTATION, load_image, oriented_size

    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = orientation
    Image.new("RGB", (37, 21), (90, 30, 10)).save(tmp_path / "a.jpg", exif=exif.tobytes())
    image = load_image(tmp_path, "a.jpg", tmp_path / "image_ids.txt", 1)
    height, width = cv2.imread(str(tmp_path / "a.jpg")).shape[:2]
    assert oriented_size(image) == (width, height)
    assert image.size == (37, 21)  # stored
    assert oriented_size(image) == ((21, 37) if orientation >= 5 else (37, 21))
