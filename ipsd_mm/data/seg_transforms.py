"""``IntraClassPatchSwap`` for MMSegmentation (registered in mmseg's ``TRANSFORMS``): swaps
mask-aware grid cells (``swap/semantic.py``) between two samples' results dicts."""
import logging

from mmengine.logging import print_log
from mmseg.registry import TRANSFORMS

from ..pair_meta import SWAP_RECORD
from ..swap import SemanticSwapOptions, swap_semantic
from .patch_swap import PatchSwapBase, take_partner, writeable


@TRANSFORMS.register_module(name='IntraClassPatchSwap')
class SegIntraClassPatchSwap(PatchSwapBase):
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

    Args (keywords; their defaults and checks live once, in :class:`SemanticSwapOptions`):
        patch_size (int | tuple[int, int]): cell size in pixels, (h, w).
        swap_ratio (float | tuple[float, float]): fraction of the eligible cells to swap, or a
            (low, high) range drawn uniformly per pair.
        prob (float): probability that a pair is swapped at all.
        min_class_fraction (float): the share of a cell's valid pixels that its class must
            cover, in both images, for the cell to be swapped.
        ignore_index (int): the label of pixels that count for nothing.
        exclude_classes (list[int]): classes that never pair, swap or distil, e.g. ``[0]`` for
            the background of VOC or DigitScenes.
        one_way (bool): only the anchor receives cells; the partner stays clean (a reliable
            teacher).
    """

    options_type = SemanticSwapOptions

    def get_indices(self, dataset) -> int:
        """A random partner, for mmseg's ``MultiImageMixDataset``."""
        return self._random_partner(dataset)

    def transform(self, results: dict) -> dict:
        fields = ['gt_seg_map'] + [k for k in results.get('seg_fields', []) if k != 'gt_seg_map']
        partner = take_partner(results, ['img', *fields])
        self._warn_if_one_cell(results['img'].shape[:2])
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

    def _warn_if_one_cell(self, size) -> None:
        """Cells at least the image's size make the whole image one cell: a swap then exchanges
        whole images, not the ``swap_ratio`` share. Said once per transform."""
        (ph, pw), (h, w) = self.options.patch_size, size
        if ph >= h and pw >= w and not getattr(self, '_warned_one_cell', False):
            print_log(f'IntraClassPatchSwap: patch_size {ph}x{pw} is at least the image size '
                      f'{h}x{w}, so each image is one cell and a swap exchanges whole images; '
                      'set patch_size below the crop size for a patch swap', logger='current',
                      level=logging.WARNING)
            self._warned_one_cell = True
