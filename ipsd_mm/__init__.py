"""ipsd_mm: Intra-class Patch Swap self-distillation for MMDetection and MMSegmentation.

Each library has its side, which registers what a config names and imports only that library:

- ``custom_imports=dict(imports=['ipsd_mm.seg'])``: MMSegmentation (:mod:`ipsd_mm.seg`);
- ``custom_imports=dict(imports=['ipsd_mm.det'])``: MMDetection (:mod:`ipsd_mm.det`);
- ``custom_imports=dict(imports=['ipsd_mm'])``: the side of each of the two that is installed.

The names ``IntraClassPatchSwap`` and ``IntraClassPairDataset`` are registered once per library,
by a class of each side (``SegIntraClassPatchSwap`` / ``DetIntraClassPatchSwap``,
``SegIntraClassPairDataset`` / ``DetIntraClassPairDataset``): the tables in the two modules say
which class serves which name. ``pair_collate`` and ``IPSDHook`` are MMEngine's, shared.
"""
import importlib
import importlib.util

from . import compat  # noqa: F401  (first: lets Runner checkpoints load on current torch)
from .data.collate import pair_collate
from .distill.hook import IPSDHook
from .version import __version__

#: the sides imported by ``import ipsd_mm``: those whose library is installed
SIDES = tuple(side for side, library in (('seg', 'mmseg'), ('det', 'mmdet'))
              if importlib.util.find_spec(library) is not None)
for _side in SIDES:
    importlib.import_module(f'{__name__}.{_side}')

__all__ = ['IPSDHook', 'SIDES', '__version__', 'pair_collate']
