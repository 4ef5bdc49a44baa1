"""Per-image statistics stored with the results (``per_image.npz`` beside ``results.csv``).

One ``Record`` per scored setting (dataset, split, backbone, method, post-processor, seed and
any further axis such as an explainer): the evaluator's own per-image outcomes (see the
accumulators' ``keep_per_image``), from which the bootstrap intervals and the failure browser
are computed, plus one ``ImageSet`` per dataset (ids, labels, GT boxes, small pictures) for the
browser. What is kept per image and setting:

- wsolevaluation boxes: correct / incorrect at every CAM threshold and IoU threshold, V1 and V2,
  as packed bits (``2 x len(deltas) x ceil(T / 8)`` bytes: 104 at interval 0.01, 1000 at 0.001);
- spa protocol: the outcome (correct or error type), Top-5 / GT-known hits and the top-1 box at
  every box threshold (about 20 bytes per threshold), Top-1 / Top-5 classification;
- masks only: the PxAP and Peak-IoU pixel histograms (2 x (bins + 257) counts, uint16 up to
  256 x 256 maps: 1.6 KB at interval 0.01, 5 KB at 0.001);
- for at most ``BROWSER_IMAGES`` images: a 32 x 32 picture of the top-1 map.

Pictures (test images, map thumbnails) are for display only and are stored as JPEG; every
statistic is stored exactly.

ILSVRC's 50,000 test images thus take about 50 MB per setting in memory at interval 0.001 (boxes
only; 6 MB compressed in the file, benchmarks/bench_bootstrap.py); the synthetic default's 16
settings of 200 images about 3 MB with pictures.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from wsolbench.errors import WsolbenchError
from wsolbench.io import atomic_path

FILE_NAME = "per_image.npz"
FORMAT = 2
BROWSER_IMAGES = 600  # at most this many test images get pictures in the failure browser
IMAGE_CELL = 64  # image pictures fit in IMAGE_CELL x IMAGE_CELL (aspect kept)
PROVENANCE = ("config_hash", "checkpoint_hash", "versions")


@dataclass
class Record:
    key: dict[str, Any]  # dataset, split, backbone, method, postprocessor, seed (+ extra axes)
    arrays: dict[str, np.ndarray]  # Scorer.per_image_arrays()
    meta: dict[str, Any]  # thresholds behind the arrays and the chosen box threshold

    @property
    def count(self) -> int:
        return len(self.arrays["index"])


@dataclass
class ImageSet:
    dataset: str
    image_ids: list[str]
    labels: np.ndarray  # (N,)
    boxes: list[np.ndarray]  # N arrays (k, 4), original pixels
    sizes: np.ndarray  # (N, 2) (width, height)
    pictures: dict[int, np.ndarray] = field(default_factory=dict)  # index -> (h, w, 3) uint8


def browser_indices(count: int, limit: int = BROWSER_IMAGES) -> set[int]:
    """The test images the browser shows: all of a small split, else evenly spread ones."""
    if count <= limit:
        return set(range(count))
    return {int(i) for i in np.linspace(0, count - 1, limit).round()}


def record_from_scorer(scorer, key: dict[str, Any], choices: dict[str, dict]) -> Record:
    """The per-image record of one scored setting at the settings chosen on val (``choices``,
    protocol -> choice); each protocol adds what its records need (``Protocol.record_meta``);
    provenance fields of ``key`` are dropped."""
    evaluator = scorer.evaluator
    meta: dict[str, Any] = {}
    for name, protocol in evaluator.protocols.items():
        meta.update(protocol.record_meta(evaluator.of(name), choices.get(name)))
    clean = {k: (int(v) if k == "seed" else str(v)) for k, v in key.items() if k not in PROVENANCE}
    return Record(clean, scorer.per_image_arrays(), meta)


def image_picture(image: np.ndarray, cell: int = IMAGE_CELL) -> np.ndarray:
    """An RGB image scaled to fit ``cell`` x ``cell`` (never enlarged)."""
    import cv2

    height, width = image.shape[:2]
    scale = min(1.0, cell / max(height, width))
    if scale < 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(image[..., :3], dtype=np.uint8)


def _jpeg(picture: np.ndarray, quality: int = 90) -> np.ndarray:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(picture)).save(buffer, format="JPEG", quality=quality)
    return np.frombuffer(buffer.getvalue(), np.uint8)


def _unjpeg(data: np.ndarray) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(data.tobytes())) as image:
        return np.asarray(image)


def as_loaded(records: list[Record]) -> list[Record]:
    """The records as ``load`` returns them after ``save``, without writing and reading the
    file: thumbnails through the JPEG round trip, listed last (so a run's records in memory
    equal its cached ones, and so do the reports made from them)."""
    loaded = []
    for record in records:
        arrays = {name: value for name, value in record.arrays.items() if name != "thumbs"}
        thumbs = record.arrays.get("thumbs")
        if thumbs is not None and len(thumbs):
            stacked = _unjpeg(_jpeg(thumbs.reshape(-1, thumbs.shape[-1])))
            arrays["thumbs"] = stacked.reshape(-1, stacked.shape[1], stacked.shape[1])
        loaded.append(
            Record(json.loads(json.dumps(record.key)), arrays, json.loads(json.dumps(record.meta)))
        )
    return loaded


def save(path: str | Path, records: list[Record], images: list[ImageSet]) -> Path:
    """Write records and image sets into one compressed ``.npz`` (no pickles), atomically."""
    arrays: dict[str, np.ndarray] = {}
    header: dict[str, Any] = {"format": FORMAT, "records": [], "images": []}
    for number, record in enumerate(records):
        header["records"].append({"key": record.key, "meta": record.meta})
        arrays.update(
            {
                f"r{number}/{name}": value
                for name, value in record.arrays.items()
                if name != "thumbs"
            }
        )
        thumbs = record.arrays.get("thumbs")
        if thumbs is not None and len(thumbs):
            arrays[f"r{number}/thumbs.jpeg"] = _jpeg(thumbs.reshape(-1, thumbs.shape[-1]))
    for number, image_set in enumerate(images):
        indices = sorted(image_set.pictures)
        encoded = [_jpeg(image_set.pictures[i]) for i in indices]
        header["images"].append(
            {
                "dataset": image_set.dataset,
                "image_ids": image_set.image_ids,
                "boxes": [b.reshape(-1, 4).tolist() for b in image_set.boxes],
                "picture_index": indices,
                "picture_bytes": [len(e) for e in encoded],
            }
        )
        arrays[f"i{number}/labels"] = np.asarray(image_set.labels, np.int64)
        arrays[f"i{number}/sizes"] = np.asarray(image_set.sizes, np.int64).reshape(-1, 2)
        arrays[f"i{number}/pictures"] = (
            np.concatenate(encoded) if encoded else np.zeros(0, np.uint8)
        )
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(handle, **arrays)
    return path


def load(path: str | Path) -> tuple[list[Record], list[ImageSet]]:
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            header = json.loads(bytes(data["header"]).decode())
            if header.get("format") != FORMAT:
                raise WsolbenchError(
                    f"per-image file of format {header.get('format')}, expected "
                    f"{FORMAT}: re-run the bench",
                    path=path,
                )
            records = []
            for number, entry in enumerate(header["records"]):
                prefix = f"r{number}/"
                arrays = {
                    name[len(prefix) :]: data[name]
                    for name in data.files
                    if name.startswith(prefix)
                }
                if "thumbs.jpeg" in arrays:
                    stacked = _unjpeg(arrays.pop("thumbs.jpeg"))
                    arrays["thumbs"] = stacked.reshape(-1, stacked.shape[1], stacked.shape[1])
                records.append(Record(entry["key"], arrays, entry["meta"]))
            images = []
            for number, entry in enumerate(header["images"]):
                flat, pictures, offset = data[f"i{number}/pictures"], {}, 0
                for index, size in zip(entry["picture_index"], entry["picture_bytes"]):
                    pictures[int(index)] = _unjpeg(flat[offset : offset + size])
                    offset += size
                images.append(
                    ImageSet(
                        entry["dataset"],
                        entry["image_ids"],
                        data[f"i{number}/labels"],
                        [np.asarray(b, np.int64).reshape(-1, 4) for b in entry["boxes"]],
                        data[f"i{number}/sizes"],
                        pictures,
                    )
                )
    except WsolbenchError:
        raise
    except (
        OSError,
        ValueError,
        KeyError,
        TypeError,
        IndexError,
        AttributeError,
        RecursionError,
        zipfile.BadZipFile,
    ) as error:
        raise WsolbenchError(f"cannot read per-image statistics: {error}", path=path) from None
    return records, images
