"""The wsolevaluation metadata format: read, validate and write one split folder.

A split is a folder of comma-separated text files (docs/protocols.md section 1): ``image_ids.txt``,
``class_labels.txt``, ``image_sizes.txt`` (empty for OpenImages), ``localization.txt`` (boxes,
5 fields, or instance masks, 3 fields) and wsolbench's optional ``mask_localization.txt`` (masks
in the OpenImages format beside boxes). Reading is plain string splitting plus integer parsing of
whole columns, so the 50,000-image ILSVRC test split loads in a fraction of a second; every
problem raises ``MetadataError`` naming the file and the 1-based line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from wsolbench.errors import MetadataError
from wsolbench.io import remove_stale, write_files
from wsolbench.names import check_relative_paths

IMAGE_IDS = "image_ids.txt"
CLASS_LABELS = "class_labels.txt"
IMAGE_SIZES = "image_sizes.txt"
LOCALIZATION = "localization.txt"
MASK_LOCALIZATION = "mask_localization.txt"


@dataclass
class MaskRef:
    """The instance masks of one image and its optional ignore mask (paths under a mask root)."""

    masks: list[str]
    ignore: str | None = None
    # 1-based lines of ``masks`` in their metadata file, for error messages only.
    lines: tuple[int, ...] = field(default=(), compare=False, repr=False)


@dataclass
class Split:
    """One split in memory; index ``i`` of every field describes the image ``image_ids[i]``."""

    image_ids: list[str]
    labels: np.ndarray  # int64 (N,)
    sizes: np.ndarray | None = None  # int64 (N, 2) as (width, height); None for OpenImages
    boxes: list[np.ndarray] | None = None  # int64 (k, 4) inclusive x0, y0, x1, y1 per image
    masks: list[MaskRef] | None = None
    metadata_dir: Path | None = None
    # The file the masks were read from (localization.txt or mask_localization.txt).
    mask_file: Path | None = field(default=None, compare=False, repr=False)

    def __len__(self) -> int:
        return len(self.image_ids)

    @property
    def num_classes(self) -> int:
        return int(self.labels.max()) + 1 if len(self.labels) else 0

    @property
    def num_boxes(self) -> int:
        return 0 if self.boxes is None else sum(len(b) for b in self.boxes)

    @property
    def num_masks(self) -> int:
        return 0 if self.masks is None else sum(len(m.masks) for m in self.masks)

    def subset(self, indices: Sequence[int] | np.ndarray) -> Split:
        """The images at ``indices`` (in that order), every field kept consistent."""
        idx = [int(i) for i in indices]
        return replace(
            self,
            image_ids=[self.image_ids[i] for i in idx],
            labels=self.labels[idx].copy(),
            sizes=None if self.sizes is None else self.sizes[idx].copy(),
            boxes=None if self.boxes is None else [self.boxes[i] for i in idx],
            masks=None if self.masks is None else [self.masks[i] for i in idx],
        )

    def line_of(self, index: int) -> int:
        """The 1-based line of image ``index`` in ``image_ids.txt``."""
        return index + 1


# ----------------------------------------------------------------------------- reading


SPLIT_ORDER = ("train", "val", "test")


def split_folders(root: str | Path) -> list[Path]:
    """The split folders ``root`` names: itself when it is one (it holds ``image_ids.txt``),
    else its subfolders that are (``metadata/CUB`` -> train, val, test), train / val / test
    first; an error with a hint when it is neither."""
    root = Path(root)
    if not root.is_dir():
        raise MetadataError("metadata folder not found", root)
    if (root / IMAGE_IDS).exists():
        return [root]
    found = sorted(
        (child for child in root.iterdir() if child.is_dir() and (child / IMAGE_IDS).exists()),
        key=lambda child: (
            SPLIT_ORDER.index(child.name) if child.name in SPLIT_ORDER else len(SPLIT_ORDER),
            child.name,
        ),
    )
    if not found:
        inside = " (here: its metadata/ folder)" if (root / "metadata").is_dir() else ""
        raise MetadataError(
            f"neither a split nor a folder of splits: no {IMAGE_IDS} here or in a subfolder; "
            "give a split folder (e.g. metadata/CUB/test) or the folder holding the splits "
            f"(e.g. metadata/CUB){inside}",
            root,
        )
    return found


def read_split(metadata_dir: str | Path, require_localization: bool | None = None) -> Split:
    """Read and validate one split folder.

    ``localization.txt`` is optional for a folder named ``train`` (labels only) and required
    elsewhere unless ``require_localization`` says otherwise.
    """
    root = Path(metadata_dir)
    if not root.is_dir():
        raise MetadataError("metadata folder not found", root)
    if require_localization is None:
        require_localization = root.name != "train"

    ids_path = root / IMAGE_IDS
    image_ids = _columns(ids_path, 1)[0]
    check_relative_paths(image_ids, ids_path, "image id")
    _check_unique(image_ids, ids_path)
    index = {image_id: i for i, image_id in enumerate(image_ids)}

    labels_path = root / CLASS_LABELS
    label_columns = _columns(labels_path, 2)
    labels = _per_image_ints(label_columns, index, labels_path, ids_path, "label")[:, 0]
    negative = np.flatnonzero(labels < 0)
    if len(negative):
        line = label_columns[0].index(image_ids[negative[0]]) + 1
        raise MetadataError(
            f"label {labels[negative[0]]} is negative (labels are 0..C-1)", labels_path, line
        )

    sizes = None
    sizes_path = root / IMAGE_SIZES
    size_columns = _columns(sizes_path, 3)
    if size_columns[0]:
        sizes = _per_image_ints(size_columns, index, sizes_path, ids_path, "size")
        bad = np.flatnonzero((sizes <= 0).any(axis=1))
        if len(bad):
            line = size_columns[0].index(image_ids[bad[0]]) + 1
            raise MetadataError("image width and height must be positive", sizes_path, line)

    boxes = masks = None
    mask_file = None
    loc_path = root / LOCALIZATION
    if loc_path.is_file() or require_localization:
        loc_columns = _columns(loc_path, None)
        if len(loc_columns) == 3:
            masks, mask_file = _parse_masks(loc_columns, index, loc_path, ids_path), loc_path
        else:
            boxes = _parse_boxes(loc_columns, index, loc_path, ids_path, sizes)
    extra_path = root / MASK_LOCALIZATION
    if extra_path.is_file():
        if masks is not None:
            raise MetadataError(f"masks are already given in {LOCALIZATION}", extra_path)
        masks, mask_file = (
            _parse_masks(_columns(extra_path, 3), index, extra_path, ids_path),
            extra_path,
        )

    return Split(image_ids, labels, sizes, boxes, masks, metadata_dir=root, mask_file=mask_file)


def _columns(path: Path, num_fields: int | None) -> list[list[str]]:
    """The comma-separated columns of a file; trailing blank lines are ignored, inner ones are
    errors. ``num_fields=None`` accepts 5 (boxes) or 3 (masks), taken from the first line.

    One ``split`` of the whole text (not one per line) keeps 80,000-line files fast.
    """
    if not path.is_file():
        exists = path.exists()  # a FIFO or device would block or never end: not read
        raise MetadataError("not a regular file" if exists else "missing metadata file", path)
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise MetadataError(f"cannot read: {error}", path) from None
    while lines and not lines[-1].strip():
        lines.pop()
    if num_fields is None:
        first = lines[0].count(",") + 1 if lines else 5
        num_fields = first if first in (3, 5) else 5
    commas = np.fromiter((line.count(",") for line in lines), dtype=np.int64, count=len(lines))
    bad = commas != num_fields - 1
    if not all(lines):  # an inner empty line is wrong even where one field is expected
        bad |= np.fromiter((not line for line in lines), dtype=bool, count=len(lines))
    bad = np.flatnonzero(bad)
    if len(bad):
        i = int(bad[0])
        what = "an empty line" if not lines[i].strip() else f"{commas[i] + 1} fields"
        raise MetadataError(
            f"expected {num_fields} comma-separated fields, found {what}", path, i + 1
        )
    if num_fields == 1:
        return [lines]
    if not lines:
        return [[] for _ in range(num_fields)]
    fields = ",".join(lines).split(",")
    return [fields[c::num_fields] for c in range(num_fields)]


def _check_unique(ids: list[str], path: Path) -> None:
    if len(set(ids)) == len(ids):
        return
    seen: set[str] = set()
    for i, image_id in enumerate(ids):
        if image_id in seen:
            raise MetadataError(f"duplicate image id '{image_id}'", path, i + 1)
        seen.add(image_id)


def _per_image_ints(columns, index, path, ids_path, what) -> np.ndarray:
    """Integer columns of a one-line-per-image file, reordered to the order of image_ids."""
    ids = columns[0]
    values = np.stack([_int_column(col, path, what) for col in columns[1:]], axis=1)
    if ids == list(index):  # the common case: same ids, same order
        return values
    _check_unique(ids, path)
    for i, image_id in enumerate(ids):
        if image_id not in index:
            raise MetadataError(f"image id '{image_id}' is not in {IMAGE_IDS}", path, i + 1)
    present = set(ids)
    for image_id, i in index.items():
        if image_id not in present:
            raise MetadataError(
                f"image id '{image_id}' has no {what} in {path.name}", ids_path, i + 1
            )
    out = np.empty_like(values)
    out[[index[i] for i in ids]] = values
    return out


def _int_column(values: list[str], path: Path, what: str) -> np.ndarray:
    """Parse a column of integers (line i + 1 holds values[i]); report the first bad one."""
    try:
        return np.array(values, dtype=np.int64).reshape(len(values))
    except (ValueError, OverflowError):
        for i, value in enumerate(values):
            try:
                int(value)
            except ValueError:
                raise MetadataError(f"{what} '{value}' is not an integer", path, i + 1) from None
        raise MetadataError(f"{what} out of range", path) from None


def _owners(ids, index, path, ids_path, what) -> np.ndarray:
    """Image index of each localization line; every image needs at least one line."""
    try:
        owners = np.fromiter((index[i] for i in ids), dtype=np.int64, count=len(ids))
    except KeyError:
        for line, image_id in enumerate(ids, start=1):
            if image_id not in index:
                raise MetadataError(
                    f"image id '{image_id}' is not in {IMAGE_IDS}", path, line
                ) from None
        raise
    counts = np.bincount(owners, minlength=len(index))
    missing = np.flatnonzero(counts == 0)
    if len(missing):
        i = int(missing[0])
        raise MetadataError(
            f"image id '{list(index)[i]}' has no {what} in {path.name}", ids_path, i + 1
        )
    return owners


def _parse_boxes(columns, index, path, ids_path, sizes) -> list[np.ndarray]:
    owners = _owners(columns[0], index, path, ids_path, "box")
    if not owners.size:
        return [np.zeros((0, 4), np.int64) for _ in index]
    coords = np.stack([_int_column(col, path, "coordinate") for col in columns[1:]], axis=1)
    x0, y0, x1, y1 = coords.T
    problems = [
        (x1 < x0, "box has x1 < x0"),
        (y1 < y0, "box has y1 < y0"),
        ((x0 < 0) | (y0 < 0), "box has a negative coordinate"),
    ]
    if sizes is not None:
        width, height = sizes[owners, 0], sizes[owners, 1]
        problems.append(((x1 >= width) | (y1 >= height), "box lies outside the image size"))
    for bad, message in problems:
        where = np.flatnonzero(bad)
        if len(where):
            i = int(where[0])
            detail = ""
            if sizes is not None:
                detail = f" (width {sizes[owners[i], 0]}, height {sizes[owners[i], 1]})"
            raise MetadataError(f"{message}: {','.join(map(str, coords[i]))}{detail}", path, i + 1)
    # Group lines by image, keeping file order within an image.
    if np.any(owners[1:] < owners[:-1]):
        order = np.argsort(owners, kind="stable")
        coords = coords[order]
    ends = np.cumsum(np.bincount(owners, minlength=len(index))).tolist()
    starts = [0] + ends[:-1]
    return [coords[a:b] for a, b in zip(starts, ends)]


def _parse_masks(columns, index, path, ids_path) -> list[MaskRef]:
    ids, mask_paths, ignores = columns
    _owners(ids, index, path, ids_path, "mask")
    check_relative_paths(mask_paths, path, "mask path")
    check_relative_paths([p or "x" for p in ignores], path, "ignore path")
    refs: dict[str, MaskRef] = {}
    for i, (image_id, mask, ignore) in enumerate(zip(ids, mask_paths, ignores)):
        line = i + 1
        ref = refs.get(image_id)
        if ref is None:
            refs[image_id] = MaskRef([mask], ignore or None, (line,))
            continue
        if ignore and ignore != ref.ignore:
            raise MetadataError(
                f"a second ignore mask for '{image_id}' (leave the field empty on later lines)",
                path,
                line,
            )
        ref.masks.append(mask)
        ref.lines = ref.lines + (line,)
    return [refs[image_id] for image_id in index]


def check_labels(
    split: Split,
    num_classes: int | None,
    require_every_class: bool = False,
    what: str = "num_classes",
) -> int:
    """The number of classes C, with every label in 0..C-1 (an error names the line of the
    first label out of range). Without ``num_classes``, C = 1 + the largest label, and with
    ``require_every_class`` every class must occur (a label of 10**12 is a typo, not 10**12
    classes); an empty split is an error."""
    labels_path = (split.metadata_dir or Path(".")) / CLASS_LABELS
    if not len(split):
        raise MetadataError(
            "the split has no images", (split.metadata_dir or Path(".")) / IMAGE_IDS
        )
    if num_classes is not None:
        bad = np.flatnonzero((split.labels < 0) | (split.labels >= num_classes))
        if len(bad):
            raise MetadataError(
                f"label {split.labels[bad[0]]} of '{split.image_ids[bad[0]]}' is outside "
                f"0..{num_classes - 1} ({what} = {num_classes})",
                labels_path,
            )
        return int(num_classes)
    counts = (
        np.bincount(split.labels, minlength=1)
        if split.labels.max() < 10 * len(split) + 1000
        else None
    )
    if require_every_class and (counts is None or (counts == 0).any()):
        missing = "most" if counts is None else f"class {int(np.flatnonzero(counts == 0)[0])}"
        raise MetadataError(
            f"labels run to {int(split.labels.max())} but {missing} of 0..{int(split.labels.max())} "
            f"has no image: give {what} if that is meant",
            labels_path,
        )
    return int(split.labels.max()) + 1


# ----------------------------------------------------------------------------- writing


def write_split(split: Split, metadata_dir: str | Path) -> Path:
    """Write ``split`` as a metadata folder; returns the folder. The files are staged and read
    back as a split first, so an invalid split never replaces a valid one (the writer's
    ``write_files``).

    Boxes go to ``localization.txt``; masks go there too when there are no boxes
    (OpenImages), otherwise to ``mask_localization.txt``.
    """
    root = Path(metadata_dir)
    ids = split.image_ids
    files = {
        IMAGE_IDS: _lines(ids),
        CLASS_LABELS: _lines(f"{i},{int(y)}" for i, y in zip(ids, split.labels)),
        IMAGE_SIZES: ""
        if split.sizes is None
        else _lines(f"{i},{w},{h}" for i, (w, h) in zip(ids, split.sizes)),
    }
    if split.boxes is not None:
        files[LOCALIZATION] = _lines(
            f"{i},{x0},{y0},{x1},{y1}" for i, b in zip(ids, split.boxes) for x0, y0, x1, y1 in b
        )
    if split.masks is not None:
        name = MASK_LOCALIZATION if split.boxes is not None else LOCALIZATION
        files[name] = _lines(
            f"{i},{m},{(ref.ignore or '') if k == 0 else ''}"
            for i, ref in zip(ids, split.masks)
            for k, m in enumerate(ref.masks)
        )

    def validate(staged: Path) -> None:
        try:
            read_split(staged, split.boxes is not None or split.masks is not None)
        except MetadataError as error:  # named as the folder it would have become
            where = root / Path(error.path).name if error.path else root
            raise MetadataError(f"not written: {error.message}", where, error.line) from None

    write_files(root, files, validate)
    stale = [root / name for name in (LOCALIZATION, MASK_LOCALIZATION) if name not in files]
    remove_stale([path for path in stale if path.is_file()])  # another split's, now wrong
    return root


def _lines(items) -> str:
    text = "\n".join(items)
    return text + "\n" if text else ""


# ----------------------------------------------------------------------------- files on disk


def validate_files(
    split: Split, image_root: str | Path | None, mask_root: str | Path | None = None
) -> list[int]:
    """Check that every image file (under ``image_root``) exists and that every mask file
    (under ``mask_root``) opens as an image of its image's size; a root that is None is not
    checked. Masks are read as wsolevaluation reads them: OpenCV grayscale, so an RGB mask
    counts by its luminance 0.299 R + 0.587 G + 0.114 B (docs/bad-input.md).

    Returns the indices of images whose masks have width and height swapped (the known LID
    release samples, kept as released: scoring resizes the map to the mask)."""
    ids_path = (split.metadata_dir or Path(".")) / IMAGE_IDS
    for i, image_id in enumerate(split.image_ids if image_root is not None else ()):
        if not (Path(image_root) / image_id).is_file():
            raise MetadataError(
                f"image not found: {image_root / image_id}", ids_path, split.line_of(i)
            )
    if mask_root is None or split.masks is None:
        return []
    swapped = set()
    mask_file = mask_metadata_file(split)
    for index in range(len(split)):
        expected = expected_mask_shape(split, index)
        for path, line, what in mask_files(split, index, mask_root):
            shape = _mask_shape(path, mask_file, line, what)
            expected = expected or shape
            if check_mask_shape(shape, expected, split, index, path, what, mask_file, line):
                swapped.add(index)
    return sorted(swapped)


def mask_metadata_file(split: Split) -> Path:
    """The file that lists the split's masks (errors about a mask name its line there)."""
    return split.mask_file or (split.metadata_dir or Path(".")) / LOCALIZATION


