"""Boxes of every threshold of a quantized score map in one pass (numba union-find).

The masks ``u > T`` for T = 255 .. 0 are nested superlevel sets, so instead of calling
``cv2.findContours`` once per threshold we grow them pixel by pixel and read off, at every T,
what OpenCV's ``RETR_TREE`` contours would give (docs/protocols.md sec. 2):

* outer contours = 8-connected foreground components; a contour's bounding rect is the
  component's bounding box (union-find over decreasing ``u``; ``union_find`` explains the
  component slots);
* hole contours = 4-connected background components that do not touch the image border (OpenCV
  pads the image with a zero frame); a hole contour runs through the foreground pixels around
  the hole, so its bounding rect is the hole's box grown by one pixel on each side
  (a priority flood from the border first gives every pixel ``e`` below, the level at which it
  joins the background connected to the border; a union-find over increasing ``u`` of the pixels
  with ``u <= T < e`` only then gives the holes);
* V1 needs the contour with the largest ``contourArea``.  The largest contour is always the
  outer contour of a top-level component (holes and nested components lie inside it), and the
  polygon area of an outer contour through pixel centres is, over the component with its holes
  filled, the sum over 2x2 pixel windows of 1 (4 pixels inside) or 1/2 (3 inside).  The filled
  top-level components at T are the 8-connected components of ``{e > T}``, where ``e(p)`` is the
  first threshold at which pixel p belongs to background connected to the border, so a third
  union-find over decreasing ``e`` keeps every filled component's doubled area.  On a tie of the
  largest area, ``max`` keeps OpenCV's first contour, and OpenCV lists the top-level contours in
  reverse raster order of their first pixel: the tied component whose first pixel (top row, then
  left column) comes last wins. The pass keeps the set of tied components and that winner.

Every box is scored with the ``+1`` quirk and compared with the GT boxes by exact integer
arithmetic (``inter * 100 >= delta * union``; identical to upstream's float test, as the two
rounded quotients cannot tie below 10**13 pixels), and each pass keeps, per IoU threshold, how
many live boxes are hits, so a threshold's answer is read in O(1). A box is scored once per
level, after the level's pixels are in (components touched at that level are queued), not once
per pixel that grows it, and a box too small to reach the lowest IoU threshold with the smallest
GT box is not scored at all: noise, which grows thousands of tiny components a pixel at a time,
costs about what a smooth map does. Exactness is checked against the per-threshold OpenCV
oracle by ``tests/test_box_metrics.py`` on every family of ``tests/map_families.py``.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange, types
from numba.extending import overload

from wsolbench.evaluation.union_find import (  # noqa: F401 (LEVELS re-exported)
    LEVELS,
    RUNS4,
    RUNS8,
    _absorb,
    _counting_order,
    _extend,
    _find,
    _neighbour_mask,
    _neighbour_offsets,
    _new_root,
)


@njit(cache=True)
def _box_hits(x0, y0, x1, y1, width, height, gt, deltas, out):
    """``out[d] = 1`` if the predicted box (with the +1 quirk) has IoU >= deltas[d]% with a GT."""
    bx1 = min(x1 + 1, width - 1)
    by1 = min(y1 + 1, height - 1)
    area = (bx1 - x0 + 1) * (by1 - y0 + 1)
    for d in range(deltas.shape[0]):
        out[d] = 0
    for g in range(gt.shape[0]):
        ix = min(bx1, gt[g, 2]) - max(x0, gt[g, 0]) + 1
        iy = min(by1, gt[g, 3]) - max(y0, gt[g, 1]) + 1
        inter = max(0, ix) * max(0, iy)
        union = area + (gt[g, 2] - gt[g, 0] + 1) * (gt[g, 3] - gt[g, 1] + 1) - inter
        if union <= 0:
            continue
        for d in range(deltas.shape[0]):
            if inter * 100 >= deltas[d] * union:
                out[d] = 1


@njit(cache=True)
def workspace(n, ndelta):
    """Scratch arrays for maps of ``n`` pixels with their padding frame, reused across maps:
    per pixel, then per component slot (at most one slot per pixel)."""
    return (
        np.empty(n, np.int32),  # label: the slot a pixel joined; -1 not yet added (and the frame)
        np.empty(n, np.int32),  # order: pixels sorted by level
        np.empty(n, np.int32),  # xs, ys: their coordinates in that order
        np.empty(n, np.int32),
        np.empty(n, np.uint8),  # levels: u on the padded grid
        np.zeros(n, np.int32),  # enter: the level at which a pixel joins the exterior (frame 0)
        np.empty(n, np.int32),  # flooded: the next pixel in its level's bucket (the flood)
        np.empty(n, np.int32),  # parent
        np.empty(n, np.int32),  # size
        np.empty((n, 4), np.int32),  # box: x0, y0, x1, y1
        np.zeros((n, ndelta), np.uint8),  # hits: a root's counted outcome per IoU threshold
        np.zeros(n, np.bool_),  # queued: a root whose box changed during this level
        np.empty(n, np.int32),  # queue: those roots (the filled pass: the tied roots)
        np.empty(n, np.int32),  # leaving: the next hole slot reaching the border at its level
        np.empty(n, np.int32),  # area2: a filled component's doubled contour area
        np.empty(n, np.int32),  # first: its raster-first pixel
        np.empty(n, np.int32),  # tie_slot: its index among the tied roots, or -1
    )


@njit(cache=True)
def level_hits(u, gt, deltas):
    """Per threshold T in 0..255 (mask ``u > T``) and IoU threshold: is the box correct?
    ``u``: uint8 levels, or a float map in [0, 1] (then ``u = floor(s * 255)``, in its dtype).

    Returns ``v1 (256, D) uint8`` (the largest contour's box), ``v2 (256, D) uint8`` (any
    contour's box) and the largest level (-1: a value outside [0, 1] or NaN, nothing scored).
    """
    v1 = np.zeros((LEVELS, deltas.shape[0]), np.uint8)
    v2 = np.zeros((LEVELS, deltas.shape[0]), np.uint8)
    ws = workspace((u.shape[0] + 2) * (u.shape[1] + 2), deltas.shape[0])
    top = _level_hits_into(u, gt, deltas, ws, v1, v2)
    return v1, v2, top


def _level_of(value):
    """A map value's level: ``floor(value * 255)`` in its own float type, or -1 outside [0, 1]
    or NaN; uint8 values are levels already."""


@overload(_level_of, inline="always")
def _level_of_typed(value):
    if isinstance(value, types.Integer):
        return lambda value: np.int64(value)
    scale = np.float32(255) if value == types.float32 else np.float64(255)

    def level(value):
        if value >= 0 and value <= 1:
            return np.int64(value * scale)
        return np.int64(-1)

    return level


@njit(cache=True)
def _pad_levels(s, levels, enter):
    """One pass over a map: its levels on the padded grid (``floor(s * 255)`` in the map's own
    dtype, as upstream's ``(scoremap * 255).astype(np.uint8)``; uint8 maps are levels already),
    ``enter`` -1 inside for the flood, and the largest level; -1 if a value is outside [0, 1] or
    NaN (checked before it is used as an index)."""
    height, width = s.shape
    wp = width + 2
    top = 0
    for y in range(height):
        row = (y + 1) * wp + 1
        for x in range(width):
            level = _level_of(s[y, x])
            if level < 0:
                return -1
            levels[row + x] = level
            enter[row + x] = -1
            top = max(top, level)
    return top


@njit(cache=True)
def _level_hits_into(s, gt, deltas, ws, v1, v2):
    height, width = s.shape
    (
        label,
        order,
        xs,
        ys,
        levels,
        enter,
        flooded,
        parent,
        size,
        box,
        hits,
        queued,
        queue,
        leaving,
        area2,
        first,
        tie_slot,
    ) = ws
    v1[:, :] = 0
    v2[:, :] = 0
    empty_hits = np.zeros(deltas.shape[0], np.uint8)
    _box_hits(0, 0, -1, -1, width, height, gt, deltas, empty_hits)  # [0,0,0,0] after the +1
    # A box of area a has IoU <= a / (a GT's area) with it: below this, no IoU threshold is met.
    floor = np.int64(0)
    if gt.shape[0] > 0:
        floor = deltas.min() * ((gt[:, 2] - gt[:, 0] + 1) * (gt[:, 3] - gt[:, 1] + 1)).min()
    alive = np.zeros(deltas.shape[0], np.int64)
    top = _pad_levels(s, levels, enter)
    if top < 0:
        return top
    u = levels.reshape(height + 2, width + 2)[1 : height + 1, 1 : width + 1]
    starts = _counting_order(u, order, xs, ys)
    label[:] = -1
    _outer_pass(
        order,
        xs,
        ys,
        starts,
        height,
        width,
        gt,
        deltas,
        floor,
        label,
        parent,
        size,
        box,
        hits,
        alive,
        queued,
        queue,
        empty_hits,
        v2,
    )
    _flood_exterior(height, width, levels, enter, flooded)
    label[:] = -1
    alive[:] = 0
    _hole_pass(
        order,
        xs,
        ys,
        starts,
        height,
        width,
        gt,
        deltas,
        floor,
        enter,
        label,
        parent,
        size,
        box,
        hits,
        alive,
        queued,
        queue,
        leaving,
        v2,
    )
    inside = enter.reshape(height + 2, width + 2)[1 : height + 1, 1 : width + 1]
    starts = _counting_order(inside, order, xs, ys)
    label[:] = -1
    _filled_pass(
        order,
        xs,
        ys,
        starts,
        height,
        width,
        gt,
        deltas,
        label,
        parent,
        size,
        box,
        area2,
        first,
        queue,
        tie_slot,
        empty_hits,
        v1,
    )
    return top


@njit(cache=True, inline="always")
def _retire(root, hits, alive):
    """A box stops counting (its component merged away, or its hole reached the border)."""
    for d in range(hits.shape[1]):
        alive[d] -= hits[root, d]
        hits[root, d] = 0


@njit(cache=True, inline="always")
def _enqueue(root, grow, box, width, height, floor, queued, queue, count):
    """Queue a root whose box changed (scored once, at the end of the level) unless the box, with
    the +1 quirk and grown by ``grow`` pixels, is too small to meet any IoU threshold: boxes only
    grow, so such a root's hits are still all 0."""
    x0 = box[root, 0] - grow
    y0 = box[root, 1] - grow
    x1 = min(box[root, 2] + grow + 1, width - 1)
    y1 = min(box[root, 3] + grow + 1, height - 1)
    if (x1 - x0 + 1) * (y1 - y0 + 1) * 100 >= floor and not queued[root]:
        queued[root] = True
        queue[count] = root
        count += 1
    return count


@njit(cache=True, inline="always")
def _rescore(root, grow, box, width, height, gt, deltas, hits, alive):
    """Score a root's box (grown by ``grow`` pixels: 1 for a hole) and update the live counts."""
    for d in range(deltas.shape[0]):
        alive[d] -= hits[root, d]
    _box_hits(
        box[root, 0] - grow,
        box[root, 1] - grow,
        box[root, 2] + grow,
        box[root, 3] + grow,
        width,
        height,
        gt,
        deltas,
        hits[root],
    )
    for d in range(deltas.shape[0]):
        alive[d] += hits[root, d]


@njit(cache=True)
def _outer_pass(
    order,
    xs,
    ys,
    starts,
    height,
    width,
    gt,
    deltas,
    floor,
    label,
    parent,
    size,
    box,
    hits,
    alive,
    queued,
    queue,
    empty_hits,
    v2,
):
    """Foreground components, decreasing u, 8-connectivity: the outer contours."""
    offsets = _neighbour_offsets(width, 8)
    slots = 0
    for value in range(LEVELS - 1, -1, -1):
        # Snapshot before adding this value's pixels: the mask u > value.
        if slots == 0:
            v2[value, :] = empty_hits
        else:
            for d in range(deltas.shape[0]):
                v2[value, d] = 1 if alive[d] > 0 else 0
        if value == 0:
            break  # pixels with u = 0 are in no mask u > T
        count = 0
        for k in range(starts[value], starts[value + 1]):
            p = order[k]  # index in the grid padded by a never-added frame
            x = xs[k]
            y = ys[k]
            root = -1
            changed = False
            mask = _neighbour_mask(label, p, offsets)  # the frame is never added: no bounds checks
            for t in range(RUNS8[mask, 0]):
                other = _find(parent, label[p + offsets[RUNS8[mask, 1 + t]]])
                if root == -1:
                    root = other
                elif other != root:
                    root, other = _absorb(box, parent, size, root, other)
                    _retire(other, hits, alive)
                    changed = True
            if root == -1:
                root = slots
                slots += 1
                _new_root(box, parent, size, root, x, y)
                hits[root, :] = 0
                count = _enqueue(root, 0, box, width, height, floor, queued, queue, count)
            else:
                size[root] += 1
                if _extend(box, root, x, y) or changed:
                    count = _enqueue(root, 0, box, width, height, floor, queued, queue, count)
            label[p] = root
        for k in range(count):  # the level's changed boxes, each scored once
            root = queue[k]
            queued[root] = False
            if parent[root] == root:  # not merged away since
                _rescore(root, 0, box, width, height, gt, deltas, hits, alive)


@njit(cache=True)
def _flood_exterior(height, width, levels, enter, flooded):
    """``enter`` (padded grid, -1 inside and 0 on the frame on entry): for every pixel, the
    first level T at which it is background (u <= T) connected to the border, i.e. the least,
    over 4-paths from it to the border, of the largest u on the path. A priority flood from the
    border, level by level (one bucket list per level, in ``flooded``): a pixel's level is final
    when it is first reached, as levels are taken in increasing order, so every pixel is pushed
    and popped once, by neighbours."""
    wp = width + 2
    heads = np.full(LEVELS, -1, np.int32)
    for k in range(2 * (height + width)):  # the border pixels, each pushed once
        if k < 2 * width:
            p = (1 + (k % 2) * (height - 1)) * wp + 1 + k // 2
        else:
            p = (1 + (k - 2 * width) // 2) * wp + 1 + (k % 2) * (width - 1)
        if enter[p] < 0:
            level = levels[p]
            enter[p] = level
            flooded[p] = heads[level]
            heads[level] = p
    offsets = _neighbour_offsets(width, 4)
    for level in range(LEVELS):
        while heads[level] >= 0:
            p = heads[level]
            heads[level] = flooded[p]
            for j in range(4):
                q = p + offsets[j]
                if enter[q] < 0:
                    reach = max(level, np.int64(levels[q]))
                    enter[q] = reach
                    flooded[q] = heads[reach]
                    heads[reach] = q


@njit(cache=True)
def _hole_pass(
    order,
    xs,
    ys,
    starts,
    height,
    width,
    gt,
    deltas,
    floor,
    enter,
    label,
    parent,
    size,
    box,
    hits,
    alive,
    queued,
    queue,
    leaving,
    v2,
):
    """Holes, increasing u, 4-connectivity: the background pixels not yet connected to the
    border (u <= T < enter), which the flood found. A hole's 4-neighbours in the background
    are in the same hole, so only hole pixels are joined; a hole reaches the border as a whole
    (its pixels share ``enter``) and its box stops counting at that level."""
    offsets = _neighbour_offsets(width, 4)
    slots = 0
    leaving_at = np.full(LEVELS, -1, np.int32)  # per level: the first slot leaving then
    for value in range(LEVELS):
        s = leaving_at[value]
        while s >= 0:  # holes that reach the border at this level
            if parent[s] == s:
                _retire(s, hits, alive)
            s = leaving[s]
        count = 0
        for k in range(starts[value], starts[value + 1]):
            p = order[k]  # index in the grid padded by a never-added frame
            if enter[p] <= value:
                continue  # background connected to the border: no hole
            x = xs[k]
            y = ys[k]
            root = -1
            changed = False
            mask = _neighbour_mask(label, p, offsets)
            for t in range(RUNS4[mask, 0]):
                other = _find(parent, label[p + offsets[RUNS4[mask, 1 + t]]])
                if root == -1:
                    root = other
                elif other != root:
                    root, other = _absorb(box, parent, size, root, other)
                    _retire(other, hits, alive)
                    changed = True
            if root == -1:
                root = slots
                slots += 1
                _new_root(box, parent, size, root, x, y)
                hits[root, :] = 0
                leaving[root] = leaving_at[enter[p]]
                leaving_at[enter[p]] = root
                count = _enqueue(root, 1, box, width, height, floor, queued, queue, count)
            else:
                size[root] += 1
                if _extend(box, root, x, y) or changed:
                    count = _enqueue(root, 1, box, width, height, floor, queued, queue, count)
            label[p] = root
        for k in range(count):  # the level's changed holes, each scored once
            root = queue[k]
            queued[root] = False
            if parent[root] == root:  # not merged away since
                _rescore(root, 1, box, width, height, gt, deltas, hits, alive)
        # Snapshot after adding this value's pixels: background u <= value.
        for d in range(deltas.shape[0]):
            if alive[d] > 0:
                v2[value, d] = 1


def _window_growth() -> np.ndarray:
    """For each mask of added 8-neighbours (ring NW N NE E SE S SW W), how much a new pixel adds
    to the doubled contour area: each of its four 2x2 windows that then holds 3 or 4 pixels
    (2 or 3 others already in) adds 1, i.e. half a pixel of area."""
    windows = ((0, 1, 7), (1, 2, 3), (3, 4, 5), (5, 6, 7))  # the other three pixels of each
    table = np.zeros(256, np.int64)
    for mask in range(256):
        table[mask] = sum(sum((mask >> j) & 1 for j in w) >= 2 for w in windows)
    return table


GROWTH8 = _window_growth()


@njit(cache=True, inline="always")
def _tie(root, area, best, ntied, winner, first, tied, tie_slot):
    """A root's area became ``area``: keep the roots of the largest area (``tied``, with their
    slots) and the winner among them (-1: to be found again). Returns (best, ntied, winner)."""
    if area > best or ntied == 0:
        for k in range(ntied):  # every root leaves at most once per time it joined
            tie_slot[tied[k]] = -1
        tied[0] = root
        tie_slot[root] = 0
        return area, 1, root
    if area == best and tie_slot[root] < 0:
        tied[ntied] = root
        tie_slot[root] = ntied
        if winner >= 0 and first[root] > first[winner]:
            winner = root
        return best, ntied + 1, winner
    return best, ntied, winner


@njit(cache=True, inline="always")
def _untie(root, ntied, winner, tied, tie_slot):
    """A root merges: it leaves the tied roots (if there). Returns (ntied, winner)."""
    slot = tie_slot[root]
    if slot < 0:
        return ntied, winner
    last = tied[ntied - 1]
    tied[slot] = last
    tie_slot[last] = slot
    tie_slot[root] = -1
    return ntied - 1, -1 if winner == root else winner


@njit(cache=True)
def _filled_pass(
    order,
    xs,
    ys,
    starts,
    height,
    width,
    gt,
    deltas,
    label,
    parent,
    size,
    box,
    area2,
    first,
    tied,
    tie_slot,
    empty_hits,
    v1,
):
    """Filled top-level components {enter > T}, decreasing enter, 8-connectivity, with doubled
    outer-contour areas from 2x2 window counts. Keeps the roots of the largest area and, among
    them, the one OpenCV lists first: the one whose raster-first pixel comes last."""
    offsets = _neighbour_offsets(width, 8)
    slots = 0
    best = 0  # the largest area
    ntied = 0  # how many roots have it: tied[:ntied]
    winner = -1  # the V1 component, or -1: find it among the tied roots
    for value in range(LEVELS - 1, -1, -1):
        if ntied == 0:
            v1[value, :] = empty_hits
        else:
            if winner < 0:
                winner = tied[0]
                for k in range(1, ntied):
                    if first[tied[k]] > first[winner]:
                        winner = tied[k]
            r = winner
            _box_hits(
                box[r, 0], box[r, 1], box[r, 2], box[r, 3], width, height, gt, deltas, v1[value]
            )
        if value == 0:
            break  # pixels entering the exterior at T = 0 are in no filled set
        for k in range(starts[value], starts[value + 1]):
            p = order[k]  # index in the grid padded by a never-added frame (raster order)
            x = xs[k]
            y = ys[k]
            root = -1
            mask = _neighbour_mask(label, p, offsets)  # the frame is never added: no bounds checks
            for t in range(RUNS8[mask, 0]):
                other = _find(parent, label[p + offsets[RUNS8[mask, 1 + t]]])
                if root == -1:
                    root = other
                elif other != root:
                    ntied, winner = _untie(root, ntied, winner, tied, tie_slot)
                    ntied, winner = _untie(other, ntied, winner, tied, tie_slot)
                    root, other = _absorb(box, parent, size, root, other)
                    area2[root] += area2[other]
                    first[root] = min(first[root], first[other])
                    best, ntied, winner = _tie(
                        root, area2[root], best, ntied, winner, first, tied, tie_slot
                    )
            if root == -1:
                root = slots
                slots += 1
                _new_root(box, parent, size, root, x, y)
                area2[root] = 0
                first[root] = p
                tie_slot[root] = -1
                best, ntied, winner = _tie(root, 0, best, ntied, winner, first, tied, tie_slot)
            else:
                size[root] += 1
                _extend(box, root, x, y)
                if p < first[root]:  # p is the padded raster index: smaller = earlier
                    first[root] = p
                    if winner == root:
                        winner = -1
            label[p] = root
            # The four 2x2 windows that hold the pixel: one that now holds 3 or 4 added pixels
            # adds 1/2 to the area (the frame is never added: no bounds to check).
            grown = GROWTH8[mask]
            if grown:
                area = area2[root] + grown
                area2[root] = area
                if area > best and ntied == 1 and tied[0] == root:
                    best = area  # the one largest root grows (most pixels): still the one
                    winner = root
                elif area >= best:
                    best, ntied, winner = _tie(
                        root, area, best, ntied, winner, first, tied, tie_slot
                    )


@njit(cache=True, parallel=True, nogil=True)  # nogil: maps load while a batch is scored
def batch_level_hits(u, gt, gt_offsets, deltas, chunks=2):
    """``level_hits`` for a batch ``u (N, H, W)`` (uint8 levels or float maps); GT boxes of
    image i are ``gt[gt_offsets[i]:gt_offsets[i + 1]]``. ``chunks`` threads each reuse one
    workspace. Returns v1, v2 and each map's largest level (-1: not in [0, 1], not scored)."""
    count = u.shape[0]
    v1 = np.zeros((count, LEVELS, deltas.shape[0]), np.uint8)
    v2 = np.zeros((count, LEVELS, deltas.shape[0]), np.uint8)
    tops = np.zeros(count, np.int64)
    for c in prange(chunks):
        ws = workspace((u.shape[1] + 2) * (u.shape[2] + 2), deltas.shape[0])
        for i in range(c, count, chunks):
            tops[i] = _level_hits_into(
                u[i], gt[gt_offsets[i] : gt_offsets[i + 1]], deltas, ws, v1[i], v2[i]
            )
    return v1, v2, tops
