"""A synthetic WSOL benchmark written in the real metadata format (the default, no download).

Each object is a large textured body with a small class-discriminative part (a shape/colour
pair unique to the class) inside it. The body texture is only weakly tied to the class, and the
background is textured clutter with body-like blobs and, now and then, fake parts of other
classes. A classifier therefore wins by looking at the part, and its class map covers the part
rather than the whole object: the part-domination problem that WSOL methods attack. See
docs/synthetic.md for the design and its reasons.

Output (``out``): ``images/<split>/<class>/<id>.png`` (RGB), ``masks/<split>/<class>/<id>_m<k>.png``
(one 0/255 PNG per instance) and ``metadata/{train,val,test}/`` with exact inclusive boxes (the
tight box of each instance mask) in ``localization.txt`` and the masks in
``mask_localization.txt``. Every random draw comes from a generator seeded by (seed, split,
class, index), so the bytes depend on the seed only.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from wsolbench.data.metadata import MaskRef, Split, write_split
from wsolbench.errors import WsolbenchError
from wsolbench.io import claim_folder, is_ours, write_bytes, write_text

KIND = "synthetic-dataset"  # the writer's marker of a folder holding a benchmark made here
DESCRIPTION = "synthetic.json"

SPLITS = ("train", "val", "test")
PART_SHAPES = ("disk", "square", "diamond", "triangle", "ring", "cross", "x", "half-disk")
PART_COLOURS = {
    "red": (230, 30, 30),
    "green": (30, 200, 40),
    "blue": (40, 70, 240),
    "yellow": (245, 225, 30),
    "magenta": (225, 40, 220),
    "cyan": (30, 220, 230),
    "orange": (250, 130, 0),
    "white": (255, 255, 255),
}
TEXTURE_KINDS = ("stripes", "checker", "dots", "rings")
MAX_CLASSES = len(PART_SHAPES) * len(PART_COLOURS)


@dataclass(frozen=True)
class SynthConfig:
    seed: int = 0
    num_classes: int = 10
    image_size: int = 64  # nominal side; actual width/height vary in [7/8, 5/4] of it
    train_per_class: int = 80
    val_per_class: int = 5
    test_per_class: int = 20
    multi_instance_prob: float = 0.15  # images with 2-3 instances of the same class
    body_class_corr: float = 0.35  # chance that the body texture is one of the class's own two
    distractor_blobs: tuple[int, int] = (1, 3)  # body-like blobs in the background (min, max)
    fake_part_prob: float = 0.1  # chance of a fake part of another class in the background
    size_jitter: bool = True  # vary width/height so resizing back to the original size matters


def class_part(label: int) -> tuple[str, str]:
    """The (shape, colour) of a class's discriminative part; injective up to MAX_CLASSES."""
    shapes, colours = len(PART_SHAPES), len(PART_COLOURS)
    return PART_SHAPES[label % shapes], list(PART_COLOURS)[(label + label // shapes) % colours]


def generate(
    out_dir: str | Path,
    seed: int = 0,
    num_classes: int = 10,
    image_size: int = 64,
    train_per_class: int = 80,
    val_per_class: int = 5,
    test_per_class: int = 20,
    progress: Callable[[int, int], None] | None = None,
    **options,
) -> Path:
    """Write the benchmark under ``out_dir`` and return it. ``options``: other SynthConfig fields.

    ``progress(done, total)`` is called after each image.
    """
    config = SynthConfig(
        seed, num_classes, image_size, train_per_class, val_per_class, test_per_class, **options
    )
    if not 2 <= config.num_classes <= MAX_CLASSES:
        raise WsolbenchError(f"num_classes must be in 2..{MAX_CLASSES}, got {config.num_classes}")
    if config.image_size < 32:
        raise WsolbenchError(
            f"image_size must be at least 32 (the part must stay visible), got {image_size}"
        )
    out = Path(out_dir)
    # Only into a new or empty folder, or a synthetic benchmark made here: never over a dataset.
    claim_folder(out, "synthetic benchmark folder", KIND)
    pool = _texture_pool(config)
    counts = {
        "train": config.train_per_class,
        "val": config.val_per_class,
        "test": config.test_per_class,
    }
    total, done = config.num_classes * sum(counts.values()), 0
    for split_index, split in enumerate(SPLITS):
        ids, labels, sizes, boxes, masks = [], [], [], [], []
        for label in range(config.num_classes):
            for i in range(counts[split]):
                rng = np.random.default_rng([config.seed, split_index, label, i])
                image, instance_masks = _render(rng, label, config, pool)
                stem = f"{split}/c{label:03d}/{i:05d}"
                write_bytes(out / "images" / f"{stem}.png", _png(image))
                refs = []
                for k, mask in enumerate(instance_masks):
                    write_bytes(
                        out / "masks" / f"{stem}_m{k}.png", _png(mask.astype(np.uint8) * 255)
                    )
                    refs.append(f"{stem}_m{k}.png")
                ids.append(f"{stem}.png")
                labels.append(label)
                sizes.append((image.shape[1], image.shape[0]))
                boxes.append(np.array([tight_box(m) for m in instance_masks], dtype=np.int64))
                masks.append(MaskRef(refs))
                done += 1
                if progress is not None:
                    progress(done, total)
        split_data = Split(
            ids, np.array(labels, np.int64), np.array(sizes, np.int64).reshape(-1, 2), boxes, masks
        )
        write_split(split_data, out / "metadata" / split)
    description = asdict(config) | {
        "parts": {c: "-".join(class_part(c)[::-1]) for c in range(config.num_classes)}
    }
    write_text(out / DESCRIPTION, json.dumps(description, indent=2) + "\n")
    return out


def is_synthetic_dataset(root: str | Path) -> bool:
    """Whether ``root`` holds a synthetic benchmark that wsolbench made: its marker, or (made
    before markers) a ``synthetic.json`` that describes one. Only a marked one is ever
    regenerated (the writer's claim)."""
    if is_ours(root, KIND):
        return True
    try:
        description = json.loads((Path(root) / DESCRIPTION).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return False
    return isinstance(description, dict) and {"parts", "num_classes", "seed"} <= set(description)


def check_recorded(root: str | Path, options: dict) -> None:
    """``root``'s benchmark was generated with ``options`` (its ``synthetic.json`` says so)."""
    path = Path(root) / DESCRIPTION
    try:
        recorded = json.loads(path.read_text(encoding="utf-8"))
        assert isinstance(recorded, dict)
    except (OSError, UnicodeDecodeError, ValueError, AssertionError, RecursionError):
        raise WsolbenchError(
            "not a synthetic benchmark description: delete the folder to regenerate it", path
        ) from None
    differing = sorted(k for k, v in options.items() if recorded.get(k) != v)
    if differing:
        raise WsolbenchError(
            f"{root} holds a synthetic benchmark generated with other {', '.join(differing)} "
            "than the suite asks for: use another dataset.root or delete it",
            path,
        )


def tight_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """Inclusive (x0, y0, x1, y1) of the nonzero pixels of a 2-D mask."""
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", optimize=False, compress_level=6)
    return buffer.getvalue()


# ----------------------------------------------------------------------------- textures


def _texture_pool(config: SynthConfig) -> list[dict]:
    """Body textures shared by all classes; class c prefers entries c and c + num_classes."""
    rng = np.random.default_rng([config.seed, 99])
    scale = config.image_size / 64
    pool = []
    for k in range(2 * config.num_classes):
        pool.append(
            {
                "kind": TEXTURE_KINDS[k % len(TEXTURE_KINDS)],
                "period": float(rng.uniform(3.5, 7.5) * scale),
                "angle": float(rng.uniform(0, np.pi)),
                "colours": _muted_colours(rng, 2),
            }
        )
    return pool


def _muted_colours(rng: np.random.Generator, n: int) -> np.ndarray:
    """Greyish tinted colours, kept away from the saturated part palette."""
    grey = rng.uniform(50, 200, size=(n, 1))
    return np.clip(grey + rng.uniform(-30, 30, size=(n, 3)), 0, 255)


def _texture(texture: dict, rng: np.random.Generator, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """An (H, W, 3) float image of ``texture`` at a random phase."""
    period, angle = texture["period"], texture["angle"] + rng.uniform(-0.3, 0.3)
    u = x * np.cos(angle) + y * np.sin(angle) + rng.uniform(0, period)
    v = -x * np.sin(angle) + y * np.cos(angle) + rng.uniform(0, period)
    kind = texture["kind"]
    if kind == "stripes":
        t = (u % period) < period / 2
    elif kind == "checker":
        t = ((u // (period * 0.7)) + (v // (period * 0.7))) % 2 == 0
    elif kind == "dots":
        t = ((u % period) - period / 2) ** 2 + ((v % period) - period / 2) ** 2 < (
            period * 0.3
        ) ** 2
    else:  # rings around a random centre
        cx, cy = rng.uniform(x.min(), x.max()), rng.uniform(y.min(), y.max())
        t = (np.hypot(x - cx, y - cy) % period) < period / 2
    c0, c1 = texture["colours"]
    return np.where(t[..., None], c1, c0)


# ----------------------------------------------------------------------------- shapes


def _blob(x, y, cx, cy, a, b, angle, wobble, lobes, phase) -> np.ndarray:
    """A rotated ellipse with a wavy outline (so bodies are not perfect ellipses)."""
    u = (x - cx) * np.cos(angle) + (y - cy) * np.sin(angle)
    v = -(x - cx) * np.sin(angle) + (y - cy) * np.cos(angle)
    rho = np.hypot(u / a, v / b)
    theta = np.arctan2(v / b, u / a)
    return rho <= 1 + wobble * np.sin(lobes * theta + phase)


def _part_shape(shape: str, dx: np.ndarray, dy: np.ndarray, r: float) -> np.ndarray:
    ax, ay, d = np.abs(dx), np.abs(dy), np.hypot(dx, dy)
    if shape == "disk":
        return d <= r
    if shape == "square":
        return np.maximum(ax, ay) <= 0.8 * r
    if shape == "diamond":
        return ax + ay <= 1.1 * r
    if shape == "triangle":  # pointing up
        return (dy >= -r) & (dy <= 0.75 * r) & (ax <= 0.95 * r * (dy + r) / (1.75 * r))
    if shape == "ring":
        return (d <= r) & (d >= 0.5 * r)
    if shape == "cross":
        return ((ax <= 0.35 * r) & (ay <= r)) | ((ay <= 0.35 * r) & (ax <= r))
    if shape == "x":
        return (np.abs(ax - ay) <= 0.4 * r) & (np.maximum(ax, ay) <= 0.9 * r)
    return (d <= r) & (dy >= -0.15 * r)  # half-disk, flat side up


def _paint_part(canvas, x, y, label, cx, cy, r, clip=None) -> None:
    shape, colour = class_part(label)
    region = _part_shape(shape, x - cx, y - cy, r)
    if clip is not None:
        region &= clip
    canvas[region] = PART_COLOURS[colour]


# ----------------------------------------------------------------------------- one image


def _render(rng: np.random.Generator, label: int, config: SynthConfig, pool: list[dict]):
    """Render one image; returns (uint8 (H, W, 3), list of bool (H, W) instance masks)."""
    s = config.image_size
    if config.size_jitter:
        width, height = (
            int(v) for v in rng.integers(round(s * 7 / 8), round(s * 5 / 4) + 1, size=2)
        )
    else:
        width = height = s
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    canvas = _background(rng, x, y, width, height, pool)

    # Distractors behind the objects: body-like blobs and, rarely, a fake part of another class.
    low, high = config.distractor_blobs
    for _ in range(int(rng.integers(low, high + 1))):
        a = rng.uniform(0.08, 0.22) * min(width, height)
        blob = _blob(
            x,
            y,
            rng.uniform(0, width),
            rng.uniform(0, height),
            a,
            a * rng.uniform(0.5, 1),
            rng.uniform(0, np.pi),
            0.12,
            int(rng.integers(3, 6)),
            rng.uniform(0, 2 * np.pi),
        )
        canvas[blob] = _texture(pool[int(rng.integers(len(pool)))], rng, x, y)[blob]
    if rng.random() < config.fake_part_prob:
        other = (label + int(rng.integers(1, config.num_classes))) % config.num_classes
        r = s * rng.uniform(0.06, 0.08)
        _paint_part(canvas, x, y, other, rng.uniform(r, width - r), rng.uniform(r, height - r), r)

    count = int(rng.integers(2, 4)) if rng.random() < config.multi_instance_prob else 1
    placed: list[tuple[float, float, float, float]] = []
    masks = []
    for _ in range(count):
        instance = _place_object(rng, x, y, width, height, s, count, placed)
        if instance is None:
            break
        body, (cx, cy, a, b, angle, r) = instance
        texture = pool[_body_texture(rng, label, config)]
        canvas[body] = _texture(texture, rng, x, y)[body]
        # The part sits inside the body towards one end of the major axis.
        side = 1 if rng.random() < 0.5 else -1
        offset = side * (a - 1.6 * r) * rng.uniform(0.55, 1.0)
        _paint_part(
            canvas,
            x,
            y,
            label,
            cx + offset * np.cos(angle),
            cy + offset * np.sin(angle),
            r,
            clip=body,
        )
        masks.append(body)

    noise = rng.normal(0, 4, size=canvas.shape)
    image = np.clip(np.rint(canvas + noise), 0, 255).astype(np.uint8)
    return image, masks


def _background(rng, x, y, width, height, pool) -> np.ndarray:
    """Smooth colour field plus a faint texture (sometimes a body texture, to confuse)."""
    coarse = rng.uniform(40, 210, size=(4, 4, 3))
    gx = np.clip(x / max(width - 1, 1) * 3, 0, 3)
    gy = np.clip(y / max(height - 1, 1) * 3, 0, 3)
    x0, y0 = np.minimum(gx.astype(int), 2), np.minimum(gy.astype(int), 2)
    fx, fy = (gx - x0)[..., None], (gy - y0)[..., None]
    field = (
        coarse[y0, x0] * (1 - fx) * (1 - fy)
        + coarse[y0, x0 + 1] * fx * (1 - fy)
        + coarse[y0 + 1, x0] * (1 - fx) * fy
        + coarse[y0 + 1, x0 + 1] * fx * fy
    )
    texture = _texture(pool[int(rng.integers(len(pool)))], rng, x, y)
    weight = rng.uniform(0.15, 0.45)
    return field * (1 - weight) + texture * weight


def _body_texture(rng, label: int, config: SynthConfig) -> int:
    if rng.random() < config.body_class_corr:
        return label + config.num_classes * int(rng.integers(0, 2))
    return int(rng.integers(2 * config.num_classes))


def _place_object(rng, x, y, width, height, s, count, placed):
    """Draw a body that fits in the image and does not overlap earlier instances' boxes."""
    scale = 1.0 if count == 1 else 0.62
    r = max(3.5, s * rng.uniform(0.065, 0.085) * (1.0 if count == 1 else 0.85))
    for _ in range(30):
        a = rng.uniform(0.26, 0.44) * min(width, height) * scale
        b = max(a * rng.uniform(0.45, 0.85), 2.2 * r)
        a = max(a, b, 2.6 * r)
        angle = rng.uniform(0, np.pi)
        # Half extents of the rotated ellipse, plus the outline's wobble.
        ex = 1.12 * np.hypot(a * np.cos(angle), b * np.sin(angle))
        ey = 1.12 * np.hypot(a * np.sin(angle), b * np.cos(angle))
        if 2 * ex + 2 > width or 2 * ey + 2 > height:
            continue
        cx, cy = rng.uniform(ex, width - 1 - ex), rng.uniform(ey, height - 1 - ey)
        box = (cx - ex, cy - ey, cx + ex, cy + ey)
        if any(box[0] < p[2] and p[0] < box[2] and box[1] < p[3] and p[1] < box[3] for p in placed):
            continue
        body = _blob(
            x, y, cx, cy, a, b, angle, 0.1, int(rng.integers(3, 6)), rng.uniform(0, 2 * np.pi)
        )
        if body.sum() < 20:
            continue
        placed.append(box)
        return body, (cx, cy, a, b, angle, r)
    if placed:
        return None  # fewer instances than drawn
    # The first instance always exists: fall back to the smallest body, centred.
    a, b, cx, cy = 2.6 * r, 2.2 * r, (width - 1) / 2, (height - 1) / 2
    body = _blob(x, y, cx, cy, a, b, 0.0, 0.0, 3, 0.0)
    placed.append((cx - a, cy - b, cx + a, cy + b))
    return body, (cx, cy, a, b, 0.0, r)
