"""The data side: the swap transform, the class index, intra-class pairs and their collate
function. This package imports neither mmdet nor mmseg: the library-specific registrations are
its ``seg_*`` and ``det_*`` modules, imported by :mod:`ipsd_mm.seg` and :mod:`ipsd_mm.det`."""
from .class_index import detection_class_index, segmentation_class_index
from .collate import PackedPair, pair_collate

__all__ = ['PackedPair', 'detection_class_index', 'pair_collate', 'segmentation_class_index']
