"""Converters from native dataset layouts to the metadata format (docs/protocols.md section 1).

- CUB-200-2011: ``images.txt``, ``image_class_labels.txt``, ``train_test_split.txt``,
  ``bounding_boxes.txt`` (float ``x y w h``) and ``images/``, in one of two styles, each its
  reference's splits and box convention (docs/protocols.md sec. 1): ``wsolevaluation`` (val =
  its CUBV2 metadata, boxes ``x + w``) or ``spa`` (val drawn from train, boxes ``x + w - 1``).
- ILSVRC validation: one Pascal-VOC XML per image.
- OpenImages30k: already in the format; validated and copied.
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from pathlib import Path

import numpy as np
from PIL import Image

from wsolbench.data.metadata import MaskRef, Split, read_split, validate_files, write_split
from wsolbench.errors import MetadataError, WsolbenchError
from wsolbench.io import write_text

# ----------------------------------------------------------------------------- CUB-200-2011


# A box may overhang the image by this many pixels (rounding in the native annotations); it is
# clipped. A box further outside is an error naming its line.
CLIP_TOLERANCE = 1


# The CUB styles: each reference's splits and box convention (docs/protocols.md sec. 1).
CUB_STYLES = ("wsolevaluation", "spa")
# The file that names a converted metadata folder's style (absent: wsolevaluation's own files).
STYLE_FILE = "metadata_style.txt"


def cub_box(x: float, y: float, w: float, h: float, style: str) -> list[int]:
    """A CUB ``x y w h`` box as the style's reference writes it (inclusive corners):
    wsolevaluation's metadata ``int(x + w)``, ``int(y + h)``; SPA's ``x + w - 1``, ``y + h - 1``
    (exper/val_spa.py:163)."""
    end = 0 if style == "wsolevaluation" else 1
    return [int(x), int(y), int(x + w - end), int(y + h - end)]


def convert_cub(
    root: str | Path,
    out_dir: str | Path,
    style: str,
    val_metadata: str | Path | None = None,
    val_per_class: int = 5,
    seed: int = 0,
) -> dict[str, Split]:
    """Convert a CUB_200_2011 folder; writes ``out_dir/{train,val,test}`` and ``out_dir/``
    STYLE_FILE. Image ids are relative to ``root/images``. ``train`` holds all 5,994 training
    images and ``test`` the 5,794 others in both styles; ``val``:

    - ``wsolevaluation``: its CUBV2 split, read from ``val_metadata`` (wsolevaluation's
      ``metadata/CUB/val``; the images must be under ``root/images``, as in its dataset folder);
    - ``spa``: SPA has none (it trains on all training images): ``val_per_class`` training
      images per class, seeded, which stay in train.

    Boxes (``cub_box``) are clipped to the image, as wsolevaluation's metadata clips them (eight
    CUB boxes overhang their image, by up to 33 pixels). Everything is checked (class ids 1..200
    style, split flags 0/1, boxes, images) before anything is written; errors name the native
    file and line."""
    if style not in CUB_STYLES:
        raise WsolbenchError(f"CUB style must be one of {', '.join(CUB_STYLES)}, not '{style}'")
    if (style == "wsolevaluation") != (val_metadata is not None):
        raise WsolbenchError(
            "the wsolevaluation style takes its val split from wsolevaluation's metadata/CUB/val "
            "(give it, and only for that style)"
        )
    root = Path(root)
    paths, path_lines = _cub_table(root / "images.txt", 1, str)
    labels, label_lines = _cub_table(root / "image_class_labels.txt", 1, int)
    is_train, flag_lines = _cub_table(root / "train_test_split.txt", 1, int)
    raw_boxes, box_lines = _cub_table(root / "bounding_boxes.txt", 4, float)
    if not paths:
        raise MetadataError("lists no image", root / "images.txt")

    image_ids, label_list, sizes, boxes = [], [], [], []
    for key, (path,) in paths.items():
        for table, name in (
            (labels, "image_class_labels.txt"),
            (is_train, "train_test_split.txt"),
            (raw_boxes, "bounding_boxes.txt"),
        ):
            if key not in table:
                raise MetadataError(
                    f"image {key} ({path}) is missing from {name}",
                    root / "images.txt",
                    path_lines[key],
                )
        if path.startswith(("/", "\\")) or ".." in path.replace("\\", "/").split("/"):
            raise MetadataError(
                f"image path '{path}' must stay inside images/",
                root / "images.txt",
                path_lines[key],
            )
        if labels[key][0] < 1:
            raise MetadataError(
                f"class id {labels[key][0]} (CUB class ids start at 1)",
                root / "image_class_labels.txt",
                label_lines[key],
            )
        if is_train[key][0] not in (0, 1):
            raise MetadataError(
                f"split flag {is_train[key][0]} (expected 1 = train or 0 = test)",
                root / "train_test_split.txt",
                flag_lines[key],
            )
        width, height = _image_size(root / "images" / path, root / "images.txt", path_lines[key])
        box = cub_box(*raw_boxes[key], style)
        box = _clip_box(box, width, height, root / "bounding_boxes.txt", box_lines[key], None)
        image_ids.append(path)
        label_list.append(labels[key][0] - 1)  # CUB classes are 1-based
        sizes.append((width, height))
        boxes.append(np.array([box], dtype=np.int64))

    everything = Split(
        image_ids, np.array(label_list, np.int64), np.array(sizes, np.int64).reshape(-1, 2), boxes
    )
    train_flags = np.array([is_train[key][0] == 1 for key in paths], dtype=bool)
    train_index = np.flatnonzero(train_flags)
    splits = {"train": everything.subset(train_index)}
    if style == "spa":
        val_index = _per_class_sample(everything.labels[train_index], val_per_class, seed)
        splits["val"] = everything.subset(train_index[val_index])
    else:
        splits["val"] = _wsolevaluation_val(Path(val_metadata), root / "images")
    splits["test"] = everything.subset(np.flatnonzero(~train_flags))
    # Why a split would be empty, and what to change. The spa style's val is drawn from train
    # and stays in it (SPA trains on every training image), so --val-per-class never empties
    # train: only the split flags (or the val metadata given) can.
    flags = root / "train_test_split.txt"
    reasons = {
        "train": ("no image is marked 1 (train) in this file", flags),
        "test": ("no image is marked 0 (test) in this file", flags),
        "val": (
            ("no image is marked 1 (train) in this file, and val is drawn from train", flags)
            if style == "spa"
            else ("the --val-metadata split lists no image", val_metadata)
        ),
    }
    for name in ("train", "test", "val"):
        if not len(splits[name]):
            reason, path = reasons[name]
            raise MetadataError(f"the {name} split would be empty: {reason}", path)
    for name, split in splits.items():
        write_split(split, Path(out_dir) / name)
    write_text(Path(out_dir) / STYLE_FILE, style + "\n")
    return splits


def _wsolevaluation_val(folder: Path, image_root: Path) -> Split:
    """wsolevaluation's CUB val split (CUBV2), checked: its images must be under image_root."""
    split = read_split(folder)
    if split.boxes is None or split.sizes is None:
        raise MetadataError("wsolevaluation's CUB val split has boxes and sizes", folder)
    for line, image_id in enumerate(split.image_ids, start=1):
        if not (image_root / image_id).is_file():
            raise MetadataError(
                f"image {image_root / image_id} not found (wsolevaluation's CUBV2 images go "
                "beside CUB-200-2011's, as in its dataset folder)",
                folder / "image_ids.txt",
                line,
            )
    return split


