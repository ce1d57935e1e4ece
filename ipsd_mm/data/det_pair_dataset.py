"""``IntraClassPairDataset`` for MMDetection (registered in mmdet's ``DATASETS``): pairs images
that share a class among their non-ignored instances."""
from mmdet.registry import DATASETS, TRANSFORMS

from ..pair_meta import INSTANCE_PAIRS
from .class_index import ClassIndex, detection_class_index
from .pair_dataset import IntraClassPairDatasetBase


@DATASETS.register_module(name='IntraClassPairDataset')
class DetIntraClassPairDataset(IntraClassPairDatasetBase):
    __doc__ = IntraClassPairDatasetBase.__doc__
    _datasets, _transforms = DATASETS, TRANSFORMS
    _pack_name, _record_key, _meta_key = 'PackDetInputs', 'instance_pairs', INSTANCE_PAIRS

    def _build_class_index(self) -> ClassIndex:
        return detection_class_index(self.dataset)
