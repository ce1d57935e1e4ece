"""The MMSegmentation side of ipsd_mm: ``custom_imports=dict(imports=['ipsd_mm.seg'])``.

Registers, without importing MMDetection (MMSegmentation itself is checked first:
without it, a clear error says what to install):

=======================  ===================  ==========================================
registered name          registry             class (module)
=======================  ===================  ==========================================
IntraClassPatchSwap      mmseg TRANSFORMS     SegIntraClassPatchSwap (data/seg_transforms)
IntraClassPairDataset    mmseg DATASETS       SegIntraClassPairDataset (data/seg_pair_dataset)
pair_collate             mmengine FUNCTIONS   pair_collate (data/collate)
IPSDHook                 mmengine HOOKS       IPSDHook (distill/hook)
(adapters)               IPSDHook's lookup    SegmentorAdapter (distill/segmentor),
                                              MaskClassificationAdapter
                                              (distill/mask_classification)
=======================  ===================  ==========================================
"""
from .libraries import require_library

require_library('seg')

from .data.collate import pair_collate
from .data.seg_pair_dataset import SegIntraClassPairDataset
from .data.seg_transforms import SegIntraClassPatchSwap
from .distill.hook import IPSDHook
from .distill.mask_classification import MaskClassificationAdapter
from .distill.segmentor import SegmentorAdapter

__all__ = [
    'IPSDHook', 'MaskClassificationAdapter', 'SegIntraClassPairDataset', 'SegIntraClassPatchSwap', 'SegmentorAdapter',
    'pair_collate'
]
