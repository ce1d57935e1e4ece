"""ipsd_mm: Intra-class Patch Swap self-distillation for MMDetection and MMSegmentation.

Importing the package registers everything a config names (``custom_imports=['ipsd_mm']``):
the ``IntraClassPatchSwap`` transform and the ``IntraClassPairDataset`` wrapper in mmdet's and
mmseg's registries, ``pair_collate`` and ``IPSDHook`` in MMEngine's root registries.
"""
from . import compat  # noqa: F401  (first: lets Runner checkpoints load on current torch)
from .data import DetIntraClassPatchSwap, SegIntraClassPatchSwap, pair_collate
from .distill import IPSDHook
from .version import __version__

__all__ = [
    'DetIntraClassPatchSwap', 'IPSDHook', 'SegIntraClassPatchSwap', '__version__', 'pair_collate'
]
