"""Cell grids, cell choice and resizing: the pieces both swaps share."""
from __future__ import annotations

from typing import Sequence, Tuple

import cv2
import numpy as np

Cell = Tuple[int, int, int, int]  # (y0, y1, x0, x1), half-open, in pixels


def edges(start: float, stop: float, num: int, limit: int) -> np.ndarray:
    """``num`` + 1 integer cell edges spanning [start, stop), clipped to [0, limit]."""
    return np.clip(np.round(np.linspace(start, stop, num + 1)), 0, limit).astype(np.int64)


def grid_cells(y_edges: np.ndarray, x_edges: np.ndarray) -> list:
    """The cells of a grid, row by row, as (y0, y1, x0, x1)."""
    return [(int(y_edges[r]), int(y_edges[r + 1]), int(x_edges[c]), int(x_edges[c + 1]))
            for r in range(len(y_edges) - 1) for c in range(len(x_edges) - 1)]


def num_to_swap(rng: np.random.Generator, ratio: Tuple[float, float], available: int) -> int:
    """How many of ``available`` cells to swap: a fraction drawn uniformly from ``ratio``,
    at least one when the fraction is positive."""
    if available == 0:
        return 0
    fraction = rng.uniform(*ratio)
    if fraction <= 0:
        return 0
    return int(min(available, max(1, round(fraction * available))))


def resize_nearest(array: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour resize of the first two axes, for labels and masks of any dtype."""
    h, w = array.shape[:2]
    if (h, w) == (height, width):
        return array
    rows = np.minimum(((np.arange(height) + 0.5) * h / height).astype(np.int64), h - 1)
    cols = np.minimum(((np.arange(width) + 0.5) * w / width).astype(np.int64), w - 1)
    return array.take(rows, axis=0).take(cols, axis=1)  # faster than 2-D fancy indexing


def resize_bilinear(array: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of the first two axes for pixels, keeping the dtype."""
    h, w = array.shape[:2]
    if (h, w) == (height, width):
        return array
    if array.dtype in (np.uint8, np.uint16, np.float32) and (array.ndim == 2 or array.shape[2] <= 4):
        out = cv2.resize(array, (width, height), interpolation=cv2.INTER_LINEAR)
    else:  # dtypes or channel counts cv2 does not take
        out = cv2.resize(array.astype(np.float32).reshape(h, w, -1), (width, height),
                         interpolation=cv2.INTER_LINEAR)
        if np.issubdtype(array.dtype, np.integer):
            info = np.iinfo(array.dtype)
            out = np.clip(np.round(out), info.min, info.max)
        out = out.astype(array.dtype)
    return out.reshape((height, width) + array.shape[2:])


def swap_regions(arrays_a: Sequence[np.ndarray], arrays_b: Sequence[np.ndarray],
                 cells_a: Sequence[Cell], cells_b: Sequence[Cell],
                 nearest: Sequence[bool], one_way: bool = False) -> None:
    """Exchange cell k of every array in ``arrays_a`` with cell k of its partner in ``arrays_b``,
    in place, resizing each cell onto its partner (``nearest[i]``: nearest-neighbour for array i,
    else bilinear); ``one_way``: A receives B's cells and B is left as it was. The content pasted
    always comes from the arrays as they were before the call, so overlapping cells behave like
    pasting in order."""
    # Gather every patch before writing any, so overlapping cells read the original content.
    patches = [[(a[ay0:ay1, ax0:ax1].copy(), b[by0:by1, bx0:bx1].copy())
                for a, b in zip(arrays_a, arrays_b)]
               for (ay0, ay1, ax0, ax1), (by0, by1, bx0, bx1) in zip(cells_a, cells_b)]
    for (ay0, ay1, ax0, ax1), (by0, by1, bx0, bx1), cell_patches in zip(cells_a, cells_b, patches):
        for a, b, (patch_a, patch_b), near in zip(arrays_a, arrays_b, cell_patches, nearest):
            resize = resize_nearest if near else resize_bilinear
            a[ay0:ay1, ax0:ax1] = resize(patch_b, ay1 - ay0, ax1 - ax0)
            if not one_way:
                b[by0:by1, bx0:bx1] = resize(patch_a, by1 - by0, bx1 - bx0)
