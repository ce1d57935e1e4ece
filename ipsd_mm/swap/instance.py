"""Box-aware patch swap for object detection and instance segmentation (``docs/method.md``,
"Detection")."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Tuple

import numpy as np

from ..validate import to_bool, to_classes, to_int, to_pair, to_probability, to_range
from .grid import Cell, edges, grid_cells, num_to_swap, resize_nearest, swap_regions


@dataclass(frozen=True)
class InstanceSwapOptions:
    """The options of the box-aware swap, checked and normalised once.

    Args:
        box_grid: cells per box, (rows, cols); 1 swaps whole instances.
        swap_ratio: fraction of a matched box's cells to swap, or a (low, high) range drawn per
            box pair.
        prob: probability that an image pair is swapped at all.
        min_cell_size: boxes whose cells would be smaller than this many pixels on a side are
            not swapped (they stay matched).
        max_pairs: at most this many instance matches per image pair.
        exclude_classes: classes that never pair, swap or distil.
        one_way: the anchor (A) receives the partner's cells; the partner (B) stays clean.
    """
    box_grid: Tuple[int, int] = (4, 4)
    swap_ratio: Tuple[float, float] = (0.25, 0.5)
    prob: float = 1.0
    min_cell_size: int = 4
    max_pairs: int = 16
    exclude_classes: Tuple[int, ...] = ()
    one_way: bool = False

    def __post_init__(self) -> None:
        norm = dict(box_grid=to_pair(self.box_grid, 'box_grid'),
                    swap_ratio=to_range(self.swap_ratio, 'swap_ratio'),
                    prob=to_probability(self.prob, 'prob'),
                    min_cell_size=to_int(self.min_cell_size, 'min_cell_size', 1),
                    max_pairs=to_int(self.max_pairs, 'max_pairs', 1),
                    exclude_classes=to_classes(self.exclude_classes, 'exclude_classes'),
                    one_way=to_bool(self.one_way, 'one_way'))
        for key, value in norm.items():
            object.__setattr__(self, key, value)


@dataclass
class InstanceSwap:
    """What a box-aware swap did: the matched instances (indices into A's and B's instance
    arrays), and the cells exchanged (in a one-way swap B's cells were only read) with the
    instance pair each belongs to."""
    swapped: bool
    instance_pairs: List[Tuple[int, int]]
    cells_a: List[Cell] = field(default_factory=list)
    cells_b: List[Cell] = field(default_factory=list)
    cell_owners: List[Tuple[int, int]] = field(default_factory=list)


def match_instances(labels_a: np.ndarray, ignore_a: np.ndarray, labels_b: np.ndarray,
                    ignore_b: np.ndarray, max_pairs: int, rng: np.random.Generator,
                    exclude_classes: Tuple[int, ...] = ()) -> List[Tuple[int, int]]:
    """Match non-ignored instances of the same class (not excluded) one-to-one at random, at
    most ``max_pairs`` matches, sorted by A's index."""
    pairs = []
    shared = np.intersect1d(labels_a[~ignore_a], labels_b[~ignore_b])
    for c in np.setdiff1d(shared, np.asarray(exclude_classes, dtype=shared.dtype)):
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
                cells_b: List[Cell], owners: List[Tuple[int, int]], one_way: bool) -> None:
    """Masks follow the pixels: inside a swapped cell the matched instance takes its partner's
    mask content and every other instance is cleared (the pasted content covers it);
    ``one_way``: only A's masks change."""
    patches = [(masks_a[i, ay0:ay1, ax0:ax1].copy(), masks_b[j, by0:by1, bx0:bx1].copy())
               for (ay0, ay1, ax0, ax1), (by0, by1, bx0, bx1), (i, j)
               in zip(cells_a, cells_b, owners)]
    for (ay0, ay1, ax0, ax1), (by0, by1, bx0, bx1), (i, j), (patch_a, patch_b) \
            in zip(cells_a, cells_b, owners, patches):
        masks_a[:, ay0:ay1, ax0:ax1] = 0
        masks_a[i, ay0:ay1, ax0:ax1] = resize_nearest(patch_b, ay1 - ay0, ax1 - ax0)
        if one_way:
            continue
        masks_b[:, by0:by1, bx0:bx1] = 0
        masks_b[j, by0:by1, bx0:bx1] = resize_nearest(patch_a, by1 - by0, bx1 - bx0)


def swap_instances(img_a: np.ndarray, img_b: np.ndarray,
                   boxes_a: np.ndarray, boxes_b: np.ndarray,
                   labels_a: np.ndarray, labels_b: np.ndarray,
                   ignore_a: np.ndarray, ignore_b: np.ndarray,
                   masks_a: Optional[np.ndarray], masks_b: Optional[np.ndarray],
                   rng: np.random.Generator, options: InstanceSwapOptions) -> InstanceSwap:
    """Swap cells between matched same-class boxes of image A and image B, in place.

    Boxes are (N, 4) x1y1x2y2 pixels; masks, when given, (N, H, W) arrays that follow the
    pixels. Each matched box is cut into a ``box_grid`` of cells relative to the box, so cell
    (u, v) of box a is the same part of the object as cell (u, v) of box b; with probability
    ``prob`` (per image pair) each matched pair swaps a fraction drawn from ``swap_ratio`` of its
    cells, each resized onto its partner (``one_way``: only A receives). Boxes, labels and flags
    never change; nothing outside the swapped cells changes.
    """
    opt = options
    pairs = match_instances(labels_a, ignore_a, labels_b, ignore_b, opt.max_pairs, rng,
                            opt.exclude_classes)
    if not pairs or rng.random() >= opt.prob:
        return InstanceSwap(False, pairs)
    cells_a, cells_b, owners = [], [], []
    for i, j in pairs:
        grid_a = box_cells(boxes_a[i], opt.box_grid, img_a.shape[:2], opt.min_cell_size)
        grid_b = box_cells(boxes_b[j], opt.box_grid, img_b.shape[:2], opt.min_cell_size)
        if grid_a is None or grid_b is None:
            continue
        chosen = rng.choice(len(grid_a), num_to_swap(rng, opt.swap_ratio, len(grid_a)),
                            replace=False)
        for k in np.sort(chosen):
            cells_a.append(grid_a[k])
            cells_b.append(grid_b[k])
            owners.append((i, j))
    if not cells_a:
        return InstanceSwap(False, pairs)
    swap_regions([img_a], [img_b], cells_a, cells_b, nearest=[False], one_way=opt.one_way)
    if masks_a is not None and masks_b is not None:
        paste_masks(masks_a, masks_b, cells_a, cells_b, owners, opt.one_way)
    return InstanceSwap(True, pairs, cells_a, cells_b, owners)