def read_metadata_style(metadata_root: str | Path) -> str:
    """The style of a metadata folder: STYLE_FILE's word, else ``wsolevaluation`` (its own
    released metadata carries no such file)."""
    path = Path(metadata_root) / STYLE_FILE
    if not path.is_file():
        return "wsolevaluation"
    style = path.read_text(encoding="utf-8", errors="replace").strip()
    if style not in CUB_STYLES:
        raise MetadataError(
            f"unknown metadata style '{style[:40]}' (expected one of {', '.join(CUB_STYLES)})",
            path,
            1,
        )
    return style


def check_metadata_style(metadata_root: str | Path, needed: str, what: str) -> None:
    """Refuse a metadata folder of another style than ``needed`` (``what`` names who needs it)."""
    style = read_metadata_style(metadata_root)
    if style != needed:
        raise WsolbenchError(
            f"{what} needs {needed}-style metadata, {metadata_root} is {style}-style "
            f"(wsolbench data convert cub --style {needed})"
        )


def _cub_table(path: Path, num_values: int, kind) -> tuple[dict[int, tuple], dict[int, int]]:
    """``<image key> <values...>`` per line, space-separated, as an ordered dict, and the line
    of each key."""
    if not path.is_file():
        raise MetadataError("missing CUB file", path)
    table: dict[int, tuple] = {}
    lines: dict[int, int] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise MetadataError(f"cannot read: {error}", path) from None
    for i, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != num_values + 1:
            raise MetadataError(
                f"expected {num_values + 1} space-separated fields, found {len(fields)}", path, i
            )
        try:
            key = int(fields[0])
            values = tuple(kind(v) for v in fields[1:])
        except ValueError:
            raise MetadataError(f"cannot parse '{line.strip()}'", path, i) from None
        if key in table:
            raise MetadataError(f"duplicate image key {key}", path, i)
        if kind is float and not all(np.isfinite(values)):
            raise MetadataError(f"non-finite value in '{line.strip()}'", path, i)
        table[key] = values
        lines[key] = i
    return table, lines


