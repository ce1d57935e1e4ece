"""``IntraClassPairDataset`` for MMDetection (registered in mmdet's ``DATASETS``): pairs images
that share a class among their non-ignored instances."""
import numpy as np
from mmdet.registry import DATASETS, TRANSFORMS

from ..pair_meta import ANCHOR, INSTANCE_PAIRS
from .class_index import ClassIndex, detection_class_index
from .pair_dataset import IntraClassPairDatasetBase


@DATASETS.register_module(name='IntraClassPairDataset')
class DetIntraClassPairDataset(IntraClassPairDatasetBase):
    __doc__ = IntraClassPairDatasetBase.__doc__
    _datasets, _transforms = DATASETS, TRANSFORMS
    _pack_name, _record_key, _meta_key = 'PackDetInputs', 'instance_pairs', INSTANCE_PAIRS

    def _build_class_index(self) -> ClassIndex:
        return detection_class_index(self.dataset)

    def _kept_through_pipeline(self, swapped: dict) -> int:
        """The instance pairs index the non-ignored boxes as the swap saw them: a pair pipeline
        that drops boxes (FilterAnnotations, RandomCrop…) would point them at other boxes."""
        ignore = np.asarray(swapped.get('gt_ignore_flags', np.zeros(0, bool)), dtype=bool)
        return len(swapped['gt_bboxes']) - int(ignore.sum())

    def _check_packed(self, role: int, before: int, packed: dict) -> None:
        after = len(packed['data_samples'].gt_instances)
        if after != before:
            member = 'anchor' if role == ANCHOR else 'partner'
            raise ValueError(
                f"IntraClassPairDataset: the pair 'pipeline' changed the {member}'s boxes "
                f'after the swap ({before} -> {after}), so its instance pairs would name other '
                'boxes: put transforms that drop or crop boxes (FilterAnnotations, RandomCrop, '
                "...) in the inner dataset's pipeline, before the swap")
