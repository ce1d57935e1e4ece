"""``IntraClassPatchSwap`` for MMSegmentation and MMDetection: results dicts <-> ``swap/``.

One name, two registrations: mmseg's transform swaps mask-aware grid cells, mmdet's swaps cells
inside matched boxes. Both follow the OpenMMLab multi-image protocol (the partner arrives in
``results['mix_results']``), so they serve :class:`IntraClassPairDataset` and each library's
``MultiImageMixDataset`` alike.
"""
from dataclasses import asdict
from typing import Sequence, Tuple, Union

import numpy as np
from mmcv.transforms import BaseTransform
from mmdet.registry import TRANSFORMS as DET_TRANSFORMS
from mmdet.structures.bbox import HorizontalBoxes
from mmdet.structures.mask import BitmapMasks, PolygonMasks
from mmseg.registry import TRANSFORMS as SEG_TRANSFORMS

from ..pair_meta import SWAP_RECORD
from ..swap import InstanceSwapOptions, SemanticSwapOptions, swap_instances, swap_semantic
from .rng import ProcessRNG


def take_partner(results: dict, keys: Sequence[str], optional: Sequence[str] = ()) -> dict:
    """The partner's results from ``mix_results``, checked to hold ``keys``, and to hold each
    of the ``optional`` keys exactly when the anchor does."""
    mix = results.get('mix_results')
    if not isinstance(mix, (list, tuple)) or len(mix) != 1 or not isinstance(mix[0], dict):
        raise KeyError(
            "IntraClassPatchSwap needs results['mix_results'] = [partner_results]: wrap the "
            "dataset in IntraClassPairDataset (or a MultiImageMixDataset), which supplies it; "
            f"got {type(mix).__name__ if mix is not None else 'no mix_results'}")
    partner = mix[0]
    for key in keys:
        if key not in results:
            raise KeyError(f"IntraClassPatchSwap needs results['{key}'] on the anchor: load it "
                           'in the dataset pipeline before the swap')
        if key not in partner:
            raise KeyError(f"the partner in mix_results has no '{key}' but the anchor has: "
                           'both members must come from the same loading pipeline')
    for key in optional:
        if (key in results) != (key in partner):
            has, lacks = ('anchor', 'partner') if key in results else ('partner', 'anchor')
            raise KeyError(f"the {has} holds '{key}' but the {lacks} does not: both members "
                           'must hold the same annotations (the same loading pipeline, and '
                           f"'{key}' for every image of the dataset)")
    img_a, img_b = results['img'], partner['img']
    if img_a.shape[2:] != img_b.shape[2:] or img_a.dtype != img_b.dtype:
        raise ValueError(f"the anchor's and the partner's 'img' differ in channels or dtype "
                         f'({img_a.shape}, {img_a.dtype} vs {img_b.shape}, {img_b.dtype}): load '
                         'both with the same color_type')
    return partner


def writeable(results: dict, key: str) -> np.ndarray:
    """``results[key]`` as an array the swap may change in place."""
    if not results[key].flags.writeable:
        results[key] = results[key].copy()
    return results[key]


class _PatchSwapBase(BaseTransform):
    """What both registrations share: options, randomness and partner sampling."""

    def __init__(self, options) -> None:
        self.options = options  # frozen and checked: the swap's only settings
        self.rng = ProcessRNG()

    @property
    def exclude_classes(self) -> Tuple[int, ...]:
        """Classes that never pair, swap or distil (read by ``IntraClassPairDataset`` too)."""
        return self.options.exclude_classes

    def _random_partner(self, dataset) -> int:
        return int(self.rng().integers(len(dataset)))

    def __repr__(self) -> str:
        args = ', '.join(f'{k}={v!r}' for k, v in asdict(self.options).items())
        return f'{self.__class__.__name__}({args})'


