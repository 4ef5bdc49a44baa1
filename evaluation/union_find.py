"""Union-find building blocks for ``level_sets`` (numba): find with path compression, union
by size with bounding boxes, a counting sort of pixels by level, padded-grid neighbours.

The union-find runs over component *slots*, not pixels: a pixel that starts a component takes
the next free slot, and every pixel records the slot it joined (its ``label``). A component's
parent, size, box and the rest live in slot arrays filled in creation order, far smaller and
denser than pixel arrays, so that maps whose levels scatter over the image (noise) stay in cache.
"""

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
    """Index offsets of the neighbours in the grid padded to width + 2: for 4, N W E S; for 8,
    the ring NW N NE E SE S SW W, in which consecutive neighbours touch (8-connectivity)."""
    wp = width + 2
    if connectivity == 4:
        return np.array([-wp, -1, 1, wp], np.int64)
    return np.array([-wp - 1, -wp, -wp + 1, 1, wp + 1, wp, wp - 1, -1], np.int64)


def _neighbour_runs(connectivity: int) -> np.ndarray:
    """For each mask of added neighbours (bit j: neighbour j), the neighbours to look up:
    ``[count, j0, j1, ...]``. With 8-connectivity, consecutive ring neighbours are already in
    one component, so only the first of each run around the ring needs a ``find`` (at most 4);
    a table lookup also replaces a hard-to-predict branch per neighbour on noisy maps."""
    table = np.zeros((1 << connectivity, 5), np.int64)
    for mask in range(1 << connectivity):
        on = [(mask >> j) & 1 for j in range(connectivity)]
        if connectivity == 4:
            picks = [j for j in range(4) if on[j]]
        elif mask == 255:
            picks = [0]
        else:
            picks = [j for j in range(8) if on[j] and not on[j - 1]]
        table[mask, 0] = len(picks)
        table[mask, 1 : 1 + len(picks)] = picks
    return table


RUNS4 = _neighbour_runs(4)
RUNS8 = _neighbour_runs(8)


@njit(cache=True, inline="always")
def _neighbour_mask(label, p, offsets):
    """Bit j set when neighbour j of pixel ``p`` was added (``label`` >= 0)."""
    mask = 0
    for j in range(offsets.shape[0]):
        mask |= np.int64(label[p + offsets[j]] >= 0) << j
    return mask


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
def _new_root(box, parent, size, s, x, y):
    """Slot ``s`` starts a component of the one pixel (x, y)."""
    parent[s] = s
    size[s] = 1
    box[s, 0] = x
    box[s, 1] = y
    box[s, 2] = x
    box[s, 3] = y


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
