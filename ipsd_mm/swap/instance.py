"""Box-aware patch swap for object detection and instance segmentation (DESIGN.md §1.2)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Tuple

import numpy as np

from .grid import Cell, edges, grid_cells, num_to_swap, resize_nearest, swap_regions


@dataclass
class InstanceSwap:
    """What a box-aware swap did: the matched instances (indices into A's and B's instance
    arrays), and the cells exchanged with the instance pair each belongs to."""
    swapped: bool
    instance_pairs: List[Tuple[int, int]]
    cells_a: List[Cell] = field(default_factory=list)
    cells_b: List[Cell] = field(default_factory=list)
    cell_owners: List[Tuple[int, int]] = field(default_factory=list)


def match_instances(labels_a: np.ndarray, ignore_a: np.ndarray, labels_b: np.ndarray,
                    ignore_b: np.ndarray, max_pairs: int,
                    rng: np.random.Generator) -> List[Tuple[int, int]]:
    """Match non-ignored instances of the same class one-to-one at random, at most
    ``max_pairs`` matches, sorted by A's index."""
    pairs = []
    for c in np.intersect1d(labels_a[~ignore_a], labels_b[~ignore_b]):
        side_a = rng.permutation(np.flatnonzero((labels_a == c) & ~ignore_a))
        side_b = rng.permutation(np.flatnonzero((labels_b == c) & ~ignore_b))
        pairs += [(int(i), int(j)) for i, j in zip(side_a, side_b)]
    if len(pairs) > max_pairs:
        keep = rng.choice(len(pairs), max_pairs, replace=False)
        pairs = [pairs[k] for k in keep]
    return sorted(pairs)


def box_cells(box: np.ndarray, grid: Tuple[int, int], shape: Tuple[int, int],
              min_cell_size: int) -> Optional[List[Cell]]:
    """The ``grid`` cells of a box (row by row) clipped to the image, or None when a cell would
    be smaller than ``min_cell_size`` pixels on a side."""
    height, width = shape
    y_edges = edges(box[1], box[3], grid[0], height)
    x_edges = edges(box[0], box[2], grid[1], width)
    if np.diff(y_edges).min() < min_cell_size or np.diff(x_edges).min() < min_cell_size:
        return None
    return grid_cells(y_edges, x_edges)


def paste_masks(masks_a: np.ndarray, masks_b: np.ndarray, cells_a: List[Cell],
                cells_b: List[Cell], owners: List[Tuple[int, int]]) -> None:
    """Masks follow the pixels: inside a swapped cell the matched instance takes its partner's
    mask content and every other instance is cleared (the pasted content covers it)."""
    patches = [(masks_a[i, ay0:ay1, ax0:ax1].copy(), masks_b[j, by0:by1, bx0:bx1].copy())
               for (ay0, ay1, ax0, ax1), (by0, by1, bx0, bx1), (i, j)
               in zip(cells_a, cells_b, owners)]
    for (ay0, ay1, ax0, ax1), (by0, by1, bx0, bx1), (i, j), (patch_a, patch_b) \
            in zip(cells_a, cells_b, owners, patches):
        masks_a[:, ay0:ay1, ax0:ax1] = 0
        masks_a[i, ay0:ay1, ax0:ax1] = resize_nearest(patch_b, ay1 - ay0, ax1 - ax0)
        masks_b[:, by0:by1, bx0:bx1] = 0
        masks_b[j, by0:by1, bx0:bx1] = resize_nearest(patch_a, by1 - by0, bx1 - bx0)


def swap_instances(img_a: np.ndarray, img_b: np.ndarray,
                   boxes_a: np.ndarray, boxes_b: np.ndarray,
                   labels_a: np.ndarray, labels_b: np.ndarray,
                   ignore_a: np.ndarray, ignore_b: np.ndarray,
                   masks_a: Optional[np.ndarray], masks_b: Optional[np.ndarray],
                   rng: np.random.Generator, box_grid: Tuple[int, int],
                   swap_ratio: Tuple[float, float], prob: float, min_cell_size: int,
                   max_pairs: int) -> InstanceSwap:
    """Swap cells between matched same-class boxes of image A and image B, in place.

    Boxes are (N, 4) x1y1x2y2 pixels; masks, when given, (N, H, W) arrays that follow the
    pixels. Each matched box is cut into a ``box_grid`` of cells relative to the box, so cell
    (u, v) of box a is the same part of the object as cell (u, v) of box b; with probability
    ``prob`` (per image pair) each matched pair swaps a fraction drawn from ``swap_ratio`` of its
    cells, each resized onto its partner. Boxes, labels and flags never change; nothing outside
    the swapped cells changes.
    """
    pairs = match_instances(labels_a, ignore_a, labels_b, ignore_b, max_pairs, rng)
    if not pairs or rng.random() >= prob:
        return InstanceSwap(False, pairs)
    cells_a, cells_b, owners = [], [], []
    for i, j in pairs:
        grid_a = box_cells(boxes_a[i], box_grid, img_a.shape[:2], min_cell_size)
        grid_b = box_cells(boxes_b[j], box_grid, img_b.shape[:2], min_cell_size)
        if grid_a is None or grid_b is None:
            continue
        chosen = rng.choice(len(grid_a), num_to_swap(rng, swap_ratio, len(grid_a)), replace=False)
        for k in np.sort(chosen):
            cells_a.append(grid_a[k])
            cells_b.append(grid_b[k])
            owners.append((i, j))
    if not cells_a:
        return InstanceSwap(False, pairs)
    swap_regions([img_a], [img_b], cells_a, cells_b, nearest=[False])
    if masks_a is not None and masks_b is not None:
        paste_masks(masks_a, masks_b, cells_a, cells_b, owners)
    return InstanceSwap(True, pairs, cells_a, cells_b, owners)
