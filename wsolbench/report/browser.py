"""The failure browser of ``report.html``: every test image's outcome per method and
post-processor, with its picture, GT boxes, predicted box and map, in one self-contained section.

Pictures travel as two kinds of sprites (data URIs, no request): one JPEG of all test images
(each fit in a 64 px cell) and one JPEG per setting of its top-1 maps (32 px cells, jet colours).
Outcomes, classes and boxes are one JSON block; a short script (``templates/browser.js``)
filters, draws and flips between post-processors. Without a browser, every image still has a
static entry (thumbnail and id), so the page can be read and checked as plain HTML.

This module only gathers the data (``browser_view``); ``templates/browser.html.j2`` shows it.
"""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np

from wsolbench.evaluation.classic_loc import ERROR_TYPES, OUTCOMES
from wsolbench.evaluation.protocols import Spa
from wsolbench.report.outcomes import LABELS
from wsolbench.report.per_image import IMAGE_CELL, ImageSet, Record
from wsolbench.report.tables import (
    METHOD_ORDER,
    PLAIN,
    POSTPROCESSOR_ORDER,
    _rank,
    pp_label,
)

SPRITE_COLUMNS = 20
AXES = ("method", "explainer")  # selectable axes besides the post-processor (when present)


def _jpeg(picture: np.ndarray, quality: int = 85) -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(picture).save(buffer, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _sprite(cells: list[np.ndarray], cell: int) -> np.ndarray:
    rows = max(1, -(-len(cells) // SPRITE_COLUMNS))
    sheet = np.full((rows * cell, SPRITE_COLUMNS * cell, 3), 255, np.uint8)
    for n, picture in enumerate(cells):
        y, x = divmod(n, SPRITE_COLUMNS)
        sheet[y * cell : y * cell + picture.shape[0], x * cell : x * cell + picture.shape[1]] = (
            picture[..., :3]
        )
    return sheet


def _jet(maps: np.ndarray) -> np.ndarray:
    """uint8 maps (M, h, w) -> RGB with matplotlib's jet."""
    from matplotlib import colormaps

    return (colormaps["jet"](maps)[..., :3] * 255).astype(np.uint8)


def browser_data(records: list[Record], image_set: ImageSet) -> dict[str, Any] | None:
    """The JSON payload and sprites for one dataset (None without classic outcomes)."""
    records = [
        r
        for r in records
        if r.key.get("dataset") == image_set.dataset and Spa.outcomes(r.arrays, r.meta) is not None
    ]
    if not records or not image_set.pictures:
        return None
    shown = sorted(image_set.pictures)
    # One record per setting: the lowest seed (a browser of one trained model per setting).
    chosen: dict[tuple, Record] = {}
    for record in sorted(records, key=lambda r: int(r.key.get("seed", 0))):
        setting = tuple((k, str(v)) for k, v in record.key.items() if k != "seed")
        chosen.setdefault(setting, record)
    records = sorted(
        chosen.values(),
        key=lambda r: (
            tuple(
                _rank(str(r.key.get(a, "")), METHOD_ORDER)
                if a == "method"
                else str(r.key.get(a, ""))
                for a in AXES
            ),
            str(r.key.get("method", "")),
            _rank(str(r.key["postprocessor"]), POSTPROCESSOR_ORDER),
        ),
    )
    axes = [a for a in AXES if any(a in r.key for r in records)]
    images, positions = [], {}
    for n, index in enumerate(shown):
        picture = image_set.pictures[index]
        y, x = divmod(n, SPRITE_COLUMNS)
        positions[index] = n
        width, height = (int(v) for v in image_set.sizes[index]) if len(image_set.sizes) else (0, 0)
        images.append(
            {
                "id": image_set.image_ids[index],
                "label": str(image_set.labels[index]),
                "size": [width or picture.shape[1], height or picture.shape[0]],
                "boxes": np.asarray(image_set.boxes[index]).reshape(-1, 4).tolist(),
                "cell": [
                    x * IMAGE_CELL,
                    y * IMAGE_CELL,
                    int(picture.shape[1]),
                    int(picture.shape[0]),
                ],
            }
        )
    settings = []
    for record in records:
        outcomes = Spa.outcomes(record.arrays, record.meta)
        row_of = {int(i): n for n, i in enumerate(record.arrays["index"])}
        rows = [row_of.get(index) for index in shown]
        if any(r is None for r in rows):
            continue
        thumb_of = {int(i): n for n, i in enumerate(record.arrays.get("thumb_index", []))}
        thumbs = record.arrays.get("thumbs")
        maps = [
            thumbs[thumb_of[i]] if i in thumb_of else np.zeros((32, 32), np.uint8) for i in shown
        ]
        cell = maps[0].shape[0] if maps else 32
        settings.append(
            {
                "axes": {a: str(record.key.get(a, "")) for a in axes},
                "postprocessor": str(record.key["postprocessor"]),
                "label": pp_label(str(record.key["postprocessor"])),
                "types": [int(v) for v in outcomes["outcome"][rows]],
                "classes": [int(v) for v in outcomes["top1_class"][rows]],
                "boxes": outcomes["top1_box"][rows].astype(int).tolist(),
                "threshold": float(record.meta["box_threshold"]),
                "maps": _jpeg(_sprite(list(_jet(np.asarray(maps))), cell), 75) if maps else "",
                "mapCell": int(cell),
            }
        )
    if not settings:
        return None
    return {
        "dataset": image_set.dataset,
        "axes": axes,
        "types": list(OUTCOMES),
        "typeLabels": [LABELS[t] for t in OUTCOMES],
        "images": images,
        "settings": settings,
        "plain": list(PLAIN),
        "columns": SPRITE_COLUMNS,
        "cell": IMAGE_CELL,
        "sprite": _jpeg(_sprite([image_set.pictures[i] for i in shown], IMAGE_CELL), 88),
        "total": len(image_set.image_ids),
    }


def browser_view(records: list[Record], images: list[ImageSet]) -> dict[str, Any] | None:
    """What ``templates/browser.html.j2`` shows (None without per-image outcomes and pictures):
    the controls, one entry per image, the sprite and the script's JSON data."""
    data = next((d for d in (browser_data(records, s) for s in images) if d is not None), None)
    if data is None:
        return None
    sprite = data.pop("sprite")
    controls = [
        {
            "name": axis,
            "label": axis.capitalize(),
            "options": [(v, v) for v in dict.fromkeys(s["axes"][axis] for s in data["settings"])],
        }
        for axis in data["axes"]
    ]
    pps = list(dict.fromkeys(s["postprocessor"] for s in data["settings"]))
    controls.append(
        {
            "name": "postprocessor",
            "label": "Post-processor",
            "options": [(p, pp_label(p)) for p in pps],
        }
    )
    types = [("all", "all")] + list(zip(data["types"], data["typeLabels"]))
    controls.append({"name": "type", "label": "Error type", "options": types})
    controls.append({"name": "from", "label": "Plain type", "options": types})
    shown = (
        f"all {data['total']} test images"
        if data["total"] == len(data["images"])
        else f"{len(data['images'])} of {data['total']} test images, evenly spread"
    )
    return {
        "dataset": data["dataset"],
        "shown": shown,
        "error_labels": [LABELS[t] for t in ERROR_TYPES],
        "controls": controls,
        "images": [{"id": image["id"], "cell": image["cell"]} for image in data["images"]],
        "sprite": sprite,
        "data": data,
    }
