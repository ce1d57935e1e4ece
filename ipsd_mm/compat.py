"""What the pinned OpenMMLab stack needs on current torch. Applied on ``import ipsd_mm``.

MMEngine 0.10.7 calls ``torch.load(filename, map_location=...)`` without ``weights_only``. Since
torch 2.6 that means ``weights_only=True``, and the checkpoints the Runner itself writes no longer
load (for ``resume`` or for testing) because their ``message_hub`` holds MMEngine
``HistoryBuffer`` objects and numpy arrays and scalars. Rather than switching ``weights_only``
off for every file, we allow exactly those classes on torch's safe list.

Remove this module once the pinned MMEngine passes ``weights_only`` itself (or ships its own
allow-list), i.e. when the stack moves past mmengine 0.10.7.
"""
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


def allow_runner_checkpoints() -> None:
    """Put the classes in a Runner checkpoint on torch's ``weights_only`` safe list."""
    add = getattr(torch.serialization, 'add_safe_globals', None)
    if add is None:  # torch < 2.4 loads them without a list
        return
    from mmengine.logging.history_buffer import HistoryBuffer
    add([HistoryBuffer, *_numpy_globals()])


allow_runner_checkpoints()