@SEG_TRANSFORMS.register_module(name='IntraClassPatchSwap')
class SegIntraClassPatchSwap(_PatchSwapBase):
    """Swap same-class grid cells between two segmentation samples (mask-aware).

    Both images are cut into ``patch_size`` cells at the same positions (a partner of another
    size is cut into the same cells scaled to its size, each cell resized onto its partner:
    bilinear for pixels, nearest for maps). A cell is eligible when one class both images hold
    covers at least ``min_class_fraction`` of its valid pixels in both. With probability
    ``prob``, a fraction drawn from ``swap_ratio`` of the eligible cells is swapped; the pixels
    and every map in ``seg_fields`` move together. Both members are changed in place.

    Required Keys:

    - img
    - gt_seg_map
    - seg_fields
    - mix_results (a list holding the partner's results, with the same keys)

    Modified Keys:

    - img (anchor and partner)
    - every map in seg_fields (anchor and partner)

    Added Keys:

    - ipsd (anchor and partner): ``swapped`` (bool), ``classes`` (the classes both label maps
      hold after the swap, ignore and ``exclude_classes`` left out), ``num_cells`` (cells this
      member received) and ``cells`` (those cells as (y0, y1, x0, x1))

    Args:
        patch_size (int | tuple[int, int]): cell size in pixels, (h, w). Defaults to 64.
        swap_ratio (float | tuple[float, float]): fraction of the eligible cells to swap, or a
            (low, high) range drawn uniformly per pair. Defaults to (0.25, 0.5).
        prob (float): probability that a pair is swapped at all. Defaults to 1.0.
        min_class_fraction (float): the share of a cell's valid pixels that its class must
            cover, in both images, for the cell to be swapped. Defaults to 0.5.
        ignore_index (int): the label of pixels that count for nothing. Defaults to 255.
        exclude_classes (list[int]): classes that never pair, swap or distil, e.g. ``[0]`` for
            the background of VOC or DigitScenes. Defaults to none.
        one_way (bool): only the anchor receives cells; the partner stays clean (a reliable
            teacher). Defaults to False (both members swap).
    """

    def __init__(self, patch_size: Union[int, Tuple[int, int]] = 64,
                 swap_ratio: Union[float, Tuple[float, float]] = (0.25, 0.5), prob: float = 1.0,
                 min_class_fraction: float = 0.5, ignore_index: int = 255,
                 exclude_classes: Sequence[int] = (), one_way: bool = False) -> None:
        super().__init__(SemanticSwapOptions(patch_size, swap_ratio, prob, min_class_fraction,
                                             ignore_index, exclude_classes, one_way))

    def get_indices(self, dataset) -> int:
        """A random partner, for mmseg's ``MultiImageMixDataset``."""
        return self._random_partner(dataset)

    def transform(self, results: dict) -> dict:
        fields = ['gt_seg_map'] + [k for k in results.get('seg_fields', []) if k != 'gt_seg_map']
        partner = take_partner(results, ['img', *fields])
        maps_a = [writeable(results, k) for k in fields]
        maps_b = [writeable(partner, k) for k in fields]
        for key, a, b in zip(fields, maps_a, maps_b):
            if a.shape[:2] != results['img'].shape[:2] or b.shape[:2] != partner['img'].shape[:2]:
                raise ValueError(f"'{key}' must have the size of 'img' on both members")
        swap = swap_semantic(writeable(results, 'img'), writeable(partner, 'img'), maps_a,
                             maps_b, self.rng(), self.options)
        received_b = [] if self.options.one_way else swap.cells_b
        for member, cells in ((results, swap.cells_a), (partner, received_b)):
            member[SWAP_RECORD] = dict(swapped=swap.swapped, classes=list(swap.classes),
                                       num_cells=len(cells), cells=list(cells))
        return results


def boxes_array(boxes) -> np.ndarray:
    """(N, 4) x1y1x2y2 numpy boxes from ``HorizontalBoxes`` or an array."""
    if isinstance(boxes, HorizontalBoxes):
        return boxes.numpy()
    boxes = np.asarray(boxes, dtype=np.float32)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"'gt_bboxes' must be HorizontalBoxes or an (N, 4) array, got shape "
                         f'{boxes.shape}')
    return boxes


def bitmap_masks(member: dict, name: str, num_boxes: int) -> np.ndarray:
    """``member['gt_masks']`` as ``BitmapMasks`` (polygons rasterised), checked to hold one
    mask per box at the image's size, returning the (N, H, W) array the swap may change in
    place."""
    masks = member['gt_masks']
    if not isinstance(masks, (BitmapMasks, PolygonMasks)):
        raise TypeError(f"'gt_masks' must be BitmapMasks or PolygonMasks, got "
                        f'{type(masks).__name__}')
    height, width = member['img'].shape[:2]
    if len(masks) != num_boxes:
        raise ValueError(f"the {name} holds {len(masks)} gt_masks for {num_boxes} gt_bboxes: "
                         'each instance needs exactly one mask')
    if (masks.height, masks.width) != (height, width):
        raise ValueError(f"the {name}'s gt_masks are {masks.height}x{masks.width} but its "
                         f"'img' is {height}x{width}: masks must have the image's size (load "
                         'them before any resize, or resize them with the image)')
    if isinstance(masks, PolygonMasks):
        masks = member['gt_masks'] = BitmapMasks(masks.to_ndarray(), masks.height, masks.width)
    elif masks.masks.shape[1:] != (height, width):
        raise ValueError(f"the {name}'s gt_masks array is {masks.masks.shape[1:]} but declares "
                         f'{masks.height}x{masks.width}; the image is {height}x{width}')
    if not masks.masks.flags.writeable:
        masks.masks = masks.masks.copy()
    return masks.masks


def non_ignored_rank(ignore: np.ndarray) -> np.ndarray:
    """Position of each instance among the non-ignored ones: its index in ``gt_instances``
    after ``PackDetInputs`` moves ignored instances out."""
    return np.cumsum(~ignore) - 1