def _clip_box(
    box: list[int],
    width: int,
    height: int,
    path: Path,
    line: int | None,
    tolerance: int | None = CLIP_TOLERANCE,
) -> list[int]:
    """Clip a box that overhangs the image by at most ``tolerance`` (None: any overhang, the box
    starting inside the image); refuse anything else."""
    x0, y0, x1, y1 = box
    if x1 < x0 or y1 < y0:
        raise MetadataError(f"empty box {box}", path, line)
    limit = max(width, height) if tolerance is None else tolerance
    if (
        min(x0, y0) < -limit
        or x1 > width - 1 + limit
        or y1 > height - 1 + limit
        or x0 > width - 1
        or y0 > height - 1
    ):
        raise MetadataError(f"box {box} lies outside the {width}x{height} image", path, line)
    return [max(0, x0), max(0, y0), min(x1, width - 1), min(y1, height - 1)]


def _per_class_sample(labels: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Indices of ``k`` items per class (all of a class that has fewer), sorted, seeded."""
    rng = np.random.default_rng(seed)
    chosen = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        chosen.append(rng.permutation(members)[: min(k, len(members))])
    return np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, np.int64)


def _image_size(path: Path, listed_in: Path, line: int | None = None) -> tuple[int, int]:
    try:
        with Image.open(path) as image:
            return image.size
    except Exception as error:  # missing, unidentified, decompression bomb, decoder errors
        raise WsolbenchError(f"cannot read image {path}: {error}", listed_in, line) from None


# ----------------------------------------------------------------------------- ILSVRC


def convert_ilsvrc(
    annotations: str | Path,
    out_dir: str | Path,
    synsets: str | Path | None = None,
    image_prefix: str = "val/",
    extension: str = ".JPEG",
) -> Split:
    """Convert a folder of ILSVRC validation XMLs into one split folder ``out_dir``.

    Image id = ``image_prefix + <filename> + extension``. Labels: the 0-based line of the image's
    first object's synset in ``synsets`` (a file whose lines start with a wnid, such as
    LOC_synset_mapping.txt), or in the sorted synsets found in the XMLs when none is given.
    Boxes are ``xmin ymin xmax ymax`` as written, clipped to the image when they overhang it by
    at most CLIP_TOLERANCE pixels (refused otherwise). Nothing is written unless all is valid.
    """
    if image_prefix.startswith(("/", "\\")) or ".." in image_prefix.replace("\\", "/").split("/"):
        raise WsolbenchError(f"image prefix '{image_prefix}' must be relative, without '..'")
    if "/" in extension or "\\" in extension:
        raise WsolbenchError(f"extension '{extension}' must not contain a folder separator")
    files = sorted(Path(annotations).glob("*.xml"))
    if not files:
        raise WsolbenchError("no .xml annotation files found", annotations)
    records = [_read_voc(path) for path in files]
    if synsets is not None:
        try:
            text = Path(synsets).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise MetadataError(f"cannot read the synsets file: {error}", synsets) from None
        lines = [line.split()[0] for line in text.splitlines() if line.strip()]
        order = {wnid: i for i, wnid in enumerate(lines)}
    else:
        order = {
            wnid: i for i, wnid in enumerate(sorted({o[0] for r in records for o in r["objects"]}))
        }
    image_ids, labels, sizes, boxes = [], [], [], []
    for path, record in zip(files, records):
        wnid = record["objects"][0][0]
        if wnid not in order:
            raise MetadataError(f"synset {wnid} is not in {synsets}", path)
        width, height = record["size"]
        if width < 1 or height < 1:
            raise MetadataError(f"image size {width}x{height} is not positive", path)
        box = np.array(
            [_clip_box(o[1], width, height, path, None) for o in record["objects"]], dtype=np.int64
        )
        image_ids.append(f"{image_prefix}{record['filename']}{extension}")
        labels.append(order[wnid])
        sizes.append((width, height))
        boxes.append(box)
    split = Split(image_ids, np.array(labels, np.int64), np.array(sizes, np.int64), boxes)
    write_split(split, out_dir)
    return split


def _read_voc(path: Path) -> dict:
    try:
        root = ElementTree.parse(path).getroot()
        filename = Path(root.findtext("filename", "").strip()).stem or path.stem
        size = (int(root.findtext("size/width")), int(root.findtext("size/height")))
        objects = []
        for obj in root.iter("object"):
            box = obj.find("bndbox")
            coords = [int(float(box.findtext(tag))) for tag in ("xmin", "ymin", "xmax", "ymax")]
            objects.append((obj.findtext("name").strip(), coords))
    except (ElementTree.ParseError, TypeError, ValueError, AttributeError) as error:
        raise MetadataError(f"malformed annotation ({error})", path) from None
    if not objects:
        raise MetadataError("annotation has no <object>", path)
    return {"filename": filename, "size": size, "objects": objects}


# ----------------------------------------------------------------------------- OpenImages


def convert_openimages(
    metadata_root: str | Path,
    out_dir: str | Path,
    image_root: str | Path | None = None,
    mask_root: str | Path | None = None,
) -> dict[str, Split]:
    """Validate wsolevaluation's OpenImages metadata (``metadata_root/{train,val,test}``, or one
    split folder) and copy it to ``out_dir`` (same layout). Files are checked when roots are given."""
    source = Path(metadata_root)
    names = [name for name in ("train", "val", "test") if (source / name).is_dir()]
    folders = {name: source / name for name in names} or {source.name: source}
    splits = {}
    for name, folder in folders.items():  # every split is checked before anything is written
        split = read_split(folder)
        if not len(split):
            raise MetadataError("the split has no images", folder / "image_ids.txt")
        if image_root is not None or mask_root is not None:
            validate_files(split, image_root, mask_root)
        splits[name] = split
    for name, split in splits.items():
        write_split(split, Path(out_dir) / name if names else Path(out_dir))
    return splits


# ----------------------------------------------------------------------------- masks
#
# Ground-truth masks for the peak protocol (Peak-IoU / Peak-T) and PxAP on ILSVRC and CUB. The
# masks go to ``mask_localization.txt`` beside the boxes (paths relative to a mask root).

# The LID release's masks whose width and height are the image's swapped (MsterDC/SPA2Net,
# utils/val_mask/README.md: ids ending 17615 and 18903).
LID_SWAPPED = ("ILSVRC2012_val_00017615", "ILSVRC2012_val_00018903")
# CUB's segmentations are soft (annotators' agreement, 0..255): a pixel is foreground above this
# value, the rule the peak protocol applies to LID masks (SPA2Net MaskEva: ``gt_mask > 128``).
CUB_MASK_THRESHOLD = 128


def convert_ilsvrc_lid(
    annotations: str | Path,
    mask_release: str | Path,
    out_dir: str | Path,
    synsets: str | Path | None = None,
    image_prefix: str = "val/",
    extension: str = ".JPEG",
    mask_list: str | Path | None = None,
) -> tuple[Split, list[str]]:
    """The ILSVRC validation images that have LID-challenge masks, as one split folder.

    ``mask_release`` is the LID release as SPA2Net reads it: ``val_mask.txt`` (one image name
    per line: the 23,151 images of SEM's val split; the masks of its 21,120-image test split
    are not public) and ``images/<image>.png``. ``mask_list`` replaces ``val_mask.txt``. Boxes
    and labels come from ``annotations/<image>.xml`` as in ``convert_ilsvrc``; mask paths are
    ``images/<image>.png``, relative to ``mask_release`` (the suite's ``dataset.mask_root``).
    Returns the split and the image names whose mask has the image's width and height swapped
    (kept as released: scoring resizes the map to the mask, as SPA2Net's evaluator must once
    its size list agrees with the masks); any other size mismatch is an error.
    """
    release = Path(mask_release)
    list_path = Path(mask_list) if mask_list is not None else release / "val_mask.txt"
    names = _lid_names(list_path)
    records = [
        _read_voc(_annotation(Path(annotations), name, list_path, line))
        for line, name in enumerate(names, start=1)
    ]
    order = _synset_order(synsets, records)
    image_ids, labels, sizes, boxes, masks = [], [], [], [], []
    for line, (name, record) in enumerate(zip(names, records), start=1):
        wnid = record["objects"][0][0]
        if wnid not in order:
            raise MetadataError(f"synset {wnid} of {name} is not in {synsets}", list_path, line)
        width, height = record["size"]
        box = np.array([o[1] for o in record["objects"]], dtype=np.int64)
        box[:, [0, 2]] = box[:, [0, 2]].clip(0, width - 1)
        box[:, [1, 3]] = box[:, [1, 3]].clip(0, height - 1)
        image_ids.append(f"{image_prefix}{name}{extension}")
        labels.append(order[wnid])
        sizes.append((width, height))
        boxes.append(box)
        masks.append(MaskRef([f"images/{name}.png"], None, (line,)))
    split = Split(
        image_ids,
        np.array(labels, np.int64),
        np.array(sizes, np.int64).reshape(-1, 2),
        boxes,
        masks,
        mask_file=list_path,
    )
    swapped = validate_files(split, None, release)
    write_split(split, out_dir)
    return split, [Path(image_ids[i]).stem for i in swapped]


def _lid_names(path: Path) -> list[str]:
    """Image names of a LID list file (SPA2Net keeps what precedes the first '.')."""
    if not path.is_file():
        raise MetadataError("missing LID mask list (val_mask.txt)", path)
    names = []
    for line, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        name = Path(text.strip()).name.split(".")[0]
        if not name:
            if text.strip():
                raise MetadataError(f"cannot read an image name in '{text.strip()}'", path, line)
            continue
        names.append(name)
    if not names:
        raise MetadataError("the LID mask list names no image", path)
    if len(set(names)) != len(names):
        seen: set[str] = set()
        for line, name in enumerate(names, start=1):
            if name in seen:
                raise MetadataError(f"duplicate image {name}", path, line)
            seen.add(name)
    return names


def _annotation(folder: Path, name: str, listed_in: Path, line: int) -> Path:
    path = folder / f"{name}.xml"
    if not path.is_file():
        raise MetadataError(f"no annotation {path} for {name}", listed_in, line)
    return path


def _synset_order(synsets: str | Path | None, records: list[dict]) -> dict[str, int]:
    if synsets is not None:
        lines = [
            line.split()[0]
            for line in Path(synsets).read_text(encoding="utf-8").splitlines()
            if line.strip()
        ]
        return {wnid: i for i, wnid in enumerate(lines)}
    return {wnid: i for i, wnid in enumerate(sorted({o[0] for r in records for o in r["objects"]}))}


def convert_cub_segmentations(
    metadata_root: str | Path,
    segmentations: str | Path,
    mask_out: str | Path,
    splits: tuple[str, ...] = ("val", "test"),
    threshold: int = CUB_MASK_THRESHOLD,
) -> dict[str, Split]:
    """Add CUB-200-2011's segmentation masks to converted CUB splits (``convert_cub``'s output).

    ``segmentations/<class>/<image>.png`` are soft masks (0..255). Each is binarized
    (foreground = value > ``threshold``, 255 / 0) into ``mask_out/<class>/<image>.png``, so the
    peak protocol (> 128) and PxAP (> 0) score the same ground truth, and listed in each split's
    ``mask_localization.txt`` (paths relative to ``mask_out``, the suite's
    ``dataset.mask_root``). ``train`` never gets masks.
    """
    import cv2  # only here: the converters above need no OpenCV

    from wsolbench.io import write_bytes

    segmentations, mask_out = Path(segmentations), Path(mask_out)
    if not segmentations.is_dir():
        raise WsolbenchError("CUB segmentations folder not found", segmentations)
    converted = {}
    for name in splits:
        if name == "train":
            raise WsolbenchError("masks must never reach the train split")
        split = read_split(Path(metadata_root) / name)
        ids_path = Path(metadata_root) / name / "image_ids.txt"
        refs = []
        for index, image_id in enumerate(split.image_ids):
            relative = Path(image_id).with_suffix(".png")
            source = segmentations / relative
            soft = cv2.imread(str(source), cv2.IMREAD_GRAYSCALE) if source.is_file() else None
            if soft is None:
                reason = "not found" if not source.is_file() else "unreadable"
                raise MetadataError(f"segmentation {source} {reason}", ids_path, index + 1)
            if split.sizes is not None:
                width, height = (int(v) for v in split.sizes[index])
                if soft.shape != (height, width):
                    raise MetadataError(
                        f"segmentation {source} is {soft.shape[1]}x{soft.shape[0]}, the image is "
                        f"{width}x{height}",
                        ids_path,
                        index + 1,
                    )
            binary = np.where(soft > threshold, 255, 0).astype(np.uint8)
            ok, encoded = cv2.imencode(".png", binary)
            if not ok:
                raise WsolbenchError(f"cannot encode the mask of {image_id}", ids_path, index + 1)
            write_bytes(mask_out / relative, encoded.tobytes())
            refs.append(MaskRef([relative.as_posix()]))
        split.masks = refs
        write_split(split, Path(metadata_root) / name)
        converted[name] = split
    return converted
