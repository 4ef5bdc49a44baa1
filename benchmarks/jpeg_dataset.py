"""A small dataset of real-size JPEGs in wsolevaluation's layout, for the loop benchmarks.

``make_dataset(root, train=M, test=N)`` writes ``root/data/CUB/<id>.jpg`` (sizes drawn like
CUB's and ILSVRC's photos, 300 to 500 pixels a side, JPEG quality 90: smooth colour fields,
an object-like blob and sensor-like noise, so that decoding costs what a photo costs) and
``root/metadata/CUB/{train,val,test}/`` (image_ids, class_labels, image_sizes, localization:
one box around the blob), 200 classes as CUB. wsolevaluation's loaders and wsolbench's read the
same files. Deterministic (seeded).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

CLASSES = 200


def _photo(rng: np.random.Generator) -> tuple[np.ndarray, list[int]]:
    width, height = (int(v) for v in rng.integers(300, 501, 2))
    cells = rng.uniform(0, 255, (6, 8, 3)).astype(np.float32)
    image = cv2.resize(cells, (width, height), interpolation=cv2.INTER_CUBIC)
    x0, y0 = int(rng.integers(0, width // 2)), int(rng.integers(0, height // 2))
    x1 = int(rng.integers(x0 + width // 8, width))
    y1 = int(rng.integers(y0 + height // 8, height))
    cv2.ellipse(
        image,
        ((x0 + x1) // 2, (y0 + y1) // 2),
        ((x1 - x0) // 2, (y1 - y0) // 2),
        0,
        0,
        360,
        rng.uniform(0, 255, 3).tolist(),
        -1,
    )
    image += rng.normal(0, 12, image.shape).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8), [x0, y0, x1, y1]


def make_dataset(root: Path, train: int, test: int, seed: int = 0) -> tuple[Path, Path]:
    """Write the dataset (skipped if already there); returns (image root, metadata root)."""
    root = Path(root)
    images, metadata = root / "data" / "CUB", root / "metadata" / "CUB"
    done = root / ".complete"
    if done.exists() and done.read_text() == f"{train},{test},{seed}":
        return images, metadata
    rng = np.random.default_rng(seed)
    images.mkdir(parents=True, exist_ok=True)
    splits = {"train": train, "val": min(test, 8), "test": test}
    for split, count in splits.items():
        lines = {"image_ids": [], "class_labels": [], "image_sizes": [], "localization": []}
        for i in range(count):
            image_id = f"{split}_{i:05d}.jpg"
            photo, box = _photo(rng)
            cv2.imwrite(str(images / image_id), photo, [cv2.IMWRITE_JPEG_QUALITY, 90])
            label = int(rng.integers(0, CLASSES)) if split != "train" else i % CLASSES
            lines["image_ids"].append(image_id)
            lines["class_labels"].append(f"{image_id},{label}")
            lines["image_sizes"].append(f"{image_id},{photo.shape[1]},{photo.shape[0]}")
            lines["localization"].append(f"{image_id},{','.join(map(str, box))}")
        folder = metadata / split
        folder.mkdir(parents=True, exist_ok=True)
        for name, rows in lines.items():
            (folder / f"{name}.txt").write_text("\n".join(rows) + "\n")
    done.write_text(f"{train},{test},{seed}")
    return images, metadata
