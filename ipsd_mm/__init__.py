"""ipsd_mm: Intra-class Patch Swap self-distillation for MMDetection and MMSegmentation.

Each library has its side, which registers what a config names and imports only that library:

- ``custom_imports=dict(imports=['ipsd_mm.seg'])``: MMSegmentation (:mod:`ipsd_mm.seg`);
- ``custom_imports=dict(imports=['ipsd_mm.det'])``: MMDetection (:mod:`ipsd_mm.det`);
- ``custom_imports=dict(imports=['ipsd_mm'])``: the side of each of the two that is installed
  (one whose library is installed but broken is skipped, with a warning that says why).

The names ``IntraClassPatchSwap`` and ``IntraClassPairDataset`` are registered once per library,
by a class of each side (``SegIntraClassPatchSwap`` / ``DetIntraClassPatchSwap``,
``SegIntraClassPairDataset`` / ``DetIntraClassPairDataset``): the tables in the two modules say
which class serves which name. ``pair_collate`` and ``IPSDHook`` are MMEngine's, shared.
"""
import importlib
import importlib.util
import warnings

from . import compat  # noqa: F401  (first: lets Runner checkpoints load on current torch)
from .data.collate import pair_collate
from .distill.hook import IPSDHook
from .libraries import LIBRARIES
from .version import __version__


def _sides() -> tuple:
    """The sides whose library is installed and imports. A library that is installed but fails
    to import (e.g. its mmcv version check) is skipped with a warning that says why, so one
    library's broken install never stops the other's side."""
    sides = []
    for side, (library, _, _) in LIBRARIES.items():
        if importlib.util.find_spec(library) is None:
            continue
        try:
            importlib.import_module(library)
        except Exception as e:  # noqa: BLE001  (whatever the library raises, the side is off)
            note = ''
            if library == 'mmdet' and importlib.util.find_spec('mmseg') is not None:
                note = (' Note: MMSegmentation\'s own models import mmdet too (its '
                        'Mask2FormerHead; only a missing mmdet is tolerated there), so mmseg '
                        'models fail to build the same way until mmdet imports or is '
                        'uninstalled (pip uninstall mmdet).')
            warnings.warn(f'ipsd_mm: the {library} side (ipsd_mm.{side}) was skipped: {library} '
                          f'is installed but does not import ({type(e).__name__}: {e}). The '
                          f'other side is imported; fix {library} to use ipsd_mm.{side}.{note}',
                          RuntimeWarning, stacklevel=3)
            continue
        importlib.import_module(f'{__name__}.{side}')
        sides.append(side)
    return tuple(sides)


#: the sides imported by ``import ipsd_mm``: those whose library is installed and imports
SIDES = _sides()

__all__ = ['IPSDHook', 'SIDES', '__version__', 'pair_collate']
