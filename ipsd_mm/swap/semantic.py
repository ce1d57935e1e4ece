"""Mask-aware patch swap for semantic segmentation (DESIGN.md §1.1)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Sequence, Tuple

import numpy as np

from .grid import Cell, grid_cells, num_to_swap, swap_regions


@dataclass
class SemanticSwap:
    """What a semantic swap did: the cells exchanged (cell k of A with cell k of B), the class
    each cell was chosen for, and the classes both label maps hold afterwards."""
    swapped: bool
    classes: List[int]
    cells_a: List[Cell] = field(default_factory=list)
    cells_b: List[Cell] = field(default_factory=list)
    cell_classes: List[int] = field(default_factory=list)


def image_grids(shape_a: Tuple[int, int], shape_b: Tuple[int, int],
                patch_size: Tuple[int, int]) -> Tuple[Tuple[np.ndarray, np.ndarray],
                                                      Tuple[np.ndarray, np.ndarray]]:
    """Cell edges of A (``patch_size`` cells, the last row/column partial) and of B (the same
    cells scaled to B's size, so cell k covers the same relative part of both images)."""
    (ha, wa), (hb, wb) = shape_a, shape_b
    (ph, pw) = patch_size
    ya = np.minimum(np.arange(-(-ha // ph) + 1) * ph, ha)
    xa = np.minimum(np.arange(-(-wa // pw) + 1) * pw, wa)
    yb = np.round(ya * hb / ha).astype(np.int64)
    xb = np.round(xa * wb / wa).astype(np.int64)
    return (ya, xa), (yb, xb)


def cell_class_counts(label: np.ndarray, y_edges: np.ndarray, x_edges: np.ndarray,
                      num_labels: int, ignore_index: int) -> np.ndarray:
    """Pixels of each label in each cell, shape (num_cells, num_labels); ignore pixels are not
    counted. One pass over the map: a bincount of cell id * num_labels + label."""
    rows = np.repeat(np.arange(len(y_edges) - 1), np.diff(y_edges))
    cols = np.repeat(np.arange(len(x_edges) - 1), np.diff(x_edges))
    num_cells = (len(y_edges) - 1) * (len(x_edges) - 1)
    keys = (rows * ((len(x_edges) - 1) * num_labels))[:, None] + (cols * num_labels)[None, :]
    keys += label
    counts = np.bincount(keys.ravel(), minlength=num_cells * num_labels)
    counts = counts.reshape(num_cells, num_labels)
    counts[:, ignore_index] = 0
    return counts


def present_classes(label: np.ndarray, ignore_index: int) -> np.ndarray:
    """The labels a map holds, ignore excluded, sorted."""
    counts = np.bincount(label.ravel().astype(np.int64))
    counts[ignore_index:ignore_index + 1] = 0
    return np.flatnonzero(counts)


def check_label(label: np.ndarray, name: str) -> None:
    if label.ndim != 2 or not np.issubdtype(label.dtype, np.integer):
        raise ValueError(f'{name} must be a 2-D integer label map, got shape {label.shape} '
                         f'and dtype {label.dtype}')
    if label.size and label.min() < 0:
        raise ValueError(f'{name} holds negative labels; mark unlabelled pixels with '
                         f'ignore_index instead')


def swap_semantic(img_a: np.ndarray, img_b: np.ndarray,
                  maps_a: Sequence[np.ndarray], maps_b: Sequence[np.ndarray],
                  rng: np.random.Generator, patch_size: Tuple[int, int],
                  swap_ratio: Tuple[float, float], prob: float, min_class_fraction: float,
                  ignore_index: int) -> SemanticSwap:
    """Swap same-class cells between image A and image B, in place.

    ``maps_a[0]`` / ``maps_b[0]`` are the label maps that decide eligibility; every map in
    ``maps_a`` / ``maps_b`` (label maps, other per-pixel fields) moves with the pixels, resized
    nearest, while pixels are resized bilinear. Cell k is eligible for a class c held by both
    images when c covers at least ``min_class_fraction`` of the valid pixels of cell k in both.
    With probability ``prob`` a fraction drawn from ``swap_ratio`` of the eligible cells is
    swapped. Nothing outside the swapped cells changes.
    """
    label_a, label_b = maps_a[0], maps_b[0]
    check_label(label_a, 'label map of A')
    check_label(label_b, 'label map of B')
    do_swap = rng.random() < prob
    if not do_swap:  # still report the shared classes: the pair is distilled all the same
        shared = np.intersect1d(present_classes(label_a, ignore_index),
                                present_classes(label_b, ignore_index))
        return SemanticSwap(False, shared.tolist())

    (ya, xa), (yb, xb) = image_grids(label_a.shape, label_b.shape, patch_size)
    num_labels = int(max(label_a.max(), label_b.max(), ignore_index)) + 1
    counts_a = cell_class_counts(label_a, ya, xa, num_labels, ignore_index)
    counts_b = cell_class_counts(label_b, yb, xb, num_labels, ignore_index)
    shared = np.flatnonzero((counts_a.sum(0) > 0) & (counts_b.sum(0) > 0))
    if shared.size == 0:
        return SemanticSwap(False, [])
    # A cell's class is the shared class best covered, in both images, among its valid pixels
    # (shared class or not); the cell is eligible if that cover reaches min_class_fraction.
    both = np.minimum(counts_a[:, shared] / np.maximum(counts_a.sum(1, keepdims=True), 1),
                      counts_b[:, shared] / np.maximum(counts_b.sum(1, keepdims=True), 1))
    best = both.argmax(1)
    eligible = np.flatnonzero(both[np.arange(len(both)), best] >= min_class_fraction)

    num = num_to_swap(rng, swap_ratio, len(eligible))
    if num == 0:
        return SemanticSwap(False, shared.tolist())
    chosen = np.sort(rng.choice(eligible, num, replace=False))
    all_a, all_b = grid_cells(ya, xa), grid_cells(yb, xb)
    cells_a, cells_b = [all_a[k] for k in chosen], [all_b[k] for k in chosen]
    swap_regions([img_a, *maps_a], [img_b, *maps_b], cells_a, cells_b,
                 nearest=[False] + [True] * len(maps_a))
    if label_a.shape == label_b.shape:  # cells moved whole: update the counts, no new pass
        counts_a[chosen], counts_b[chosen] = counts_b[chosen], counts_a[chosen].copy()
        classes = np.flatnonzero((counts_a.sum(0) > 0) & (counts_b.sum(0) > 0))
    else:  # resized cells: count again
        classes = np.intersect1d(present_classes(label_a, ignore_index),
                                 present_classes(label_b, ignore_index))
    return SemanticSwap(True, classes.tolist(), cells_a, cells_b,
                        [int(shared[best[k]]) for k in chosen])