@DET_TRANSFORMS.register_module(name='IntraClassPatchSwap')
class DetIntraClassPatchSwap(_PatchSwapBase):
    """Swap cells between matched same-class boxes of two detection samples (box-aware).

    Non-ignored instances of the same class are matched one-to-one at random (at most
    ``max_pairs``). Each matched box is cut into a ``box_grid`` of cells relative to the box;
    with probability ``prob`` per image pair, every matched pair swaps a fraction drawn from
    ``swap_ratio`` of its cells, each resized onto its partner cell. Boxes, labels and ignore
    flags do not change; instance masks follow the pixels (polygons are rasterised first, the
    output is ``BitmapMasks``). Both members are changed in place.

    Required Keys:

    - img
    - gt_bboxes (HorizontalBoxes)
    - gt_bboxes_labels
    - gt_ignore_flags (optional; crowd and ignored instances never take part)
    - gt_masks (optional; BitmapMasks or PolygonMasks)
    - mix_results (a list holding the partner's results, with the same keys)

    Modified Keys:

    - img (anchor and partner)
    - gt_masks (anchor and partner, when present: BitmapMasks, changed in place)

    Added Keys:

    - ipsd (anchor and partner): ``swapped`` (bool), ``instance_pairs`` ([(i, j)]: i indexes
      the anchor's and j the partner's non-ignored instances, in the order ``PackDetInputs``
      puts them in ``gt_instances``; the same list on both members), ``num_cells`` and
      ``cells`` (the cells this member received, as (y0, y1, x0, x1))

    Args:
        box_grid (int | tuple[int, int]): cells per box, (rows, cols); 1 exchanges the matched
            instances whole (resized). Defaults to 4.
        swap_ratio (float | tuple[float, float]): fraction of a matched box's cells to swap, or
            a (low, high) range drawn uniformly per box pair. Defaults to (0.25, 0.5).
        prob (float): probability that an image pair is swapped at all. Defaults to 1.0.
        min_cell_size (int): boxes whose cells would be smaller than this many pixels on a side
            are not swapped (they stay matched). Defaults to 4.
        max_pairs (int): at most this many instance matches per image pair. Defaults to 16.
        exclude_classes (list[int]): classes that never pair, swap or distil. Defaults to none.
        one_way (bool): only the anchor receives cells; the partner stays clean (a reliable
            teacher). Defaults to False (both members swap).
    """

    def __init__(self, box_grid: Union[int, Tuple[int, int]] = 4,
                 swap_ratio: Union[float, Tuple[float, float]] = (0.25, 0.5), prob: float = 1.0,
                 min_cell_size: int = 4, max_pairs: int = 16, exclude_classes: Sequence[int] = (),
                 one_way: bool = False) -> None:
        super().__init__(InstanceSwapOptions(box_grid, swap_ratio, prob, min_cell_size,
                                             max_pairs, exclude_classes, one_way))

    def get_indexes(self, dataset) -> int:
        """A random partner, for mmdet's ``MultiImageMixDataset``."""
        return self._random_partner(dataset)

    def transform(self, results: dict) -> dict:
        if 'gt_seg_map' in results:
            raise KeyError("the mmdet IntraClassPatchSwap does not move 'gt_seg_map'; load "
                           'without with_seg, or use the mmseg transform for semantic maps')
        partner = take_partner(results, ['img', 'gt_bboxes', 'gt_bboxes_labels'],
                               optional=['gt_masks', 'gt_ignore_flags'])
        members = (results, partner)
        boxes = [boxes_array(m['gt_bboxes']) for m in members]
        labels = [np.asarray(m['gt_bboxes_labels']) for m in members]
        ignore = [np.asarray(m.get('gt_ignore_flags', np.zeros(len(b), bool)), dtype=bool)
                  for m, b in zip(members, boxes)]
        for m, b, lab, ign in zip(('anchor', 'partner'), boxes, labels, ignore):
            if not len(b) == len(lab) == len(ign):
                raise ValueError(f"the {m}'s gt_bboxes, gt_bboxes_labels and gt_ignore_flags "
                                 f'differ in length ({len(b)}, {len(lab)}, {len(ign)})')
        for m, b in zip(('anchor', 'partner'), boxes):
            if not np.isfinite(b).all():
                raise ValueError(f"the {m}'s gt_bboxes hold non-finite values (NaN or inf): "
                                 'fix or filter these annotations')
        masks = [None, None]
        if 'gt_masks' in results:
            masks = [bitmap_masks(m, name, len(b))
                     for m, name, b in zip(members, ('anchor', 'partner'), boxes)]
        swap = swap_instances(writeable(results, 'img'), writeable(partner, 'img'), *boxes,
                              *labels, *ignore, *masks, self.rng(), self.options)
        rank_a, rank_b = non_ignored_rank(ignore[0]), non_ignored_rank(ignore[1])
        pairs = [(int(rank_a[i]), int(rank_b[j])) for i, j in swap.instance_pairs]
        received_b = [] if self.options.one_way else swap.cells_b
        for member, cells in zip(members, (swap.cells_a, received_b)):
            member[SWAP_RECORD] = dict(swapped=swap.swapped, instance_pairs=list(pairs),
                                       num_cells=len(cells), cells=list(cells))
        return results
