"""Boxes of every threshold of a quantized score map in one pass (numba union-find).

The masks ``u > T`` for T = 255 .. 0 are nested superlevel sets, so instead of calling
``cv2.findContours`` once per threshold we grow them pixel by pixel and read off, at every T,
what OpenCV's ``RETR_TREE`` contours would give (docs/protocols.md sec. 2):

* outer contours = 8-connected foreground components; a contour's bounding rect is the
  component's bounding box (union-find over decreasing ``u``);
* hole contours = 4-connected background components that do not touch the image border (OpenCV
  pads the image with a zero frame); a hole contour runs through the foreground pixels around
  the hole, so its bounding rect is the hole's box grown by one pixel on each side
  (union-find over increasing ``u``);
* V1 needs the contour with the largest ``contourArea``.  The largest contour is always the
  outer contour of a top-level component (holes and nested components lie inside it), and the
  polygon area of an outer contour through pixel centres is, over the component with its holes
  filled, the sum over 2x2 pixel windows of 1 (4 pixels inside) or 1/2 (3 inside).  The filled
  top-level components at T are the 8-connected components of ``{e > T}``, where ``e(p)`` is the
  first threshold at which pixel p belongs to background connected to the border, so a third
  union-find over decreasing ``e`` keeps every filled component's doubled area.  A tie of the
  largest area between two components is flagged: the caller asks OpenCV for that (map, T).

Every box is scored with the ``+1`` quirk and compared with the GT boxes by exact integer
arithmetic (``inter * 100 >= delta * union``; identical to upstream's float test, as the two
rounded quotients cannot tie below 10**13 pixels), and each pass keeps, per IoU threshold, how
many live boxes are hits, so a threshold's answer is read in O(1). Exactness is checked against
the per-threshold OpenCV oracle by ``tests/test_box_metrics.py``.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from wsolbench.evaluation.union_find import (  # noqa: F401 (LEVELS re-exported)
    LEVELS,
    _absorb,
    _counting_order,
    _extend,
    _find,
    _mark_members,
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
    """Scratch arrays for maps of ``n`` pixels with their padding frame, reused across maps."""
    return (
        np.empty((n, 4), np.int32),
        np.empty(n, np.int32),
        np.empty(n, np.int32),
        np.zeros((n, ndelta), np.uint8),
        np.zeros(n, np.bool_),
        np.empty(n, np.int32),
        np.empty(n, np.int32),
        np.zeros(n, np.bool_),
        np.empty(n, np.int32),
        np.empty(n, np.int32),
        np.zeros(n, np.int32),
        np.zeros(n, np.int8),
        np.empty(n, np.int32),
        np.empty(n, np.int32),
    )


@njit(cache=True)
def level_hits(u, gt, deltas):
    """Per threshold T in 0..255 (mask ``u > T``) and IoU threshold: is the box correct?

    Returns ``v1 (256, D) uint8``, ``v2 (256, D) uint8`` and ``v1_ambiguous (256,) bool``
    (a tie of the largest contour area between different components: ask OpenCV).
    """
    v1 = np.zeros((LEVELS, deltas.shape[0]), np.uint8)
    v2 = np.zeros((LEVELS, deltas.shape[0]), np.uint8)
    ambiguous = np.zeros(LEVELS, np.bool_)
    ws = workspace((u.shape[0] + 2) * (u.shape[1] + 2), deltas.shape[0])
    _level_hits_into(u, gt, deltas, ws, v1, v2, ambiguous)
    return v1, v2, ambiguous


@njit(cache=True)
def _level_hits_into(u, gt, deltas, ws, v1, v2, ambiguous):
    height, width = u.shape
    (
        box,
        parent,
        size,
        hits,
        active,
        enter,
        order,
        exterior,
        next_member,
        last_member,
        area2,
        window,
        xs,
        ys,
    ) = ws
    v1[:, :] = 0
    v2[:, :] = 0
    ambiguous[:] = False
    empty_hits = np.zeros(deltas.shape[0], np.uint8)
    _box_hits(0, 0, -1, -1, width, height, gt, deltas, empty_hits)  # [0,0,0,0] after the +1
    alive = np.zeros(deltas.shape[0], np.int64)
    active[:] = False
    starts = _counting_order(u, order, xs, ys)
    _outer_pass(
        order,
        xs,
        ys,
        starts,
        height,
        width,
        gt,
        deltas,
        box,
        parent,
        size,
        hits,
        alive,
        active,
        empty_hits,
        v2,
    )
    active[:] = False
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
        box,
        parent,
        size,
        hits,
        alive,
        active,
        enter,
        exterior,
        next_member,
        last_member,
        v2,
    )
    starts = _counting_order(
        enter.reshape(height + 2, width + 2)[1 : height + 1, 1 : width + 1], order, xs, ys
    )
    active[:] = False
    window[:] = 0
    _filled_pass(
        order,
        xs,
        ys,
        starts,
        height,
        width,
        gt,
        deltas,
        box,
        parent,
        size,
        active,
        area2,
        window,
        empty_hits,
        v1,
        ambiguous,
    )


@njit(cache=True, inline="always")
def _retire(root, hits, alive):
    """A box stops counting (its component merged away, or its hole reached the border)."""
    for d in range(hits.shape[1]):
        alive[d] -= hits[root, d]
        hits[root, d] = 0


@njit(cache=True, inline="always")
def _recount(root, grow, box, width, height, gt, deltas, hits, alive):
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
    box,
    parent,
    size,
    hits,
    alive,
    active,
    empty_hits,
    v2,
):
    """Foreground components, decreasing u, 8-connectivity: the outer contours."""
    offsets = _neighbour_offsets(width, 8)
    added = 0
    for value in range(LEVELS - 1, -1, -1):
        # Snapshot before adding this value's pixels: the mask u > value.
        if added == 0:
            v2[value, :] = empty_hits
        else:
            for d in range(deltas.shape[0]):
                v2[value, d] = 1 if alive[d] > 0 else 0
        if value == 0:
            break  # pixels with u = 0 are in no mask u > T
        for k in range(starts[value], starts[value + 1]):
            p = order[k]  # index in the grid padded by a never-active frame
            x = xs[k]
            y = ys[k]
            active[p] = True
            added += 1
            root = -1
            changed = False
            for j in range(8):
                q = p + offsets[j]  # the padding frame is never active: no bounds checks
                if not active[q] or parent[q] == root:  # most point straight at root
                    continue
                other = _find(parent, q)
                if root == -1:
                    root = other
                elif other != root:
                    root, other = _absorb(box, parent, size, root, other)
                    _retire(other, hits, alive)
                    changed = True
            if root == -1:
                _new_root(box, parent, size, p, x, y)
                hits[p, :] = 0
                _recount(p, 0, box, width, height, gt, deltas, hits, alive)
            else:
                parent[p] = root
                size[root] += 1
                if _extend(box, root, x, y) or changed:
                    _recount(root, 0, box, width, height, gt, deltas, hits, alive)


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
    box,
    parent,
    size,
    hits,
    alive,
    active,
    enter,
    exterior,
    next_member,
    last_member,
    v2,
):
    """Background components, increasing u, 4-connectivity: the holes (hole contours).

    Non-exterior roots keep a member list so that, when they reach the border, ``enter`` (the
    first T at which a pixel is background connected to the border) is set for all members.
    """
    offsets = _neighbour_offsets(width, 4)
    for value in range(LEVELS):
        for k in range(starts[value], starts[value + 1]):
            p = order[k]  # index in the grid padded by a never-active frame
            x = xs[k]
            y = ys[k]
            active[p] = True
            next_member[p] = -1
            last_member[p] = p
            on_border = y == 0 or x == 0 or y == height - 1 or x == width - 1
            root = -1
            changed = False
            for j in range(4):
                q = p + offsets[j]
                if not active[q] or parent[q] == root:
                    continue
                other = _find(parent, q)
                if root == -1:
                    root = other
                elif other != root:
                    root, other = _absorb(box, parent, size, root, other)
                    _retire(other, hits, alive)
                    if exterior[root] and not exterior[other]:
                        _mark_members(next_member, other, enter, value)
                    elif exterior[other] and not exterior[root]:
                        _mark_members(next_member, root, enter, value)
                        exterior[root] = True
                    elif not exterior[root]:
                        next_member[last_member[root]] = other
                        last_member[root] = last_member[other]
                    changed = True
            if root == -1:
                _new_root(box, parent, size, p, x, y)
                hits[p, :] = 0
                exterior[p] = on_border
                if on_border:
                    enter[p] = value
                else:
                    _recount(p, 1, box, width, height, gt, deltas, hits, alive)
                continue
            parent[p] = root
            size[root] += 1
            changed = _extend(box, root, x, y) or changed
            if not exterior[root] and on_border:
                _mark_members(next_member, root, enter, value)
                exterior[root] = True
            if exterior[root]:
                enter[p] = value
                if changed or on_border:  # the root may have been a counted hole until now
                    _retire(root, hits, alive)
            else:
                next_member[last_member[root]] = p
                last_member[root] = p
                if changed:
                    _recount(root, 1, box, width, height, gt, deltas, hits, alive)
        # Snapshot after adding this value's pixels: background u <= value.
        for d in range(deltas.shape[0]):
            if alive[d] > 0:
                v2[value, d] = 1


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
    box,
    parent,
    size,
    active,
    area2,
    window,
    empty_hits,
    v1,
    ambiguous,
):
    """Filled top-level components {enter > T}, decreasing enter, 8-connectivity, with doubled
    outer-contour areas from 2x2 window counts; keeps the largest and whether it is tied."""
    offsets = _neighbour_offsets(width, 8)
    tmp = np.zeros(deltas.shape[0], np.uint8)
    best = 0
    at_best = 0  # how many roots have area2 == best
    best_root = -1
    added = 0
    for value in range(LEVELS - 1, -1, -1):
        if added == 0:
            v1[value, :] = empty_hits
        else:
            ambiguous[value] = at_best >= 2
            r = best_root
            _box_hits(box[r, 0], box[r, 1], box[r, 2], box[r, 3], width, height, gt, deltas, tmp)
            v1[value, :] = tmp
        if value == 0:
            break  # pixels entering the exterior at T = 0 are in no filled set
        for k in range(starts[value], starts[value + 1]):
            p = order[k]  # index in the grid padded by a never-active frame
            x = xs[k]
            y = ys[k]
            active[p] = True
            added += 1
            root = -1
            for j in range(8):
                q = p + offsets[j]  # the padding frame is never active: no bounds checks
                if not active[q] or parent[q] == root:  # most point straight at root
                    continue
                other = _find(parent, q)
                if root == -1:
                    root = other
                elif other != root:
                    at_best -= (area2[root] == best) + (area2[other] == best)
                    root, other = _absorb(box, parent, size, root, other)
                    area2[root] += area2[other]
                    if area2[root] == best:
                        at_best += 1
                        best_root = root
                    elif area2[root] > best:
                        best = area2[root]
                        at_best = 1
                        best_root = root
            if root == -1:
                _new_root(box, parent, size, p, x, y)
                area2[p] = 0
                root = p
                if best == 0:
                    at_best += 1
                    best_root = p
            else:
                parent[p] = root
                size[root] += 1
                _extend(box, root, x, y)
            grown = 0  # windows that now hold 3 or 4 pixels: +1/2 area each
            for wy in range(max(y - 1, 0), min(y + 1, height - 1)):
                for wx in range(max(x - 1, 0), min(x + 1, width - 1)):
                    w = wy * (width - 1) + wx
                    window[w] += 1
                    grown += window[w] >= 3
            if grown:
                if area2[root] == best:
                    at_best -= 1
                area2[root] += grown
                if area2[root] == best:
                    at_best += 1
                    best_root = root
                elif area2[root] > best:
                    best = area2[root]
                    at_best = 1
                    best_root = root


@njit(cache=True, parallel=True)
def batch_level_hits(u, gt, gt_offsets, deltas, chunks=2):
    """``level_hits`` for a batch ``u (N, H, W)``; GT boxes of image i are
    ``gt[gt_offsets[i]:gt_offsets[i + 1]]``. ``chunks`` threads each reuse one workspace."""
    count = u.shape[0]
    v1 = np.zeros((count, LEVELS, deltas.shape[0]), np.uint8)
    v2 = np.zeros((count, LEVELS, deltas.shape[0]), np.uint8)
    ambiguous = np.zeros((count, LEVELS), np.bool_)
    for c in prange(chunks):
        ws = workspace((u.shape[1] + 2) * (u.shape[2] + 2), deltas.shape[0])
        for i in range(c, count, chunks):
            _level_hits_into(
                u[i], gt[gt_offsets[i] : gt_offsets[i + 1]], deltas, ws, v1[i], v2[i], ambiguous[i]
            )
    return v1, v2, ambiguous
