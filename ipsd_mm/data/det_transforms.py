"""``IntraClassPatchSwap`` for MMDetection (registered in mmdet's ``TRANSFORMS``): swaps cells
inside matched same-class boxes (``swap/instance.py``) between two samples' results dicts."""
import numpy as np
from mmdet.registry import TRANSFORMS
from mmdet.structures.bbox import HorizontalBoxes
from mmdet.structures.mask import BitmapMasks, PolygonMasks

from ..pair_meta import SWAP_RECORD
from ..swap import InstanceSwapOptions, swap_instances
from .patch_swap import PatchSwapBase, take_partner, writeable


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


@TRANSFORMS.register_module(name='IntraClassPatchSwap')
class DetIntraClassPatchSwap(PatchSwapBase):
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

    Args (keywords; their defaults and checks live once, in :class:`InstanceSwapOptions`):
        box_grid (int | tuple[int, int]): cells per box, (rows, cols); 1 exchanges the matched
            instances whole (resized).
        swap_ratio (float | tuple[float, float]): fraction of a matched box's cells to swap, or
            a (low, high) range drawn uniformly per box pair.
        prob (float): probability that an image pair is swapped at all.
        min_cell_size (int): boxes whose cells would be smaller than this many pixels on a side
            are not swapped (they stay matched).
        max_pairs (int): at most this many instance matches per image pair.
        exclude_classes (list[int]): classes that never pair, swap or distil.
        one_way (bool): only the anchor receives cells; the partner stays clean (a reliable
            teacher).
    """

    options_type = InstanceSwapOptions

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
        for m, member, lab, ign in zip(('anchor', 'partner'), members, labels, ignore):
            if (lab[~ign] < 0).any():
                raise ValueError(f"IntraClassPatchSwap: the {m}'s gt_bboxes_labels hold the "
                                 f'negative label {int(lab[~ign].min())} '
                                 f"({member.get('img_path', 'no img_path')}): labels must be "
                                 'class ids 0..num_classes-1; fix or filter these annotations '
                                 '(mark an instance to leave out with gt_ignore_flags)')
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
