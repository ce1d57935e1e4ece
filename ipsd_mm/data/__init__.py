"""The data side: class index, intra-class pairs and their collate function."""
from .class_index import detection_class_index, segmentation_class_index
from .collate import pair_collate
from .pair_dataset import DetIntraClassPairDataset, SegIntraClassPairDataset

__all__ = [
    'DetIntraClassPairDataset', 'SegIntraClassPairDataset', 'detection_class_index',
    'pair_collate', 'segmentation_class_index'
]
