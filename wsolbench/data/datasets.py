"""PyTorch datasets over a metadata split (the wsolevaluation transforms).

``TrainDataset`` keeps only image ids and labels, so no box or mask can reach training code.
``EvalDataset`` yields everything localization needs, at the original image size.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision import transforms

from wsolbench.data.metadata import (
    IMAGE_IDS,
    Split,
    check_mask_shape,
    expected_mask_shape,
    mask_files,
    mask_metadata_file,
)
from wsolbench.errors import WsolbenchError
from wsolbench.evaluation.protocols import resize_nearest

cv2.utils.logging.setLogLevel(
    cv2.utils.logging.LOG_LEVEL_SILENT
)  # a bad file is one WsolbenchError, not a C++ log line

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_NORMALIZE = [transforms.ToTensor(), transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)]


def denormalize(image: torch.Tensor) -> torch.Tensor:
    """Undo the ImageNet normalization of a (3, H, W) or (N, 3, H, W) tensor, clamped to [0, 1]."""
    mean = torch.tensor(IMAGENET_MEAN, dtype=image.dtype, device=image.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=image.dtype, device=image.device).view(3, 1, 1)
    return (image * std + mean).clamp(0, 1)


def _ids_file(split: Split) -> Path:
    return (split.metadata_dir or Path(".")) / IMAGE_IDS


# EXIF's orientation tag; values 5 to 8 turn the picture by 90 degrees.
EXIF_ORIENTATION = 0x0112


def oriented_size(image: Image.Image) -> tuple[int, int]:
    """(W, H) of the image as OpenCV's ``cv2.imread`` gives it, EXIF orientation applied: the
    original size of the SPA code (``utils/localization.py:61-62``), where PIL's ``size`` is the
    stored one (the network input and wsolevaluation's ``image_sizes.txt``)."""
    width, height = image.size
    if image.getexif().get(EXIF_ORIENTATION, 1) in (5, 6, 7, 8):
        return height, width
    return width, height


def load_image(image_root: Path, image_id: str, ids_file: Path, line: int) -> Image.Image:
    """Open an RGB image, or fail naming the image and the metadata line that lists it.

    Every PIL failure counts: unreadable or truncated files, decompression bombs (PIL's
    pixel limit), and the odd decoder error of a malformed file (struct.error, SyntaxError...).
    """
    path = Path(image_root) / image_id
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except FileNotFoundError:
        raise WsolbenchError(f"image {path} not found", ids_file, line) from None
    except Image.DecompressionBombError as error:
        raise WsolbenchError(f"image {path} refused: {error}", ids_file, line) from None
    except Exception as error:  # UnidentifiedImageError, truncated files, decoder errors
        if isinstance(error, WsolbenchError):
            raise
        detail = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise WsolbenchError(f"image {path} unreadable ({detail})", ids_file, line) from None


def image_size(image_root: Path, image_id: str, ids_file: Path, line: int) -> tuple[int, int]:
    """An image's (width, height) from its header (the pixels are not decoded), or an error
    naming the image and the metadata line that lists it: the size rule every check uses."""
    path = Path(image_root) / image_id
    try:
        with Image.open(path) as image:
            return image.size
    except FileNotFoundError:
        raise WsolbenchError(f"image {path} not found", ids_file, line) from None
    except Image.DecompressionBombError as error:
        raise WsolbenchError(f"image {path} refused: {error}", ids_file, line) from None
    except Exception as error:  # UnidentifiedImageError, a folder, decoder errors
        detail = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise WsolbenchError(f"image {path} unreadable ({detail})", ids_file, line) from None


def check_images(split: Split, image_root: str | Path, threads: int = 8) -> None:
    """Before any work: every image of ``split`` opens (header only) and has the size that
    ``image_sizes.txt`` gives it; the first problem in metadata order is the error."""
    from concurrent.futures import ThreadPoolExecutor

    ids_file = _ids_file(split)

    def check(index: int) -> None:
        size = image_size(Path(image_root), split.image_ids[index], ids_file, index + 1)
        if split.sizes is not None and tuple(int(v) for v in split.sizes[index]) != size:
            width, height = (int(v) for v in split.sizes[index])
            raise WsolbenchError(
                f"image {Path(image_root) / split.image_ids[index]} is {size[0]}x{size[1]}, "
                f"image_sizes.txt says {width}x{height}",
                ids_file,
                index + 1,
            )

    chunk = 4096
    with ThreadPoolExecutor(threads) as pool:
        for start in range(0, len(split), chunk):
            list(pool.map(check, range(start, min(start + chunk, len(split)))))


class TrainDataset(Dataset):
    """``(image, label)`` with Resize((resize, resize)), RandomCrop, horizontal flip, normalization."""

    def __init__(
        self, split: Split, image_root: str | Path, image_size: int = 224, resize_size: int = 256
    ):
        # Copy only what training may see; the split (with its boxes) is not kept.
        self.image_ids = list(split.image_ids)
        self.labels = np.asarray(split.labels, dtype=np.int64).copy()
        self.image_root = Path(image_root)
        self.ids_file = _ids_file(split)
        self.transform = transforms.Compose(
            [
                transforms.Resize((resize_size, resize_size)),
                transforms.RandomCrop(image_size),
                transforms.RandomHorizontalFlip(),
                *_NORMALIZE,
            ]
        )

    def __len__(self) -> int:
        return len(self.image_ids)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = load_image(self.image_root, self.image_ids[index], self.ids_file, index + 1)
        return self.transform(image), int(self.labels[index])


class EvalDataset(Dataset):
    """A dict per image: the resized ``image`` for localization and the original-size ground truth.

    Keys: ``image`` (3, S, S), ``label``, ``index``, ``image_id``, ``size`` (W, H) of the original
    as stored (PIL's, ``image_sizes.txt``'s), ``oriented_size`` (W, H) with its EXIF
    orientation applied (``oriented_size``: the size maps are scored at, as the SPA code reads it),
    ``boxes`` (k, 4) int64 in original pixels (empty without boxes), ``crops`` (10, 3, S, S) when
    ``ten_crop`` (TenCrop of Resize((resize, resize)), for classification), and with ``mask_root``
    ``mask`` / ``ignore`` (H, W) uint8 at the mask PNG's size (the original size): ``read_masks``,
    the masks as they are, which each protocol thresholds by its own rule.
    """

    def __init__(
        self,
        split: Split,
        image_root: str | Path,
        image_size: int = 224,
        mask_root: str | Path | None = None,
        ten_crop: bool = False,
        resize_size: int = 256,
    ):
        if mask_root is not None and split.masks is None:
            raise WsolbenchError(
                "a mask root was given but the split has no masks", split.metadata_dir
            )
        self.split = split
        self.image_root = Path(image_root)
        self.mask_root = None if mask_root is None else Path(mask_root)
        self.ids_file = _ids_file(split)
        self.transform = transforms.Compose(
            [transforms.Resize((image_size, image_size)), *_NORMALIZE]
        )
        self.crop_transform = None
        if ten_crop:
            self.crop_transform = transforms.Compose(
                [
                    transforms.Resize((resize_size, resize_size)),
                    transforms.TenCrop(image_size),
                    _StackNormalized(),
                ]
            )

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, index: int) -> dict[str, Any]:
        split = self.split
        image_id = split.image_ids[index]
        image = load_image(self.image_root, image_id, self.ids_file, index + 1)
        if split.sizes is not None and tuple(split.sizes[index]) != image.size:
            width, height = (int(v) for v in split.sizes[index])
            raise WsolbenchError(
                f"image {self.image_root / image_id} is {image.size[0]}x{image.size[1]}, "
                f"image_sizes.txt says {width}x{height}",
                self.ids_file,
                index + 1,
            )
        boxes = split.boxes[index] if split.boxes is not None else np.zeros((0, 4), np.int64)
        item: dict[str, Any] = {
            "image": self.transform(image),
            "label": int(split.labels[index]),
            "index": index,
            "image_id": image_id,
            "size": image.size,
            "oriented_size": oriented_size(image),
            "boxes": torch.from_numpy(np.asarray(boxes, dtype=np.int64).copy()),
        }
        if self.crop_transform is not None:
            item["crops"] = self.crop_transform(image)
        if self.mask_root is not None:
            mask, ignore = read_masks(self.split, index, self.mask_root)
            item["mask"], item["ignore"] = torch.from_numpy(mask), torch.from_numpy(ignore)
        return item


