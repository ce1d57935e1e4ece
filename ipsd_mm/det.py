"""The MMDetection side of ipsd_mm: ``custom_imports=dict(imports=['ipsd_mm.det'])``.

Registers, without importing MMSegmentation (MMDetection itself is checked first:
without it, a clear error says what to install):

=======================  ===================  ==========================================
registered name          registry             class (module)
=======================  ===================  ==========================================
IntraClassPatchSwap      mmdet TRANSFORMS     DetIntraClassPatchSwap (data/det_transforms)
IntraClassPairDataset    mmdet DATASETS       DetIntraClassPairDataset (data/det_pair_dataset)
pair_collate             mmengine FUNCTIONS   pair_collate (data/collate)
IPSDHook                 mmengine HOOKS       IPSDHook (distill/hook)
(adapters)               IPSDHook's lookup    TwoStageAdapter (distill/two_stage),
                                              DenseHeadAdapter, RTMDetAdapter
                                              (distill/dense_head),
                                              QueryAdapter, MaskFormerQueryAdapter
                                              (distill/queries)
=======================  ===================  ==========================================
"""
from .libraries import require_library

require_library('det')

from .data.collate import pair_collate
from .data.det_pair_dataset import DetIntraClassPairDataset
from .data.det_transforms import DetIntraClassPatchSwap
from .distill.dense_head import DenseHeadAdapter, RTMDetAdapter
from .distill.hook import IPSDHook
from .distill.queries import MaskFormerQueryAdapter, QueryAdapter
from .distill.two_stage import TwoStageAdapter

__all__ = [
    'DenseHeadAdapter', 'DetIntraClassPairDataset', 'DetIntraClassPatchSwap', 'IPSDHook',
    'MaskFormerQueryAdapter', 'QueryAdapter', 'RTMDetAdapter', 'TwoStageAdapter', 'pair_collate'
]
