"""Score maps on disk, batch by batch, read ahead of scoring (`wsolbench evaluate`).

A pool of threads reads the maps (and masks) of the next ``prefetch`` batches while the current
batch is scored: file reads, numpy's checks, torch's quantization and the box kernel all release
the GIL, so reading overlaps scoring on every core. Items are read in any order and batched in
the split's order, so the results do not depend on the number of threads. Maps of one size are
read straight into one (N, H, W) array per batch, from a ring of ``prefetch + 1`` arrays reused
for the whole split: fresh memory costs a page fault per 4 KiB, about as much as reading the map.
A batch's maps are therefore valid until the next batch is asked for (the evaluator keeps counts,
not maps). Maps laid out as the first one (same .npy header: float64, C order, one shape) are read
with one ``readinto`` each and checked in one pass (``read_scoremap_into``); any other file
goes through ``load_scoremap``, which names what is wrong with it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from wsolbench.engine.workers import loader_workers
from wsolbench.errors import ScoreMapError, WsolbenchError
from wsolbench.evaluation import GroundTruth, MapBatch

BATCH = 256
CHUNK = 16  # maps per reading task


class ScoreMapLoader:
    """Iterate ``MapBatch``es of a split's maps ``root/<image_id>.npy``: prepared by
    ``normalize`` ('none' or 'minmax' to ``map_size``), with the split's boxes and sizes, and
    masks read from ``mask_root`` when given. ``workers`` threads read ahead."""

    def __init__(
        self,
        split,
        root: Path,
        *,
        normalize: str = "none",
        map_size: int = 224,
        mask_root: Path | None = None,
        device: torch.device | str = "cpu",
        workers: int = 4,
        batch_size: int = BATCH,
        prefetch: int = 2,
    ):
        self.split, self.root = split, Path(root)
        self.normalize, self.map_size = normalize, int(map_size)
        self.mask_root, self.device = mask_root, torch.device(device)
        self.workers, self.batch_size, self.prefetch = workers, batch_size, max(1, prefetch)

    def __len__(self) -> int:
        return -(-len(self.split) // self.batch_size)

    def __iter__(self) -> Iterator[MapBatch]:
        starts = list(range(0, len(self.split), self.batch_size))
        self._free: list[np.ndarray] = []  # batch arrays to reuse
        with ThreadPoolExecutor(max(1, loader_workers(self.workers))) as pool:
            pending: deque[tuple[int, np.ndarray | None, list[Future]]] = deque()
            queued = 0
            while queued < min(self.prefetch, len(starts)):
                pending.append(self._submit(pool, starts[queued]))
                queued += 1
            previous = None
            while pending:
                start, stack, futures = pending.popleft()
                if previous is not None:  # the batch before this one is done with
                    self._free.append(previous)
                if queued < len(starts):  # keep `prefetch` batches in flight
                    pending.append(self._submit(pool, starts[queued]))
                    queued += 1
                items = [item for future in futures for item in future.result()]
                yield self._collate(items, start, stack)
                previous = stack

    def _submit(self, pool: ThreadPoolExecutor, start: int):
        """Read a batch's maps; those of the expected shape go straight into one (N, H, W) array
        (no stacking copy afterwards)."""
        stop = min(start + self.batch_size, len(self.split))
        shape = self._shape()
        stack = None
        if shape is not None:
            stack = self._free.pop() if self._free else np.empty((self.batch_size, *shape))
            stack = stack[: stop - start]
        chunks = [range(i, min(i + CHUNK, stop)) for i in range(start, stop, CHUNK)]
        futures = [pool.submit(self._load_chunk, chunk, stack, start) for chunk in chunks]
        return start, stack, futures

    def _load_chunk(self, indices: range, stack: np.ndarray | None, start: int) -> list[dict]:
        """A few maps per task: a task per map costs as much as reading the map."""
        return [self._load(i, stack, i - start) for i in indices]

    def _shape(self) -> tuple[int, int] | None:
        """The shape every map will have ('minmax' resizes to it), or the first map's shape
        ('none': maps of wsolevaluation's layout share it; others are scored per size)."""
        if self.normalize == "minmax":
            return (self.map_size, self.map_size)
        if not hasattr(self, "_first_shape"):
            from wsolbench.evaluation.scoremaps import layout_header, load_scoremap, scoremap_path

            first = scoremap_path(self.root, self.split.image_ids[0]) if len(self.split) else None
            self._first_shape = load_scoremap(first).shape if first is not None else None
            # Maps laid out as the first one (checked) are read straight into the batch.
            self._header = None if first is None else layout_header(first, self._first_shape)
        return self._first_shape

    def _load(self, index: int, stack: np.ndarray | None, row: int) -> dict:
        from wsolbench.data.datasets import read_masks
        from wsolbench.evaluation.scoremaps import (
            load_scoremap,
            read_scoremap_into,
            scoremap_path,
        )

        path = scoremap_path(self.root, self.split.image_ids[index])
        item = {"scoremap": None}
        if self.mask_root is not None:
            item["mask"], item["ignore"] = read_masks(self.split, index, self.mask_root)
        header = getattr(self, "_header", None)  # set for 'none' only
        if (
            stack is not None
            and header is not None
            and read_scoremap_into(path, stack[row], header)
        ):
            return item  # the usual case: in the batch's array, checked
        scoremap = load_scoremap(path, self.normalize, size=(self.map_size,) * 2)
        if self.normalize != "none" and (  # ('none': load_scoremap checked it)
            not np.isfinite(scoremap).all() or scoremap.min() < 0 or scoremap.max() > 1
        ):
            raise ScoreMapError("score map is not finite in [0, 1] after normalization", path)
        if stack is not None and scoremap.shape == stack.shape[1:]:
            stack[row] = scoremap
            scoremap = None  # in the batch's array
        item["scoremap"] = scoremap
        return item

    def _collate(self, items: list[dict], start: int, stack: np.ndarray | None) -> MapBatch:
        split = self.split
        indices = range(start, start + len(items))
        if stack is not None and all(item["scoremap"] is None for item in items):
            scoremaps = torch.from_numpy(stack).to(self.device)  # the usual case: one shape
            shapes = {tuple(stack.shape[1:])}
        else:  # maps of several sizes: a list, scored per size
            scoremaps = [
                torch.from_numpy(
                    stack[row]
                    if item["scoremap"] is None
                    else np.ascontiguousarray(item["scoremap"])
                ).to(self.device)
                for row, item in enumerate(items)
            ]
            shapes = {tuple(m.shape) for m in scoremaps}
        gt = GroundTruth(
            sizes=[tuple(int(v) for v in split.sizes[i]) for i in indices]
            if split.sizes is not None
            else [(m.shape[1], m.shape[0]) for m in scoremaps],
            boxes=[split.boxes[i] for i in indices] if split.boxes is not None else None,
        )
        if self.mask_root is not None:
            if len(shapes) > 1:
                raise WsolbenchError(
                    f"mask evaluation needs score maps of one size, found {sorted(shapes)}",
                    self.root,
                )
            gt.masks = [item["mask"] for item in items]
            gt.ignore = [item["ignore"] for item in items]
        return MapBatch(gt=gt, scoremaps=scoremaps)
