"""What the pinned OpenMMLab stack needs on current torch. Applied on ``import ipsd_mm``.

Two steps: MMEngine's checkpoints load on torch >= 2.6 (below), and MMRazor 1.0.0's distillers
import on torch 2 (:func:`let_mmrazor_import`). A step touches only what fails as is.

MMEngine 0.10.7 calls ``torch.load(filename, map_location=...)`` without ``weights_only``. Since
torch 2.6 that means ``weights_only=True``, and the checkpoints the Runner itself writes no longer
load (for ``resume`` or for testing) because their ``message_hub`` holds MMEngine
``HistoryBuffer`` objects (with their statistics methods, pickled through ``getattr``) and numpy
arrays and scalars. Rather than switching ``weights_only`` off for every file, we allow exactly
those classes on torch's safe list, and serve only the ``getattr`` lookups a ``HistoryBuffer``
needs.

Remove this module once the pinned MMEngine passes ``weights_only`` itself (or ships its own
allow-list), i.e. when the stack moves past mmengine 0.10.7.
"""
import pickle

import numpy as np
import torch


def _numpy_globals() -> list:
    """The numpy reconstruction helpers and dtypes a pickled array or scalar refers to."""
    try:  # numpy 2
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # numpy 1
        from numpy.core.multiarray import _reconstruct, scalar
    dtypes = [type(np.dtype(t)) for t in (np.float64, np.float32, np.float16, np.int64,
                                          np.int32, np.int16, np.int8, np.uint8, np.bool_)]
    return [_reconstruct, scalar, np.ndarray, np.dtype, *dtypes]


def _history_buffer_statistic(owner, name: str):
    """Stands in for ``getattr`` while unpickling: a ``HistoryBuffer`` pickles its statistics
    methods as ``getattr(HistoryBuffer, 'mean')``. Only those lookups are served; allowing the
    real ``getattr`` would let a file reach anything and defeat ``weights_only``."""
    from mmengine.logging.history_buffer import HistoryBuffer
    HistoryBuffer()  # registers the default statistics (min, max, current, mean), as MMEngine does
    if owner is HistoryBuffer and name in HistoryBuffer._statistics_methods:
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f'ipsd_mm.compat: refusing getattr({owner!r}, {name!r}) in a weights_only load')


def allow_runner_checkpoints() -> None:
    """Put what a Runner checkpoint holds on torch's ``weights_only`` safe list."""
    add = getattr(torch.serialization, 'add_safe_globals', None)
    if add is None:  # torch < 2.4 loads them without a list
        return
    from mmengine.logging.history_buffer import HistoryBuffer
    add([HistoryBuffer, *_numpy_globals(), (_history_buffer_statistic, 'builtins.getattr')])


allow_runner_checkpoints()


#: MMRazor 1.0.0's quantization tables (imported by ``mmrazor.models`` and ``mmrazor.engine``)
#: use torch 1.13's names: fuser helpers renamed in torch 2 (old name: torch 2's name), and
#: BackendPatternConfig setters torch 2 removed.
_MMRAZOR_FUSER_NAMES = {'reverse2': '_reverse2', 'reverse3': '_reverse3',
                        'reverse_sequential_wrapper2': '_sequential_wrapper2'}
_MMRAZOR_REMOVED_SETTERS = ('_set_overwrite_output_fake_quantize',
                            '_set_overwrite_output_observer', '_set_input_output_observed')


def _removed_setter(name: str):
    def setter(self, *args, **kwargs):
        return self  # the tables chain their setters
    setter.__name__ = name
    setter.__doc__ = (f'ipsd_mm.compat: {name} was removed from torch; MMRazor 1.0.0 calls it '
                      'while building quantization tables that distillation never reads.')
    return setter


def let_mmrazor_import() -> list:
    """Let MMRazor 1.0.0's distillers import on torch 2 (open-mmlab/mmrazor#632, no fixed
    release); returns what was patched, nothing where MMRazor imports as is.

    ``import mmrazor.models`` reaches its quantization support, which imports three fuser
    helpers by their torch 1.13 names, reaches ``torch.ao.quantization.backend_config.utils``
    without importing it, and calls three private ``BackendPatternConfig`` setters that torch 2
    removed. Only those names are touched: the old names point at torch's renamed helpers, the
    submodule is imported, the setters are no-ops (they only set fields of quantization tables).
    Distillation (``SingleTeacherDistill``, the distillers, recorders and losses) never calls
    any of them, so nothing it computes changes. Remove with the rest of this module once the
    stack moves to an MMRazor that supports torch 2.
    """
    import importlib.util
    if importlib.util.find_spec('mmrazor') is None:
        return []
    try:
        from torch.ao.quantization import fuser_method_mappings as fuser
        from torch.ao.quantization.backend_config import BackendPatternConfig
    except ImportError:  # a torch without them: MMRazor uses its own placeholders
        return []
    patched = []
    for old, new in _MMRAZOR_FUSER_NAMES.items():
        if not hasattr(fuser, old) and hasattr(fuser, new):
            setattr(fuser, old, getattr(fuser, new))
            patched.append(f'fuser_method_mappings.{old}')
    for name in _MMRAZOR_REMOVED_SETTERS:
        if not hasattr(BackendPatternConfig, name):
            setattr(BackendPatternConfig, name, _removed_setter(name))
            patched.append(f'BackendPatternConfig.{name}')
    if patched:  # reached as an attribute, never imported, where the names above are missing
        importlib.import_module('torch.ao.quantization.backend_config.utils')
    return patched


let_mmrazor_import()


def setup_cpu_distributed(cfg, launcher: str) -> None:
    """Let ``--launcher pytorch`` (torchrun) train on CPUs.

    MMEngine 0.10.7 calls ``torch.cuda.set_device`` while initialising the process group and
    gives DDP ``device_ids=[LOCAL_RANK]``; without CUDA both fail. On a machine without CUDA we
    initialise the gloo process group ourselves (the Runner then skips its own) and let DDP wrap
    the CPU module. A no-op with CUDA or without a launcher. Remove with the rest of this module
    once MMEngine handles CPU-only DDP.
    """
    import torch.distributed as dist
    if launcher != 'pytorch' or torch.cuda.is_available():
        return
    if not dist.is_initialized():
        dist.init_process_group(backend='gloo')
    wrapper = cfg.get('model_wrapper_cfg') or dict(type='MMDistributedDataParallel',
                                                    broadcast_buffers=False)
    wrapper.setdefault('device_ids', None)
    cfg.model_wrapper_cfg = wrapper
