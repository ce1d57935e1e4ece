"""``IntraClassPairDataset`` for MMSegmentation (registered in mmseg's ``DATASETS``): pairs
images that share a class of their label maps."""
from mmseg.registry import DATASETS, TRANSFORMS

from ..pair_meta import CLASSES
from .class_index import ClassIndex, segmentation_class_index
from .pair_dataset import IntraClassPairDatasetBase


@DATASETS.register_module(name='IntraClassPairDataset')
class SegIntraClassPairDataset(IntraClassPairDatasetBase):
    __doc__ = IntraClassPairDatasetBase.__doc__
    _datasets, _transforms = DATASETS, TRANSFORMS
    _pack_name, _record_key, _meta_key = 'PackSegInputs', 'classes', CLASSES

    def _build_class_index(self) -> ClassIndex:
        return segmentation_class_index(self.dataset, self.class_index_cache)