class _StackNormalized:
    """TenCrop's tuple of PIL crops -> one normalized (10, 3, S, S) tensor (picklable for workers)."""

    def __init__(self):
        self.to_tensor = transforms.Compose(_NORMALIZE)

    def __call__(self, crops) -> torch.Tensor:
        return torch.stack([self.to_tensor(crop) for crop in crops])


def _read_gray(path: Path, mask_file: Path, line: int | None) -> np.ndarray:
    """A mask PNG as grayscale, as wsolevaluation reads it (cv2, alpha ignored)."""
    mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE) if path.is_file() else None
    if mask is None:
        reason = "not found" if not path.is_file() else "unreadable"
        raise WsolbenchError(f"mask {path} {reason}", mask_file, line)
    return mask


def read_masks(split: Split, index: int, mask_root: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """An image's masks as they are, for every protocol to threshold by its own rule (docs/
    protocols.md sec. 3, 6): ``mask``, the pixel-wise maximum of its instance PNGs read as
    grayscale (any instance > t is the maximum > t), and ``ignore``, its ignore PNG (zeros
    without one), both uint8 at the first instance's size (others are resized to it by nearest
    neighbour). Each mask must have its image's size or that transposed (``check_mask_shape``,
    the rule `data validate` applies); errors name the mask and its metadata line."""
    mask_file = mask_metadata_file(split)
    expected = expected_mask_shape(split, index)
    mask = ignore = None
    for path, line, what in mask_files(split, index, mask_root):
        gray = _read_gray(path, mask_file, line)
        expected = expected or gray.shape
        check_mask_shape(gray.shape, expected, split, index, path, what, mask_file, line)
        if mask is not None:
            gray = resize_nearest(gray, mask.shape)
        if what == "ignore mask":
            ignore = gray
        else:
            mask = gray if mask is None else np.maximum(mask, gray)
    return mask, ignore if ignore is not None else np.zeros_like(mask)


_STACKED = ("image", "crops", "label", "index")


def collate_eval(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack fixed-size fields; keep variable-size ones (ids, sizes, boxes, masks) as lists."""
    batch: dict[str, Any] = {}
    for key in items[0]:
        values = [item[key] for item in items]
        if key in ("label", "index"):
            batch[key] = torch.tensor(values, dtype=torch.int64)
        elif key in _STACKED:
            batch[key] = torch.stack(values)
        else:
            batch[key] = values
    return batch