def mask_files(
    split: Split, index: int, mask_root: str | Path
) -> list[tuple[Path, int | None, str]]:
    """An image's mask files under ``mask_root`` with their line in ``mask_metadata_file`` and
    what they are: the instance masks ("mask"), then the ignore mask when there is one."""
    ref = split.masks[index]
    lines = ref.lines or (None,) * len(ref.masks)
    named = [(Path(mask_root) / mask, line, "mask") for mask, line in zip(ref.masks, lines)]
    if ref.ignore:
        named.append((Path(mask_root) / ref.ignore, lines[0], "ignore mask"))
    return named


def expected_mask_shape(split: Split, index: int) -> tuple[int, int] | None:
    """(height, width) an image's masks must have: its image's size (None without sizes)."""
    if split.sizes is None:
        return None
    return int(split.sizes[index][1]), int(split.sizes[index][0])


def check_mask_shape(
    shape,
    expected,
    split: Split,
    index: int,
    path: Path,
    what: str,
    mask_file: Path,
    line: int | None,
) -> bool:
    """The one rule for a mask's size: its image's (height, width), or that transposed (the
    known LID release samples, kept as released: scoring resizes to the mask); True when
    transposed. Anything else is a MetadataError naming the mask and its metadata line."""
    if expected is None or tuple(shape) == tuple(expected):
        return False
    if tuple(shape) == tuple(expected)[::-1] and split.sizes is not None:
        return True
    raise MetadataError(
        f"{what} {path} is {shape[1]}x{shape[0]}, but its image {split.image_ids[index]} is "
        f"{expected[1]}x{expected[0]}",
        mask_file,
        line,
    )


def _mask_shape(path: Path, mask_file: Path, line: int | None, what: str) -> tuple[int, int]:
    import cv2

    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)  # the error below says it
    if not path.is_file():
        raise MetadataError(f"{what} not found: {path}", mask_file, line)
    mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if mask is None:
        raise MetadataError(f"{what} {path} is not a readable image", mask_file, line)
    return mask.shape
