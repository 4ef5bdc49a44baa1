"""Miniature datasets in their native layouts, for the converter and rehearsal tests.

- CUB_200_2011: images.txt, image_class_labels.txt, train_test_split.txt, bounding_boxes.txt,
  images/<class>/<image>.jpg and segmentations/<class>/<image>.png (soft masks).
- ILSVRC: validation XMLs (Pascal VOC), a LOC_synset_mapping.txt, images under val/ and train/,
  and a LID-challenge mask release (val_mask.txt, images/<image>.png).
- OpenImages30k: wsolevaluation's metadata (instance masks and ignore masks) with its images.

Images are random noise with a brighter object in the box, so a model has something to learn.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def write_image(path: Path, width: int, height: int, box, rng: np.random.Generator) -> None:
    pixels = rng.integers(0, 100, (height, width, 3), dtype=np.uint8)
    x0, y0, x1, y1 = box
    pixels[y0 : y1 + 1, x0 : x1 + 1] += 120
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


def write_png(path: Path, array) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array, dtype=np.uint8), mode="L").save(path)


def box_mask(width: int, height: int, box) -> np.ndarray:
    mask = np.zeros((height, width), np.uint8)
    x0, y0, x1, y1 = box
    mask[y0 : y1 + 1, x0 : x1 + 1] = 255
    return mask


# ----------------------------------------------------------------------------- CUB


def make_cub(
    root: Path,
    classes: int = 2,
    train_per_class: int = 3,
    test_per_class: int = 1,
    size: tuple[int, int] = (48, 40),
    seed: int = 0,
) -> Path:
    """A CUB_200_2011 folder with segmentations; returns it."""
    rng = np.random.default_rng(seed)
    width, height = size
    lines = {"images": [], "labels": [], "split": [], "boxes": []}
    key = 0
    for c in range(classes):
        folder = f"{c + 1:03d}.Bird_{c}"
        for k in range(train_per_class + test_per_class):
            key += 1
            name = f"{folder}/Bird_{c}_{k:04d}_{key}.jpg"
            x, y, w, h = 6.0 + 2 * k, 5.0 + c, 24.0, 20.0
            box = (int(x), int(y), int(x + w - 1), int(y + h - 1))
            write_image(root / "images" / name, width, height, box, rng)
            soft = box_mask(width, height, box)
            soft[box[1] : box[3] + 1, box[0]] = 102  # one annotator fewer on the left edge
            soft[:2, :] = 51  # a lone annotator's stray pixels
            write_png(root / "segmentations" / Path(name).with_suffix(".png"), soft)
            lines["images"].append(f"{key} {name}")
            lines["labels"].append(f"{key} {c + 1}")
            lines["split"].append(f"{key} {1 if k < train_per_class else 0}")
            lines["boxes"].append(f"{key} {x} {y} {w} {h}")
    for name, file in (
        ("images", "images.txt"),
        ("labels", "image_class_labels.txt"),
        ("split", "train_test_split.txt"),
        ("boxes", "bounding_boxes.txt"),
    ):
        (root / file).write_text("\n".join(lines[name]) + "\n")
    return root


# ----------------------------------------------------------------------------- ILSVRC

SYNSETS = ("n01440764 tench", "n01443537 goldfish", "n01484850 great white shark")


def voc_xml(name: str, width: int, height: int, objects) -> str:
    parts = [
        f"<annotation><folder>val</folder><filename>{name}</filename>",
        f"<size><width>{width}</width><height>{height}</height><depth>3</depth></size>",
    ]
    for wnid, (x0, y0, x1, y1) in objects:
        parts.append(
            f"<object><name>{wnid}</name><bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin>"
            f"<xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>"
        )
    return "".join(parts) + "</annotation>\n"


def make_ilsvrc(
    root: Path,
    classes: int = 2,
    per_class: int = 2,
    size: tuple[int, int] = (48, 40),
    seed: int = 0,
) -> dict[str, Path]:
    """ILSVRC train/val images with XMLs and a LID mask release over the validation images.

    Layout: root/train/<wnid>/<name>.JPEG with root/annotations/train/<name>.xml;
    root/val/<name>.JPEG with root/annotations/val/<name>.xml; root/LID/val_mask.txt and
    root/LID/images/<name>.png; root/LOC_synset_mapping.txt.
    """
    rng = np.random.default_rng(seed)
    width, height = size
    (root / "LOC_synset_mapping.txt").parent.mkdir(parents=True, exist_ok=True)
    (root / "LOC_synset_mapping.txt").write_text("\n".join(SYNSETS[:classes]) + "\n")
    listed = []
    number = 0
    for c in range(classes):
        wnid = SYNSETS[c].split()[0]
        for k in range(per_class):
            box = (5 + 3 * k, 4 + 2 * c, 30 + 2 * k, 28 + c)
            name = f"{wnid}_{k + 1}"
            write_image(root / "train" / wnid / f"{name}.JPEG", width, height, box, rng)
            (root / "annotations" / "train").mkdir(parents=True, exist_ok=True)
            (root / "annotations" / "train" / f"{name}.xml").write_text(
                voc_xml(name, width, height, [(wnid, box)])
            )
            for _ in range(2 if k == 0 else 1):  # three validation images per class
                number += 1
                name = f"ILSVRC2012_val_{number:08d}"
                write_image(root / "val" / f"{name}.JPEG", width, height, box, rng)
                (root / "annotations" / "val").mkdir(parents=True, exist_ok=True)
                (root / "annotations" / "val" / f"{name}.xml").write_text(
                    voc_xml(name, width, height, [(wnid, box)])
                )
                if number % 2 == 0:  # every other validation image has a LID mask
                    write_png(root / "LID" / "images" / f"{name}.png", box_mask(width, height, box))
                    listed.append(f"{name}.png")
    (root / "LID" / "val_mask.txt").write_text("\n".join(listed) + "\n")
    return {
        "root": root,
        "synsets": root / "LOC_synset_mapping.txt",
        "lid": root / "LID",
        "train_xml": root / "annotations" / "train",
        "val_xml": root / "annotations" / "val",
    }


# ----------------------------------------------------------------------------- OpenImages


def make_openimages(
    root: Path,
    classes: int = 2,
    per_class: dict[str, int] | None = None,
    size: tuple[int, int] = (48, 40),
    seed: int = 0,
) -> dict[str, Path]:
    """wsolevaluation's OpenImages layout: metadata/{train,val,test} (masks in localization.txt,
    empty image_sizes.txt), images/<split>/<class>/<id>.jpg, masks/<split>/<class>/<id>_*.png."""
    rng = np.random.default_rng(seed)
    per_class = per_class or {"train": 2, "val": 1, "test": 1}
    width, height = size
    folders = {"metadata": root / "metadata", "images": root / "images", "masks": root / "masks"}
    for split, count in per_class.items():
        ids, labels, localization = [], [], []
        for c in range(classes):
            cls = f"0c{c}xyz"
            for k in range(count):
                image_id = f"{split}/{cls}/{split}{c}{k:03d}abcdef.jpg"
                box = (4 + 3 * k, 5 + 2 * c, 28 + 2 * k, 30)
                write_image(folders["images"] / image_id, width, height, box, rng)
                ids.append(image_id)
                labels.append(f"{image_id},{c}")
                if split == "train":
                    continue
                stem = image_id[:-4]
                mask = f"{stem}_m{cls}_0000{k}.png"
                ignore = f"{stem}_ignore.png"
                write_png(folders["masks"] / mask, box_mask(width, height, box))
                ignored = np.zeros((height, width), np.uint8)
                ignored[-3:, -3:] = 255
                write_png(folders["masks"] / ignore, ignored)
                localization.append(f"{image_id},{mask},{ignore}")
        folder = folders["metadata"] / split
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "image_ids.txt").write_text("\n".join(ids) + "\n")
        (folder / "class_labels.txt").write_text("\n".join(labels) + "\n")
        (folder / "image_sizes.txt").write_text("")
        if localization:
            (folder / "localization.txt").write_text("\n".join(localization) + "\n")
    return folders
