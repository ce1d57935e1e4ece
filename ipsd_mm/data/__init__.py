"""The data side: the swap transform, the class index, intra-class pairs and their collate
function."""
from .class_index import detection_class_index, segmentation_class_index
from .collate import pair_collate
from .pair_dataset import DetIntraClassPairDataset, SegIntraClassPairDataset
from .transforms import DetIntraClassPatchSwap, SegIntraClassPatchSwap

__all__ = [
    'DetIntraClassPairDataset', 'DetIntraClassPatchSwap', 'SegIntraClassPairDataset',
    'SegIntraClassPatchSwap', 'detection_class_index', 'pair_collate', 'segmentation_class_index'
]
