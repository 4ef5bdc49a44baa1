"""Union-find building blocks for ``level_sets`` (numba): find with path compression, union
by size with bounding boxes, a counting sort of pixels by level, padded-grid neighbours."""

from __future__ import annotations

import numpy as np
from numba import njit

LEVELS = 256


@njit(cache=True, inline="always")
def _find(parent, x):
    root = x
    while parent[root] != root:
        root = parent[root]
    while parent[x] != root:  # path compression
        nxt = parent[x]
        parent[x] = root
        x = nxt
    return root


@njit(cache=True)
def _counting_order(values, order, xs, ys):
    """Sort the pixels of a 2-D ``values`` (0..255) by value, stably: ``order`` gets their
    padded-grid indices and ``xs`` / ``ys`` their coordinates (read sequentially later, which
    spares a division per pixel). Returns the start of each value's run."""
    height, width = values.shape
    counts = np.zeros(LEVELS + 1, np.int64)
    for y in range(height):
        for x in range(width):
            counts[values[y, x] + 1] += 1
    for v in range(LEVELS):
        counts[v + 1] += counts[v]
    starts = counts.copy()
    for y in range(height):
        for x in range(width):
            v = values[y, x]
            k = starts[v]
            order[k] = (y + 1) * (width + 2) + x + 1
            xs[k] = x
            ys[k] = y
            starts[v] = k + 1
    return counts  # pixels of value v: order[counts[v]:counts[v + 1]]


@njit(cache=True)
def _neighbour_offsets(width, connectivity):
    """Index offsets of the 4 or 8 neighbours in the grid padded to width + 2."""
    wp = width + 2
    if connectivity == 4:
        return np.array([-wp, -1, 1, wp], np.int64)
    return np.array([-wp - 1, -wp, -wp + 1, -1, 1, wp - 1, wp, wp + 1], np.int64)


@njit(cache=True, inline="always")
def _absorb(box, parent, size, root, other):
    """Union by size; returns (survivor, absorbed)."""
    if size[other] > size[root]:
        root, other = other, root
    parent[other] = root
    size[root] += size[other]
    for c in range(2):
        box[root, c] = min(box[root, c], box[other, c])
        box[root, c + 2] = max(box[root, c + 2], box[other, c + 2])
    return root, other


@njit(cache=True, inline="always")
def _new_root(box, parent, size, p, x, y):
    parent[p] = p
    size[p] = 1
    box[p, 0] = x
    box[p, 1] = y
    box[p, 2] = x
    box[p, 3] = y


@njit(cache=True, inline="always")
def _extend(box, root, x, y):
    """Grow a root's box by one pixel; True if it changed."""
    changed = False
    if x < box[root, 0]:
        box[root, 0] = x
        changed = True
    if x > box[root, 2]:
        box[root, 2] = x
        changed = True
    if y < box[root, 1]:
        box[root, 1] = y
        changed = True
    if y > box[root, 3]:
        box[root, 3] = y
        changed = True
    return changed


@njit(cache=True, inline="always")
def _mark_members(head_next, root, enter, value):
    p = root
    while p != -1:
        enter[p] = value
        p = head_next[p]
