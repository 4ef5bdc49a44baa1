"""The report's overlays: GT-class maps of a few test images per model, plain and + each
post-processor, drawn over the images (CAM vs SCG).

Each run keeps its maps in ``overlays.npz`` (float16, no pickles); ``OverlayCollector`` gathers
every run's into the grid the report draws.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from wsolbench.errors import WsolbenchError
from wsolbench.io import write_npz


def overlay_indices(length: int, count: int) -> list[int]:
    """Evenly spread over the split (so several classes appear), fixed for a split."""
    count = min(count, length)
    return sorted({int(i) for i in np.linspace(0, length - 1, count).round()})


def write_overlay_maps(model, dataset, postprocessors, count: int, device, path: Path) -> None:
    """The GT-class maps of ``count`` test images of ``dataset`` under every post-processor."""
    from wsolbench.engine.infer import predict
    from wsolbench.scoring import original_sizes

    if count <= 0:
        return
    indices = overlay_indices(len(dataset), count)
    subset = torch.utils.data.Subset(dataset, indices)
    maps: dict[str, list[np.ndarray]] = {name: [] for name in postprocessors}
    for batch in predict(model, subset, batch_size=len(indices), device=device, ten_crop=False):
        sizes = original_sizes(batch)
        for name, pp in postprocessors.items():
            produced = pp(batch["cams_gt"], batch["taps"], sizes)
            maps[name].extend(m.cpu().numpy().astype(np.float16) for m in produced)
    arrays = {f"{name}_{i}": m for name, ms in maps.items() for i, m in enumerate(ms)}
    write_npz(path, {"indices": np.array(indices), **arrays})


def _overlay_map(array: np.ndarray) -> np.ndarray:
    if array.ndim != 2 or not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"an overlay map is {array.dtype} {array.shape}, not a 2-D float map")
    return array.astype(np.float32)


class OverlayCollector:
    """Gathers each run's overlay maps into the report's overlay grid."""

    def __init__(self, postprocessors, image_root: Path | None, split=None):
        self.postprocessors = list(postprocessors)
        self.image_root, self.split = image_root, split  # the test split
        self.rows: dict[str, list[np.ndarray]] = {}
        self.indices: list[int] | None = None

    def add(self, label: str, path: Path) -> None:
        if not path.is_file():
            return
        try:
            with np.load(path, allow_pickle=False) as data:
                indices = [int(i) for i in data["indices"].tolist()]
                rows = {}
                for name in self.postprocessors:
                    keys = sorted(
                        (k for k in data.files if k.startswith(f"{name}_")),
                        key=lambda k: int(k.rsplit("_", 1)[1]),
                    )
                    suffix = "" if name == "none" else f" + {name.upper()}"
                    rows[f"{label}{suffix}"] = [_overlay_map(data[k]) for k in keys]
        except Exception as error:  # zip, npy or key errors: all mean a corrupt cache file
            raise WsolbenchError(
                f"corrupt overlay cache ({type(error).__name__}: {str(error)[:80]}); "
                "delete it and the scores-*.json beside it to recompute both",
                path,
            ) from None
        self.indices = indices
        self.rows.update(rows)

    def build(self) -> dict[str, Any] | None:
        from wsolbench.data.datasets import load_image

        if not self.rows or self.indices is None:
            return None
        split = self.split
        if any(not 0 <= i < len(split) for i in self.indices):
            raise WsolbenchError(
                "overlay cache refers to images the test split does not have; "
                "delete the runs' overlays.npz and scores-*.json to recompute"
            )
        images, boxes = [], []
        for index in self.indices:
            image = load_image(
                self.image_root,
                split.image_ids[index],
                split.metadata_dir / "image_ids.txt",
                index + 1,
            )
            images.append(np.asarray(image))
            boxes.append(
                split.boxes[index] if split.boxes is not None else np.zeros((0, 4), np.int64)
            )
        return {"images": images, "rows": self.rows, "boxes": boxes}
