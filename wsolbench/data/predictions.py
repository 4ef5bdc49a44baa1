"""Predictions files: each image's top-5 classes, ``image_id,top1,top2,top3,top4,top5`` per
line, no header, class indices as in the split's ``class_labels.txt`` (what ``wsolbench
evaluate --predictions`` reads to give Top-1 / Top-5 Loc from GT-class maps)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from wsolbench.errors import MetadataError

TOP_K = 5


def read_predictions(path: str | Path, image_ids: list[str]) -> np.ndarray:
    """(N, 5) int64 predicted classes, best first, in the split's order (-1 past the classes a
    line gives: a model of fewer than five classes has fewer); every image of the split must
    have exactly one line, and every line an image of the split."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise MetadataError("predictions file not found", path) from None
    except (OSError, UnicodeDecodeError) as error:
        raise MetadataError(f"cannot read predictions: {error}", path) from None
    index = {image_id: i for i, image_id in enumerate(image_ids)}
    out = np.full((len(image_ids), TOP_K), -1, np.int64)
    seen = np.zeros(len(image_ids), bool)
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split(",")
        if not 2 <= len(fields) <= TOP_K + 1:  # fewer classes: a model with fewer than five
            raise MetadataError(
                f"expected image_id and 1 to {TOP_K} classes, got {len(fields)} fields",
                path,
                number,
            )
        image_id = fields[0]
        if image_id not in index:
            raise MetadataError(f"image {image_id!r} is not in the split", path, number)
        if seen[index[image_id]]:
            raise MetadataError(f"image {image_id!r} has a second line", path, number)
        try:
            classes = [int(v) for v in fields[1:]]
        except ValueError:
            raise MetadataError("classes must be integers", path, number) from None
        if min(classes) < 0:
            raise MetadataError("classes must be non-negative", path, number)
        out[index[image_id], : len(classes)] = classes  # absent ranks stay -1 (no class)
        seen[index[image_id]] = True
    if not seen.all():
        missing = image_ids[int(np.flatnonzero(~seen)[0])]
        raise MetadataError(
            f"{int((~seen).sum())} image(s) of the split have no line, e.g. {missing!r}", path
        )
    return out


def is_predictions_file(path: Path) -> bool:
    """Whether ``path`` holds predictions in this format (an `infer --predictions` output it
    may replace): every non-empty line an image id and five integers."""
    try:
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError):
        return False
    for line in lines:
        fields = line.split(",")
        if not 2 <= len(fields) <= TOP_K + 1 or not all(v.strip().isdigit() for v in fields[1:]):
            return False
    return True
