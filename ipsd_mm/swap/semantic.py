"""Mask-aware patch swap for semantic segmentation (``docs/method.md``, "Segmentation")."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Sequence, Tuple

import numpy as np

from ..validate import (to_bool, to_classes, to_int, to_number, to_pair, to_probability,
                        to_range)
from .grid import Cell, grid_cells, num_to_swap, swap_regions

#: label maps hold class ids below this (or the ignore index): larger values are corrupt data,
#: and counting them would need memory in proportion to the value.
MAX_LABEL = 65535


@dataclass(frozen=True)
class SemanticSwapOptions:
    """The options of the mask-aware swap, checked and normalised once.

    Args:
        patch_size: cell size in pixels, (h, w); an int means both.
        swap_ratio: fraction of the eligible cells to swap, or a (low, high) range drawn per pair.
        prob: probability that a pair is swapped at all.
        min_class_fraction: the share of a cell's valid pixels its class must cover, in both
            images, for the cell to be swapped.
        ignore_index: the label of pixels that count for nothing.
        exclude_classes: classes that never pair, swap or distil (e.g. background).
        one_way: the anchor (A) receives the partner's cells; the partner (B) stays clean.
    """
    patch_size: Tuple[int, int] = (64, 64)
    swap_ratio: Tuple[float, float] = (0.25, 0.5)
    prob: float = 1.0
    min_class_fraction: float = 0.5
    ignore_index: int = 255
    exclude_classes: Tuple[int, ...] = ()
    one_way: bool = False

    def __post_init__(self) -> None:
        norm = dict(patch_size=to_pair(self.patch_size, 'patch_size'),
                    swap_ratio=to_range(self.swap_ratio, 'swap_ratio'),
                    prob=to_probability(self.prob, 'prob'),
                    ignore_index=to_int(self.ignore_index, 'ignore_index', 0),
                    exclude_classes=to_classes(self.exclude_classes, 'exclude_classes'),
                    one_way=to_bool(self.one_way, 'one_way'),
                    min_class_fraction=to_number(self.min_class_fraction, 'min_class_fraction',
                                                 0.0, 1.0, low_open=True))
        for key, value in norm.items():
            object.__setattr__(self, key, value)


@dataclass
class SemanticSwap:
    """What a semantic swap did: the cells exchanged (cell k of A with cell k of B; in a one-way
    swap B's cell was only read), the class each cell was chosen for, and the classes both
    label maps hold afterwards."""
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


def class_bins(label_a: np.ndarray, label_b: np.ndarray, ignore_index: int) -> int:
    """How many class ids the two maps need counted: one past the largest label that is not
    the ignore index (so the cost never depends on the ignore value, e.g. 65535)."""
    return 1 + max(int(np.where(label == ignore_index, 0, label).max(initial=0))
                   for label in (label_a, label_b))


def cell_class_counts(label: np.ndarray, y_edges: np.ndarray, x_edges: np.ndarray,
                      num_labels: int, ignore_index: int) -> np.ndarray:
    """Pixels of each class id below ``num_labels`` in each cell, shape (num_cells,
    num_labels); ignore pixels are not counted. One pass over the map: a bincount of
    cell id * (num_labels + 1) + label, the ignore pixels in the extra bin."""
    bins = num_labels + 1
    label = np.where(label == ignore_index, num_labels, label)
    rows = np.repeat(np.arange(len(y_edges) - 1), np.diff(y_edges))
    cols = np.repeat(np.arange(len(x_edges) - 1), np.diff(x_edges))
    num_cells = (len(y_edges) - 1) * (len(x_edges) - 1)
    keys = (rows * ((len(x_edges) - 1) * bins))[:, None] + (cols * bins)[None, :]
    keys = keys + label
    counts = np.bincount(keys.ravel(), minlength=num_cells * bins)
    return counts.reshape(num_cells, bins)[:, :num_labels]


def shared_classes(label_a: np.ndarray, label_b: np.ndarray,
                   left_out: Sequence[int]) -> np.ndarray:
    """The classes both maps hold, those in ``left_out`` (ignore, excluded) left out."""
    return np.intersect1d(present_classes(label_a, left_out), present_classes(label_b, left_out))


def held_in_both(counts_a: np.ndarray, counts_b: np.ndarray,
                 exclude_classes: Sequence[int]) -> np.ndarray:
    """The classes both per-cell count tables hold, excluded ones left out."""
    held = (counts_a.sum(0) > 0) & (counts_b.sum(0) > 0)
    held[[c for c in exclude_classes if c < len(held)]] = False
    return np.flatnonzero(held)


def present_classes(label: np.ndarray, ignore: Sequence[int] = ()) -> np.ndarray:
    """The labels a map holds, those in ``ignore`` left out, sorted."""
    counts = np.bincount(label.ravel().astype(np.int64))
    for c in ignore:
        counts[c:c + 1] = 0
    return np.flatnonzero(counts)


def check_label(label: np.ndarray, name: str, ignore_index: int) -> None:
    if label.ndim != 2 or not np.issubdtype(label.dtype, np.integer):
        raise ValueError(f'{name} must be a 2-D integer label map, got shape {label.shape} '
                         f'and dtype {label.dtype}')
    if label.size and label.min() < 0:
        raise ValueError(f'{name} holds negative labels; mark unlabelled pixels with '
                         f'ignore_index instead')
    if label.size and label.max() > max(MAX_LABEL, ignore_index):
        raise ValueError(f'{name} holds the label {label.max()}, above any class id (at most '
                         f'{MAX_LABEL}) and the ignore_index ({ignore_index}): the label file '
                         'is corrupt or was read with the wrong dtype')


def swap_semantic(img_a: np.ndarray, img_b: np.ndarray,
                  maps_a: Sequence[np.ndarray], maps_b: Sequence[np.ndarray],
                  rng: np.random.Generator, options: SemanticSwapOptions) -> SemanticSwap:
    """Swap same-class cells between image A and image B, in place.

    ``maps_a[0]`` / ``maps_b[0]`` are the label maps that decide eligibility; every map in
    ``maps_a`` / ``maps_b`` (label maps, other per-pixel fields) moves with the pixels, resized
    nearest, while pixels are resized bilinear. Cell k is eligible for a class c held by both
    images (not excluded) when c covers at least ``min_class_fraction`` of the valid pixels of
    cell k in both. With probability ``prob`` a fraction drawn from ``swap_ratio`` of the
    eligible cells is swapped (``one_way``: only A receives). Nothing outside the swapped cells
    changes. The classes reported are those both maps hold afterwards, excluded ones left out.
    """
    opt = options
    label_a, label_b = maps_a[0], maps_b[0]
    check_label(label_a, 'label map of A', opt.ignore_index)
    check_label(label_b, 'label map of B', opt.ignore_index)
    left_out = (opt.ignore_index, *opt.exclude_classes)
    if not rng.random() < opt.prob:  # still report the shared classes: they are distilled
        return SemanticSwap(False, shared_classes(label_a, label_b, left_out).tolist())

    (ya, xa), (yb, xb) = image_grids(label_a.shape, label_b.shape, opt.patch_size)
    num_labels = class_bins(label_a, label_b, opt.ignore_index)
    counts_a = cell_class_counts(label_a, ya, xa, num_labels, opt.ignore_index)
    counts_b = cell_class_counts(label_b, yb, xb, num_labels, opt.ignore_index)
    shared = held_in_both(counts_a, counts_b, opt.exclude_classes)
    if shared.size == 0:
        return SemanticSwap(False, [])
    # A cell's class is the shared class best covered, in both images, among its valid pixels
    # (any class counts as valid); the cell is eligible if that cover reaches the threshold.
    both = np.minimum(counts_a[:, shared] / np.maximum(counts_a.sum(1, keepdims=True), 1),
                      counts_b[:, shared] / np.maximum(counts_b.sum(1, keepdims=True), 1))
    best = both.argmax(1)
    eligible = np.flatnonzero(both[np.arange(len(both)), best] >= opt.min_class_fraction)

    num = num_to_swap(rng, opt.swap_ratio, len(eligible))
    if num == 0:
        return SemanticSwap(False, shared.tolist())
    chosen = np.sort(rng.choice(eligible, num, replace=False))
    all_a, all_b = grid_cells(ya, xa), grid_cells(yb, xb)
    cells_a, cells_b = [all_a[k] for k in chosen], [all_b[k] for k in chosen]
    swap_regions([img_a, *maps_a], [img_b, *maps_b], cells_a, cells_b,
                 nearest=[False] + [True] * len(maps_a), one_way=opt.one_way)
    if label_a.shape == label_b.shape:  # cells moved whole: update the counts, no new pass
        moved_a = counts_a[chosen].copy()
        counts_a[chosen] = counts_b[chosen]
        if not opt.one_way:
            counts_b[chosen] = moved_a
        classes = held_in_both(counts_a, counts_b, opt.exclude_classes)
    else:  # resized cells: count again
        classes = shared_classes(label_a, label_b, left_out)
    return SemanticSwap(True, classes.tolist(), cells_a, cells_b,
                        [int(shared[best[k]]) for k in chosen])
